package main

// neptune-exporter parquet exports imported through the binary into the
// mlop stand-in (a test double), checked against what the generator says it
// wrote (neptunetest.WriteExport's manifest), not against the reader.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

func runByExternalID(s *mlopfake.Server, id string) (mlopfake.Run, bool) {
	for _, r := range s.Runs() {
		if r.ExternalID == id {
			return r, true
		}
	}
	return mlopfake.Run{}, false
}

// checkExport compares the stand-in with an export's manifest. kills is
// how many times the import was killed: string series, histograms, console
// lines and files are not deduplicated by the server, so each kill may
// have doubled the batch of each that was in flight (docs/design.md §2).
func checkExport(t *testing.T, srv *mlopfake.Server, m *neptunetest.ExportManifest, kills int) {
	t.Helper()
	ids := map[string]int64{}
	for _, want := range m.Runs {
		r, ok := runByExternalID(srv, want.RunID)
		if !ok {
			t.Errorf("run %s missing; runs %v", want.RunID, runNames(srv))
			continue
		}
		ids[want.RunID] = r.ID
		if r.Name != want.Name || r.Status != map[bool]string{true: "FAILED", false: "COMPLETED"}[want.Failed] {
			t.Errorf("run %s: name %q status %s, want %q failed=%v", want.RunID, r.Name, r.Status, want.Name, want.Failed)
		}
		if r.ClientCreatedAtMs == nil || int64(*r.ClientCreatedAtMs) != want.CreatedAt {
			t.Errorf("run %s: createdAt %v, want %d", want.RunID, r.ClientCreatedAtMs, want.CreatedAt)
		}
		mult := multiplierOf(r)
		if mult != want.Multiplier {
			t.Errorf("run %s: multiplier %d, want %d", want.RunID, mult, want.Multiplier)
		}
		got := srv.Metrics(r.ID)
		points := 0
		for name, st := range want.Metrics {
			pts := got[name]
			points += len(pts)
			if len(pts) != st.Count {
				t.Errorf("run %s %s: %d points, want %d", want.RunID, name, len(pts), st.Count)
				continue
			}
			sum := 0.0
			for _, p := range pts {
				if !math.IsNaN(p.Value) {
					sum += p.Value
				}
			}
			f, l := pts[0], pts[len(pts)-1]
			if int64(f.Step) != st.FirstStepMicro*mult/1_000_000 || int64(l.Step) != st.LastStepMicro*mult/1_000_000 ||
				f.Value != st.First || l.Value != st.Last || math.Abs(sum-st.Sum) > 1e-6*math.Max(1, math.Abs(st.Sum)) ||
				int64(f.Time) != st.FirstTime || int64(l.Time) != st.LastTime {
				t.Errorf("run %s %s: first %+v last %+v sum %v; want %+v", want.RunID, name, f, l, sum, *st)
			}
		}
		if points != want.Points {
			t.Errorf("run %s: %d points, want %d", want.RunID, points, want.Points)
		}
		for k, v := range want.Params {
			if k == "sys/tags" || k == "sys/group_tags" {
				continue // tags, checked below
			}
			ck := k
			if strings.HasPrefix(k, "sys/") {
				ck = "neptune/" + k // bookkeeping keeps its own namespace
			}
			gv, present := r.Config[ck]
			if !present {
				t.Errorf("run %s: config %s missing (have %v)", want.RunID, ck, sortedConfigKeys(r.Config))
				continue
			}
			switch v := v.(type) {
			case []string:
				if fmt.Sprint(toStrings(gv)) != fmt.Sprint(v) {
					t.Errorf("run %s config %s = %v, want %v", want.RunID, k, gv, v)
				}
			case neptunetest.ExportTime:
				tm, err := time.Parse(time.RFC3339Nano, fmt.Sprint(gv))
				if err != nil || tm.UnixMilli() != int64(v) {
					t.Errorf("run %s config %s = %v, want %d", want.RunID, k, gv, v)
				}
			case int64:
				if gv != float64(v) {
					t.Errorf("run %s config %s = %v, want %v", want.RunID, k, gv, v)
				}
			default:
				if fmt.Sprint(gv) != fmt.Sprint(v) {
					t.Errorf("run %s config %s = %v (%T), want %v", want.RunID, k, gv, gv, v)
				}
			}
		}
		tags := append(append([]string{}, want.Tags...), want.GroupTags...)
		sort.Strings(tags)
		gotTags := append([]string{}, r.Tags...)
		sort.Strings(gotTags)
		if strings.Join(gotTags, ",") != strings.Join(tags, ",") {
			t.Errorf("run %s tags %v, want %v", want.RunID, gotTags, tags)
		}
		nStrings := 0
		for _, vs := range want.Strings {
			nStrings += len(vs)
		}
		nHist := 0
		for _, hs := range want.Histograms {
			nHist += len(hs)
		}
		var gotStrings, gotHist int
		for _, d := range srv.Data(r.ID) {
			switch d.DataType {
			case "string-series":
				gotStrings++
			case "HISTOGRAM":
				gotHist++
			}
		}
		within := func(got, want int) bool { return got >= want && got <= want+kills*5000 }
		if !within(gotStrings, nStrings) || !within(gotHist, nHist) || !within(len(srv.Logs(r.ID)), len(want.Console)) {
			t.Errorf("run %s: %d strings, %d histograms, %d log lines; want %d, %d, %d", want.RunID,
				gotStrings, gotHist, len(srv.Logs(r.ID)), nStrings, nHist, len(want.Console))
		}
		nFiles := 0
		for _, f := range want.Files {
			if !f.Missing {
				nFiles++
			}
		}
		if got := len(srv.Files(r.ID)); got < nFiles {
			t.Errorf("run %s: %d files, want %d", want.RunID, got, nFiles)
		}
	}
	for _, want := range m.Runs {
		if want.ForkParent == "" {
			continue
		}
		r, _ := runByExternalID(srv, want.RunID)
		step := want.ForkStepMicro * multiplierOf(r) / 1_000_000
		if r.ForkedFromRunID != ids[want.ForkParent] || r.ForkStep == nil || *r.ForkStep != step {
			t.Errorf("fork %s: parent %d step %v, want %d step %d", want.RunID, r.ForkedFromRunID, r.ForkStep, ids[want.ForkParent], step)
		}
	}
	if n := len(srv.Runs()); n != len(m.Runs) {
		t.Errorf("%d runs on the server, want %d (the pending run must not be imported)", n, len(m.Runs))
	}
}

func sortedConfigKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func importExport(t *testing.T, srv *mlopfake.Server, m *neptunetest.ExportManifest, state string, extra ...string) (int, string) {
	t.Helper()
	// The generator leaves some files out on purpose (missing_file).
	args := append([]string{"neptune-export", m.DataDir, "--files-dir", m.FilesDir, "--project", "migr",
		"--state-dir", state, "--no-progress", "--allow-missing-files"}, extra...)
	return execImport(t, srv, args...)
}

func TestImportNeptuneExport(t *testing.T) {
	used := map[string]bool{}
	defer func() {
		// Both variants together use every table entry.
		for p := range exportJudges {
			if !used[p] {
				t.Errorf("export judge for %s: the manifest has no such field", p)
			}
		}
		for _, u := range unjudgedExportFields {
			if !used[u.pattern] {
				t.Errorf("unjudged export field %s: the manifest has no such field", u.pattern)
			}
		}
	}()
	for _, variant := range []neptunetest.ExportVariant{neptunetest.Export3, neptunetest.Export2} {
		t.Run(fmt.Sprint(variant), func(t *testing.T) {
			srv := startFake(t)
			dir := t.TempDir()
			m, err := neptunetest.WriteExport(dir, neptunetest.ExportOptions{
				Variant: variant, Runs: 3, Fork: variant == neptunetest.Export3, PointsPerRun: 600,
				FractionalSteps: true, RowsPerPart: 300, BatchRows: 100, Pending: true, MissingFiles: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.TmpFiles) == 0 || len(m.Pending) == 0 {
				t.Fatalf("the generator wrote no pending run: %+v", m)
			}
			report := filepath.Join(dir, "report.json")
			code, out := importExport(t, srv, m, filepath.Join(dir, "state"), "--report", report)
			if code != 0 {
				t.Fatalf("import exited %d:\n%s", code, out)
			}
			if rej := srv.Rejected(); len(rej) > 0 {
				t.Fatalf("rejected: %+v", rej)
			}
			if !strings.Contains(out, "missing_file") {
				t.Errorf("the missing file was not reported:\n%.3000s", out)
			}
			// Every field of the generator's manifest, judged against the
			// stand-in (export_manifest_test.go).
			c := &xctx{t: t, srv: srv, m: m, pos: map[string]event.Position{}}
			b, err := os.ReadFile(report)
			if err != nil || json.Unmarshal(b, &c.rep) != nil {
				t.Fatalf("report: %v %s", err, b)
			}
			st, err := checkpoint.Read(filepath.Join(dir, "state"))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st.Streams {
				c.pos[s.Key] = s.Pos
			}
			walkExport(c, used)
			// A second import changes nothing.
			before := srv.Counters()
			if code, out := importExport(t, srv, m, filepath.Join(dir, "state")); code != 0 {
				t.Fatalf("second import exited %d:\n%s", code, out)
			}
			if after := srv.Counters(); after.MetricLines != before.MetricLines || after.DataLines != before.DataLines ||
				after.LogLines != before.LogLines || after.FilesPresigned != before.FilesPresigned || len(srv.Runs()) != len(m.Runs) {
				t.Errorf("second import changed the server: %+v -> %+v", before, after)
			}
		})
	}
}

// TestImportExportKilledAndResumed: an import SIGKILLed at random points
// finishes, when started again, with exactly the result of one import.
func TestImportExportKilledAndResumed(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	m, err := neptunetest.WriteExport(dir, neptunetest.ExportOptions{Variant: neptunetest.Export3, Runs: 6, Fork: true,
		PointsPerRun: 40000, RowsPerPart: 30000, StringValues: 50})
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	// Each import is killed once the server has more rows than before it
	// (never at a guessed time); an import that finishes first ends the
	// series.
	kills := 0
	for i := 0; i < 5; i++ {
		before := srv.Counters().MetricLines
		cmd := exec.Command(agentBin, "import", "neptune-export", m.DataDir, "--files-dir", m.FilesDir, "--project", "migr",
			"--state-dir", state, "--no-progress", "--parallel", "3", "--allow-missing-files")
		cmd.Env = importEnv(srv)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		finished := false
		deadline := time.Now().Add(60 * time.Second)
		for srv.Counters().MetricLines <= before && !finished {
			select {
			case <-exited:
				finished = true
			default:
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("import %d made no progress", i)
			}
			time.Sleep(2 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if finished {
			break
		}
		kills++
	}
	if kills == 0 {
		t.Fatal("no import was killed mid-way")
	}
	if code, out := importExport(t, srv, m, state); code != 0 {
		t.Fatalf("final import exited %d:\n%s", code, out)
	}
	checkExport(t, srv, m, 5)
	// String series and console lines are not deduplicated by the server:
	// at most the batch in flight at each kill may be doubled.
	for _, want := range m.Runs {
		r, _ := runByExternalID(srv, want.RunID)
		n := 0
		for _, vs := range want.Strings {
			n += len(vs)
		}
		got := 0
		for _, d := range srv.Data(r.ID) {
			if d.DataType == "string-series" {
				got++
			}
		}
		if got < n || got > n+5*5000 {
			t.Errorf("run %s: %d string rows for %d values", want.RunID, got, n)
		}
	}
}

// TestImportExportShards: shards 0..N-1 together import every run exactly
// once, fork families staying together.
func TestImportExportShards(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	m, err := neptunetest.WriteExport(dir, neptunetest.ExportOptions{Variant: neptunetest.Export3, Runs: 9, Fork: true, PointsPerRun: 100})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		before := map[string]bool{}
		for _, r := range srv.Runs() {
			before[r.ExternalID] = true
		}
		code, out := importExport(t, srv, m, filepath.Join(dir, fmt.Sprintf("state-%d", i)), "--shard", fmt.Sprintf("%d/%d", i, n))
		if code != 0 {
			t.Fatalf("shard %d exited %d:\n%s", i, code, out)
		}
		for _, r := range srv.Runs() {
			if !before[r.ExternalID] {
				seen[r.ExternalID]++
			}
		}
	}
	for _, r := range m.Runs {
		if seen[r.RunID] != 1 {
			t.Errorf("run %s imported by %d shards, want 1", r.RunID, seen[r.RunID])
		}
	}
	checkExport(t, srv, m, 0)
}
