package mlopfake

import (
	"net/http"
	"slices"
	"sync/atomic"
	"time"
)

type faultKind int

const (
	faultNone faultKind = iota
	faultFail
	faultAcceptThenFail
)

type faultDecision struct {
	kind    faultKind
	status  int
	latency time.Duration
}

// faultState is one immutable Faults setting plus its per-listener request
// counters; SetFaults swaps in a fresh one, which restarts the sequence.
type faultState struct {
	f   Faults
	seq [4]atomic.Uint64 // indexed by serviceIndex
}

func serviceIndex(svc Service) int {
	return slices.Index(AllServices, svc)
}

// SetFaults replaces the fault-injection settings and restarts the decision
// sequence, so the same seed and request order reproduce the same faults.
func (s *Server) SetFaults(f Faults) error {
	f, err := f.normalize()
	if err != nil {
		return err
	}
	s.faults.Store(&faultState{f: f})
	return nil
}

// Faults returns the current fault-injection settings.
func (s *Server) Faults() Faults { return s.faults.Load().f }

func (s *Server) decide(svc Service) faultDecision {
	st := s.faults.Load()
	f := st.f
	if f.FailRate == 0 && f.AcceptThenFailRate == 0 && f.Latency == 0 {
		return faultDecision{}
	}
	if len(f.Services) > 0 && !slices.Contains(f.Services, svc) {
		return faultDecision{}
	}
	idx := serviceIndex(svc)
	n := st.seq[idx].Add(1)
	h := splitmix64(uint64(f.Seed) ^ splitmix64(uint64(idx+1)<<32^n))
	d := faultDecision{latency: f.Latency}
	u := float64(h>>11) / (1 << 53)
	switch {
	case u < f.FailRate:
		d.kind = faultFail
		d.status = []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests}[splitmix64(h)%3]
	case u < f.FailRate+f.AcceptThenFailRate:
		d.kind = faultAcceptThenFail
	}
	return d
}

// splitmix64 is a fast, well-mixed 64-bit hash (Steele et al.).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
