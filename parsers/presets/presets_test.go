package presets_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	_ "github.com/mlop-ai/mlop-agent/parsers/csv"
	_ "github.com/mlop-ai/mlop-agent/parsers/hftrainer"
	_ "github.com/mlop-ai/mlop-agent/parsers/mlflow"
	"github.com/mlop-ai/mlop-agent/parsers/presets"
)

const realworld = "../../testdata/realworld"

var readTime = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// templateData mirrors the fields the agent renders run name templates
// over, as documented in package presets.
type templateData struct {
	Source, Path, Dir, Stem, Run string
}

func render(t *testing.T, tmpl, path string) string {
	t.Helper()
	tt, err := template.New("name").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		t.Fatalf("template %q: %v", tmpl, err)
	}
	base := filepath.Base(path)
	data := templateData{
		Source: "src",
		Path:   path,
		Dir:    filepath.Base(filepath.Dir(path)),
		Stem:   strings.TrimSuffix(base, filepath.Ext(base)),
	}
	var b bytes.Buffer
	if err := tt.Execute(&b, data); err != nil {
		t.Fatalf("template %q: %v", tmpl, err)
	}
	return b.String()
}

// parseFile runs a file through the preset's line format, line by line as
// the watcher hands it out.
func parseFile(t *testing.T, p presets.Preset, path string) []event.Event {
	t.Helper()
	factory, ok := parsers.Lookup(p.Format)
	if !ok {
		t.Fatalf("format %q is not a registered line format", p.Format)
	}
	opts := p.Apply(parsers.Options{Path: path, Now: func() time.Time { return readTime }})
	parser, err := factory(opts)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	var off int64
	for line := int64(1); len(data) > 0; line++ {
		n := bytes.IndexByte(data, '\n')
		rec, adv := data, len(data)
		if n >= 0 {
			rec, adv = data[:n], n+1
		}
		off += int64(adv)
		evs, err = parser.Parse(evs, event.Record{Line: line, Pos: event.Position{Offset: off}, Data: rec})
		if err != nil {
			t.Errorf("line %d: %v", line, err)
		}
		data = data[adv:]
	}
	return evs
}

type want struct {
	name      string
	n         int
	firstStep int64
	first     float64
	lastStep  int64
	last      float64
}

type series struct {
	n                   int
	firstStep, lastStep int64
	first, last         float64
}

func summarize(evs []event.Event) map[string]*series {
	out := map[string]*series{}
	for _, e := range evs {
		for _, p := range e.Points {
			s, ok := out[p.Name]
			if !ok {
				s = &series{firstStep: e.Step, first: p.Value}
				out[p.Name] = s
			}
			s.n++
			s.lastStep, s.last = e.Step, p.Value
		}
	}
	return out
}

func checkSeries(t *testing.T, evs []event.Event, wants []want) {
	t.Helper()
	got := summarize(evs)
	if len(got) != len(wants) {
		var names []string
		for k := range got {
			names = append(names, k)
		}
		slices.Sort(names)
		t.Errorf("got %d metrics %q, want %d", len(got), names, len(wants))
	}
	for _, w := range wants {
		g, ok := got[w.name]
		if !ok {
			t.Errorf("metric %q missing", w.name)
			continue
		}
		if g.n != w.n || g.firstStep != w.firstStep || g.first != w.first || g.lastStep != w.lastStep || g.last != w.last {
			t.Errorf("metric %q: got n=%d first=(%d, %v) last=(%d, %v), want n=%d first=(%d, %v) last=(%d, %v)",
				w.name, g.n, g.firstStep, g.first, g.lastStep, g.last, w.n, w.firstStep, w.first, w.lastStep, w.last)
		}
	}
}

func ms(y int, mo time.Month, d, h, mi, s, us int) int64 {
	return time.Date(y, mo, d, h, mi, s, us*1000, time.UTC).UnixMilli()
}

// golden is one real file read with a preset. Expectations are written by
// hand from the file: its first and last data rows, counted cells, and the
// quirk the case is about.
type golden struct {
	name    string
	preset  string
	file    string
	runName string
	config  []string // config files the preset's globs find beside the file
	events  int      // events of any kind
	want    []want
	// times: the time of the first and last metrics event (0: the read time)
	firstTime, lastTime int64
	check               func(t *testing.T, evs []event.Event)
}

