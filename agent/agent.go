// Package agent wires configuration, sources, parsers, the mlop client and
// the checkpoint store into a running agent. It owns the goroutine tree,
// batching, acknowledgement tracking, checkpoint commits and the shutdown
// order: sources stop first, then buffered data drains to the server, then
// the final checkpoint is written.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/internal/telemetry"
	"github.com/mlop-ai/mlop-agent/sink"
)

// ErrRejected is returned by Run after a backfill in which the server
// permanently rejected data; Stats says what.
var ErrRejected = errors.New("the server rejected some data")

// ErrFailed is returned after a backfill in which some streams could not be
// read (a corrupt database, a missing part file); the others were
// delivered, and the report says which.
var ErrFailed = errors.New("some inputs could not be read")

// ErrIncomplete is returned when a stop left data unsent (the drain timed
// out or was aborted). Nothing is lost: the checkpoint does not cover it,
// and the next run sends it.
var ErrIncomplete = errors.New("stopped before all data was delivered")

// Agent is one configured agent. Create it with New, start it with Run.
type Agent struct {
	opts   Options
	log    *slog.Logger
	tel    *telemetry.Telemetry // nil-safe
	client Client
	store  *checkpoint.Store
	now    func() time.Time
	stats  Stats
	dlq    *deadLetter

	// workCtx governs requests to the server. It outlives Run's context so
	// buffered data can drain after a stop, and ends on Abort or when the
	// drain is over.
	workCtx    context.Context
	cancelWork context.CancelFunc

	jobs   *jobQueue
	linger *lingerList
	budget *budget

	mu        sync.Mutex
	runs      map[string]*runState // by project + "\x00" + external id
	knownRuns map[string]checkpoint.Run
	streams   map[string]*streamState
	loaded    map[string]checkpoint.Stream // checkpointed streams not claimed yet
	waitSave  map[*runState]bool           // runs waiting for a checkpoint save

	saveGen     atomic.Uint64 // generation of the last durable save
	saveStarted atomic.Uint64 // generation of the last save begun
	saveLock    sync.Mutex    // serialises saves
	lastSave    atomic.Int64  // unix ms of the last durable save
	forkWaiters map[string][]*runState
	srcs        []*sourceRT // set by New, never changed
	runsDirty   atomic.Bool // a run's persisted view changed
	forceSave   atomic.Bool // write even if nothing changed (after a failed save)
	loadedEnc   []loadedEntry
	scratch     saveScratch // saveNow's reused lists, under saveLock
	saveReq     chan struct{}
	saveMu      sync.Mutex
	saveCond    *sync.Cond
	fatalOnce   sync.Once
	fatal       error
	fatalCh     chan struct{}
	aborted     atomic.Bool

	notImported notImported // found and not imported, and skipped items; for the report

	failures   failures
	started    time.Time
	drainedAll bool // set by Run: everything read was delivered

	finishing  atomic.Bool
	finishCh   chan struct{}
	finishOnce sync.Once
}

// Finish makes a following agent read every file to its end, deliver
// everything, finish the runs and return nil from Run, as a backfill
// would (a sidecar whose training job is done). Safe from any goroutine.
func (a *Agent) Finish() {
	a.finishOnce.Do(func() {
		a.finishing.Store(true)
		close(a.finishCh)
		for _, s := range a.srcs {
			if t := s.tailer.Load(); t != nil {
				t.Finish()
			}
		}
	})
}

// New prepares an agent: it validates options and opens (and locks) the
// state directory. Nothing runs until Run.
func New(opts Options, client Client) (*Agent, error) {
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
	deadPath := opts.DeadLetterPath
	if opts.DryRun {
		deadPath = ""
	}
	dlq, err := openDeadLetter(deadPath)
	if err != nil {
		store.Close()
		return nil, err
	}
	a := &Agent{
		opts:        opts,
		tel:         opts.Telemetry,
		log:         opts.Logger,
		client:      client,
		store:       store,
		now:         opts.Now,
		dlq:         dlq,
		jobs:        newJobQueue(),
		linger:      newLingerList(),
		budget:      newBudget(opts.BufferBytes),
		runs:        map[string]*runState{},
		knownRuns:   map[string]checkpoint.Run{},
		streams:     map[string]*streamState{},
		loaded:      map[string]checkpoint.Stream{},
		waitSave:    map[*runState]bool{},
		forkWaiters: map[string][]*runState{},
		saveReq:     make(chan struct{}, 1),
		fatalCh:     make(chan struct{}),
		finishCh:    make(chan struct{}),
	}
	a.saveCond = sync.NewCond(&a.saveMu)
	var err2 error
	if a.srcs, err2 = a.buildSources(); err2 != nil {
		if store != nil {
			store.Close()
		}
		dlq.close()
		return nil, err2
	}
	return a, nil
}

