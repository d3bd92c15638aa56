package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// Backfill-style scenarios: the agent reads everything and exits; the
// figure is points over the process's whole life (start to reaped exit).

// backfillSpec is one agent run that must exit by itself.
type backfillSpec struct {
	scenario string
	name     string // short, for file names
	command  string // for messages: "backfill", "import neptune"
	// args builds the agent's command line from the config file and state
	// directory the run gets; nil means backfill -c FILE.
	args       func(cfgPath, stateDir string) []string
	mode       mlopfake.Mode
	sources    []sourceConfig
	wantPoints int64
	wantRuns   int64 // runs the receiver must see created; 0 = not checked
}

// backfillOutcome is a finished run; ok is false when it failed
// functionally (already recorded with b.fail).
type backfillOutcome struct {
	res        agentResult
	counters   mlopfake.Counters
	ok         bool
	repeatNote string // " (best of N)" from runBest
	// harnessCPU is this process's CPU during the run (% of one core):
	// mostly the receiver. Next to the agent's, it shows whether the
	// receiver could have been the limit.
	harnessCPU float64
}

// PointsPerSec is the end-to-end throughput.
func (o backfillOutcome) PointsPerSec(points int64) float64 {
	return float64(points) / o.res.Wall.Seconds()
}

func (o backfillOutcome) note() string {
	return fmt.Sprintf("wall=%.2fs agent_cpu=%.0f%% receiver_cpu=%.0f%%", o.res.Wall.Seconds(), o.res.CPUPercent(), o.harnessCPU) + o.repeatNote
}

// runBackfill starts a fresh receiver, runs the agent to its exit and
// checks the exit status and the receiver's point count.
func (b *bench) runBackfill(ctx context.Context, spec backfillSpec) (backfillOutcome, error) {
	srv, err := mlopfake.Start(mlopfake.Options{Mode: spec.mode})
	if err != nil {
		return backfillOutcome{}, fmt.Errorf("start the stand-in: %w", err)
	}
	defer func() {
		srv.Close()
		if spec.mode == mlopfake.ModeStrict {
			// The strict stand-in stored every point in this process; give
			// the memory back before the next run is measured.
			srv = nil
			runtime.GC()
			debug.FreeOSMemory()
		}
	}()
	stateDir, logPath, cfgPath := b.nextRun(spec.name)
	for _, d := range []string{filepath.Dir(logPath), filepath.Dir(cfgPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return backfillOutcome{}, fmt.Errorf("create %s: %w", d, err)
		}
	}
	cfg := agentConfig{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(), StateDir: stateDir, Sources: spec.sources}
	if err := cfg.write(cfgPath); err != nil {
		return backfillOutcome{}, err
	}
	b.log.Info("agent", "command", spec.command, "run", spec.name, "receiver", string(spec.mode), "want_points", spec.wantPoints)
	self0, _ := readProc(os.Getpid())
	args := []string{"backfill", "-c", cfgPath}
	if spec.args != nil {
		args = spec.args(cfgPath, stateDir)
	}
	p, err := startAgent(ctx, b.agent, logPath, args...)
	if err != nil {
		return backfillOutcome{}, err
	}
	res := p.Wait()
	self1, _ := readProc(os.Getpid())
	out := backfillOutcome{res: res, counters: srv.Counters(), harnessCPU: cpuPercent(self0, self1)}
	b.log.Info("agent exited", "run", spec.name, "code", res.ExitCode, "wall", res.Wall.Round(time.Millisecond),
		"points", out.counters.MetricPoints, "max_rss_mib", res.MaxRSSKiB/1024)
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	switch c := out.counters; {
	case res.WaitErr != nil:
		b.failAgent(spec.scenario, spec.name, fmt.Sprintf("%s: wait: %v", spec.name, res.WaitErr), p)
	case res.ExitCode != 0:
		b.failAgent(spec.scenario, spec.name, fmt.Sprintf("%s: agent %s exited %d", spec.name, spec.command, res.ExitCode), p)
	case c.MetricPoints != spec.wantPoints:
		b.failAgent(spec.scenario, spec.name, fmt.Sprintf("%s: the %s receiver counted %d metric points, want %d (lines %d, rejected requests %d)",
			spec.name, spec.mode, c.MetricPoints, spec.wantPoints, c.MetricLines, c.Rejected), p)
	case c.Rejected > 0:
		b.failAgent(spec.scenario, spec.name, fmt.Sprintf("%s: the strict stand-in rejected %d requests", spec.name, c.Rejected), p)
	case spec.wantRuns > 0 && c.RunsCreated != spec.wantRuns:
		b.failAgent(spec.scenario, spec.name, fmt.Sprintf("%s: %d runs created, want %d", spec.name, c.RunsCreated, spec.wantRuns), p)
	default:
		out.ok = true
	}
	return out, nil
}

