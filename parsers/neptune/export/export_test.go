package export

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// exportCases are the exports the manifest tests read.
var exportCases = []struct {
	name    string
	opts    neptunetest.ExportOptions
	variant string
}{
	{"neptune3", neptunetest.ExportOptions{Variant: neptunetest.Export3, Fork: true, FractionalSteps: true, MissingFiles: true,
		Pending: true, RowsPerPart: 120, BatchRows: 50, PointsPerRun: 400}, variant3},
	{"neptune3-int64-steps", neptunetest.ExportOptions{Variant: neptunetest.Export3, Int64Steps: true, Fork: true, PointsPerRun: 300}, variant3},
	{"neptune3-one-run", neptunetest.ExportOptions{Variant: neptunetest.Export3, Runs: 1, PointsPerRun: 50, Metrics: 5}, variant3},
	{"neptune2", neptunetest.ExportOptions{Variant: neptunetest.Export2, Runs: 3, FractionalSteps: true, MissingFiles: true,
		Pending: true, RowsPerPart: 120, BatchRows: 50, PointsPerRun: 400}, variant2},
}

// TestExportMatchesManifest reads generated exports of both exporters and
// checks every run's events against what the generator says it wrote.
func TestExportMatchesManifest(t *testing.T) {
	for _, tc := range exportCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := neptunetest.WriteExport(t.TempDir(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			f := New(quiet)
			infos := discover(t, f, m.DataDir)
			if len(infos) != len(m.Runs) {
				t.Fatalf("Discover = %d streams, want %d: %+v", len(infos), len(m.Runs), infos)
			}
			seen := map[string]int{}
			for i, in := range infos {
				seen[in.Key] = i
			}
			for i := range m.Runs {
				r := &m.Runs[i]
				info := infoFor(t, infos, m, r)
				if r.ForkParent != "" {
					parent := findRun(t, m, r.ForkParent)
					if got, want := info.Parent, keyOf(m, parent); got != want {
						t.Errorf("%s: Parent = %q, want %q", r.RunID, got, want)
					}
					if seen[info.Parent] > seen[info.Key] {
						t.Errorf("%s: listed before its parent", r.RunID)
					}
				} else if info.Parent != "" {
					t.Errorf("%s: Parent = %q, want none", r.RunID, info.Parent)
				}
				evs, ws := openRead(t, f, info, parsers.Options{})
				checkRun(t, tc.variant, r, summarize(t, evs), ws)
			}
		})
	}
}

func findRun(t testing.TB, m *neptunetest.ExportManifest, runID string) *neptunetest.ExportRun {
	t.Helper()
	for i := range m.Runs {
		if m.Runs[i].RunID == runID {
			return &m.Runs[i]
		}
	}
	t.Fatalf("no run %s in the manifest", runID)
	return nil
}

// configValue is how an atom of the manifest reaches the config.
func configValue(v any) any {
	switch x := v.(type) {
	case neptunetest.ExportTime:
		return x.Time().Format(time.RFC3339Nano)
	}
	return v
}

