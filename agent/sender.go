package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mlop-ai/mlop-agent/agent/ledger"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
)

// sender owns what goes out: the job queue, the linger list, the memory
// budget and the worker pool, and the rules of what a run may send when
// (schedule): metric batches several at a time, other rows one batch at a
// time behind the durability barrier, control operations in order. It calls
// the sink; it never reads inputs and never writes the checkpoint (it asks
// the saver for a save and waits on the ledger).
type sender struct {
	sink   sink.Sink
	ledger *ledger.Ledger
	runs   *runTable
	rep    *reporter
	log    *slog.Logger
	now    func() time.Time

	limits      sink.BatchLimits
	maxInFlight int
	requestSave func() uint64 // asks for a checkpoint save; returns its generation
	fatal       func(error)   // stops the agent for good (a refused key)
	stopping    func() bool   // the agent is stopping or failed

	jobs   *jobQueue
	linger *lingerList
	budget *budget

	// ctx governs requests. It outlives Run's context so buffered data can
	// drain after a stop, and ends on Abort or when the drain is over. Set
	// before the workers start.
	ctx context.Context
}

// Retry pauses.
const (
	controlRetryPause = time.Second // a control operation that failed transiently
	dataRetryPause    = time.Second // a run's data after a routing fault outlived the attempts
)

// maxMetricBatchesInFlight is per run: ordering matters per metric and step
// only, so several may fly.
const maxMetricBatchesInFlight = 4

// worker runs jobs until the queue closes.
func (s *sender) worker() {
	for {
		j, ok := s.jobs.pop()
		if !ok {
			return
		}
		switch {
		case s.ctx.Err() != nil:
			s.abandon(j)
		case j.wake:
			r := j.run
			r.mu.Lock()
			r.out.awaitingSave = false
			jobs := s.schedule(r)
			r.mu.Unlock()
			s.jobs.push(jobs...)
		case j.b == nil:
			s.control(j.run)
		default:
			s.send(j.run, j.b)
		}
	}
}

// abandon drops a job at shutdown without acknowledging it: its chunks stay
// uncommitted, so the next run sends it again.
func (s *sender) abandon(j job) {
	r := j.run
	r.mu.Lock()
	switch {
	case j.wake:
	case j.b == nil:
		r.ctl.busy = false
	default:
		r.out.inflight[j.b.ep]--
	}
	r.mu.Unlock()
}

// reschedule pushes whatever of a run can go now.
func (s *sender) reschedule(r *run) {
	r.mu.Lock()
	jobs := s.schedule(r)
	r.mu.Unlock()
	s.jobs.push(jobs...)
}

// schedule decides what of a run can be sent now and returns the jobs.
// Called with r.mu held; the caller pushes the jobs after unlocking.
func (s *sender) schedule(r *run) []job {
	var jobs []job
	if r.srv.broken != nil {
		s.dropAll(r)
		return nil
	}
	if !r.ctl.busy && s.needControl(r) {
		r.ctl.busy = true
		jobs = append(jobs, job{run: r})
	}
	if !r.srv.created || r.out.paused {
		return jobs
	}
	for ep := range sink.NumEndpoints {
		for len(r.out.queue[ep]) > 0 {
			b := r.out.queue[ep][0]
			if b.nameGen > r.ctl.regGen {
				break // its names are being registered
			}
			if ep.Idempotent() {
				if r.out.inflight[ep] >= maxMetricBatchesInFlight {
					break
				}
			} else if r.out.inflight[ep] > 0 {
				break
			}
			// What the tracker acknowledged must be durably checkpointed
			// before more is sent, so a crash re-sends little
			// (docs/design.md §2).
			if r.out.barrier > 0 && !s.ledger.Durable(r.out.barrier) {
				s.awaitSave(r)
				break
			}
			r.out.queue[ep][0] = nil
			r.out.queue[ep] = r.out.queue[ep][1:]
			r.out.inflight[ep]++
			jobs = append(jobs, job{run: r, b: b})
		}
	}
	return jobs
}

// awaitSave parks a run until its barrier's save is durable: a wake-up job
// is queued then (never a call under the run's lock). Called with r.mu
// held.
func (s *sender) awaitSave(r *run) {
	if r.out.awaitingSave {
		return
	}
	r.out.awaitingSave = true
	gen := r.out.barrier
	s.requestSave()
	s.ledger.OnDurable(gen, func() {
		// May run at once, on this goroutine, with r.mu held: only queue.
		s.jobs.push(job{run: r, wake: true})
	})
}

// needControl reports whether the run has control work. Called with r.mu
// held.
func (s *sender) needControl(r *run) bool {
	c := &r.ctl
	if !r.srv.created {
		return r.live.touched && !c.waitParent
	}
	if len(c.unreg) > 0 || c.tagsDirty || len(c.cfgDelta) > 0 {
		return true
	}
	return c.finish != "" && !r.dataPending()
}

// dropAll discards everything of a run the tracker refused to create. Its
// data is dead-lettered and counted; its chunks are released so the
// checkpoint moves on. Called with r.mu held.
func (s *sender) dropAll(r *run) {
	for ep := range sink.NumEndpoints {
		if b := r.out.open[ep]; b != nil {
			r.out.open[ep] = nil
			s.reject(r, b, r.srv.broken)
		}
		for _, b := range r.out.queue[ep] {
			s.reject(r, b, r.srv.broken)
		}
		r.out.queue[ep] = nil
	}
	c := &r.ctl
	c.tagRefs.Release()
	c.cfgRefs.Release()
	c.finishRefs.Release()
	c.tagRefs, c.cfgRefs, c.finishRefs = nil, nil, nil
	c.tagsDirty, c.cfgDelta, c.unreg, c.finish = false, nil, nil, ""
}

// reject gives up on a batch: its rows go to the dead-letter file, are
// counted, and stop holding the checkpoint back.
func (s *sender) reject(r *run, b *batch, err error) {
	s.rep.refused(r, b.ep, b.b.Dump(), err, "server rejected data; it is dead-lettered and skipped")
	s.complete(b)
}

// complete releases what a finished batch held.
func (s *sender) complete(b *batch) {
	if b.parent != nil {
		b.b.Release()
		if b.parent.children.Add(-1) == 0 {
			s.complete(b.parent)
		}
		return
	}
	b.refs.Release()
	s.budget.release(b.charged)
	b.b.Release()
}

