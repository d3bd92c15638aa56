package agent

import (
	"context"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
)

// lingerLoop cuts partial batches that have waited the linger time.
func (a *Agent) lingerLoop(ctx context.Context) {
	linger := a.opts.Batch.Linger
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		item, ok := a.linger.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-a.linger.wake:
				continue
			}
		}
		if wait := item.since.Add(linger).Sub(a.now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		a.linger.pop()
		r := item.run
		r.mu.Lock()
		r.lingered = false
		for k := kind(0); k < nKinds; k++ {
			a.cut(r, k)
		}
		jobs := a.schedule(r)
		r.mu.Unlock()
		a.jobs.push(jobs...)
	}
}

// requestSave asks for a checkpoint save and returns the generation of the
// first save that will include everything acknowledged so far.
func (a *Agent) requestSave() uint64 {
	gen := a.saveStarted.Load() + 1
	select {
	case a.saveReq <- struct{}{}:
	default:
	}
	return gen
}

// checkpointLoop saves acknowledged progress every interval and on request.
func (a *Agent) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(a.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.saveReq:
		}
		if err := a.saveNow(); err != nil {
			a.log.Error("checkpoint not saved; will retry", "error", err)
		}
	}
}

// keepDone is how long a finished stream's entry is kept, so a rotated file
// that shows up again under a matched name is recognised.
const keepDone = 7 * 24 * time.Hour

// saveNow writes the checkpoint: every stream's committed position and
// every run's id. Saves are serialised.
func (a *Agent) saveNow() error {
	a.saveLock.Lock()
	defer a.saveLock.Unlock()
	gen := a.saveStarted.Add(1)
	st := &checkpoint.State{}
	a.mu.Lock()
	streams := make([]*streamState, 0, len(a.streams))
	for _, s := range a.streams {
		streams = append(streams, s)
	}
	for _, s := range a.loaded {
		if s.Done && time.Since(s.Updated) > keepDone {
			continue
		}
		st.Streams = append(st.Streams, s)
	}
	runs := make([]*runState, 0, len(a.runs))
	for _, r := range a.runs {
		runs = append(runs, r)
	}
	seen := map[string]bool{}
	a.mu.Unlock()
	for _, s := range streams {
		s.advance()
		st.Streams = append(st.Streams, s.snapshot())
	}
	for _, r := range runs {
		r.mu.Lock()
		if r.runID > 0 {
			st.Runs = append(st.Runs, r.checkpointRun())
			seen[runKey(r.project, r.key)] = true
		}
		r.mu.Unlock()
	}
	a.mu.Lock()
	for k, r := range a.knownRuns {
		if !seen[k] {
			st.Runs = append(st.Runs, r)
		}
	}
	a.mu.Unlock()
	if err := a.store.Save(st); err != nil {
		return err
	}
	a.saveGen.Store(gen)
	a.lastSave.Store(a.now().UnixMilli())

	// Wake the runs whose next non-idempotent send waited for this save.
	a.saveMu.Lock()
	waiting := a.waitSave
	a.waitSave = map[*runState]bool{}
	a.saveMu.Unlock()
	for r := range waiting {
		r.mu.Lock()
		jobs := a.schedule(r)
		r.mu.Unlock()
		a.jobs.push(jobs...)
	}
	return nil
}

// lifecycleLoop sends heartbeats for active runs and, in follow mode,
// finishes runs that have been idle for their idle timeout.
func (a *Agent) lifecycleLoop(ctx context.Context) {
	tick := min(time.Second, a.opts.HeartbeatInterval/2)
	t := time.NewTicker(tick)
	defer t.Stop()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := a.now()
		a.mu.Lock()
		runs := make([]*runState, 0, len(a.runs))
		for _, r := range a.runs {
			runs = append(runs, r)
		}
		a.mu.Unlock()
		for _, r := range runs {
			r.mu.Lock()
			active := r.created && r.finished == "" && r.broken == nil
			beat := active && now.Sub(r.lastBeat) >= a.opts.HeartbeatInterval
			if beat {
				r.lastBeat = now
			}
			var jobs []job
			if a.opts.Follow && active && r.idleTimeout > 0 && r.finish == "" && !r.dataPending() &&
				!r.lastActivity.IsZero() && now.Sub(r.lastActivity) >= r.idleTimeout {
				a.log.Info("run idle; marking it completed", "run", r.name, "idle", now.Sub(r.lastActivity).Round(time.Second))
				r.finish, r.finishAt = event.StatusCompleted, r.lastTime
				jobs = a.schedule(r)
			}
			r.mu.Unlock()
			a.jobs.push(jobs...)
			if beat {
				select {
				case sem <- struct{}{}:
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer func() { <-sem }()
						a.heartbeat(r)
					}()
				default:
					r.mu.Lock()
					r.lastBeat = time.Time{} // try again next tick
					r.mu.Unlock()
				}
			}
		}
	}
}

// Fork parents.
const (
	parentUnknown = iota
	parentPending
	parentReady
)

// lookupParent finds the server id of a fork's parent.
func (a *Agent) lookupParent(project, externalID string) (int64, int) {
	k := runKey(project, externalID)
	a.mu.Lock()
	p, ok := a.runs[k]
	known, isKnown := a.knownRuns[k]
	a.mu.Unlock()
	if ok {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.runID > 0 && (p.created || p.finished != "") {
			return p.runID, parentReady
		}
		if p.broken != nil {
			return 0, parentUnknown
		}
		return 0, parentPending
	}
	if isKnown && known.RunID > 0 {
		return known.RunID, parentReady
	}
	return 0, parentUnknown
}

func (a *Agent) addForkWaiter(project, parent string, r *runState) {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	k := runKey(project, parent)
	a.forkWaiters[k] = append(a.forkWaiters[k], r)
}

// forkReady wakes the runs waiting for this parent.
func (a *Agent) forkReady(parent *runState) {
	a.saveMu.Lock()
	k := runKey(parent.project, parent.key)
	waiters := a.forkWaiters[k]
	delete(a.forkWaiters, k)
	a.saveMu.Unlock()
	for _, r := range waiters {
		r.mu.Lock()
		r.waitParent = false
		jobs := a.schedule(r)
		r.mu.Unlock()
		a.jobs.push(jobs...)
	}
}
