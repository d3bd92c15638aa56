package main

// TensorBoard events files through the built binary and the mlop stand-in
// (internal/mlopfake, a test double): the shared tensorboardX fixtures held
// to their manifests, the Lightning log directories of real projects, a
// second import that changes nothing, a backfill from YAML, and a live
// follow of files appended in random pieces with SIGKILLs in between.

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/parsers/tensorboard/tbtest"
)

// copyTestdata copies testdata/<rel> to dir/<rel> (the agent must never
// read the committed copies).
func copyTestdata(t *testing.T, rel, dir string) string {
	t.Helper()
	dst := filepath.Join(dir, rel)
	copyDirTree(t, filepath.Join("..", "..", "testdata", rel), dst)
	return dst
}

// serverView is what the stand-in holds for the named runs, in the terms of
// a fixture manifest.
func serverView(t *testing.T, srv *mlopfake.Server, runs ...mlopfake.Run) tbtest.View {
	t.Helper()
	v := tbtest.View{}
	for _, r := range runs {
		rv := &tbtest.RunView{Metrics: map[string][]tbtest.Point{}}
		for name, pts := range srv.Metrics(r.ID) {
			for _, p := range pts {
				rv.Metrics[name] = append(rv.Metrics[name], tbtest.Point{Step: int64(p.Step), Time: int64(p.Time), Value: p.Value})
			}
		}
		for _, d := range srv.Data(r.ID) {
			rv.Data = append(rv.Data, tbtest.Data{Name: d.LogName, Type: d.DataType, Step: int64(d.Step), Time: int64(d.Time), Text: d.Data})
		}
		for _, f := range srv.Files(r.ID) {
			if !f.Uploaded {
				t.Errorf("run %s: file %s registered but not uploaded", r.Name, f.LogName)
			}
			rv.Files = append(rv.Files, tbtest.File{Name: f.LogName, Step: int64(f.Step), Time: int64(f.Time), Bytes: f.Bytes})
		}
		v[r.Name] = rv
	}
	return v
}

func runsNamed(t *testing.T, srv *mlopfake.Server, name string) []mlopfake.Run {
	t.Helper()
	var out []mlopfake.Run
	for _, r := range srv.Runs() {
		if r.Name == name {
			out = append(out, r)
		}
	}
	return out
}

