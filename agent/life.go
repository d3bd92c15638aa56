package agent

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
)

// lifecycle is the agent's own state: failed for good, told to finish,
// aborted, ready. Each field is safe for concurrent use.
type lifecycle struct {
	fatalOnce sync.Once
	fatal     error // set once, before fatalCh closes
	fatalCh   chan struct{}
	aborted   atomic.Bool

	finishing  atomic.Bool
	finishCh   chan struct{} // closed by Finish
	finishOnce sync.Once

	nSources  int
	nReady    atomic.Int64
	readyOnce sync.Once
	onReady   func()
}

func newLifecycle(nSources int, onReady func()) *lifecycle {
	return &lifecycle{fatalCh: make(chan struct{}), finishCh: make(chan struct{}), nSources: nSources, onReady: onReady}
}

// fail stops the agent for good (a refused API key, a URL that is not an
// mlop API).
func (l *lifecycle) fail(err error) {
	l.fatalOnce.Do(func() {
		l.fatal = err
		close(l.fatalCh)
	})
}

// failed returns the fatal error, if any.
func (l *lifecycle) failed() error {
	select {
	case <-l.fatalCh:
		return l.fatal
	default:
		return nil
	}
}

// sourceReady counts n sources as reading; once all are, onReady runs.
func (l *lifecycle) sourceReady(n int) {
	if l.nReady.Add(int64(n)) >= int64(l.nSources) && l.onReady != nil {
		l.readyOnce.Do(l.onReady)
	}
}

// heartbeatWorkers is how many heartbeats are in flight at once. Ten
// thousand open runs need about 333 a second at the default interval.
const heartbeatWorkers = 4

// lifecycleLoop sends heartbeats for active runs and, in follow mode,
// finishes runs that have been idle for their idle timeout; it also
// refreshes the gauges and the runs' config files.
func (a *Agent) lifecycleLoop(ctx context.Context) {
	tick := min(time.Second, a.opts.HeartbeatInterval/2)
	t := time.NewTicker(tick)
	defer t.Stop()
	beats := make(chan *run, 1024)
	var wg sync.WaitGroup
	for i := 0; i < heartbeatWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range beats {
				a.snd.heartbeat(r)
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
	var runs []*run
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
		if a.snd.budget.inUse() == 0 && time.Since(lastFree) >= 10*time.Second {
			metrics.Read(heapFree)
			if heapFree[0].Value.Kind() == metrics.KindUint64 && heapFree[0].Value.Uint64() >= 16<<20 {
				debug.FreeOSMemory()
				lastFree = time.Now()
			}
		}
		now := a.now()
		runs = a.runs.list(runs[:0])
		a.rep.tel.BufferBytes(a.snd.budget.inUse())
		for _, s := range a.srcs {
			if t := s.tailer.Load(); t != nil {
				w, o := t.Stats()
				a.rep.tel.FilesWatched(s.cfg.Name, w)
				a.rep.tel.FilesOpen(s.cfg.Name, o)
			}
		}
		if a.opts.Follow && ticksDone%5 == 0 {
			a.refreshConfigFiles(runs)
		}
		ticksDone++
		nActive := 0
		for _, r := range runs {
			r.mu.Lock()
			active := r.active()
			if active {
				nActive++
			}
			// A heartbeat is due once per interval; lastBeat is set when it
			// is queued, so a run is never queued twice.
			beat := active && now.Sub(r.live.lastBeat) >= a.opts.HeartbeatInterval
			if beat {
				r.live.lastBeat = now
			}
			var jobs []job
			if a.opts.Follow && active && r.live.idleTimeout > 0 && r.mayFinish() && !r.dataPending() &&
				!r.live.lastActivity.IsZero() && now.Sub(r.live.lastActivity) >= r.live.idleTimeout {
				a.log.Info("run idle; marking it completed", "run", r.name, "idle", now.Sub(r.live.lastActivity).Round(time.Second))
				r.ctl.finish, r.ctl.finishAt = event.StatusCompleted, r.live.lastTime
				jobs = a.snd.schedule(r)
			}
			r.mu.Unlock()
			a.snd.jobs.push(jobs...)
			if beat {
				select {
				case beats <- r:
				case <-ctx.Done():
					return
				}
			}
		}
		clear(runs)
		a.rep.tel.RunsActive(nActive)
	}
}
