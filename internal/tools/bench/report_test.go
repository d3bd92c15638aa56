package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestThousands(t *testing.T) {
	for _, tt := range []struct {
		in   int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {2_000_000, "2,000,000"}, {-1234567, "-1,234,567"}} {
		if got := thousands(tt.in); got != tt.want {
			t.Errorf("thousands(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		unit string
		want string
	}{
		{2_512_345.6, "points/s", "2,512,346"},
		{22.26, "MiB", "22.3"},
		{3.456, "ms", "3.46"},
		{12.34, "ms", "12.3"},
		{0.5, "% of 1 core", "0.50"},
		{math.NaN(), "ms", "n/a"},
	} {
		if got := formatValue(tt.v, tt.unit); got != tt.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", tt.v, tt.unit, got, tt.want)
		}
	}
}

func TestRowMet(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    row
		want string
	}{
		{"at least, met", row{Value: 2e6, Target: atLeast(2e6)}, "yes"},
		{"at least, missed", row{Value: 1.9e6, Target: atLeast(2e6)}, "NO"},
		{"less than, met", row{Value: 99.9, Target: lessThan(100)}, "yes"},
		{"less than, equal is a miss", row{Value: 100, Target: lessThan(100)}, "NO"},
		{"no target", row{Value: 1}, ""},
		{"no value", row{NA: "FAILED", Target: lessThan(1)}, ""},
		{"NaN", row{Value: math.NaN(), Target: lessThan(1)}, ""},
	} {
		if got := tt.r.Met(); got != tt.want {
			t.Errorf("%s: Met = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestTableAndJSON(t *testing.T) {
	rows := []row{
		{Scenario: "1 backfill", Figure: "throughput", Value: 2_500_000, Unit: "points/s", Target: atLeast(2_000_000),
			Params: params{Lines: 1_000_000, Points: 10_000_000, Files: 1, Receiver: "count", Note: "wall=4.00s"}},
		{Scenario: "3 live", Figure: "latency p50", Value: math.NaN(), Unit: "ms", Target: lessThan(20)},
		{Scenario: "5 neptune import", Figure: "throughput", NA: "n/a (import command not built yet)", Unit: "points/s"},
	}
	var sb strings.Builder
	if err := printTable(&sb, rows); err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	for _, want := range []string{"2,500,000", ">= 2,000,000", "yes", "lines=1,000,000 points=10,000,000 files=1 receiver=count wall=4.00s", "n/a (import command not built yet)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatalf("marshal rows (NaN must not break it): %v", err)
	}
	var back []map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back[0]["value"] != 2_500_000.0 || back[0]["met"] != "yes" {
		t.Errorf("row 0 = %v, want value 2500000 and met yes", back[0])
	}
	if v, ok := back[1]["value"]; !ok || v != nil {
		t.Errorf("NaN row value = %v (present %v), want null", v, ok)
	}
	if back[2]["na"] != "n/a (import command not built yet)" || back[2]["value"] != nil {
		t.Errorf("n/a row = %v", back[2])
	}
}
