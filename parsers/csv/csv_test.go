package csv_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	mlcsv "github.com/mlop-ai/mlop-agent/parsers/csv"
)

// show renders an event compactly for comparisons.
func show(e event.Event) string {
	var b strings.Builder
	t := fmt.Sprint(e.Time)
	if e.Time == readTime.UnixMilli() {
		t = "now"
	}
	run := ""
	if e.Run != "" {
		run = "[" + e.Run + "]"
	}
	switch e.Kind {
	case event.KindMetrics:
		fmt.Fprintf(&b, "M%s s=%d t=%s", run, e.Step, t)
		for _, p := range e.Points {
			fmt.Fprintf(&b, " %s=%v", p.Name, p.Value)
		}
	case event.KindData:
		fmt.Fprintf(&b, "D%s s=%d t=%s %s:%s=%q", run, e.Step, t, e.Type, e.Name, e.Text)
	case event.KindConfig:
		fmt.Fprintf(&b, "C %v", e.Config)
	default:
		fmt.Fprintf(&b, "%v %+v", e.Kind, e)
	}
	return b.String()
}

func showAll(evs []event.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, show(e))
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		opts    parsers.Options
		in      string
		want    []string
		errs    []error // reasons of the rejected records, in order
		skipped []string
	}{
		{
			name: "step column, comma",
			in:   "step,loss,acc\n1,0.5,1\n2,0.25,0.75\n",
			want: []string{"M s=1 t=now loss=0.5 acc=1", "M s=2 t=now loss=0.25 acc=0.75"},
		},
		{
			name: "empty cells are no points",
			in:   "train,epoch,step,val\n0.5,0,9,\n,0,9,0.25\n,,10,\n",
			want: []string{"M s=9 t=now train=0.5 epoch=0", "M s=9 t=now epoch=0 val=0.25"},
		},
		{
			name: "CRLF, BOM, padded names and cells",
			in:   "\xEF\xBB\xBF  epoch,   loss\r\n     0,    0.5\r\n   1,0.25\r\n",
			want: []string{"M s=0 t=now loss=0.5", "M s=1 t=now loss=0.25"},
		},
		{
			name: "tab detected",
			in:   "step\tloss,x\tb\n1\t2,5\t 3\n",
			want: []string{"M s=1 t=now b=3", `D s=1 t=now string-series:loss,x="2,5"`},
		},
		{
			name: "semicolon detected",
			in:   "step;a;b\n3;1.5;-2\n",
			want: []string{"M s=3 t=now a=1.5 b=-2"},
		},
		{
			name: "delimiter parameter",
			opts: parsers.Options{Params: map[string]string{"delimiter": "|"}},
			in:   "step|a,b\n3|1\n",
			want: []string{"M s=3 t=now a,b=1"},
		},
		{
			name: "number spellings",
			in:   "step,a,b,c,d,e,f,g,h\n0,nan,NaN,inf,-inf,Infinity,1e500,4.0000003e-05,-1E-3\n",
			want: []string{"M s=0 t=now a=NaN b=NaN c=+Inf d=-Inf e=+Inf f=+Inf g=4.0000003e-05 h=-0.001"},
		},
		{
			name: "first step candidate wins by preference not position",
			in:   "epoch,loss,step\n3,1,30\n",
			want: []string{"M s=30 t=now epoch=3 loss=1"},
		},
		{
			name: "step candidates are case-insensitive",
			in:   "Wall time,Step,Value\n1614619328.5,7,0.5\n",
			want: []string{"M s=7 t=1614619328500 Value=0.5"},
		},
		{
			name: "configured step field",
			opts: parsers.Options{StepField: "time/total_timesteps"},
			in:   "time/iterations,time/total_timesteps,loss\n1,2048,\n2,4096,0.5\n",
			want: []string{"M s=2048 t=now time/iterations=1", "M s=4096 t=now time/iterations=2 loss=0.5"},
		},
		{
			name: "configured step field missing from the header: one error for the file",
			opts: parsers.Options{StepField: "global_step"},
			in:   "step,loss\n1,0.5\n2,0.25\n3,0.125\n",
			errs: []error{parsers.ErrUnusable},
		},
		{
			name: "step candidates: the first present by preference, not position",
			opts: parsers.Options{Params: map[string]string{"step_candidates": "time/total_timesteps|total_timesteps|nupdates"}},
			in:   "nupdates,total_timesteps,loss\n1,2048,0.5\n2,4096,0.25\n",
			want: []string{"M s=2048 t=now nupdates=1 loss=0.5", "M s=4096 t=now nupdates=2 loss=0.25"},
		},
		{
			name: "step candidates are case-insensitive and replace the default list",
			opts: parsers.Options{Params: map[string]string{"step_candidates": " timestepssofar | x "}},
			in:   "step,TimestepsSoFar,EpRewMean\n9,200,1.5\n",
			want: []string{"M s=200 t=now step=9 EpRewMean=1.5"},
		},
		{
			name: "step candidates: none present numbers the rows from 1",
			opts: parsers.Options{Params: map[string]string{"step_candidates": "time/total_timesteps|step"}},
			in:   "epoch,loss\n7,0.5\n7,0.25\n",
			want: []string{"M s=1 t=now epoch=7 loss=0.5", "M s=2 t=now epoch=7 loss=0.25"},
		},
		{
			name: "step_field wins over step candidates",
			opts: parsers.Options{StepField: "epoch", Params: map[string]string{"step_candidates": "step"}},
			in:   "step,epoch,loss\n10,1,0.5\n",
			want: []string{"M s=1 t=now step=10 loss=0.5"},
		},
		{
			name: "a step_field missing from the header is not replaced by a candidate",
			opts: parsers.Options{StepField: "epoch", Params: map[string]string{"step_candidates": "step"}},
			in:   "step,loss\n10,0.5\n",
			errs: []error{parsers.ErrBadStep},
		},
		{
			name: "auto_step wins over step candidates",
			opts: parsers.Options{Params: map[string]string{"auto_step": "true", "step_candidates": "step"}},
			in:   "step,loss\n10,0.5\n",
			want: []string{"M s=1 t=now step=10 loss=0.5"},
		},
		{
			name: "auto step counts rows from 1",
			in:   "r,l\n1,10\n\n2,20\n",
			want: []string{"M s=1 t=now r=1 l=10", "M s=2 t=now r=2 l=20"},
		},
		{
			name: "auto_step ignores step columns",
			opts: parsers.Options{Params: map[string]string{"auto_step": "true"}},
			in:   "epoch,l\n5,10\n5,20\n",
			want: []string{"M s=1 t=now epoch=5 l=10", "M s=2 t=now epoch=5 l=20"},
		},
		{
			name: "bad steps",
			in:   "step,a\n0.5,1\n-1,1\n,1\nx,1\n2.0,1\n",
			want: []string{"M s=2 t=now a=1"},
			errs: []error{parsers.ErrBadStep, parsers.ErrBadStep, parsers.ErrBadStep, parsers.ErrBadStep},
		},
		{
			name: "more cells than the header is a bad record, fewer are empty",
			in:   "step,a,b\n1,2,3,4\n2,5\n3\n",
			want: []string{"M s=2 t=now a=5"},
			errs: []error{parsers.ErrSyntax},
		},
		{
			name:    "text cells: series, bools and nulls skipped, long skipped",
			in:      "step,phase,flag,none,long\n1,warmup,True,None," + strings.Repeat("x", 201) + "\n2,\"a \"\"b\"\"\",false,null," + strings.Repeat("y", 200) + "\n",
			want:    []string{`D s=1 t=now string-series:phase="warmup"`, `D s=2 t=now string-series:phase="a \"b\""`, `D s=2 t=now string-series:long="` + strings.Repeat("y", 200) + `"`},
			skipped: []string{parsers.SkipBool, parsers.SkipNull, parsers.SkipString, parsers.SkipBool, parsers.SkipNull},
		},
		{
			name:    "strings=skip",
			opts:    parsers.Options{Params: map[string]string{"strings": "skip"}},
			in:      "step,phase,x\n1,warmup,2\n",
			want:    []string{"M s=1 t=now x=2"},
			skipped: []string{parsers.SkipString},
		},
		{
			name: "metrics event comes before the row's string events",
			in:   "step,phase,x\n1,warmup,2\n",
			want: []string{"M s=1 t=now x=2", `D s=1 t=now string-series:phase="warmup"`},
		},
		{
			name: "quoted fields with delimiters and spaces",
			in:   "\"step\",\"a,b\", \"c\" \n\"1\",\"2\" , 3\n",
			want: []string{"M s=1 t=now a,b=2 c=3"},
		},
		{
			name: "junk after a closing quote is a bad record",
			in:   "step,a\n1,\"2\"x\n2,3\n",
			want: []string{"M s=2 t=now a=3"},
			errs: []error{parsers.ErrSyntax},
		},
		{
			name: "quoted field spanning lines",
			in:   "step,note,x\n1,\"line one\nline two\",5\n2,plain,6\n",
			want: []string{"M s=1 t=now x=5", `D s=1 t=now string-series:note="line one\nline two"`, "M s=2 t=now x=6", `D s=2 t=now string-series:note="plain"`},
		},
		{
			name: "quoted header spanning lines",
			in:   "step,\"a\nb\"\n1,2\n",
			want: []string{"M s=1 t=now a\nb=2"},
		},
		{
			name: "comments, and the JSON comment before the header",
			in:   "#{\"t_start\": 1614619328.3192222, \"env_id\": \"CartPole-v1\"}\n# plain comment\nr,l\n#{\"late\": 1}\n1,2\n",
			want: []string{"C map[monitor/env_id:CartPole-v1 monitor/t_start:1.6146193283192222e+09]", "M s=1 t=now r=1 l=2"},
		},
		{
			name: "comment prefix and config prefix parameters",
			opts: parsers.Options{Params: map[string]string{"comment": "//", "comment_prefix": "meta."}},
			in:   "//{\"a\": 1}\n#x,y\n1,2\n",
			want: []string{"C map[meta.a:1]", "M s=1 t=now #x=1 y=2"},
		},
		{
			name: "comments disabled",
			opts: parsers.Options{Params: map[string]string{"comment": ""}},
			in:   "#a,b\n1,2\n",
			want: []string{"M s=1 t=now #a=1 b=2"},
		},
		{
			name: "header reappears",
			in:   "step,a\n1,1\nstep,a\n1,2\n  step , a \n2,3\n",
			want: []string{"M s=1 t=now a=1", "M s=1 t=now a=2", "M s=2 t=now a=3"},
		},
		{
			name: "header reappears, auto steps keep counting",
			in:   "r,l\n1,1\nr,l\n2,2\n",
			want: []string{"M s=1 t=now r=1 l=1", "M s=2 t=now r=2 l=2"},
		},
		{
			name: "time auto: epoch seconds, milliseconds, datetime text are the time",
			in:   "step,timestamp,x\n1,1700000000.5,1\n2,1700000000123,1\n3,2020-02-14 21:53:05.788645,1\n4,,1\n",
			want: []string{"M s=1 t=1700000000500 x=1", "M s=2 t=1700000000123 x=1", "M s=3 t=1581717185788 x=1", "M s=4 t=now x=1"},
		},
		{
			name: "time auto: small numbers and other text stay data",
			in:   "epoch,time,x\n1,18.1322,1\n2,soon,1\n",
			want: []string{"M s=1 t=now time=18.1322 x=1", "M s=2 t=now x=1", `D s=2 t=now string-series:time="soon"`},
		},
		{
			name: "time epoch: a bad timestamp is a bad record",
			opts: parsers.Options{Params: map[string]string{"time": "epoch"}},
			in:   "step,ts,x\n1,soon,1\n2,5,1\n3,1700000000,1\n",
			want: []string{"M s=2 t=5000 x=1", "M s=3 t=1700000000000 x=1"},
			errs: []error{parsers.ErrBadTime},
		},
		{
			name: "time metric: no time column",
			opts: parsers.Options{Params: map[string]string{"time": "metric"}},
			in:   "step,timestamp\n1,1700000000\n",
			want: []string{"M s=1 t=now timestamp=1.7e+09"},
		},
		{
			name: "time offset: t_start from the comment plus the cell, kept as a point",
			opts: parsers.Options{TimeField: "t", Params: map[string]string{"time": "offset", "auto_step": "true"}},
			in:   "#{\"t_start\": 1614619328.3192222}\nr,l,t\n10.0,10,0.84343\n",
			want: []string{"C map[monitor/t_start:1.6146193283192222e+09]", "M s=1 t=1614619329163 r=10 l=10 t=0.84343"},
		},
		{
			name: "time offset: t_start parameter",
			opts: parsers.Options{TimeField: "t", Params: map[string]string{"time": "offset", "t_start": "1000000000"}},
			in:   "r,t\n1,1.5\n",
			want: []string{"M s=1 t=1000000001500 r=1 t=1.5"},
		},
		{
			name: "time offset without t_start: read time",
			opts: parsers.Options{TimeField: "t", Params: map[string]string{"time": "offset"}},
			in:   "r,t\n1,1.5\n",
			want: []string{"M s=1 t=now r=1 t=1.5"},
		},
		{
			name: "run field: one auto-step counter per run",
			opts: parsers.Options{RunField: "seed"},
			in:   "seed,loss\na,1\nb,2\na,3\n,4\n",
			want: []string{"M[a] s=1 t=now loss=1", "M[b] s=1 t=now loss=2", "M[a] s=2 t=now loss=3"},
			errs: []error{parsers.ErrBadRunName},
		},
		{
			name: "run field missing from the header: one error for the file",
			opts: parsers.Options{RunField: "seed"},
			in:   "step,loss\n1,1\n2,2\n",
			errs: []error{parsers.ErrBadRunName},
		},
		{
			name: "unnamed columns are ignored",
			in:   "step,,a\n1,5,6\n",
			want: []string{"M s=1 t=now a=6"},
		},
		{
			name: "record too long",
			opts: parsers.Options{MaxRecordBytes: 10},
			in:   "step,a\n1,123456789\n2,3\n",
			want: []string{"M s=2 t=now a=3"},
			errs: []error{parsers.ErrTooLong},
		},
		{
			name: "an open quote is given up after MaxRecordBytes",
			opts: parsers.Options{MaxRecordBytes: 20},
			in:   "step,a\n1,\"oops\n2,3\n3,4\n4,5\n5,6\n6,7\n7,8\n",
			want: []string{"M s=6 t=now a=7", "M s=7 t=now a=8"},
			errs: []error{parsers.ErrTooLong},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var skipped []string
			tc.opts.OnSkip = func(r string) { skipped = append(skipped, r) }
			p := newParser(t, tc.opts)
			evs, errs := feed(t, p, records([]byte(tc.in)))
			got := showAll(evs)
			want := tc.want
			if want == nil {
				want = []string{}
			}
			// The metrics event of a row comes first, then its string events;
			// tables listing only string events compare those.
			if len(want) > 0 && !slices.ContainsFunc(want, func(s string) bool { return strings.HasPrefix(s, "M") || strings.HasPrefix(s, "C") }) {
				got = slices.DeleteFunc(got, func(s string) bool { return strings.HasPrefix(s, "M") })
			}
			if !slices.Equal(got, want) {
				t.Errorf("events:\ngot  %q\nwant %q", got, want)
			}
			if len(errs) != len(tc.errs) {
				t.Fatalf("got errors %v, want %v", errs, tc.errs)
			}
			for i, err := range errs {
				var re *parsers.RecordError
				if !errors.As(err, &re) || re.Line == 0 {
					t.Errorf("error %d: %v is not a *RecordError with a line", i, err)
				}
				if !errors.Is(err, tc.errs[i]) {
					t.Errorf("error %d: got %v, want %v", i, err, tc.errs[i])
				}
			}
			if tc.skipped != nil && !slices.Equal(skipped, tc.skipped) {
				t.Errorf("skipped: got %q, want %q", skipped, tc.skipped)
			}
			for _, e := range evs {
				if e.Pos.Offset == 0 {
					t.Errorf("event %s has no position", show(e))
				}
			}
		})
	}
}

