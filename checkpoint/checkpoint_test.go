package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/internal/fsutil"
)

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load()
	if err != nil || len(st.Streams) != 0 {
		t.Fatalf("fresh load = %+v, %v", st, err)
	}
	want := &State{
		Streams: []Stream{{
			Key: "train:abc", Source: "train", Path: "/x/m.jsonl", FileMark: event.FileMark{Fingerprint: "abc", FingerLen: 1024},
			Pos: event.Position{Offset: 4096}, Line: 40, ParserState: []byte(`{"last":{"":40}}`),
			Sent: map[string]Mark{"run-a": {Pos: event.Position{Offset: 5000}, Index: 1}},
		}},
		Runs: []Run{{ExternalID: "run-a", Project: "p", Name: "a", RunID: 7, Tags: []string{"x"}}},
	}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	got.SavedAt, want.SavedAt = got.SavedAt.UTC(), want.SavedAt.UTC()
	if !reflect.DeepEqual(got.Streams, want.Streams) || !reflect.DeepEqual(got.Runs, want.Runs) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open err = %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestStrictRead(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"garbage", "{not json", "corrupt"},
		{"unknown field", `{"version":1,"streams":[],"runs":[],"bogus":1}`, "corrupt"},
		{"other version", `{"version":99,"streams":[],"runs":[]}`, "version 99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Read(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestMarkLess(t *testing.T) {
	a := Mark{Pos: event.Position{Offset: 10}, Index: 2}
	b := Mark{Pos: event.Position{Offset: 10}, Index: 3}
	c := Mark{Pos: event.Position{Offset: 11}}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Less(a) {
		t.Error("Mark.Less order wrong")
	}
}

// TestImage: entries put into an image are what the state file holds;
// only changed entries are re-encoded; nothing is written when nothing
// changed; done streams older than the cut-off are dropped on load.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	im := NewImage(&State{Streams: []Stream{
		{Key: "gone", Done: true, Updated: old},
		{Key: "kept", Done: true, Updated: time.Now()},
	}}, time.Now().Add(-time.Hour))
	im.PutStream(Stream{Key: "b", Pos: event.Position{Offset: 7}, FileMark: event.FileMark{Fingerprint: "ff", FingerLen: 3, Marker: "mm", MarkerLen: 2}})
	im.PutStream(Stream{Key: "a"})
	im.PutRun(Run{ExternalID: "x", Project: "p", RunID: 3})
	if err := s.SaveImage(im, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, st := range got.Streams {
		keys = append(keys, st.Key)
	}
	if strings.Join(keys, ",") != "a,b,kept" || len(got.Runs) != 1 || got.Runs[0].RunID != 3 {
		t.Fatalf("got %+v", got)
	}
	if b := got.Streams[1]; b.Pos.Offset != 7 || b.Fingerprint != "ff" || b.MarkerLen != 2 {
		t.Errorf("stream b = %+v", b)
	}
	// The file marks are stored inline, as before the FileMark type.
	raw, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !strings.Contains(string(raw), `"fingerprint":"ff","finger_len":3,"marker":"mm","marker_len":2`) {
		t.Errorf("state file layout changed: %s", raw)
	}
	// Nothing changed: nothing is written.
	fi0, _ := os.Stat(filepath.Join(dir, FileName))
	if err := s.SaveImage(im, time.Now().Add(time.Hour), false); err != nil {
		t.Fatal(err)
	}
	if fi1, _ := os.Stat(filepath.Join(dir, FileName)); !fi1.ModTime().Equal(fi0.ModTime()) {
		t.Error("an unchanged image was written")
	}
	// One changed entry is re-encoded, the others keep their bytes.
	encA := im.streams.m["a"].enc
	im.PutStream(Stream{Key: "b", Pos: event.Position{Offset: 9}})
	if im.streams.m["b"].enc != nil || &im.streams.m["a"].enc[0] != &encA[0] {
		t.Error("put must drop only the changed entry's encoding")
	}
	if err := s.SaveImage(im, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(); got.Streams[1].Pos.Offset != 9 {
		t.Errorf("after a change: %+v", got.Streams[1])
	}
}

// TestCrashAtEverySaveStep: a process killed at any step of a save (before
// the temporary file is written, after it is written but not synced, synced
// but not renamed, renamed but the directory not synced) leaves a state
// file that reads as the old state or the new one, never a broken one; the
// next Open removes the leftover temporary file.
func TestCrashAtEverySaveStep(t *testing.T) {
	oldState := &State{Streams: []Stream{{Key: "s", Pos: event.Position{Offset: 100}}}}
	newState := &State{Streams: []Stream{{Key: "s", Pos: event.Position{Offset: 200}}}}
	for _, step := range fsutil.AtomicSteps {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Save(oldState); err != nil {
				t.Fatal(err)
			}
			killed := errors.New("killed")
			s.step = func(name string) error {
				if name == step {
					return killed
				}
				return nil
			}
			if err := s.Save(newState); !errors.Is(err, killed) {
				t.Fatalf("save = %v, want the simulated kill at %s", err, step)
			}
			s.Close()
			got, err := Read(dir)
			if err != nil {
				t.Fatalf("after a crash at %s the state is unreadable: %v", step, err)
			}
			off := got.Streams[0].Pos.Offset
			// Before the rename the old state stands; from the rename on,
			// the new one.
			want := int64(100)
			if step == "syncdir" {
				want = 200
			}
			if off != want {
				t.Errorf("after a crash at %s the offset is %d, want %d", step, off, want)
			}
			s, err = Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			left, _ := filepath.Glob(filepath.Join(dir, fsutil.TempPrefix(FileName)+"*"))
			if len(left) != 0 {
				t.Errorf("temporary files left after Open: %v", left)
			}
			if err := s.Save(newState); err != nil {
				t.Fatalf("the next save: %v", err)
			}
		})
	}
}

