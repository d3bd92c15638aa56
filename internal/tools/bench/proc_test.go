package main

import (
	"errors"
	"testing"
	"time"
)

// A real /proc/<pid>/stat line (utime 1234, stime 567) with a command name
// holding spaces and parentheses.
const statLine = "4242 (my (odd) agent) S 1 4242 7652 0 -1 4194304 123 0 0 0 1234 567 0 0 20 0 1 0 258211 3133440 412 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	tests := []struct {
		name             string
		in               string
		wantUser, wantSy int64
		wantErr          bool
	}{
		{"odd comm", statLine, 1234, 567, false},
		{"plain", "1 (init) S 0 1 1 0 -1 4194560 100 200 0 0 7 9 0 0 20 0 1 0 5 100 10 1 0 0\n", 7, 9, false},
		{"no paren", "1 init S 0 1 1 0 -1 4194560 100 200 0 0 7 9\n", 0, 0, true},
		{"truncated", "1 (init) S 0 1 1 0 -1 4194560 100 200 0 0 7\n", 0, 0, true},
		{"not a number", "1 (init) S 0 1 1 0 -1 4194560 100 200 0 0 x 9 0\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, s, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat: err = %v, wantErr %v", err, tt.wantErr)
			}
			if u != tt.wantUser || s != tt.wantSy {
				t.Errorf("parseStat = %d, %d; want %d, %d", u, s, tt.wantUser, tt.wantSy)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	const live = "Name:\tmlop-agent\nState:\tS (sleeping)\nVmPeak:\t  1300000 kB\nVmHWM:\t    40960 kB\nVmRSS:\t    30720 kB\nVmSwap:\t0 kB\n"
	const zombie = "Name:\tmlop-agent\nState:\tZ (zombie)\nThreads:\t1\n"
	const badUnit = "VmHWM:\t    40960 MB\nVmRSS:\t    30720 kB\n"
	tests := []struct {
		name          string
		in            string
		wantRSS, wHWM int64
		wantErr       bool
		wantIs        error // when set, the error must wrap it
	}{
		{"live", live, 30720, 40960, false, nil},
		{"zombie", zombie, 0, 0, true, errNoMemory},
		{"bad unit", badUnit, 0, 0, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rss, hwm, err := parseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStatus: err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("parseStatus: err = %v, want %v", err, tt.wantIs)
			}
			if rss != tt.wantRSS || hwm != tt.wHWM {
				t.Errorf("parseStatus = %d, %d; want %d, %d", rss, hwm, tt.wantRSS, tt.wHWM)
			}
		})
	}
}

func TestCPUPercent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	hz := clockTicks()
	a := procSample{At: t0, Ticks: 10}
	b := procSample{At: t0.Add(10 * time.Second), Ticks: 10 + 5*hz} // 5 CPU-seconds in 10 s
	if got := cpuPercent(a, b); got < 49.999 || got > 50.001 {
		t.Errorf("cpuPercent = %v, want 50", got)
	}
	if got := cpuPercent(b, b); got != 0 {
		t.Errorf("cpuPercent over no time = %v, want 0", got)
	}
}

func TestPeakRSS(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	samples := []procSample{
		{At: at(0), RSSKiB: 900, HWMKiB: 900},
		{At: at(1), RSSKiB: 100, HWMKiB: 900},
		{At: at(2), RSSKiB: 300, HWMKiB: 950},
		{At: at(3), RSSKiB: 200, HWMKiB: 950},
	}
	tests := []struct {
		name          string
		from, to      time.Time
		wantRSS, wHWM int64
	}{
		{"all", time.Time{}, time.Time{}, 900, 950},
		{"window", at(1), at(3), 300, 950},
		{"open end", at(3), time.Time{}, 200, 950},
		{"empty", at(5), at(6), 0, 0},
	}
	for _, tt := range tests {
		rss, hwm := peakRSS(samples, tt.from, tt.to)
		if rss != tt.wantRSS || hwm != tt.wHWM {
			t.Errorf("%s: peakRSS = %d, %d; want %d, %d", tt.name, rss, hwm, tt.wantRSS, tt.wHWM)
		}
	}
}
