//go:build !race

// The race detector's instrumentation allocates on its own, so the
// allocation count is checked in the ordinary (non -race) test run only.

package telemetry

import (
	"testing"
	"time"
)

// TestHotPathDoesNotAllocate: once a label combination has been seen, the
// methods the agent calls per batch or per read cost no allocation.
func TestHotPathDoesNotAllocate(t *testing.T) {
	tel := New(Options{Sources: []string{"train"}})
	tests := []struct {
		name string
		f    func()
	}{
		{"RecordsRead", func() { tel.RecordsRead("train", 100) }},
		{"RecordRejected", func() { tel.RecordRejected("train", "syntax") }},
		{"ValueSkipped", func() { tel.ValueSkipped("train", "null") }},
		{"LinesSent", func() { tel.LinesSent("metrics", 100) }},
		{"PointsSent", func() { tel.PointsSent(100) }},
		{"Request", func() { tel.Request("metrics", 200, time.Millisecond) }},
		{"Retry", func() { tel.Retry("metrics", 503) }},
		{"BatchSize", func() { tel.BatchSize("metrics", 5000, 1<<20) }},
		{"BufferBytes", func() { tel.BufferBytes(1 << 20) }},
		{"CheckpointSaved", func() { tel.CheckpointSaved(time.Unix(1, 0), time.Millisecond) }},
	}
	for _, tc := range tests {
		tc.f() // resolve the label children
		if got := testing.AllocsPerRun(1000, tc.f); got != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, got)
		}
	}
}
