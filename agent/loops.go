package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
)

// lingerLoop cuts partial batches that have waited the linger time.
func (a *Agent) lingerLoop(ctx context.Context) {
	linger := a.opts.Batch.Linger
	// Batches due within slack of each other are cut together, so a busy
	// agent wakes once per slack, not once per batch.
	slack := linger / 4
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
		due := a.now().Add(slack - linger)
		for {
			item, ok := a.linger.next()
			if !ok || item.since.After(due) {
				break
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
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.saveReq:
			if gap := minSaveGap - time.Since(last); gap > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(gap):
				}
			}
		}
		last = time.Now()
		if err := a.saveNow(); err != nil {
			a.log.Error("checkpoint not saved; will retry", "error", err)
		}
	}
}

// keepDone is how long a finished stream's entry is kept, so a rotated file
// that shows up again under a matched name is recognised.
const keepDone = 7 * 24 * time.Hour

// minSaveGap spaces saves requested by acknowledgements: requests that
// arrive meanwhile share the next save. It bounds fsyncs to a few hundred a
// second however fast the server acknowledges.
const minSaveGap = 5 * time.Millisecond

// saveNow writes the checkpoint: every stream's committed position and
// every run's id. Entries that did not change keep their last encoding, and
// when nothing changed nothing is written. Saves are serialised.
func (a *Agent) saveNow() error {
	a.saveLock.Lock()
	defer a.saveLock.Unlock()
	gen := a.saveStarted.Add(1)
	changed := a.runsDirty.Swap(false) || a.forceSave.Swap(false)

	// The lists are reused from save to save: an idle agent with 10,000
	// files saves (or checks for changes) every interval, and should not
	// allocate for it.
	sc := &a.scratch
	defer sc.reset()
	a.mu.Lock()
	for _, r := range a.runs {
		sc.runs = append(sc.runs, r)
	}
	// Streams and the unclaimed checkpoint entries are read together, so a
	// stream claimed meanwhile is in one list or the other.
	for _, s := range a.streams {
		sc.streams = append(sc.streams, s)
	}
	if a.loadedEnc == nil {
		// Checkpointed streams not seen in this process are kept as they
		// were, unless finished long ago.
		for _, s := range a.loaded {
			if s.Done && time.Since(s.Updated) > keepDone {
				continue
			}
			if b, err := json.Marshal(s); err == nil {
				a.loadedEnc = append(a.loadedEnc, loadedEntry{key: s.Key, enc: b})
			}
		}
		if a.loadedEnc == nil {
			a.loadedEnc = []loadedEntry{}
		}
	}
	for _, e := range a.loadedEnc {
		if _, claimed := a.streams[e.key]; !claimed {
			sc.encStreams = append(sc.encStreams, e.enc)
		}
	}
	a.mu.Unlock()

	for _, s := range sc.streams {
		s.advance()
		b, ch, err := s.encoded()
		if err != nil {
			return fmt.Errorf("encode stream %s: %w", s.key, err)
		}
		changed = changed || ch
		sc.encStreams = append(sc.encStreams, b)
	}
	for _, r := range sc.runs {
		r.mu.Lock()
		if r.runID > 0 {
			if r.enc == nil || r.encDirty {
				b, err := json.Marshal(r.checkpointRun())
				if err == nil {
					r.enc, r.encDirty = b, false
					changed = true
				}
			}
			sc.encRuns = append(sc.encRuns, r.enc)
			r.savedIn.Store(gen)
		}
		r.mu.Unlock()
	}
	if changed && a.store != nil {
		a.mu.Lock()
		// Runs known from the checkpoint but not written above (not seen in
		// this process, or not created yet) keep their entry.
		for k, kr := range a.knownRuns {
			if r, ok := a.runs[k]; ok && r.savedIn.Load() == gen {
				continue
			}
			if b, err := json.Marshal(kr); err == nil {
				sc.encRuns = append(sc.encRuns, b)
			}
		}
		a.mu.Unlock()
		start := time.Now()
		if err := a.store.SaveEncoded(sc.encStreams, sc.encRuns); err != nil {
			a.forceSave.Store(true)
			a.tel.CheckpointFailed()
			return err
		}
		a.tel.CheckpointSaved(time.Now(), time.Since(start))
		a.lastSave.Store(a.now().UnixMilli())
	}
	a.saveGen.Store(gen)

	// Wake the runs whose next send waited for this save.
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

// saveScratch holds saveNow's lists between saves (under saveLock).
type saveScratch struct {
	runs                []*runState
	streams             []*streamState
	encStreams, encRuns [][]byte
}

// reset empties the lists, keeping their capacity and dropping the
// references they held.
func (sc *saveScratch) reset() {
	clear(sc.runs)
	clear(sc.streams)
	clear(sc.encStreams)
	clear(sc.encRuns)
	sc.runs, sc.streams = sc.runs[:0], sc.streams[:0]
	sc.encStreams, sc.encRuns = sc.encStreams[:0], sc.encRuns[:0]
}

// heartbeatWorkers is how many heartbeats are in flight at once. Ten
// thousand open runs need about 333 a second at the default interval.
const heartbeatWorkers = 4

// lifecycleLoop sends heartbeats for active runs and, in follow mode,
// finishes runs that have been idle for their idle timeout.
func (a *Agent) lifecycleLoop(ctx context.Context) {
	tick := min(time.Second, a.opts.HeartbeatInterval/2)
	t := time.NewTicker(tick)
	defer t.Stop()
	beats := make(chan *runState, 1024)
	var wg sync.WaitGroup
	for i := 0; i < heartbeatWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range beats {
				a.heartbeat(r)
			}
		}()
	}
	defer func() {
		close(beats)
		wg.Wait()
	}()
	var lastFree time.Time
	ticksDone := 0
	heapFree := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Once a burst (a backlog, a catch-up) is delivered, hand the
		// memory it used back to the system: the Go runtime would
		// otherwise keep it for minutes, and beside a training job the
		// agent's footprint is what people see.
		if a.budget.inUse() == 0 && time.Since(lastFree) >= 10*time.Second {
			metrics.Read(heapFree)
			if heapFree[0].Value.Kind() == metrics.KindUint64 && heapFree[0].Value.Uint64() >= 16<<20 {
				debug.FreeOSMemory()
				lastFree = time.Now()
			}
		}
		now := a.now()
		runs := a.runList()
		a.tel.BufferBytes(a.budget.inUse())
		for _, s := range a.srcs {
			if t := s.tailer.Load(); t != nil {
				w, o := t.Stats()
				a.tel.FilesWatched(s.cfg.Name, w)
				a.tel.FilesOpen(s.cfg.Name, o)
			}
		}
		nActive := 0
		checkConfig := a.opts.Follow && ticksDone%5 == 0
		ticksDone++
		for _, r := range runs {
			r.mu.Lock()
			active := r.created && r.finished == "" && r.broken == nil
			if active {
				nActive++
			}
			if checkConfig && active && a.refreshConfigFiles(r) {
				a.jobs.push(a.schedule(r)...)
			}
			// A heartbeat is due once per interval; lastBeat is set when it
			// is queued, so a run is never queued twice.
			beat := active && now.Sub(r.lastBeat) >= a.opts.HeartbeatInterval
			if beat {
				r.lastBeat = now
			}
			var jobs []job
			if a.opts.Follow && active && r.idleTimeout > 0 && r.mayFinish() && !r.dataPending() &&
				!r.lastActivity.IsZero() && now.Sub(r.lastActivity) >= r.idleTimeout {
				a.log.Info("run idle; marking it completed", "run", r.name, "idle", now.Sub(r.lastActivity).Round(time.Second))
				r.finish, r.finishAt = event.StatusCompleted, r.lastTime
				jobs = a.schedule(r)
			}
			r.mu.Unlock()
			a.jobs.push(jobs...)
			if beat {
				select {
				case beats <- r:
				case <-ctx.Done():
					return
				}
			}
		}
		a.tel.RunsActive(nActive)
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
