package export

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

func multiPartExport(t *testing.T) *neptunetest.ExportManifest {
	t.Helper()
	m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 2, RowsPerPart: 60, BatchRows: 30, PointsPerRun: 300})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Runs[0].Parts) < 3 {
		t.Fatalf("generator: %d parts, want at least 3", len(m.Runs[0].Parts))
	}
	return m
}

// TestCorruptPart damages a later part of one run: that part is reported
// and skipped, the run's other parts and the other run are read.
func TestCorruptPart(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("this is not a parquet file, only garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"bad footer length", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			copy(b[len(b)-8:], []byte{0xff, 0xff, 0xff, 0x7f})
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := multiPartExport(t)
			r0, r1 := &m.Runs[0], &m.Runs[1]
			tc.damage(t, r0.Parts[1])
			f := New(quiet)
			infos := discover(t, f, m.DataDir)
			if len(infos) != 2 {
				t.Fatalf("Discover = %+v", infos)
			}
			evs, ws := openRead(t, f, infoFor(t, infos, m, r0), parsers.Options{})
			if got := countReasons(ws); got[ReasonCorrupt] != 1 || len(got) != 1 {
				t.Fatalf("warnings %v, want one corrupt: %v", got, ws)
			}
			if !strings.HasSuffix(ws[0].File, "_part_1.parquet") {
				t.Errorf("warning about %s, want part_1", ws[0].File)
			}
			offsets := map[int64]int{}
			for _, e := range evs {
				offsets[e.Pos.Offset]++
			}
			if offsets[1] != 0 || offsets[0] == 0 || offsets[int64(len(r0.Parts)-1)] == 0 {
				t.Errorf("events per part %v: want none from part 1, some from the first and last", offsets)
			}
			evs1, ws1 := openRead(t, f, infoFor(t, infos, m, r1), parsers.Options{})
			if len(ws1) != 0 || pointsIn(evs1) != r1.Points {
				t.Errorf("other run: %d points, warnings %v; want %d, none", pointsIn(evs1), ws1, r1.Points)
			}
		})
	}
}

// TestCorruptPart0 damages a run's part_0: that run fails to open, the
// other one is read.
func TestCorruptPart0(t *testing.T) {
	m := multiPartExport(t)
	r0, r1 := &m.Runs[0], &m.Runs[1]
	if err := os.WriteFile(r1.Parts[0], []byte("PAR1 garbage PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	infos := discover(t, f, m.DataDir)
	if len(infos) != 2 {
		t.Fatalf("Discover = %+v, want both runs (the broken one fails at Open)", infos)
	}
	_, err := f.Open(infoFor(t, infos, m, r1), event.Position{}, nil, parsers.Options{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open(broken run) = %v, want ErrCorrupt", err)
	}
	evs, ws := openRead(t, f, infoFor(t, infos, m, r0), parsers.Options{})
	if len(ws) != 0 || pointsIn(evs) != r0.Points {
		t.Errorf("other run: %d points, warnings %v; want %d, none", pointsIn(evs), ws, r0.Points)
	}
}

// TestMissingPart removes a middle part: reported, the rest is read.
func TestMissingPart(t *testing.T) {
	m := multiPartExport(t)
	r0 := &m.Runs[0]
	if err := os.Remove(r0.Parts[1]); err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	evs, ws := openRead(t, f, infoFor(t, discover(t, f, m.DataDir), m, r0), parsers.Options{})
	if got := countReasons(ws); !reflect.DeepEqual(got, map[string]int{ReasonMissingPart: 1}) {
		t.Fatalf("warnings %v, want one missing_part: %v", got, ws)
	}
	if n := pointsIn(evs); n == 0 || n >= r0.Points {
		t.Errorf("%d points, want some but not all %d", n, r0.Points)
	}
}

// TestMissingFilesDir points files_dir at an empty directory: every file
// is reported missing and recorded in the config; nothing else changes.
func TestMissingFilesDir(t *testing.T) {
	m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 1, PointsPerRun: 20})
	if err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	opts := parsers.Options{Params: map[string]string{ParamFilesDir: t.TempDir()}}
	evs, ws := openRead(t, f, discover(t, f, m.DataDir)[0], opts)
	s := summarize(t, evs)
	if len(s.files) != 0 {
		t.Errorf("file events %v, want none", s.files)
	}
	r := &m.Runs[0]
	if got := countReasons(ws); got[ReasonMissingFile] != len(r.Files) || len(got) != 1 {
		t.Errorf("warnings %v, want %d missing_file", got, len(r.Files))
	}
	if got := s.config[mapping.KeyMissingFiles+"artifacts/sample"]; got != r.Files[0].Rel {
		t.Errorf("missing file config %v, want %s", got, r.Files[0].Rel)
	}
	// Moving the files directory and naming it works.
	moved := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Rename(m.FilesDir, moved); err != nil {
		t.Fatal(err)
	}
	evs, ws = openRead(t, f, discover(t, f, m.DataDir)[0], parsers.Options{Params: map[string]string{ParamFilesDir: moved}})
	if s := summarize(t, evs); len(ws) != 0 || len(s.files["images/preds"]) != 3 {
		t.Errorf("with files_dir: warnings %v, files %v", ws, s.files)
	}
}

func ptr[T any](v T) *T { return &v }

// TestEdgeRows maps rows the generator does not write: nulls, bad steps,
// unknown types, paths leaving the files directory, a run without
// identity attributes.
func TestEdgeRows(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "proj-0000")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const p, r = "ws/edge", "edge-run"
	rows := []neptunetest.ExportRowSpec{
		{Project: p, Run: r, Path: "sys/name", Type: "string", Str: ptr("edge")},
		{Project: p, Run: r, Path: "parameters/nan", Type: "float"},                                                   // NaN param: null
		{Project: p, Run: r, Path: "parameters/set", Type: "string_set"},                                              // null set
		{Project: p, Run: r, Path: "sys/failed", Type: "bool", Bool: ptr(true)},                                       // FAILED
		{Project: p, Run: r, Path: "loss", Type: "float_series", Step: ptr(int64(1_000_000)), Time: ptr(int64(5000))}, // NaN point
		{Project: p, Run: r, Path: "loss", Type: "float_series", Time: ptr(int64(5001)), Float: ptr(1.0)},             // no step
		{Project: p, Run: r, Path: "loss", Type: "float_series", Step: ptr(int64(-1)), Float: ptr(1.0)},               // negative
		{Project: p, Run: r, Path: "loss", Type: "float_series", Step: ptr(int64(2_500_000)), Time: ptr(int64(5002)), Float: ptr(2.0)},
		{Project: p, Run: r, Path: "ref", Type: "git_ref"},
		{Project: p, Run: r, Path: "what"},
		{Project: p, Run: r, Type: "float", Float: ptr(1.0)},
		{Project: p, Run: r, Path: "notes", Type: "string_series", Step: ptr(int64(0))},
		{Project: p, Run: r, Path: "h", Type: "histogram_series", Step: ptr(int64(0)), Histogram: &neptunetest.ExportHistogram{Type: "COUNTING", Edges: []float64{0, 1}, Values: []float64{1, 2}}},
		{Project: p, Run: r, Path: "secret", Type: "file", File: ptr("../../../etc/passwd")},
		{Project: p, Run: r, Path: "nofile", Type: "file"},
	}
	if err := neptunetest.WriteExportPart(filepath.Join(dir, "edge-run-00_part_0.parquet"), rows, 4); err != nil {
		t.Fatal(err)
	}
	var skips []string
	f := New(quiet)
	infos := discover(t, f, filepath.Dir(dir))
	if len(infos) != 1 {
		t.Fatalf("Discover = %+v", infos)
	}
	evs, ws := openRead(t, f, infos[0], parsers.Options{OnSkip: func(r string) { skips = append(skips, r) }})
	s := summarize(t, evs)
	if s.run.Name != "edge" || s.run.ExternalID != r || s.run.Config["neptune/export/variant"] != variant2 { // sys/failed exists only in 2.x
		t.Errorf("run %+v", s.run)
	}
	if s.run.Config["neptune/step_multiplier"] != int64(10) {
		t.Errorf("multiplier %v, want 10 (step 2.5)", s.run.Config["neptune/step_multiplier"])
	}
	loss := s.metrics["loss"]
	if len(loss) != 2 || !math.IsNaN(loss[0].value) || loss[0].step != 10 || loss[1] != (point{25, 2, 5002}) {
		t.Errorf("loss = %v, want NaN at 10 and 2 at 25", loss)
	}
	if _, ok := s.config["parameters/nan"]; ok {
		t.Error("a null parameter reached the config")
	}
	if !reflect.DeepEqual(s.statuses, []string{event.StatusFailed}) {
		t.Errorf("statuses %v", s.statuses)
	}
	want := map[string]int{ReasonBadStep: 2, ReasonUnknownOp: 1, ReasonCorrupt: 2, ReasonBadValue: 3}
	if got := countReasons(ws); !reflect.DeepEqual(got, want) {
		t.Errorf("warnings %v, want %v: %v", got, want, ws)
	}
	nulls := 0
	for _, r := range skips {
		if r == parsers.SkipNull {
			nulls++
		}
	}
	if nulls != 3 {
		t.Errorf("%d null skips, want 3 (a parameter, a set, a string value): %v", nulls, skips)
	}
}

