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

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/checkpoint"
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

// TestImportNeptuneFixtures imports every shared fixture in one run and
// walks each manifest.json: every key is judged against what reached the
// stand-in, or listed with its reason in unjudgedKeys
// (neptune_manifest_test.go); an unknown key fails.
func TestImportNeptuneFixtures(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	copyFixtures(t, dir)
	fixtures := []string{"n1-a-offline-basic", "n1-async-colab-2021", "scale-a-training", "scale-b-fractional-steps",
		"scale-c-fork-child", "scale-d-series-files-preview", "scale-h-killed-offline-wal"}
	manifests := map[string]manifest{}
	// Previews that no committed point superseded are dropped, to compare
	// with the manifest's committed points (keeping them is the default,
	// covered by the reader's tests).
	//
	// Two imports into one state directory: every fixture but the fork,
	// then the fork. One import of both races: the agent lets a fork's
	// stream start once its parent's stream has been read, not delivered,
	// and mlop refuses a fork whose step is beyond the parent's max step so
	// far ("forkStep (250) exceeds the parent run's max step (37)", about 1
	// run in 10 under -race). That is the agent's fork gating, reported
	// with this change; the fork link is judged here all the same, through
	// the parent the first import left in the state directory.
	state := filepath.Join(dir, "state")
	reports := []string{filepath.Join(dir, "report-1.json"), filepath.Join(dir, "report-2.json")}
	imports := [][]string{
		// The 2021 colab queue refers to a file of its author's machine.
		{"neptune", "--project", "nep", "--state-dir", state, "--no-progress", "--previews", "drop", "--report", reports[0], "--allow-missing-files"},
		{"neptune", "--project", "nep", "--state-dir", state, "--no-progress", "--previews", "drop", "--report", reports[1]},
	}
	for _, f := range fixtures {
		i := 0
		if f == "scale-c-fork-child" {
			i = 1
		}
		imports[i] = append(imports[i], filepath.Join(dir, f, ".neptune"))
		mp := filepath.Join(dir, f, "manifest.json")
		if _, err := os.Stat(mp); err != nil {
			continue // the 2021 colab queue has a NOTICE, no manifest
		}
		m := loadManifest(t, mp)
		manifests[f] = m
		// The generator's absolute paths, re-rooted onto the copy.
		root, _ := m.obj("generator")["fixtures_root_at_generation"].(string)
		if root == "" {
			t.Fatalf("%s: no generator.fixtures_root_at_generation", f)
		}
		imports[i] = append(imports[i], "--path-map", root+"/"+f+"="+filepath.Join(dir, f))
	}
	before := map[string]map[string]string{}
	for _, f := range fixtures {
		before[f] = hashFiles(t, filepath.Join(dir, f))
	}
	var rep agent.Report
	for i, args := range imports {
		code, out := execImport(t, srv, args...)
		if code != 0 {
			t.Fatalf("import %d exited %d:\n%s", i+1, code, out)
		}
		var r agent.Report
		if b, err := os.ReadFile(reports[i]); err != nil || json.Unmarshal(b, &r) != nil || !r.Complete {
			t.Fatalf("report %d: %v %+v", i+1, err, r)
		}
		// Listed all the same: the colab queue's file, with the
		// directory to re-root.
		var missing []string
		for _, n := range r.NotImported {
			if n.Reason != agent.MissingFiles || !strings.Contains(n.Detail, "--path-map "+n.Path+"=DIR") {
				t.Errorf("report %d: not imported %+v", i+1, n)
			}
			missing = append(missing, n.Path)
		}
		if want := map[int]string{0: "/home/jakub/Projects/examples/integrations/colab"}[i]; strings.Join(missing, " ") != want {
			t.Errorf("report %d: missing files under %q, want %q", i+1, missing, want)
		}
		rep.Streams = append(rep.Streams, r.Streams...)
	}
	if rej := srv.Rejected(); len(rej) > 0 {
		t.Fatalf("the stand-in rejected requests: %+v", rej)
	}
	if len(srv.Runs()) != len(fixtures) {
		t.Fatalf("runs = %v, want %d", runNames(srv), len(fixtures))
	}
	st, err := checkpoint.Read(state)
	if err != nil {
		t.Fatal(err)
	}

	// Each fixture's run, stream and committed position, by its identity
	// in the data.
	type found struct {
		run    mlopfake.Run
		stream agent.StreamReport
		rows   int64
	}
	byFixture := map[string]found{}
	runs := map[string]mlopfake.Run{}
	for _, f := range fixtures {
		var id string
		if m, ok := manifests[f]; ok && m.obj("metadata_row") != nil {
			id, _ = m.obj("metadata_row")["run_id"].(string)
		} else {
			// neptune-client: the container uuid of the queue directory
			// (the LEGACY layout names it; 1.9+ also writes metadata.json).
			dirs, _ := filepath.Glob(filepath.Join(dir, f, ".neptune", "*", "*"))
			if len(dirs) != 1 {
				t.Fatalf("%s: queue directories %v", f, dirs)
			}
			_, id, _ = strings.Cut(filepath.Base(dirs[0]), "__")
			id, _, _ = strings.Cut(id, "__")
			if id == "" {
				id = filepath.Base(dirs[0])
			}
		}
		r, ok := runByExternalID(srv, id)
		if !ok {
			t.Fatalf("%s: no run with external id %s; runs %v", f, id, runNames(srv))
		}
		var fd found
		fd.run = r
		for _, s := range rep.Streams {
			if strings.HasPrefix(s.Path, filepath.Join(dir, f)+string(filepath.Separator)) {
				fd.stream = s
			}
		}
		for _, s := range st.Streams {
			if s.Key == fd.stream.SourceID {
				fd.rows = s.Pos.Seq
			}
		}
		if fd.stream.SourceID == "" || fd.rows == 0 {
			t.Fatalf("%s: no stream in the report or checkpoint", f)
		}
		if r.Status != "COMPLETED" {
			t.Errorf("%s: status %s, want COMPLETED", f, r.Status)
		}
		byFixture[f], runs[f] = fd, r
	}

	used := map[string]bool{}
	for _, f := range fixtures {
		m, ok := manifests[f]
		if !ok {
			continue
		}
		t.Run(f, func(t *testing.T) {
			fd := byFixture[f]
			c := &jctx{t: t, fixture: f, root: filepath.Join(dir, f), m: m, srv: srv, run: fd.run, runs: runs, manifests: manifests,
				stream: fd.stream, rows: fd.rows, dropped: true, changed: changedFiles(before[f], hashFiles(t, filepath.Join(dir, f)))}
			walkManifest(c, used)
		})
	}
	for _, j := range judges {
		if !used[j.pattern] {
			t.Errorf("judge for %s: no manifest has that key", j.pattern)
		}
	}
	for _, u := range unjudgedKeys {
		if !used[u.pattern] {
			t.Errorf("unjudged key %s: no manifest has it", u.pattern)
		}
	}

	// The colab queue's file is gone: reported, item by item, in the
	// report (file and record), not only counted.
	colab := byFixture["n1-async-colab-2021"].stream
	if colab.Warnings["missing_file"] != 1 || len(colab.Items) != 1 || colab.Items[0].Reason != "missing_file" ||
		colab.Items[0].Seq != 288 || filepath.Base(colab.Items[0].File) != "data-1.log" || !strings.Contains(colab.Items[0].Detail, "file.txt") {
		t.Errorf("colab report: %+v", colab)
	}

	// The same imports again change nothing on the server, and skip every
	// run without reading it.
	before2 := srv.Counters()
	nRuns := len(srv.Runs())
	for i, args := range imports {
		code, out := execImport(t, srv, args...)
		if code != 0 {
			t.Fatalf("second import %d exited %d:\n%s", i+1, code, out)
		}
		if want := fmt.Sprintf("skipped_unchanged=%d", []int{len(fixtures) - 1, 1}[i]); !strings.Contains(out, want) {
			t.Errorf("second import %d did not skip the complete runs (%s):\n%s", i+1, want, out)
		}
		var r agent.Report
		if b, _ := os.ReadFile(reports[i]); json.Unmarshal(b, &r) != nil || !r.Complete {
			t.Errorf("report %d: %s", i+1, b)
		}
	}
	after := srv.Counters()
	if len(srv.Runs()) != nRuns || after.MetricLines != before2.MetricLines || after.DataLines != before2.DataLines ||
		after.LogLines != before2.LogLines || after.FilesPresigned != before2.FilesPresigned {
		t.Errorf("second import changed the server: %+v -> %+v", before2, after)
	}
	for _, f := range fixtures {
		if ch := changedFiles(before[f], hashFiles(t, filepath.Join(dir, f))); len(ch) > 0 {
			t.Errorf("%s: the imports changed %v", f, ch)
		}
	}
}