// TestMissingColumnOnce: a configured step column the header lacks is one
// error for the file, at the header, naming the column and the header's
// columns; the rows are then dropped without an error each. A parser
// restored from the saved state says it once more, at its first row.
func TestMissingColumnOnce(t *testing.T) {
	header := "agent acc,demo acc,discriminator loss agent,discriminator loss demo,discriminator loss total," +
		"entropy loss,frac,kl,loss,max 100 episode reward,mean 100 episode reward,min 100 episode reward," +
		"num episodes,policy loss,reward signal mean,value loss"
	row := strings.TrimSuffix(strings.Repeat("1,", 16), ",")
	in := header + "\n" + row + "\n" + row + "\n" + row + "\n"
	opts := parsers.Options{StepField: "time/total_timesteps"}
	recs := records([]byte(in))

	p := newParser(t, opts)
	evs, errs := feed(t, p, recs[:3])
	if len(evs) != 0 {
		t.Errorf("events from an unusable file: %q", showAll(evs))
	}
	if len(errs) != 1 {
		t.Fatalf("got %d errors %v, want one for the file", len(errs), errs)
	}
	var re *parsers.RecordError
	var ce *parsers.ColumnError
	if !errors.As(errs[0], &re) || re.Line != 1 || !errors.As(errs[0], &ce) {
		t.Fatalf("error %#v: want a *RecordError at line 1 wrapping a *parsers.ColumnError", errs[0])
	}
	if ce.Role != "step" || ce.Column != "time/total_timesteps" || len(ce.Header) != 16 || ce.Header[0] != "agent acc" {
		t.Errorf("column error: %+v", ce)
	}
	if !errors.Is(errs[0], parsers.ErrUnusable) || parsers.Reason(errs[0]) != "bad_step" {
		t.Errorf("error %v: want ErrUnusable counted as bad_step, got reason %s", errs[0], parsers.Reason(errs[0]))
	}
	const msg = `line 1: step column "time/total_timesteps" not in the header (have: agent acc, demo acc, `
	if got := errs[0].Error(); !strings.HasPrefix(got, msg) || !strings.Contains(got, "... 16 columns)") {
		t.Errorf("message:\ngot  %s\nwant %s... 16 columns)...", got, msg)
	}

	st, err := p.State()
	if err != nil {
		t.Fatal(err)
	}
	p2 := newParser(t, opts)
	if err := p2.Restore(st); err != nil {
		t.Fatal(err)
	}
	evs, errs = feed(t, p2, append(recs[3:], recs[1:3]...))
	if len(evs) != 0 || len(errs) != 1 || !errors.As(errs[0], &re) || re.Line != 4 {
		t.Errorf("after a restore: events %q, errors %v; want none and one error at line 4", showAll(evs), errs)
	}
}

