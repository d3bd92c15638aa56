package export

import (
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// TestDiscoverSkipped: what an export holds and the reader does not
// import is listed, each with its reason: runs without part_0 (being
// exported: one with a finished part_1, one with only its part_0.tmp),
// export-models' models/ and model_versions/ (mlop has no model
// registry), counted, and an unreadable directory. Discover alone logs
// each once.
func TestDiscoverSkipped(t *testing.T) {
	root := t.TempDir()
	m, err := neptunetest.WriteExport(root, neptunetest.ExportOptions{Runs: 1, PointsPerRun: 20, Pending: true})
	if err != nil {
		t.Fatal(err)
	}
	// A run whose first part is still being written.
	tmpOnly := filepath.Join(m.ProjectDir, "fresh-run-0000_part_0.parquet.tmp")
	if err := os.WriteFile(tmpOnly, []byte("PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
	// export-models beside the runs: a model with two parameters, a file
	// and one series; a model version with one parameter.
	const p = "ws/proj"
	models, versions := filepath.Join(m.ProjectDir, "models"), filepath.Join(m.ProjectDir, "model_versions")
	for _, d := range []string{models, versions} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	model := []neptunetest.ExportRowSpec{
		{Project: p, Run: "PROJ-MOD", Path: "sys/id", Type: "string", Str: ptr("PROJ-MOD")},
		{Project: p, Run: "PROJ-MOD", Path: "sys/name", Type: "string", Str: ptr("fraud")},
		{Project: p, Run: "PROJ-MOD", Path: "signature", Type: "file", File: ptr("ws/proj/PROJ-MOD/signature")},
		{Project: p, Run: "PROJ-MOD", Path: "training/loss", Type: "float_series", Step: ptr(int64(0)), Float: ptr(0.5)},
		{Project: p, Run: "PROJ-MOD", Path: "training/loss", Type: "float_series", Step: ptr(int64(1_000_000)), Float: ptr(0.25)},
	}
	version := []neptunetest.ExportRowSpec{{Project: p, Run: "PROJ-MOD-1", Path: "validation/acc", Type: "float", Float: ptr(0.97)}}
	modelPart := filepath.Join(models, "PROJ-MOD-0000_part_0.parquet")
	versionPart := filepath.Join(versions, "PROJ-MOD-1-0000_part_0.parquet")
	if err := neptunetest.WriteExportPart(modelPart, model, 0); err != nil {
		t.Fatal(err)
	}
	if err := neptunetest.WriteExportPart(versionPart, version, 0); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(root, "locked")
	if err := os.MkdirAll(locked, 0o755); err != nil {
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

	var logs bytes.Buffer
	f := New(slog.New(slog.NewTextHandler(&logs, nil)))
	infos, skipped, err := f.DiscoverSkipped(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(m.Runs) {
		t.Errorf("streams %+v, want the %d complete runs", infos, len(m.Runs))
	}
	var got []string
	for _, s := range skipped {
		got = append(got, fmt.Sprintf("%s %s %s %s a=%d s=%d left=%v", s.Reason, s.Kind, s.ID, s.Path, s.Attributes, s.Series, s.LeftBehind))
		if s.Detail == "" {
			t.Errorf("%s: no detail", s.Path)
		}
	}
	want := []string{
		fmt.Sprintf("incomplete run fresh-run-0000 %s a=0 s=0 left=false", filepath.Join(m.ProjectDir, "fresh-run-0000_part_0.parquet")),
		fmt.Sprintf("incomplete run %s %s a=0 s=0 left=false", m.Pending[0], filepath.Join(m.ProjectDir, m.Pending[0]+"_part_0.parquet")),
		fmt.Sprintf("container model_version PROJ-MOD-1 %s a=1 s=0 left=true", versionPart),
		fmt.Sprintf("container model PROJ-MOD %s a=3 s=1 left=true", modelPart),
		fmt.Sprintf("unreadable directory  %s a=0 s=0 left=true", locked),
	}
	less := func(a, b string) bool { return strings.Fields(a)[3] < strings.Fields(b)[3] }
	sortBy(want, less)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("skipped\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Discover logs each once, however often it is called.
	for range 2 {
		if again, err := f.Discover(root); err != nil || !reflect.DeepEqual(again, infos) {
			t.Errorf("Discover = %+v, %v", again, err)
		}
	}
	if n := strings.Count(logs.String(), "msg=\"neptune export data not imported\""); n != len(want) {
		t.Errorf("%d log lines, want %d:\n%s", n, len(want), logs.String())
	}
	// Asked for one part of a model or a pending run: nothing to open,
	// the item listed.
	for _, path := range []string{modelPart, tmpOnly} {
		infos, skipped, err := f.DiscoverSkipped(path)
		if err != nil || len(infos) != 0 || len(skipped) != 1 {
			t.Errorf("DiscoverSkipped(%s) = %+v, %+v, %v", path, infos, skipped, err)
		}
	}
	if s, err := f.Open(parsers.StreamInfo{Key: keyPrefix + "models/PROJ-MOD-0000", Path: modelPart}, event.Position{}, nil, parsers.Options{}); err == nil {
		s.Close()
		t.Error("an exported model opened as a run")
	}
}

func sortBy(s []string, less func(a, b string) bool) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
