package mlopfake

import (
	"time"
)

// The stale-run reaper of the py service (py/python/server.py process_runs,
// run every 60 s by py/main.py). A RUNNING run is marked FAILED:
//   - with heartbeats: when max(last heartbeat, newest metric time,
//     statusUpdated) is older than 150 s;
//   - without: when max(newest metric time, updatedAt) is older than 1800 s.
//
// "Newest metric time" is the client-supplied time, so backfilled old
// timestamps do not keep a run alive.
const (
	staleWithHeartbeat    = 150 * time.Second
	staleWithoutHeartbeat = 1800 * time.Second
)

// ReapStaleRuns applies the stale-run rule as of now and returns the ids of
// the runs it marked FAILED (status event source "stale-monitor"). Tests call
// it with an injected clock; Options.ReapInterval runs it periodically.
func (s *Server) ReapStaleRuns(now time.Time) []int64 {
	type cand struct {
		rn  *run
		key streamKey
	}
	s.mu.Lock()
	var cands []cand
	for _, rn := range s.runOrder {
		if rn.status == "RUNNING" {
			cands = append(cands, cand{rn, streamKey{rn.org.id, rn.project.name, uint64(rn.id)}})
		}
	}
	s.mu.Unlock()

	metricTime := make(map[*run]time.Time, len(cands))
	for _, c := range cands {
		if st := s.streams.lookup(c.key); st != nil {
			st.mu.Lock()
			if st.hasMetric {
				metricTime[c.rn] = time.UnixMilli(int64(st.maxTime))
			}
			st.mu.Unlock()
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var reaped []int64
	for _, c := range cands {
		rn := c.rn
		if rn.status != "RUNNING" {
			continue
		}
		last := metricTime[rn]
		grace := staleWithoutHeartbeat
		if n := len(rn.heartbeats); n > 0 {
			grace = staleWithHeartbeat
			last = latest(last, rn.heartbeats[n-1], rn.statusUpdated)
		} else {
			last = latest(last, rn.updatedAt)
		}
		if now.Sub(last) > grace {
			s.transition(rn, "FAILED", "stale-monitor", nil, false, nil)
			reaped = append(reaped, rn.id)
		}
	}
	return reaped
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// reapLoop runs ReapStaleRuns every interval until stop is closed.
func (s *Server) reapLoop(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if ids := s.ReapStaleRuns(now); len(ids) > 0 {
				s.log.Info("stale runs marked FAILED", "run_ids", ids)
			}
		}
	}
}