var goldens = []golden{
	{
		// Sparse: train rows leave val_* empty and val rows train_*; CRLF;
		// the last train and val rows share step 30199.
		name:    "lightning sparse CRLF",
		preset:  "lightning",
		file:    "lightning-csvlogger/ml-aos-v4/lightning_logs/version_4/metrics.csv",
		runName: "version_4",
		config:  []string{"hparams.yaml"},
		events:  804,
		want: []want{
			{"train_rmse", 604, 49, 0.6109481453895569, 30199, 0.046855710446834564},
			{"train_loss", 604, 49, 0.4434574246406555, 30199, 0.002650958951562643},
			{"epoch", 804, 49, 0, 30199, 199},
			{"val_rmse", 200, 150, 0.5254831314086914, 30199, 0.03160036355257034},
			{"val_loss", 200, 150, 0.3609369993209839, 30199, 0.0011605253675952554},
		},
		check: func(t *testing.T, evs []event.Event) {
			last2 := evs[len(evs)-2:]
			got := []string{}
			for _, e := range last2 {
				names := []string{}
				for _, p := range e.Points {
					names = append(names, p.Name)
				}
				got = append(got, fmt.Sprint(e.Step, names))
			}
			want := []string{"30199 [train_rmse train_loss epoch]", "30199 [epoch val_rmse val_loss]"}
			if !slices.Equal(got, want) {
				t.Errorf("last two rows: got %q, want %q", got, want)
			}
		},
	},
	{
		// Resumed run: epoch starts at 100 while step restarts at 9; names
		// with '/'; scientific notation.
		name:    "lightning resumed",
		preset:  "lightning",
		file:    "lightning-csvlogger/byol3d-v18/lightning_logs/version_18/metrics.csv",
		runName: "version_18",
		config:  []string{"hparams.yaml"},
		events:  1467,
		want: []want{
			{"epoch", 1467, 9, 100, 14669, 123},
			{"train/loss", 1467, 9, 0.4617187976837158, 14669, 0.4185219407081604},
			{"train/loss_12", 1467, 9, 0.19737744331359863, 14669, 0.268549382686615},
			{"train/loss_21", 1467, 9, 0.2643413543701172, 14669, 0.1499725580215454},
			{"train/lr", 1467, 9, 0.0007805289933457971, 14669, 0.0006674799369648099},
			{"train/tau", 1467, 9, 0.9900000095367432, 14669, 0.9901502728462219},
		},
	},
	{
		// step-first column order, negative values, hparams.yaml is {}.
		name:    "lightning step first",
		preset:  "lightning",
		file:    "lightning-csvlogger/genrisk-v13/lightning_logs/version_13/metrics.csv",
		runName: "version_13",
		config:  []string{"hparams.yaml"},
		events:  80,
		want: []want{
			{"epoch", 80, 0, 0, 79, 19},
			{"train_disc_loss", 80, 0, -0.05377289652824402, 79, -0.04461405426263809},
			{"train_gen_loss", 80, 0, -0.06375937908887863, 79, -0.13109010457992554},
		},
	},
	{
		// Lightning 0.6 test-tube: no step column (epoch is the step) and a
		// created_at datetime string that is the row's time.
		name:      "lightning test-tube",
		preset:    "lightning",
		file:      "lightning-testtube/contact-point-20200218/hall_of_fame/20200218/lightning_logs/metrics.csv",
		runName:   "lightning_logs",
		events:    31,
		want:      []want{{"train_loss", 31, 0, 17.66887855529785, 30, 1.0135523080825806}},
		firstTime: ms(2020, 2, 14, 21, 53, 5, 788645),
		lastTime:  ms(2020, 2, 18, 4, 50, 54, 340763),
	},
	{
		// Keras: epoch is the step; float32 reprs; CRLF.
		name:    "keras",
		preset:  "keras",
		file:    "keras-csvlogger/brats2020/training.log",
		runName: "brats2020",
		events:  24,
		want: []want{
			{"accuracy", 24, 0, 0.9847438335418701, 23, 0.990077018737793},
			{"dice_coef", 24, 0, 0.332878053188324, 23, 0.4510401785373688},
			{"loss", 24, 0, 0.05603187158703804, 23, 0.02580178715288639},
			{"lr", 24, 0, 0.001, 23, 1e-06},
			{"mean_io_u_5", 24, 0, 0.7597786784172058, 23, 0.8222532272338867},
			{"precision", 24, 0, 0.9889948964118958, 23, 0.9945014715194702},
			{"val_accuracy", 24, 0, 0.9850143790245056, 23, 0.9884244799613953},
			{"val_dice_coef", 24, 0, 0.38067764043807983, 23, 0.4435175359249115},
			{"val_loss", 24, 0, 0.05463637784123421, 23, 0.034485723823308945},
			{"val_mean_io_u_5", 24, 0, 0.8155959844589233, 23, 0.8133872747421265},
			{"val_precision", 24, 0, 0.98931884765625, 23, 0.9927574396133423},
		},
		check: func(t *testing.T, evs []event.Event) {
			// Epochs 8 to 12 have lr 4.0000003e-05.
			for _, e := range evs {
				if e.Step >= 8 && e.Step <= 12 {
					if v := point(e, "lr"); v != 4.0000003e-05 {
						t.Errorf("epoch %d: lr %v, want 4.0000003e-05", e.Step, v)
					}
				}
			}
		},
	},
	{
		// YOLOv5: header and values padded to width 20; ':' in a name.
		name:    "yolov5 padded",
		preset:  "yolo",
		file:    "ultralytics-yolov5/aud-bills-exp/runs/train/exp/results.csv",
		runName: "exp",
		config:  []string{"hyp.yaml", "opt.yaml"},
		events:  300,
		want: []want{
			{"train/box_loss", 300, 0, 0.04588, 299, 0.013358},
			{"train/obj_loss", 300, 0, 0.024593, 299, 0.0077558},
			{"train/cls_loss", 300, 0, 0.031451, 299, 0.00077254},
			{"metrics/precision", 300, 0, 0.13787, 299, 0.92067},
			{"metrics/recall", 300, 0, 0.23124, 299, 0.90902},
			{"metrics/mAP_0.5", 300, 0, 0.11816, 299, 0.95828},
			{"metrics/mAP_0.5:0.95", 300, 0, 0.062584, 299, 0.79654},
			{"val/box_loss", 300, 0, 0.025466, 299, 0.010373},
			{"val/obj_loss", 300, 0, 0.0067273, 299, 0.0033993},
			{"val/cls_loss", 300, 0, 0.022879, 299, 0.0041044},
			{"x/lr0", 300, 0, 0.070029, 299, 0.000166},
			{"x/lr1", 300, 0, 0.0033302, 299, 0.000166},
			{"x/lr2", 300, 0, 0.0033302, 299, 0.000166},
		},
	},
	{
		// YOLOv8 detect: "(B)" names, 1-based epochs, time is cumulative
		// seconds and stays a metric.
		name:    "yolov8 detect",
		preset:  "yolo",
		file:    "ultralytics-yolov8/dental-detect/runs/detect/train/results.csv",
		runName: "train",
		config:  []string{"args.yaml"},
		events:  55,
		want: []want{
			{"time", 55, 1, 18.1322, 55, 883.467},
			{"train/box_loss", 55, 1, 1.85087, 55, 0.92421},
			{"train/cls_loss", 55, 1, 3.97148, 55, 0.5981},
			{"train/dfl_loss", 55, 1, 1.55091, 55, 1.01127},
			{"metrics/precision(B)", 55, 1, 0.05623, 55, 0.41349},
			{"metrics/recall(B)", 55, 1, 0.57268, 55, 0.8342},
			{"metrics/mAP50(B)", 55, 1, 0.07444, 55, 0.43599},
			{"metrics/mAP50-95(B)", 55, 1, 0.0423, 55, 0.26938},
			{"val/box_loss", 55, 1, 1.35387, 55, 1.16252},
			{"val/cls_loss", 55, 1, 9.41175, 55, 2.385},
			{"val/dfl_loss", 55, 1, 1.23539, 55, 1.20235},
			{"lr/pg0", 55, 1, 9.08133e-05, 55, 0.000154151},
			{"lr/pg1", 55, 1, 9.08133e-05, 55, 0.000154151},
			{"lr/pg2", 55, 1, 9.08133e-05, 55, 0.000154151},
		},
	},
	{
		name:    "yolov8 classify",
		preset:  "yolo",
		file:    "ultralytics-yolov8/mood-classify/yolo_overfitted/runs/classify/train/results.csv",
		runName: "train",
		events:  30,
		want: []want{
			{"time", 30, 1, 71.3765, 30, 1753.54},
			{"train/loss", 30, 1, 1.6256, 30, 0.77126},
			{"metrics/accuracy_top1", 30, 1, 0.49292, 30, 0.70224},
			{"metrics/accuracy_top5", 30, 1, 0.96901, 30, 0.99321},
			{"val/loss", 30, 1, 1.32565, 30, 0.84351},
			{"lr/pg0", 30, 1, 0.00333241, 30, 0.00043},
			{"lr/pg1", 30, 1, 0.00333241, 30, 0.00043},
			{"lr/pg2", 30, 1, 0.00333241, 30, 0.00043},
		},
	},
	{
		// SB3 Monitor: JSON comment line (LF) then CRLF rows; the step is
		// the episode number; time = t_start + t.
		name:      "sb3 monitor cartpole",
		preset:    "sb3",
		file:      "sb3-monitor/cartpole-ppo/ppo/CartPole-v1_1/0.monitor.csv",
		runName:   "CartPole-v1_1",
		events:    1 + 38,
		want:      []want{{"r", 38, 1, 10.0, 38, 500.0}, {"l", 38, 1, 10, 38, 500}, {"t", 38, 1, 0.84343, 38, 92.169714}},
		firstTime: 1614619329163, // 1614619328.3192222 + 0.84343 s
		lastTime:  1614619420489, // 1614619328.3192222 + 92.169714 s
		check:     monitorConfig(1614619328.3192222, "CartPole-v1"),
	},
	{
		// An info keyword column (is_success).
		name:    "sb3 monitor fetchreach",
		preset:  "sb3",
		file:    "sb3-monitor/fetchreach-her/her/FetchReach-v1_1/0.monitor.csv",
		runName: "FetchReach-v1_1",
		events:  1 + 400,
		want: []want{
			{"r", 400, 1, -50.0, 400, -2.0},
			{"l", 400, 1, 50, 400, 50},
			{"t", 400, 1, 2.787148, 400, 659.031831},
			{"is_success", 400, 1, 0.0, 400, 1.0},
		},
		firstTime: 1615664134603, // 1615664131.8159394 + 2.787148 s
		lastTime:  1615664790848, // 1615664131.8159394 + 659.031831 s
		check:     monitorConfig(1615664131.8159394, "FetchReach-v1"),
	},
	{
		// LF only.
		name:      "sb3 monitor mspacman",
		preset:    "sb3",
		file:      "sb3-monitor/mspacman-ppo/ppo/MsPacmanNoFrameskip-v4_1/0.monitor.csv",
		runName:   "MsPacmanNoFrameskip-v4_1",
		events:    1 + 1592,
		want:      []want{{"r", 1592, 1, 550.0, 1592, 1780.0}, {"l", 1592, 1, 3634, 1592, 3394}, {"t", 1592, 1, 10.988535, 1592, 12107.509212}},
		firstTime: 1652831769164, // 1652831758.1759472 + 10.988535 s
		lastTime:  1652843865685, // 1652831758.1759472 + 12107.509212 s
		check:     monitorConfig(1652831758.1759472, "MsPacmanNoFrameskip-v4"),
	},
	{
		name:    "sb3 progress",
		preset:  "sb3-progress",
		file:    "sb3-progress/jobshop-ppo/logs/progress.csv",
		runName: "logs",
		events:  25,
		want: []want{
			{"time/iterations", 25, 2048, 1, 51200, 25},
			{"rollout/ep_rew_mean", 25, 2048, -20.228999999999996, 51200, -12.210000000000006},
			{"time/fps", 25, 2048, 2848, 51200, 1183},
			{"time/time_elapsed", 25, 2048, 0, 51200, 43},
			{"rollout/ep_len_mean", 25, 2048, 18.12, 51200, 9.62},
			{"train/policy_gradient_loss", 24, 4096, -0.009952274960960494, 51200, -0.0343680813384708},
			{"train/n_updates", 24, 4096, 10, 51200, 240},
			{"train/clip_fraction", 24, 4096, 0.11689453125, 51200, 0.2228515625},
			{"train/entropy_loss", 24, 4096, -1.3761401019990445, 51200, -0.19066754153463988},
			{"train/explained_variance", 24, 4096, 0.036448538303375244, 51200, 0.9811548590660095},
			{"train/learning_rate", 24, 4096, 0.0003, 51200, 0.0003},
			{"train/approx_kl", 24, 4096, 0.013224274, 51200, 0.031987093},
			{"train/clip_range", 24, 4096, 0.2, 51200, 0.2},
			{"train/loss", 24, 4096, 4.300825119018555, 51200, 0.10340727120637894},
			{"train/value_loss", 24, 4096, 20.677505080401897, 51200, 0.271346885105595},
		},
	},
}

