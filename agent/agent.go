// Package agent wires configuration, sources, parsers, a sink and the
// checkpoint into a running agent, and schedules each run's work. It owns
// the goroutine tree and the shutdown order: sources stop first, then
// buffered data drains to the tracker, then the final checkpoint is
// written.
//
// The data path, top to bottom: a source (lines.go: the watcher's line
// files; streams.go: stream formats) reads a chunk and pushes it into the
// delivery ledger (agent/ledger); the parser turns its records into events;
// route.go hands each event to its run (run.go), whose rows go into sink
// batches; the sender (sender.go) sends batches and control operations
// through the sink.Sink and releases the chunk references on
// acknowledgement; the ledger commits contiguously; the saver (saver.go)
// writes what is committed to the checkpoint and tells the ledger it is
// durable, which is the barrier non-idempotent sends wait for.
//
// The agent never encodes a tracker's wire format (the sink does) and
// never decides what is committed (the ledger does). Lock order and owners
// are in docs/design.md §1.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/agent/ledger"
	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
)

// ErrRejected is returned by Run after a backfill in which the tracker
// permanently rejected data; Stats says what.
var ErrRejected = errors.New("the server rejected some data")

// ErrFailed is returned after a backfill in which some inputs could not be
// read (a corrupt database, a missing part file, an unreadable file); the
// others were delivered, and the report says which.
var ErrFailed = errors.New("some inputs were not imported (unreadable, missing or giving nothing; listed above and in the report)")

// ErrIncomplete is returned when a stop left data unsent (the drain timed
// out or was aborted). Nothing is lost: the checkpoint does not cover it,
// and the next run sends it.
var ErrIncomplete = errors.New("stopped before all data was delivered")

// Agent is one configured agent. Create it with New, start it with Run.
type Agent struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	sink   sink.Sink
	limits sink.Limits
	store  *checkpoint.Store // nil in a dry run

	ledger  *ledger.Ledger
	runs    *runTable
	streams streamTable
	snd     *sender
	saver   *saver
	rep     *reporter
	life    *lifecycle
	srcs    []*sourceRT // set by New, never changed

	// cancelWork ends the requests' context (Abort, or the drain is over).
	cancelWork context.CancelFunc
	cancelMu   sync.Mutex
	started    time.Time
	drainedAll bool // set by Run: everything read was delivered
}

// New prepares an agent: it validates options, opens (and locks) the state
// directory and reads the checkpoint. Nothing runs until Run.
func New(opts Options, s sink.Sink) (*Agent, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	var store *checkpoint.Store
	if !opts.DryRun {
		var err error
		if store, err = checkpoint.Open(opts.StateDir); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Agent, error) {
		store.Close()
		return nil, err
	}
	st, err := checkpoint.Read(opts.StateDir)
	if err != nil {
		return fail(err)
	}
	deadPath := opts.DeadLetterPath
	if opts.DryRun {
		deadPath = ""
	}
	dlq, err := openDeadLetter(deadPath, opts.Telemetry)
	if err != nil {
		return fail(err)
	}
	a := &Agent{
		opts: opts, log: opts.Logger, now: opts.Now, sink: s, limits: s.Limits(), store: store,
		ledger: ledger.New(st.Streams, opts.Now),
		runs:   newRunTable(st.Runs),
		rep:    &reporter{log: opts.Logger, tel: opts.Telemetry, stats: &Stats{}, dlq: dlq},
	}
	a.saver = newSaver(a.ledger, a.runs, store, st, opts.Telemetry, opts.Logger, opts.Now)
	a.snd = &sender{sink: s, ledger: a.ledger, runs: a.runs, rep: a.rep, log: opts.Logger, now: opts.Now,
		limits:      sink.BatchLimits{MaxRows: opts.Batch.MaxLines, MaxBytes: opts.Batch.MaxBytes},
		maxInFlight: opts.MaxInFlight, requestSave: a.saver.request,
		jobs: newJobQueue(), linger: newLingerList(), budget: newBudget(opts.BufferBytes)}
	if a.srcs, err = a.buildSources(); err != nil {
		dlq.close()
		return fail(err)
	}
	a.life = newLifecycle(len(a.srcs), opts.OnReady)
	a.snd.fatal = a.life.fail
	a.snd.stopping = func() bool { return a.life.failed() != nil }
	return a, nil
}

// Stats returns the agent's counters.
func (a *Agent) Stats() *Stats { return a.rep.stats }

