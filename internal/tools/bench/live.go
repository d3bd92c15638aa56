package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// Live scenarios: the agent follows files in `run` mode with default
// settings. Each line carries the time the harness wrote it (t_write_us);
// the harness's own ingest receiver (receiver.go) records when it arrived.

// liveEnv is a running agent in `run` mode with its receivers.
type liveEnv struct {
	fake *mlopfake.Server // count mode: backend and py
	rec  *latencyReceiver // ingest
	proc *agentProc
}

func (e *liveEnv) close() {
	if e.proc != nil {
		e.proc.Stop(30 * time.Second)
	}
	if e.rec != nil {
		e.rec.Close()
	}
	if e.fake != nil {
		e.fake.Close()
	}
}

// startLive starts the receivers and the agent following glob.
func (b *bench) startLive(ctx context.Context, name, glob string) (*liveEnv, error) {
	e := &liveEnv{}
	var err error
	if e.fake, err = mlopfake.Start(mlopfake.Options{Mode: mlopfake.ModeCount}); err != nil {
		return nil, fmt.Errorf("start the stand-in: %w", err)
	}
	if e.rec, err = startLatencyReceiver(); err != nil {
		e.close()
		return nil, fmt.Errorf("start the latency receiver: %w", err)
	}
	stateDir, logPath, cfgPath := b.nextRun(name)
	for _, d := range []string{filepath.Dir(logPath), filepath.Dir(cfgPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			e.close()
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	cfg := agentConfig{APIURL: e.fake.APIURL(), IngestURL: e.rec.URL(), PyURL: e.fake.PyURL(), StateDir: stateDir, Sources: singleSource(glob)}
	if err := cfg.write(cfgPath); err != nil {
		e.close()
		return nil, err
	}
	b.log.Info("agent", "command", "run", "run", name)
	if e.proc, err = startAgent(ctx, b.agent, logPath, "run", "-c", cfgPath); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// waitLines waits until the receiver has n metric lines, the agent exits,
// or timeout; it reports whether n arrived.
func (e *liveEnv) waitLines(ctx context.Context, n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	// Polling is fine here: the harness is not under test and 10 ms is far
	// below the figures it reports (latencies come from the receiver's own
	// timestamps, not from this loop).
	for e.rec.Lines() < n {
		if time.Now().After(deadline) || e.proc.Exited() || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// sleepCtx sleeps d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// createLiveFiles creates files with one live line each (step 0) and
// returns them open for appending, with the next step of each.
func createLiveFiles(paths []string, pool *valuePool) ([]*os.File, []int64, error) {
	fs := make([]*os.File, 0, len(paths))
	steps := make([]int64, len(paths))
	var buf []byte
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			closeAll(fs)
			return nil, nil, fmt.Errorf("create %s: %w", filepath.Dir(p), err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
		if err != nil {
			closeAll(fs)
			return nil, nil, fmt.Errorf("create %s: %w", p, err)
		}
		fs = append(fs, f)
		buf = pool.appendLiveLine(buf[:0], 0, time.Now().UnixMicro())
		if _, err := f.Write(buf); err != nil {
			closeAll(fs)
			return nil, nil, fmt.Errorf("write %s: %w", p, err)
		}
	}
	for i := range steps {
		steps[i] = 1
	}
	return fs, steps, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// pacedWriter appends live lines round-robin to files at a fixed total
// rate, each line with one write(2) so the agent never sees half a line.
// Its goroutine is owned by the writer: Stop ends it and waits.
type pacedWriter struct {
	stop chan struct{} // closed by Stop
	done chan struct{} // closed when the goroutine returns
	once sync.Once

	written int64 // lines written; read only after done
	err     error // first write error; read only after done
}

func startPacedWriter(files []*os.File, steps []int64, perSecond float64, pool *valuePool) *pacedWriter {
	w := &pacedWriter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		start := time.Now()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		var buf []byte
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
			// Catch up by elapsed time, so a late tick does not lower the
			// rate.
			due := int64(time.Since(start).Seconds() * perSecond)
			for ; w.written < due; w.written++ {
				i := int(w.written % int64(len(files)))
				buf = pool.appendLiveLine(buf[:0], steps[i], time.Now().UnixMicro())
				steps[i]++
				if _, err := files[i].Write(buf); err != nil {
					w.err = fmt.Errorf("append to %s: %w", files[i].Name(), err)
					return
				}
			}
		}
	}()
	return w
}

// Stop ends writing and returns the lines written. Idempotent.
func (w *pacedWriter) Stop() (int64, error) {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return w.written, w.err
}

func (b *bench) scenarioLive(ctx context.Context) error {
	const sc = "3 live"
	const files = 100
	const rate = 1000.0
	warmup, window := 5*time.Second, 30*time.Second
	if b.opts.quick {
		warmup, window = 2*time.Second, 5*time.Second
	}
	dir := filepath.Join(b.work, "live")
	defer os.RemoveAll(dir)
	paths := make([]string, files)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("r%03d.jsonl", i))
	}
	fs, steps, err := createLiveFiles(paths, b.pool)
	if err != nil {
		return err
	}
	defer closeAll(fs)

	e, err := b.startLive(ctx, "live", filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return err
	}
	defer e.close()
	if !e.waitLines(ctx, files, 60*time.Second) {
		return b.liveFailed(ctx, sc, e, fmt.Sprintf("the first line of each of %d files did not arrive within 60 s (got %d)", files, e.rec.Lines()))
	}

	w := startPacedWriter(fs, steps, rate, b.pool)
	if err := sleepCtx(ctx, warmup); err != nil {
		w.Stop()
		return err
	}
	s0, err0 := readProc(e.proc.Pid())
	if err := sleepCtx(ctx, window); err != nil {
		w.Stop()
		return err
	}
	s1, err1 := readProc(e.proc.Pid())
	written, werr := w.Stop()
	if werr != nil {
		return werr
	}
	if err0 != nil || err1 != nil {
		return b.liveFailed(ctx, sc, e, fmt.Sprintf("the agent is gone during the window (/proc: %v %v)", err0, err1))
	}
	want := files + written
	if !e.waitLines(ctx, want, 30*time.Second) {
		return b.liveFailed(ctx, sc, e, fmt.Sprintf("%d of %d lines arrived within 30 s of the last write", e.rec.Lines(), want))
	}
	res := e.proc.Stop(60 * time.Second)
	if res.ExitCode != 0 {
		return b.liveFailed(ctx, sc, e, fmt.Sprintf("agent run exited %d after SIGTERM", res.ExitCode))
	}

	samples := e.rec.Samples(s0.At.UnixMicro(), s1.At.UnixMicro())
	ms := make([]float64, len(samples))
	for i, s := range samples {
		ms[i] = s.LatencyMS()
	}
	sum := summarize(ms)
	p := params{Lines: int64(sum.N), Points: int64(sum.N) * livePointsPerLine, Files: files, Receiver: "count+latency",
		Note: fmt.Sprintf("%.0f lines/s, window %s after %s warm-up; delivered %d/%d", rate, window, warmup, e.rec.Lines(), want)}
	b.add(row{Scenario: sc, Figure: "latency p50", Value: sum.P50, Unit: "ms", Target: lessThan(20), Params: p})
	b.add(row{Scenario: sc, Figure: "latency p99", Value: sum.P99, Unit: "ms", Target: lessThan(100), Params: p})
	b.add(row{Scenario: sc, Figure: "latency max", Value: sum.Max, Unit: "ms", Params: p})
	b.add(row{Scenario: sc, Figure: "CPU (steady window)", Value: cpuPercent(s0, s1), Unit: "% of 1 core", Target: lessThan(5), Params: p})
	b.add(row{Scenario: sc, Figure: "RSS (end of window)", Value: float64(s1.RSSKiB) / 1024, Unit: "MiB", Params: p})
	return nil
}

// liveFailed records a functional failure of a live scenario with the
// agent's log.
func (b *bench) liveFailed(ctx context.Context, sc string, e *liveEnv, msg string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	early := e.proc.Exited()
	res := e.proc.Stop(30 * time.Second)
	if early {
		msg += fmt.Sprintf("; the agent had exited by itself with code %d", res.ExitCode)
	} else {
		msg += fmt.Sprintf("; agent exit code after SIGTERM: %d", res.ExitCode)
	}
	b.failAgent(sc, "", msg, e.proc)
	return nil
}

func (b *bench) scenarioIdle(ctx context.Context) error {
	const sc = "4 idle"
	nFiles := 10_000
	const dirs = 100
	settle, window, appends := 5*time.Second, 25*time.Second, 10
	if b.opts.quick {
		nFiles, settle, window, appends = 1000, 2*time.Second, 5*time.Second, 3
	}
	dir := filepath.Join(b.work, "idle")
	defer os.RemoveAll(dir)
	paths := make([]string, nFiles)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("d%02d", i%dirs), fmt.Sprintf("r%05d.jsonl", i))
	}
	t0 := time.Now()
	fs, steps, err := createLiveFiles(paths, b.pool)
	if err != nil {
		return err
	}
	closeAll(fs) // appends below reopen one file at a time
	b.log.Info("generated", "dir", dir, "files", nFiles, "elapsed", time.Since(t0).Round(time.Millisecond))

	e, err := b.startLive(ctx, "idle", filepath.Join(dir, "*", "*.jsonl"))
	if err != nil {
		return err
	}
	defer e.close()
	shipStart := time.Now()
	if !e.waitLines(ctx, int64(nFiles), 5*time.Minute) {
		return b.liveFailed(ctx, sc, e, fmt.Sprintf("%d of %d initial lines arrived within 5 min", e.rec.Lines(), nFiles))
	}
	shipped := time.Since(shipStart)
	if err := sleepCtx(ctx, settle); err != nil {
		return err
	}
	s0, err0 := readProc(e.proc.Pid())
	hb0 := e.fake.Counters().Heartbeats
	if err := sleepCtx(ctx, window); err != nil {
		return err
	}
	s1, err1 := readProc(e.proc.Pid())
	hb1 := e.fake.Counters().Heartbeats
	if err0 != nil || err1 != nil {
		return b.liveFailed(ctx, sc, e, fmt.Sprintf("the agent is gone during the window (/proc: %v %v)", err0, err1))
	}
	rssKiB, _ := peakRSS(e.proc.sampler.Samples(), s0.At, s1.At)

	// Then wake one random file at a time and time its delivery.
	rng := rand.New(rand.NewPCG(7, 11))
	appendFrom := time.Now().UnixMicro()
	var buf []byte
	for k := range appends {
		i := rng.IntN(nFiles)
		f, err := os.OpenFile(paths[i], os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", paths[i], err)
		}
		buf = b.pool.appendLiveLine(buf[:0], steps[i], time.Now().UnixMicro())
		steps[i]++
		_, werr := f.Write(buf)
		f.Close()
		if werr != nil {
			return fmt.Errorf("append to %s: %w", paths[i], werr)
		}
		if !e.waitLines(ctx, int64(nFiles+k+1), 30*time.Second) {
			return b.liveFailed(ctx, sc, e, fmt.Sprintf("append %d to %s did not arrive within 30 s", k+1, paths[i]))
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	samples := e.rec.Samples(appendFrom, time.Now().UnixMicro())
	res := e.proc.Stop(60 * time.Second)
	if res.ExitCode != 0 {
		return b.liveFailed(ctx, sc, e, fmt.Sprintf("agent run exited %d after SIGTERM", res.ExitCode))
	}
	ms := make([]float64, len(samples))
	for i, s := range samples {
		ms[i] = s.LatencyMS()
	}
	sum := summarize(ms)
	hbRate := float64(hb1-hb0) / s1.At.Sub(s0.At).Seconds()
	p := params{Files: int64(nFiles), Receiver: "count+latency",
		Note: fmt.Sprintf("window %s, %s after all shipped; heartbeats %.0f/s", window, settle, hbRate)}
	b.add(row{Scenario: sc, Figure: "CPU (idle window)", Value: cpuPercent(s0, s1), Unit: "% of 1 core", Target: lessThan(1), Params: p})
	b.add(row{Scenario: sc, Figure: "RSS (idle window max)", Value: float64(rssKiB) / 1024, Unit: "MiB", Target: lessThan(64), Params: p})
	b.add(row{Scenario: sc, Figure: "initial ship of all files", Value: shipped.Seconds(), Unit: "s",
		Params: params{Files: int64(nFiles), Lines: int64(nFiles), Receiver: "count+latency", Note: "from agent start"}})
	ap := params{Files: int64(nFiles), Lines: int64(sum.N), Receiver: "count+latency",
		Note: fmt.Sprintf("%d appends to random files, one at a time, after the idle window", appends)}
	b.add(row{Scenario: sc, Figure: "append latency p50", Value: sum.P50, Unit: "ms", Target: lessThan(20), Params: ap})
	b.add(row{Scenario: sc, Figure: "append latency max", Value: sum.Max, Unit: "ms", Target: lessThan(100), Params: ap})
	return nil
}