func checkRun(t *testing.T, variant string, r *neptunetest.ExportRun, s summary, ws []parsers.Warning) {
	t.Helper()
	mul := r.Multiplier
	if s.runs != 1 {
		t.Fatalf("%s: %d run events, want 1", r.RunID, s.runs)
	}
	info := s.run
	wantInfo := map[string]any{
		"Name": r.Name, "ExternalID": r.RunID, "CreatedAt": r.CreatedAt, "ForkParent": r.ForkParent,
		"ForkStep":   mlopStep(r.ForkStepMicro, mul),
		"multiplier": mul, "variant": variant, "project": r.ProjectID,
	}
	gotInfo := map[string]any{
		"Name": info.Name, "ExternalID": info.ExternalID, "CreatedAt": info.CreatedAt, "ForkParent": info.ForkParent,
		"ForkStep":   info.ForkStep,
		"multiplier": info.Config["neptune/step_multiplier"], "variant": info.Config["neptune/export/variant"],
		"project": info.Config["neptune/project"],
	}
	if !reflect.DeepEqual(gotInfo, wantInfo) {
		t.Errorf("%s: run info = %v, want %v", r.RunID, gotInfo, wantInfo)
	}

	// Metrics.
	total := 0
	for path, st := range r.Metrics {
		pts := s.metrics[path]
		total += len(pts)
		if len(pts) != st.Count {
			t.Errorf("%s %s: %d points, want %d", r.RunID, path, len(pts), st.Count)
			continue
		}
		sum := 0.0
		for _, p := range pts {
			sum += p.value
		}
		first, last := pts[0], pts[len(pts)-1]
		got := []any{first.step, last.step, first.value, last.value, first.time, last.time}
		want := []any{mlopStep(st.FirstStepMicro, mul), mlopStep(st.LastStepMicro, mul), st.First, st.Last, st.FirstTime, st.LastTime}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s: first/last = %v, want %v", r.RunID, path, got, want)
		}
		if math.Abs(sum-st.Sum) > 1e-9*math.Abs(st.Sum) {
			t.Errorf("%s %s: sum = %v, want %v", r.RunID, path, sum, st.Sum)
		}
	}
	if total != r.Points || len(s.metrics) != len(r.Metrics) {
		t.Errorf("%s: %d points in %d series, want %d in %d", r.RunID, total, len(s.metrics), r.Points, len(r.Metrics))
	}
	if variant == variant2 && s.metricEv != r.Points {
		t.Errorf("%s: %d metrics events, want one per point (%d)", r.RunID, s.metricEv, r.Points)
	}
	if variant == variant3 && len(r.Metrics) > 0 {
		// A step's metrics share an event, unless a part boundary
		// falls between them.
		steps := r.Points / len(r.Metrics)
		if s.metricEv < steps || s.metricEv > steps+len(r.Parts)-1 {
			t.Errorf("%s: %d metrics events for %d steps", r.RunID, s.metricEv, steps)
		}
	}

	// Parameters.
	for path, v := range r.Params {
		key := path
		switch path {
		case "sys/tags":
			continue
		case "sys/group_tags":
			key = mapping.KeyGroupTags
		default:
			if strings.HasPrefix(path, "sys/") {
				key = "neptune/" + path
			}
		}
		got, ok := s.config[key]
		if !ok || !reflect.DeepEqual(got, configValue(v)) {
			t.Errorf("%s: config %s = %#v, want %#v", r.RunID, key, got, configValue(v))
		}
	}
	for _, path := range r.NullParams {
		if v, ok := s.config[path]; ok {
			t.Errorf("%s: config %s = %v, want no key (its rows are null)", r.RunID, path, v)
		}
	}
	wantTags := map[string]bool{}
	for _, tg := range append(append([]string(nil), r.Tags...), r.GroupTags...) {
		wantTags[tg] = true
	}
	var wt []string
	for tg := range wantTags {
		wt = append(wt, tg)
	}
	sort.Strings(wt)
	if got := s.tagList(); !reflect.DeepEqual(got, wt) {
		t.Errorf("%s: tags = %v, want %v", r.RunID, got, wt)
	}
	var wantStatus []string
	if r.Failed {
		wantStatus = []string{event.StatusFailed}
	}
	if !reflect.DeepEqual(s.statuses, wantStatus) {
		t.Errorf("%s: statuses = %v, want %v", r.RunID, s.statuses, wantStatus)
	}

	// String series, console and histograms.
	for path, vals := range r.Strings {
		evs := s.data[path]
		if len(evs) != len(vals) {
			t.Errorf("%s %s: %d values, want %d", r.RunID, path, len(evs), len(vals))
			continue
		}
		for i, v := range vals {
			if evs[i].Type != event.DataStringSeries || evs[i].Text != v.Value || evs[i].Step != mlopStep(v.StepMicro, mul) {
				t.Errorf("%s %s[%d] = %s %q at %d, want %q at %d", r.RunID, path, i, evs[i].Type, evs[i].Text, evs[i].Step, v.Value, mlopStep(v.StepMicro, mul))
			}
		}
	}
	if len(s.logs) != len(r.Console) {
		t.Errorf("%s: %d log lines, want %d", r.RunID, len(s.logs), len(r.Console))
	} else {
		for i, l := range r.Console {
			wantType := "INFO"
			if strings.HasSuffix(l.Path, "stderr") {
				wantType = "ERROR"
			}
			e := s.logs[i]
			if e.Text != strings.TrimSuffix(l.Text, "\n") || e.Type != wantType || e.Step != int64(i+1) {
				t.Errorf("%s: log %d = %s %q line %d, want %s %q line %d", r.RunID, i, e.Type, e.Text, e.Step, wantType, l.Text, i+1)
			}
		}
	}
	for path, hs := range r.Histograms {
		evs := s.data[path]
		if len(evs) != len(hs) {
			t.Errorf("%s %s: %d histograms, want %d", r.RunID, path, len(evs), len(hs))
			continue
		}
		for i, h := range hs {
			if want := mapping.HistogramJSON(h.Edges, h.Values); evs[i].Type != event.DataHistogram || evs[i].Text != want || evs[i].Step != mlopStep(h.StepMicro, mul) {
				t.Errorf("%s %s[%d] = %s %s at %d, want %s at %d", r.RunID, path, i, evs[i].Type, evs[i].Text, evs[i].Step, want, mlopStep(h.StepMicro, mul))
			}
		}
	}

	// Files.
	nFiles, missing := 0, 0
	for _, fl := range r.Files {
		if fl.Missing {
			missing++
			key := mapping.KeyMissingFiles + fl.Attr + "/" + itoa(mlopStep(fl.StepMicro, mul))
			if got := s.config[key]; got != fl.Rel {
				t.Errorf("%s: config %s = %v, want %s", r.RunID, key, got, fl.Rel)
			}
			continue
		}
		nFiles++
		var found *event.Event
		for i := range s.files[fl.Attr] {
			if s.files[fl.Attr][i].Path == fl.Local {
				found = &s.files[fl.Attr][i]
			}
		}
		if found == nil {
			t.Errorf("%s: no file event for %s %s", r.RunID, fl.Attr, fl.Local)
			continue
		}
		wantStep := int64(0)
		if fl.Type == "file_series" {
			wantStep = mlopStep(fl.StepMicro, mul)
		}
		wantType := map[string]string{"file": "IMAGE", "file_series": "IMAGE", "file_set": "ARTIFACT", "artifact": "TEXT"}[fl.Type]
		if found.Step != wantStep || found.Type != wantType {
			t.Errorf("%s: file %s step %d type %s, want %d %s", r.RunID, fl.Rel, found.Step, found.Type, wantStep, wantType)
		}
	}
	got := 0
	for _, evs := range s.files {
		got += len(evs)
	}
	if got != nFiles {
		t.Errorf("%s: %d file events, want %d", r.RunID, got, nFiles)
	}
	if r.FileSeriesIsIndex {
		if got := info.Config["neptune/export/file_series_steps"]; got != "index" {
			t.Errorf("%s: neptune/export/file_series_steps = %v, want index", r.RunID, got)
		}
	} else if _, ok := info.Config["neptune/export/file_series_steps"]; ok {
		t.Errorf("%s: neptune/export/file_series_steps set for a neptune3 run", r.RunID)
	}

	wantWarn := map[string]int{}
	if missing > 0 {
		wantWarn[ReasonMissingFile] = missing
	}
	if got := countReasons(ws); !reflect.DeepEqual(got, wantWarn) {
		t.Errorf("%s: warnings %v, want %v: %v", r.RunID, got, wantWarn, ws)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestDiscoverPaths checks what Discover finds from each kind of path.
func TestDiscoverPaths(t *testing.T) {
	root := t.TempDir()
	m, err := neptunetest.WriteExport(root, neptunetest.ExportOptions{Fork: true, Pending: true, RowsPerPart: 60, BatchRows: 30, PointsPerRun: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Pending) != 1 || len(m.TmpFiles) != 1 {
		t.Fatalf("generator: pending %v, tmp %v", m.Pending, m.TmpFiles)
	}
	run0 := &m.Runs[0]
	if len(run0.Parts) < 2 {
		t.Fatalf("generator: %d parts, want several", len(run0.Parts))
	}
	pendingPart1 := filepath.Join(m.ProjectDir, m.Pending[0]+"_part_1.parquet")
	all := len(m.Runs)
	tests := []struct {
		name string
		path string
		want int
	}{
		{"exports dir", root, all},
		{"data dir", m.DataDir, all},
		{"project dir", m.ProjectDir, all},
		{"part_0 of a run", run0.Parts[0], 1},
		{"part_1 of a run", run0.Parts[1], 1},
		{"tmp file", m.TmpFiles[0], 0},
		{"part of a run without part_0", pendingPart1, 0},
		{"files dir", m.FilesDir, 0},
		{"missing path", filepath.Join(root, "nope"), 0},
	}
	f := New(quiet)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			infos := discover(t, f, tc.path)
			if len(infos) != tc.want {
				t.Fatalf("Discover(%s) = %d streams, want %d: %+v", tc.path, len(infos), tc.want, infos)
			}
			for _, in := range infos {
				if strings.Contains(in.Key, "pending") || strings.HasSuffix(in.Path, ".tmp") {
					t.Errorf("listed %+v", in)
				}
				if in.Signature == "" {
					t.Errorf("%s: no signature", in.Key)
				}
			}
			if tc.want == 1 && infos[0].Key != keyOf(m, run0) {
				t.Errorf("key %s, want %s", infos[0].Key, keyOf(m, run0))
			}
		})
	}
}

