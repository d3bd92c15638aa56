package main

import (
	"math"
	"slices"
)

// percentile returns the p-th percentile (0 < p <= 100) of xs by the
// nearest-rank method: the smallest value with at least p % of the values
// at or below it, so p99 of 100 values is the 99th smallest and p100 the
// maximum. NaN when xs is empty. xs is not modified.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 || p <= 0 || p > 100 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return percentileSorted(s, p)
}

// percentileSorted is percentile of an already sorted slice.
func percentileSorted(sorted []float64, p float64) float64 {
	if len(sorted) == 0 || p <= 0 || p > 100 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// latencySummary is what the live scenarios report about a set of
// latencies (milliseconds).
type latencySummary struct {
	N             int
	P50, P99, Max float64
}

func summarize(ms []float64) latencySummary {
	if len(ms) == 0 {
		return latencySummary{P50: math.NaN(), P99: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	return latencySummary{N: len(s), P50: percentileSorted(s, 50), P99: percentileSorted(s, 99), Max: s[len(s)-1]}
}