func TestImportTensorBoard(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	a := copyTestdata(t, "tensorboard/tb-a-basic", dir)
	b := copyTestdata(t, "tensorboard/tb-b-killed", dir)
	carl := copyTestdata(t, "realworld/tensorboard-lightning/CarlSchader__labeled-contrastive-framework", dir)
	shape := copyTestdata(t, "realworld/tensorboard-lightning/DCBIA-OrthoLab__ShapeAXI", dir)
	report := filepath.Join(dir, "report.json")
	args := []string{"tensorboard", filepath.Join(a, "logs"), filepath.Join(b, "logs"), filepath.Join(carl, "lightning_logs"),
		filepath.Join(shape, "lightning_logs"), "--project", "tb", "--state-dir", filepath.Join(dir, "state"), "--no-progress",
		"--report", report, "--parallel", "2"}
	code, out := execImport(t, srv, args...)
	if code != 0 {
		t.Fatalf("import exited %d:\n%s", code, out)
	}
	noRejections(t, srv)
	if n := len(srv.Runs()); n != 4 {
		t.Fatalf("runs %v, want resnet-01, job-7 and two version_0", runNames(srv))
	}
	for _, r := range srv.Runs() {
		if r.Status != "COMPLETED" || !strings.HasPrefix(r.ExternalID, "tensorboard:"+r.Name+"/events.out.tfevents.") {
			t.Errorf("run %s: status %s, external id %q", r.Name, r.Status, r.ExternalID)
		}
	}

	// The tensorboardX fixtures, every key of their manifests.
	for _, fx := range []struct{ dir, run string }{{a, "resnet-01"}, {b, "job-7"}} {
		t.Run(filepath.Base(fx.dir), func(t *testing.T) {
			runs := runsNamed(t, srv, fx.run)
			if len(runs) != 1 {
				t.Fatalf("%d runs named %s", len(runs), fx.run)
			}
			tbtest.CheckManifest(t, filepath.Join(fx.dir, "manifest.json"), serverView(t, srv, runs[0]))
		})
	}
	r := runsNamed(t, srv, "resnet-01")[0]
	want := map[string]string{"train/loss": "METRIC", "train/acc": "METRIC", "val/loss": "METRIC", "eval/special": "METRIC",
		"notes": "DATA", "weights/layer1": "HISTOGRAM", "samples/red_blue": "IMAGE"}
	for name, typ := range want {
		if got := r.LogType(name); got != typ {
			t.Errorf("resnet-01 %s registered as %q, want %s", name, got, typ)
		}
	}
	// The killed writer: every flushed step (progress.txt names the last).
	job := runsNamed(t, srv, "job-7")[0]
	last := lastLine(t, filepath.Join(b, "progress.txt"))
	pts := srv.Metrics(job.ID)["loss"]
	if len(pts) < 809 || fmt.Sprint(pts[808].Step) != last {
		t.Errorf("job-7: %d points, step 808 = %v, progress.txt says the last flushed step is %s", len(pts), pts[808].Step, last)
	}

	// The Lightning directories: two runs called version_0.
	versions := runsNamed(t, srv, "version_0")
	if len(versions) != 2 || versions[0].ExternalID == versions[1].ExternalID {
		t.Fatalf("version_0 runs %+v", versions)
	}
	for _, v := range versions {
		m := srv.Metrics(v.ID)
		switch {
		case strings.Contains(v.ExternalID, "carls-gaming-linux"):
			for name, n := range map[string]int{"train_loss": 7738, "epoch": 7836, "val_loss": 100, "hp_metric": 1} {
				if len(m[name]) != n {
					t.Errorf("CarlSchader %s: %d points, want %d", name, len(m[name]), n)
				}
			}
			if len(v.Config) != 8 || v.Config["loss_fn"] != "__main__.arcface_loss" || v.Config["num_classes"] != 91354.0 {
				t.Errorf("CarlSchader config %v", v.Config)
			}
		default:
			if len(m) != 1 || len(m["hp_metric"]) != 1 || len(v.Config) != 41 || v.Config["lr"] != 0.0001 {
				t.Errorf("ShapeAXI: metrics %v config %v", m, v.Config)
			}
		}
	}

	var rep struct {
		Complete bool
		Totals   struct{ Runs, Streams int }
	}
	if raw, err := os.ReadFile(report); err != nil || json.Unmarshal(raw, &rep) != nil || !rep.Complete || rep.Totals.Runs != 4 {
		t.Errorf("report: %s (%v)", raw, err)
	}

	// A second import changes nothing on the server and reads nothing.
	before := srv.Counters()
	code, out = execImport(t, srv, args...)
	if code != 0 {
		t.Fatalf("second import exited %d:\n%s", code, out)
	}
	after := srv.Counters()
	if len(srv.Runs()) != 4 || after.MetricLines != before.MetricLines || after.DataLines != before.DataLines ||
		after.FilesPresigned != before.FilesPresigned || after.S3Puts != before.S3Puts {
		t.Errorf("second import changed the server: %+v -> %+v", before, after)
	}
	if !strings.Contains(out, "skipped_unchanged=4") {
		t.Errorf("second import did not skip the complete runs:\n%s", out)
	}

	// A copy of a run at another path re-attaches to the same run.
	elsewhere := filepath.Join(t.TempDir(), "moved")
	copyDirTree(t, filepath.Join(a, "logs"), elsewhere)
	before = srv.Counters()
	code, out = execImport(t, srv, "tensorboard", elsewhere, "--project", "tb", "--state-dir", filepath.Join(dir, "state2"), "--no-progress")
	if code != 0 || len(srv.Runs()) != 4 {
		t.Fatalf("import of a copy: exit %d, runs %v:\n%s", code, runNames(srv), out)
	}
	if after := srv.Counters(); after.RunsCreated != before.RunsCreated {
		t.Errorf("the copy created a run")
	}
	noRejections(t, srv)
}

