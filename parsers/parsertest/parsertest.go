// Package parsertest holds checks shared by the parser packages' tests.
package parsertest

import (
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
)

// Series is what a test expects of one metric: how many points, and the
// first and last (step, value).
type Series struct {
	Name      string
	N         int
	FirstStep int64
	First     float64
	LastStep  int64
	Last      float64
}

// SeriesLike is Series or a test package's own type defined on it (type
// want parsertest.Series), which lets tables use short unkeyed literals.
type SeriesLike interface {
	~struct {
		Name      string
		N         int
		FirstStep int64
		First     float64
		LastStep  int64
		Last      float64
	}
}

// CheckMetrics reports every metric in evs that differs from wants, and a
// count of metrics that differs.
func CheckMetrics[S SeriesLike](t testing.TB, evs []event.Event, wants []S) {
	t.Helper()
	got := map[string]*Series{}
	for _, e := range evs {
		for _, p := range e.Points {
			s, ok := got[p.Name]
			if !ok {
				s = &Series{FirstStep: e.Step, First: p.Value}
				got[p.Name] = s
			}
			s.N++
			s.LastStep, s.Last = e.Step, p.Value
		}
	}
	if len(got) != len(wants) {
		t.Errorf("got %d metrics, want %d", len(got), len(wants))
	}
	for _, ws := range wants {
		w := Series(ws)
		g, ok := got[w.Name]
		if !ok {
			t.Errorf("metric %q missing", w.Name)
			continue
		}
		if g.N != w.N || g.FirstStep != w.FirstStep || g.First != w.First || g.LastStep != w.LastStep || g.Last != w.Last {
			t.Errorf("metric %q: got n=%d first=(%d, %v) last=(%d, %v), want n=%d first=(%d, %v) last=(%d, %v)",
				w.Name, g.N, g.FirstStep, g.First, g.LastStep, g.Last, w.N, w.FirstStep, w.First, w.LastStep, w.Last)
		}
	}
}

// ByKind returns the events of kind k, in order.
func ByKind(evs []event.Event, k event.Kind) []event.Event {
	var out []event.Event
	for _, e := range evs {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}
