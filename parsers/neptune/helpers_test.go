package neptune

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

const testdataDir = "../../testdata/neptune"

// walSHA256 is the sha256 of the original scale-h WAL, stored gzipped.
const walSHA256 = "b2d33ff43ecd3fba069ec1cde5df0c750389e0d2b2a6c0d67491726ab0c0882d"

// fixture is a private copy of a testdata fixture.
type fixture struct {
	name string
	root string // the copy
	pm   string // path_map rule re-rooting the generator's paths onto the copy
}

// copyFixture copies testdata/neptune/<name> into a temporary directory,
// decompressing *.gz files, so tests never open the repository's files.
func copyFixture(t testing.TB, name string) fixture {
	t.Helper()
	src := filepath.Join(testdataDir, name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		var r io.Reader = in
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(in)
			if err != nil {
				return err
			}
			defer zr.Close()
			r, target = zr, strings.TrimSuffix(target, ".gz")
		}
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy fixture %s: %v", name, err)
	}
	return fixture{name: name, root: dst, pm: "/home/researcher/mnist-exp/" + name + "=" + dst}
}

// hashTree returns sha256 per file below root.
func hashTree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(root, p)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testOptions(fx fixture, t testing.TB) parsers.Options {
	return parsers.Options{Params: map[string]string{
		ParamPathMap:  fx.pm,
		ParamSpoolDir: filepath.Join(t.TempDir(), "spool"),
	}}.WithDefaults()
}

// discoverOne discovers the fixture and returns its only stream.
func discoverOne(t testing.TB, f *Format, root string) parsers.StreamInfo {
	t.Helper()
	infos, err := f.Discover(root)
	if err != nil {
		t.Fatalf("Discover(%s): %v", root, err)
	}
	if len(infos) != 1 {
		t.Fatalf("Discover(%s) = %d streams, want 1: %+v", root, len(infos), infos)
	}
	return infos[0]
}

// readAll reads a stream until io.EOF and returns the events and the last
// chunk's end and state.
func readAll(t testing.TB, s parsers.Stream) ([]event.Event, event.Position, []byte) {
	t.Helper()
	var all []event.Event
	var end event.Position
	var state []byte
	for i := 0; ; i++ {
		ch, err := s.Next(context.Background(), nil)
		all = append(all, ch.Events...)
		if ch.State != nil {
			end, state = ch.End, ch.State
		}
		if errors.Is(err, io.EOF) {
			return all, end, state
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if i > 1_000_000 {
			t.Fatal("stream never reached EOF")
		}
	}
}

// openAll discovers, opens and reads a fixture in one pass.
func openAll(t testing.TB, fx fixture) ([]event.Event, []Warning) {
	t.Helper()
	f := New()
	info := discoverOne(t, f, fx.root)
	s, err := f.Open(info, event.Position{}, nil, testOptions(fx, t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	evs, _, _ := readAll(t, s)
	ws, _ := s.(Warner).Warnings()
	return evs, ws
}

// manifest loads a fixture's manifest.json.
func manifest(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, name, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
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
