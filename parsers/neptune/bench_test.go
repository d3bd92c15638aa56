package neptune

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// benchPoints is the size of the benchmark inputs.
const benchPoints = 1_000_000

// drain opens a stream, reads it to io.EOF reusing the event slice as an
// agent would, and returns the number of metric points.
func drain(b *testing.B, f *Format, info parsers.StreamInfo) int {
	s, err := f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var dst []event.Event
	n := 0
	for {
		ch, err := s.Next(context.Background(), dst[:0])
		for i := range ch.Events {
			n += len(ch.Events[i].Points)
		}
		dst = ch.Events
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchStream(b *testing.B, root string) {
	f := New()
	info := discoverOne(b, f, root)
	b.ReportAllocs()
	b.ResetTimer()
	total := 0
	for b.Loop() {
		n := drain(b, f, info)
		if n != benchPoints {
			b.Fatalf("read %d points, want %d", n, benchPoints)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkN1 decodes and maps a neptune-client queue of 1M points (one
// LogFloats record per point, as the client writes them), pre-scan
// included.
func BenchmarkN1(b *testing.B) {
	dir := b.TempDir()
	if _, err := neptunetest.WriteN1Queue(dir, 1, benchPoints); err != nil {
		b.Fatal(err)
	}
	benchStream(b, dir)
}

// BenchmarkScale decodes and maps a neptune-scale database of 1M points:
// 100k snapshots of 10 metrics (one log_metrics call per step).
func BenchmarkScale(b *testing.B) {
	path := filepath.Join(b.TempDir(), ".neptune", "bench_run_1", "run_operations.sqlite3")
	if err := neptunetest.WriteScaleDB(path, "bench-run", benchPoints/10, 10); err != nil {
		b.Fatal(err)
	}
	benchStream(b, filepath.Dir(filepath.Dir(path)))
}

// BenchmarkScaleOnePointPerRow is the worst case: 1M snapshots of one
// metric each.
func BenchmarkScaleOnePointPerRow(b *testing.B) {
	path := filepath.Join(b.TempDir(), ".neptune", "bench_run_1", "run_operations.sqlite3")
	if err := neptunetest.WriteScaleDB(path, "bench-run", benchPoints, 1); err != nil {
		b.Fatal(err)
	}
	benchStream(b, filepath.Dir(filepath.Dir(path)))
}

// TestGenerators checks the benchmark inputs read back as generated.
func TestGenerators(t *testing.T) {
	dir := t.TempDir()
	runs, err := neptunetest.WriteN1Queue(dir, 2, 95)
	if err != nil || len(runs) != 2 {
		t.Fatal(runs, err)
	}
	path := filepath.Join(dir, ".neptune", "w_scale_1", "run_operations.sqlite3")
	if err := neptunetest.WriteScaleDB(path, "scale", 20, 5); err != nil {
		t.Fatal(err)
	}
	f := New()
	infos, err := f.Discover(dir)
	if err != nil || len(infos) != 3 {
		t.Fatalf("Discover = %v, %v", infos, err)
	}
	want := map[string]int{}
	for _, r := range runs {
		want[r.UUID] = 95
	}
	want["scale"] = 100
	for _, info := range infos {
		s, err := f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		sum := summarize(t, follow(t, s))
		s.Close()
		n := 0
		for name, pts := range sum.metrics {
			n += len(pts)
			if !strings.HasPrefix(name, "train/metric_") {
				t.Errorf("metric %s", name)
			}
		}
		if n != want[sum.run.ExternalID] {
			t.Errorf("%s: %d points, want %d", sum.run.ExternalID, n, want[sum.run.ExternalID])
		}
	}
}