// runBest runs spec -repeat times and returns the fastest run; the first
// functional failure ends the series. The throughput of the best run is
// the least disturbed by other load on the machine; the peak RSS is the
// largest of the series.
func (b *bench) runBest(ctx context.Context, spec backfillSpec) (backfillOutcome, error) {
	var best backfillOutcome
	var maxRSS int64
	for i := range b.opts.repeat {
		s := spec
		if b.opts.repeat > 1 {
			s.name = fmt.Sprintf("%s-%d", spec.name, i+1)
		}
		o, err := b.runBackfill(ctx, s)
		if err != nil || !o.ok {
			return o, err
		}
		maxRSS = max(maxRSS, o.res.MaxRSSKiB)
		if i == 0 || o.res.Wall < best.res.Wall {
			best = o
		}
	}
	best.res.MaxRSSKiB = maxRSS
	if b.opts.repeat > 1 {
		best.repeatNote = fmt.Sprintf(" (best of %d)", b.opts.repeat)
	}
	return best, nil
}

// backfillFile returns a generated file of lines backfill lines, writing
// it on first use.
func (b *bench) backfillFile(lines int64) (string, error) {
	if p, ok := b.files[lines]; ok {
		return p, nil
	}
	dir := filepath.Join(b.work, "backfill", fmt.Sprintf("l%d", lines))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "metrics.jsonl")
	t0 := time.Now()
	n, err := writeBackfillFile(path, lines, b.pool)
	if err != nil {
		return "", err
	}
	b.log.Info("generated", "file", path, "lines", lines, "mib", n>>20, "elapsed", time.Since(t0).Round(time.Millisecond))
	b.files[lines] = path
	return path, nil
}

// dropFiles deletes the cached backfill files.
func (b *bench) dropFiles() {
	for lines, p := range b.files {
		os.RemoveAll(filepath.Dir(p))
		delete(b.files, lines)
	}
}

func singleSource(path string) []sourceConfig {
	return []sourceConfig{{Name: "bench", Format: "jsonl", Paths: []string{path}}}
}

func (b *bench) scenarioBackfill(ctx context.Context) error {
	const sc = "1 backfill"
	lines := b.scaled(1_000_000, 0.1)
	points := lines * pointsPerLine
	path, err := b.backfillFile(lines)
	if err != nil {
		return err
	}
	for _, mode := range []mlopfake.Mode{mlopfake.ModeCount, mlopfake.ModeStrict} {
		o, err := b.runBest(ctx, backfillSpec{scenario: sc, name: "backfill-" + string(mode), command: "backfill",
			mode: mode, sources: singleSource(path), wantPoints: points, wantRuns: 1})
		if err != nil {
			return err
		}
		if !o.ok {
			continue
		}
		p := params{Lines: lines, Points: points, Files: 1, Receiver: string(mode), Note: o.note()}
		var tput, rss *target
		if mode == mlopfake.ModeCount {
			tput, rss = atLeast(2_000_000), lessThan(100)
		}
		b.add(row{Scenario: sc, Figure: "throughput", Value: o.PointsPerSec(points), Unit: "points/s", Target: tput, Params: p})
		b.add(row{Scenario: sc, Figure: "peak RSS", Value: float64(o.res.MaxRSSKiB) / 1024, Unit: "MiB", Target: rss, Params: p})
		b.add(row{Scenario: sc, Figure: "CPU (whole run)", Value: o.res.CPUPercent(), Unit: "% of 1 core", Params: p})
	}
	return nil
}

