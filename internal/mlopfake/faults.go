package mlopfake

import (
	"fmt"
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

// RoutingFault is what a proxy in front of the server answers instead of
// the server: the answers a client must treat as "did not reach the
// service" (retry, keep the data), never as a verdict on the data.
type RoutingFault int

// The routing faults InjectRouting can play.
const (
	// RoutingHTML404 is an ingress default backend during a rollout: 404
	// with an HTML page.
	RoutingHTML404 RoutingFault = iota + 1
	// RoutingRedirect is a 302 to another host (an http-to-https or login
	// redirect); following it would send the API key there.
	RoutingRedirect
)

// routingFaults counts the requests still to answer with a routing fault,
// per listener.
type routingFaults struct {
	left [4]atomic.Int64
	kind [4]atomic.Int64
}

// InjectRouting makes the next n requests to svc (never the /_standin/
// endpoints) get the routing fault kind instead of reaching the handler.
// Each is logged in Requests with Fault "routing-404" or "redirect".
func (s *Server) InjectRouting(svc Service, n int, kind RoutingFault) {
	i := serviceIndex(svc)
	s.routing.kind[i].Store(int64(kind))
	s.routing.left[i].Store(int64(n))
}

// takeRouting returns the routing fault for this request, if one is due.
func (s *Server) takeRouting(svc Service) RoutingFault {
	i := serviceIndex(svc)
	for {
		n := s.routing.left[i].Load()
		if n <= 0 {
			return 0
		}
		if s.routing.left[i].CompareAndSwap(n, n-1) {
			return RoutingFault(s.routing.kind[i].Load())
		}
	}
}

// writeRouting answers as the proxy would.
func writeRouting(w http.ResponseWriter, r *http.Request, kind RoutingFault) (status int, label string) {
	switch kind {
	case RoutingRedirect:
		w.Header().Set("Location", "http://login.example.invalid/sso?next="+r.URL.Path)
		w.WriteHeader(http.StatusFound)
		return http.StatusFound, "redirect"
	default:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>\n")
		return http.StatusNotFound, "routing-404"
	}
}
