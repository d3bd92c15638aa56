package export

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// benchPoints is the size of BenchmarkExport's input (MLOP_BENCH_POINTS
// overrides it).
func benchPoints() int {
	if v, err := strconv.Atoi(os.Getenv("MLOP_BENCH_POINTS")); err == nil && v > 0 {
		return v
	}
	return 10_000_000
}

// drainPoints opens every run of an export, reads it to io.EOF reusing
// the event slice as the agent does, and returns the metric points read.
func drainPoints(tb testing.TB, f *Format, infos []parsers.StreamInfo) int {
	n := 0
	var dst []event.Event
	for _, info := range infos {
		s, err := f.Open(info, event.Position{}, nil, parsers.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		for {
			ch, err := s.Next(context.Background(), dst[:0])
			for i := range ch.Events {
				n += len(ch.Events[i].Points)
			}
			dst = ch.Events
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				tb.Fatal(err)
			}
		}
		s.Close()
	}
	return n
}

func benchExport(b *testing.B, variant neptunetest.ExportVariant) {
	total := benchPoints()
	dir := b.TempDir()
	start := time.Now()
	m, err := neptunetest.WriteExport(dir, neptunetest.ExportOptions{Variant: variant, Runs: 4, PointsPerRun: total / 4,
		FractionalSteps: true, BatchRows: 1 << 20, RowsPerPart: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d points in %v", m.Points(), time.Since(start))
	f := New(nil)
	b.ReportAllocs()
	b.ResetTimer()
	read := 0
	for b.Loop() {
		infos, err := f.Discover(m.DataDir)
		if err != nil {
			b.Fatal(err)
		}
		// A fresh format: the pre-scan is part of the work.
		f = New(nil)
		n := drainPoints(b, f, infos)
		if n != m.Points() {
			b.Fatalf("read %d points, want %d", n, m.Points())
		}
		read += n
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkExport decodes and maps a neptune3 export of 10M float points
// (4 runs, 10 metrics, fractional steps, pre-scan included). Run it with
// -cpu 1 for the one-core figure.
func BenchmarkExport(b *testing.B) { benchExport(b, neptunetest.Export3) }

// BenchmarkExport2 is the same for a neptune2 export, whose metrics are
// stored series by series (one event per point).
func BenchmarkExport2(b *testing.B) { benchExport(b, neptunetest.Export2) }