func lastLine(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	return lines[len(lines)-1]
}

func copyDirTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, r), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, r), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBackfillTensorBoard reads events files matched by a YAML glob with
// format: tensorboard: add_scalars sub-directories fold into their run,
// an explicit run.name template names the run.
func TestBackfillTensorBoard(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	a := copyTestdata(t, "tensorboard/tb-a-basic", dir)
	logs := filepath.Join(dir, "own")
	fv := tbtest.FileVersion(1.7e9)
	if err := tbtest.WriteFile(filepath.Join(logs, "exp", "events.out.tfevents.1700000000.h.1.0"), fv, tbtest.Scalar(1.7e9, 1, "loss", 1)); err != nil {
		t.Fatal(err)
	}
	if err := tbtest.WriteFile(filepath.Join(logs, "exp", "loss_val", "events.out.tfevents.1700000001.h.1.1"), fv, tbtest.Scalar(1.7e9, 1, "loss", 2)); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, srv, fmt.Sprintf(`sources:
  - name: tb
    format: tensorboard
    paths: ["%s/logs/**/events.out.tfevents.*"]
  - name: own
    format: tensorboard
    paths: ["%s/**/events.out.tfevents.*"]
    run:
      name: "own-{{.Dir}}"
`, a, logs))
	code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg)
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	noRejections(t, srv)
	names := runNames(srv)
	sort.Strings(names)
	if strings.Join(names, ",") != "own-exp,resnet-01" {
		t.Fatalf("runs %v, want own-exp and resnet-01", names)
	}
	r := runsNamed(t, srv, "resnet-01")[0]
	tbtest.CheckManifest(t, filepath.Join(a, "manifest.json"), serverView(t, srv, r))
	own := runsNamed(t, srv, "own-exp")[0]
	m := srv.Metrics(own.ID)
	if len(m) != 2 || len(m["loss"]) != 1 || len(m["loss/val"]) != 1 || m["loss/val"][0].Value != 2 {
		t.Errorf("own-exp metrics %v", m)
	}
	if own.Status != "COMPLETED" || r.Status != "COMPLETED" {
		t.Errorf("statuses %s %s", own.Status, r.Status)
	}
}

// liveLane is one events file of the live test: its framed bytes, written
// in pieces, and the points of each complete record.
type liveLane struct {
	path    string
	data    []byte
	written int
	ends    []int // offsets after each record
	points  []int // points in each record
}

func (l *liveLane) complete() int {
	n := 0
	for i, e := range l.ends {
		if e <= l.written {
			n += l.points[i]
		}
	}
	return n
}

