package main

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100..1, unsorted on purpose
	}
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"p50 of 1..100", hundred, 50, 50},
		{"p99 of 1..100", hundred, 99, 99},
		{"p100 is max", hundred, 100, 100},
		{"p1", hundred, 1, 1},
		{"single", []float64{7}, 99, 7},
		{"p50 of odd count", []float64{3, 1, 2}, 50, 2},
		{"p99 of 10 is max", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{"p90 of 10", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9},
		{"empty", nil, 50, math.NaN()},
		{"p0 invalid", hundred, 0, math.NaN()},
	}
	for _, tt := range tests {
		got := percentile(tt.xs, tt.p)
		if got != tt.want && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
			t.Errorf("%s: percentile(p=%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
	if hundred[0] != 100 {
		t.Error("percentile modified its input")
	}
}

func TestSummarize(t *testing.T) {
	got := summarize([]float64{5, 1, 9, 3})
	want := latencySummary{N: 4, P50: 3, P99: 9, Max: 9}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if e := summarize(nil); e.N != 0 || !math.IsNaN(e.P50) || !math.IsNaN(e.Max) {
		t.Errorf("summarize(nil) = %+v, want N 0 and NaNs", e)
	}
}
