package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-only", "live, idle", "-scale", "0.5", "-repeat", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.quick || o.scale != 0.5 || o.repeat != 3 || !slices.Equal(o.only, []string{"live", "idle"}) {
		t.Errorf("options = %+v", o)
	}
	if o, _ := parseFlags(nil, io.Discard); o.scale != 1 || o.repeat != 1 || len(o.only) != 0 {
		t.Errorf("defaults = %+v", o)
	}
	for _, args := range [][]string{
		{"-only", "nope"}, {"-scale", "0"}, {"-scale", "11"}, {"-repeat", "0"}, {"extra"}, {"-bogus"},
	} {
		_, err := parseFlags(args, io.Discard)
		if !errors.As(err, new(usageError)) {
			t.Errorf("parseFlags(%q) = %v, want a usage error", args, err)
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestScaled(t *testing.T) {
	for _, tt := range []struct {
		scale float64
		quick bool
		n     int64
		want  int64
	}{
		{1, false, 1_000_000, 1_000_000},
		{1, true, 1_000_000, 100_000},
		{0.5, true, 1_000_000, 50_000},
		{2, false, 1000, 2000},
		{0.0001, false, 10, 1}, // never zero
	} {
		b := &bench{opts: options{scale: tt.scale, quick: tt.quick}}
		if got := b.scaled(tt.n, 0.1); got != tt.want {
			t.Errorf("scaled(%d) with scale %v quick %v = %d, want %d", tt.n, tt.scale, tt.quick, got, tt.want)
		}
	}
}
