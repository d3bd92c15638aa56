package main

// The metric files real tools write, through the binary and the mlop
// stand-in (a test double): one source per preset over the real files in
// testdata/realworld (see their NOTICE files). Expected figures were read
// off the files by hand (distinct steps per metric, first and last value).

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// copyTree copies testdata/realworld/<rel> to dir/<rel>.
func copyTree(t *testing.T, rel, dir string) string {
	t.Helper()
	dst := filepath.Join(dir, rel)
	copyDirTree(t, filepath.Join("..", "..", "testdata", "realworld", rel), dst)
	return dst
}

type metricWant struct {
	run, metric           string
	count                 int
	firstStep, lastStep   uint64
	firstValue, lastValue float64
}

func checkMetric(t *testing.T, srv *mlopfake.Server, w metricWant) {
	t.Helper()
	r, ok := runByName(srv, w.run)
	if !ok {
		t.Errorf("no run %q; runs %v", w.run, runNames(srv))
		return
	}
	pts := srv.Metrics(r.ID)[w.metric]
	if len(pts) != w.count {
		t.Errorf("%s/%s: %d points, want %d", w.run, w.metric, len(pts), w.count)
		return
	}
	f, l := pts[0], pts[len(pts)-1]
	if f.Step != w.firstStep || l.Step != w.lastStep || math.Abs(f.Value-w.firstValue) > 1e-12 || math.Abs(l.Value-w.lastValue) > 1e-12 {
		t.Errorf("%s/%s: first %+v last %+v, want step %d=%v .. %d=%v", w.run, w.metric, f, l, w.firstStep, w.firstValue, w.lastStep, w.lastValue)
	}
}

func TestPresetsEndToEnd(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	for _, rel := range []string{"lightning-csvlogger/ml-aos-v4", "keras-csvlogger/brats2020", "ultralytics-yolov5/aud-bills-exp",
		"ultralytics-yolov8/dental-detect", "sb3-monitor/cartpole-ppo", "sb3-progress/jobshop-ppo", "mlflow-filestore/bilevel-rl-dqn",
		"hf-trainer-state/whisper-ja", "jsonl-deit-log/deit-tiny"} {
		copyTree(t, rel, dir)
	}
	src := func(name, format, glob, extra string) string {
		return fmt.Sprintf("  - name: %s\n    format: %s\n    paths: [\"%s/%s\"]\n%s", name, format, dir, glob, extra)
	}
	cfg := writeConfig(t, dir, srv, "sources:\n"+
		src("lightning", "lightning", "lightning-csvlogger/**/metrics.csv", "")+
		src("keras", "keras", "keras-csvlogger/**/training.log", "")+
		src("yolo", "yolo", "ultralytics-*/**/results.csv", "")+
		src("sb3", "sb3", "sb3-monitor/**/*.monitor.csv", "")+
		src("sb3p", "sb3-progress", "sb3-progress/**/progress.csv", "")+
		src("mlflow", "mlflow", "mlflow-filestore/bilevel-rl-dqn/mlruns", "")+
		src("hf", "hf-trainer", "hf-trainer-state/**/trainer_state.json", "")+
		src("deit", "jsonl", "jsonl-deit-log/**/log.txt", "    step_field: epoch\n    run:\n      name: deit-tiny\n"))
	code, out := execAgent(t, 120*time.Second, "backfill", "-c", cfg)
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	if rej := srv.Rejected(); len(rej) > 0 {
		t.Fatalf("the stand-in rejected requests: %+v", rej)
	}
	for _, w := range []metricWant{
		{"version_4", "train_loss", 604, 49, 30199, 0.4434574246406555, 0.002650958951562643},
		{"version_4", "val_loss", 200, 150, 30199, 0.3609369993209839, 0.0011605253675952554},
		{"brats2020", "loss", 24, 0, 23, 0.05603187158703804, 0.02580178715288639},
		{"exp", "train/box_loss", 300, 0, 299, 0.04588, 0.013358},
		{"train", "train/box_loss", 55, 1, 55, 1.85087, 0.92421},
		{"CartPole-v1_1", "r", 38, 1, 38, 10, 500},
		{"logs", "rollout/ep_rew_mean", 25, 2048, 51200, -20.228999999999996, -12.210000000000006},
		{"whisper-ja", "loss", 200, 25, 5000, 0.3048, 0.0002},
		// 300 lines, 298 distinct epochs: the restarted run repeats epochs 0 and 1.
		{"deit-tiny", "train_loss", 298, 0, 299, 4.177725998560588, 3.0652885325749715},
	} {
		checkMetric(t, srv, w)
	}
	// Sidecar metadata and whole-run layouts.
	if r, _ := runByName(srv, "version_4"); r.Config["batch_size"] != float64(256) || r.Config["persistent_workers"] != true {
		t.Errorf("lightning hparams.yaml not in the config: %v", r.Config)
	}
	if r, _ := runByName(srv, "exp"); r.Config["lr0"] != 0.01 {
		t.Errorf("yolo hyp.yaml not in the config: %v", r.Config)
	}
	var ml mlopfake.Run
	for _, r := range srv.Runs() {
		if r.ExternalID == "mlflow:770cc011eb214ea997501cabcfe12f58" {
			ml = r
		}
	}
	if ml.ID == 0 || ml.Status != "COMPLETED" || len(srv.Metrics(ml.ID)["rollout/ep_len_mean"]) != 30 {
		t.Errorf("mlflow run: %+v, %d points", ml, len(srv.Metrics(ml.ID)["rollout/ep_len_mean"]))
	}
	if ml.ClientCreatedAtMs == nil || *ml.ClientCreatedAtMs != 1675439113199 {
		t.Errorf("mlflow start_time not the run's creation time: %v", ml.ClientCreatedAtMs)
	}
	for _, r := range srv.Runs() {
		if r.Status != "COMPLETED" && r.Status != "FAILED" {
			t.Errorf("run %s status %s after backfill", r.Name, r.Status)
		}
	}
}

