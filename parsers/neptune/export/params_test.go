package export

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	_ "time/tzdata" // the timezone test must not depend on the machine's zoneinfo

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// TestTimezone corrects neptune2 series timestamps (local wall time stored
// as UTC) and leaves neptune3 ones alone.
func TestTimezone(t *testing.T) {
	for _, tc := range []struct {
		name    string
		variant neptunetest.ExportVariant
		shift   int64 // ms added to the stored times
	}{
		{"neptune2", neptunetest.Export2, -3_600_000}, // Europe/Warsaw is UTC+1 in January
		{"neptune3", neptunetest.Export3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Variant: tc.variant, Runs: 1, PointsPerRun: 20})
			if err != nil {
				t.Fatal(err)
			}
			f := New(quiet)
			opts := parsers.Options{Params: map[string]string{ParamTimezone: "Europe/Warsaw"}}
			evs, _ := openRead(t, f, discover(t, f, m.DataDir)[0], opts)
			s := summarize(t, evs)
			st := m.Runs[0].Metrics["train/metric_0"]
			pts := s.metrics["train/metric_0"]
			if got, want := pts[0].time, st.FirstTime+tc.shift; got != want {
				t.Errorf("first time %d, want %d", got, want)
			}
			if got, want := s.run.CreatedAt, m.Runs[0].CreatedAt; got != want {
				t.Errorf("created %d, want %d (datetime parameters are not corrected)", got, want)
			}
		})
	}
}

func TestZoneFix(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		t.Fatal(err)
	}
	z := &zoneFix{loc: loc, hour: -1 << 62}
	for _, wall := range []string{"2025-01-15 12:30:00", "2025-07-15 12:30:00", "2025-03-30 01:59:59", "2025-03-30 03:00:00", "1969-12-31 23:00:00"} {
		w, err := time.Parse("2006-01-02 15:04:05", wall)
		if err != nil {
			t.Fatal(err)
		}
		local, err := time.ParseInLocation("2006-01-02 15:04:05", wall, loc)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := z.fix(w.UnixMilli()), local.UnixMilli(); got != want {
			t.Errorf("fix(%s) = %d, want %d", wall, got, want)
		}
	}
}

// TestParams covers external_id, exporter and bad values.
func TestParams(t *testing.T) {
	m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: -1, Fork: true, PointsPerRun: 40})
	if err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	infos := discover(t, f, m.DataDir)
	child := infoFor(t, infos, m, findRun(t, m, "fork-child"))

	evs, _ := openRead(t, f, child, parsers.Options{Params: map[string]string{ParamExternalID: "project_run_id", ParamExporter: "neptune2"}})
	info := evs[0].Info
	if info.ExternalID != "ws/proj/fork-child" || info.ForkParent != "ws/proj/fork-parent" {
		t.Errorf("external id %q, fork parent %q", info.ExternalID, info.ForkParent)
	}
	if info.Config["neptune/export/variant"] != variant2 {
		t.Errorf("variant %v, want the forced neptune2", info.Config["neptune/export/variant"])
	}
	for _, params := range []map[string]string{
		{ParamExporter: "neptune4"},
		{ParamExternalID: "uuid"},
		{ParamExporter: "neptune2", ParamTimezone: "Mars/Olympus_Mons"},
	} {
		if s, err := f.Open(child, event.Position{}, nil, parsers.Options{Params: params}); err == nil {
			s.Close()
			t.Errorf("Open with %v: no error", params)
		}
	}
	if _, err := f.Open(parsers.StreamInfo{Key: "neptune:x", Path: child.Path}, event.Position{}, nil, parsers.Options{}); err == nil {
		t.Error("Open of a foreign key: no error")
	}
}

// TestForcedMultiplier: parsers.Options.StepMultiplier overrides the
// automatic choice; steps that do not fit are reported and dropped.
func TestForcedMultiplier(t *testing.T) {
	m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 1, PointsPerRun: 40, FractionalSteps: true, FileSeries: -1, StringValues: -1, Histograms: -1})
	if err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	info := discover(t, f, m.DataDir)[0]
	st := m.Runs[0].Metrics["train/metric_0"]

	evs, ws := openRead(t, f, info, parsers.Options{StepMultiplier: 1000})
	s := summarize(t, evs)
	if got := s.metrics["train/metric_0"]; len(got) != st.Count || got[len(got)-1].step != mlopStep(st.LastStepMicro, 1000) || len(ws) != 0 {
		t.Errorf("×1000: %v, warnings %v", got, ws)
	}

	evs, ws = openRead(t, f, info, parsers.Options{StepMultiplier: 1})
	s = summarize(t, evs)
	half := st.Count / 2
	if got := s.metrics["train/metric_0"]; len(got) != st.Count-half {
		t.Errorf("×1: %d points, want %d (the half steps are dropped)", len(got), st.Count-half)
	}
	if got := countReasons(ws)[ReasonBadStep]; got != m.Runs[0].Points/2 {
		t.Errorf("×1: %d bad_step warnings, want %d", got, m.Runs[0].Points/2)
	}
}

// TestEmptyStringSet: a string_set_value holding an empty list (a
// StringSet with no members) is [] in the config; a null one is not a
// value at all (another run's attribute, melted in).
func TestEmptyStringSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ws_p-0000000000000000")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const p, r = "ws/p", "set-run"
	rows := []neptunetest.ExportRowSpec{
		{Project: p, Run: r, Path: "sys/custom_run_id", Type: "string", Str: ptr(r)},
		{Project: p, Run: r, Path: "cfg/none", Type: "string_set", Set: []string{}},
		{Project: p, Run: r, Path: "cfg/null", Type: "string_set"},
		{Project: p, Run: r, Path: "cfg/some", Type: "string_set", Set: []string{"b", "a"}},
		{Project: p, Run: r, Path: "sys/group_tags", Type: "string_set", Set: []string{}},
	}
	if err := neptunetest.WriteExportPart(filepath.Join(dir, "set-run-00_part_0.parquet"), rows, 0); err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	evs, ws := openRead(t, f, discover(t, f, filepath.Dir(dir))[0], parsers.Options{})
	s := summarize(t, evs)
	got := map[string]string{}
	for _, k := range []string{"cfg/none", "cfg/null", "cfg/some", "neptune/group_tags"} {
		if v, ok := s.config[k]; ok {
			b, _ := json.Marshal(v)
			got[k] = string(b)
		}
	}
	if want := map[string]string{"cfg/none": "[]", "cfg/some": `["a","b"]`, "neptune/group_tags": "[]"}; !reflect.DeepEqual(got, want) {
		t.Errorf("config %v, want %v", got, want)
	}
	if len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}
}
