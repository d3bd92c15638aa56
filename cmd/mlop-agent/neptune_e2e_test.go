package main

// Neptune offline data imported through the binary into the mlop stand-in
// (internal/mlopfake, a test double), checked against what each fixture's
// manifest.json says the generating script logged — not against the
// parser's own output.

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// copyFixtures copies testdata/neptune into dir (the reader must never see
// the committed copies) and unpacks the compressed -wal.
func copyFixtures(t *testing.T, dir string) {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "neptune")
	if err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(dir, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		var r io.Reader = in
		if strings.HasSuffix(p, "-wal.gz") {
			zr, err := gzip.NewReader(in)
			if err != nil {
				return err
			}
			r, dst = zr, strings.TrimSuffix(dst, ".gz")
		}
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			return err
		}
		return out.Close()
	}); err != nil {
		t.Fatal(err)
	}
}

type manifest map[string]any

func loadManifest(t *testing.T, path string) manifest {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m manifest) obj(keys ...string) map[string]any {
	var cur any = map[string]any(m)
	for _, k := range keys {
		o, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = o[k]
	}
	o, _ := cur.(map[string]any)
	return o
}

// decimalStep turns a manifest step ("20.000001") into the server's step
// with the run's multiplier, exactly.
func decimalStep(t *testing.T, s string, mult int64) uint64 {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad step %q", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		t.Fatalf("step %s times %d is not an integer", s, mult)
	}
	return r.Num().Uint64()
}

func multiplierOf(r mlopfake.Run) int64 {
	if v, ok := r.Config["neptune/step_multiplier"].(float64); ok && v > 0 {
		return int64(v)
	}
	return 1
}

func manifestValue(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		switch x {
		case "NaN", "nan":
			return math.NaN()
		case "Infinity", "inf":
			return math.Inf(1)
		case "-Infinity", "-inf":
			return math.Inf(-1)
		}
	}
	return math.NaN()
}

func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

// checkMetrics compares every manifest point with the server's
// deduplicated view.
func checkMetrics(t *testing.T, srv *mlopfake.Server, r mlopfake.Run, metrics map[string]any, exact bool) {
	t.Helper()
	mult := multiplierOf(r)
	got := srv.Metrics(r.ID)
	for name, raw := range metrics {
		spec := raw.(map[string]any)
		if typ, _ := spec["type"].(string); typ != "" && typ != "float_series" {
			continue
		}
		pts, _ := spec["points"].([]any)
		if filtered, ok := spec["expected_after_client_filter"].([]any); ok {
			// The client drops what it cannot send; steps are implied 0..n-1.
			pts = nil
			for i, v := range filtered {
				pts = append(pts, []any{fmt.Sprintf("%d", i), v})
			}
			spec["count"] = float64(len(filtered))
		}
		byStep := map[uint64]float64{}
		for _, p := range got[name] {
			byStep[p.Step] = p.Value
		}
		if exact {
			if n, _ := spec["count"].(float64); int(n) != len(got[name]) {
				t.Errorf("%s %s: %d points on the server, manifest says %v", r.Name, name, len(got[name]), spec["count"])
			}
		}
		sum := 0.0
		for _, p := range pts {
			pair := p.([]any)
			step := decimalStep(t, pair[0].(string), mult)
			want := manifestValue(pair[1])
			v, ok := byStep[step]
			if !ok {
				t.Errorf("%s %s: step %s (x%d) missing", r.Name, name, pair[0], mult)
				continue
			}
			if !sameFloat(v, want) {
				t.Errorf("%s %s step %s: value %v, want %v", r.Name, name, pair[0], v, want)
			}
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				sum += v
			}
		}
		if want, ok := spec["sum_finite"].(float64); ok && exact && math.Abs(sum-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s %s: sum %v, want %v", r.Name, name, sum, want)
		}
	}
}

