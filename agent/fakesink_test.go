package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// fakeSink is a sink.Sink for deterministic tests of the delivery
// guarantee: it builds real mlop batches, stores every row it accepts (the
// raw table, duplicates included), and answers each request as the test's
// script says — acknowledge, fail, accept then fail, refuse a poison row as
// the ingest does, or hold the request until the test lets it go (so
// acknowledgements can arrive in any order).
type fakeSink struct {
	mu         sync.Mutex
	cond       *sync.Cond
	nextID     int64
	runs       map[string]int64 // external id -> run id
	created    []sink.RunSpec
	rows       map[int64]map[sink.Endpoint][]string // stored rows per run and endpoint
	tags       map[int64][]string
	status     map[int64][]string
	sends      []sent // every Send, in arrival order
	held       map[int]chan error
	heldCreate map[string]chan error
	script     func(n int, s sent) action // nil: acknowledge everything
	creates    func(spec sink.RunSpec) action
}

// sent is one Send as the fake saw it.
type sent struct {
	n     int // arrival number, from 0
	runID int64
	ep    sink.Endpoint
	rows  []string
}

// action is what the fake does with a request.
type action int

const (
	ack          action = iota
	fail                // a transient failure; nothing stored
	acceptFail          // stored, the answer lost, and the sink's own retry stores it again and succeeds
	hold                // wait for release(n), then act on its error
	refuseIngest        // like the ingest on a bad line: store the rows before the first containing "POISON", refuse the rest
	refuseAll           // a permanent refusal of the whole request
	storeHold           // stored, then no answer until the agent dies (a crash after the tracker stored it)
)

func newFakeSink() *fakeSink {
	f := &fakeSink{runs: map[string]int64{}, rows: map[int64]map[sink.Endpoint][]string{}, tags: map[int64][]string{},
		status: map[int64][]string{}, held: map[int]chan error{}, heldCreate: map[string]chan error{}, nextID: 100}
	f.cond = sync.NewCond(&f.mu)
	return f
}

var _ sink.Sink = (*fakeSink)(nil)

func (f *fakeSink) Limits() sink.Limits                                { return mlop.ServerLimits }
func (f *fakeSink) Names(ev *event.Event, dst []sink.Name) []sink.Name { return mlop.Names(ev, dst) }
func (f *fakeSink) NewBatch(ep sink.Endpoint, l sink.BatchLimits) sink.Batch {
	return mlop.NewBatch(ep, l)
}
func (f *fakeSink) Login(context.Context) (string, error)                    { return "fake", nil }
func (f *fakeSink) AddNames(context.Context, int64, []sink.Name) error       { return nil }
func (f *fakeSink) MergeConfig(context.Context, int64, map[string]any) error { return nil }
func (f *fakeSink) Heartbeat(context.Context, int64) (string, error)         { return "RUNNING", nil }

var errTransient = errors.New("fake: connection reset")

func (f *fakeSink) CreateRun(_ context.Context, spec sink.RunSpec) (sink.Run, error) {
	if f.creates != nil {
		switch f.creates(spec) {
		case fail:
			return sink.Run{}, errTransient
		case refuseAll:
			return sink.Run{}, fmt.Errorf("%w: fake refuses", sink.ErrRejected)
		case hold:
			f.mu.Lock()
			ch := make(chan error, 1)
			f.heldCreate[spec.ExternalID] = ch
			f.cond.Broadcast()
			f.mu.Unlock()
			if err := <-ch; err != nil {
				return sink.Run{}, err
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, spec)
	if id, ok := f.runs[spec.ExternalID]; ok {
		return sink.Run{ID: id, Resumed: true}, nil
	}
	f.nextID++
	f.runs[spec.ExternalID] = f.nextID
	f.cond.Broadcast()
	return sink.Run{ID: f.nextID}, nil
}

func (f *fakeSink) SetTags(_ context.Context, runID int64, tags []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tags[runID] = append([]string(nil), tags...)
	return nil
}

func (f *fakeSink) SetStatus(_ context.Context, runID int64, status string, _ int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[runID] = append(f.status[runID], status)
	f.cond.Broadcast()
	return nil
}

func (f *fakeSink) Send(ctx context.Context, runID int64, _ string, b sink.Batch) error {
	s := sent{runID: runID, ep: b.Endpoint(), rows: b.Dump()}
	f.mu.Lock()
	s.n = len(f.sends)
	f.sends = append(f.sends, s)
	act := ack
	if f.script != nil {
		act = f.script(s.n, s)
	}
	var wait chan error
	if act == hold {
		wait = make(chan error, 1)
		f.held[s.n] = wait
	}
	if act == storeHold {
		f.store(runID, s.ep, s.rows)
		f.cond.Broadcast()
		f.mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	f.cond.Broadcast()
	f.mu.Unlock()
	if wait != nil {
		select {
		case err := <-wait:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		act = ack
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.cond.Broadcast()
	switch act {
	case fail:
		return errTransient
	case refuseAll:
		return fmt.Errorf("%w: fake refuses", sink.ErrRejected)
	case refuseIngest:
		for i, row := range s.rows {
			if strings.Contains(row, "POISON") {
				f.store(runID, s.ep, s.rows[:i])
				return fmt.Errorf("%w: line %d is bad", sink.ErrRejected, i+1)
			}
		}
	}
	f.store(runID, s.ep, s.rows)
	if act == acceptFail {
		f.store(runID, s.ep, s.rows) // the retry
	}
	return nil
}

// store keeps rows (the caller holds mu).
func (f *fakeSink) store(runID int64, ep sink.Endpoint, rows []string) {
	if f.rows[runID] == nil {
		f.rows[runID] = map[sink.Endpoint][]string{}
	}
	f.rows[runID][ep] = append(f.rows[runID][ep], rows...)
}

// release lets held request n go on with err (nil: acknowledge).
func (f *fakeSink) release(t *testing.T, n int, err error) {
	t.Helper()
	f.waitFor(t, fmt.Sprintf("request %d held", n), func() bool { return f.held[n] != nil })
	f.mu.Lock()
	ch := f.held[n]
	delete(f.held, n)
	f.mu.Unlock()
	ch <- err
}

// releaseCreate lets a held create of ext go on.
func (f *fakeSink) releaseCreate(t *testing.T, ext string) {
	t.Helper()
	f.waitFor(t, "create of "+ext+" held", func() bool { return f.heldCreate[ext] != nil })
	f.mu.Lock()
	ch := f.heldCreate[ext]
	delete(f.heldCreate, ext)
	f.mu.Unlock()
	ch <- nil
}

// waitFor waits until cond (called with mu held) holds; every state change
// of the fake broadcasts, so this never sleeps to synchronise.
func (f *fakeSink) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	done := make(chan struct{})
	timer := time.AfterFunc(30*time.Second, func() {
		f.mu.Lock()
		close(done)
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer timer.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for !cond() {
		select {
		case <-done:
			t.Fatalf("timed out waiting for %s (sends: %d)", what, len(f.sends))
		default:
		}
		f.cond.Wait()
	}
}

// rowsOf returns the stored rows of a run and endpoint.
func (f *fakeSink) rowsOf(ext string, ep sink.Endpoint) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.rows[f.runs[ext]][ep]...)
}

// sendsOf returns the sends to an endpoint so far.
func (f *fakeSink) sendsOf(ep sink.Endpoint) []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sent
	for _, s := range f.sends {
		if s.ep == ep {
			out = append(out, s)
		}
	}
	return out
}