// send delivers one batch.
func (s *sender) send(r *run, b *batch) {
	r.mu.Lock()
	runID, project := r.srv.id, r.project
	r.mu.Unlock()
	err := s.sink.Send(s.ctx, runID, project, b.b)
	s.rep.stats.Requests.Add(1)

	r.mu.Lock()
	r.out.inflight[b.ep]--
	switch {
	case err == nil:
		rows, points := b.b.Rows(), b.b.Points()
		s.rep.stats.LinesSent[b.ep].Add(int64(rows))
		s.rep.stats.PointsSent.Add(int64(points))
		s.rep.tel.LinesSent(endpointOf(b.ep), rows)
		s.rep.tel.PointsSent(points)
		s.rep.tel.BatchSize(endpointOf(b.ep), rows, b.b.Bytes())
		if !b.ep.Idempotent() {
			for _, m := range b.marks {
				m.s.MarkSent(r.key, m.m)
			}
		}
		// Non-metric rows: the next batch waits until this one is recorded
		// as sent (one batch of duplicates at most after a crash). Metrics:
		// while the run is catching up (more batches queued), likewise, so
		// a crash re-sends little; while it keeps up with a live writer,
		// progress is saved every checkpoint interval instead of after each
		// small batch, which keeps fsyncs off a training machine's disk.
		if !b.ep.Idempotent() || len(r.out.queue[b.ep]) > 0 {
			r.out.barrier = s.requestSave()
		}
		s.complete(b)
	case errors.Is(err, sink.ErrUnauthorized):
		s.fatal(fmt.Errorf("the server refused the API key: %w", err))
	case s.ctx.Err() != nil:
		// Stopping: leave it unacknowledged.
	case errors.Is(err, sink.ErrRouting):
		// The request never reached the tracker's service (a proxy's 404,
		// a redirect): a configuration or rollout fault, not a verdict on
		// the data. Keep the batch at the head of its queue and try again
		// after a pause, however many attempts are configured.
		r.out.queue[b.ep] = append([]*batch{b}, r.out.queue[b.ep]...)
		s.pauseData(r)
	case errors.Is(err, sink.ErrRejected) && b.ep == sink.Metrics && b.b.Rows() > 1:
		// The ingest kept the rows before the bad one and refused the
		// rest. Metric rows are idempotent, so halve the batch and send
		// both halves again until the bad row is alone.
		lb, rb := b.b.Split()
		left := &batch{ep: b.ep, b: lb, nameGen: b.nameGen, newest: b.newest, parent: b}
		right := &batch{ep: b.ep, b: rb, nameGen: b.nameGen, newest: b.newest, parent: b}
		b.children.Store(2)
		r.out.queue[b.ep] = append([]*batch{left, right}, r.out.queue[b.ep]...)
	case errors.Is(err, sink.ErrRejected), errors.Is(err, sink.ErrInvalid):
		s.reject(r, b, err)
	default:
		// Transient and out of attempts (only with a retry limit): give up
		// on it, as configured.
		s.rep.refused(r, b.ep, b.b.Dump(), err, "giving up on a batch after the configured attempts")
		s.complete(b)
	}
	jobs := s.schedule(r)
	r.mu.Unlock()
	s.jobs.push(jobs...)
}

// pauseData holds a run's batches back for dataRetryPause, then schedules
// them again. Called with r.mu held.
func (s *sender) pauseData(r *run) {
	if r.out.paused {
		return
	}
	r.out.paused = true
	time.AfterFunc(dataRetryPause, func() {
		r.mu.Lock()
		r.out.paused = false
		var jobs []job
		if s.ctx.Err() == nil {
			jobs = s.schedule(r)
		}
		r.mu.Unlock()
		s.jobs.push(jobs...)
	})
}

