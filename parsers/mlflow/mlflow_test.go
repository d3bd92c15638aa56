package mlflow_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/mlflow"
	"github.com/mlop-ai/mlop-agent/parsers/parsertest"
)

// want is a metric expected of a test: name, points, first and last (step, value).
type want parsertest.Series

const store = "../../testdata/realworld/mlflow-filestore"

const (
	dqnRun     = "770cc011eb214ea997501cabcfe12f58"
	failedRun  = "c034af155d3a4319886842eebb038448"
	runningRun = "cb0096518b0e4c66a94428555f05420b"
)

func TestRegistered(t *testing.T) {
	if _, ok := parsers.LookupStream("mlflow"); !ok {
		t.Fatal("mlflow is not registered")
	}
}

func TestDiscover(t *testing.T) {
	dqn := filepath.Join(store, "bilevel-rl-dqn", "mlruns")
	tests := []struct {
		path string
		want []string
	}{
		{dqn, []string{dqnRun, failedRun}},
		{filepath.Join(dqn, "1"), []string{dqnRun, failedRun}},
		{filepath.Join(dqn, "0"), nil}, // the Default experiment has no runs
		{filepath.Join(dqn, "1", failedRun), []string{failedRun}},
		{filepath.Join(dqn, "1", dqnRun, "meta.yaml"), []string{dqnRun}},
		{filepath.Join(dqn, "1", dqnRun, "metrics"), nil},
		{filepath.Join(store, "deepcnn-running", "mlruns"), []string{runningRun}},
	}
	for _, tc := range tests {
		got, err := mlflow.Format{}.Discover(tc.path)
		if err != nil {
			t.Errorf("Discover(%s): %v", tc.path, err)
			continue
		}
		var keys []string
		for _, s := range got {
			keys = append(keys, s.Key)
			if filepath.Base(s.Path) != s.Key[len("mlflow:"):] {
				t.Errorf("Discover(%s): stream %s has path %s", tc.path, s.Key, s.Path)
			}
		}
		var want []string
		for _, id := range tc.want {
			want = append(want, "mlflow:"+id)
		}
		if !slices.Equal(keys, want) {
			t.Errorf("Discover(%s): got %q, want %q", tc.path, keys, want)
		}
	}
	if _, err := (mlflow.Format{}).Discover(filepath.Join(store, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Discover(missing): got %v, want ErrNotExist", err)
	}
}

func TestDiscoverSkipsDeleted(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "1", "meta.yaml"), "experiment_id: '1'\nlifecycle_stage: active\nname: e\n")
	writeFile(t, filepath.Join(root, "1", "aaa", "meta.yaml"), "run_id: aaa\nlifecycle_stage: active\n")
	writeFile(t, filepath.Join(root, "1", "bbb", "meta.yaml"), "run_id: bbb\nlifecycle_stage: deleted\n")
	writeFile(t, filepath.Join(root, "2", "meta.yaml"), "experiment_id: '2'\nlifecycle_stage: deleted\n")
	writeFile(t, filepath.Join(root, "2", "ccc", "meta.yaml"), "run_id: ccc\nlifecycle_stage: active\n")
	writeFile(t, filepath.Join(root, ".trash", "3", "meta.yaml"), "experiment_id: '3'\n")
	writeFile(t, filepath.Join(root, ".trash", "3", "ddd", "meta.yaml"), "run_id: ddd\n")
	got, err := mlflow.Format{}.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != "mlflow:aaa" {
		t.Errorf("got %+v, want only mlflow:aaa", got)
	}
}

// drain calls Next until io.EOF and returns every event and the last
// chunk's state.
func drain(t *testing.T, s parsers.Stream, state []byte) ([]event.Event, []byte) {
	t.Helper()
	var all []event.Event
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("Next never returned io.EOF")
		}
		c, err := s.Next(t.Context(), nil)
		all = append(all, c.Events...)
		if errors.Is(err, io.EOF) {
			if len(c.Events) != 0 {
				t.Fatalf("io.EOF with %d events", len(c.Events))
			}
			return all, state
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.State == nil {
			t.Fatal("a chunk without state")
		}
		state = c.State
	}
}