// Finish makes a following agent read every file to its end, deliver
// everything, finish the runs and return nil from Run, as a backfill
// would (a sidecar whose training job is done). Safe from any goroutine.
func (a *Agent) Finish() {
	a.life.finishOnce.Do(func() {
		a.life.finishing.Store(true)
		close(a.life.finishCh)
		for _, s := range a.srcs {
			if t := s.tailer.Load(); t != nil {
				t.Finish()
			}
		}
	})
}

// Abort makes a running drain give up at once (a second signal). Data not
// yet acknowledged stays uncommitted and is sent by the next run.
func (a *Agent) Abort() {
	a.life.aborted.Store(true)
	a.cancelMu.Lock()
	defer a.cancelMu.Unlock()
	if a.cancelWork != nil {
		a.cancelWork()
	}
}

// Run runs the agent. In follow mode it reads until ctx ends, then drains
// for at most the shutdown timeout; otherwise it reads every source to its
// end, delivers everything and finishes the runs. It always writes a final
// checkpoint and releases the state directory.
func (a *Agent) Run(ctx context.Context) (err error) {
	if a.store != nil {
		defer a.store.Close()
	}
	defer a.rep.dlq.close()
	if a.opts.OnStateLoaded != nil {
		a.opts.OnStateLoaded()
	}
	if !a.opts.Follow || len(a.srcs) == 0 {
		a.life.sourceReady(len(a.srcs))
	}
	a.started = time.Now().UTC()
	if a.opts.Progress != nil {
		stopProgress := make(chan struct{})
		progressDone := make(chan struct{})
		go func() { defer close(progressDone); a.progressLoop(stopProgress) }()
		defer func() { close(stopProgress); <-progressDone }()
	}
	a.rep.tel.BufferLimit(a.opts.BufferBytes)
	a.rep.tel.SetLagFunc(a.lags)
	defer a.rep.tel.SetLagFunc(nil)

	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	a.snd.ctx = workCtx
	a.cancelMu.Lock()
	a.cancelWork = cancelWork
	a.cancelMu.Unlock()
	if a.life.aborted.Load() {
		cancelWork()
	}

	var workers sync.WaitGroup
	for i := 0; i < a.opts.MaxInFlight; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			a.snd.worker()
		}()
	}
	bgCtx, stopBg := context.WithCancel(workCtx)
	var bg sync.WaitGroup
	bg.Add(4)
	go func() { defer bg.Done(); a.login(bgCtx) }()
	go func() { defer bg.Done(); a.snd.lingerLoop(bgCtx, a.opts.Batch.Linger) }()
	go func() { defer bg.Done(); a.saver.loop(bgCtx, a.opts.CheckpointInterval) }()
	go func() { defer bg.Done(); a.lifecycleLoop(bgCtx) }()

	// Sources read under readCtx: it ends with ctx (a stop) or a fatal error.
	readCtx, stopRead := context.WithCancel(ctx)
	go func() {
		select {
		case <-a.life.fatalCh:
			stopRead()
		case <-readCtx.Done():
		}
	}()
	readErr := a.runSources(readCtx)
	stopRead()

	// Drain: cut every partial batch and wait for the tracker to take
	// everything, or for the timeout in follow mode. A finishing sidecar
	// waits as long as it takes, unless it is told to stop.
	finishing := a.life.finishing.Load()
	drainCtx := workCtx
	if finishing {
		go func() {
			select {
			case <-ctx.Done():
			case <-workCtx.Done():
				return
			}
			select {
			case <-time.After(a.opts.ShutdownTimeout):
				cancelWork()
			case <-workCtx.Done():
			}
		}()
	} else if a.opts.Follow {
		var cancel context.CancelFunc
		drainCtx, cancel = context.WithTimeout(workCtx, a.opts.ShutdownTimeout)
		defer cancel()
		if readErr == nil || errors.Is(readErr, context.Canceled) {
			a.log.Info("stopping: delivering buffered data", "timeout", a.opts.ShutdownTimeout)
		}
	}
	drained := a.drain(drainCtx, (!a.opts.Follow || finishing) && readErr == nil)
	a.drainedAll = drained

	cancelWork()
	a.snd.jobs.close()
	workers.Wait()
	stopBg()
	bg.Wait()
	if serr := a.saver.save(); serr != nil {
		a.log.Error("final checkpoint not written", "error", serr)
		if err == nil {
			err = serr
		}
	}
	if fatal := a.life.failed(); fatal != nil {
		return fatal
	}
	nothing := 0
	if !a.opts.Follow && readErr == nil {
		nothing = a.accountNothing()
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return readErr
	}
	if !drained {
		return ErrIncomplete
	}
	if (!a.opts.Follow || finishing) && a.rep.stats.LinesRejected.Load() > 0 {
		return ErrRejected
	}
	if !a.opts.Follow && (a.rep.stats.StreamsFailed.Load() > 0 || len(a.rep.fails.snapshot()) > 0 || nothing > 0) {
		return ErrFailed
	}
	if !a.opts.Follow && errors.Is(readErr, context.Canceled) {
		return ErrIncomplete
	}
	return err
}