// TestFollowTensorBoardKilled appends events files in random pieces (so
// records are split mid-header and mid-payload) while `run` follows them:
// a run directory with two files (a writer that restarted) and four
// add_scalars sub-directories (more streams than --parallel), with text
// values. The agent is SIGKILLed at random moments and started again.
// Every point arrives exactly once in the deduplicated view, and every
// text at least once, with at most one batch per kill sent twice.
func TestFollowTensorBoardKilled(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	const steps, textEvery = 600, 20
	wall := func(s int) float64 { return 1_764_000_000 + float64(s)*0.25 }
	mk := func(rel string, recs [][]byte, pts []int) *liveLane {
		l := &liveLane{path: filepath.Join(logs, filepath.FromSlash(rel))}
		for i, r := range recs {
			l.data = append(l.data, tbtest.Frame(r)...)
			l.ends = append(l.ends, len(l.data))
			l.points = append(l.points, pts[i])
		}
		return l
	}
	textVal := func(s int) []byte {
		return tbtest.Value("notes/text_summary", tbtest.Meta("text", nil), tbtest.Tensor{DType: tbtest.DTString, Dims: []int64{1},
			Strings: [][]byte{[]byte(fmt.Sprintf("step %d", s))}}.Marshal())
	}
	// The main writer, killed after half the steps; the restarted one.
	var lanes []*liveLane
	for part, span := range [][2]int{{0, steps / 2}, {steps / 2, steps}} {
		recs := [][]byte{tbtest.FileVersion(wall(span[0]))}
		pts := []int{0}
		for s := span[0]; s < span[1]; s++ {
			for _, tag := range []string{"train/loss", "train/acc"} {
				recs = append(recs, tbtest.Scalar(wall(s), int64(s), tag, float32(s)+0.5))
				pts = append(pts, 1)
			}
			if s%textEvery == 0 {
				recs = append(recs, tbtest.Summary(wall(s), int64(s), textVal(s)))
				pts = append(pts, 0)
			}
		}
		lanes = append(lanes, mk(fmt.Sprintf("job/events.out.tfevents.%d.host.1.%d", 1764000000+part*1000, part), recs, pts))
	}
	for i, sub := range []string{"loss_train", "loss_val", "lr_pg0", "lr_pg1"} {
		tag := strings.SplitN(sub, "_", 2)[0]
		recs := [][]byte{tbtest.FileVersion(wall(0))}
		pts := []int{0}
		for s := 0; s < steps; s++ {
			recs = append(recs, tbtest.Scalar(wall(s), int64(s), tag, float32(s*10+i)))
			pts = append(pts, 1)
		}
		lanes = append(lanes, mk(fmt.Sprintf("job/%s/events.out.tfevents.%d.host.1.%d", sub, 1764000001, 10+i), recs, pts))
	}
	total := 0
	for _, l := range lanes {
		for _, p := range l.points {
			total += p
		}
	}
	cfg := writeConfig(t, dir, srv, fmt.Sprintf(`batch:
  max_lines: 100
checkpoint:
  interval: 200ms
sources:
  - name: tb
    format: tensorboard
    paths: ["%s/**/events.out.tfevents.*"]
    idle_timeout: never
`, logs))
	countPoints := func() int {
		r, ok := runByName(srv, "job")
		if !ok {
			return 0
		}
		n := 0
		for _, pts := range srv.Metrics(r.ID) {
			n += len(pts)
		}
		return n
	}
	// Kills at four random rounds (every lane takes more than 150).
	killAt := map[int]bool{}
	for len(killAt) < 4 {
		killAt[3+rng.Intn(147)] = true
	}
	p := startAgent(t, "run", "-c", cfg)
	kills := 0
	for round := 0; ; round++ {
		progressed := false
		for i, l := range lanes {
			// The restarted writer's file appears once the first is done.
			if i == 1 && lanes[0].written < len(lanes[0].data) {
				continue
			}
			if l.written == len(l.data) {
				continue
			}
			n := min(1+rng.Intn(300), len(l.data)-l.written)
			if l.written == 0 {
				os.MkdirAll(filepath.Dir(l.path), 0o755)
			}
			appendFile(t, l.path, string(l.data[l.written:l.written+n]))
			l.written += n
			progressed = true
		}
		if !progressed {
			break
		}
		switch {
		case killAt[round]:
			// Killed at once, with whatever it has in flight.
			p.cmd.Process.Signal(syscall.SIGKILL)
			p.wait(t, 30*time.Second)
			kills++
			p = startAgent(t, "run", "-c", cfg)
		case round%15 == 14:
			// Let it catch up with every complete record written so far.
			want := 0
			for _, l := range lanes {
				want += l.complete()
			}
			waitFor(t, p, 60*time.Second, fmt.Sprintf("%d points of complete records", want), func() bool { return countPoints() >= want })
		}
	}
	waitFor(t, p, 90*time.Second, fmt.Sprintf("all %d points", total), func() bool { return countPoints() >= total })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("run exited %d after SIGTERM:\n%s", code, p.stderr)
	}
	noRejections(t, srv)
	if names := runNames(srv); len(names) != 1 || names[0] != "job" {
		t.Fatalf("runs %v, want only job (sub-directories folded)", names)
	}
	r, _ := runByName(srv, "job")
	m := srv.Metrics(r.ID)
	want := map[string]func(s int) float64{
		"train/loss": func(s int) float64 { return float64(float32(s) + 0.5) },
		"train/acc":  func(s int) float64 { return float64(float32(s) + 0.5) },
		"loss/train": func(s int) float64 { return float64(s * 10) },
		"loss/val":   func(s int) float64 { return float64(s*10 + 1) },
		"lr/pg0":     func(s int) float64 { return float64(s*10 + 2) },
		"lr/pg1":     func(s int) float64 { return float64(s*10 + 3) },
	}
	if len(m) != len(want) {
		t.Errorf("metrics %v", sortedNames(m))
	}
	for name, val := range want {
		pts := m[name]
		if len(pts) != steps {
			t.Errorf("%s: %d points in the deduplicated view, want %d", name, len(pts), steps)
			continue
		}
		for s, pt := range pts {
			if pt.Step != uint64(s) || pt.Value != val(s) || pt.Time != uint64(math.Round(wall(s)*1000)) {
				t.Errorf("%s step %d: %+v, want value %v", name, s, pt, val(s))
				break
			}
		}
	}
	texts := map[string]int{}
	rows := 0
	for _, d := range srv.Data(r.ID) {
		if d.LogName == "notes" {
			texts[d.Data]++
			rows++
		}
	}
	for s := 0; s < steps; s += textEvery {
		if texts[fmt.Sprintf("step %d", s)] == 0 {
			t.Errorf("text of step %d missing", s)
		}
	}
	if kills != len(killAt) {
		t.Errorf("%d kills, want %d", kills, len(killAt))
	}
	if dup := rows - steps/textEvery; dup > kills*100 {
		t.Errorf("%d text rows sent twice over %d kills (bound: one batch of 100 per kill)", dup, kills)
	}
	t.Logf("kills %d, points %d, raw metric rows %d, text rows %d for %d texts", kills, total, srv.RawMetricCount(r.ID), rows, steps/textEvery)
}

