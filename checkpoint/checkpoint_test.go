package checkpoint

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
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
			Key: "train:abc", Source: "train", Path: "/x/m.jsonl", Fingerprint: "abc", FingerLen: 1024,
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

func TestSaveEncoded(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ := json.Marshal(Stream{Key: "a", Pos: event.Position{Offset: 7}})
	b, _ := json.Marshal(Stream{Key: "b"})
	r, _ := json.Marshal(Run{ExternalID: "x", RunID: 3})
	if err := s.SaveEncoded([][]byte{a, b}, [][]byte{r}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Streams) != 2 || got.Streams[0].Pos.Offset != 7 || len(got.Runs) != 1 || got.Runs[0].RunID != 3 {
		t.Errorf("got %+v", got)
	}
	if err := s.SaveEncoded(nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(); err != nil || len(got.Streams) != 0 {
		t.Errorf("empty save: %+v, %v", got, err)
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
