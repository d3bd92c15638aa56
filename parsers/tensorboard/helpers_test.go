package tensorboard

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/tensorboard/tbtest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// writeEvents writes an events file of records under dir/rel.
func writeEvents(t *testing.T, dir, rel string, records ...[]byte) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := tbtest.WriteFile(p, records...); err != nil {
		t.Fatal(err)
	}
	return p
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// testOpts are stream options for tests: a spool in a temp dir, the
// given params.
func testOpts(t *testing.T, params map[string]string) parsers.Options {
	t.Helper()
	p := map[string]string{ParamSpoolDir: filepath.Join(t.TempDir(), "spool")}
	for k, v := range params {
		p[k] = v
	}
	return parsers.Options{Params: p}
}

// laneRead is what reading one lane gave.
type laneRead struct {
	info     parsers.StreamInfo
	events   []event.Event
	warnings []parsers.Warning
	end      event.Position
	state    []byte
}

// readLogdir discovers path and reads every lane to its current end.
func readLogdir(t *testing.T, f *Format, path string, opts parsers.Options) map[string]*laneRead {
	t.Helper()
	infos, err := f.Discover(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*laneRead{}
	for _, in := range infos {
		out[in.Key] = readLane(t, f, in, event.Position{}, nil, opts)
	}
	return out
}

// readLane opens a lane and calls Next until io.EOF, copying the events
// (the stream reuses its buffers).
func readLane(t *testing.T, f *Format, in parsers.StreamInfo, resume event.Position, state []byte, opts parsers.Options) *laneRead {
	t.Helper()
	st, err := f.Open(in, resume, state, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lr := &laneRead{info: in, end: resume, state: state}
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("Next never reached io.EOF")
		}
		c, err := st.Next(context.Background(), nil)
		lr.events = append(lr.events, copyEvents(c.Events)...)
		if c.End.Less(lr.end) {
			t.Fatalf("position went back: %+v after %+v", c.End, lr.end)
		}
		lr.end = c.End
		if c.State != nil {
			lr.state = c.State
		}
		ws, _ := st.(parsers.Warner).Warnings()
		lr.warnings = append(lr.warnings, ws...)
		if errors.Is(err, io.EOF) {
			return lr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func copyEvents(evs []event.Event) []event.Event {
	out := make([]event.Event, len(evs))
	for i, ev := range evs {
		ev.Points = append([]event.Point(nil), ev.Points...)
		out[i] = ev
	}
	return out
}

// only returns the single lane of a read.
func only(t *testing.T, lanes map[string]*laneRead) *laneRead {
	t.Helper()
	if len(lanes) != 1 {
		keys := make([]string, 0, len(lanes))
		for k := range lanes {
			keys = append(keys, k)
		}
		t.Fatalf("%d lanes, want 1: %v", len(lanes), keys)
	}
	for _, lr := range lanes {
		return lr
	}
	return nil
}

// point is one metric point with its step and time.
type point struct {
	step int64
	time int64
	v    float64
}

// metrics collects the points by name, in order.
func metrics(evs []event.Event) map[string][]point {
	out := map[string][]point{}
	for _, ev := range evs {
		if ev.Kind != event.KindMetrics {
			continue
		}
		for _, p := range ev.Points {
			out[p.Name] = append(out[p.Name], point{ev.Step, ev.Time, p.Value})
		}
	}
	return out
}

func ofKind(evs []event.Event, k event.Kind) []event.Event {
	var out []event.Event
	for _, ev := range evs {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// reasons counts warnings by reason.
func reasons(ws []parsers.Warning) map[string]int {
	out := map[string]int{}
	for _, w := range ws {
		out[w.Reason]++
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// mergeConfig deep-merges the config events, as the server does.
func mergeConfig(evs []event.Event) map[string]any {
	out := map[string]any{}
	for _, ev := range evs {
		if ev.Kind == event.KindConfig {
			for k, v := range ev.Config {
				out[k] = v
			}
		}
	}
	return out
}

var contextBG = context.Background()

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

func testOptsB(b *testing.B) parsers.Options {
	return parsers.Options{Params: map[string]string{ParamSpoolDir: filepath.Join(b.TempDir(), "spool")}}
}