func point(e event.Event, name string) float64 {
	for _, p := range e.Points {
		if p.Name == name {
			return p.Value
		}
	}
	return math.NaN()
}

func monitorConfig(tStart float64, env string) func(t *testing.T, evs []event.Event) {
	return func(t *testing.T, evs []event.Event) {
		t.Helper()
		if evs[0].Kind != event.KindConfig {
			t.Fatalf("first event: got %v, want config", evs[0].Kind)
		}
		got := evs[0].Config
		if len(got) != 2 || got["monitor/t_start"] != tStart || got["monitor/env_id"] != env {
			t.Errorf("config: got %v, want monitor/t_start=%v monitor/env_id=%s", got, tStart, env)
		}
	}
}

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			p, ok := presets.Lookup(g.preset)
			if !ok {
				t.Fatalf("no preset %q", g.preset)
			}
			path := filepath.Join(realworld, g.file)
			evs := parseFile(t, p, path)
			if len(evs) != g.events {
				t.Errorf("got %d events, want %d", len(evs), g.events)
			}
			checkSeries(t, evs, g.want)

			var times []int64
			for _, e := range evs {
				if e.Kind == event.KindMetrics {
					times = append(times, e.Time)
				}
			}
			first, last := g.firstTime, g.lastTime
			if first == 0 {
				first, last = readTime.UnixMilli(), readTime.UnixMilli()
			}
			if len(times) == 0 || times[0] != first || times[len(times)-1] != last {
				t.Errorf("times: got first/last %v, want %d/%d", ends(times), first, last)
			}
			if g.check != nil {
				g.check(t, evs)
			}

			if got := render(t, p.RunName, path); got != g.runName {
				t.Errorf("run name: got %q, want %q", got, g.runName)
			}
			var found []string
			for _, pat := range p.ConfigFiles {
				m, err := filepath.Glob(filepath.Join(filepath.Dir(path), pat))
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range m {
					found = append(found, filepath.Base(f))
				}
			}
			slices.Sort(found)
			if !slices.Equal(found, g.config) && !(len(found) == 0 && len(g.config) == 0) {
				t.Errorf("config files: got %q, want %q", found, g.config)
			}
		})
	}
}

