package main

// mlop-agent verify through the built binary against the mlop stand-in (a
// test double): a JSONL backfill, a Neptune import and a neptune-exporter
// import each verify clean, reading only; after the stand-in's data is
// damaged on purpose, verify exits 3 and names each change.

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// execVerify runs `mlop-agent verify args...` with the stand-in in the
// environment and checks that it only read: GET requests to the backend,
// some of them metrics/raw. It returns the exit code and the output.
func execVerify(t *testing.T, srv *mlopfake.Server, args ...string) (int, string) {
	t.Helper()
	before := len(srv.Requests())
	cmd := exec.Command(agentBin, append([]string{"verify"}, args...)...)
	cmd.Env = importEnv(srv)
	out, _ := cmd.CombinedOutput()
	raw := 0
	for _, r := range srv.Requests()[before:] {
		if r.Method != http.MethodGet || r.Service != mlopfake.ServiceAPI {
			t.Errorf("verify sent %s %s to the %s listener", r.Method, r.Path, r.Service)
		}
		if r.Path == "/api/runs/metrics/raw" {
			raw++
		}
	}
	if raw == 0 {
		t.Errorf("verify read no metric rows back")
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func runOf(t *testing.T, srv *mlopfake.Server, name string) mlopfake.Run {
	t.Helper()
	r, ok := runByName(srv, name)
	if !ok {
		t.Fatalf("no run %q; runs %v", name, runNames(srv))
	}
	return r
}

// wantLines fails unless out holds every line fragment.
func wantLines(t *testing.T, out string, frags ...string) {
	t.Helper()
	for _, f := range frags {
		if !strings.Contains(out, f) {
			t.Errorf("output lacks %q:\n%s", f, out)
		}
	}
}

func TestVerifyBackfill(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a.jsonl")
	appendFile(t, a, `{"step": 1, "time": 1700000000.001, "loss": 1.5, "acc": 0.25, "phase": "warm", "_tags": ["lr-sweep"]}
{"step": 2, "time": 1700000000.002, "loss": NaN, "acc": Infinity}
{"step": 3, "time": 1700000000.003, "loss": 0.125, "acc": -Infinity, "_config": {"batch": 32, "opt": {"name": "adam"}}}
{"step": 4, "time": 1700000000.004, "loss": -0.0, "acc": 1e-300}
{"step": 5, "time": 1700000000.005, "loss": 123456789.125, "acc": 0.5}
{"step": 5, "time": 1700000000.006, "loss": 7.0, "acc": 0.75}
{"step": 6, "time": 1700000000.007, "loss": 0.0625}
`)
	// More rows than one metrics/raw page (50,000).
	big := filepath.Join(dir, "big.jsonl")
	var b strings.Builder
	for s := 1; s <= 60000; s++ {
		fmt.Fprintf(&b, `{"step": %d, "time": %d.%03d, "x": %g}`+"\n", s, 1700000000+s/1000, s%1000, float64(s)/3)
	}
	appendFile(t, big, b.String())
	src := fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [%q, %q]\n    run:\n      tags: [resnet]\n      config: {lr: 0.01}\n", a, big)
	cfg := writeConfig(t, dir, srv, src)
	if code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg); code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	// Rows re-sent (a backfill over a lost state directory sends
	// everything again): duplicates in the raw table, no difference.
	cfg2 := strings.Replace(cfg, "agent.yaml", "agent2.yaml", 1)
	y, _ := os.ReadFile(cfg)
	os.WriteFile(cfg2, []byte(strings.Replace(string(y), filepath.Join(dir, "state"), filepath.Join(dir, "state2"), 1)), 0o600)
	if code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg2); code != 0 {
		t.Fatalf("second backfill exited %d:\n%s", code, out)
	}
	if n := srv.RawMetricCount(runOf(t, srv, "a").ID); n != 26 {
		t.Fatalf("raw rows of a: %d, want 26 (every row twice)", n)
	}
	report := filepath.Join(dir, "verify.json")
	code, out := execVerify(t, srv, "-c", cfg, "--no-progress", "--report", report)
	if code != 0 {
		t.Fatalf("verify exited %d:\n%s", code, out)
	}
	wantLines(t, out, "verified 2 runs, 3 metrics, 60,011 points: 0 missing, 0 different, 0 extra")
	var rep struct {
		Complete   bool
		Points     int64
		RunReports []struct {
			Name    string
			FoundBy string
			Metrics []struct {
				Name   string
				Points int64
				Rows   int64
				Server int64 `json:"serverRows"`
			}
		}
	}
	data, _ := os.ReadFile(report)
	if err := json.Unmarshal(data, &rep); err != nil || !rep.Complete || len(rep.RunReports) != 2 {
		t.Fatalf("report: %v %s", err, data)
	}
	for _, rr := range rep.RunReports {
		if rr.FoundBy != "state directory" {
			t.Errorf("run %s found by %q", rr.Name, rr.FoundBy)
		}
		for _, m := range rr.Metrics {
			// Every step read back: each one twice, through two pages of
			// 50,000 rows or more.
			if rr.Name == "big" && (m.Points != 60000 || m.Server != 120000 || m.Rows != 60000) {
				t.Errorf("big: %+v", m)
			}
		}
	}

	// Damage, on purpose.
	ra := runOf(t, srv, "a")
	for _, err := range []error{
		second(srv.DropMetricSteps(ra.ID, "loss", 3)),
		second(srv.SetMetricValue(ra.ID, "acc", 5, 0.123)),
		second(srv.SetMetricValue(ra.ID, "loss", 2, 1)), // the NaN
		srv.RemoveTag(ra.ID, "resnet"),
		second(srv.DropMetricSteps(runOf(t, srv, "big").ID, "x", 50001)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out = execVerify(t, srv, "-c", cfg, "--no-progress")
	if code != 3 {
		t.Fatalf("verify of damaged data exited %d, want 3:\n%s", code, out)
	}
	wantLines(t, out,
		fmt.Sprintf(`point-missing: run "a" (id %d) metric "loss" step 3: want 0.125, got none`, ra.ID),
		fmt.Sprintf(`point-different: run "a" (id %d) metric "acc" step 5: want 0.75, got 0.123`, ra.ID),
		fmt.Sprintf(`point-different: run "a" (id %d) metric "loss" step 2: want NaN, got 1`, ra.ID),
		fmt.Sprintf(`tag-missing: run "a" (id %d) resnet`, ra.ID),
		`metric "x" step 50001: want 16667, got none`,
		"verified 2 runs, 3 metrics, 60,011 points: 2 missing, 2 different, 0 extra; 1 other differences",
		"mlop-agent verify: the server does not hold exactly what the source holds")
}

func second(_ int, err error) error { return err }

func TestVerifyNeptuneImport(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	copyFixtures(t, dir)
	fixtures := []string{"n1-a-offline-basic", "n1-async-colab-2021", "scale-a-training", "scale-b-fractional-steps",
		"scale-c-fork-child", "scale-d-series-files-preview", "scale-h-killed-offline-wal"}
	// The 2021 colab queue refers to a file of its author's machine.
	args := []string{"neptune", "--project", "nep", "--state-dir", filepath.Join(dir, "state"), "--no-progress", "--previews", "drop", "--allow-missing-files"}
	for _, f := range fixtures {
		args = append(args, filepath.Join(dir, f, ".neptune"), "--path-map", "/home/researcher/mnist-exp/"+f+"="+filepath.Join(dir, f))
	}
	if code, out := execImport(t, srv, args...); code != 0 {
		t.Fatalf("import exited %d:\n%s", code, out)
	}
	code, out := execVerify(t, srv, args...)
	if code != 0 {
		t.Fatalf("verify exited %d:\n%s", code, out)
	}
	wantLines(t, out, "verified 7 runs,", ": 0 missing, 0 different, 0 extra")

	// Without the state directory every run is found by listing.
	noState := append([]string{}, args...)
	for i := range noState {
		if noState[i] == filepath.Join(dir, "state") {
			noState[i] = filepath.Join(dir, "nowhere")
		}
	}
	if code, out := execVerify(t, srv, noState...); code != 0 {
		t.Fatalf("verify without the state directory exited %d:\n%s", code, out)
	}

	// Damage: a dropped point, a changed value, a number turned into NaN
	// (Neptune's clients drop non-finite values, so the fixtures hold no
	// NaN to turn into a number; the backfill test does that), a removed
	// tag — each on runs that have them.
	type pick struct {
		run    mlopfake.Run
		metric string
		step   uint64
		value  float64
	}
	var drop, change, nan *pick
	var tagged *mlopfake.Run
	runs := srv.Runs()
	sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
	for _, r := range runs {
		if len(r.Tags) > 0 && tagged == nil {
			tagged = &r
		}
		ms := srv.Metrics(r.ID)
		names := make([]string, 0, len(ms))
		for n := range ms {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for i, p := range ms[n] {
				finite := !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0)
				switch {
				case finite && i == 1 && drop == nil:
					drop = &pick{r, n, p.Step, p.Value}
				case finite && i == 2 && change == nil && drop != nil && drop.metric != n:
					change = &pick{r, n, p.Step, p.Value}
				case finite && i == 3 && nan == nil && change != nil && change.metric != n:
					nan = &pick{r, n, p.Step, p.Value}
				}
			}
		}
	}
	if drop == nil || change == nil || nan == nil || tagged == nil {
		t.Fatalf("the fixtures lack a point to drop, to change, to make NaN or a tag: %v %v %v %v", drop != nil, change != nil, nan != nil, tagged != nil)
	}
	for _, err := range []error{
		second(srv.DropMetricSteps(drop.run.ID, drop.metric, drop.step)),
		second(srv.SetMetricValue(change.run.ID, change.metric, change.step, change.value+1)),
		second(srv.SetMetricValue(nan.run.ID, nan.metric, nan.step, math.NaN())),
		srv.RemoveTag(tagged.ID, tagged.Tags[0]),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out = execVerify(t, srv, args...)
	if code != 3 {
		t.Fatalf("verify of damaged data exited %d, want 3:\n%s", code, out)
	}
	wantLines(t, out,
		fmt.Sprintf("point-missing: run %q (id %d) metric %q step %d: want %s", drop.run.Name, drop.run.ID, drop.metric, drop.step, fmtValue(drop.value)),
		fmt.Sprintf("point-different: run %q (id %d) metric %q step %d: want %s, got %s", change.run.Name, change.run.ID, change.metric, change.step,
			fmtValue(change.value), fmtValue(change.value+1)),
		fmt.Sprintf("point-different: run %q (id %d) metric %q step %d: want %s, got NaN", nan.run.Name, nan.run.ID, nan.metric, nan.step, fmtValue(nan.value)),
		fmt.Sprintf("tag-missing: run %q (id %d) %s", tagged.Name, tagged.ID, tagged.Tags[0]),
		": 1 missing, 2 different, 0 extra; 1 other differences")
}

// fmtValue writes a value as verify does.
func fmtValue(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func TestVerifyNeptuneExport(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	m, err := neptunetest.WriteExport(dir, neptunetest.ExportOptions{
		Variant: neptunetest.Export3, Runs: 3, Fork: true, PointsPerRun: 600,
		FractionalSteps: true, RowsPerPart: 300, BatchRows: 100, Pending: true, MissingFiles: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if code, out := importExport(t, srv, m, state); code != 0 {
		t.Fatalf("import exited %d:\n%s", code, out)
	}
	args := []string{"neptune-export", m.DataDir, "--files-dir", m.FilesDir, "--project", "migr", "--state-dir", state, "--no-progress"}
	code, out := execVerify(t, srv, args...)
	if code != 0 {
		t.Fatalf("verify exited %d:\n%s", code, out)
	}
	wantLines(t, out, fmt.Sprintf("verified %d runs,", len(m.Runs)), ": 0 missing, 0 different, 0 extra")

	// A changed config value and a dropped step of the fork are named.
	var fork mlopfake.Run
	for _, r := range srv.Runs() {
		if r.ForkedFromRunID != 0 {
			fork = r
		}
	}
	if fork.ID == 0 {
		t.Fatalf("no fork among %v", runNames(srv))
	}
	ms := srv.Metrics(fork.ID)
	var name string
	for n := range ms {
		if name == "" || n < name {
			name = n
		}
	}
	p := ms[name][len(ms[name])-1]
	if _, err := srv.DropMetricSteps(fork.ID, name, p.Step); err != nil {
		t.Fatal(err)
	}
	code, out = execVerify(t, srv, args...)
	if code != 3 {
		t.Fatalf("exit %d, want 3:\n%s", code, out)
	}
	wantLines(t, out, fmt.Sprintf("point-missing: run %q (id %d) metric %q step %d", fork.Name, fork.ID, name, p.Step), ": 1 missing, 0 different, 0 extra")
}

// TestVerifyTensorBoardImport: an import of TensorBoard log directories
// (the tensorboardX fixtures) verifies clean; a point dropped and a value
// changed on the server are named.
func TestVerifyTensorBoardImport(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	a := copyTestdata(t, "tensorboard/tb-a-basic", dir)
	b := copyTestdata(t, "tensorboard/tb-b-killed", dir)
	state := filepath.Join(dir, "state")
	args := []string{"tensorboard", filepath.Join(a, "logs"), filepath.Join(b, "logs"), "--project", "tb", "--state-dir", state, "--no-progress"}
	if code, out := execImport(t, srv, args...); code != 0 {
		t.Fatalf("import exited %d:\n%s", code, out)
	}
	code, out := execVerify(t, srv, args...)
	if code != 0 {
		t.Fatalf("verify of a clean import exited %d:\n%s", code, out)
	}
	wantLines(t, out, "verified 2 runs", ": 0 missing, 0 different, 0 extra")
	r := runOf(t, srv, "resnet-01")
	pts := srv.Metrics(r.ID)["train/loss"]
	if _, err := srv.DropMetricSteps(r.ID, "train/loss", pts[10].Step); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SetMetricValue(r.ID, "train/loss", pts[20].Step, 99.5); err != nil {
		t.Fatal(err)
	}
	code, out = execVerify(t, srv, args...)
	if code != 3 {
		t.Fatalf("verify after damage exited %d, want 3:\n%s", code, out)
	}
	wantLines(t, out, fmt.Sprintf(`point-missing: run "resnet-01" (id %d) metric "train/loss" step %d`, r.ID, pts[10].Step),
		fmt.Sprintf(`metric "train/loss" step %d`, pts[20].Step), ": 1 missing, 1 different, 0 extra")
}

// TestVerifyUsage: a bad key stops with exit 1 and never prints the key.
func TestVerifyUsage(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	appendFile(t, filepath.Join(dir, "m.jsonl"), `{"step": 1, "loss": 1}`+"\n")
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [%q]\n", filepath.Join(dir, "m.jsonl")))
	srv.RevokeKey(mlopfake.DefaultKey)
	code, text := execAgent(t, 30*time.Second, "verify", "-c", cfg, "--no-progress")
	if code != 1 || !strings.Contains(text, "was refused") || strings.Contains(text, mlopfake.DefaultKey) {
		t.Errorf("revoked key: exit %d\n%s", code, text)
	}
	for _, r := range srv.Requests() {
		if r.Method != http.MethodGet {
			t.Errorf("sent %s %s", r.Method, r.Path)
		}
	}
}
