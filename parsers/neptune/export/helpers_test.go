package export

import (
	"context"
	"errors"
	"io"
	"os"
	"sort"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// readAll reads a stream to io.EOF and returns its events (copied) and the
// last chunk.
func readAll(t testing.TB, s parsers.Stream) ([]event.Event, parsers.Chunk) {
	t.Helper()
	var out []event.Event
	var last parsers.Chunk
	var prevEnd event.Position
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("stream does not end")
		}
		ch, err := s.Next(context.Background(), nil)
		if len(ch.Events) > 0 && !prevEnd.Less(ch.End) {
			t.Fatalf("chunk end %v does not advance past %v", ch.End, prevEnd)
		}
		for _, e := range ch.Events {
			if ch.End.Less(e.Pos) {
				t.Fatalf("event at %v after its chunk's end %v", e.Pos, ch.End)
			}
		}
		out = append(out, ch.Events...)
		if len(ch.Events) > 0 {
			prevEnd = ch.End
			last = ch
		}
		if errors.Is(err, io.EOF) {
			return out, last
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
	}
}

// openRead opens a stream from the beginning and reads it all.
func openRead(t testing.TB, f *Format, info parsers.StreamInfo, opts parsers.Options) ([]event.Event, []parsers.Warning) {
	t.Helper()
	s, err := f.Open(info, event.Position{}, nil, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", info.Key, err)
	}
	defer s.Close()
	evs, _ := readAll(t, s)
	ws, dropped := s.(parsers.Warner).Warnings()
	if dropped > 0 {
		t.Fatalf("%d warnings dropped", dropped)
	}
	return evs, ws
}

// point is one delivered metric value.
type point struct {
	step  int64
	value float64
	time  int64
}

// summary is what a run looks like to mlop after all its events.
type summary struct {
	run      *event.RunInfo
	runs     int
	metrics  map[string][]point
	metricEv int
	config   map[string]any
	tags     map[string]bool
	data     map[string][]event.Event // by name
	logs     []event.Event
	files    map[string][]event.Event
	statuses []string
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
		switch e.Kind {
		case event.KindRun:
			s.run = e.Info
			s.runs++
		case event.KindMetrics:
			s.metricEv++
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
	out := []string{}
	for tg := range s.tags {
		out = append(out, tg)
	}
	sort.Strings(out)
	return out
}

// mlopStep converts a manifest step to the mlop step under mul.
func mlopStep(micro, mul int64) int64 { return micro * mul / 1_000_000 }

// discover runs Discover and fails the test on an error.
func discover(t testing.TB, f *Format, path string) []parsers.StreamInfo {
	t.Helper()
	infos, err := f.Discover(path)
	if err != nil {
		t.Fatalf("Discover(%s): %v", path, err)
	}
	return infos
}

// infoFor finds the stream of a manifest run.
func infoFor(t testing.TB, infos []parsers.StreamInfo, m *neptunetest.ExportManifest, r *neptunetest.ExportRun) parsers.StreamInfo {
	t.Helper()
	want := keyOf(m, r)
	for _, in := range infos {
		if in.Key == want {
			return in
		}
	}
	t.Fatalf("no stream %s in %+v", want, infos)
	return parsers.StreamInfo{}
}

// keyOf is the stream key of a manifest run.
func keyOf(m *neptunetest.ExportManifest, r *neptunetest.ExportRun) string {
	return keyPrefix + baseName(m.ProjectDir) + "/" + r.Prefix
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' || p[i] == '\\' {
			return p[i+1:]
		}
	}
	return p
}

// countReasons counts warnings by reason.
func countReasons(ws []parsers.Warning) map[string]int {
	out := map[string]int{}
	for _, w := range ws {
		out[w.Reason]++
	}
	return out
}

// copyFile copies src over dst.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// resumedRest checks that a stream resumed from a saved state begins by
// naming its run again (the identity of the first pass's run event) and
// returns the events after that, which must be the rest of a single pass.
func resumedRest(t testing.TB, rest, full []event.Event, withState bool) []event.Event {
	t.Helper()
	if !withState || len(rest) == 0 {
		return rest
	}
	if rest[0].Kind != event.KindRun || rest[0].Info == nil || len(full) == 0 || full[0].Info == nil ||
		rest[0].Info.ExternalID != full[0].Info.ExternalID || rest[0].Info.Name != full[0].Info.Name {
		t.Fatalf("a resumed stream must start with its run's identity; got %+v", rest[0])
	}
	return rest[1:]
}