// control performs a run's control operations in order: create (or
// resume), log names, config, tags, final status.
func (s *sender) control(r *run) {
	ctx := s.ctx
	r.mu.Lock()
	needCreate := !r.srv.created
	var spec sink.RunSpec
	ok := true
	if needCreate {
		spec, ok = s.createSpec(r)
	}
	if needCreate && !ok {
		r.ctl.busy = false
		r.ctl.waitParent = true
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()

	if needCreate && !s.create(ctx, r, spec) {
		return
	}

	r.mu.Lock()
	c := &r.ctl
	runID := r.srv.id
	unreg, gen := c.unreg, c.nameGen
	c.unreg = nil
	cfg, cfgRefs := c.cfgDelta, c.cfgRefs
	c.cfgDelta, c.cfgRefs = nil, nil
	var tags []string
	tagsDirty, tagRefs := c.tagsDirty, c.tagRefs
	if tagsDirty {
		tags = append([]string(nil), c.tags...)
	}
	c.tagsDirty, c.tagRefs = false, nil
	r.mu.Unlock()

	if len(unreg) > 0 {
		if err := s.sink.AddNames(ctx, runID, unreg); err != nil && !s.permanentControl(r, "register log names", err) {
			s.requeueControl(r, func() { r.ctl.unreg = append(unreg, r.ctl.unreg...) })
			cfgRefs.Release()
			tagRefs.Release()
			return
		}
	}
	r.mu.Lock()
	c.regGen = max(c.regGen, gen)
	r.mu.Unlock()

	if len(cfg) > 0 {
		if err := s.sink.MergeConfig(ctx, runID, cfg); err != nil && !s.permanentControl(r, "update config", err) {
			s.requeueControl(r, func() { r.ctl.cfgDelta = deepMerge(cfg, r.ctl.cfgDelta); r.ctl.cfgRefs.Merge(cfgRefs) })
			tagRefs.Release()
			return
		}
	}
	cfgRefs.Release()
	if tagsDirty {
		if err := s.sink.SetTags(ctx, runID, tags); err != nil && !s.permanentControl(r, "update tags", err) {
			s.requeueControl(r, func() { r.ctl.tagsDirty = true; r.ctl.tagRefs.Merge(tagRefs) })
			return
		}
		r.mu.Lock()
		r.ckDirty = true
		r.mu.Unlock()
	}
	tagRefs.Release()

	r.mu.Lock()
	var finish string
	var finishAt int64
	var finishRefs ledger.Refs
	if c.finish != "" && !r.dataPending() && !c.tagsDirty && len(c.cfgDelta) == 0 && len(c.unreg) == 0 {
		finish, finishAt, finishRefs = c.finish, c.finishAt, c.finishRefs
		c.finish, c.finishRefs = "", nil
		c.finishInFlight = true // nobody arms another finish meanwhile
	}
	r.mu.Unlock()
	if finish != "" {
		if err := s.sink.SetStatus(ctx, runID, finish, finishAt); err != nil && !s.permanentControl(r, "update status", err) {
			s.requeueControl(r, func() {
				r.ctl.finishInFlight = false
				if r.ctl.finish == "" {
					r.ctl.finish, r.ctl.finishAt = finish, finishAt
				}
				r.ctl.finishRefs.Merge(finishRefs)
			})
			return
		}
		finishRefs.Release()
		r.mu.Lock()
		c.finishInFlight = false
		c.finished = finish
		r.ckDirty = true
		name := r.name
		r.mu.Unlock()
		s.rep.stats.RunsFinished.Add(1)
		s.rep.tel.RunFinished(finish)
		s.log.Info("run finished", "run", name, "run_id", runID, "status", finish)
	}

	r.mu.Lock()
	c.busy = false
	jobs := s.schedule(r)
	r.mu.Unlock()
	s.jobs.push(jobs...)
}

// create creates (or finds again) a run on the tracker. It reports whether
// the control sequence goes on.
func (s *sender) create(ctx context.Context, r *run, spec sink.RunSpec) bool {
	created, err := s.sink.CreateRun(ctx, spec)
	if err != nil && spec.ForkOf != 0 && errors.Is(err, sink.ErrRejected) && !errors.Is(err, sink.ErrRouting) {
		// The tracker refused the fork (a fork step beyond what the parent
		// holds, a parent it cannot see). The run and its data matter more
		// than the link: create it unlinked, and keep the link in its
		// config.
		s.log.Warn("the server refused the fork link; creating the run without it (the link is kept in its config)",
			"run", spec.Name, "parent_run_id", spec.ForkOf, "fork_step", spec.ForkStep, "error", err)
		spec.Config = deepMerge(deepMerge(nil, spec.Config), map[string]any{
			"fork": map[string]any{"parent_run_id": spec.ForkOf, "step": spec.ForkStep, "refused": err.Error()}})
		spec.ForkOf, spec.ForkStep = 0, 0
		created, err = s.sink.CreateRun(ctx, spec)
	}
	if err != nil {
		s.createFailed(r, err)
		return false
	}
	r.mu.Lock()
	r.srv.id, r.srv.url, r.srv.created = created.ID, created.URL, true
	r.ckDirty = true
	s.rep.tel.RunCreated(created.Resumed)
	if created.Resumed {
		s.rep.stats.RunsResumed.Add(1)
		if len(r.ctl.tags) > 0 {
			r.ctl.tagsDirty = true // create-time tags are not applied to a resumed run
		}
	} else {
		s.rep.stats.RunsCreated.Add(1)
	}
	r.ctl.cfgInitial = nil
	name := r.name
	r.mu.Unlock()
	s.log.Info("run ready", "run", name, "run_id", created.ID, "resumed", created.Resumed, "url", created.URL)
	// Forks waiting for this run can be created now.
	for _, w := range s.runs.takeForkWaiters(runKey(r.project, r.key)) {
		w.mu.Lock()
		w.ctl.waitParent = false
		jobs := s.schedule(w)
		w.mu.Unlock()
		s.jobs.push(jobs...)
	}
	return true
}

// createSpec builds the create request. It reports false when a fork's
// parent is known but not created yet. Called with r.mu held.
func (s *sender) createSpec(r *run) (sink.RunSpec, bool) {
	spec := sink.RunSpec{
		Name: r.name, Project: r.project, ExternalID: r.key,
		Config: r.ctl.cfgInitial, Tags: append([]string(nil), r.ctl.tags...), CreatedAt: r.createdAt,
		Meta: map[string]any{"source": r.source},
	}
	if r.info.CreatedAt > 0 {
		spec.CreatedAt = r.info.CreatedAt
	}
	if p := r.info.ForkParent; p != "" {
		parentID, state := s.lookupParent(r.project, p)
		switch state {
		case parentReady:
			spec.ForkOf, spec.ForkStep = parentID, r.info.ForkStep
		case parentPending:
			s.runs.addForkWaiter(runKey(r.project, p), r)
			return spec, false
		default:
			// The parent is not part of this import: keep the link in config.
			spec.Config = deepMerge(deepMerge(nil, spec.Config), map[string]any{
				"fork": map[string]any{"parent_external_id": p, "step": r.info.ForkStep}})
		}
	}
	return spec, true
}

// Fork parents.
const (
	parentUnknown = iota
	parentPending
	parentReady
)

// lookupParent finds the tracker id of a fork's parent.
func (s *sender) lookupParent(project, externalID string) (int64, int) {
	p, known, ok, isKnown := s.runs.get(runKey(project, externalID))
	if ok {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.srv.id > 0 && (p.srv.created || p.ctl.finished != "") {
			return p.srv.id, parentReady
		}
		if p.srv.broken != nil {
			return 0, parentUnknown
		}
		return 0, parentPending
	}
	if isKnown && known.RunID > 0 {
		return known.RunID, parentReady
	}
	return 0, parentUnknown
}

// createFailed handles a failed create.
func (s *sender) createFailed(r *run, err error) {
	switch {
	case errors.Is(err, sink.ErrUnauthorized):
		s.fatal(fmt.Errorf("the server refused the API key: %w", err))
	case s.ctx.Err() != nil:
	case errors.Is(err, sink.ErrRejected), errors.Is(err, sink.ErrInvalid):
		r.mu.Lock()
		r.srv.broken = fmt.Errorf("create run: %w", err)
		name := r.name
		r.mu.Unlock()
		who := "the server refused to create the run"
		if errors.Is(err, sink.ErrInvalid) {
			who = "the run cannot be created (the agent would send an invalid request)"
		}
		s.log.Error(who+"; its data is dead-lettered", "run", name, "error", err)
		s.requeueControl(r, nil)
		return
	default:
		s.log.Warn("run not created yet; will retry", "error", err)
		s.retryLater(r)
		return
	}
	r.mu.Lock()
	r.ctl.busy = false
	r.mu.Unlock()
}

// permanentControl reports whether a control error is permanent (and
// reports it), so the operation is skipped rather than retried.
func (s *sender) permanentControl(r *run, op string, err error) bool {
	switch {
	case errors.Is(err, sink.ErrUnauthorized):
		s.fatal(fmt.Errorf("the server refused the API key: %w", err))
		return false
	case s.ctx.Err() != nil:
		return false
	case errors.Is(err, sink.ErrRejected), errors.Is(err, sink.ErrInvalid):
		s.rep.refusedOp(r, op, err)
		return true
	default:
		return false
	}
}

// requeueControl puts back control work that did not complete and
// reschedules the run, after a pause unless the agent is stopping.
func (s *sender) requeueControl(r *run, restore func()) {
	r.mu.Lock()
	if restore != nil {
		restore()
	}
	r.ctl.busy = false
	stopping := s.ctx.Err() != nil || s.stopping()
	var jobs []job
	if !stopping && r.srv.broken != nil {
		jobs = s.schedule(r)
	}
	broken := r.srv.broken != nil
	r.mu.Unlock()
	s.jobs.push(jobs...)
	if !stopping && !broken {
		s.retryLater(r)
	}
}

// retryLater reschedules a run's control work after a pause.
func (s *sender) retryLater(r *run) {
	r.mu.Lock()
	r.ctl.busy = false
	r.mu.Unlock()
	time.AfterFunc(controlRetryPause, func() {
		if s.ctx.Err() != nil {
			return
		}
		s.reschedule(r)
	})
}

// heartbeat calls the tracker's heartbeat for a run.
func (s *sender) heartbeat(r *run) {
	r.mu.Lock()
	runID, name := r.srv.id, r.name
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	status, err := s.sink.Heartbeat(ctx, runID)
	if err != nil {
		if errors.Is(err, sink.ErrUnauthorized) {
			s.fatal(fmt.Errorf("the server refused the API key: %w", err))
			return
		}
		s.log.Debug("heartbeat failed", "run", name, "error", err)
		return
	}
	if status == event.StatusCancelled {
		r.mu.Lock()
		first := !r.live.cancelled
		r.live.cancelled = true
		r.mu.Unlock()
		if first {
			s.log.Warn("the run was cancelled in the UI; the agent keeps shipping its data but cannot stop the training job", "run", name, "run_id", runID)
		}
	}
}

// flushRun cuts a run's partial batches and schedules them. Called with
// r.mu held.
func (s *sender) flushRun(r *run) []job {
	for ep := range sink.NumEndpoints {
		s.cut(r, ep)
	}
	return s.schedule(r)
}

// cut moves the partial batch of an endpoint to the send queue. Called with
// r.mu held.
func (s *sender) cut(r *run, ep sink.Endpoint) {
	b := r.out.open[ep]
	if b == nil {
		return
	}
	r.out.open[ep] = nil
	r.out.queue[ep] = append(r.out.queue[ep], b)
}

// openBatch returns the run's partial batch of an endpoint, starting one if
// needed. Called with r.mu held.
func (s *sender) openBatch(r *run, ep sink.Endpoint, now time.Time) *batch {
	if b := r.out.open[ep]; b != nil {
		return b
	}
	b := &batch{ep: ep, b: s.sink.NewBatch(ep, s.limits)}
	// The budget bounds memory, so it counts the buffer, not only the
	// bytes in it: ten thousand runs with one row each hold ten thousand
	// buffers.
	b.charged = int64(b.b.Cap())
	s.budget.charge(b.charged)
	r.out.open[ep] = b
	if !r.out.lingered {
		r.out.lingered = true
		s.linger.add(r, now)
	}
	return b
}

// account charges a row to the budget, takes a reference on its chunk, and
// cuts the batch when it is full. Called with r.mu held.
func (s *sender) account(r *run, b *batch, c *ledger.Chunk, t int64) {
	if n := int64(b.b.Cap()); n > b.charged {
		s.budget.charge(n - b.charged) // the body grew into a larger buffer
		b.charged = n
	}
	b.refs.Add(c)
	b.newest = max(b.newest, t)
	b.nameGen = r.ctl.nameGen
	if b.b.Full() {
		s.cut(r, b.ep)
	}
}

// lingerLoop cuts partial batches that have waited the linger time.
func (s *sender) lingerLoop(ctx context.Context, linger time.Duration) {
	// Batches due within slack of each other are cut together, so a busy
	// agent wakes once per slack, not once per batch.
	slack := linger / 4
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		item, ok := s.linger.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.linger.wake:
				continue
			}
		}
		if wait := item.since.Add(linger).Sub(s.now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		due := s.now().Add(slack - linger)
		for {
			item, ok := s.linger.next()
			if !ok || item.since.After(due) {
				break
			}
			s.linger.pop()
			r := item.run
			r.mu.Lock()
			r.out.lingered = false
			jobs := s.flushRun(r)
			r.mu.Unlock()
			s.jobs.push(jobs...)
		}
	}
}
