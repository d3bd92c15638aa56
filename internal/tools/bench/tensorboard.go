package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/parsers/tensorboard/tbtest"
)

// The TensorBoard import scenario: `mlop-agent import tensorboard` of
// generated log directories, printed beside the JSONL backfill row. The
// files are what a training loop that logs 10 scalars per step with
// add_scalar writes (one event per tag, the tags of a step in the same
// millisecond). Two sizes, to show that memory stays flat.

const tbRuns, tbTags = 4, 10

// writeTensorBoard writes runs run directories under dir holding points
// scalar points in all, and returns the bytes written.
func writeTensorBoard(dir string, runs int, points int64) (int64, error) {
	tags := make([]string, tbTags)
	for i := range tags {
		tags[i] = fmt.Sprintf("train/metric_%d", i)
	}
	steps := points / int64(runs*tbTags)
	var total int64
	for r := 0; r < runs; r++ {
		p := filepath.Join(dir, fmt.Sprintf("run-%d", r), tbtest.FileName(1_764_000_000+int64(r), "bench", ".1.0"))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return total, fmt.Errorf("create %s: %w", filepath.Dir(p), err)
		}
		f, err := os.Create(p)
		if err != nil {
			return total, fmt.Errorf("create %s: %w", p, err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		n, _ := w.Write(tbtest.Frame(tbtest.FileVersion(1.764e9)))
		total += int64(n)
		for s := int64(0); s < steps; s++ {
			wall := 1.764e9 + float64(s)*0.05
			for i, tag := range tags {
				n, err := w.Write(tbtest.Frame(tbtest.Scalar(wall, s, tag, float32(s)*0.001+float32(i))))
				if err != nil {
					f.Close()
					return total, fmt.Errorf("write %s: %w", p, err)
				}
				total += int64(n)
			}
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return total, fmt.Errorf("write %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return total, fmt.Errorf("write %s: %w", p, err)
		}
	}
	return total, nil
}

func (b *bench) scenarioTensorBoard(ctx context.Context) error {
	const sc = "1b tensorboard import"
	if !hasCommand(ctx, b.agent, "import") {
		b.add(row{Scenario: sc, Figure: "throughput", NA: "n/a (import command not built yet)", Unit: "points/s"})
		return nil
	}
	// import requires a valid configuration, which needs a source; import
	// ignores it.
	unused := []sourceConfig{{Name: "unused", Format: "jsonl", Paths: []string{filepath.Join(b.work, "tensorboard", "unused", "*.jsonl")}}}
	for _, base := range []int64{1_000_000, 10_000_000} {
		points := b.scaled(base, 0.1)
		points -= points % (tbRuns * tbTags)
		dir := filepath.Join(b.work, "tensorboard", fmt.Sprintf("p%d", points))
		t0 := time.Now()
		size, err := writeTensorBoard(dir, tbRuns, points)
		if err != nil {
			return fmt.Errorf("generate the tensorboard logs: %w", err)
		}
		b.log.Info("generated", "tensorboard", dir, "points", points, "mib", size>>20, "elapsed", time.Since(t0).Round(time.Millisecond))
		o, err := b.runBest(ctx, backfillSpec{scenario: sc, name: fmt.Sprintf("tensorboard-%d", points), command: "import tensorboard",
			mode: mlopfake.ModeCount, sources: unused, wantPoints: points, wantRuns: tbRuns,
			args: func(cfgPath, stateDir string) []string {
				return []string{"import", "tensorboard", "-c", cfgPath, "--state-dir", stateDir, "--no-progress", dir}
			}})
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
		if !o.ok {
			continue
		}
		p := params{Points: points, Files: tbRuns, Receiver: "count", Note: o.note() + fmt.Sprintf(" events=%d MiB", size>>20)}
		at := "@ " + thousands(points) + " points"
		b.add(row{Scenario: sc, Figure: "throughput " + at, Value: o.PointsPerSec(points), Unit: "points/s", Target: atLeast(2_000_000), Params: p})
		b.add(row{Scenario: sc, Figure: "peak RSS " + at, Value: float64(o.res.MaxRSSKiB) / 1024, Unit: "MiB", Target: lessThan(100), Params: p})
	}
	return nil
}