// checkConfig compares configs_final (neptune-scale) or attributes_final
// (1.x) with the run's config.
func checkConfig(t *testing.T, r mlopfake.Run, cfg map[string]any) {
	t.Helper()
	for key, raw := range cfg {
		spec := raw.(map[string]any)
		k := key
		if strings.HasPrefix(k, "sys/") {
			k = "neptune/" + k
		}
		got, ok := r.Config[k]
		if !ok {
			t.Errorf("%s: config %s missing", r.Name, k)
			continue
		}
		switch spec["type"] {
		case "string_set", "stringSet":
			want := []string{}
			for _, v := range spec["value"].([]any) {
				want = append(want, v.(string))
			}
			sort.Strings(want)
			if fmt.Sprint(got) != fmt.Sprint(toStrings(got)) || strings.Join(toStrings(got), ",") != strings.Join(want, ",") {
				t.Errorf("%s: config %s = %v, want %v", r.Name, k, got, want)
			}
		case "timestamp", "datetime":
			gs, _ := got.(string)
			wt, _ := spec["value"].(map[string]any)
			iso, _ := spec["iso"].(string)
			if wt != nil {
				iso, _ = wt["iso"].(string)
			}
			tg, err1 := time.Parse(time.RFC3339Nano, gs)
			tw, err2 := time.Parse(time.RFC3339Nano, strings.Replace(iso, "+00:00", "Z", 1))
			if err1 != nil || err2 != nil || !tg.Equal(tw) {
				t.Errorf("%s: config %s = %v, want %s", r.Name, k, got, iso)
			}
		default:
			want := spec["value"]
			if f, isF := want.(float64); isF {
				if g, _ := got.(float64); !sameFloat(g, f) {
					t.Errorf("%s: config %s = %v, want %v", r.Name, k, got, want)
				}
			} else if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: config %s = %v (%T), want %v", r.Name, k, got, got, want)
			}
		}
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			s, _ := x.(string)
			out = append(out, s)
		}
	}
	return out
}