func TestErrorLines(t *testing.T) {
	p := newParser(t, parsers.Options{})
	_, errs := feed(t, p, records([]byte("step,a\n1,1\n\"2\n\",x,y\n")))
	var re *parsers.RecordError
	if len(errs) != 1 || !errors.As(errs[0], &re) {
		t.Fatalf("got %v, want one record error", errs)
	}
	// The record started on line 3 and ended on line 4.
	if re.Line != 3 {
		t.Errorf("line: got %d, want 3", re.Line)
	}
}

func TestEventPositions(t *testing.T) {
	p := newParser(t, parsers.Options{})
	evs, _ := feed(t, p, records([]byte("step,a,b\n1,2,x\n2,\"3\n\",y\n")))
	got := []int64{}
	for _, e := range evs {
		got = append(got, e.Pos.Offset)
	}
	// Both events of a row share the position just after it; a record
	// spanning lines ends after its last line.
	want := []int64{15, 15, 24, 24}
	if !slices.Equal(got, want) {
		t.Errorf("positions: got %v, want %v", got, want)
	}
}

func TestNewRejectsBadParams(t *testing.T) {
	for _, params := range []map[string]string{
		{"delimiter": "ab"},
		{"delimiter": "\""},
		{"time": "sometimes"},
		{"t_start": "yesterday"},
		{"strings": "maybe"},
		{"auto_step": "perhaps"},
		{"delimeter": ","},
		{"step_candidates": ""},
		{"step_candidates": "step||epoch"},
		{"step_candidates": "step| "},
	} {
		if _, err := mlcsv.NewParser(parsers.Options{Params: params}); err == nil {
			t.Errorf("NewParser(%v): got nil error", params)
		}
	}
	for _, d := range []string{",", ";", "tab", `\t`, "\t", "|", " "} {
		if _, err := mlcsv.NewParser(parsers.Options{Params: map[string]string{"delimiter": d}}); err != nil {
			t.Errorf("delimiter %q: %v", d, err)
		}
	}
}

func TestRegistered(t *testing.T) {
	f, ok := parsers.Lookup("csv")
	if !ok {
		t.Fatal("csv is not registered")
	}
	p, err := f(parsers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(parsers.Stateful); !ok {
		t.Error("the csv parser is not Stateful")
	}
}