// Stats returns the agent's counters.
func (a *Agent) Stats() *Stats { return &a.stats }

// Abort makes a running drain give up at once (a second signal). Data not
// yet acknowledged stays uncommitted and is sent by the next run.
func (a *Agent) Abort() {
	a.aborted.Store(true)
	if a.cancelWork != nil {
		a.cancelWork()
	}
}

// fail stops the agent for good (a refused API key).
func (a *Agent) fail(err error) {
	a.fatalOnce.Do(func() {
		a.fatal = err
		close(a.fatalCh)
	})
}

// loadedEntry is the encoding of a checkpointed stream not claimed yet.
type loadedEntry struct {
	key string
	enc []byte
}

func runKey(project, externalID string) string { return project + "\x00" + externalID }

// Run runs the agent. In follow mode it reads until ctx ends, then drains
// for at most the shutdown timeout; otherwise it reads every source to its
// end, delivers everything and finishes the runs. It always writes a final
// checkpoint and releases the state directory.
func (a *Agent) Run(ctx context.Context) (err error) {
	if a.store != nil {
		defer a.store.Close()
	}
	defer a.dlq.close()
	if err := a.loadState(); err != nil {
		return err
	}
	if a.opts.OnStateLoaded != nil {
		a.opts.OnStateLoaded()
	}
	a.started = time.Now().UTC()
	if a.opts.Progress != nil {
		stopProgress := make(chan struct{})
		progressDone := make(chan struct{})
		go func() { defer close(progressDone); a.progressLoop(stopProgress) }()
		defer func() { close(stopProgress); <-progressDone }()
	}
	a.tel.BufferLimit(a.opts.BufferBytes)
	a.tel.SetLagFunc(a.lags)
	defer a.tel.SetLagFunc(nil)
	srcs := a.srcs

	a.workCtx, a.cancelWork = context.WithCancel(context.WithoutCancel(ctx))
	defer a.cancelWork()
	if a.aborted.Load() {
		a.cancelWork()
	}

	var workers sync.WaitGroup
	for i := 0; i < a.opts.MaxInFlight; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			a.worker()
		}()
	}
	bgCtx, stopBg := context.WithCancel(a.workCtx)
	var bg sync.WaitGroup
	bg.Add(4)
	go func() { defer bg.Done(); a.login(bgCtx) }()
	go func() { defer bg.Done(); a.lingerLoop(bgCtx) }()
	go func() { defer bg.Done(); a.checkpointLoop(bgCtx) }()
	go func() { defer bg.Done(); a.lifecycleLoop(bgCtx) }()

	// Sources read under readCtx: it ends with ctx (a stop) or a fatal error.
	readCtx, stopRead := context.WithCancel(ctx)
	go func() {
		select {
		case <-a.fatalCh:
			stopRead()
		case <-readCtx.Done():
		}
	}()
	readErr := a.runSources(readCtx, srcs)
	stopRead()

	// Drain: cut every partial batch and wait for the server to take
	// everything, or for the timeout in follow mode. A finishing sidecar
	// waits as long as it takes, unless it is told to stop.
	finishing := a.finishing.Load()
	drainCtx := a.workCtx
	if finishing {
		go func() {
			select {
			case <-ctx.Done():
			case <-a.workCtx.Done():
				return
			}
			select {
			case <-time.After(a.opts.ShutdownTimeout):
				a.cancelWork()
			case <-a.workCtx.Done():
			}
		}()
	} else if a.opts.Follow {
		var cancel context.CancelFunc
		drainCtx, cancel = context.WithTimeout(a.workCtx, a.opts.ShutdownTimeout)
		defer cancel()
		if readErr == nil || errors.Is(readErr, context.Canceled) {
			a.log.Info("stopping: delivering buffered data", "timeout", a.opts.ShutdownTimeout)
		}
	}
	drained := a.drain(drainCtx, (!a.opts.Follow || finishing) && readErr == nil)
	a.drainedAll = drained

	a.cancelWork()
	a.jobs.close()
	workers.Wait()
	stopBg()
	bg.Wait()
	if serr := a.saveNow(); serr != nil {
		a.log.Error("final checkpoint not written", "error", serr)
		if err == nil {
			err = serr
		}
	}
	if a.fatal != nil {
		return a.fatal
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return readErr
	}
	if !drained {
		return ErrIncomplete
	}
	if (!a.opts.Follow || finishing) && a.stats.LinesRejected.Load() > 0 {
		return ErrRejected
	}
	a.failures.mu.Lock()
	nFailures := len(a.failures.list)
	a.failures.mu.Unlock()
	if !a.opts.Follow && (a.stats.StreamsFailed.Load() > 0 || nFailures > 0) {
		return ErrFailed
	}
	if !a.opts.Follow && errors.Is(readErr, context.Canceled) {
		return ErrIncomplete
	}
	return err
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
		a.finishTouched()
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
		case <-a.fatalCh:
			return false
		case <-t.C:
		}
	}
}

