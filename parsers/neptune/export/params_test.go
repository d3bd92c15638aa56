package export

import (
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
