package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Readiness defaults (ReadyOptions).
const (
	// DefaultUnreachableAfter is how long the server may keep failing
	// (connection errors, 5xx, 429: every attempt that will be retried)
	// before the agent is reported not ready. One failed attempt does not
	// flip readiness; a server restart of less than this goes unnoticed.
	DefaultUnreachableAfter = 60 * time.Second
	// DefaultStuckAfter is how old the oldest unacknowledged data may get
	// while the server answers before the agent is reported stuck.
	DefaultStuckAfter = 5 * time.Minute
)

// ReadyOptions configure a ReadyTracker.
type ReadyOptions struct {
	// UnreachableAfter: see DefaultUnreachableAfter (used when <= 0).
	UnreachableAfter time.Duration
	// StuckAfter: see DefaultStuckAfter (used when <= 0).
	StuckAfter time.Duration
	// OldestUnacked returns when the oldest data that is read but not yet
	// acknowledged was read (the zero time when nothing is pending). It is
	// called at each probe and must be safe for concurrent use. nil turns
	// the stuck check off.
	OldestUnacked func() time.Time
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ReadyTracker turns what the agent observes into the /readyz answer. The
// agent feeds it; Ready evaluates the policy at probe time. It is safe for
// concurrent use, and a nil *ReadyTracker does nothing and is never ready.
//
// The agent is ready when all of these hold, checked in this order (the
// first that fails is the reason given):
//
//  1. the checkpoint state is loaded (StateLoaded);
//  2. the server has not refused the API key since it last accepted it
//     (Unauthorized, cleared by ServerOK);
//  3. the server has accepted a request at least once (ServerOK). The agent
//     should make one authenticated call at start so that an idle agent
//     with a good key becomes ready;
//  4. the server is reachable: it has not been failing, without a success
//     in between, for UnreachableAfter (60 s) or longer;
//  5. the agent is not stuck: no data has stayed unacknowledged for
//     StuckAfter (5 min) or longer while the server answers (the latest
//     request outcome was a success). Check 4 covers an unreachable
//     server; this one catches a pipeline that stalls while the server
//     answers (a batch retried forever while other requests succeed, a
//     run that cannot be created, a wedged worker).
//
// An idle agent whose last contact succeeded stays ready: the absence of
// requests is not evidence of a problem.
type ReadyTracker struct {
	unreachableAfter time.Duration
	stuckAfter       time.Duration
	oldest           func() time.Time
	now              func() time.Time

	mu           sync.Mutex
	stateLoaded  bool
	unauthorized bool
	lastOK       time.Time // newest success
	failingSince time.Time // first failure after lastOK; zero when the last outcome was a success
}

// NewReadyTracker returns a tracker with opts' thresholds.
func NewReadyTracker(opts ReadyOptions) *ReadyTracker {
	r := &ReadyTracker{unreachableAfter: opts.UnreachableAfter, stuckAfter: opts.StuckAfter,
		oldest: opts.OldestUnacked, now: opts.Now}
	if r.unreachableAfter <= 0 {
		r.unreachableAfter = DefaultUnreachableAfter
	}
	if r.stuckAfter <= 0 {
		r.stuckAfter = DefaultStuckAfter
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// StateLoaded records that the checkpoint state was read.
func (r *ReadyTracker) StateLoaded() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.stateLoaded = true
	r.mu.Unlock()
}

// ServerOK records that the server accepted a request (with the key) at t.
func (r *ReadyTracker) ServerOK(t time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.After(r.lastOK) {
		r.lastOK = t
	}
	// A failure reported late (an older attempt) does not undo this
	// success; a success older than the failure streak does not end it.
	if !r.failingSince.IsZero() && !t.Before(r.failingSince) {
		r.failingSince = time.Time{}
	}
	r.unauthorized = false
}

// ServerError records a request attempt that failed at t in a way that is
// retried (no answer, 408, 429, 5xx). Permanent rejections of data (4xx)
// mean the server is reachable and are not reported here; a refused key is
// reported with Unauthorized. A cancellation (the agent stopping) is not
// evidence about the server and is ignored. The error itself is not kept:
// nothing of it can reach a probe's answer.
func (r *ReadyTracker) ServerError(err error, t time.Time) {
	if r == nil || errors.Is(err, context.Canceled) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !t.After(r.lastOK) {
		return // a success came after it
	}
	if r.failingSince.IsZero() || t.Before(r.failingSince) {
		r.failingSince = t
	}
}

// Unauthorized records that the server refused the API key.
func (r *ReadyTracker) Unauthorized() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.unauthorized = true
	r.mu.Unlock()
}

// Ready reports whether the agent is ready and, if not, why. Its signature
// is that of Hooks.Ready. The reason is built from fixed text and
// durations only, never from an error or a configuration value.
func (r *ReadyTracker) Ready() (bool, string) {
	if r == nil {
		return false, "readiness is not tracked"
	}
	now := r.now()
	r.mu.Lock()
	stateLoaded, unauthorized, lastOK, failingSince := r.stateLoaded, r.unauthorized, r.lastOK, r.failingSince
	r.mu.Unlock()
	switch {
	case !stateLoaded:
		return false, "checkpoint state not loaded yet"
	case unauthorized:
		return false, "the server refused the API key"
	case lastOK.IsZero():
		if !failingSince.IsZero() {
			return false, fmt.Sprintf("the server has not answered yet (failing for %s)", round(now.Sub(failingSince)))
		}
		return false, "no successful request to the server yet"
	case !failingSince.IsZero() && now.Sub(failingSince) >= r.unreachableAfter:
		return false, fmt.Sprintf("the server has been failing for %s (last success %s ago)",
			round(now.Sub(failingSince)), round(now.Sub(lastOK)))
	}
	// Stuck is judged only while the latest outcome is a success: during
	// a failure streak the data waits for the server, which check 4
	// reports once it lasts.
	if r.oldest != nil && failingSince.IsZero() {
		if o := r.oldest(); !o.IsZero() && now.Sub(o) >= r.stuckAfter {
			return false, fmt.Sprintf("stuck: data unacknowledged for %s while the server answers", round(now.Sub(o)))
		}
	}
	return true, "ok"
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }
