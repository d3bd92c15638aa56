package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/sink"
)

// A backfill never ends quietly on nothing: a source that matches nothing,
// a file whose records are all bad, a source whose files are all empty
// end with ErrFailed and a not_imported entry each; an empty file beside
// files that gave runs is listed but fails nothing; a second backfill over
// files delivered before is no failure.
func TestBackfillSaysWhatGaveNothing(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "good", "a.jsonl"), `{"step": 1, "loss": 1}`+"\n")
	write(t, filepath.Join(dir, "good", "empty.jsonl"), "\n") // blank lines only
	write(t, filepath.Join(dir, "good", "zero.jsonl"), "")    // not a stream before its first byte
	write(t, filepath.Join(dir, "bad", "b.jsonl"), "not json\n{\"step\": \"x\"}\n")
	write(t, filepath.Join(dir, "hollow", "c.jsonl"), "\n\n")
	src := func(name, glob string) Source {
		return Source{Name: name, Format: "jsonl", Paths: []string{filepath.Join(dir, glob)}}
	}
	state := filepath.Join(dir, "state")
	cases := []struct {
		name    string
		sources []Source
		fails   bool
		want    []string // reason path-base pairs, sorted
	}{
		{"good with an empty file", []Source{src("good", "good/*.jsonl")}, false, []string{"empty empty.jsonl"}},
		{"good again", []Source{src("good", "good/*.jsonl")}, false, []string{"empty empty.jsonl"}},
		{"nothing matches", []Source{src("none", "none/*.jsonl")}, true, []string{"nothing_found *.jsonl"}},
		{"all bad", []Source{src("bad", "bad/*.jsonl")}, true, []string{"no_usable_records b.jsonl"}},
		{"only empty files", []Source{src("hollow", "hollow/*.jsonl")}, true, []string{"empty c.jsonl"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := runBackfill(t, Options{Project: "p", StateDir: state, Sources: c.sources}, newClient(t, srv))
			if c.fails != errors.Is(err, ErrFailed) {
				t.Fatalf("backfill: %v, want ErrFailed %v", err, c.fails)
			}
			var got []string
			for _, n := range a.Report().NotImported {
				got = append(got, n.Reason+" "+filepath.Base(n.Path))
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("not imported %q, want %q", got, c.want)
			}
		})
	}
}

func TestMissingFilesPrefix(t *testing.T) {
	var m missingFiles
	for _, p := range []string{"/home/u/proj/out/a.png", "/home/u/proj/ckpt/b.pt", "inline image", "rel/c.txt"} {
		m.add(p)
	}
	if n, prefix := m.summary(); n != 4 || prefix != "/home/u/proj" {
		t.Errorf("summary %d %q, want 4 /home/u/proj", n, prefix)
	}
	var one missingFiles
	one.add("/data/x/y.png")
	if _, prefix := one.summary(); prefix != "/data/x" {
		t.Errorf("one file: prefix %q, want /data/x", prefix)
	}
	var none missingFiles
	none.add("inline image")
	if n, prefix := none.summary(); n != 1 || prefix != "" {
		t.Errorf("no absolute path: %d %q", n, prefix)
	}
}

// syncBuf is a log sink safe to read while the agent writes.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A backfill reports progress: off a terminal an INFO line with runs,
// points, rate and ETA; on one a line rewritten in place and left
// standing at the end.
func TestBackfillProgress(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.jsonl"), `{"step": 1, "loss": 1}`+"\n")
	for _, tty := range []bool{false, true} {
		var logs, term syncBuf
		sk := &gatedSink{Sink: newClient(t, srv), gate: make(chan struct{})}
		opts := Options{Project: "p", StateDir: filepath.Join(dir, fmt.Sprint("state-", tty)),
			Sources:  []Source{{Name: "s", Format: "jsonl", Paths: []string{filepath.Join(dir, "*.jsonl")}}},
			Progress: &term, ProgressTTY: tty, ProgressEvery: 5 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		a, err := New(opts, sk)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(context.Background()) }()
		// Held at the first send: the reports come while it waits.
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(logs.String()+term.String(), "progress") {
			if time.Now().After(deadline) {
				t.Fatalf("tty %v: no progress report in 30s:\n%s%s", tty, logs.String(), term.String())
			}
			time.Sleep(time.Millisecond)
		}
		close(sk.gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if tty {
			out := term.String()
			if !strings.Contains(out, "\r\x1b[Kprogress: streams ") || !strings.Contains(out, " runs, ") || !strings.HasSuffix(out, "\n") {
				t.Errorf("terminal progress %q", out)
			}
			if strings.Contains(logs.String(), "msg=progress") {
				t.Errorf("a terminal got log lines too")
			}
		} else {
			line := logs.String()
			for _, k := range []string{"msg=progress", "streams=", "runs=", "points_sent=", "points_per_s=", "eta="} {
				if !strings.Contains(line, k) {
					t.Errorf("progress log lacks %s:\n%s", k, line)
				}
			}
			if term.String() != "" {
				t.Errorf("off a terminal, raw progress lines %q", term.String())
			}
		}
	}
}

// gatedSink holds every send until gate is closed.
type gatedSink struct {
	sink.Sink
	gate chan struct{}
}

func (g *gatedSink) Send(ctx context.Context, runID int64, project string, b sink.Batch) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Sink.Send(ctx, runID, project, b)
}
