package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestReadyTracker(t *testing.T) {
	errConn := errors.New("dial tcp 10.0.0.1:443: connection refused (key=secret-abc)")
	type step func(r *ReadyTracker, clk *fakeClock, oldest *time.Time)
	loaded := func(r *ReadyTracker, _ *fakeClock, _ *time.Time) { r.StateLoaded() }
	ok := func(r *ReadyTracker, c *fakeClock, _ *time.Time) { r.ServerOK(c.Now()) }
	fail := func(r *ReadyTracker, c *fakeClock, _ *time.Time) { r.ServerError(errConn, c.Now()) }
	wait := func(d time.Duration) step {
		return func(_ *ReadyTracker, c *fakeClock, _ *time.Time) { c.Advance(d) }
	}
	pendingSince := func(ago time.Duration) step {
		return func(_ *ReadyTracker, c *fakeClock, o *time.Time) { *o = c.Now().Add(-ago) }
	}
	tests := []struct {
		name       string
		steps      []step
		wantReady  bool
		wantReason string // a substring of the reason
	}{
		{"nothing yet", nil, false, "state not loaded"},
		{"loaded, no contact", []step{loaded}, false, "no successful request"},
		{"server ok before state", []step{ok}, false, "state not loaded"},
		{"loaded and ok", []step{loaded, ok}, true, "ok"},
		{"idle for an hour after ok", []step{loaded, ok, wait(time.Hour)}, true, "ok"},
		{"never answered", []step{loaded, fail, wait(10 * time.Second)}, false, "not answered yet (failing for 10s)"},
		{"one failure is tolerated", []step{loaded, ok, wait(time.Second), fail}, true, "ok"},
		{"failing just under the threshold", []step{loaded, ok, wait(time.Second), fail, wait(59 * time.Second), fail}, true, "ok"},
		{"failing for the threshold", []step{loaded, ok, wait(time.Second), fail, wait(60 * time.Second), fail}, false, "failing for 1m0s"},
		{"recovers on success", []step{loaded, ok, wait(time.Second), fail, wait(2 * time.Minute), ok}, true, "ok"},
		{"unauthorized", []step{loaded, ok, func(r *ReadyTracker, _ *fakeClock, _ *time.Time) { r.Unauthorized() }}, false, "refused the API key"},
		{"unauthorized cleared by a success", []step{loaded, ok, func(r *ReadyTracker, _ *fakeClock, _ *time.Time) { r.Unauthorized() }, ok}, true, "ok"},
		{"cancellation is not a failure", []step{loaded, ok, func(r *ReadyTracker, c *fakeClock, _ *time.Time) {
			r.ServerError(fmt.Errorf("post: %w", context.Canceled), c.Now())
		}, wait(10 * time.Minute)}, true, "ok"},
		{"late failure report does not undo a newer success", []step{loaded, ok, wait(time.Second), ok,
			func(r *ReadyTracker, c *fakeClock, _ *time.Time) {
				r.ServerError(errConn, c.Now().Add(-500*time.Millisecond))
			},
			wait(2 * time.Minute)}, true, "ok"},
		{"late success report does not end a newer streak", []step{loaded, ok, wait(10 * time.Second), fail,
			func(r *ReadyTracker, c *fakeClock, _ *time.Time) { r.ServerOK(c.Now().Add(-5 * time.Second)) },
			wait(time.Minute)}, false, "failing for 1m0s"},
		{"pending but young", []step{loaded, ok, pendingSince(4 * time.Minute)}, true, "ok"},
		{"stuck", []step{loaded, ok, pendingSince(5 * time.Minute)}, false, "stuck: data unacknowledged for 5m0s"},
		{"unreachable wins over stuck", []step{loaded, ok, wait(time.Second), fail, wait(2 * time.Minute), pendingSince(10 * time.Minute)}, false, "failing for 2m0s"},
		{"no stuck verdict during a young failure streak", []step{loaded, ok, wait(time.Second), fail, wait(10 * time.Second), pendingSince(10 * time.Minute)}, true, "ok"},
		{"stuck while other requests succeed", []step{loaded, ok, wait(time.Second), fail, wait(time.Second), ok, pendingSince(10 * time.Minute)}, false, "stuck"},
		{"a failure at the same instant as a success is ignored", []step{loaded, ok, fail, wait(2 * time.Minute)}, true, "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(t0)
			var oldest time.Time
			r := NewReadyTracker(ReadyOptions{Now: clk.Now, OldestUnacked: func() time.Time { return oldest }})
			for _, s := range tc.steps {
				s(r, clk, &oldest)
			}
			gotReady, gotReason := r.Ready()
			if gotReady != tc.wantReady || !strings.Contains(gotReason, tc.wantReason) {
				t.Errorf("Ready() = %v, %q; want %v, reason containing %q", gotReady, gotReason, tc.wantReady, tc.wantReason)
			}
			if strings.Contains(gotReason, "secret") || strings.Contains(gotReason, "10.0.0.1") {
				t.Errorf("reason %q carries error text", gotReason)
			}
		})
	}
}

func TestReadyTrackerThresholdsAreConfigurable(t *testing.T) {
	clk := newClock(t0)
	var oldest time.Time
	r := NewReadyTracker(ReadyOptions{Now: clk.Now, UnreachableAfter: 5 * time.Second, StuckAfter: 30 * time.Second,
		OldestUnacked: func() time.Time { return oldest }})
	r.StateLoaded()
	r.ServerOK(clk.Now())
	oldest = clk.Now()
	clk.Advance(30 * time.Second)
	if ok, reason := r.Ready(); ok || !strings.Contains(reason, "stuck") {
		t.Errorf("after StuckAfter: %v %q, want stuck", ok, reason)
	}
	oldest = time.Time{}
	r.ServerError(errors.New("x"), clk.Now())
	clk.Advance(5 * time.Second)
	if ok, reason := r.Ready(); ok || !strings.Contains(reason, "failing for 5s") {
		t.Errorf("after UnreachableAfter: %v %q, want failing", ok, reason)
	}
}

func TestNilReadyTracker(t *testing.T) {
	var r *ReadyTracker
	r.StateLoaded()
	r.ServerOK(t0)
	r.ServerError(errors.New("x"), t0)
	r.Unauthorized()
	if ok, _ := r.Ready(); ok {
		t.Error("nil tracker reports ready")
	}
}
