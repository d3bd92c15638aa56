package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// worker runs jobs until the queue closes.
func (a *Agent) worker() {
	for {
		j, ok := a.jobs.pop()
		if !ok {
			return
		}
		if a.workCtx.Err() != nil {
			a.abandon(j)
			continue
		}
		if j.control {
			a.control(j.run)
		} else {
			a.send(j.run, j.b)
		}
	}
}

// abandon drops a job at shutdown without acknowledging it: its chunks stay
// uncommitted, so the next run sends it again.
func (a *Agent) abandon(j job) {
	r := j.run
	r.mu.Lock()
	if j.control {
		r.controlBusy = false
	} else {
		r.inflight[j.b.kind]--
	}
	r.mu.Unlock()
}

// schedule decides what of a run can be sent now and returns the jobs.
// Called with r.mu held; the caller pushes the jobs after unlocking.
func (a *Agent) schedule(r *runState) []job {
	var jobs []job
	if r.broken != nil {
		a.dropAll(r)
		return nil
	}
	if !r.controlBusy && a.needControl(r) {
		r.controlBusy = true
		jobs = append(jobs, job{run: r, control: true})
	}
	if !r.created || r.dataPaused {
		return jobs
	}
	for k := kind(0); k < nKinds; k++ {
		for len(r.queue[k]) > 0 {
			b := r.queue[k][0]
			if b.nameGen > r.regGen {
				break // its names are being registered
			}
			if k.idempotent() {
				if r.inflight[k] >= maxMetricBatchesInFlight {
					break
				}
			} else if r.inflight[k] > 0 {
				break
			}
			// What the server acknowledged must be durably checkpointed
			// before more is sent, so a crash re-sends little (docs/design.md §2).
			if r.barrier > a.saveGen.Load() {
				a.awaitSave(r)
				break
			}
			r.queue[k][0] = nil
			r.queue[k] = r.queue[k][1:]
			r.inflight[k]++
			jobs = append(jobs, job{run: r, b: b})
		}
	}
	return jobs
}

// needControl reports whether the run has control work. Called with r.mu
// held.
func (a *Agent) needControl(r *runState) bool {
	if !r.created {
		return r.touched && !r.waitParent
	}
	if len(r.unreg) > 0 || r.tagsDirty || len(r.cfgDelta) > 0 {
		return true
	}
	return r.finish != "" && !r.dataPending()
}

// dropAll discards everything of a run the server refused to create. Its
// data is dead-lettered and counted; its chunks are released so the
// checkpoint moves on. Called with r.mu held.
func (a *Agent) dropAll(r *runState) {
	for k := kind(0); k < nKinds; k++ {
		if b := r.open[k]; b != nil {
			r.open[k] = nil
			a.reject(r, b, r.broken)
		}
		for _, b := range r.queue[k] {
			a.reject(r, b, r.broken)
		}
		r.queue[k] = nil
	}
	r.tagRefs.release()
	r.cfgRefs.release()
	r.finishRefs.release()
	r.tagRefs, r.cfgRefs, r.finishRefs = nil, nil, nil
	r.tagsDirty, r.cfgDelta, r.unreg, r.finish = false, nil, nil, ""
}

// reject gives up on a batch: its lines go to the dead-letter file, are
// counted, and stop holding the checkpoint back.
func (a *Agent) reject(r *runState, b *batch, err error) {
	a.stats.reject(max(b.lines, 1), fmt.Sprintf("run %q: %s: %v", r.name, b.kind, err))
	a.tel.LinesRejected(endpointOf(b.kind), max(b.lines, 1))
	if st := statusOf(err); st > 0 {
		a.tel.Failure(endpointOf(b.kind), st)
	}
	if a.dlq != nil {
		a.tel.DeadLettered(max(b.lines, len(b.files)))
	}
	if a.dlq != nil {
		if b.kind == kFiles {
			for _, f := range b.files {
				a.dlq.write(deadLetterEntry{Run: r.key, Kind: b.kind.String(), Reason: "rejected", Error: err.Error(), Path: f.path})
			}
		} else {
			for _, line := range bytes.Split(bytes.TrimSuffix(b.body, []byte("\n")), []byte("\n")) {
				a.dlq.write(deadLetterEntry{Run: r.key, Kind: b.kind.String(), Reason: "rejected", Error: err.Error(), Data: string(line)})
			}
		}
	}
	a.complete(b)
}

