package main

import (
	"os"
	"testing"
)

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatalf("readProc(self): %v", err)
	}
	if s.RSSKiB <= 0 || s.HWMKiB < s.RSSKiB || s.Ticks < 0 {
		t.Errorf("readProc(self) = %+v; want RSS > 0, HWM >= RSS, ticks >= 0", s)
	}
	if _, err := readProc(-1); err == nil {
		t.Error("readProc(-1): no error")
	}
}