func ends(v []int64) []int64 {
	if len(v) == 0 {
		return nil
	}
	return []int64{v[0], v[len(v)-1]}
}

func TestLookup(t *testing.T) {
	wantNames := []string{"hf-trainer", "keras", "lightning", "mlflow", "sb3", "sb3-progress", "yolo"}
	if got := presets.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names: got %q, want %q", got, wantNames)
	}
	if _, ok := presets.Lookup("nope"); ok {
		t.Error("Lookup(nope) found something")
	}
	// Lookup hands out copies.
	p, _ := presets.Lookup("yolo")
	p.Params["time"] = "epoch"
	p.ConfigFiles[0] = "x"
	q, _ := presets.Lookup("yolo")
	if q.Params["time"] != "metric" || q.ConfigFiles[0] != "opt.yaml" {
		t.Errorf("Lookup returned the table itself: %+v", q)
	}
}

func TestEveryPresetIsUsable(t *testing.T) {
	for _, p := range presets.All() {
		t.Run(p.Name, func(t *testing.T) {
			if p.Doc == "" || len(p.Paths) == 0 {
				t.Error("a preset needs a doc string and a paths hint")
			}
			if f, ok := parsers.Lookup(p.Format); ok {
				// The parameters must be ones the format accepts.
				if _, err := f(p.Apply(parsers.Options{})); err != nil {
					t.Errorf("format %s rejects the preset: %v", p.Format, err)
				}
			} else if _, ok := parsers.LookupStream(p.Format); !ok {
				t.Errorf("format %q is not registered", p.Format)
			}
			if p.RunName != "" {
				render(t, p.RunName, "/a/b/c.csv")
			}
		})
	}
}

