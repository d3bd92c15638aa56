package neptune

import (
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
)

// point is one delivered metric value.
type point struct {
	step  int64
	value float64
	time  int64
}

// summary is what a run looks like to mlop after all its events.
type summary struct {
	run      *event.RunInfo
	runCount int
	metrics  map[string][]point
	config   map[string]any
	tags     map[string]bool
	data     map[string][]event.Event // by name
	logs     []event.Event
	files    map[string][]event.Event
	statuses []string
	lastPos  event.Position
}

func summarize(t testing.TB, evs []event.Event) summary {
	t.Helper()
	s := summary{metrics: map[string][]point{}, config: map[string]any{}, tags: map[string]bool{},
		data: map[string][]event.Event{}, files: map[string][]event.Event{}}
	for i, e := range evs {
		if i > 0 && e.Pos.Less(evs[i-1].Pos) {
			t.Fatalf("event %d: position %v before %v", i, e.Pos, evs[i-1].Pos)
		}
		if i == 0 && e.Kind != event.KindRun {
			t.Fatalf("first event is %v, want run", e.Kind)
		}
		s.lastPos = e.Pos
		switch e.Kind {
		case event.KindRun:
			s.run = e.Info
			s.runCount++
		case event.KindMetrics:
			for _, p := range e.Points {
				s.metrics[p.Name] = append(s.metrics[p.Name], point{e.Step, p.Value, e.Time})
			}
		case event.KindConfig:
			for k, v := range e.Config {
				s.config[k] = v
			}
		case event.KindTags:
			for _, tg := range e.Tags {
				s.tags[tg] = true
			}
			for _, tg := range e.Untags {
				delete(s.tags, tg)
			}
		case event.KindData:
			s.data[e.Name] = append(s.data[e.Name], e)
		case event.KindLog:
			s.logs = append(s.logs, e)
		case event.KindFile:
			s.files[e.Name] = append(s.files[e.Name], e)
		case event.KindStatus:
			s.statuses = append(s.statuses, e.Status)
		}
	}
	return s
}

func (s summary) tagList() []string {
	var out []string
	for tg := range s.tags {
		out = append(out, tg)
	}
	sort.Strings(out)
	return out
}

// decimalMicro parses a manifest step ("149.500000").
func decimalMicro(t testing.TB, s string) int64 {
	t.Helper()
	m, err := mapping.ParseMicro([]byte(s))
	if err != nil {
		t.Fatalf("manifest step %q: %v", s, err)
	}
	return m
}

// mlopStep converts a manifest step under the multiplier.
func mlopStep(t testing.TB, s string, mul int64) int64 {
	t.Helper()
	st, err := mapping.ConvertStep(decimalMicro(t, s), mul)
	if err != nil {
		t.Fatalf("manifest step %q under multiplier %d: %v", s, mul, err)
	}
	return st
}

// wantMultiplier computes, from manifest steps, the smallest power of ten
// that makes all of them integral.
func wantMultiplier(t testing.TB, steps []string) int64 {
	t.Helper()
	var sc mapping.StepScan
	for _, s := range steps {
		sc.Add(decimalMicro(t, s))
	}
	return sc.Multiplier()
}

func num(t testing.TB, v any) float64 {
	t.Helper()
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case int:
		return float64(x)
	}
	t.Fatalf("%v (%T) is not a number", v, v)
	return 0
}

func obj(t testing.TB, v any, path ...string) map[string]any {
	t.Helper()
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("manifest: %s is not an object", strings.Join(path, "."))
		}
		v = m[p]
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("manifest: %s is %T, not an object", strings.Join(path, "."), v)
	}
	return m
}

func list(t testing.TB, v any) []any {
	t.Helper()
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("manifest value %v is not a list", v)
	}
	return l
}