// complete releases what a finished batch held.
func (a *Agent) complete(b *batch) {
	if b.parent != nil {
		if b.parent.children.Add(-1) == 0 {
			a.complete(b.parent)
		}
		return
	}
	b.refs.release()
	a.budget.release(b.charged)
	putBody(b.body)
	b.body, b.files = nil, nil
}

// awaitSave parks a run until the next checkpoint save. Called with r.mu
// held.
func (a *Agent) awaitSave(r *runState) {
	a.saveMu.Lock()
	a.waitSave[r] = true
	a.saveMu.Unlock()
	a.requestSave()
}

// send delivers one batch.
func (a *Agent) send(r *runState, b *batch) {
	r.mu.Lock()
	runID, project, name := r.runID, r.project, r.name
	r.mu.Unlock()
	ctx := a.workCtx
	var err error
	switch b.kind {
	case kMetrics:
		err = a.client.SendMetrics(ctx, runID, project, b.body, b.lines)
	case kData:
		err = a.client.SendData(ctx, runID, project, b.body, b.lines)
	case kLogs:
		err = a.client.SendLogs(ctx, runID, project, b.body, b.lines)
	case kFiles:
		err = a.upload(ctx, runID, project, b.files)
	}
	a.stats.Requests.Add(1)

	r.mu.Lock()
	r.inflight[b.kind]--
	switch {
	case err == nil:
		a.stats.LinesSent[b.kind].Add(int64(b.lines))
		a.stats.PointsSent.Add(int64(b.points))
		a.tel.LinesSent(endpointOf(b.kind), b.lines)
		a.tel.PointsSent(b.points)
		a.tel.BatchSize(endpointOf(b.kind), b.lines, len(b.body))
		if !b.kind.idempotent() {
			for _, m := range b.marks {
				m.s.markSent(r.key, m.m)
			}
		}
		// Non-metric rows: the next batch waits until this one is recorded
		// as sent (one batch of duplicates at most after a crash). Metrics:
		// while the run is catching up (more batches queued), likewise, so
		// a crash re-sends little; while it keeps up with a live writer,
		// progress is saved every checkpoint interval instead of after each
		// small batch, which keeps fsyncs off a training machine's disk.
		if !b.kind.idempotent() || len(r.queue[b.kind]) > 0 {
			r.barrier = a.requestSave()
		}
		a.complete(b)
	case isFatal(err):
		a.unauthorized(err)
	case ctx.Err() != nil:
		// Stopping: leave it unacknowledged.
	case errors.Is(err, sink.ErrRouting):
		// The request never reached the server's service (a proxy's 404, a
		// redirect): a configuration or rollout fault, not a verdict on
		// the data. Keep the batch at the head of its queue and try again
		// after a pause, however many attempts are configured.
		r.queue[b.kind] = append([]*batch{b}, r.queue[b.kind]...)
		a.pauseData(r)
	case errors.Is(err, sink.ErrRejected) && b.kind == kMetrics && b.lines > 1:
		// The ingest kept the lines before the bad one and refused the
		// rest. Metric lines are idempotent, so halve the batch and send
		// both halves again until the bad line is alone.
		left, right := splitBatch(b)
		r.queue[kMetrics] = append([]*batch{left, right}, r.queue[kMetrics]...)
	case errors.Is(err, sink.ErrRejected), errors.Is(err, sink.ErrInvalid):
		a.log.Error("server rejected data; it is dead-lettered and skipped",
			"run", name, "kind", b.kind.String(), "lines", b.lines, "error", err)
		a.reject(r, b, err)
	default:
		// Transient and out of attempts (only with a retry limit): give up
		// on it, as configured.
		a.log.Error("giving up on a batch after the configured attempts", "run", name, "kind", b.kind.String(),
			"lines", b.lines, "error", err)
		a.reject(r, b, err)
	}
	jobs := a.schedule(r)
	r.mu.Unlock()
	a.jobs.push(jobs...)
}

// bodies recycles batch buffers. A live batch is often one line; without
// the pool each would allocate a fresh buffer.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

func getBody() []byte { return (*bodies.Get().(*[]byte))[:0] }

// putBody returns a buffer, unless it grew large (those go to the GC so the
// pool does not pin big buffers).
func putBody(b []byte) {
	if b == nil || cap(b) > 1<<20 {
		return
	}
	bodies.Put(&b)
}

// splitBatch halves a metrics batch by lines. The halves share the
// parent's references, released when both are done.
func splitBatch(b *batch) (*batch, *batch) {
	lines := bytes.SplitAfter(b.body, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	mid := len(lines) / 2
	mk := func(ls [][]byte) *batch {
		c := &batch{kind: b.kind, run: b.run, lines: len(ls), nameGen: b.nameGen, newest: b.newest, parent: b}
		for _, l := range ls {
			c.body = append(c.body, l...)
		}
		return c
	}
	b.children.Store(2)
	l, r := mk(lines[:mid]), mk(lines[mid:])
	l.points = b.points / 2
	r.points = b.points - l.points
	return l, r
}

// upload registers files with the run and PUTs their bytes.
func (a *Agent) upload(ctx context.Context, runID int64, project string, files []fileItem) error {
	metas := make([]mlop.FileMeta, 0, len(files))
	for _, f := range files {
		fi, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("%w: file %s: %v", sink.ErrInvalid, f.path, err)
		}
		name := filepath.Base(f.path)
		ext := strings.TrimPrefix(filepath.Ext(name), ".")
		if ext == "" {
			ext = "bin"
		}
		metas = append(metas, mlop.FileMeta{FileName: name, FileType: ext, FileSize: fi.Size(),
			LogName: f.logName, Step: f.step, Time: f.time, Caption: f.caption})
	}
	urls, err := a.client.RequestUploads(ctx, runID, project, metas)
	if err != nil {
		return err
	}
	for i, f := range files {
		url := urls[metas[i].LogName][metas[i].FileName]
		if url == "" {
			return fmt.Errorf("%w: no upload URL for %s", sink.ErrRejected, f.path)
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("%w: %v", sink.ErrInvalid, err)
		}
		ct := mime.TypeByExtension(filepath.Ext(f.path))
		if ct == "" {
			ct = "application/octet-stream"
		}
		err = a.client.PutFile(ctx, url, fh, metas[i].FileSize, ct)
		fh.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// control performs a run's control operations in order: create (or
// resume), log names, config, tags, final status.
func (a *Agent) control(r *runState) {
	ctx := a.workCtx
	r.mu.Lock()
	needCreate := !r.created
	spec, ok := a.createSpec(r)
	if needCreate && !ok {
		r.controlBusy = false
		r.waitParent = true
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()

	if needCreate {
		run, err := a.client.CreateRun(ctx, spec)
		if err != nil && spec.ForkRunID != 0 && errors.Is(err, sink.ErrRejected) && !errors.Is(err, sink.ErrRouting) {
			// The server refused the fork (a fork step beyond what the
			// parent holds, a parent it cannot see). The run and its data
			// matter more than the link: create it unlinked, and keep the
			// link in its config.
			a.log.Warn("the server refused the fork link; creating the run without it (the link is kept in its config)",
				"run", spec.RunName, "parent_run_id", spec.ForkRunID, "fork_step", spec.ForkStep, "error", err)
			spec.Config = deepMerge(deepMerge(nil, spec.Config), map[string]any{
				"fork": map[string]any{"parent_run_id": spec.ForkRunID, "step": spec.ForkStep, "refused": err.Error()}})
			spec.ForkRunID, spec.ForkStep = 0, 0
			run, err = a.client.CreateRun(ctx, spec)
		}
		if err != nil {
			a.controlFailed(r, "create run", err)
			return
		}
		r.mu.Lock()
		r.runID, r.url, r.created = run.ID, run.URL, true
		r.encDirty = true
		a.runsDirty.Store(true)
		a.tel.RunCreated(run.Resumed)
		if run.Resumed {
			a.stats.RunsResumed.Add(1)
			if len(r.tags) > 0 {
				r.tagsDirty = true // create-time tags are not applied to a resumed run
			}
		} else {
			a.stats.RunsCreated.Add(1)
		}
		r.cfgInitial = nil
		name := r.name
		r.mu.Unlock()
		a.log.Info("run ready", "run", name, "run_id", run.ID, "resumed", run.Resumed, "url", run.URL)
		a.forkReady(r)
	}

	r.mu.Lock()
	runID := r.runID
	unreg, gen := r.unreg, r.nameGen
	r.unreg = nil
	cfg, cfgRefs := r.cfgDelta, r.cfgRefs
	r.cfgDelta, r.cfgRefs = nil, nil
	var tags []string
	tagsDirty, tagRefs := r.tagsDirty, r.tagRefs
	if tagsDirty {
		tags = append([]string(nil), r.tags...)
	}
	r.tagsDirty, r.tagRefs = false, nil
	r.mu.Unlock()

	for logType, names := range unreg {
		if err := a.client.AddLogNames(ctx, runID, logType, names); err != nil {
			if !a.permanentControl(r, "register log names", err) {
				a.requeueControl(r, func() {
					if r.unreg == nil {
						r.unreg = map[string][]string{}
					}
					for lt, ns := range unreg {
						r.unreg[lt] = append(r.unreg[lt], ns...)
					}
				})
				cfgRefs.release()
				tagRefs.release()
				return
			}
		}
	}
	r.mu.Lock()
	if gen > r.regGen {
		r.regGen = gen
	}
	r.mu.Unlock()

	if len(cfg) > 0 {
		if err := a.client.UpdateConfig(ctx, runID, cfg); err != nil && !a.permanentControl(r, "update config", err) {
			a.requeueControl(r, func() { r.cfgDelta = deepMerge(cfg, r.cfgDelta); r.cfgRefs.merge(cfgRefs) })
			tagRefs.release()
			return
		}
	}
	cfgRefs.release()
	if tagsDirty {
		if err := a.client.UpdateTags(ctx, runID, tags); err != nil && !a.permanentControl(r, "update tags", err) {
			a.requeueControl(r, func() { r.tagsDirty = true; r.tagRefs.merge(tagRefs) })
			return
		}
		r.mu.Lock()
		r.encDirty = true
		r.mu.Unlock()
		a.runsDirty.Store(true)
	}
	tagRefs.release()

	r.mu.Lock()
	var finish string
	var finishAt int64
	var finishRefs refs
	if r.finish != "" && !r.dataPending() && !r.tagsDirty && len(r.cfgDelta) == 0 && len(r.unreg) == 0 {
		finish, finishAt, finishRefs = r.finish, r.finishAt, r.finishRefs
		r.finish, r.finishRefs = "", nil
		r.finishInFlight = true // nobody arms another finish meanwhile
	}
	r.mu.Unlock()
	if finish != "" {
		if err := a.client.UpdateStatus(ctx, runID, finish, finishAt); err != nil && !a.permanentControl(r, "update status", err) {
			a.requeueControl(r, func() {
				r.finishInFlight = false
				if r.finish == "" {
					r.finish, r.finishAt = finish, finishAt
				}
				r.finishRefs.merge(finishRefs)
			})
			return
		}
		finishRefs.release()
		r.mu.Lock()
		r.finishInFlight = false
		r.finished = finish
		r.encDirty = true
		a.runsDirty.Store(true)
		name := r.name
		r.mu.Unlock()
		a.stats.RunsFinished.Add(1)
		a.tel.RunFinished(finish)
		a.log.Info("run finished", "run", name, "run_id", runID, "status", finish)
	}

	r.mu.Lock()
	r.controlBusy = false
	jobs := a.schedule(r)
	r.mu.Unlock()
	a.jobs.push(jobs...)
}

// createSpec builds the create request. It reports false when a fork's
// parent is known but not created yet. Called with r.mu held.
func (a *Agent) createSpec(r *runState) (mlop.CreateRun, bool) {
	spec := mlop.CreateRun{
		RunName: r.name, ProjectName: r.project, ExternalID: r.key,
		Config: r.cfgInitial, Tags: append([]string(nil), r.tags...), CreatedAt: r.createdAt,
		SystemMetadata: map[string]any{"source": r.source},
	}
	if r.info.CreatedAt > 0 {
		spec.CreatedAt = r.info.CreatedAt
	}
	if p := r.info.ForkParent; p != "" {
		parentID, state := a.lookupParent(r.project, p)
		switch state {
		case parentReady:
			spec.ForkRunID, spec.ForkStep = parentID, r.info.ForkStep
		case parentPending:
			a.addForkWaiter(r.project, p, r)
			return spec, false
		default:
			// The parent is not part of this import: keep the link in config.
			spec.Config = deepMerge(deepMerge(nil, spec.Config), map[string]any{
				"fork": map[string]any{"parent_external_id": p, "step": r.info.ForkStep}})
		}
	}
	return spec, true
}

// controlFailed handles a failed create.
func (a *Agent) controlFailed(r *runState, op string, err error) {
	switch {
	case isFatal(err):
		a.unauthorized(err)
	case a.workCtx.Err() != nil:
	case errors.Is(err, sink.ErrRejected), errors.Is(err, sink.ErrInvalid):
		r.mu.Lock()
		r.broken = fmt.Errorf("%s: %w", op, err)
		name := r.name
		r.mu.Unlock()
		a.log.Error("the server refused to create the run; its data is dead-lettered", "run", name, "error", err)
		a.requeueControl(r, nil)
		return
	default:
		a.log.Warn("run not created yet; will retry", "error", err)
		a.retryLater(r)
		return
	}
	r.mu.Lock()
	r.controlBusy = false
	r.mu.Unlock()
}

// permanentControl reports whether a control error is permanent (and logs
// it), so the operation is skipped rather than retried.
func (a *Agent) permanentControl(r *runState, op string, err error) bool {
	switch {
	case isFatal(err):
		a.unauthorized(err)
		return false
	case a.workCtx.Err() != nil:
		return false
	case errors.Is(err, sink.ErrRejected), errors.Is(err, sink.ErrInvalid):
		a.log.Error("server refused a run update; skipping it", "op", op, "run", r.name, "error", err)
		a.stats.reject(1, fmt.Sprintf("run %q: %s: %v", r.name, op, err))
		a.dlq.write(deadLetterEntry{Run: r.key, Kind: op, Reason: "rejected", Error: err.Error()})
		return true
	default:
		return false
	}
}

// requeueControl puts back control work that did not complete and
// reschedules the run, after a pause unless the agent is stopping.
func (a *Agent) requeueControl(r *runState, restore func()) {
	r.mu.Lock()
	if restore != nil {
		restore()
	}
	r.controlBusy = false
	stopping := a.workCtx.Err() != nil || a.fatal != nil
	var jobs []job
	if !stopping && r.broken != nil {
		jobs = a.schedule(r)
	}
	r.mu.Unlock()
	a.jobs.push(jobs...)
	if !stopping && r.broken == nil {
		a.retryLater(r)
	}
}

// retryLater reschedules a run's control work after a pause.
func (a *Agent) retryLater(r *runState) {
	r.mu.Lock()
	r.controlBusy = false
	r.mu.Unlock()
	time.AfterFunc(time.Second, func() {
		if a.workCtx.Err() != nil {
			return
		}
		r.mu.Lock()
		jobs := a.schedule(r)
		r.mu.Unlock()
		a.jobs.push(jobs...)
	})
}

// dataRetryPause is how long a run's data waits after a routing fault
// outlived the configured attempts.
const dataRetryPause = time.Second

// pauseData holds a run's batches back for dataRetryPause, then schedules
// them again. Called with r.mu held.
func (a *Agent) pauseData(r *runState) {
	if r.dataPaused {
		return
	}
	r.dataPaused = true
	time.AfterFunc(dataRetryPause, func() {
		r.mu.Lock()
		r.dataPaused = false
		var jobs []job
		if a.workCtx.Err() == nil {
			jobs = a.schedule(r)
		}
		r.mu.Unlock()
		a.jobs.push(jobs...)
	})
}

// heartbeat calls the trigger endpoint for a run.
func (a *Agent) heartbeat(r *runState) {
	r.mu.Lock()
	runID, name := r.runID, r.name
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(a.workCtx, 10*time.Second)
	defer cancel()
	status, err := a.client.Trigger(ctx, runID)
	if err != nil {
		if isFatal(err) {
			a.unauthorized(err)
			return
		}
		a.log.Debug("heartbeat failed", "run", name, "error", err)
		return
	}
	if status == event.StatusCancelled {
		r.mu.Lock()
		first := !r.cancelled
		r.cancelled = true
		r.mu.Unlock()
		if first {
			a.log.Warn("the run was cancelled in the UI; the agent keeps shipping its data but cannot stop the training job", "run", name, "run_id", runID)
		}
	}
}