// hashFiles returns the sha256 of every file below root.
func hashFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = sha(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// changedFiles lists the files added, removed or changed.
func changedFiles(before, after map[string]string) []string {
	var out []string
	for p, h := range before {
		if after[p] != h {
			out = append(out, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
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
	state := filepath.Join(dir, "state")
	args := []string{"neptune", filepath.Join(dir, "run"), "--project", "nep", "--state-dir", state, "--no-progress"}
	// committed is the position the checkpoint holds for the run's stream.
	committed := func() (int64, bool) {
		st, err := checkpoint.Read(state)
		if err != nil || len(st.Streams) == 0 {
			return 0, false
		}
		return st.Streams[0].Pos.Seq, st.Streams[0].Done
	}
	// Each import is killed once its checkpoint has moved past the last
	// one: every restart resumes from a saved parser state (the case where
	// a stream must name its run again, or the rest of the data lands in a
	// run named after the file).
	last, kills := int64(0), 0
	for i := 0; i < 3; i++ {
		cmd := exec.Command(agentBin, append([]string{"import"}, args...)...)
		cmd.Env = importEnv(srv)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		deadline := time.Now().Add(60 * time.Second)
		for {
			pos, _ := committed()
			if pos > last {
				break
			}
			select {
			case <-exited:
				t.Fatalf("import %d exited before moving its checkpoint past %d", i, last)
			default:
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("import %d never moved its checkpoint past %d", i, last)
			}
			time.Sleep(2 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		kills++
		var done bool
		if last, done = committed(); done {
			break // the import had finished before the kill landed
		}
	}
	if kills == 0 {
		t.Fatal("no import was killed after a checkpoint")
	}
	code, out := execImport(t, srv, args...)
	if code != 0 {
		t.Fatalf("final import exited %d:\n%s", code, out)
	}
	if n := len(srv.Runs()); n != 1 {
		t.Fatalf("runs %v, want the one run", runNames(srv))
	}
	r := srv.Runs()[0]
	if r.Name != "big-run" {
		t.Errorf("run name %q, want big-run", r.Name)
	}
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
