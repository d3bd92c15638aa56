package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// TestImportNeptuneContainers imports a .neptune directory holding a
// neptune-client run and an unsynced model and model version (written as
// the 1.14 client leaves them): the run is imported, the containers are
// not (mlop has no model registry) but are listed, with their type, id,
// path and contents, in the summary and the report; the import exits 3
// for leaving them behind, and 0 with --skip-containers, which still lists
// them.
func TestImportNeptuneContainers(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	const points = 30
	runs, err := neptunetest.WriteN1Queue(dir, 1, points)
	if err != nil {
		t.Fatal(err)
	}
	want, err := neptunetest.WriteN1Containers(dir, "model", "model_version")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]neptunetest.N1Container{}
	for _, c := range want {
		byID[c.UUID] = c
	}

	check := func(t *testing.T, out, reportPath string) {
		t.Helper()
		for _, c := range want {
			var line string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, `msg="not imported"`) && strings.Contains(l, "id="+c.UUID) {
					line = l
				}
			}
			for _, kv := range []string{"reason=" + parsers.SkippedContainer, "type=" + c.Type, "path=" + c.Dir,
				"attributes=" + strconv.Itoa(c.Attributes), "series=" + strconv.Itoa(c.Series), "data_left_behind=true"} {
				if !strings.Contains(line, kv) {
					t.Errorf("summary line for the %s lacks %s: %q", c.Type, kv, line)
				}
			}
		}
		if !strings.Contains(out, "found but not imported: 2 (container 2)") {
			t.Errorf("the summary does not count the containers:\n%s", out)
		}
		var rep agent.Report
		b, err := os.ReadFile(reportPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.NotImported) != len(want) || rep.Totals.NotImported[parsers.SkippedContainer] != len(want) {
			t.Fatalf("report lists %+v (totals %v), want the %d containers", rep.NotImported, rep.Totals.NotImported, len(want))
		}
		for _, n := range rep.NotImported {
			c, ok := byID[n.ID]
			if !ok || n.Reason != parsers.SkippedContainer || n.Type != c.Type || n.Path != c.Dir ||
				n.Attributes != int64(c.Attributes) || n.Series != int64(c.Series) || !n.LeftBehind || n.Source != "neptune" {
				t.Errorf("report entry %+v, want %+v", n, c)
			}
		}
		// The run was imported, nothing of the containers was.
		if rs := srv.Runs(); len(rs) != 1 || rs[0].ExternalID != runs[0].UUID {
			t.Fatalf("runs %v, want only the run %s", runNames(srv), runs[0].UUID)
		}
		n := 0
		for _, pts := range srv.Metrics(srv.Runs()[0].ID) {
			n += len(pts)
		}
		if n != points {
			t.Errorf("%d points, want %d", n, points)
		}
	}

	base := []string{"neptune", filepath.Join(dir, ".neptune"), "--project", "nep", "--no-progress"}
	t.Run("exit 3", func(t *testing.T) {
		report := filepath.Join(dir, "report-1.json")
		code, out := execImport(t, srv, append(base, "--state-dir", filepath.Join(dir, "state-1"), "--report", report)...)
		if code != 3 {
			t.Fatalf("import exited %d, want 3:\n%s", code, out)
		}
		if !strings.Contains(out, "--skip-containers") {
			t.Errorf("no hint at --skip-containers:\n%s", out)
		}
		check(t, out, report)
	})
	t.Run("skip-containers", func(t *testing.T) {
		report := filepath.Join(dir, "report-2.json")
		code, out := execImport(t, srv, append(base, "--state-dir", filepath.Join(dir, "state-2"), "--report", report, "--skip-containers")...)
		if code != 0 {
			t.Fatalf("import --skip-containers exited %d, want 0:\n%s", code, out)
		}
		check(t, out, report)
	})
}
