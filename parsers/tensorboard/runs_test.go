package tensorboard

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/tensorboard/tbtest"
)

// runView folds the lanes of a read into mlop runs, as the agent does: a
// run event with a name names the run; one without attaches to it.
type runView struct {
	name    string
	metrics map[string][]point
	config  map[string]any
	lanes   []string
}

func runsOf(t *testing.T, lanes map[string]*laneRead) map[string]*runView {
	t.Helper()
	out := map[string]*runView{}
	for _, key := range sortedKeys(lanes) {
		lr := lanes[key]
		var runs []event.Event
		for _, ev := range lr.events {
			if ev.Kind == event.KindRun {
				runs = append(runs, ev)
			}
		}
		if len(lr.events) == 0 {
			continue
		}
		if len(runs) != 1 || lr.events[0].Kind != event.KindRun {
			t.Fatalf("lane %s: %d run events, first event %v", key, len(runs), lr.events[0].Kind)
		}
		info := runs[0].Info
		rv := out[info.ExternalID]
		if rv == nil {
			rv = &runView{metrics: map[string][]point{}, config: map[string]any{}}
			out[info.ExternalID] = rv
		}
		if info.Name != "" {
			rv.name = info.Name
		}
		rv.lanes = append(rv.lanes, key)
		for name, pts := range metrics(lr.events) {
			rv.metrics[name] = append(rv.metrics[name], pts...)
		}
		for k, v := range mergeConfig(lr.events) {
			rv.config[k] = v
		}
	}
	for id, rv := range out {
		if rv.name == "" {
			t.Errorf("run %s has no name (lanes %v)", id, rv.lanes)
		}
	}
	return out
}

func byName(runs map[string]*runView) map[string]*runView {
	out := map[string]*runView{}
	for _, rv := range runs {
		out[rv.name] = rv
	}
	return out
}

func TestAddScalarsFolding(t *testing.T) {
	dir := t.TempDir()
	fv := tbtest.FileVersion(wall0)
	writeEvents(t, dir, "r/events.out.tfevents.10.h.1.0", fv, tbtest.Scalar(wall0, 1, "loss", 1))
	// torch: <run>/<main_tag with / as _>_<key>, holding tag <main_tag>.
	writeEvents(t, dir, "r/loss_train/events.out.tfevents.11.h.1.1", fv, tbtest.Scalar(wall0, 1, "loss", 2), tbtest.Scalar(wall0, 2, "loss", 3))
	writeEvents(t, dir, "r/lr_pg_group0/events.out.tfevents.11.h.1.2", fv, tbtest.Scalar(wall0, 1, "lr/pg", 0.1))
	// tensorboardX: <run>/<main_tag>/<key>.
	writeEvents(t, dir, "r/acc/val/events.out.tfevents.11.h.1.3", fv, tbtest.Scalar(wall0, 1, "acc", 0.5))
	// A sub-directory that is not add_scalars: its own run.
	writeEvents(t, dir, "r/eval/events.out.tfevents.12.h.1.4", fv, tbtest.Scalar(wall0, 1, "top1", 0.7), tbtest.Scalar(wall0, 1, "other", 1))
	// A folded directory with a second tag keeps it under its path.
	writeEvents(t, dir, "r/x_y/events.out.tfevents.11.h.1.5", fv, tbtest.Scalar(wall0, 1, "x", 1), tbtest.Scalar(wall0, 1, "z", 2))

	runs := byName(runsOf(t, readLogdir(t, New(), dir, testOpts(t, nil))))
	if got := sortedKeys(runs); strings.Join(got, ",") != "r,r/eval" {
		t.Fatalf("runs %v, want r and r/eval", got)
	}
	want := map[string][]point{
		"loss":         {{1, wall0 * 1000, 1}},
		"loss/train":   {{1, wall0 * 1000, 2}, {2, wall0 * 1000, 3}},
		"lr/pg/group0": {{1, wall0 * 1000, float64(float32(0.1))}},
		"acc/val":      {{1, wall0 * 1000, 0.5}},
		"x/y":          {{1, wall0 * 1000, 1}},
		"x_y/z":        {{1, wall0 * 1000, 2}},
	}
	if got := runs["r"].metrics; !reflect.DeepEqual(got, want) {
		t.Errorf("run r metrics\n got %v\nwant %v", got, want)
	}
	if got := sortedKeys(runs["r/eval"].metrics); strings.Join(got, ",") != "other,top1" {
		t.Errorf("run r/eval metrics %v", got)
	}

	// Switched off: every directory is its own run.
	off := byName(runsOf(t, readLogdir(t, New(), dir, testOpts(t, map[string]string{ParamFoldScalars: "false"}))))
	if got := sortedKeys(off); strings.Join(got, ",") != "r,r/acc/val,r/eval,r/loss_train,r/lr_pg_group0,r/x_y" {
		t.Errorf("unfolded runs %v", got)
	}
	if got := sortedKeys(off["r/loss_train"].metrics); strings.Join(got, ",") != "loss" {
		t.Errorf("unfolded metrics %v", got)
	}
}