func open(t *testing.T, dir string, state []byte, opts parsers.Options) parsers.Stream {
	t.Helper()
	s, err := mlflow.Format{}.Open(parsers.StreamInfo{Key: "mlflow:" + filepath.Base(dir), Path: dir}, event.Position{}, state, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func checkPositions(t *testing.T, evs []event.Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if evs[i].Pos.Less(evs[i-1].Pos) {
			t.Fatalf("event %d: position %v before %v", i, evs[i].Pos, evs[i-1].Pos)
		}
	}
}

// The expectations are read off the fixture files by hand: meta.yaml, the
// params and tags files, and each metric file's line count and first and
// last lines.
func TestGoldenFinishedRun(t *testing.T) {
	dir := filepath.Join(store, "bilevel-rl-dqn", "mlruns", "1", dqnRun)
	evs, _ := drain(t, open(t, dir, nil, parsers.Options{}), nil)
	checkPositions(t, evs)

	if evs[0].Kind != event.KindRun {
		t.Fatalf("first event: %v, want run", evs[0].Kind)
	}
	wantInfo := event.RunInfo{Name: "qb", ExternalID: "mlflow:" + dqnRun, CreatedAt: 1675439113199}
	if got := *evs[0].Info; got.Name != wantInfo.Name || got.ExternalID != wantInfo.ExternalID || got.CreatedAt != wantInfo.CreatedAt {
		t.Errorf("run info: got %+v, want %+v", got, wantInfo)
	}

	configs := parsertest.ByKind(evs, event.KindConfig)
	if len(configs) != 3 {
		t.Fatalf("got %d config events, want 3 (run, params, system tags)", len(configs))
	}
	wantRunCfg := map[string]any{
		"mlflow/run_id":          dqnRun,
		"mlflow/experiment_id":   "1",
		"mlflow/experiment_name": "DQN",
		"mlflow/user_id":         "jbauer",
		"mlflow/artifact_uri":    "file:///home/jbauer/PycharmProjects/bilevel-rl/experiments/mlruns/1/" + dqnRun + "/artifacts",
	}
	if got := fmt.Sprint(configs[0].Config); got != fmt.Sprint(wantRunCfg) {
		t.Errorf("run config:\ngot  %s\nwant %v", got, wantRunCfg)
	}
	params := configs[1].Config
	if len(params) != 26 {
		t.Errorf("got %d params, want 26", len(params))
	}
	for k, v := range map[string]string{"agent": "DQN", "batch_size": "64", "diff_wait": "None", "lr": "0.0001", "reward_fn": "delay", "yellow_time": "2", "exploration_fraction": "0.33"} {
		if params[k] != v {
			t.Errorf("param %s: got %#v, want %q", k, params[k], v)
		}
	}
	wantTags := map[string]any{
		"mlflow/runName":           "qb",
		"mlflow/source.git.commit": "8855254d201ebd6e6b7dd5f7a5ef8b46b1775c29",
		"mlflow/source.name":       "/home/jbauer/PycharmProjects/bilevel-rl/experiments/train.py",
		"mlflow/source.type":       "LOCAL",
		"mlflow/user":              "jbauer",
	}
	if got := fmt.Sprint(configs[2].Config); got != fmt.Sprint(wantTags) {
		t.Errorf("system tags:\ngot  %s\nwant %v", got, wantTags)
	}
	if n := len(parsertest.ByKind(evs, event.KindTags)); n != 0 {
		t.Errorf("got %d tag events, want none (only mlflow.* tags)", n)
	}

	metrics := parsertest.ByKind(evs, event.KindMetrics)
	parsertest.CheckMetrics(t, metrics, []want{
		{"eval/mean_emission", 6, 3600, 198990.32598862267, 21600, 175621.05665315385},
		{"eval/mean_ep_length", 6, 3600, 720.0, 21600, 720.0},
		{"eval/mean_queue", 6, 3600, 54.391666666666666, 21600, 26.744444444444444},
		{"eval/mean_reward", 6, 3600, -242.447169, 21600, -200.721436},
		{"eval/mean_speed", 6, 3600, 0.06575991619889363, 21600, 0.12760472770564127},
		{"eval/mean_wait", 6, 3600, 52343.68472222222, 21600, 1916.1027777777779},
		{"rollout/ep_len_mean", 30, 720, 720.0, 21600, 720.0},
		{"rollout/ep_rew_mean", 30, 720, -295.181266, 21600, -235.20043246666663},
		{"rollout/exploration rate", 36, 720, 0.9099249374478733, 21600, 0.1},
		{"time/episodes", 30, 720, 1.0, 21600, 30.0},
		{"time/fps", 30, 720, 23.0, 21600, 22.0},
		{"time/time_elapsed", 30, 720, 31.0, 21600, 977.0},
		{"time/total timesteps", 36, 720, 720.0, 21600, 21600.0},
		{"train/learning_rate", 29, 1440, 0.0001, 21600, 0.0001},
		{"train/loss", 29, 1440, 0.015191427432000637, 21600, 0.014295351691544056},
		{"train/n_updates", 29, 1440, 439.0, 21600, 20599.0},
	})
	// Points carry their own timestamps: eval/mean_emission's first line
	// is "1675439293719 198990.32598862267 3600".
	found := false
	for _, e := range metrics {
		for _, p := range e.Points {
			if p.Name == "eval/mean_emission" && e.Step == 3600 {
				found = e.Time == 1675439293719
			}
		}
	}
	if !found {
		t.Error("eval/mean_emission at step 3600 does not have time 1675439293719")
	}

	last := evs[len(evs)-1]
	if last.Kind != event.KindStatus || last.Status != event.StatusCompleted || last.Time != 1675440096325 {
		t.Errorf("last event: got %v %s at %d, want status COMPLETED at 1675440096325", last.Kind, last.Status, last.Time)
	}
}

func TestGoldenFailedRunWithoutMetrics(t *testing.T) {
	dir := filepath.Join(store, "bilevel-rl-dqn", "mlruns", "1", failedRun)
	evs, _ := drain(t, open(t, dir, nil, parsers.Options{}), nil)
	var kinds []event.Kind
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	wantKinds := []event.Kind{event.KindRun, event.KindConfig, event.KindConfig, event.KindConfig, event.KindStatus}
	if !slices.Equal(kinds, wantKinds) {
		t.Fatalf("kinds: got %v, want %v", kinds, wantKinds)
	}
	if evs[0].Info.Name != "qb" || evs[0].Info.CreatedAt != 1676112785582 {
		t.Errorf("run info: got %+v", *evs[0].Info)
	}
	if p := evs[2].Config; len(p) != 26 || p["reward_fn"] != "intrinsic" || p["brake"] != "None" || p["queue"] != "0.1" {
		t.Errorf("params: got %v", p)
	}
	if evs[3].Config["mlflow/source.git.commit"] != "b828a0729c0fc1a981eea32f9fb48dbc0b72d9d7" {
		t.Errorf("system tags: got %v", evs[3].Config)
	}
	if s := evs[4]; s.Status != event.StatusFailed || s.Time != 1676112790157 {
		t.Errorf("status: got %s at %d, want FAILED at 1676112790157", s.Status, s.Time)
	}
}

func TestGoldenRunningRun(t *testing.T) {
	dir := filepath.Join(store, "deepcnn-running", "mlruns", "0", runningRun)
	evs, _ := drain(t, open(t, dir, nil, parsers.Options{}), nil)
	// No run_name and no mlflow.runName tag: the run id names the run.
	if evs[0].Kind != event.KindRun || evs[0].Info.Name != runningRun || evs[0].Info.CreatedAt != 1664364007025 {
		t.Fatalf("run: got %v %+v", evs[0].Kind, evs[0].Info)
	}
	if got := evs[1].Config["mlflow/experiment_name"]; got != "Default" {
		t.Errorf("experiment name: got %v", got)
	}
	params := parsertest.ByKind(evs, event.KindConfig)[1].Config
	wantParams := map[string]any{
		"AUGMENTATION": "True", "BATCH_SIZE": "16", "CLASSES": "2", "EPOCHS": "1",
		"IMAGE_SIZE": "[224, 224, 3]", "INCLUDE_TOP": "False", "LEARNING_RATE": "0.01", "WEIGHTS": "imagenet",
	}
	if fmt.Sprint(params) != fmt.Sprint(wantParams) {
		t.Errorf("params:\ngot  %v\nwant %v", params, wantParams)
	}
	metrics := parsertest.ByKind(evs, event.KindMetrics)
	// accuracy and loss were logged together: one event.
	if len(metrics) != 1 || metrics[0].Time != 1664364007310 || metrics[0].Step != 0 {
		t.Fatalf("metrics: got %+v", metrics)
	}
	parsertest.CheckMetrics(t, metrics, []want{
		{"accuracy", 1, 0, 0.7858095765113831, 0, 0.7858095765113831},
		{"loss", 1, 0, 3.2727866172790527, 0, 3.2727866172790527},
	})
	if n := len(parsertest.ByKind(evs, event.KindStatus)); n != 0 {
		t.Errorf("a RUNNING run sent %d status events", n)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a fixture run directory to a temporary place where it can
// grow.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "mlruns", "1", filepath.Base(src))
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		writeFile(t, filepath.Join(dst, rel), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestLiveGrowth follows a running run while it logs: every point, param
// and tag is sent once, an incomplete line waits for its newline, and the
// final status comes after the last points.
func TestLiveGrowth(t *testing.T) {
	dir := copyDir(t, filepath.Join(store, "deepcnn-running", "mlruns", "0", runningRun))
	var skipped []string
	s := open(t, dir, nil, parsers.Options{OnSkip: func(r string) { skipped = append(skipped, r) }})
	var all []event.Event
	step := func(name string) []event.Event {
		t.Helper()
		evs, _ := drain(t, s, nil)
		all = append(all, evs...)
		return evs
	}
	if evs := step("initial"); len(parsertest.ByKind(evs, event.KindMetrics)) != 1 {
		t.Fatalf("initial: got %d metrics events", len(parsertest.ByKind(evs, event.KindMetrics)))
	}
	if evs := step("idle"); len(evs) != 0 {
		t.Fatalf("nothing changed but got %d events", len(evs))
	}

	appendFile(t, filepath.Join(dir, "metrics", "loss"), "1664364008000 2.5 1\n1664364009000 2.0 2\n1664364010000 1.5 3")
	writeFile(t, filepath.Join(dir, "metrics", "val", "acc"), "1664364008000 0.8 1\n")
	writeFile(t, filepath.Join(dir, "params", "DROPOUT"), "0.1")
	writeFile(t, filepath.Join(dir, "tags", "team"), "vision")
	writeFile(t, filepath.Join(dir, "tags", "mlflow.note.content"), "hello")
	evs := step("growth")
	var got []string
	for _, e := range evs {
		switch e.Kind {
		case event.KindMetrics:
			got = append(got, fmt.Sprintf("M s=%d t=%d %v", e.Step, e.Time, e.Points))
		case event.KindConfig:
			got = append(got, fmt.Sprintf("C %d keys DROPOUT=%v note=%v", len(e.Config), e.Config["DROPOUT"], e.Config["mlflow/note.content"]))
		case event.KindTags:
			got = append(got, fmt.Sprintf("T %v", e.Tags))
		default:
			got = append(got, e.Kind.String())
		}
	}
	wantEvs := []string{
		"C 9 keys DROPOUT=0.1 note=<nil>",
		"C 5 keys DROPOUT=<nil> note=hello",
		"T [team=vision]",
		"M s=1 t=1664364008000 [{loss 2.5} {val/acc 0.8}]",
		"M s=2 t=1664364009000 [{loss 2}]",
	}
	if !slices.Equal(got, wantEvs) {
		t.Errorf("growth:\ngot  %q\nwant %q", got, wantEvs)
	}

	// The held line completes; a bad line is skipped; the run finishes.
	appendFile(t, filepath.Join(dir, "metrics", "loss"), "\nnot a metric line\n")
	meta, err := os.ReadFile(filepath.Join(dir, "meta.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := strings.Replace(string(meta), "end_time: null", "end_time: 1664364020000", 1)
	m = strings.Replace(m, "status: 1", "status: 3", 1)
	writeFile(t, filepath.Join(dir, "meta.yaml"), m)
	evs = step("finish")
	if len(evs) != 2 || evs[0].Kind != event.KindMetrics || evs[0].Step != 3 || evs[0].Points[0].Value != 1.5 ||
		evs[1].Kind != event.KindStatus || evs[1].Status != event.StatusCompleted || evs[1].Time != 1664364020000 {
		t.Errorf("finish: got %+v", evs)
	}
	if !slices.Equal(skipped, []string{parsers.SkipOther}) {
		t.Errorf("skipped: got %q, want one %q", skipped, parsers.SkipOther)
	}
	if evs := step("after finish"); len(evs) != 0 {
		t.Errorf("after finish: got %d events", len(evs))
	}
	checkPositions(t, all)
	parsertest.CheckMetrics(t, parsertest.ByKind(all, event.KindMetrics), []want{
		{"accuracy", 1, 0, 0.7858095765113831, 0, 0.7858095765113831},
		{"loss", 4, 0, 3.2727866172790527, 3, 1.5},
		{"val/acc", 1, 1, 0.8, 1, 0.8},
	})
}

// TestResumeWithState reopens a stream after every chunk with the saved
// state, as the agent does after a restart, with small chunks so there are
// many restarts, grows a file already read and one not read yet in between,
// and checks that every point and every non-metric event arrives exactly
// once.
func TestResumeWithState(t *testing.T) {
	dir := copyDir(t, filepath.Join(store, "bilevel-rl-dqn", "mlruns", "1", dqnRun))
	opts := parsers.Options{Params: map[string]string{"chunk_bytes": "300"}}
	whole, _ := drain(t, open(t, dir, nil, parsers.Options{}), nil)

	var got []event.Event
	var state []byte
	end := event.Position{}
	chunks := 0
	for ; ; chunks++ {
		if chunks > 1000 {
			t.Fatal("no io.EOF")
		}
		s, err := mlflow.Format{}.Open(parsers.StreamInfo{Key: "k", Path: dir}, end, state, opts)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Next(context.Background(), nil)
		s.Close()
		got = append(got, c.Events...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !end.Less(c.End) {
			t.Fatalf("chunk end %v does not follow %v", c.End, end)
		}
		for _, e := range c.Events {
			if c.End.Less(e.Pos) || !end.Less(e.Pos) {
				t.Fatalf("event position %v outside the chunk (%v, %v]", e.Pos, end, c.End)
			}
		}
		state, end = c.State, c.End
		if chunks == 3 {
			appendFile(t, filepath.Join(dir, "metrics", "eval", "mean_emission"), "1675440099998 7 22320\n")
			appendFile(t, filepath.Join(dir, "metrics", "train", "loss"), "1675440099999 0.5 22320\n")
		}
	}
	if chunks < 10 {
		t.Fatalf("only %d chunks: the restarts did not fall inside files", chunks)
	}
	checkPositions(t, got)
	count := func(evs []event.Event) map[string]int {
		out := map[string]int{}
		for _, e := range evs {
			if e.Kind != event.KindMetrics {
				out[fmt.Sprint(e.Kind, e.Config, e.Tags, e.Status, e.Info)]++
				continue
			}
			for _, p := range e.Points {
				out[fmt.Sprint(p.Name, e.Step, e.Time, p.Value)]++
			}
		}
		return out
	}
	gotN, wantN := count(got), count(whole)
	wantN[fmt.Sprint("train/loss", 22320, 1675440099999, 0.5)]++
	wantN[fmt.Sprint("eval/mean_emission", 22320, 1675440099998, 7.0)]++
	for k, n := range gotN {
		if n != 1 || wantN[k] != 1 {
			t.Errorf("%s: got %d, want %d", k, n, wantN[k])
		}
	}
	if len(gotN) != len(wantN) {
		t.Errorf("got %d distinct items, want %d", len(gotN), len(wantN))
	}
	if got[len(got)-1].Kind != event.KindStatus {
		t.Errorf("the status is not last: %v", got[len(got)-1].Kind)
	}
}

func TestOpenRejectsBadState(t *testing.T) {
	if _, err := (mlflow.Format{}).Open(parsers.StreamInfo{Key: "k", Path: t.TempDir()}, event.Position{}, nil, parsers.Options{Params: map[string]string{"chunk": "1"}}); err == nil {
		t.Error("Open with an unknown parameter: got nil error")
	}
	for _, st := range []string{`{`, `{"v":9}`, `{"v":1,"bogus":1}`} {
		_, err := mlflow.Format{}.Open(parsers.StreamInfo{Key: "k", Path: t.TempDir()}, event.Position{}, []byte(st), parsers.Options{})
		if err == nil {
			t.Errorf("Open with state %s: got nil error", st)
		}
	}
}