// runSources runs every source until ctx ends (follow) or they are read to
// the end (backfill). One source's error stops the others.
func (a *Agent) runSources(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(a.srcs))
	for _, s := range a.srcs {
		go func() {
			var err error
			if s.factory != nil {
				err = s.runLines(ctx)
			} else {
				err = s.runStreams(ctx)
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				err = fmt.Errorf("source %q: %w", s.cfg.Name, err)
				cancel()
			}
			errs <- err
		}()
	}
	var first error
	for range a.srcs {
		if err := <-errs; err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	return first
}

// drain waits until every run has delivered everything; with finish set
// (the end of a backfill) it then finishes the runs. It reports whether
// everything was delivered.
func (a *Agent) drain(ctx context.Context, finish bool) bool {
	a.flushAll()
	if !a.waitIdle(ctx) {
		return false
	}
	if finish {
		a.finishRuns()
		if !a.waitIdle(ctx) {
			return false
		}
	}
	return true
}

// waitIdle waits until no run has pending work and every stream's chunks
// are committed.
func (a *Agent) waitIdle(ctx context.Context) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if a.idle() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-a.life.fatalCh:
			return false
		case <-t.C:
		}
	}
}

func (a *Agent) idle() bool {
	for _, r := range a.runs.list(nil) {
		r.mu.Lock()
		busy := r.srv.broken == nil && r.busy()
		r.mu.Unlock()
		if busy {
			return false
		}
	}
	for _, s := range a.ledger.Streams() {
		if !s.Idle() {
			return false
		}
	}
	return true
}

// flushAll cuts every partial batch.
func (a *Agent) flushAll() {
	for _, r := range a.runs.list(nil) {
		r.mu.Lock()
		jobs := a.snd.flushRun(r)
		r.mu.Unlock()
		a.snd.jobs.push(jobs...)
	}
}

// finishRuns finishes, at the end of a backfill, every run that received
// data in this process, and the runs of the streams read that got no new
// data but are still running on the tracker as far as the agent knows (a
// run command shipped everything, then a backfill closes the runs).
func (a *Agent) finishRuns() {
	for _, r := range a.runs.list(nil) {
		r.mu.Lock()
		if r.live.touched && r.ctl.finished == "" && r.ctl.finish == "" && !r.ctl.finishInFlight && r.srv.broken == nil {
			r.ctl.finish, r.ctl.finishAt = event.StatusCompleted, r.live.lastTime
		}
		jobs := a.snd.schedule(r)
		r.mu.Unlock()
		a.snd.jobs.push(jobs...)
	}
	for _, ls := range a.ledger.Streams() {
		for _, ref := range ls.Runs() {
			k := runKey(ref.Project, ref.ExternalID)
			r, known, inMem, isKnown := a.runs.get(k)
			if !inMem && isKnown && known.RunID > 0 && known.Status == event.StatusRunning {
				r = &run{key: known.ExternalID, project: known.Project, source: known.Source, name: known.Name,
					names: newNameSet(0, a.opts.ReportNames), createdAt: known.CreatedAt}
				r.srv.id, r.srv.url, r.srv.created = known.RunID, known.URL, true
				r.ctl.tags = known.Tags
				r.live.lastTime, r.live.touched = known.LastTime, true
				r = a.runs.add(r)
				inMem = true
			}
			if !inMem {
				continue
			}
			r.mu.Lock()
			if r.mayFinish() {
				r.ctl.finish, r.ctl.finishAt = event.StatusCompleted, r.live.lastTime
			}
			jobs := a.snd.schedule(r)
			r.mu.Unlock()
			a.snd.jobs.push(jobs...)
		}
	}
}

// login checks the API key once at start, so a wrong key stops the agent
// at once with a clear message and readiness has a first answer even when
// there is nothing to send.
func (a *Agent) login(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	org, err := a.sink.Login(ctx)
	switch {
	case err == nil:
		a.log.Debug("API key accepted", "organization", org)
	case errors.Is(err, sink.ErrUnauthorized):
		a.life.fail(fmt.Errorf("the server refused the API key: %w", err))
	case errors.Is(err, sink.ErrRouting):
		// The API URL answers, but not as mlop does (a 404 page, a
		// redirect): nothing sent there can arrive.
		a.life.fail(err)
	case ctx.Err() != nil:
	default:
		a.log.Warn("server not reachable yet; data waits and is sent when it is", "error", err)
	}
}