// waitFor is eventually, with the agent's log when it times out.
func waitFor(t *testing.T, p *agentProc, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; agent log:\n%s", what, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sortedNames(m map[string][]mlopfake.Point) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestImportTensorBoardShardsAndDryRun: --dry-run sends nothing and prints
// the requests; --shard I/N splits the runs with their sub-directories
// (a folded add_scalars directory goes with its run), and the shards
// together import everything once.
func TestImportTensorBoardShardsAndDryRun(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	fv := tbtest.FileVersion(1.7e9)
	// Names whose stream keys fall in both shards. (The agent's shard hash,
	// FNV-1a modulo N, takes its low bits, which for N = 2 is the parity
	// of the key's odd bytes: keys like exp-0/…0, exp-1/…1 all land in
	// one shard.)
	names := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
	runs := len(names)
	for i, name := range names {
		run := filepath.Join(logs, name)
		if err := tbtest.WriteFile(filepath.Join(run, tbtest.FileName(1_700_000_000+int64(i), "h", ".1.0")), fv, tbtest.Scalar(1.7e9, 1, "loss", float32(i))); err != nil {
			t.Fatal(err)
		}
		if err := tbtest.WriteFile(filepath.Join(run, "acc_val", tbtest.FileName(1_700_000_100+int64(i), "h", ".1.1")), fv, tbtest.Scalar(1.7e9, 1, "acc", float32(i))); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(agentBin, "import", "tensorboard", logs, "--project", "tb", "--state-dir", filepath.Join(dir, "dry"), "--no-progress", "--dry-run")
	cmd.Env = importEnv(srv)
	out, err := cmd.Output()
	if err != nil || cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("dry run: %v", err)
	}
	if c := srv.Counters(); c.Requests != 0 || !strings.Contains(string(out), `"request":"POST /api/runs/create"`) || !strings.Contains(string(out), `"acc/val"`) {
		t.Fatalf("dry run sent %d requests; output:\n%.2000s", c.Requests, out)
	}
	for shard := 0; shard < 2; shard++ {
		before := srv.Counters().RunsCreated
		code, out := execImport(t, srv, "tensorboard", logs, "--project", "tb", "--state-dir", filepath.Join(dir, "state", fmt.Sprint(shard)),
			"--no-progress", "--shard", fmt.Sprintf("%d/2", shard))
		if code != 0 {
			t.Fatalf("shard %d exited %d:\n%s", shard, code, out)
		}
		if srv.Counters().RunsCreated == before {
			t.Errorf("shard %d imported no run", shard)
		}
	}
	noRejections(t, srv)
	if n := len(srv.Runs()); n != runs {
		t.Fatalf("runs %v, want %d", runNames(srv), runs)
	}
	for _, r := range srv.Runs() {
		m := srv.Metrics(r.ID)
		if !slices.Contains(names, r.Name) || len(m) != 2 || len(m["loss"]) != 1 || len(m["acc/val"]) != 1 || m["loss"][0].Value != m["acc/val"][0].Value {
			t.Errorf("run %s: metrics %v", r.Name, m)
		}
	}
}

// TestImportTensorBoardReportsSkips: what mlop has no place for, and a
// corrupt record, are counted by kind in the report and the summary; the
// good points around them arrive.
func TestImportTensorBoardReportsSkips(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "logs", "run", tbtest.FileName(1_700_000_000, "h", ""))
	recs := [][]byte{tbtest.FileVersion(1.7e9), tbtest.Scalar(1.7e9, 1, "loss", 1), tbtest.Graph(1.7e9, 64),
		tbtest.Summary(1.7e9, 2, tbtest.AudioValue("speech", []byte("RIFF"))), tbtest.Scalar(1.7e9, 3, "loss", 3), tbtest.Scalar(1.7e9, 4, "loss", 4)}
	data := tbtest.Records(recs...)
	off := 0
	for _, r := range recs[:4] {
		off += 16 + len(r)
	}
	data[off+14] ^= 0xff // record 4 (step 3): a bad data checksum
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, data, 0o644)
	report := filepath.Join(dir, "report.json")
	code, out := execImport(t, srv, "tensorboard", filepath.Join(dir, "logs"), "--project", "tb", "--state-dir", filepath.Join(dir, "state"),
		"--no-progress", "--report", report)
	if code != 0 {
		t.Fatalf("import exited %d:\n%s", code, out)
	}
	noRejections(t, srv)
	r, ok := runByName(srv, "run")
	if pts := srv.Metrics(r.ID)["loss"]; !ok || len(pts) != 2 || pts[0].Step != 1 || pts[1].Step != 4 {
		t.Fatalf("points %v", pts)
	}
	var rep struct {
		Streams []struct {
			Skipped map[string]int `json:"skipped"`
		}
	}
	raw, _ := os.ReadFile(report)
	if err := json.Unmarshal(raw, &rep); err != nil || len(rep.Streams) != 1 {
		t.Fatalf("report %s: %v", raw, err)
	}
	if got := rep.Streams[0].Skipped; got["audio"] != 1 || got["graph"] != 1 || got["corrupt"] != 1 || len(got) != 3 {
		t.Errorf("report skipped %v, want audio, graph and corrupt once each", got)
	}
	for _, want := range []string{"audio 1", "graph 1", "corrupt 1", fmt.Sprintf("%s:%d: corrupt", p, off)} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary and log do not say %q:\n%s", want, out)
		}
	}
}
