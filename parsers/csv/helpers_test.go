package csv_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	mlcsv "github.com/mlop-ai/mlop-agent/parsers/csv"
)

// readTime is the clock of every test parser: rows without a time of their
// own get it.
var readTime = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// realworld is the directory of the copied real files.
const realworld = "../../testdata/realworld"

func newParser(t testing.TB, opts parsers.Options) *mlcsv.Parser {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return readTime }
	}
	p, err := mlcsv.NewParser(opts)
	if err != nil {
		t.Fatalf("NewParser: %v", err)
	}
	return p
}

// records cuts file content into the records the watcher would hand out:
// one per line, without the '\n' (a '\r' stays), Line 1-based, Pos just
// after the line.
func records(data []byte) []event.Record {
	var out []event.Record
	var off int64
	for i := int64(1); len(data) > 0; i++ {
		n := bytes.IndexByte(data, '\n')
		line := data
		adv := len(data)
		if n >= 0 {
			line, adv = data[:n], n+1
		}
		off += int64(adv)
		out = append(out, event.Record{Line: i, Pos: event.Position{Offset: off}, Data: line})
		data = data[adv:]
	}
	return out
}

// feed parses every record; it copies rec.Data first so a parser keeping a
// reference to it is caught by the scribbling below.
func feed(t testing.TB, p parsers.Parser, recs []event.Record) ([]event.Event, []error) {
	t.Helper()
	var evs []event.Event
	var errs []error
	for _, r := range recs {
		buf := append([]byte(nil), r.Data...)
		r.Data = buf
		var err error
		evs, err = p.Parse(evs, r)
		if err != nil {
			errs = append(errs, err)
		}
		for i := range buf {
			buf[i] = 'X'
		}
	}
	return evs, errs
}

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(realworld, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// series summarises the points of one metric.
type series struct {
	name              string
	n                 int
	firstStep         int64
	first             float64
	lastStep          int64
	last              float64
	firstTime, lastMs int64
}

func summarize(evs []event.Event) map[string]*series {
	out := map[string]*series{}
	for _, e := range evs {
		if e.Kind != event.KindMetrics {
			continue
		}
		for _, p := range e.Points {
			s, ok := out[p.Name]
			if !ok {
				s = &series{name: p.Name, firstStep: e.Step, first: p.Value, firstTime: e.Time}
				out[p.Name] = s
			}
			s.n++
			s.lastStep, s.last, s.lastMs = e.Step, p.Value, e.Time
		}
	}
	return out
}

// want is one row of a hand-written expectation table.
type want struct {
	name      string
	n         int
	firstStep int64
	first     float64
	lastStep  int64
	last      float64
}

func checkSeries(t *testing.T, got map[string]*series, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		names := []string{}
		for k := range got {
			names = append(names, k)
		}
		t.Errorf("got %d metrics %q, want %d", len(got), names, len(wants))
	}
	for _, w := range wants {
		g, ok := got[w.name]
		if !ok {
			t.Errorf("metric %q missing", w.name)
			continue
		}
		if g.n != w.n || g.firstStep != w.firstStep || !same(g.first, w.first) || g.lastStep != w.lastStep || !same(g.last, w.last) {
			t.Errorf("metric %q: got n=%d first=(%d, %v) last=(%d, %v), want n=%d first=(%d, %v) last=(%d, %v)",
				w.name, g.n, g.firstStep, g.first, g.lastStep, g.last, w.n, w.firstStep, w.first, w.lastStep, w.last)
		}
	}
}

func same(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

func countKind(evs []event.Event, k event.Kind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}