// TestUnknownVariantIndexLayout: without identity attributes the file
// layout says whether file-series steps are indexes.
func TestUnknownVariantIndexLayout(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		index      bool
	}{
		{"neptune2 layout", "ws/p/R-1/img/2.png", true},
		{"neptune3 layout", "R-1/img/step_2_000000.png", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data", "proj")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			rows := []neptunetest.ExportRowSpec{{Project: "ws/p", Run: "R-1", Path: "img", Type: "file_series", Step: ptr(int64(2_000_000)), File: ptr(tc.file)}}
			if err := neptunetest.WriteExportPart(filepath.Join(dir, "R-1_part_0.parquet"), rows, 0); err != nil {
				t.Fatal(err)
			}
			f := New(quiet)
			evs, _ := openRead(t, f, discover(t, f, dir)[0], parsers.Options{})
			_, got := evs[0].Info.Config["neptune/export/file_series_steps"]
			if got != tc.index {
				t.Errorf("file_series_steps set: %v, want %v", got, tc.index)
			}
		})
	}
}

func TestIndexLayout(t *testing.T) {
	tests := []struct {
		file  string
		micro int64
		want  bool
	}{
		{"ws/p/R-1/a/b/3.png", 3_000_000, true},
		{"ws/p/R-1/a/b/03.jpeg", 3_000_000, true},
		{"ws/p/R-1/a/b/3.png", 4_000_000, false},
		{"ws/p/R-1/a/b/3.5.png", 3_000_000, true},
		{"ws/p/R-1/a/b/x.png", 0, false},
		{"ws/p/R-2/a/b/3.png", 3_000_000, false},
		{"R-1/a/b/step_3_000000.png", 3_000_000, false},
		{"ws/p/R-1/a/b/c/3.png", 3_000_000, false},
	}
	for _, tc := range tests {
		if got := indexLayout("ws/p", "R-1", "a/b", tc.file, tc.micro); got != tc.want {
			t.Errorf("indexLayout(%s, %d) = %v, want %v", tc.file, tc.micro, got, tc.want)
		}
	}
}