func checkTags(t *testing.T, r mlopfake.Run, tags map[string]any) {
	t.Helper()
	want := map[string]bool{}
	for _, k := range []string{"sys/tags", "sys/group_tags"} {
		for _, v := range tags[k].([]any) {
			want[v.(string)] = true
		}
	}
	got := map[string]bool{}
	for _, tg := range r.Tags {
		got[tg] = true
	}
	if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
		t.Errorf("%s: tags %v, want %v", r.Name, sortedKeys(got), sortedKeys(want))
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func importEnv(srv *mlopfake.Server) []string {
	return append(os.Environ(), "PLUTO_URL_API="+srv.APIURL(), "PLUTO_URL_INGEST="+srv.IngestURL(),
		"PLUTO_URL_PY="+srv.PyURL(), "PLUTO_API_KEY="+mlopfake.DefaultKey)
}

func execImport(t *testing.T, srv *mlopfake.Server, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(agentBin, append([]string{"import"}, args...)...)
	cmd.Env = importEnv(srv)
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.ExitCode(), string(out)
}

func TestImportNeptuneFixtures(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	copyFixtures(t, dir)
	fixtures := []string{"n1-a-offline-basic", "n1-async-colab-2021", "scale-a-training", "scale-b-fractional-steps",
		"scale-c-fork-child", "scale-d-series-files-preview", "scale-h-killed-offline-wal"}
	// Previews that no committed point superseded are dropped, to compare
	// with the manifest's committed points (keeping them is the default,
	// covered by the reader's tests).
	args := []string{"neptune", "--project", "nep", "--state-dir", filepath.Join(dir, "state"), "--no-progress", "--previews", "drop",
		"--report", filepath.Join(dir, "report.json")}
	for _, f := range fixtures {
		args = append(args, filepath.Join(dir, f, ".neptune"),
			"--path-map", "/home/researcher/mnist-exp/"+f+"="+filepath.Join(dir, f))
	}
	code, out := execImport(t, srv, args...)
	if code != 0 {
		t.Fatalf("import exited %d:\n%s", code, out)
	}
	if rej := srv.Rejected(); len(rej) > 0 {
		t.Fatalf("the stand-in rejected requests: %+v", rej)
	}
	runs := map[string]mlopfake.Run{}
	for _, r := range srv.Runs() {
		runs[r.Name] = r
	}
	if len(srv.Runs()) != 7 {
		t.Fatalf("runs = %v, want 7", runNames(srv))
	}

	for _, f := range fixtures {
		if f == "n1-async-colab-2021" {
			continue // no manifest; its reader test checks it against its NOTICE
		}
		m := loadManifest(t, filepath.Join(dir, f, "manifest.json"))
		t.Run(f, func(t *testing.T) {
			var name string
			switch {
			case m.obj("init") != nil:
				name, _ = m.obj("init")["name"].(string)
			default:
				name, _ = m.obj("create_run")["experiment_name"].(string)
				if name == "" {
					name, _ = m.obj("metadata_row")["run_id"].(string)
				}
			}
			r, ok := runs[name]
			if f == "scale-c-fork-child" || f == "scale-a-training" {
				// Both are named resnet18-cifar10-baseline; tell them apart by id.
				ok = false
				for _, cand := range srv.Runs() {
					if cand.ExternalID == m.obj("metadata_row")["run_id"] {
						r, ok = cand, true
					}
				}
			}
			if !ok {
				t.Fatalf("no run for %s (name %q); runs %v", f, name, runNames(srv))
			}
			if r.Status != "COMPLETED" {
				t.Errorf("status %s, want COMPLETED", r.Status)
			}
			switch {
			case m.obj("series") != nil:
				checkMetrics(t, srv, r, m.obj("series"), true)
			case m.obj("metrics_excluding_previews") != nil:
				checkMetrics(t, srv, r, m.obj("metrics_excluding_previews"), true)
			case m.obj("metrics_guaranteed_prefix") != nil:
				checkMetrics(t, srv, r, m.obj("metrics_guaranteed_prefix"), false)
			default:
				checkMetrics(t, srv, r, m.obj("metrics"), true)
			}
			if c := m.obj("configs_final"); c != nil {
				checkConfig(t, r, c)
			}
			if c := m.obj("attributes_final"); c != nil {
				checkConfig(t, r, c)
			}
			checkTags(t, r, m.obj("tags_final"))
			if fork := m.obj("create_run", "fork"); fork != nil {
				parent := srv.Runs()
				var pid int64
				for _, p := range parent {
					if p.ExternalID == fork["parent_run_id"] {
						pid = p.ID
					}
				}
				step := decimalStep(t, fork["fork_step"].(map[string]any)["decimal"].(string), multiplierOf(r))
				if r.ForkedFromRunID != pid || pid == 0 || r.ForkStep == nil || uint64(*r.ForkStep) != step {
					t.Errorf("fork: parent %d step %v, want parent %d step %d", r.ForkedFromRunID, r.ForkStep, pid, step)
				}
			}
			for name, raw := range m.obj("string_series") {
				want := int(raw.(map[string]any)["count"].(float64))
				n := 0
				for _, d := range srv.Data(r.ID) {
					if d.LogName == name && d.DataType == "string-series" {
						n++
					}
				}
				if n != want {
					t.Errorf("string series %s: %d rows, want %d", name, n, want)
				}
			}
			for name, raw := range m.obj("histograms") {
				want := int(raw.(map[string]any)["count"].(float64))
				n := 0
				for _, d := range srv.Data(r.ID) {
					if d.LogName == name && d.DataType == "HISTOGRAM" {
						n++
					}
				}
				if n != want {
					t.Errorf("histogram %s: %d rows, want %d", name, n, want)
				}
			}
		})
	}

	// A second import of the same data changes nothing on the server, and
	// skips every run without reading it.
	before := srv.Counters()
	nRuns := len(srv.Runs())
	code, out = execImport(t, srv, args...)
	if code != 0 {
		t.Fatalf("second import exited %d:\n%s", code, out)
	}
	after := srv.Counters()
	if len(srv.Runs()) != nRuns || after.MetricLines != before.MetricLines || after.DataLines != before.DataLines ||
		after.LogLines != before.LogLines || after.FilesPresigned != before.FilesPresigned {
		t.Errorf("second import changed the server: %+v -> %+v", before, after)
	}
	if !strings.Contains(out, "skipped_unchanged=7") {
		t.Errorf("second import did not skip the complete runs:\n%s", out)
	}
	var rep struct {
		Complete bool
		Totals   struct{ Runs int }
	}
	b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if err := json.Unmarshal(b, &rep); err != nil || !rep.Complete {
		t.Errorf("report: %s", b)
	}
}

// TestImportKilledAndResumed kills an import of a large generated
// neptune-scale run part-way and starts it again: the result is what one
// uninterrupted import gives.
func TestImportKilledAndResumed(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "run", "run_operations.sqlite3")
	os.MkdirAll(filepath.Dir(db), 0o755)
	steps, perStep := 20000, neptunetest.MetricsPerRun
	if err := neptunetest.WriteScaleDB(db, "big-run", steps, perStep); err != nil {
		t.Fatal(err)
	}
	args := []string{"neptune", filepath.Join(dir, "run"), "--project", "nep", "--state-dir", filepath.Join(dir, "state"), "--no-progress"}
	for i := 0; i < 4; i++ {
		cmd := exec.Command(agentBin, append([]string{"import"}, args...)...)
		cmd.Env = importEnv(srv)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+100*i) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	code, out := execImport(t, srv, args...)
	if code != 0 {
		t.Fatalf("final import exited %d:\n%s", code, out)
	}
	if n := len(srv.Runs()); n != 1 {
		t.Fatalf("runs = %d, want 1", n)
	}
	r := srv.Runs()[0]
	total := 0
	for name, pts := range srv.Metrics(r.ID) {
		if len(pts) != steps {
			t.Errorf("%s: %d points, want %d", name, len(pts), steps)
		}
		total += len(pts)
	}
	if total != steps*perStep {
		t.Errorf("points = %d, want %d", total, steps*perStep)
	}
	if r.Status != "COMPLETED" {
		t.Errorf("status %s", r.Status)
	}
}