func TestHParamsSubdirectoryFolds(t *testing.T) {
	dir := t.TempDir()
	fv := tbtest.FileVersion(wall0)
	meta := func(c []byte) []byte { return tbtest.Meta("hparams", c) }
	writeEvents(t, dir, "runs/exp/events.out.tfevents.10.h.1.0", fv, tbtest.Scalar(wall0, 5, "loss", 1))
	// torch's add_hparams: a sub-directory named by the time, holding the
	// hparams summaries and the metric_dict as scalars.
	writeEvents(t, dir, "runs/exp/1764000000.123/events.out.tfevents.11.h.1.1", fv,
		tbtest.Summary(wall0, 0, tbtest.MetaOnly("_hparams_/experiment", meta(tbtest.HParamsExperiment("hparam/accuracy")))),
		tbtest.Summary(wall0, 0, tbtest.MetaOnly("_hparams_/session_start_info", meta(tbtest.HParamsStart(map[string]any{"lr": 0.1, "bsize": 64.0})))),
		tbtest.Summary(wall0, 0, tbtest.MetaOnly("_hparams_/session_end_info", meta(tbtest.HParamsEnd()))),
		tbtest.Scalar(wall0, 0, "hparam/accuracy", 0.9))
	runs := byName(runsOf(t, readLogdir(t, New(), filepath.Join(dir, "runs"), testOpts(t, nil))))
	r := runs["exp"]
	if len(runs) != 1 || r == nil {
		t.Fatalf("runs %v", sortedKeys(runs))
	}
	if !reflect.DeepEqual(r.config, map[string]any{"lr": 0.1, "bsize": 64.0}) {
		t.Errorf("config %v", r.config)
	}
	if got := sortedKeys(r.metrics); strings.Join(got, ",") != "hparam/accuracy,loss" || r.metrics["hparam/accuracy"][0].v != float64(float32(0.9)) {
		t.Errorf("metrics %v", r.metrics)
	}
	off := byName(runsOf(t, readLogdir(t, New(), filepath.Join(dir, "runs"), testOpts(t, map[string]string{ParamFoldHParams: "false"}))))
	if got := sortedKeys(off); strings.Join(got, ",") != "exp,exp/1764000000.123" {
		t.Errorf("unfolded runs %v", got)
	}
}

func TestPurgeOnImport(t *testing.T) {
	dir := t.TempDir()
	var first [][]byte
	first = append(first, tbtest.FileVersion(wall0))
	for s := int64(0); s < 10; s++ {
		first = append(first, tbtest.Scalar(wall0+float64(s), s, "loss", float32(s)),
			tbtest.Summary(wall0+float64(s), s, tbtest.Value("note", tbtest.Meta("text", nil), tbtest.Tensor{DType: tbtest.DTString, Strings: [][]byte{[]byte("a")}}.Marshal())))
	}
	writeEvents(t, dir, "r/events.out.tfevents.100.h.1.0", first...)
	// The job restarts from a checkpoint at step 5: SummaryWriter(purge_step=5).
	second := [][]byte{tbtest.FileVersion(wall0 + 100), tbtest.Start(wall0+100, 5)}
	for s := int64(5); s < 13; s++ {
		second = append(second, tbtest.Scalar(wall0+100+float64(s), s, "loss", float32(100+s)))
	}
	writeEvents(t, dir, "r/events.out.tfevents.200.h.2.0", second...)

	lr := only(t, readLogdir(t, New(), dir, testOpts(t, nil)))
	pts := metrics(lr.events)["loss"]
	if len(pts) != 13 {
		t.Fatalf("%d points, want 13 (0..4 of the first writer, 5..12 of the second): %v", len(pts), pts)
	}
	for i, p := range pts {
		want := float64(i)
		if i >= 5 {
			want = float64(100 + i)
		}
		if p.step != int64(i) || p.v != want {
			t.Errorf("point %d: %+v, want value %v", i, p, want)
		}
	}
	if n := len(ofKind(lr.events, event.KindData)); n != 5 {
		t.Errorf("%d texts, want 5 (steps 0..4)", n)
	}
	r := reasons(lr.warnings)
	if r[ReasonPurged] != 1 || len(r) != 1 || !strings.Contains(lr.warnings[0].Detail, "10 points at steps >= 5") {
		t.Errorf("warnings %v", lr.warnings)
	}

	// purge=false sends everything.
	all := only(t, readLogdir(t, New(), dir, testOpts(t, map[string]string{ParamPurge: "false"})))
	if n := len(metrics(all.events)["loss"]); n != 18 {
		t.Errorf("purge off: %d points, want 18", n)
	}
}