func (b *bench) scenarioScaling(ctx context.Context) error {
	const sc = "2 scaling"
	defer b.dropFiles() // up to 2.7 GB; no later scenario reads them
	for _, base := range []int64{100_000, 1_000_000, 10_000_000} {
		lines := b.scaled(base, 0.1)
		points := lines * pointsPerLine
		path, err := b.backfillFile(lines)
		if err != nil {
			return err
		}
		o, err := b.runBest(ctx, backfillSpec{scenario: sc, name: fmt.Sprintf("scaling-%d", lines), command: "backfill",
			mode: mlopfake.ModeCount, sources: singleSource(path), wantPoints: points, wantRuns: 1})
		if err != nil {
			return err
		}
		if !o.ok {
			continue
		}
		p := params{Lines: lines, Points: points, Files: 1, Receiver: "count", Note: o.note()}
		size := "@ " + thousands(lines) + " lines"
		b.add(row{Scenario: sc, Figure: "throughput " + size, Value: o.PointsPerSec(points), Unit: "points/s", Target: atLeast(2_000_000), Params: p})
		b.add(row{Scenario: sc, Figure: "peak RSS " + size, Value: float64(o.res.MaxRSSKiB) / 1024, Unit: "MiB", Target: lessThan(100), Params: p})
	}
	return nil
}

func (b *bench) scenarioManyRuns(ctx context.Context) error {
	const sc = "6 many runs"
	files := b.scaled(1000, 0.1)
	const linesPerFile = 1000
	dir := filepath.Join(b.work, "many")
	defer os.RemoveAll(dir)
	t0 := time.Now()
	n, err := writeManyFiles(dir, int(files), linesPerFile, b.pool)
	if err != nil {
		return err
	}
	b.log.Info("generated", "dir", dir, "files", files, "mib", n>>20, "elapsed", time.Since(t0).Round(time.Millisecond))
	lines := files * linesPerFile
	points := lines * pointsPerLine
	o, err := b.runBest(ctx, backfillSpec{scenario: sc, name: "manyruns", command: "backfill", mode: mlopfake.ModeCount,
		sources: singleSource(filepath.Join(dir, "*.jsonl")), wantPoints: points, wantRuns: files})
	if err != nil || !o.ok {
		return err
	}
	p := params{Lines: lines, Points: points, Files: files, Receiver: "count", Note: o.note()}
	b.add(row{Scenario: sc, Figure: "wall time", Value: o.res.Wall.Seconds(), Unit: "s", Target: lessThan(10), Params: p})
	b.add(row{Scenario: sc, Figure: "throughput", Value: o.PointsPerSec(points), Unit: "points/s", Params: p})
	b.add(row{Scenario: sc, Figure: "peak RSS", Value: float64(o.res.MaxRSSKiB) / 1024, Unit: "MiB", Params: p})
	return nil
}

