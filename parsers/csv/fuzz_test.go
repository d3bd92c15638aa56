package csv_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	mlcsv "github.com/mlop-ai/mlop-agent/parsers/csv"
)

// fuzzOpts are the option sets a fuzz input picks from with its first byte.
var fuzzOpts = []parsers.Options{
	{},
	{RunField: "run"},
	{StepField: "step", TimeField: "t", Params: map[string]string{"time": "offset"}},
	{Params: map[string]string{"time": "epoch", "strings": "skip", "delimiter": ";"}},
	{Params: map[string]string{"auto_step": "true", "comment": "//", "delimiter": "tab"}},
	{MaxRecordBytes: 64, RunField: "r"},
	{Params: map[string]string{"step_candidates": "b|step|a"}},
	{StepField: "s", RunField: "run"}, // usually missing: the file is unusable
}

// FuzzParse feeds arbitrary files, cut into lines, through the parser and
// checks that it never panics, that every rejection is a *RecordError with
// a known reason, that the events are well formed, and that carrying the
// state to a new parser at an arbitrary line gives the same events as a
// single pass.
func FuzzParse(f *testing.F) {
	for _, fc := range restartFiles {
		b, err := os.ReadFile(filepath.Join(realworld, fc.file))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 1024 {
			b = b[:1024]
		}
		f.Add(uint8(0), uint8(7), b)
		f.Add(uint8(2), uint8(3), b)
	}
	f.Add(uint8(1), uint8(2), []byte("run,step,x\na,1,2\nb,1,\"3\n\"\na,2,4\n"))
	f.Add(uint8(3), uint8(1), []byte("\xEF\xBB\xBFts;x\r\n1700000000;1\r\nsoon;2\r\n"))
	f.Add(uint8(4), uint8(1), []byte("//{\"t_start\": 1}\nepoch\tx\n1\t2\n"))
	f.Add(uint8(5), uint8(4), []byte("r,x\n\"a\"\"b\",1\n,2\n\"a\"\"b\",3\nr,x\n"))

	f.Fuzz(func(t *testing.T, optSel, cutSel uint8, data []byte) {
		opts := fuzzOpts[int(optSel)%len(fuzzOpts)]
		recs := records(data)

		whole, errs := feed(t, newParser(t, opts), recs)
		for _, err := range errs {
			var re *parsers.RecordError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RecordError", err)
			}
			if parsers.Reason(err) == "other" {
				t.Fatalf("error %v has no known reason", err)
			}
		}
		positions := map[event.Position]bool{}
		for _, r := range recs {
			positions[r.Pos] = true
		}
		for _, e := range whole {
			if !positions[e.Pos] {
				t.Fatalf("event %s has a position %v no record had", show(e), e.Pos)
			}
			switch e.Kind {
			case event.KindMetrics:
				if len(e.Points) == 0 || e.Step < 0 {
					t.Fatalf("bad metrics event %s", show(e))
				}
				for _, p := range e.Points {
					if !parsers.ValidName(p.Name) || !utf8.ValidString(p.Name) {
						t.Fatalf("bad metric name %q", p.Name)
					}
				}
			case event.KindData:
				if e.Type != event.DataStringSeries || len(e.Text) > mlcsv.MaxStringLen || !parsers.ValidName(e.Name) || e.Text == "" {
					t.Fatalf("bad data event %s", show(e))
				}
			case event.KindConfig:
				if len(e.Config) == 0 {
					t.Fatal("empty config event")
				}
			default:
				t.Fatalf("unexpected event kind %v", e.Kind)
			}
			if !utf8.ValidString(e.Run) || (opts.RunField != "" && strings.TrimSpace(e.Run) == "" && e.Kind != event.KindConfig) {
				t.Fatalf("bad run %q", e.Run)
			}
		}

		cut := 0
		if len(recs) > 0 {
			cut = int(cutSel) % (len(recs) + 1)
		}
		p1 := newParser(t, opts)
		first, _ := feed(t, p1, recs[:cut])
		st, err := p1.State()
		if err != nil {
			t.Fatal(err)
		}
		p2 := newParser(t, opts)
		if err := p2.Restore(st); err != nil {
			t.Fatalf("Restore(%s): %v", st, err)
		}
		st2, err := p2.State()
		if err != nil {
			t.Fatal(err)
		}
		if string(st2) != string(st) {
			t.Fatalf("state changed by a round trip:\n%s\n%s", st, st2)
		}
		rest, _ := feed(t, p2, recs[cut:])
		got := append(first, rest...)
		if !reflect.DeepEqual(normalize(got), normalize(whole)) {
			t.Fatalf("cut %d: restart differs from a single pass:\n%q\n%q", cut, showAll(got), showAll(whole))
		}
	})
}

// normalize renders events with their positions; unlike reflect.DeepEqual
// it finds NaN points equal.
func normalize(evs []event.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprint(e.Pos, " ", show(e))
	}
	return out
}