func TestPurgeMidFileAndWhileFollowing(t *testing.T) {
	// A START in the middle of a file (TF1's supervisor): the points
	// before it are sent already; they are counted, not taken back.
	dir := t.TempDir()
	recs := [][]byte{tbtest.FileVersion(wall0)}
	for s := int64(0); s < 10; s++ {
		recs = append(recs, tbtest.Scalar(wall0, s, "loss", 1))
	}
	recs = append(recs, tbtest.Start(wall0, 3), tbtest.Scalar(wall0, 3, "loss", 2))
	writeEvents(t, dir, "r/events.out.tfevents.100.h", recs...)
	lr := only(t, readLogdir(t, New(), dir, testOpts(t, nil)))
	if r := reasons(lr.warnings); r[ReasonPurgeSent] != 1 || !strings.Contains(lr.warnings[0].Detail, "7 points at steps >= 3 were sent") {
		t.Errorf("mid-file START: warnings %v", lr.warnings)
	}

	// Following: the restarted writer's file appears after the first was
	// sent.
	dir = t.TempDir()
	first := [][]byte{tbtest.FileVersion(wall0)}
	for s := int64(0); s < 10; s++ {
		first = append(first, tbtest.Scalar(wall0, s, "loss", 1))
	}
	writeEvents(t, dir, "r/events.out.tfevents.100.h", first...)
	f := New()
	infos, _ := f.Discover(dir)
	opts := testOpts(t, nil)
	opts.Follow = true
	st, err := f.Open(infos[0], event.Position{}, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, _, _ := drain(t, st)
	if n := len(metrics(evs)["loss"]); n != 10 {
		t.Fatalf("%d points before the restart", n)
	}
	writeEvents(t, dir, "r/events.out.tfevents.200.h", tbtest.FileVersion(wall0), tbtest.Start(wall0, 4), tbtest.Scalar(wall0, 4, "loss", 9))
	evs, ws, _ := drain(t, st)
	if pts := metrics(evs)["loss"]; len(pts) != 1 || pts[0].v != 9 {
		t.Errorf("after the restart: %v", pts)
	}
	if r := reasons(ws); r[ReasonPurgeSent] != 1 || len(r) != 1 || !strings.Contains(ws[0].Detail, "6 points at steps >= 4 were sent") {
		t.Errorf("following: warnings %v", ws)
	}
}

func TestHParamsYAML(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "lightning_logs", "version_3")
	meta := tbtest.Meta("hparams", tbtest.HParamsStart(map[string]any{"lr": "0.001", "layers": 4.0, "only_here": true}))
	writeEvents(t, dir, "lightning_logs/version_3/events.out.tfevents.1.h.1.0", tbtest.FileVersion(wall0),
		tbtest.Summary(wall0, 0, tbtest.MetaOnly("_hparams_/session_start_info", meta)), tbtest.Scalar(wall0, 0, "hp_metric", -1))
	yaml := "lr: 0.001\nlayers: 4\noptimizer:\n  name: adam\n  betas: !!python/tuple\n  - 0.9\n  - 0.999\nloss: !!python/name:__main__.focal ''\n"
	os.WriteFile(filepath.Join(run, "hparams.yaml"), []byte(yaml), 0o644)

	f := New()
	lr := only(t, readLogdir(t, f, filepath.Join(dir, "lightning_logs"), testOpts(t, nil)))
	if lr.info.RunID == "" || lr.events[0].Info.Name != "version_3" {
		t.Errorf("run %+v", lr.events[0].Info)
	}
	want := map[string]any{"lr": 0.001, "layers": int64(4), "optimizer": map[string]any{"name": "adam", "betas": []any{0.9, 0.999}},
		"loss": "__main__.focal", "only_here": true}
	if got := mergeConfig(lr.events); !reflect.DeepEqual(got, want) {
		t.Errorf("config\n got %#v\nwant %#v", got, want)
	}
	off := only(t, readLogdir(t, f, filepath.Join(dir, "lightning_logs"), testOpts(t, map[string]string{ParamHParamsYAML: "false"})))
	if got := mergeConfig(off.events); !reflect.DeepEqual(got, map[string]any{"lr": "0.001", "layers": 4.0, "only_here": true}) {
		t.Errorf("without hparams.yaml: %v", got)
	}

	// A changed file is sent again while following; a broken one is reported.
	infos, _ := f.Discover(filepath.Join(dir, "lightning_logs"))
	opts := testOpts(t, nil)
	opts.Follow = true
	st, _ := f.Open(infos[0], event.Position{}, nil, opts)
	defer st.Close()
	drain(t, st)
	os.WriteFile(filepath.Join(run, "hparams.yaml"), []byte("lr: 0.01\nextra: [1, 2]\n"), 0o644)
	bump(t, filepath.Join(run, "hparams.yaml"))
	evs, _, _ := drain(t, st)
	if got := mergeConfig(evs); !reflect.DeepEqual(got, map[string]any{"lr": 0.01, "extra": []any{int64(1), int64(2)}}) {
		t.Errorf("changed hparams.yaml: %v", got)
	}
	os.WriteFile(filepath.Join(run, "hparams.yaml"), []byte("a: 1\n  b: 2\n"), 0o644)
	bump(t, filepath.Join(run, "hparams.yaml"))
	evs, ws, _ := drain(t, st)
	if len(ofKind(evs, event.KindConfig)) != 0 || reasons(ws)[ReasonHParamsYAML] != 1 || !strings.Contains(ws[0].String(), "hparams.yaml") {
		t.Errorf("broken hparams.yaml: %v %v", evs, ws)
	}
}