// TestCSVKilledMidFile SIGKILLs the agent while a writer grows a CSV: after
// restarts no row is lost or duplicated and the header never becomes data.
func TestCSVKilledMidFile(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "version_0", "metrics.csv")
	os.MkdirAll(filepath.Dir(path), 0o755)
	appendFile(t, path, "step,loss,acc\n")
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: l\n    format: lightning\n    paths: [\"%s/*/metrics.csv\"]\n", dir))
	const rows = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= rows; i++ {
			appendFile(t, path, fmt.Sprintf("%d,%g,%g\n", i, 1/float64(i), float64(i)/rows))
			if i%50 == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	// Each agent is killed once it has delivered more rows than the one
	// before it (never at a guessed time): five kills mid-file.
	for k := 0; k < 5; k++ {
		before := srv.Counters().MetricLines
		p := startAgent(t, "run", "-c", cfg)
		eventually(t, 60*time.Second, "progress before the kill", func() bool { return srv.Counters().MetricLines > before })
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(t, 20*time.Second)
	}
	<-done
	p := startAgent(t, "run", "-c", cfg)
	p.waitReady(t)
	eventually(t, 60*time.Second, "every row", func() bool { return metricCount(srv, "version_0", "loss") == rows })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr)
	}
	r, _ := runByName(srv, "version_0")
	for name := range srv.Metrics(r.ID) {
		if name != "loss" && name != "acc" {
			t.Errorf("unexpected metric %q (a header shipped as data?)", name)
		}
	}
	for _, d := range srv.Data(r.ID) {
		t.Errorf("string row %+v (a header shipped as data?)", d)
	}
	seen := map[uint64]float64{}
	for _, pt := range srv.Metrics(r.ID)["loss"] {
		seen[pt.Step] = pt.Value
	}
	for i := 1; i <= rows; i++ {
		if v, ok := seen[uint64(i)]; !ok || v != 1/float64(i) {
			t.Fatalf("row %d: %v %v", i, v, ok)
		}
	}
	if rej := rejectedNotKilled(srv); len(rej) > 0 {
		t.Fatalf("rejected: %+v", rej)
	}
}

// rejectedNotKilled is what the stand-in rejected, less the bodies a
// SIGKILL cut short (the agent never saw the answer and sent them again).
func rejectedNotKilled(srv *mlopfake.Server) []mlopfake.Rejection {
	var out []mlopfake.Rejection
	for _, r := range srv.Rejected() {
		if strings.HasPrefix(r.Reason, "body read failed") && strings.HasSuffix(r.Reason, "unexpected EOF") {
			continue
		}
		out = append(out, r)
	}
	return out
}

// TestRunLifecycle: a run idle for idle_timeout is marked COMPLETED; when
// its file grows again it is RUNNING again, the same run.
func TestRunLifecycle(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "job.jsonl")
	hp := filepath.Join(dir, "hparams.yaml")
	os.WriteFile(hp, []byte("lr: 0.1\n"), 0o644)
	appendFile(t, path, `{"step": 1, "loss": 1}`+"\n"+`{"_status": "running"}`+"\n")
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [\"%s\"]\n    idle_timeout: 2s\n    run:\n      config_files: [hparams.yaml]\n", path))
	p := startAgent(t, "run", "-c", cfg)
	p.waitReady(t)
	eventually(t, 15*time.Second, "completed after idle", func() bool {
		r, ok := runByName(srv, "job")
		return ok && r.Status == "COMPLETED"
	})
	r, _ := runByName(srv, "job")
	if r.Config["lr"] != 0.1 {
		t.Errorf("config from hparams.yaml = %v", r.Config)
	}
	// The sidecar config changes: the run's config follows.
	os.WriteFile(hp, []byte("lr: 0.05\nwarmup: 3\n"), 0o644)
	appendFile(t, path, `{"step": 2, "loss": 0.5}`+"\n")
	// Judged on the status history: the run may be idle (COMPLETED) again
	// by the time it is looked at, on a loaded machine.
	eventually(t, 15*time.Second, "resumed with the new point", func() bool {
		r, _ := runByName(srv, "job")
		h := r.StatusHistory
		resumed := len(h) >= 2 && h[len(h)-2].To == "COMPLETED" && h[len(h)-1].To == "RUNNING" ||
			len(h) >= 3 && h[len(h)-3].To == "COMPLETED" && h[len(h)-2].To == "RUNNING"
		return resumed && metricCount(srv, "job", "loss") == 2
	})
	eventually(t, 15*time.Second, "config updated", func() bool {
		r, _ := runByName(srv, "job")
		return r.Config["lr"] == 0.05 && r.Config["warmup"] == float64(3)
	})
	appendFile(t, path, `{"step": 3, "loss": 0.25, "_status": "failed"}`+"\n")
	eventually(t, 15*time.Second, "failed by _status", func() bool {
		r, _ := runByName(srv, "job")
		return r.Status == "FAILED"
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 20*time.Second)
	if n := len(srv.Runs()); n != 1 {
		t.Errorf("runs %v, want one", runNames(srv))
	}
	var hist []string
	r, _ = runByName(srv, "job")
	for _, h := range r.StatusHistory {
		hist = append(hist, h.To)
	}
	if !strings.Contains(strings.Join(hist, ","), "COMPLETED") {
		t.Errorf("status history %v", hist)
	}
}
