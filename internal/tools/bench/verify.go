package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// scenarioVerify measures `mlop-agent verify -c FILE` over a 10 M-point
// project (1 M lines x 10 metrics, one run): the data is backfilled into
// the strict stand-in first (not measured), then verify runs as a process
// and the figure is points over its whole life — reading the source again,
// reading every point back through metrics/raw and comparing. The stand-in
// answers from this process, on the same cores.
func (b *bench) scenarioVerify(ctx context.Context) error {
	const sc = "7 verify"
	lines := b.scaled(1_000_000, 0.1)
	points := lines * pointsPerLine
	if !hasCommand(ctx, b.agent, "verify") {
		b.add(row{Scenario: sc, Figure: "throughput", NA: "n/a (verify command not built yet)", Unit: "points/s", Params: params{Points: points}})
		return nil
	}
	path, err := b.backfillFile(lines)
	if err != nil {
		return err
	}
	defer b.dropFiles()
	srv, err := mlopfake.Start(mlopfake.Options{})
	if err != nil {
		return fmt.Errorf("start the stand-in: %w", err)
	}
	defer func() {
		srv.Close()
		srv = nil
		runtime.GC()
		debug.FreeOSMemory()
	}()
	stateDir, logPath, cfgPath := b.nextRun("verify-load")
	for _, d := range []string{filepath.Dir(logPath), filepath.Dir(cfgPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	cfg := agentConfig{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(), StateDir: stateDir, Sources: singleSource(path)}
	if err := cfg.write(cfgPath); err != nil {
		return err
	}
	b.log.Info("agent", "command", "backfill (loading the data to verify)", "want_points", points)
	p, err := startAgent(ctx, b.agent, logPath, "backfill", "-c", cfgPath)
	if err != nil {
		return err
	}
	if res := p.Wait(); res.ExitCode != 0 || srv.Counters().MetricPoints != points {
		b.failAgent(sc, "load", fmt.Sprintf("backfill exited %d with %d of %d points stored", res.ExitCode, srv.Counters().MetricPoints, points), p)
		return nil
	}
	want := fmt.Sprintf("verified 1 run, %d metrics, %s points: 0 missing, 0 different, 0 extra", pointsPerLine, thousands(points))
	var best agentResult
	var bestHarness float64
	var maxRSS int64
	for i := range b.opts.repeat {
		_, logPath, _ := b.nextRun("verify")
		b.log.Info("agent", "command", "verify", "run", i+1, "points", points)
		self0, _ := readProc(os.Getpid())
		p, err := startAgent(ctx, b.agent, logPath, "verify", "-c", cfgPath, "--no-progress")
		if err != nil {
			return err
		}
		res := p.Wait()
		self1, _ := readProc(os.Getpid())
		if ctx.Err() != nil {
			return ctx.Err()
		}
		out, _ := os.ReadFile(logPath)
		if res.ExitCode != 0 || !strings.Contains(string(out), want) {
			b.failAgent(sc, "verify", fmt.Sprintf("verify exited %d; want %q in its output", res.ExitCode, want), p)
			return nil
		}
		b.log.Info("verify exited", "wall", res.Wall.Round(time.Millisecond), "max_rss_mib", res.MaxRSSKiB/1024)
		maxRSS = max(maxRSS, res.MaxRSSKiB)
		if i == 0 || res.Wall < best.Wall {
			best, bestHarness = res, cpuPercent(self0, self1)
		}
	}
	note := fmt.Sprintf("wall=%.2fs verify_cpu=%.0f%% stand-in_cpu=%.0f%%", best.Wall.Seconds(), best.CPUPercent(), bestHarness)
	if b.opts.repeat > 1 {
		note += fmt.Sprintf(" (best of %d)", b.opts.repeat)
	}
	prm := params{Lines: lines, Points: points, Files: 1, Receiver: "strict", Note: note}
	b.add(row{Scenario: sc, Figure: "throughput", Value: float64(points) / best.Wall.Seconds(), Unit: "points/s", Params: prm})
	b.add(row{Scenario: sc, Figure: "peak RSS", Value: float64(maxRSS) / 1024, Unit: "MiB", Params: prm})
	b.add(row{Scenario: sc, Figure: "CPU (whole run)", Value: best.CPUPercent(), Unit: "% of 1 core", Params: prm})
	return nil
}