func TestApply(t *testing.T) {
	p, _ := presets.Lookup("sb3")
	user := map[string]string{"time": "metric"}
	got := p.Apply(parsers.Options{StepField: "l", Params: user})
	if got.StepField != "l" || got.TimeField != "t" {
		t.Errorf("fields: got step %q time %q, want l and t", got.StepField, got.TimeField)
	}
	if got.Params["time"] != "metric" || got.Params["auto_step"] != "true" {
		t.Errorf("params: got %v, want the user's time and the preset's auto_step", got.Params)
	}
	if len(user) != 1 {
		t.Errorf("Apply changed the caller's params: %v", user)
	}
}

// TestSB3ProgressBaselines reads the OpenAI-baselines progress.csv files
// with the sb3-progress preset. The expectation comes from each file, read
// here with encoding/csv: every row is one metrics event whose step is the
// named column's cell (or the row number from 1), holding every numeric cell
// but the step's.
func TestSB3ProgressBaselines(t *testing.T) {
	p, _ := presets.Lookup("sb3-progress")
	for _, tc := range []struct {
		file, step, runName string // step "": the rows are numbered
	}{
		{"openai-baselines-progress/gail-ppo/sample_result/ppo/progress.csv", "", "ppo"},
		{"openai-baselines-progress/her-042920/04_29_20_21_32/progress.csv", "epoch", "04_29_20_21_32"},
		{"openai-baselines-progress/her-050309/05_03_09_21_09/progress.csv", "epoch", "05_03_09_21_09"},
		{"openai-baselines-progress/improved-diffusion-2000/experiments/logs_2000_0.0001_KL/progress.csv", "step", "logs_2000_0.0001_KL"},
		{"sb3-progress/jobshop-ppo/logs/progress.csv", "time/total_timesteps", "logs"},
	} {
		t.Run(tc.runName, func(t *testing.T) {
			path := filepath.Join(realworld, tc.file)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			header, rows := rows[0], rows[1:]
			stepCol := slices.Index(header, tc.step)
			if tc.step != "" && stepCol < 0 {
				t.Fatalf("the fixture has no column %q: %q", tc.step, header)
			}
			var want []string
			for i, row := range rows {
				step := int64(i + 1)
				if stepCol >= 0 {
					v, err := strconv.ParseFloat(row[stepCol], 64)
					if err != nil {
						t.Fatalf("row %d: step %q: %v", i+2, row[stepCol], err)
					}
					step = int64(v)
				}
				var b strings.Builder
				fmt.Fprintf(&b, "%d", step)
				for j, c := range row {
					if v, err := strconv.ParseFloat(c, 64); err == nil && j != stepCol {
						fmt.Fprintf(&b, " %s=%v", header[j], v)
					}
				}
				want = append(want, b.String())
			}
			var got []string
			for _, e := range parseFile(t, p, path) {
				var b strings.Builder
				fmt.Fprintf(&b, "%d", e.Step)
				for _, pt := range e.Points {
					fmt.Fprintf(&b, " %s=%v", pt.Name, pt.Value)
				}
				got = append(got, b.String())
			}
			if !slices.Equal(got, want) {
				t.Errorf("events (step and points):\ngot  %q\nwant %q", got, want)
			}
			if name := render(t, p.RunName, path); name != tc.runName {
				t.Errorf("run name: got %q, want %q", name, tc.runName)
			}
		})
	}
}

