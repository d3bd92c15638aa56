package neptune

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// TestDiscoverContainers: neptune-client model, model_version and project
// containers beside a run are found, counted and listed as left behind,
// never opened as streams; the run is imported as before.
func TestDiscoverContainers(t *testing.T) {
	root := t.TempDir()
	runs, err := neptunetest.WriteN1Queue(root, 1, 20)
	if err != nil {
		t.Fatal(err)
	}
	want, err := neptunetest.WriteN1Containers(root, "model", "model_version", "project")
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	for _, path := range []string{root, filepath.Join(root, ".neptune"), filepath.Join(root, ".neptune", "async")} {
		infos, skipped, err := f.DiscoverSkipped(path)
		if err != nil {
			t.Fatal(err)
		}
		wantRuns := 1
		if strings.HasSuffix(path, "async") {
			wantRuns = 0 // the run is offline
		}
		if len(infos) != wantRuns || (wantRuns == 1 && infos[0].RunID != runs[0].UUID) {
			t.Errorf("Discover(%s) streams %+v", path, infos)
		}
		if only, err := f.Discover(path); err != nil || !reflect.DeepEqual(only, infos) {
			t.Errorf("Discover(%s) = %+v, %v; DiscoverSkipped gave %+v", path, only, err, infos)
		}
		var got []string
		for _, s := range skipped {
			got = append(got, fmt.Sprintf("%s %s %s %s a=%d s=%d left=%v", s.Reason, s.Kind, s.ID, s.Path, s.Attributes, s.Series, s.LeftBehind))
			if !strings.Contains(s.Detail, "not imported") || !strings.Contains(s.Detail, s.Kind) {
				t.Errorf("detail %q", s.Detail)
			}
		}
		var wantS []string
		for _, c := range want {
			wantS = append(wantS, fmt.Sprintf("%s %s %s %s a=%d s=%d left=true", parsers.SkippedContainer, c.Type, c.UUID, c.Dir, c.Attributes, c.Series))
		}
		if !reflect.DeepEqual(got, wantS) {
			t.Errorf("Discover(%s) skipped\n%s\nwant\n%s", path, strings.Join(got, "\n"), strings.Join(wantS, "\n"))
		}
	}
	// A container key is not a stream this format opens.
	for _, c := range want {
		id := classifyN1(c.Dir)
		if s, err := f.Open(parsers.StreamInfo{Key: id.key(), Path: c.Dir}, event.Position{}, nil, parsers.Options{}); !errors.Is(err, ErrUnknownStream) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open of the %s container: %v, want ErrUnknownStream", c.Type, err)
		}
	}
}

// TestDiscoverUnreadable: a directory below the path that cannot be
// listed is reported as left behind (whatever it holds), and the rest is
// discovered.
func TestDiscoverUnreadable(t *testing.T) {
	root := t.TempDir()
	if _, err := neptunetest.WriteN1Queue(root, 1, 5); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(root, "other", ".neptune")
	if _, err := neptunetest.WriteN1Queue(filepath.Join(root, "other"), 1, 5); err != nil {
		t.Fatal(err)
	}
	real := readDir
	t.Cleanup(func() { readDir = real })
	readDir = func(dir string) ([]os.DirEntry, error) {
		if dir == locked {
			return nil, &fs.PathError{Op: "open", Path: dir, Err: fs.ErrPermission}
		}
		return real(dir)
	}
	infos, skipped, err := New().DiscoverSkipped(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || !strings.HasPrefix(infos[0].Path, filepath.Join(root, ".neptune")) {
		t.Errorf("streams %+v", infos)
	}
	if len(skipped) != 1 || skipped[0].Reason != parsers.SkippedUnreadable || skipped[0].Path != locked || !skipped[0].LeftBehind ||
		!strings.Contains(skipped[0].Detail, "permission denied") {
		t.Errorf("skipped %+v", skipped)
	}
	// The path itself unreadable is an error, not a skip.
	readDir = func(string) ([]os.DirEntry, error) { return nil, fs.ErrPermission }
	if _, _, err := New().DiscoverSkipped(root); err == nil {
		t.Error("unreadable root: no error")
	}
}
