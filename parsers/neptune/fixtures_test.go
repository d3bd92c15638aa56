package neptune

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// readFixture copies a fixture, reads it in one pass, and checks that the
// copy is byte-identical afterwards with no file added (-shm, -wal,
// journals).
func readFixture(t *testing.T, name string, params map[string]string) (summary, []event.Event, []Warning, fixture) {
	t.Helper()
	fx := copyFixture(t, name)
	before := hashTree(t, fx.root)
	f := New()
	info := discoverOne(t, f, fx.root)
	opts := testOptions(fx, t)
	for k, v := range params {
		opts.Params[k] = v
	}
	s, err := f.Open(info, event.Position{}, nil, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	evs, _, _ := readAll(t, s)
	ws, _ := s.(Warner).Warnings()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if after := hashTree(t, fx.root); !reflect.DeepEqual(before, after) {
		t.Errorf("fixture files changed by reading:\nbefore %v\nafter  %v", before, after)
	}
	return summarize(t, evs), evs, ws, fx
}

func fileSHA(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func warningsByReason(ws []Warning) map[string]int {
	out := map[string]int{}
	for _, w := range ws {
		out[w.Reason]++
	}
	return out
}

func TestFixtureN1OfflineBasic(t *testing.T) {
	const name = "n1-a-offline-basic"
	man := manifest(t, name)
	s, evs, ws, fx := readFixture(t, name, nil)

	// Identity: the container uuid written in metadata.json by the client.
	metas, _ := filepath.Glob(filepath.Join(fx.root, ".neptune/offline/*/metadata.json"))
	if len(metas) != 1 {
		t.Fatalf("metadata.json: %v", metas)
	}
	var meta struct{ ContainerID string }
	b, _ := os.ReadFile(metas[0])
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	initM := obj(t, man, "init")
	if s.runCount != 1 || s.run.Name != initM["name"] || s.run.ExternalID != meta.ContainerID {
		t.Errorf("run = %d × %+v, want name %v id %v", s.runCount, s.run, initM["name"], meta.ContainerID)
	}
	win := list(t, initM["created_window"])
	lo, _ := time.Parse(time.RFC3339Nano, win[0].(string))
	hi, _ := time.Parse(time.RFC3339Nano, win[1].(string))
	if c := s.run.CreatedAt; c < lo.UnixMilli() || c > hi.UnixMilli() {
		t.Errorf("CreatedAt %d outside %v", c, win)
	}

	// The multiplier: train/lr logs steps 0, 0.5, ...
	series := obj(t, man, "series")
	mul := wantMultiplier(t, stepsOf(t, series))
	if mul != 10 {
		t.Fatalf("manifest steps imply multiplier %d; the test expects 10", mul)
	}
	if got := s.run.Config["neptune/step_multiplier"]; got != mul {
		t.Errorf("neptune/step_multiplier = %v, want %d", got, mul)
	}

	// Atoms, including the overwrite (status) and the datetime.
	for key, v := range obj(t, man, "attributes_final") {
		a := v.(map[string]any)
		got, ok := s.config[key]
		if !ok {
			t.Errorf("config %s missing", key)
			continue
		}
		if a["type"] == "datetime" {
			ts, err := time.Parse(time.RFC3339Nano, got.(string))
			if err != nil || ts.UnixMilli() != int64(num(t, a["value_ms"])) {
				t.Errorf("config %s = %v, want %v ms", key, got, a["value_ms"])
			}
			continue
		}
		checkConfigValue(t, key, got, a["type"].(string), a["value"])
	}
	// A deleted attribute is absent: the import knows the final state, so
	// neither its value nor a null reaches the config.
	for _, d := range list(t, man["deleted_attributes"]) {
		key, _, _ := strings.Cut(d.(string), " ")
		if v, ok := s.config[key]; ok {
			t.Errorf("deleted %s: config value %#v, want no key", key, v)
		}
	}
	auto := obj(t, man, "auto_written_by_client")
	for _, k := range []string{"sys/name", "sys/description", "sys/failed"} {
		if got := s.config["neptune/"+k]; got != auto[k] {
			t.Errorf("config neptune/%s = %#v, want %#v", k, got, auto[k])
		}
	}
	if len(s.statuses) != 0 {
		t.Errorf("statuses %v, want none (sys/failed is false)", s.statuses)
	}

	// Float series; step-less points are numbered 0, 1, ... per series.
	for _, key := range []string{"train/loss", "train/acc", "train/lr", "val/loss"} {
		checkSeries(t, key, s.metrics[key], obj(t, series, key), mul)
	}
	for i, ts := range list(t, obj(t, series, "train/lr")["timestamps"]) {
		if want := int64(num(t, ts) * 1000); s.metrics["train/lr"][i].time != want {
			t.Errorf("train/lr[%d] time %d, want %d", i, s.metrics["train/lr"][i].time, want)
		}
	}
	nf := obj(t, series, "train/nonfinite")
	want := list(t, nf["expected_after_client_filter"])
	got := s.metrics["train/nonfinite"]
	if len(got) != len(want) {
		t.Errorf("train/nonfinite: %v, want %v", got, want)
	} else {
		for i := range want {
			if got[i].value != num(t, want[i]) || got[i].step != int64(i)*mul {
				t.Errorf("train/nonfinite[%d] = %+v, want %v at step %d", i, got[i], want[i], int64(i)*mul)
			}
		}
	}

	// String series (the client truncates values to 1000 characters).
	ss := obj(t, series, "logs/text")
	vals := list(t, ss["values"])
	data := s.data["logs/text"]
	if len(data) != len(vals) || len(vals) != int(num(t, ss["count"])) {
		t.Fatalf("logs/text: %d values, manifest %d (count %v)", len(data), len(vals), ss["count"])
	}
	for i, v := range vals {
		w := v.(string)
		if len(w) > 1000 {
			w = w[:1000]
		}
		if data[i].Text != w || data[i].Step != int64(i)*mul || data[i].Type != event.DataStringSeries {
			t.Errorf("logs/text[%d] = %q at %d (%s), want %.40q at %d", i, data[i].Text, data[i].Step, data[i].Type, w, int64(i)*mul)
		}
	}

	// Image series: decoded from the queue's base64 and spooled.
	img := obj(t, series, "images/samples")
	imgs := s.files["images/samples"]
	if len(imgs) != int(num(t, img["count"])) {
		t.Fatalf("images/samples: %d files, want %v", len(imgs), img["count"])
	}
	for i, p := range list(t, img["points"]) {
		pm := p.(map[string]any)
		e := imgs[i]
		// The caption is the description; the name is the file's name.
		if e.Type != "IMAGE" || e.Step != int64(i)*mul || e.Text != pm["description"] || filepath.Base(e.Path) != pm["name"].(string)+".png" {
			t.Errorf("images/samples[%d] = %+v, want name %v", i, e, pm["name"])
		}
		fh, err := os.Open(e.Path)
		if err != nil {
			t.Fatal(err)
		}
		im, err := png.Decode(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("images/samples[%d]: %v", i, err)
		}
		size := list(t, pm["size"])
		rgb := list(t, pm["rgb"])
		r, g, bl, _ := im.At(0, 0).RGBA()
		if im.Bounds().Dx() != int(num(t, size[0])) || im.Bounds().Dy() != int(num(t, size[1])) ||
			r>>8 != uint32(num(t, rgb[0])) || g>>8 != uint32(num(t, rgb[1])) || bl>>8 != uint32(num(t, rgb[2])) {
			t.Errorf("images/samples[%d]: %v pixel %d,%d,%d, want size %v rgb %v", i, im.Bounds(), r>>8, g>>8, bl>>8, size, rgb)
		}
	}

	// Files: content checked by sha256.
	files := obj(t, man, "files")
	for _, key := range []string{"artifacts/config", "artifacts/inline"} {
		fm := obj(t, files, key)
		fs := s.files[key]
		if len(fs) != 1 || fileSHA(t, fs[0].Path) != fm["sha256"] || fs[0].Step != 0 {
			t.Errorf("file %s = %+v, want sha256 %v", key, fs, fm["sha256"])
		}
	}
	set := obj(t, files, "artifacts/dataset")
	matching := obj(t, set, "matching_files")
	fs := s.files["artifacts/dataset"]
	if len(fs) != len(matching) {
		t.Errorf("artifacts/dataset: %d files, want %d", len(fs), len(matching))
	}
	for _, e := range fs {
		mf := obj(t, matching, filepath.Base(e.Path))
		if fileSHA(t, e.Path) != mf["sha256"] {
			t.Errorf("artifacts/dataset %s: sha256 mismatch", e.Path)
		}
	}

	// Tags: sys/tags and group tags together; group tags also in config.
	tf := obj(t, man, "tags_final")
	var wantTags []string
	for _, k := range []string{"sys/tags", "sys/group_tags"} {
		for _, tg := range list(t, tf[k]) {
			wantTags = append(wantTags, tg.(string))
		}
	}
	sort.Strings(wantTags)
	if got := s.tagList(); !reflect.DeepEqual(got, wantTags) {
		t.Errorf("tags = %v, want %v", got, wantTags)
	}
	checkConfigValue(t, "neptune/group_tags", s.config["neptune/group_tags"], "string_set", tf["sys/group_tags"])

	if s.lastPos.Seq != 277 {
		t.Errorf("last position %v, want seq 277 (last_put_version)", s.lastPos)
	}
	if len(ws) != 0 {
		t.Errorf("warnings: %v", ws)
	}
	_ = evs
}

// The 2021 colab queue has no manifest; its NOTICE and
// docs/neptune-formats.md §4 describe it: 341 records (versions 1..341),
// LogFloats 268, LogStrings 58 (console), AddStrings 1 (tags simple,
// colab), sys/name assigned "Untitled" then "colab-example", one
// parameter, all steps null, and an UploadFile whose file is gone.
func TestFixtureN1AsyncColab(t *testing.T) {
	s, evs, ws, _ := readFixture(t, "n1-async-colab-2021", nil)
	if s.run.Name != "colab-example" || s.run.ExternalID != "6dae98b7-fc4a-4d76-891b-be67e2b3cdc4" {
		t.Errorf("run = %+v", s.run)
	}
	if s.run.Config["neptune/mode"] != "async" {
		t.Errorf("mode = %v", s.run.Config["neptune/mode"])
	}
	if s.lastPos.Seq != 341 {
		t.Errorf("last position %v, want seq 341", s.lastPos)
	}
	var nMetricEvents, nPoints int
	for _, e := range evs {
		if e.Kind == event.KindMetrics {
			nMetricEvents++
			nPoints += len(e.Points)
		}
	}
	if nMetricEvents != 268 || nPoints != 268 {
		t.Errorf("%d metric events, %d points; want 268 LogFloats of one point", nMetricEvents, nPoints)
	}
	for name, pts := range s.metrics {
		for i, p := range pts {
			if p.step != int64(i) {
				t.Fatalf("%s[%d] at step %d, want %d (null steps count from 0)", name, i, p.step, i)
			}
		}
	}
	if len(s.logs) != 58 {
		t.Errorf("%d console lines, want 58", len(s.logs))
	}
	var errs int
	for i, l := range s.logs {
		if l.Step != int64(i+1) {
			t.Errorf("log %d has line number %d", i, l.Step)
		}
		if l.Type == "ERROR" {
			errs++
		}
	}
	if errs == 0 || s.logs[0].Type != "ERROR" || !strings.Contains(s.logs[0].Text, "NVML") {
		t.Errorf("stderr lines: %d, first %+v", errs, s.logs[0])
	}
	if got := s.tagList(); !reflect.DeepEqual(got, []string{"colab", "simple"}) {
		t.Errorf("tags = %v", got)
	}
	if s.config["parameters/learning_rate"] != 0.1 || s.config["neptune/sys/hostname"] != "jakub" {
		t.Errorf("config = %v", s.config)
	}
	// The uploaded file no longer exists: skipped and reported.
	if len(s.files) != 0 {
		t.Errorf("files = %v", s.files)
	}
	if got := s.config["neptune/missing_files/artifacts/sample"]; got != "/home/jakub/Projects/examples/integrations/colab/file.txt" {
		t.Errorf("missing file record = %v", got)
	}
	if r := warningsByReason(ws); r[ReasonMissingFile] != 1 || len(ws) != 1 {
		t.Errorf("warnings = %v", ws)
	} else if !strings.HasSuffix(strings.SplitN(ws[0].String(), ":", 2)[0], "data-1.log") || ws[0].Pos.Seq != 288 {
		t.Errorf("warning = %s", ws[0])
	}
	// The first records carry no time: they take the creation time, the
	// first point's ts.
	if s.run.CreatedAt != 1619174334211 {
		t.Errorf("CreatedAt = %d", s.run.CreatedAt)
	}
}

// checkScaleRun checks what every neptune-scale manifest lists.
func checkScaleRun(t *testing.T, s summary, man map[string]any, mul int64) {
	t.Helper()
	meta := obj(t, man, "metadata_row")
	cr := obj(t, man, "create_run")
	wantName := meta["run_id"]
	if en, ok := cr["experiment_name"].(string); ok {
		wantName = en
	}
	if s.runCount != 1 || s.run.Name != wantName || s.run.ExternalID != meta["run_id"] {
		t.Errorf("run = %+v, want name %v id %v", s.run, wantName, meta["run_id"])
	}
	if s.run.Config["neptune/project"] != meta["project"] || s.run.Config["neptune/step_multiplier"] != mul {
		t.Errorf("run config = %v", s.run.Config)
	}
	if ct, ok := cr["creation_time"].(map[string]any); ok {
		if want := int64(num(t, ct["seconds"]))*1000 + int64(num(t, ct["nanos_approx"]))/1e6; s.run.CreatedAt != want {
			t.Errorf("CreatedAt = %d, want %d", s.run.CreatedAt, want)
		}
	} else if win, ok := cr["creation_time_window_if_default"].([]any); ok {
		lo, _ := time.Parse(time.RFC3339Nano, win[0].(string))
		hi, _ := time.Parse(time.RFC3339Nano, win[1].(string))
		if c := s.run.CreatedAt; c < lo.UnixMilli() || c > hi.UnixMilli() {
			t.Errorf("CreatedAt %d outside %v", c, win)
		}
	}
	for key, v := range obj(t, man, "configs_final") {
		c := v.(map[string]any)
		got, ok := s.config[key]
		if !ok {
			t.Errorf("config %s missing", key)
			continue
		}
		if c["type"] == "timestamp" {
			ts, err := time.Parse(time.RFC3339Nano, got.(string))
			tv := obj(t, c["value"])
			if err != nil || ts.Unix() != int64(num(t, tv["seconds"])) {
				t.Errorf("config %s = %v, want %v", key, got, tv["iso"])
			}
			continue
		}
		checkConfigValue(t, key, got, c["type"].(string), c["value"])
	}
	tf := obj(t, man, "tags_final")
	var wantTags []string
	for _, k := range []string{"sys/tags", "sys/group_tags"} {
		for _, tg := range list(t, tf[k]) {
			wantTags = append(wantTags, tg.(string))
		}
	}
	sort.Strings(wantTags)
	if got := s.tagList(); !reflect.DeepEqual(got, wantTags) && !(len(got) == 0 && len(wantTags) == 0) {
		t.Errorf("tags = %v, want %v", got, wantTags)
	}
	if gt := list(t, tf["sys/group_tags"]); len(gt) > 0 {
		checkConfigValue(t, "neptune/group_tags", s.config["neptune/group_tags"], "string_set", gt)
	}
	if len(s.statuses) != 0 {
		t.Errorf("statuses = %v", s.statuses)
	}
}

func TestFixtureScaleTraining(t *testing.T) {
	const name = "scale-a-training"
	man := manifest(t, name)
	s, _, ws, _ := readFixture(t, name, nil)
	metrics := obj(t, man, "metrics")
	mul := wantMultiplier(t, stepsOf(t, metrics))
	checkScaleRun(t, s, man, mul)
	for key, v := range metrics {
		checkSeries(t, key, s.metrics[key], v.(map[string]any), mul)
	}
	if len(s.metrics) != len(metrics) {
		t.Errorf("%d metrics, manifest %d", len(s.metrics), len(metrics))
	}
	if want := int64(num(t, man["expected_run_operations_rows"])); s.lastPos.Seq != want {
		t.Errorf("last sequence_id %d, want %d rows", s.lastPos.Seq, want)
	}
	if s.run.ForkParent != "" || len(ws) != 0 {
		t.Errorf("fork %q, warnings %v", s.run.ForkParent, ws)
	}
}

func TestFixtureScaleFractionalSteps(t *testing.T) {
	const name = "scale-b-fractional-steps"
	man := manifest(t, name)
	s, _, ws, _ := readFixture(t, name, nil)
	metrics := obj(t, man, "metrics")
	mul := wantMultiplier(t, stepsOf(t, metrics))
	if mul != 1_000_000 {
		t.Fatalf("manifest steps imply multiplier %d", mul)
	}
	checkScaleRun(t, s, man, mul)
	for key, v := range metrics {
		checkSeries(t, key, s.metrics[key], v.(map[string]any), mul)
	}
	// Original timestamps are kept.
	for key, v := range obj(t, man, "metric_points_detail") {
		for i, p := range list(t, v) {
			pm := p.(map[string]any)
			ts, err := time.Parse(time.RFC3339Nano, pm["timestamp"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.metrics[key][i]; got.time != ts.UnixMilli() {
				t.Errorf("%s[%d] time %d, want %d", key, i, got.time, ts.UnixMilli())
				break
			}
		}
	}
	if len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}
}

func TestFixtureScaleFractionalForcedMultiplier(t *testing.T) {
	// A forced multiplier too coarse for some steps: those points are
	// reported as bad steps, never merged into a neighbour's step.
	const name = "scale-b-fractional-steps"
	man := manifest(t, name)
	fx := copyFixture(t, name)
	f := New()
	info := discoverOne(t, f, fx.root)
	opts := testOptions(fx, t)
	opts.StepMultiplier = 2
	st, err := f.Open(info, event.Position{}, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, _, _ := readAll(t, st)
	ws, _ := st.(Warner).Warnings()
	s := summarize(t, evs)
	metrics := obj(t, man, "metrics")
	var wantBad, wantGood int
	for key, v := range metrics {
		for _, p := range list(t, v.(map[string]any)["points"]) {
			micro := decimalMicro(t, list(t, p)[0].(string))
			if (micro*2)%1_000_000 == 0 {
				wantGood++
			} else {
				wantBad++
			}
		}
		_ = key
	}
	var good int
	for _, pts := range s.metrics {
		good += len(pts)
	}
	if good != wantGood || warningsByReason(ws)[ReasonBadStep] != wantBad {
		t.Errorf("good %d bad %d, want %d and %d", good, warningsByReason(ws)[ReasonBadStep], wantGood, wantBad)
	}
	if s.run.Config["neptune/step_multiplier"] != int64(2) {
		t.Errorf("multiplier = %v", s.run.Config["neptune/step_multiplier"])
	}
}

func TestFixtureScaleForkChild(t *testing.T) {
	const name = "scale-c-fork-child"
	man := manifest(t, name)
	s, _, ws, _ := readFixture(t, name, nil)
	metrics := obj(t, man, "metrics")
	mul := wantMultiplier(t, stepsOf(t, metrics))
	checkScaleRun(t, s, man, mul)
	for key, v := range metrics {
		checkSeries(t, key, s.metrics[key], v.(map[string]any), mul)
	}
	fork := obj(t, man, "create_run", "fork")
	if s.run.ForkParent != fork["parent_run_id"] || s.run.ForkStep != mlopStep(t, obj(t, fork["fork_step"])["decimal"].(string), mul) {
		t.Errorf("fork = %q at %d, want %v", s.run.ForkParent, s.run.ForkStep, fork)
	}
	if len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}
}

// TestForkFamily puts the parent (scale-a) and the fork (scale-c) under one
// .neptune directory: Discover links them, parent first, and both share a
// multiplier.
func TestForkFamily(t *testing.T) {
	parent := copyFixture(t, "scale-a-training")
	child := copyFixture(t, "scale-c-fork-child")
	root := t.TempDir()
	for _, fx := range []fixture{parent, child} {
		dirs, _ := filepath.Glob(filepath.Join(fx.root, ".neptune", "*"))
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(root, ".neptune"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(d, filepath.Join(root, ".neptune", filepath.Base(d))); err != nil {
				t.Fatal(err)
			}
		}
	}
	f := New()
	infos, err := f.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Parent != "" || infos[1].Parent != infos[0].Key || !strings.HasSuffix(infos[0].Key, "/scale-a-train-resnet18") {
		t.Fatalf("Discover = %+v", infos)
	}
	cm := manifest(t, "scale-c-fork-child")
	for i, info := range infos {
		s, err := f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		evs, _, _ := readAll(t, s)
		s.Close()
		sum := summarize(t, evs)
		if sum.run.Config["neptune/step_multiplier"] != int64(1) {
			t.Errorf("%s: multiplier %v", info.Key, sum.run.Config["neptune/step_multiplier"])
		}
		if i == 1 && (sum.run.ForkParent != obj(t, cm, "create_run", "fork")["parent_run_id"] || sum.run.ForkStep != 250) {
			t.Errorf("child fork = %q@%d", sum.run.ForkParent, sum.run.ForkStep)
		}
		if i == 1 {
			// inherit_configs: the parent's final configs come with the
			// fork's run event (not only what mlop copies at creation);
			// the fork's own assignments follow and win; group tags are
			// not inherited.
			pm := manifest(t, "scale-a-training")
			for key, v := range obj(t, pm, "configs_final") {
				c := v.(map[string]any)
				if c["type"] == "timestamp" {
					continue
				}
				checkConfigValue(t, "inherited "+key, sum.run.Config[key], c["type"].(string), c["value"])
			}
			for key, v := range obj(t, cm, "configs_final") {
				c := v.(map[string]any)
				checkConfigValue(t, key, sum.config[key], c["type"].(string), c["value"])
			}
			if g, ok := sum.run.Config["neptune/group_tags"].([]string); !ok || len(g) != 0 {
				t.Errorf("fork group tags %#v, want []", sum.run.Config["neptune/group_tags"])
			}
		}
	}
}

func TestFixtureScaleSeriesFilesPreview(t *testing.T) {
	const name = "scale-d-series-files-preview"
	man := manifest(t, name)
	s, _, ws, fx := readFixture(t, name, nil)

	// Every step logged (series, histograms, files) decides the multiplier.
	var steps []string
	for _, sec := range []string{"metrics", "string_series", "histograms", "file_series"} {
		steps = append(steps, stepsOf(t, obj(t, man, sec))...)
	}
	mul := wantMultiplier(t, steps)
	if mul != 10 {
		t.Fatalf("manifest steps imply multiplier %d", mul)
	}
	checkScaleRun(t, s, man, mul)

	// Previews superseded by a committed point are dropped; train/acc's
	// trailing preview (never finalised) is kept.
	excl := obj(t, man, "metrics_excluding_previews")
	checkSeries(t, "train/loss", s.metrics["train/loss"], obj(t, excl, "train/loss"), mul)
	detail := list(t, obj(t, man, "metric_points_detail")["train/acc"])
	acc := s.metrics["train/acc"]
	if len(acc) != 1 || acc[0].value != num(t, detail[0].(map[string]any)["value"]) || acc[0].step != mlopStep(t, detail[0].(map[string]any)["step"].(string), mul) {
		t.Errorf("train/acc = %v, want the trailing preview %v", acc, detail)
	}

	for key, v := range obj(t, man, "string_series") {
		sm := v.(map[string]any)
		got := s.data[key]
		pts := list(t, sm["points"])
		if len(got) != len(pts) {
			t.Errorf("%s: %d values, want %d", key, len(got), len(pts))
			continue
		}
		for i, p := range pts {
			pm := p.(map[string]any)
			if got[i].Text != pm["value"] || got[i].Step != mlopStep(t, pm["step"].(string), mul) || got[i].Type != event.DataStringSeries {
				t.Errorf("%s[%d] = %q@%d, want %q@%v", key, i, got[i].Text, got[i].Step, pm["value"], pm["step"])
			}
		}
	}

	for key, v := range obj(t, man, "histograms") {
		hm := v.(map[string]any)
		got := s.data[key]
		pts := list(t, hm["points"])
		if len(got) != len(pts) {
			t.Errorf("%s: %d histograms, want %d", key, len(got), len(pts))
			continue
		}
		for i, p := range pts {
			pm := p.(map[string]any)
			var h struct {
				Freq    []float64 `json:"freq"`
				Bins    []float64 `json:"bins"`
				Shape   string    `json:"shape"`
				Type    string    `json:"type"`
				V       int       `json:"v"`
				MaxFreq float64   `json:"maxFreq"`
			}
			if err := json.Unmarshal([]byte(got[i].Text), &h); err != nil {
				t.Fatalf("%s[%d]: %v in %s", key, i, err, got[i].Text)
			}
			freq := pm["counts"]
			if freq == nil {
				freq = pm["densities"]
			}
			var wantFreq, wantEdges []float64
			maxF := 0.0
			for _, x := range list(t, freq) {
				wantFreq = append(wantFreq, num(t, x))
				maxF = max(maxF, num(t, x))
			}
			for _, x := range list(t, pm["bin_edges"]) {
				wantEdges = append(wantEdges, num(t, x))
			}
			if got[i].Type != event.DataHistogram || got[i].Step != mlopStep(t, pm["step"].(string), mul) ||
				!reflect.DeepEqual(h.Freq, wantFreq) || !reflect.DeepEqual(h.Bins, wantEdges) ||
				h.Shape != "generic" || h.Type != "Histogram" || h.V != 1 || h.MaxFreq != maxF {
				t.Errorf("%s[%d] = %s at %d, want freq %v edges %v at %v", key, i, got[i].Text, got[i].Step, wantFreq, wantEdges, pm["step"])
			}
		}
	}

	wantType := map[string]string{"image/png": "IMAGE", "text/plain": "TEXT", "text/csv": "TEXT", "text/markdown": "TEXT",
		"application/yaml": "TEXT", "application/octet-stream": "ARTIFACT"}
	for key, v := range obj(t, man, "files") {
		fm := v.(map[string]any)
		got := s.files[key]
		if len(got) != 1 || got[0].Step != 0 || fileSHA(t, got[0].Path) != fm["sha256"] || got[0].Type != wantType[fm["mime_type"].(string)] {
			t.Errorf("file %s = %+v, want %v", key, got, fm)
		}
		if !strings.HasPrefix(got[0].Path, fx.root) {
			t.Errorf("file %s outside the fixture: %s", key, got[0].Path)
		}
	}
	for key, v := range obj(t, man, "file_series") {
		fm := v.(map[string]any)
		got := s.files[key]
		pts := list(t, fm["points"])
		if len(got) != len(pts) {
			t.Errorf("%s: %d files, want %d", key, len(got), len(pts))
			continue
		}
		for i, p := range pts {
			pm := p.(map[string]any)
			if got[i].Step != mlopStep(t, pm["step"].(string), mul) || fileSHA(t, got[i].Path) != pm["sha256"] || got[i].Type != wantType[pm["mime_type"].(string)] {
				t.Errorf("%s[%d] = %+v, want %v", key, i, got[i], pm)
			}
		}
	}
	if len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}

	// previews=drop: exactly the manifest's metrics_excluding_previews.
	s2, _, _, _ := readFixture(t, name, map[string]string{ParamPreviews: "drop"})
	for key, v := range excl {
		checkSeries(t, key, s2.metrics[key], v.(map[string]any), mul)
	}
}

func TestFixtureScaleKilledWAL(t *testing.T) {
	const name = "scale-h-killed-offline-wal"
	man := manifest(t, name)
	fx := copyFixture(t, name)
	wal, _ := filepath.Glob(filepath.Join(fx.root, ".neptune/*/run_operations.sqlite3-wal"))
	if len(wal) != 1 || fileSHA(t, wal[0]) != walSHA256 {
		t.Fatalf("decompressed WAL %v does not match the original", wal)
	}
	s, _, ws, _ := readFixture(t, name, nil)
	checkScaleRun(t, s, man, 1)
	// Every row is in the WAL: the database file holds only its header page.
	lo, hi := int64(num(t, man["expected_run_operations_rows_min"])), int64(num(t, man["expected_run_operations_rows_max"]))
	if s.lastPos.Seq < lo || s.lastPos.Seq > hi {
		t.Errorf("last sequence_id %d, want %d..%d", s.lastPos.Seq, lo, hi)
	}
	for key, v := range obj(t, man, "metrics_guaranteed_prefix") {
		want := v.(map[string]any)
		got := s.metrics[key]
		n := int(num(t, want["count"]))
		if len(got) < n || len(got) > n+1 {
			t.Errorf("%s: %d points, want %d (or one more)", key, len(got), n)
			continue
		}
		want["count"] = float64(n)
		checkSeries(t, key, got[:n], want, 1)
	}
	if len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}
}