// TestLightningRealWorld reads the two Lightning log directories from real
// projects (testdata/realworld/tensorboard-lightning, MANIFEST.md there).
func TestLightningRealWorld(t *testing.T) {
	root := filepath.Join("..", "..", "testdata", "realworld", "tensorboard-lightning")
	type want struct {
		records map[string]int // points per tag in the events file
		dedup   map[string]int // after mlop's one point per step
		hparams int            // hparams in the events file
		config  int            // keys of hparams.yaml and the events file together
	}
	cases := map[string]want{
		"CarlSchader__labeled-contrastive-framework": {
			records: map[string]int{"train_loss": 7738, "epoch": 7838, "val_loss": 100, "hp_metric": 1},
			dedup:   map[string]int{"train_loss": 7738, "epoch": 7836, "val_loss": 100, "hp_metric": 1}, hparams: 8, config: 8},
		// MANIFEST.md says 39 hparams; the session_start_info in the file
		// holds 41 keys (counted independently of this reader, the same 41
		// as hparams.yaml).
		"DCBIA-OrthoLab__ShapeAXI": {records: map[string]int{"hp_metric": 1}, dedup: map[string]int{"hp_metric": 1}, hparams: 41, config: 41},
	}
	ids := map[string]bool{}
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			lr := only(t, readLogdir(t, New(), filepath.Join(root, name, "lightning_logs"), testOpts(t, nil)))
			if n := lr.events[0].Info.Name; n != "version_0" {
				t.Errorf("run name %q", n)
			}
			ids[lr.events[0].Info.ExternalID] = true
			m := metrics(lr.events)
			for tag, n := range w.records {
				if len(m[tag]) != n {
					t.Errorf("%s: %d points, want %d", tag, len(m[tag]), n)
				}
				steps := map[int64]bool{}
				for _, p := range m[tag] {
					steps[p.step] = true
				}
				if len(steps) != w.dedup[tag] {
					t.Errorf("%s: %d distinct steps, want %d", tag, len(steps), w.dedup[tag])
				}
			}
			if len(m) != len(w.records) {
				t.Errorf("metrics %v", sortedKeys(m))
			}
			if cfg := mergeConfig(lr.events); len(cfg) != w.config {
				t.Errorf("%d config keys, want %d: %v", len(cfg), w.config, sortedKeys(cfg))
			}
			plugin := only(t, readLogdir(t, New(), filepath.Join(root, name, "lightning_logs"), testOpts(t, map[string]string{ParamHParamsYAML: "false"})))
			if cfg := mergeConfig(plugin.events); len(cfg) != w.hparams {
				t.Errorf("%d hparams in the events file, want %d: %v", len(cfg), w.hparams, sortedKeys(cfg))
			}
			if len(lr.warnings) != 0 {
				t.Errorf("warnings %v", lr.warnings)
			}
		})
	}
	if len(ids) != 2 {
		t.Errorf("two version_0 runs share an external id: %v", ids)
	}
	// hparams.yaml wins over the plugin's string copy of the same key.
	lr := only(t, readLogdir(t, New(), filepath.Join(root, "CarlSchader__labeled-contrastive-framework", "lightning_logs"), testOpts(t, nil)))
	if cfg := mergeConfig(lr.events); cfg["loss_fn"] != "__main__.arcface_loss" || cfg["num_classes"] != int64(91354) || cfg["scale"] != 64.0 {
		t.Errorf("config %v", cfg)
	}
	lr = only(t, readLogdir(t, New(), filepath.Join(root, "DCBIA-OrthoLab__ShapeAXI", "lightning_logs"), testOpts(t, nil)))
	if cfg := mergeConfig(lr.events); cfg["model"] != nil || cfg["lr"] != 0.0001 || cfg["pretrained"] != false || cfg["tb_name"] != "tensorboard" {
		t.Errorf("config %v", cfg)
	}
}