func closeTo(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// checkSeries compares delivered points with a manifest metric entry
// ({count, first_step, last_step, sum_finite, first_value, last_value,
// points: [[step, value], ...]}).
func checkSeries(t testing.TB, name string, got []point, want map[string]any, mul int64) {
	t.Helper()
	if n := int(num(t, want["count"])); len(got) != n {
		t.Errorf("%s: %d points, want %d", name, len(got), n)
		return
	}
	if len(got) == 0 {
		return
	}
	if fs, ok := want["first_step"].(string); ok {
		if w := mlopStep(t, fs, mul); got[0].step != w {
			t.Errorf("%s: first step %d, want %d", name, got[0].step, w)
		}
	}
	if ls, ok := want["last_step"].(string); ok {
		if w := mlopStep(t, ls, mul); got[len(got)-1].step != w {
			t.Errorf("%s: last step %d, want %d", name, got[len(got)-1].step, w)
		}
	}
	if fv, ok := want["first_value"].(float64); ok && got[0].value != fv {
		t.Errorf("%s: first value %v, want %v", name, got[0].value, fv)
	}
	if lv, ok := want["last_value"].(float64); ok && got[len(got)-1].value != lv {
		t.Errorf("%s: last value %v, want %v", name, got[len(got)-1].value, lv)
	}
	if sum, ok := want["sum_finite"].(float64); ok {
		var s float64
		for _, p := range got {
			if !math.IsNaN(p.value) && !math.IsInf(p.value, 0) {
				s += p.value
			}
		}
		if !closeTo(s, sum) {
			t.Errorf("%s: sum %v, want %v", name, s, sum)
		}
	}
	if pts, ok := want["points"].([]any); ok {
		checkPoints(t, name, got, pts, mul)
	}
}

// checkPoints compares every [step, value] pair.
func checkPoints(t testing.TB, name string, got []point, pts []any, mul int64) {
	t.Helper()
	if len(pts) != len(got) {
		t.Errorf("%s: %d points, manifest lists %d", name, len(got), len(pts))
		return
	}
	for i, p := range pts {
		pair := list(t, p)
		step := mlopStep(t, pair[0].(string), mul)
		if got[i].step != step || got[i].value != num(t, pair[1]) {
			t.Errorf("%s[%d] = (step %d, %v), want (%d, %v)", name, i, got[i].step, got[i].value, step, pair[1])
			return
		}
	}
}

// stepsOf collects the decimal steps of manifest point lists.
func stepsOf(t testing.TB, metrics map[string]any) []string {
	var out []string
	for _, v := range metrics {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		pts, _ := m["points"].([]any)
		for _, p := range pts {
			switch x := p.(type) {
			case []any:
				out = append(out, x[0].(string))
			case map[string]any:
				if st, ok := x["step"].(string); ok {
					out = append(out, st)
				}
			}
		}
	}
	return out
}

// checkConfigValue compares a config value with a manifest value of a
// given Neptune type.
func checkConfigValue(t testing.TB, key string, got any, typ string, want any) {
	t.Helper()
	switch typ {
	case "float", "float64", "int", "int64":
		if g, ok := got.(float64); ok {
			if g != num(t, want) {
				t.Errorf("config %s = %v, want %v", key, got, want)
			}
			return
		}
		if g, ok := got.(int64); !ok || float64(g) != num(t, want) {
			t.Errorf("config %s = %v (%T), want %v", key, got, got, want)
		}
	case "bool", "string":
		if got != want {
			t.Errorf("config %s = %#v, want %#v", key, got, want)
		}
	case "string_set":
		g, ok := got.([]string)
		var w []string
		for _, x := range list(t, want) {
			w = append(w, x.(string))
		}
		sort.Strings(w)
		if !ok || strings.Join(g, "\x00") != strings.Join(w, "\x00") {
			t.Errorf("config %s = %#v, want %#v", key, got, w)
		}
	default:
		t.Fatalf("config %s: unknown manifest type %q", key, typ)
	}
}
