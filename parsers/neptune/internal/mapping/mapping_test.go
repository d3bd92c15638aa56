package mapping

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
)

func TestParseMicro(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  error
	}{
		{"0", 0, nil},
		{"3", 3_000_000, nil},
		{"3.0", 3_000_000, nil},
		{"3.5", 3_500_000, nil},
		{"0.000001", 1, nil},
		{"20.000005", 20_000_005, nil},
		{"123456789.25", 123_456_789_250_000, nil},
		{"1e+16", 0, ErrStepOverflow},
		{"1e+12", 1_000_000_000_000_000_000, nil},
		{"2.5e-05", 25, nil},
		{"1E2", 100_000_000, nil},
		{"10.050000000", 10_050_000, nil},
		{"-0.0", 0, nil},
		{"-1", 0, ErrStepNegative},
		{"0.0000001", 0, ErrStepTooFine},
		{"0.3333333333333333", 0, ErrStepTooFine},
		{"", 0, ErrStepSyntax},
		{"-", 0, ErrStepSyntax},
		{"1e", 0, ErrStepSyntax},
		{"1.2.3", 0, ErrStepSyntax},
		{"NaN", 0, ErrStepSyntax},
		{"12345678901234567890", 0, ErrStepOverflow},
		{"1234567890123.0", 1_234_567_890_123_000_000, nil},
		{"12345678901234.0", 0, ErrStepOverflow},
	}
	for _, tc := range tests {
		got, err := ParseMicro([]byte(tc.in))
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParseMicro(%q) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestMicroFromFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want int64
		err  error
	}{
		{0.5, 500_000, nil},
		{0.1, 100_000, nil},
		{1e-6, 1, nil},
		{123456789.25, 123_456_789_250_000, nil},
		{1.0 / 3, 0, ErrStepTooFine},
		{-1, 0, ErrStepNegative},
		{math.NaN(), 0, ErrStepSyntax},
		{1e20, 0, ErrStepOverflow},
	}
	for _, tc := range tests {
		got, err := MicroFromFloat(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("MicroFromFloat(%v) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestStepScanAndConvert(t *testing.T) {
	tests := []struct {
		steps []int64
		mul   int64
	}{
		{nil, 1},
		{[]int64{0, 1_000_000, 5_000_000}, 1},
		{[]int64{0, 500_000}, 10},
		{[]int64{250_000}, 100},
		{[]int64{10_001_000, 3_000_000}, 1000},
		{[]int64{20_000_001}, 1_000_000},
	}
	for _, tc := range tests {
		var sc StepScan
		for _, s := range tc.steps {
			sc.Add(s)
		}
		if got := sc.Multiplier(); got != tc.mul {
			t.Errorf("steps %v: multiplier %d, want %d", tc.steps, got, tc.mul)
		}
		for _, s := range tc.steps {
			got, err := ConvertStep(s, tc.mul)
			if err != nil || got*(MicroPerUnit/tc.mul) != s {
				t.Errorf("ConvertStep(%d, %d) = %d, %v", s, tc.mul, got, err)
			}
		}
	}
	convert := []struct {
		micro, mul, want int64
		err              error
	}{
		{1_500_000, 1, 0, ErrStepNotExact},
		{1_500_000, 2, 3, nil},
		{1_000_000, 3, 3, nil},
		{500_000, 3, 0, ErrStepNotExact},
		{-1, 1, 0, ErrStepNegative},
		{math.MaxInt64, 1_000_000_000, 0, ErrStepOverflow},
	}
	for _, tc := range convert {
		got, err := ConvertStep(tc.micro, tc.mul)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ConvertStep(%d, %d) = %d, %v; want %d, %v", tc.micro, tc.mul, got, err, tc.want, tc.err)
		}
	}
	for micro, want := range map[int64]string{0: "0.000000", 250_000_000: "250.000000", 1: "0.000001", 123_456_789_250_000: "123456789.250000"} {
		if got := FormatMicro(micro); got != want {
			t.Errorf("FormatMicro(%d) = %s, want %s", micro, got, want)
		}
	}
}

func TestConsoleStream(t *testing.T) {
	tests := map[string]string{
		"runtime/stdout":             "INFO",
		"runtime/stderr":             "ERROR",
		"monitoring/stdout":          "INFO",
		"monitoring/1a2b3c4d/stderr": "ERROR",
		"monitoring/a/b/stdout":      "",
		"train/stdout":               "",
		"stdout":                     "",
		"runtime/stdout2":            "",
	}
	for path, want := range tests {
		got, ok := ConsoleStream(path)
		if got != want || ok != (want != "") {
			t.Errorf("ConsoleStream(%s) = %q, %v; want %q", path, got, ok, want)
		}
	}
}

func TestFileType(t *testing.T) {
	tests := []struct{ mime, name, want string }{
		{"image/png", "x.bin", "IMAGE"},
		{"", "/a/b.JPG", "IMAGE"},
		{"text/csv; charset=utf-8", "x", "TEXT"},
		{"application/yaml", "config", "TEXT"},
		{"", "notes.md", "TEXT"},
		{"audio/wav", "", "AUDIO"},
		{"", "clip.mp4", "VIDEO"},
		{"application/octet-stream", "weights.pt", "ARTIFACT"},
		{"", "dir.d/noext", "ARTIFACT"},
	}
	for _, tc := range tests {
		if got := FileType(tc.mime, tc.name); got != tc.want {
			t.Errorf("FileType(%q, %q) = %s, want %s", tc.mime, tc.name, got, tc.want)
		}
	}
}

func TestHistogramJSON(t *testing.T) {
	got := HistogramJSON([]float64{0, 1, 2.5, 10}, []float64{3, 7, 1})
	want := `{"freq":[3,7,1],"bins":[0,1,2.5,10],"shape":"generic","type":"Histogram","v":1,"maxFreq":7}`
	if got != want {
		t.Errorf("HistogramJSON = %s, want %s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Error(err)
	}
}

func newTest(mul int64) *Mapper {
	m := New(State{}, Options{Multiplier: mul, TrackSeries: true})
	m.SetOutput(nil)
	return m
}

// TestMetricsCoalesce: floats of one operation at one step and time share
// an event; a different step or time starts another.
func TestMetricsCoalesce(t *testing.T) {
	m := newTest(1)
	m.Begin(event.Position{Seq: 1}, 1000)
	m.Float("a", At(0), 0, 1)
	m.String("s", At(0), 0, "x")
	m.Float("b", At(0), 0, 2)
	m.Float("c", At(1_000_000), 0, 3)
	m.Float("d", At(1_000_000), 5, 4)
	m.End()
	evs := m.Events()
	var got [][]string
	for _, e := range evs {
		if e.Kind != event.KindMetrics {
			continue
		}
		var names []string
		for _, p := range e.Points {
			names = append(names, p.Name)
		}
		got = append(got, names)
		if e.Pos.Seq != 1 {
			t.Errorf("pos %v", e.Pos)
		}
	}
	if want := [][]string{{"a", "b"}, {"c"}, {"d"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("metric events %v, want %v", got, want)
	}
}

// TestPointsNotReused: returned events keep their points while the mapper
// goes on (the backing arrays are never rewritten).
func TestPointsNotReused(t *testing.T) {
	m := newTest(1)
	var kept []event.Event
	for op := int64(0); op < 3*pointsBlock; op++ {
		m.SetOutput(nil)
		m.Begin(event.Position{Seq: op + 1}, 1)
		for k := 0; k < 3; k++ {
			m.Float("m"+string(rune('a'+k)), At(op*MicroPerUnit), 0, float64(op))
		}
		m.End()
		kept = append(kept, m.Events()...)
	}
	for i, e := range kept {
		if len(e.Points) != 3 || cap(e.Points) != 3 || e.Points[2].Value != float64(i) || e.Points[0].Name != "ma" {
			t.Fatalf("event %d points %v (cap %d)", i, e.Points, cap(e.Points))
		}
	}
}

// TestTagsAndGroupTags: tags and group tags are one mlop tag list; a tag
// leaves it only when neither set holds it.
func TestTagsAndGroupTags(t *testing.T) {
	m := newTest(1)
	step := func(f func()) (add, remove []string, cfg map[string]any) {
		m.SetOutput(nil)
		m.Begin(event.Position{Seq: 1}, 1)
		f()
		m.End()
		for _, e := range m.Events() {
			switch e.Kind {
			case event.KindTags:
				add, remove = e.Tags, e.Untags
			case event.KindConfig:
				cfg = e.Config
			}
		}
		return
	}
	add, _, _ := step(func() { m.SetAdd(PathTags, []string{"a", "b"}) })
	if !reflect.DeepEqual(add, []string{"a", "b"}) {
		t.Errorf("add = %v", add)
	}
	add, _, cfg := step(func() { m.SetAdd(PathGroupTags, []string{"b", "g"}) })
	if !reflect.DeepEqual(add, []string{"g"}) || !reflect.DeepEqual(cfg[KeyGroupTags], []string{"b", "g"}) {
		t.Errorf("group add = %v, config %v", add, cfg)
	}
	_, remove, _ := step(func() { m.SetRemove(PathTags, []string{"b", "a"}) })
	if !reflect.DeepEqual(remove, []string{"a"}) {
		t.Errorf("remove = %v (b is still a group tag)", remove)
	}
	add, remove, _ = step(func() { m.SetAssign(PathTags, []string{"z"}) })
	if !reflect.DeepEqual(add, []string{"z"}) || remove != nil {
		t.Errorf("assign: +%v -%v", add, remove)
	}
	_, remove, _ = step(func() { m.SetClear(PathGroupTags) })
	if !reflect.DeepEqual(remove, []string{"b", "g"}) {
		t.Errorf("clear group: -%v", remove)
	}
	st := m.State()
	if !reflect.DeepEqual(st.Tags, []string{"z"}) || st.GroupTags != nil {
		t.Errorf("state %+v", st)
	}
	// The state survives JSON and restores the sets.
	b, _ := json.Marshal(st)
	var st2 State
	if err := json.Unmarshal(b, &st2); err != nil {
		t.Fatal(err)
	}
	m2 := New(st2, Options{TrackSeries: true})
	m2.SetOutput(nil)
	m2.Begin(event.Position{Seq: 2}, 1)
	m2.SetRemove(PathTags, []string{"z"})
	m2.End()
	if evs := m2.Events(); len(evs) != 1 || !reflect.DeepEqual(evs[0].Untags, []string{"z"}) {
		t.Errorf("after restore: %+v", evs)
	}
}

func TestSeriesNextAndState(t *testing.T) {
	m := newTest(10)
	m.Begin(event.Position{Seq: 1}, 1)
	m.Float("a", Step{Kind: StepSeriesNext}, 0, 1)
	m.Float("a", At(2_500_000), 0, 2)
	m.Float("a", Step{Kind: StepSeriesNext}, 0, 3)
	m.Float("b", Step{Kind: StepRunNext}, 0, 4)
	m.End()
	var steps []int64
	for _, e := range m.Events() {
		steps = append(steps, e.Step)
	}
	// 0; 2.5; last+1 = 3.5; next whole step after the run's highest = 4.
	if want := []int64{0, 25, 35, 40}; !reflect.DeepEqual(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	st := m.State()
	if st.Last["a"] != 3_500_000 || st.Multiplier != 10 || !st.HasMax || st.MaxStep != 4_000_000 {
		t.Errorf("state %+v", st)
	}
}

func TestAssignValues(t *testing.T) {
	m := newTest(1)
	m.Begin(event.Position{Seq: 1}, 1)
	m.Assign("f", math.Inf(1))
	m.Assign("n", math.NaN())
	m.Assign("d", Datetime{UnixNano: 1740830400250_000_000})
	m.Assign("sys/hostname", "h")
	m.Assign("set", []string{"b", "a"})
	m.Assign("bad", struct{}{})
	m.Assign("empty", []string{})
	m.Delete("gone") // nothing was sent for it: nothing to take back
	m.End()
	evs := m.Events()
	if len(evs) != 1 {
		t.Fatalf("events %+v", evs)
	}
	want := map[string]any{"f": "Infinity", "n": "NaN", "d": "2025-03-01T12:00:00.25Z", "neptune/sys/hostname": "h", "set": []string{"a", "b"}, "empty": []string{}}
	if !reflect.DeepEqual(evs[0].Config, want) {
		t.Errorf("config %#v, want %#v", evs[0].Config, want)
	}
	if _, err := json.Marshal(evs[0].Config); err != nil {
		t.Errorf("config does not encode: %v", err)
	}
	if ws := m.TakeWarnings(); len(ws) != 1 || ws[0].Reason != ReasonBadValue {
		t.Errorf("warnings %v", ws)
	}
}

// TestEmptySets: a string set emptied by remove or clear, or assigned
// empty, is the config value [] (the attribute exists), never null (it
// does not), and encodes as [].
func TestEmptySets(t *testing.T) {
	m := newTest(1)
	m.Begin(event.Position{Seq: 1}, 1)
	m.SetAdd("a", []string{"x"})
	m.SetRemove("a", []string{"x"})
	m.SetAdd("b", []string{"y"})
	m.SetClear("b")
	m.SetAssign("c", nil)
	m.SetAdd(PathGroupTags, []string{"g"})
	m.SetRemove(PathGroupTags, []string{"g"})
	m.End()
	cfg := map[string]any{}
	for _, e := range m.Events() {
		for k, v := range e.Config {
			cfg[k] = v
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":[],"b":[],"c":[],"neptune/group_tags":[]}`; string(b) != want {
		t.Errorf("config %s, want %s", b, want)
	}
	// The state keeps the empty sets, so a restart still knows them.
	st := m.State()
	if len(st.Sets) != 3 || st.Sets["a"] == nil {
		t.Errorf("state sets %#v", st.Sets)
	}
}

// TestDelete: a deletion takes back what was sent, as far as mlop can:
// tags are removed, config keys set to null and reported, sent points
// and files reported as staying; an attribute nothing was sent for needs
// nothing. The state remembers what was sent across a restart.
func TestDelete(t *testing.T) {
	m := New(State{}, Options{Multiplier: 1, TrackSeries: true, TrackAttributes: true})
	m.SetOutput(nil)
	m.Begin(event.Position{Seq: 1}, 1)
	m.Assign("atom", 1.5)
	m.SetAdd("set", []string{"x"})
	m.SetAdd(PathTags, []string{"t"})
	m.Float("series", Step{Kind: StepSeriesNext}, 0, 1)
	m.Float("series", Step{Kind: StepSeriesNext}, 0, 2)
	m.File("file", Step{}, false, 0, File{Local: "/x/f.txt"})
	m.File("lost", Step{}, false, 0, File{Origin: "/gone/f.txt"})
	m.End()
	if ws := m.TakeWarnings(); len(ws) != 1 || ws[0].Reason != ReasonMissingFile {
		t.Fatalf("warnings %v", ws)
	}
	// A restart between the values and the deletions.
	m = New(m.State(), Options{Multiplier: 1, TrackSeries: true, TrackAttributes: true})
	m.SetOutput(nil)
	m.Begin(event.Position{Seq: 2}, 2)
	for _, p := range []string{"atom", "set", PathTags, "series", "file", "lost", "never"} {
		m.Delete(p)
	}
	m.End()
	var cfg map[string]any
	var untags []string
	for _, e := range m.Events() {
		switch e.Kind {
		case event.KindConfig:
			cfg = e.Config
		case event.KindTags:
			untags = append(untags, e.Untags...)
		default:
			t.Errorf("unexpected event %+v", e)
		}
	}
	if want := map[string]any{"atom": nil, "set": nil, KeyMissingFiles + "lost": nil}; !reflect.DeepEqual(cfg, want) {
		t.Errorf("config %#v, want %#v", cfg, want)
	}
	if !reflect.DeepEqual(untags, []string{"t"}) {
		t.Errorf("untags %v", untags)
	}
	var details []string
	for _, w := range m.TakeWarnings() {
		if w.Reason != ReasonDeleted {
			t.Errorf("warning %+v", w)
		}
		details = append(details, strings.SplitN(w.Detail, ":", 2)[0])
	}
	if want := []string{"atom", "set", "series", "file"}; !reflect.DeepEqual(details, want) {
		t.Errorf("deletion warnings for %v, want %v", details, want)
	}
	// Deleted is forgotten: a second deletion needs nothing, and the
	// series starts again at step 0.
	m.Begin(event.Position{Seq: 3}, 3)
	m.Delete("atom")
	m.Float("series", Step{Kind: StepSeriesNext}, 0, 3)
	m.End()
	evs := m.Events()
	if last := evs[len(evs)-1]; last.Kind != event.KindMetrics || last.Step != 0 {
		t.Errorf("after the deletion: %+v", last)
	}
	if ws := m.TakeWarnings(); len(ws) != 0 {
		t.Errorf("second deletion warned: %v", ws)
	}
	if st := m.State(); len(st.Live) != 0 {
		t.Errorf("live after deletions: %v", st.Live)
	}
}

func TestMissingFileAndHistogramErrors(t *testing.T) {
	m := newTest(1)
	m.Begin(event.Position{Seq: 3}, 1)
	m.File("f", At(2_000_000), true, 0, File{Origin: "/gone/x.png"})
	m.Histogram("h", At(0), 0, []float64{0, 1}, []float64{1, 2})
	m.Histogram("h", At(0), 0, []float64{0, math.NaN()}, []float64{1})
	m.End()
	evs := m.Events()
	if len(evs) != 1 || evs[0].Config["neptune/missing_files/f/2"] != "/gone/x.png" {
		t.Errorf("events %+v", evs)
	}
	ws := m.TakeWarnings()
	if len(ws) != 3 || ws[0].Reason != ReasonMissingFile || ws[1].Reason != ReasonBadValue || ws[0].Pos.Seq != 3 {
		t.Errorf("warnings %v", ws)
	}
}