func (a *Agent) idle() bool {
	runs, streams := a.runList(), a.streamList()
	for _, r := range runs {
		r.mu.Lock()
		busy := r.broken == nil && r.busy()
		r.mu.Unlock()
		if busy {
			return false
		}
	}
	for _, s := range streams {
		s.advance()
		if !s.idle() {
			return false
		}
	}
	return true
}

// flushAll cuts every partial batch.
func (a *Agent) flushAll() {
	runs := a.runList()
	for _, r := range runs {
		r.mu.Lock()
		for k := kind(0); k < nKinds; k++ {
			a.cut(r, k)
		}
		jobs := a.schedule(r)
		r.mu.Unlock()
		a.jobs.push(jobs...)
	}
}

// finishTouched asks every run that received data in this process to
// finish, at the end of a backfill.
func (a *Agent) finishTouched() {
	runs := a.runList()
	for _, r := range runs {
		r.mu.Lock()
		if r.touched && r.finished == "" && r.finish == "" && r.broken == nil {
			r.finish, r.finishAt = event.StatusCompleted, r.lastTime
		}
		jobs := a.schedule(r)
		r.mu.Unlock()
		a.jobs.push(jobs...)
	}
	a.finishUntouched()
}

// finishUntouched finishes the runs of the streams read in this backfill
// that got no new data but are still running on the server as far as the
// agent knows (a run command shipped everything, then a backfill closes
// the runs).
func (a *Agent) finishUntouched() {
	a.mu.Lock()
	var refs []checkpoint.RunRef
	for _, s := range a.streams {
		refs = append(refs, s.runRefs()...)
	}
	a.mu.Unlock()
	for _, ref := range refs {
		k := runKey(ref.Project, ref.ExternalID)
		a.mu.Lock()
		r, inMem := a.runs[k]
		known, isKnown := a.knownRuns[k]
		if !inMem && isKnown && known.RunID > 0 && known.Status == event.StatusRunning {
			r = &runState{key: known.ExternalID, project: known.Project, source: known.Source, name: known.Name,
				runID: known.RunID, url: known.URL, created: true, tags: known.Tags, lastTime: known.LastTime,
				createdAt: known.CreatedAt, names: map[string]int64{}, touched: true}
			a.runs[k] = r
			inMem = true
		}
		a.mu.Unlock()
		if !inMem {
			continue
		}
		r.mu.Lock()
		if r.created && r.finished == "" && r.finish == "" && r.broken == nil {
			r.finish, r.finishAt = event.StatusCompleted, r.lastTime
		}
		jobs := a.schedule(r)
		r.mu.Unlock()
		a.jobs.push(jobs...)
	}
}

// runList returns the runs known now; the caller locks each as needed.
func (a *Agent) runList() []*runState {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*runState, 0, len(a.runs))
	for _, r := range a.runs {
		out = append(out, r)
	}
	return out
}

// streamList returns the streams known now.
func (a *Agent) streamList() []*streamState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.streamListLocked()
}

// streamListLocked is streamList with a.mu held.
func (a *Agent) streamListLocked() []*streamState {
	out := make([]*streamState, 0, len(a.streams))
	for _, s := range a.streams {
		out = append(out, s)
	}
	return out
}

// loadState reads the checkpoint.
func (a *Agent) loadState() error {
	st, err := checkpoint.Read(a.opts.StateDir)
	if err != nil {
		return err
	}
	for _, s := range st.Streams {
		a.loaded[s.Key] = s
	}
	for _, r := range st.Runs {
		a.knownRuns[runKey(r.Project, r.ExternalID)] = r
	}
	return nil
}

func (a *Agent) unauthorized(err error) {
	a.fail(fmt.Errorf("the server refused the API key: %w", err))
}

func isFatal(err error) bool { return errors.Is(err, sink.ErrUnauthorized) }