// scenarioNeptune imports generated Neptune data: a neptune-client 1.x
// offline queue and a neptune-scale SQLite database, 1 M points each, with
// `mlop-agent import neptune -c FILE --state-dir DIR --no-progress PATH`
// (the file gives the server; import ignores its sources). It runs only
// when the binary has the import command.
func (b *bench) scenarioNeptune(ctx context.Context) error {
	const sc = "5 neptune import"
	points := b.scaled(1_000_000, 0.1)
	if !hasCommand(ctx, b.agent, "import") {
		for _, kind := range []string{"neptune-client queue", "neptune-scale db"} {
			b.add(row{Scenario: sc, Figure: "throughput " + kind, NA: "n/a (import command not built yet)", Unit: "points/s",
				Params: params{Points: points, Receiver: "count"}})
		}
		return nil
	}
	dir := filepath.Join(b.work, "neptune")
	defer os.RemoveAll(dir)

	n1Dir := filepath.Join(dir, "n1")
	t0 := time.Now()
	if _, err := neptunetest.WriteN1Queue(n1Dir, 1, int(points)); err != nil {
		return fmt.Errorf("generate the neptune-client queue: %w", err)
	}
	b.log.Info("generated", "neptune_queue", n1Dir, "points", points, "elapsed", time.Since(t0).Round(time.Millisecond))
	dbPath := filepath.Join(dir, "scale", "run_operations.sqlite3")
	steps := points / neptunetest.MetricsPerRun
	t0 = time.Now()
	if err := neptunetest.WriteScaleDB(dbPath, "bench-run", int(steps), neptunetest.MetricsPerRun); err != nil {
		return fmt.Errorf("generate the neptune-scale db: %w", err)
	}
	b.log.Info("generated", "neptune_scale_db", dbPath, "points", steps*neptunetest.MetricsPerRun, "elapsed", time.Since(t0).Round(time.Millisecond))

	// import requires a valid configuration, which needs a source; import
	// ignores it.
	unused := []sourceConfig{{Name: "unused", Format: "jsonl", Paths: []string{filepath.Join(dir, "unused", "*.jsonl")}}}
	for _, c := range []struct {
		kind, name, path string
		points           int64
	}{
		{"neptune-client queue", "neptune-n1", n1Dir, points},
		{"neptune-scale db", "neptune-scale", dbPath, steps * neptunetest.MetricsPerRun},
	} {
		o, err := b.runBest(ctx, backfillSpec{scenario: sc, name: c.name, command: "import neptune", mode: mlopfake.ModeCount,
			sources: unused, wantPoints: c.points, wantRuns: 1,
			args: func(cfgPath, stateDir string) []string {
				return []string{"import", "neptune", "-c", cfgPath, "--state-dir", stateDir, "--no-progress", c.path}
			}})
		if err != nil {
			return err
		}
		if !o.ok {
			continue
		}
		p := params{Points: c.points, Files: 1, Receiver: "count", Note: o.note()}
		b.add(row{Scenario: sc, Figure: "throughput " + c.kind, Value: o.PointsPerSec(c.points), Unit: "points/s", Params: p})
		b.add(row{Scenario: sc, Figure: "peak RSS " + c.kind, Value: float64(o.res.MaxRSSKiB) / 1024, Unit: "MiB", Params: p})
	}

	// A neptune-exporter parquet export of 10 M points over 8 runs.
	exPoints := b.scaled(10_000_000, 0.1)
	t0 = time.Now()
	m, err := neptunetest.WriteExport(filepath.Join(dir, "export"), neptunetest.ExportOptions{
		Variant: neptunetest.Export3, Runs: 8, PointsPerRun: int(exPoints / 8), StringValues: -1, Histograms: -1, FileSeries: -1})
	if err != nil {
		return fmt.Errorf("generate the neptune-exporter export: %w", err)
	}
	b.log.Info("generated", "neptune_export", m.DataDir, "points", m.Points(), "elapsed", time.Since(t0).Round(time.Millisecond))
	o, err := b.runBest(ctx, backfillSpec{scenario: sc, name: "neptune-export", command: "import neptune-export", mode: mlopfake.ModeCount,
		sources: unused, wantPoints: int64(m.Points()), wantRuns: int64(len(m.Runs)),
		args: func(cfgPath, stateDir string) []string {
			return []string{"import", "neptune-export", "-c", cfgPath, "--state-dir", stateDir, "--no-progress", "--parallel", "4",
				"--files-dir", m.FilesDir, m.DataDir}
		}})
	if err != nil {
		return err
	}
	if o.ok {
		p := params{Points: int64(m.Points()), Files: int64(len(m.Runs)), Receiver: "count", Note: o.note()}
		b.add(row{Scenario: sc, Figure: "throughput neptune-exporter parquet", Value: o.PointsPerSec(int64(m.Points())), Unit: "points/s",
			Target: atLeast(2_000_000), Params: p})
		b.add(row{Scenario: sc, Figure: "peak RSS neptune-exporter parquet", Value: float64(o.res.MaxRSSKiB) / 1024, Unit: "MiB", Params: p})
	}
	return nil
}