// TestImpossibleValuesAreCorruption: values no agent writes are refused
// like a damaged file, naming the entry, never silently resumed from.
func TestImpossibleValuesAreCorruption(t *testing.T) {
	good := `{"key":"s:a","source":"s","path":"/m","pos":{"offset":10},"updated_at":"2026-01-01T00:00:00Z"}`
	tests := []struct {
		name, streams, runs, want string
	}{
		{"valid", good, `{"external_id":"e","project":"p","name":"n","run_id":1}`, ""},
		{"negative offset", `{"key":"s:a","source":"s","path":"/m","pos":{"offset":-5},"updated_at":"2026-01-01T00:00:00Z"}`, "", "negative position"},
		{"negative seq", `{"key":"s:a","source":"s","path":"/m","pos":{"offset":0,"seq":-1},"updated_at":"2026-01-01T00:00:00Z"}`, "", "negative position"},
		{"negative line", `{"key":"s:a","source":"s","path":"/m","pos":{"offset":1},"line":-1,"updated_at":"2026-01-01T00:00:00Z"}`, "", "negative line"},
		{"fingerprint without length", `{"key":"s:a","source":"s","path":"/m","fingerprint":"ab","pos":{"offset":1},"updated_at":"2026-01-01T00:00:00Z"}`, "", "without its length"},
		{"duplicate key", good + "," + good, "", "appears twice"},
		{"no key", `{"key":"","source":"s","path":"/m","pos":{"offset":1},"updated_at":"2026-01-01T00:00:00Z"}`, "", "no key"},
		{"negative sent mark", `{"key":"s:a","source":"s","path":"/m","pos":{"offset":1},"sent":{"r":{"pos":{"offset":-1},"index":0}},"updated_at":"2026-01-01T00:00:00Z"}`, "", "sent mark"},
		{"run without id", good, `{"external_id":"e","project":"p","name":"n","run_id":0}`, "no external id or run id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			doc := `{"version":1,"saved_at":"2026-01-01T00:00:00Z","streams":[` + tt.streams + `],"runs":[` + tt.runs + `]}`
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Read(dir)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("valid state refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "is corrupt")):
				t.Fatalf("err = %v, want corruption naming %q", err, tt.want)
			}
		})
	}
}
