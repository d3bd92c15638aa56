package jsonl

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

var fixedNow = time.UnixMilli(1_800_000_000_000)

func newParser(t testing.TB, opts parsers.Options) *Parser {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Parser)
}

func parseLines(t testing.TB, p *Parser, lines ...string) ([]event.Event, []error) {
	t.Helper()
	var (
		out  []event.Event
		errs []error
	)
	for i, l := range lines {
		var err error
		out, err = p.Parse(out, event.Record{Line: int64(i + 1), Pos: event.Position{Offset: int64(i + 1)}, Data: []byte(l)})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errs
}

func TestParseMetrics(t *testing.T) {
	tests := []struct {
		name string
		opts parsers.Options
		line string
		want []event.Event
	}{
		{
			name: "flat with step and seconds",
			line: `{"step": 3, "time": 1700000000.5, "loss": 0.25, "acc": 1}`,
			want: []event.Event{{Kind: event.KindMetrics, Step: 3, Time: 1700000000500,
				Points: []event.Point{{Name: "loss", Value: 0.25}, {Name: "acc", Value: 1}}}},
		},
		{
			name: "nested flattens with slash",
			line: `{"step": 1, "train": {"loss": 1, "inner": {"x": -2e-3}}, "val/acc": 0.5}`,
			want: []event.Event{{Kind: event.KindMetrics, Step: 1, Time: fixedNow.UnixMilli(),
				Points: []event.Point{{Name: "train/loss", Value: 1}, {Name: "train/inner/x", Value: -0.002}, {Name: "val/acc", Value: 0.5}}}},
		},
		{
			name: "integral float step and ms time",
			line: `{"step": 2.0, "timestamp": 1700000000123, "m": 5}`,
			want: []event.Event{{Kind: event.KindMetrics, Step: 2, Time: 1700000000123, Points: []event.Point{{Name: "m", Value: 5}}}},
		},
		{
			name: "rfc3339 time and ns _timestamp ignored after time",
			line: `{"step": 0, "time": "2023-11-14T22:13:20Z", "ts": 1, "m": 1}`,
			want: []event.Event{{Kind: event.KindMetrics, Step: 0, Time: 1700000000000, Points: []event.Point{{Name: "ts", Value: 1}, {Name: "m", Value: 1}}}},
		},
		{
			name: "small auto time is a metric",
			line: `{"step": 4, "time": 0.35, "loss": 2}`,
			want: []event.Event{{Kind: event.KindMetrics, Step: 4, Time: fixedNow.UnixMilli(), Points: []event.Point{{Name: "time", Value: 0.35}, {Name: "loss", Value: 2}}}},
		},
		{
			name: "custom step and time fields",
			opts: parsers.Options{StepField: "epoch", TimeField: "when"},
			line: `{"epoch": 7, "when": 1700000000, "step": 99}`,
			want: []event.Event{{Kind: event.KindMetrics, Step: 7, Time: 1700000000000, Points: []event.Point{{Name: "step", Value: 99}}}},
		},
		{
			name: "strings become string series, bool null array skipped",
			line: `{"step": 1, "phase": "warmup", "ok": true, "n": null, "arr": [1, 2], "v": 3}`,
			want: []event.Event{
				{Kind: event.KindMetrics, Step: 1, Time: fixedNow.UnixMilli(), Points: []event.Point{{Name: "v", Value: 3}}},
				{Kind: event.KindData, Type: event.DataStringSeries, Name: "phase", Text: "warmup", Step: 1, Time: fixedNow.UnixMilli()},
			},
		},
		{
			name: "in-band run events",
			line: `{"_tags": ["a", "b"], "_config": {"lr": 0.1, "opt": {"name": "adam"}}, "_status": "completed"}`,
			want: []event.Event{
				{Kind: event.KindTags, Step: 1, Time: fixedNow.UnixMilli(), Tags: []string{"a", "b"}},
				{Kind: event.KindConfig, Step: 1, Time: fixedNow.UnixMilli(), Config: map[string]any{"lr": 0.1, "opt": map[string]any{"name": "adam"}}},
				// No time of its own: 0, the agent takes the run's last data time.
				{Kind: event.KindStatus, Step: 1, Time: 0, Status: event.StatusCompleted},
			},
		},
		{
			name: "a status with its own time",
			line: `{"time": 1700000000, "_status": "failed"}`,
			want: []event.Event{{Kind: event.KindStatus, Step: 1, Time: 1700000000000, Status: event.StatusFailed}},
		},
		{
			name: "run field",
			opts: parsers.Options{RunField: "run"},
			line: `{"run": "seed-1", "step": 1, "m": 1}`,
			want: []event.Event{{Kind: event.KindMetrics, Run: "seed-1", Step: 1, Time: fixedNow.UnixMilli(), Points: []event.Point{{Name: "m", Value: 1}}}},
		},
		{
			name: "escaped keys and unicode",
			line: `{"step": 1, "a\"b": 1, "\u00e9t\u00e9": 2, "x\ud83d\ude00": 3}`,
			want: []event.Event{{Kind: event.KindMetrics, Step: 1, Time: fixedNow.UnixMilli(), Points: []event.Point{{Name: `a"b`, Value: 1}, {Name: "été", Value: 2}, {Name: "x😀", Value: 3}}}},
		},
		{
			name: "blank line",
			line: "   ",
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newParser(t, tc.opts)
			got, errs := parseLines(t, p, tc.line)
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			for i := range got {
				got[i].Pos = event.Position{}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestNonFinite(t *testing.T) {
	p := newParser(t, parsers.Options{})
	got, errs := parseLines(t, p, `{"step": 1, "a": NaN, "b": Infinity, "c": -Infinity, "d": 1e999}`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	pts := got[0].Points
	if len(pts) != 4 || !math.IsNaN(pts[0].Value) || !math.IsInf(pts[1].Value, 1) || !math.IsInf(pts[2].Value, -1) || !math.IsInf(pts[3].Value, 1) {
		t.Fatalf("got %+v", pts)
	}
}

func TestAutoStep(t *testing.T) {
	p := newParser(t, parsers.Options{RunField: "run"})
	got, errs := parseLines(t, p,
		`{"m": 1}`,
		`{"m": 2}`,
		`{"step": 10, "m": 3}`,
		`{"m": 4}`,
		`{"run": "b", "m": 5}`,
		`{"_tags": ["x"]}`,
		`{"m": 6}`,
	)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var steps []int64
	for _, ev := range got {
		if ev.Kind == event.KindMetrics {
			steps = append(steps, ev.Step)
		}
	}
	if want := []int64{1, 2, 10, 11, 1, 12}; !reflect.DeepEqual(steps, want) {
		t.Errorf("steps = %v, want %v", steps, want)
	}

	// The single-run fast path encodes what encoding/json would.
	one := newParser(t, parsers.Options{})
	parseLines(t, one, `{"m": 1}`, `{"step": 41, "m": 1}`)
	fast, _ := one.State()
	slow, _ := json.Marshal(state{Last: one.last})
	if string(fast) != string(slow) {
		t.Errorf("State() = %s, want %s", fast, slow)
	}

	// The counters survive a restart through State/Restore.
	st, err := p.State()
	if err != nil {
		t.Fatal(err)
	}
	q := newParser(t, parsers.Options{RunField: "run"})
	if err := q.Restore(st); err != nil {
		t.Fatal(err)
	}
	got, _ = parseLines(t, q, `{"m": 7}`, `{"run": "b", "m": 8}`)
	if got[0].Step != 13 || got[1].Step != 2 {
		t.Errorf("after restore steps = %d, %d; want 13, 2", got[0].Step, got[1].Step)
	}
}

func TestBadRecords(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		reason error
		field  string
	}{
		{"bad json", `{"step": 1, "m": }`, parsers.ErrSyntax, "m"},
		{"truncated", `{"step": 1, "m": 1`, parsers.ErrSyntax, ""},
		{"not an object", `[1, 2]`, parsers.ErrNotObject, ""},
		{"number line", `42`, parsers.ErrNotObject, ""},
		{"fractional step", `{"step": 1.5, "m": 1}`, parsers.ErrBadStep, "step"},
		{"negative step", `{"step": -1, "m": 1}`, parsers.ErrBadStep, "step"},
		{"bool step", `{"step": true, "m": 1}`, parsers.ErrBadStep, "step"},
		{"trailing garbage", `{"m": 1} x`, parsers.ErrSyntax, ""},
		{"two objects", `{"m": 1}{"m": 2}`, parsers.ErrSyntax, ""},
		{"leading zero", `{"m": 01}`, parsers.ErrSyntax, "m"},
		{"bad escape", `{"m\q": 1}`, parsers.ErrSyntax, ""},
		{"tags not strings", `{"_tags": [1]}`, parsers.ErrBadValue, "_tags"},
		{"config not object", `{"_config": 3}`, parsers.ErrBadValue, "_config"},
		{"unknown status", `{"_status": "maybe"}`, parsers.ErrBadValue, "_status"},
		{"raw control char", "{\"m\x01\": 1}", parsers.ErrSyntax, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newParser(t, parsers.Options{})
			got, err := p.Parse(nil, event.Record{Line: 9, Data: []byte(tc.line)})
			if err == nil {
				t.Fatalf("no error, events %+v", got)
			}
			if len(got) != 0 {
				t.Errorf("bad record produced events: %+v", got)
			}
			var re *parsers.RecordError
			if !errors.As(err, &re) || re.Line != 9 {
				t.Fatalf("err = %v, want RecordError at line 9", err)
			}
			if !errors.Is(err, tc.reason) {
				t.Errorf("err = %v, want %v", err, tc.reason)
			}
			if re.Field != tc.field {
				t.Errorf("field = %q, want %q", re.Field, tc.field)
			}
		})
	}
}

// TestBadRecordLeavesNoState: a record that fails half-way through a
// nested object must not affect the next one.
func TestBadRecordLeavesNoState(t *testing.T) {
	p := newParser(t, parsers.Options{})
	got, errs := parseLines(t, p,
		`{"a": {"b": }`,
		`{"step": 1.5, "x": {"y": 1}}`,
		`{"outer": {"step": 2.5}}`,
		`{"step": 5, "loss": 5}`,
	)
	if len(errs) != 2 {
		t.Fatalf("errors = %v, want 2", errs)
	}
	if len(got) != 2 {
		t.Fatalf("events = %+v", got)
	}
	if got[0].Points[0].Name != "outer/step" {
		t.Errorf("nested step is a metric: %+v", got[0])
	}
	if ev := got[1]; ev.Step != 5 || len(ev.Points) != 1 || ev.Points[0].Name != "loss" {
		t.Errorf("good line after bad ones parsed as %+v", ev)
	}
}

func TestTooLong(t *testing.T) {
	p := newParser(t, parsers.Options{MaxRecordBytes: 100})
	_, err := p.Parse(nil, event.Record{Line: 1, Data: []byte(`{"m": "` + strings.Repeat("x", 200) + `"}`)})
	if !errors.Is(err, parsers.ErrTooLong) {
		t.Fatalf("err = %v", err)
	}
}

func TestSkipsCounted(t *testing.T) {
	var reasons []string
	p := newParser(t, parsers.Options{OnSkip: func(r string) { reasons = append(reasons, r) }})
	_, errs := parseLines(t, p, `{"a": true, "b": null, "c": [1], "d": {"e": false}, "s": "`+strings.Repeat("y", 300)+`", "": 1}`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []string{parsers.SkipBool, parsers.SkipNull, parsers.SkipArray, parsers.SkipBool, parsers.SkipString, parsers.SkipOther}
	if !reflect.DeepEqual(reasons, want) {
		t.Errorf("skips = %v, want %v", reasons, want)
	}
}

// TestAgreesWithEncodingJSON checks the hand-written scanner against the
// standard library on the numeric values of valid JSON objects.
func TestAgreesWithEncodingJSON(t *testing.T) {
	lines := []string{
		`{"a": 1, "b": -0.5, "c": 1e10, "d": 1.5E-7, "e": {"f": 3}}`,
		`{"k\\ey": 2, "\u0041": 3, "x": "s\"t"}`,
		`{}`,
	}
	for _, l := range lines {
		checkAgainstStdlib(t, []byte(l))
	}
}

func checkAgainstStdlib(t *testing.T, data []byte) {
	t.Helper()
	var generic any
	stdErr := json.Unmarshal(data, &generic)
	p := newParser(t, parsers.Options{StepField: "\x00none", TimeField: "\x00none"})
	got, err := p.Parse(nil, event.Record{Line: 1, Data: data})
	obj, isObj := generic.(map[string]any)
	if stdErr != nil || !isObj {
		return // invalid JSON for the stdlib; our extensions (NaN) may accept it
	}
	for _, k := range []string{keyTags, keyConfig, keyStatus} {
		if _, ok := obj[k]; ok {
			return // in-band run keys are validated: a wrong type makes a bad record
		}
	}
	if err != nil {
		t.Fatalf("stdlib accepts %q, parser says %v", data, err)
	}
	want := map[string]float64{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			name := k
			if prefix != "" {
				name = prefix + "/" + k
			}
			switch v := v.(type) {
			case float64:
				if strings.TrimSpace(name) != "" {
					want[name] = v
				}
			case map[string]any:
				walk(name, v)
			}
		}
	}
	walk("", obj)
	gotM := map[string]float64{}
	for _, ev := range got {
		for _, pt := range ev.Points {
			gotM[pt.Name] = pt.Value
		}
	}
	// Duplicate keys: the stdlib keeps the last, we keep every point; only
	// compare when there are none.
	if len(gotM) == len(want) && !reflect.DeepEqual(gotM, want) {
		t.Errorf("%q: got %v want %v", data, gotM, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"step": 1, "loss": 0.5, "acc": {"top1": 1}}`,
		`{"a": NaN, "b": -Infinity, "s": "x\u00e9", "_tags": ["t"], "_config": {"a": [1, {"b": null}]}}`,
		`{"step": 1.5}`, `[]`, `{"x": 1e400}`, `{"\ud800": 1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := newParser(t, parsers.Options{MaxRecordBytes: 1 << 16, RunField: "run"})
		evs, err := p.Parse(nil, event.Record{Line: 1, Data: data})
		if err != nil && len(evs) != 0 {
			t.Fatalf("error with events: %v", err)
		}
		var re *parsers.RecordError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("error is not a RecordError: %v", err)
		}
		for _, ev := range evs {
			if ev.Step < 0 {
				t.Fatalf("negative step %d", ev.Step)
			}
			for _, pt := range ev.Points {
				if strings.TrimSpace(pt.Name) == "" {
					t.Fatalf("empty metric name")
				}
			}
		}
		checkAgainstStdlib(t, data)
		// Whatever came before, the next record parses on its own.
		next, err := p.Parse(nil, event.Record{Line: 2, Data: []byte(`{"step": 7, "z": 1}`)})
		if err != nil || len(next) != 1 || next[0].Step != 7 || len(next[0].Points) != 1 || next[0].Points[0].Name != "z" {
			t.Fatalf("record after %q parsed as %+v, %v", data, next, err)
		}
	})
}

var benchLine = []byte(`{"step": 123456, "time": 1700000000.123, "train/loss": 0.123456789, "train/acc": 0.987654, "lr": 0.0003, "grad_norm": 1.2345, "val/loss": 0.2345, "val/acc": 0.91, "throughput": 12345.6, "gpu/mem": 23.4, "epoch": 3, "tokens": 1048576}`)

func BenchmarkParse(b *testing.B) {
	p := newParser(b, parsers.Options{})
	var dst []event.Event
	b.SetBytes(int64(len(benchLine)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		dst, err = p.Parse(dst[:0], event.Record{Line: 1, Data: benchLine})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*10/b.Elapsed().Seconds(), "points/s")
}

// TestPaddingAndBOM: NUL padding around a line (a zero-filled region after
// a crash) is stepped over and reported once per file; the line it hides is
// parsed. A UTF-8 BOM at the start of the file is stripped.
func TestPaddingAndBOM(t *testing.T) {
	type notice struct {
		line   int64
		reason string
	}
	var notices []notice
	p := newParser(t, parsers.Options{Notice: func(line int64, reason, _ string) {
		notices = append(notices, notice{line, reason})
	}})
	evs, errs := parseLines(t, p,
		"\xef\xbb\xbf"+`{"step":1,"a":1}`,
		"\x00\x00\x00\x00"+`{"step":2,"a":2}`,
		"\x00\x00\x00\x00\x00",
		`{"step":3,"a":3}`+"\x00\x00",
		`{"step":4,"a":4}`,
	)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	var steps []int64
	for _, ev := range evs {
		steps = append(steps, ev.Step)
	}
	if !reflect.DeepEqual(steps, []int64{1, 2, 3, 4}) {
		t.Errorf("steps = %v, want 1 2 3 4", steps)
	}
	if !reflect.DeepEqual(notices, []notice{{2, parsers.NoticeNULPadding}}) {
		t.Errorf("notices = %v, want one nul_padding at line 2", notices)
	}
	// A BOM after line 1 is not a BOM: the line is not an object.
	_, errs = parseLines(t, newParser(t, parsers.Options{}), `{"a":1}`, "\xef\xbb\xbf"+`{"a":2}`)
	if len(errs) != 1 || !errors.Is(errs[0], parsers.ErrNotObject) {
		t.Errorf("BOM on line 2: errs = %v, want one not-an-object", errs)
	}
	// NUL inside the object is a syntax error, not padding.
	_, errs = parseLines(t, newParser(t, parsers.Options{}), `{"a":`+"\x00"+`1}`)
	if len(errs) != 1 {
		t.Errorf("NUL inside an object: errs = %v, want a bad record", errs)
	}
}

// TestStepsExact: integer steps keep every digit, also above 2^53 where a
// float64 would merge neighbours; steps above the int64 range are bad
// records, and so are fractions and negatives at any size.
func TestStepsExact(t *testing.T) {
	tests := []struct {
		line    string
		want    int64
		wantErr bool
	}{
		{`{"step": 9007199254740992, "a": 1}`, 9007199254740992, false},
		{`{"step": 9007199254740993, "a": 1}`, 9007199254740993, false},
		{`{"step": 9223372036854775807, "a": 1}`, math.MaxInt64, false},
		{`{"step": 9007199254740993.0, "a": 1}`, 9007199254740993, false},
		{`{"step": 9.007199254740993e15, "a": 1}`, 9007199254740993, false},
		{`{"step": "9007199254740995", "a": 1}`, 9007199254740995, false},
		{`{"step": 2.0, "a": 1}`, 2, false},
		{`{"step": 1e3, "a": 1}`, 1000, false},
		{`{"step": 9223372036854775808, "a": 1}`, 0, true},
		{`{"step": 18446744073709551616, "a": 1}`, 0, true},
		{`{"step": 9007199254740993.5, "a": 1}`, 0, true},
		{`{"step": -9007199254740993, "a": 1}`, 0, true},
		{`{"step": NaN, "a": 1}`, 0, true},
		{`{"step": Infinity, "a": 1}`, 0, true},
	}
	for _, tt := range tests {
		evs, errs := parseLines(t, newParser(t, parsers.Options{}), tt.line)
		if tt.wantErr {
			if len(errs) != 1 || !errors.Is(errs[0], parsers.ErrBadStep) {
				t.Errorf("%s: errs = %v, want a bad step", tt.line, errs)
			}
			continue
		}
		if len(errs) != 0 || len(evs) != 1 || evs[0].Step != tt.want {
			t.Errorf("%s: got %+v %v, want step %d", tt.line, evs, errs, tt.want)
		}
	}
}