// TestSignatureChanges checks that rewriting a part changes the
// signature and the cached metadata is read again.
func TestSignatureChanges(t *testing.T) {
	m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 1, PointsPerRun: 20})
	if err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	a := discover(t, f, m.DataDir)
	b := discover(t, f, m.DataDir)
	if a[0].Signature != b[0].Signature {
		t.Fatalf("signature changed without a change: %s, %s", a[0].Signature, b[0].Signature)
	}
	// Same run, rewritten with other contents.
	m2, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 1, PointsPerRun: 40})
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, m2.Runs[0].Parts[0], m.Runs[0].Parts[0])
	c := discover(t, f, m.DataDir)
	if c[0].Signature == a[0].Signature {
		t.Fatal("signature unchanged after the part was rewritten")
	}
	evs, _ := openRead(t, f, c[0], parsers.Options{})
	if n := pointsIn(evs); n != 40 {
		t.Fatalf("read %d points after the rewrite, want 40", n)
	}
}

func pointsIn(evs []event.Event) int {
	n := 0
	for _, e := range evs {
		n += len(e.Points)
	}
	return n
}

// TestListingCache: a settled project directory's listing is reused until
// the exporter renames a new part into it.
func TestListingCache(t *testing.T) {
	m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 1, PointsPerRun: 20})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(m.ProjectDir, past, past); err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	if n := len(discover(t, f, m.DataDir)); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	// Another export of the same project, its run renamed in.
	m2, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 1, PointsPerRun: 20, Project: "ws/proj"})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(m.ProjectDir, "other-run_part_0.parquet")
	if err := os.Rename(m2.Runs[0].Parts[0], dst); err != nil {
		t.Fatal(err)
	}
	infos := discover(t, f, m.DataDir)
	if len(infos) != 2 {
		t.Fatalf("after a rename: %d runs, want 2", len(infos))
	}
	if _, ws := openRead(t, f, infos[1], parsers.Options{}); len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}
}

// TestConcurrentStreams reads every run at once from one Format, with
// Discover running alongside, as the agent does.
func TestConcurrentStreams(t *testing.T) {
	m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 4, Fork: true, PointsPerRun: 200, RowsPerPart: 100, BatchRows: 40})
	if err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	infos := discover(t, f, m.DataDir)
	var wg sync.WaitGroup
	got := make([]int, len(infos))
	for i, info := range infos {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s, err := f.Open(info, event.Position{}, nil, parsers.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			for {
				ch, err := s.Next(context.Background(), nil)
				got[i] += pointsIn(ch.Events)
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := f.Discover(m.DataDir); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, info := range infos {
		for _, r := range m.Runs {
			if keyOf(m, &r) == info.Key && got[i] != r.Points {
				t.Errorf("%s: %d points, want %d", info.Key, got[i], r.Points)
			}
		}
	}
}