// TestSB3ProgressStepColumns: the step column each writer of progress.csv
// logs (the headers are those of the algorithms' logkv calls) is the step,
// ahead of the other counters in the same file, which stay metrics; an
// explicit step_field wins and is required.
func TestSB3ProgressStepColumns(t *testing.T) {
	p, _ := presets.Lookup("sb3-progress")
	for _, tc := range []struct {
		writer, stepField, header, wantStep string // wantStep "": rows numbered
		wantErr                             bool
	}{
		{writer: "sb3", header: "time/iterations,time/total_timesteps,train/n_updates,x", wantStep: "time/total_timesteps"},
		{writer: "baselines ppo2", header: "eplenmean,misc/nupdates,misc/serial_timesteps,misc/total_timesteps,x", wantStep: "misc/total_timesteps"},
		{writer: "baselines ppo2 before misc/, a2c, acktr", header: "fps,nupdates,serial_timesteps,total_timesteps,x", wantStep: "total_timesteps"},
		{writer: "baselines ppo1, trpo_mpi", header: "EpisodesSoFar,EpRewMean,TimeElapsed,TimestepsSoFar,x", wantStep: "TimestepsSoFar"},
		{writer: "baselines ddpg", header: "total/epochs,total/episodes,total/steps,x", wantStep: "total/steps"},
		{writer: "baselines deepq", header: "% time spent exploring,episodes,steps,x", wantStep: "steps"},
		{writer: "improved-diffusion", header: "loss,samples,step,x", wantStep: "step"},
		{writer: "baselines her", header: "test/mean_Q,epoch,train/episode,x", wantStep: "epoch"},
		{writer: "no counter", header: "agent acc,demo acc,x", wantStep: ""},
		{writer: "explicit step_field", stepField: "nupdates", header: "nupdates,total_timesteps,x", wantStep: "nupdates"},
		{writer: "explicit step_field missing", stepField: "time/total_timesteps", header: "epoch,x", wantErr: true},
	} {
		t.Run(tc.writer, func(t *testing.T) {
			factory, _ := parsers.Lookup(p.Format)
			parser, err := factory(p.Apply(parsers.Options{StepField: tc.stepField, Now: func() time.Time { return readTime }}))
			if err != nil {
				t.Fatal(err)
			}
			cols := strings.Split(tc.header, ",")
			row := make([]string, len(cols))
			for i := range row {
				row[i] = strconv.Itoa(100 + i)
			}
			var evs []event.Event
			var errs []error
			for i, line := range []string{tc.header, strings.Join(row, ",")} {
				evs, err = parser.Parse(evs, event.Record{Line: int64(i + 1), Pos: event.Position{Offset: int64(i + 1)}, Data: []byte(line)})
				if err != nil {
					errs = append(errs, err)
				}
			}
			if tc.wantErr {
				if len(errs) != 1 || !errors.Is(errs[0], parsers.ErrUnusable) || len(evs) != 0 {
					t.Errorf("got events %v, errors %v; want one ErrUnusable and no event", evs, errs)
				}
				return
			}
			if len(errs) > 0 || len(evs) != 1 {
				t.Fatalf("got events %v, errors %v; want one event", evs, errs)
			}
			wantStep, wantPoints := int64(1), len(cols)
			if i := slices.Index(cols, tc.wantStep); i >= 0 {
				wantStep, wantPoints = int64(100+i), len(cols)-1
			}
			if e := evs[0]; e.Step != wantStep || len(e.Points) != wantPoints {
				t.Errorf("step %d with %d points, want %d (column %q) with %d points", e.Step, len(e.Points), wantStep, tc.wantStep, wantPoints)
			}
		})
	}
}

// TestTable prints the defaults table of the README, so it is written from
// the code (go test -run TestTable -v).
func TestTable(t *testing.T) {
	var b strings.Builder
	b.WriteString("| preset | format | step | time | run name | config files | params |\n|---|---|---|---|---|---|---|\n")
	for _, p := range presets.All() {
		var params []string
		step := or(p.StepField, "default")
		for k, v := range p.Params {
			if k == "step_candidates" {
				step = "first of " + strings.ReplaceAll(v, "|", ", ") + "; none: 1, 2, 3…"
				continue
			}
			params = append(params, k+"="+v)
		}
		slices.Sort(params)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", p.Name, p.Format,
			step, or(p.TimeField, "default"), or(p.RunName, "(format)"),
			or(strings.Join(p.ConfigFiles, ", "), "-"), or(strings.Join(params, " "), "-"))
	}
	t.Log("\n" + b.String())
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
