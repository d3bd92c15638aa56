package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// scenarioCardinality measures memory against metric and run cardinality,
// which per-run bookkeeping (registered log names, run state) would
// otherwise grow without bound: 1 M distinct metric names in one backfill
// (1,000 files, each its own run with 1,000 names), and 20,000 runs fed by
// one file through run_field.
func (b *bench) scenarioCardinality(ctx context.Context) error {
	const sc = "7 cardinality"
	dir := filepath.Join(b.work, "cardinality")
	defer os.RemoveAll(dir)

	files := b.scaled(1000, 0.1)
	const namesPerFile, namesPerLine = 1000, 10
	if err := writeDistinctNames(filepath.Join(dir, "names"), int(files), namesPerFile, namesPerLine); err != nil {
		return err
	}
	points := files * namesPerFile
	o, err := b.runBest(ctx, backfillSpec{scenario: sc, name: "names", command: "backfill", mode: mlopfake.ModeCount,
		sources: singleSource(filepath.Join(dir, "names", "*.jsonl")), wantPoints: points, wantRuns: files})
	if err != nil {
		return err
	}
	if o.ok {
		p := params{Lines: points / namesPerLine, Points: points, Files: files, Receiver: "count",
			Note: fmt.Sprintf("%s distinct names; ", thousands(points)) + o.note()}
		b.add(row{Scenario: sc, Figure: "peak RSS, " + thousands(points) + " distinct names", Value: float64(o.res.MaxRSSKiB) / 1024,
			Unit: "MiB", Target: lessThan(100), Params: p})
		b.add(row{Scenario: sc, Figure: "throughput, distinct names", Value: o.PointsPerSec(points), Unit: "points/s", Params: p})
	}

	runs := b.scaled(20000, 0.1)
	const linesPerRun = 20
	path := filepath.Join(dir, "runs", "all.jsonl")
	if err := writeManyRunsFile(path, int(runs), linesPerRun); err != nil {
		return err
	}
	points = runs * linesPerRun * 3
	o, err = b.runBest(ctx, backfillSpec{scenario: sc, name: "runfield", command: "backfill", mode: mlopfake.ModeCount,
		sources:    []sourceConfig{{Name: "bench", Format: "jsonl", Paths: []string{path}, RunField: "run"}},
		wantPoints: points, wantRuns: runs})
	if err != nil {
		return err
	}
	if o.ok {
		p := params{Lines: runs * linesPerRun, Points: points, Files: 1, Receiver: "count",
			Note: fmt.Sprintf("%s runs by run_field; ", thousands(runs)) + o.note()}
		b.add(row{Scenario: sc, Figure: "peak RSS, " + thousands(runs) + " runs in one file", Value: float64(o.res.MaxRSSKiB) / 1024,
			Unit: "MiB", Target: lessThan(100), Params: p})
		b.add(row{Scenario: sc, Figure: "wall time, " + thousands(runs) + " runs in one file", Value: o.res.Wall.Seconds(), Unit: "s", Params: p})
	}
	return nil
}

// writeDistinctNames writes files of lines whose metric names never
// repeat: file f, line l holds names m<f>_<l*perLine+k>.
func writeDistinctNames(dir string, files, namesPerFile, perLine int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for f := range files {
		path := filepath.Join(dir, fmt.Sprintf("r%04d.jsonl", f))
		fh, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		w := bufio.NewWriterSize(fh, 1<<16)
		var line []byte
		for l := 0; l < namesPerFile/perLine; l++ {
			line = append(line[:0], `{"step":`...)
			line = strconv.AppendInt(line, int64(l), 10)
			for k := range perLine {
				line = append(line, `,"layer`...)
				line = strconv.AppendInt(line, int64(f), 10)
				line = append(line, "/param"...)
				line = strconv.AppendInt(line, int64(l*perLine+k), 10)
				line = append(line, `/grad_norm":0.5`...)
			}
			line = append(line, "}\n"...)
			w.Write(line)
		}
		if err := w.Flush(); err != nil {
			fh.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	return nil
}

// writeManyRunsFile writes one file feeding runs runs through the "run"
// field, interleaved (a sweep's combined log): each line has three metrics.
func writeManyRunsFile(path string, runs, linesPerRun int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(fh, 1<<16)
	var line []byte
	for l := range linesPerRun {
		for r := range runs {
			line = append(line[:0], `{"run":"trial-`...)
			line = strconv.AppendInt(line, int64(r), 10)
			line = append(line, `","step":`...)
			line = strconv.AppendInt(line, int64(l), 10)
			line = append(line, `,"loss":0.25,"acc":0.5,"lr":0.001}`+"\n"...)
			w.Write(line)
		}
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}