// TestFixturesAgainstManifests holds what the reader makes of the shared
// tensorboardX fixtures to their manifests (the e2e test does the same
// through the binary and the server stand-in).
func TestFixturesAgainstManifests(t *testing.T) {
	for _, fx := range []string{"tb-a-basic", "tb-b-killed"} {
		t.Run(fx, func(t *testing.T) {
			root := filepath.Join("..", "..", "testdata", "tensorboard", fx)
			lanes := readLogdir(t, New(), filepath.Join(root, "logs"), testOpts(t, nil))
			view := tbtest.View{}
			for _, lr := range lanes {
				rv := &tbtest.RunView{Metrics: map[string][]tbtest.Point{}}
				name := lr.events[0].Info.Name
				view[name] = rv
				dedup := map[string]map[int64]tbtest.Point{}
				for _, ev := range lr.events {
					switch ev.Kind {
					case event.KindMetrics:
						for _, p := range ev.Points {
							if dedup[p.Name] == nil {
								dedup[p.Name] = map[int64]tbtest.Point{}
							}
							if old, ok := dedup[p.Name][ev.Step]; !ok || ev.Time >= old.Time {
								dedup[p.Name][ev.Step] = tbtest.Point{Step: ev.Step, Time: ev.Time, Value: p.Value}
							}
						}
					case event.KindData:
						rv.Data = append(rv.Data, tbtest.Data{Name: ev.Name, Type: ev.Type, Step: ev.Step, Time: ev.Time, Text: ev.Text})
					case event.KindFile:
						b, err := os.ReadFile(ev.Path)
						if err != nil {
							t.Fatal(err)
						}
						rv.Files = append(rv.Files, tbtest.File{Name: ev.Name, Step: ev.Step, Time: ev.Time, Bytes: b})
					}
				}
				for name, byStep := range dedup {
					for _, p := range byStep {
						rv.Metrics[name] = append(rv.Metrics[name], p)
					}
				}
				if len(lr.warnings) != 0 {
					t.Errorf("warnings %v", lr.warnings)
				}
			}
			tbtest.CheckManifest(t, filepath.Join(root, "manifest.json"), view)
		})
	}
}

// drain calls Next until io.EOF.
func drain(t *testing.T, st parsers.Stream) ([]event.Event, []parsers.Warning, event.Position) {
	t.Helper()
	var evs []event.Event
	var ws []parsers.Warning
	var end event.Position
	for i := 0; i < 100000; i++ {
		c, err := st.Next(contextBG, nil)
		evs = append(evs, copyEvents(c.Events)...)
		w, _ := st.(parsers.Warner).Warnings()
		ws = append(ws, w...)
		end = c.End
		if err != nil {
			if !isEOF(err) {
				t.Fatal(err)
			}
			return evs, ws, end
		}
	}
	t.Fatal("no io.EOF")
	return nil, nil, end
}

// bump moves a file's modification time forward, so a signature of size
// and time changes even within the file system's time granularity.
func bump(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	mt := fi.ModTime().Add(2e9)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
}
