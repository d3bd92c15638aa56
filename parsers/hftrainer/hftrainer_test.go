package hftrainer_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/hftrainer"
	"github.com/mlop-ai/mlop-agent/parsers/parsertest"
)

// want is a metric expected of a test: name, points, first and last (step, value).
type want parsertest.Series

const realworld = "../../testdata/realworld/hf-trainer-state"

var readTime = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestRegistered(t *testing.T) {
	if _, ok := parsers.LookupStream("hf-trainer"); !ok {
		t.Fatal("hf-trainer is not registered")
	}
}

func open(t *testing.T, path string, resume event.Position, state []byte, opts parsers.Options) parsers.Stream {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return readTime }
	}
	s, err := hftrainer.Format{}.Open(parsers.StreamInfo{Key: "hf-trainer:" + path, Path: path}, resume, state, opts)
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

// drain calls Next until io.EOF; it returns the events and the last state.
func drain(t *testing.T, s parsers.Stream) ([]event.Event, []byte, event.Position) {
	t.Helper()
	var all []event.Event
	var state []byte
	var end event.Position
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("Next never returned io.EOF")
		}
		c, err := s.Next(t.Context(), nil)
		all = append(all, c.Events...)
		if errors.Is(err, io.EOF) {
			if len(c.Events) != 0 {
				t.Fatalf("io.EOF with %d events", len(c.Events))
			}
			return all, state, end
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range c.Events {
			if c.End.Less(e.Pos) || !end.Less(e.Pos) {
				t.Fatalf("event position %v outside the chunk (%v, %v]", e.Pos, end, c.End)
			}
		}
		state, end = c.State, c.End
	}
}

// The expectations are read off the documents by hand: the top-level
// fields, the number of log_history entries and the first and last entry
// holding each key.
func TestGolden(t *testing.T) {
	tests := []struct {
		name    string
		dir     string
		entries int
		config  map[string]any
		skipped map[string]int
		want    []want
	}{
		{
			// Recent schema; six eval datasets, each its own entry at the
			// same step; train rows from step 401.
			name:    "multi-eval",
			dir:     "multi-eval",
			entries: 216,
			config: map[string]any{
				"trainer/epoch": 30.0, "trainer/eval_steps": 500.0, "trainer/global_step": 12030.0,
				"trainer/is_hyper_param_search": false, "trainer/logging_steps": 500.0, "trainer/max_steps": 12030.0,
				"trainer/num_input_tokens_seen": 0.0, "trainer/num_train_epochs": 30.0, "trainer/save_steps": 500.0,
				"trainer/total_flos": 2.3847568878600192e+17, "trainer/train_batch_size": 4.0,
			},
			want: []want{
				{"epoch", 216, 0, 0, 12030, 30.0},
				{"eval_g0_accuracy", 31, 0, 0.7082294264339152, 12030, 0.5935162094763092},
				{"eval_g0_loss", 31, 0, 5.741583347320557, 12030, 2.7486727237701416},
				{"eval_g0_runtime", 31, 0, 5.7095, 12030, 5.094},
				{"eval_g0_samples_per_second", 31, 0, 70.234, 12030, 78.721},
				{"eval_g0_steps_per_second", 31, 0, 17.69, 12030, 19.827},
				{"eval_g1_accuracy", 31, 0, 0.4389027431421446, 12030, 0.40399002493765584},
				{"eval_g1_loss", 31, 0, 8.220163345336914, 12030, 4.1004319190979},
				{"eval_g1_runtime", 31, 0, 5.9196, 12030, 5.9331},
				{"eval_g1_samples_per_second", 31, 0, 67.741, 12030, 67.587},
				{"eval_g1_steps_per_second", 31, 0, 17.062, 12030, 17.023},
				{"eval_g2_accuracy", 31, 0, 0.32418952618453867, 12030, 0.3266832917705736},
				{"eval_g2_loss", 31, 0, 7.357771396636963, 12030, 4.4023661613464355},
				{"eval_g2_runtime", 31, 0, 6.0146, 12030, 6.1338},
				{"eval_g2_samples_per_second", 31, 0, 66.671, 12030, 65.376},
				{"eval_g2_steps_per_second", 31, 0, 16.792, 12030, 16.466},
				{"eval_g3_accuracy", 31, 0, 0.26683291770573564, 12030, 0.2743142144638404},
				{"eval_g3_loss", 31, 0, 6.202539443969727, 12030, 4.682476043701172},
				{"eval_g3_runtime", 31, 0, 6.0628, 12030, 6.21},
				{"eval_g3_samples_per_second", 31, 0, 66.141, 12030, 64.574},
				{"eval_g3_steps_per_second", 31, 0, 16.659, 12030, 16.264},
				{"eval_g4_accuracy", 31, 0, 0.23192019950124687, 12030, 0.2718204488778055},
				{"eval_g4_loss", 31, 0, 5.275249004364014, 12030, 4.523464202880859},
				{"eval_g4_runtime", 31, 0, 6.2888, 12030, 6.457},
				{"eval_g4_samples_per_second", 31, 0, 63.764, 12030, 62.103},
				{"eval_g4_steps_per_second", 31, 0, 16.06, 12030, 15.642},
				{"eval_g5_accuracy", 31, 0, 0.18204488778054864, 12030, 0.2518703241895262},
				{"eval_g5_loss", 31, 0, 3.7603373527526855, 12030, 4.835134983062744},
				{"eval_g5_runtime", 31, 0, 6.5105, 12030, 6.6358},
				{"eval_g5_samples_per_second", 31, 0, 61.593, 12030, 60.429},
				{"eval_g5_steps_per_second", 31, 0, 15.513, 12030, 15.22},
				{"grad_norm", 30, 401, 5.49674654006958, 12030, 1.7071932554244995},
				{"learning_rate", 30, 401, 1e-05, 12030, 1e-05},
				{"loss", 30, 401, 1.1074, 12030, 0.0549},
			},
		},
		{
			// Older schema; five eval rows; the final summary row has no
			// loss and becomes metrics at step 5000.
			name:    "whisper summary row",
			dir:     "whisper-ja",
			entries: 206,
			config: map[string]any{
				"trainer/best_metric":           0.7431560204762965,
				"trainer/best_model_checkpoint": "/storage/elsayedissa/whisper-large-v2-japanese-24h/checkpoint-3000",
				"trainer/epoch":                 38.16793893129771, "trainer/global_step": 5000.0,
				"trainer/is_hyper_param_search": false, "trainer/max_steps": 5000.0,
				"trainer/num_train_epochs": 39.0, "trainer/total_flos": 5.27162132754432e+20,
			},
			want: []want{
				{"epoch", 206, 25, 0.19, 5000, 38.17},
				{"eval_loss", 5, 1000, 0.320997953414917, 5000, 0.4200145900249481},
				{"eval_runtime", 5, 1000, 1728.016, 5000, 1710.8673},
				{"eval_samples_per_second", 5, 1000, 2.595, 5000, 2.621},
				{"eval_steps_per_second", 5, 1000, 0.163, 5000, 0.164},
				{"eval_wer", 5, 1000, 0.78878255063432, 5000, 0.7449365679946583},
				{"learning_rate", 200, 25, 4.6000000000000004e-07, 5000, 8.88888888888889e-09},
				{"loss", 200, 25, 0.3048, 5000, 0.0002},
				{"total_flos", 1, 5000, 5.27162132754432e+20, 5000, 5.27162132754432e+20},
				{"train_loss", 1, 5000, 0.01890342615880072, 5000, 0.01890342615880072},
				{"train_runtime", 1, 5000, 77350.9963, 5000, 77350.9963},
				{"train_samples_per_second", 1, 5000, 3.232, 5000, 3.232},
				{"train_steps_per_second", 1, 5000, 0.065, 5000, 0.065},
			},
		},
		{
			// 1.5 MB mid-run snapshot; custom keys; a string value in every
			// entry (remaining_time), skipped.
			name:    "star 1.5 MB with a string metric",
			dir:     "star-40k",
			entries: 2000,
			skipped: map[string]int{parsers.SkipString: 2000},
			config: map[string]any{
				"trainer/epoch": 3.164807342353034, "trainer/eval_steps": 500.0, "trainer/global_step": 40000.0,
				"trainer/is_hyper_param_search": false, "trainer/logging_steps": 20.0, "trainer/max_steps": 252780.0,
				"trainer/num_input_tokens_seen": 0.0, "trainer/num_train_epochs": 20.0, "trainer/save_steps": 1000.0,
				"trainer/total_flos": 10842937786368.0, "trainer/train_batch_size": 1.0,
			},
			want: []want{
				{"epoch", 2000, 20, 0.0015824036711765172, 40000, 3.164807342353034},
				{"grad_norm", 2000, 20, 4.8393846636618925, 40000, 3.8961894218180566},
				{"loss", 2000, 20, 24.79317626953125, 40000, 3.755987548828125},
				{"lr", 2000, 20, 0.0001, 40000, 0.0001},
				{"train/acc_0", 2000, 20, 0.040702751779823396, 40000, 0.7741402881141741},
				{"train/acc_1", 2000, 20, 0.038812858377097345, 40000, 0.7495757576393193},
				{"train/acc_2", 2000, 20, 0.02945384632191338, 40000, 0.73565362918749},
				{"train/acc_3", 2000, 20, 0.025070799432009367, 40000, 0.729514320452248},
				{"train/acc_4", 2000, 20, 0.02265498395492105, 40000, 0.7259919329635376},
				{"train/acc_5", 2000, 20, 0.02138883208843881, 40000, 0.7157163891394044},
				{"train/acc_6", 2000, 20, 0.02152569603931931, 40000, 0.7128418789295768},
				{"train/ploss_0", 2000, 20, 6.89403920173645, 40000, 0.7714191667735577},
				{"train/ploss_1", 2000, 20, 6.832677960395813, 40000, 0.83920718729496},
				{"train/ploss_2", 2000, 20, 6.809678637981415, 40000, 0.8787938416004181},
				{"train/ploss_3", 2000, 20, 6.809273815155029, 40000, 0.903985296189785},
				{"train/ploss_4", 2000, 20, 6.7881776094436646, 40000, 0.9235400419682265},
				{"train/ploss_5", 2000, 20, 6.788163661956787, 40000, 0.9430158168077469},
				{"train/ploss_6", 2000, 20, 6.793595337867737, 40000, 0.9630328238010406},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(realworld, tc.dir, hftrainer.FileName)
			skipped := map[string]int{}
			evs, _, _ := drain(t, open(t, path, event.Position{}, nil, parsers.Options{OnSkip: func(r string) { skipped[r]++ }}))

			if evs[0].Kind != event.KindRun {
				t.Fatalf("first event %v, want run", evs[0].Kind)
			}
			abs, _ := filepath.Abs(filepath.Join(realworld, tc.dir))
			if info := evs[0].Info; info.Name != tc.dir || info.ExternalID != "hf-trainer:"+abs {
				t.Errorf("run info: got %+v, want name %q", info, tc.dir)
			}
			configs := parsertest.ByKind(evs, event.KindConfig)
			if len(configs) != 1 || fmt.Sprint(configs[0].Config) != fmt.Sprint(tc.config) {
				t.Errorf("config:\ngot  %v\nwant %v", configs, tc.config)
			}
			metrics := parsertest.ByKind(evs, event.KindMetrics)
			if len(metrics) != tc.entries || len(evs) != tc.entries+2 {
				t.Errorf("got %d metrics events of %d, want %d entries", len(metrics), len(evs), tc.entries)
			}
			for _, e := range metrics {
				if e.Time != readTime.UnixMilli() || e.Run != "" {
					t.Fatalf("metrics event at time %d run %q", e.Time, e.Run)
				}
			}
			parsertest.CheckMetrics(t, metrics, tc.want)
			if fmt.Sprint(skipped) != fmt.Sprint(tc.skipped) && !(len(skipped) == 0 && tc.skipped == nil) {
				t.Errorf("skipped: got %v, want %v", skipped, tc.skipped)
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// document loads the whisper fixture's document, keeping the first n
// log_history entries.
func document(t *testing.T, n int, globalStep int) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(realworld, "whisper-ja", hftrainer.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["log_history"] = doc["log_history"].([]any)[:n]
	doc["global_step"] = globalStep
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func steps(evs []event.Event) []string {
	var out []string
	for _, e := range evs {
		switch e.Kind {
		case event.KindMetrics:
			out = append(out, fmt.Sprintf("%s%d", e.Run, e.Step))
		case event.KindRun:
			out = append(out, fmt.Sprintf("run %s %q", e.Run, e.Info.Name))
		case event.KindConfig:
			out = append(out, fmt.Sprintf("config %s %v", e.Run, e.Config["trainer/global_step"]))
		}
	}
	return out
}

// TestLiveRewrites follows a document the way the Trainer writes it: whole
// rewrites with more entries, a rewrite caught half-written, an identical
// rewrite, a restart of the agent in the middle, and a new training run
// writing to the same directory.
func TestLiveRewrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "checkpoint-50")
	path := filepath.Join(dir, hftrainer.FileName)
	writeFile(t, path, document(t, 2, 50))
	s := open(t, path, event.Position{}, nil, parsers.Options{})

	evs, state, end := drain(t, s)
	if got, want := steps(evs), []string{`run  "out"`, "config  50", "25", "50"}; !slices.Equal(got, want) {
		t.Fatalf("first read: got %q, want %q", got, want)
	}

	// A half-written rewrite is not an error and sends nothing.
	full := document(t, 4, 100)
	writeFile(t, path, full[:len(full)/2])
	if evs, _, _ := drain(t, s); len(evs) != 0 {
		t.Fatalf("half-written document: got %q", steps(evs))
	}
	writeFile(t, path, full)
	evs, state, end = drain(t, s)
	if got, want := steps(evs), []string{"config  100", "75", "100"}; !slices.Equal(got, want) {
		t.Fatalf("rewrite: got %q, want %q", got, want)
	}
	// The same content written again.
	writeFile(t, path, full)
	if evs, _, _ := drain(t, s); len(evs) != 0 {
		t.Fatalf("identical rewrite: got %q", steps(evs))
	}

	// The agent restarts with the saved state; the Trainer has saved again.
	writeFile(t, path, document(t, 5, 125))
	s2 := open(t, path, end, state, parsers.Options{})
	evs, state, end = drain(t, s2)
	if got, want := steps(evs), []string{"config  125", "125"}; !slices.Equal(got, want) {
		t.Fatalf("after restart: got %q, want %q", got, want)
	}

	// A new training run rewrites the file: its history does not start
	// with what was sent. It is a new generation: a new run, everything
	// from entry 0.
	doc := document(t, 3, 75)
	doc = []byte(string(doc[:len(doc)-1]) + `, "note": "x"}`)
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	m["log_history"].([]any)[0].(map[string]any)["loss"] = 9.0
	doc, _ = json.Marshal(m)
	writeFile(t, path, doc)
	evs, _, end2 := drain(t, s2)
	if got, want := steps(evs), []string{`run gen2 "out (2)"`, "config gen2 75", "gen225", "gen250", "gen275"}; !slices.Equal(got, want) {
		t.Fatalf("new generation: got %q, want %q", got, want)
	}
	abs, _ := filepath.Abs(filepath.Dir(dir))
	if got, want := evs[0].Info.ExternalID, "hf-trainer:"+abs+"#2"; got != want {
		t.Errorf("new generation external id: got %q, want %q", got, want)
	}
	if !end.Less(end2) {
		t.Errorf("positions went back: %v then %v", end, end2)
	}
}

func TestResumeWithoutState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", hftrainer.FileName)
	writeFile(t, path, document(t, 6, 150))
	// Position 4 = the run, the config and two entries.
	evs, _, _ := drain(t, open(t, path, event.Position{Seq: 4}, nil, parsers.Options{}))
	if got, want := steps(evs), []string{"config  150", "75", "100", "125", "150"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMissingFileIsEOF(t *testing.T) {
	path := filepath.Join(t.TempDir(), hftrainer.FileName)
	s := open(t, path, event.Position{}, nil, parsers.Options{})
	if evs, _, _ := drain(t, s); len(evs) != 0 {
		t.Errorf("got %d events", len(evs))
	}
	writeFile(t, path, document(t, 1, 25))
	if evs, _, _ := drain(t, s); len(evs) != 3 {
		t.Errorf("got %q after the file appeared", steps(evs))
	}
}

func TestDiscover(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"checkpoint-500", "checkpoint-1000", "checkpoint-1500-tmp"} {
		writeFile(t, filepath.Join(root, "out", d, hftrainer.FileName), document(t, 1, 25))
	}
	writeFile(t, filepath.Join(root, "out", hftrainer.FileName), document(t, 1, 25))
	tests := []struct {
		path string
		want []string
	}{
		{filepath.Join(root, "out"), []string{"out/" + hftrainer.FileName, "out/checkpoint-1000/" + hftrainer.FileName}},
		{filepath.Join(root, "out", "checkpoint-1000", hftrainer.FileName), []string{"out/checkpoint-1000/" + hftrainer.FileName}},
		{filepath.Join(root, "out", "checkpoint-500", hftrainer.FileName), nil}, // superseded
		{filepath.Join(root, "out", "checkpoint-500"), []string{"out/checkpoint-500/" + hftrainer.FileName}},
	}
	for _, tc := range tests {
		got, err := hftrainer.Format{}.Discover(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, s := range got {
			rel, _ := filepath.Rel(root, s.Path)
			paths = append(paths, filepath.ToSlash(rel))
			abs, _ := filepath.Abs(s.Path)
			if s.Key != "hf-trainer:"+abs {
				t.Errorf("key %q for %s", s.Key, s.Path)
			}
		}
		if !slices.Equal(paths, tc.want) {
			t.Errorf("Discover(%s): got %q, want %q", tc.path, paths, tc.want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), hftrainer.FileName)
	for _, st := range []string{`{`, `{"v":2}`, `{"v":1,"x":1}`, `{"v":1,"n":-1}`} {
		if _, err := (hftrainer.Format{}).Open(parsers.StreamInfo{Key: "k", Path: path}, event.Position{}, []byte(st), parsers.Options{}); err == nil {
			t.Errorf("state %s: got nil error", st)
		}
	}
	if _, err := (hftrainer.Format{}).Open(parsers.StreamInfo{Key: "k", Path: path}, event.Position{}, nil, parsers.Options{Params: map[string]string{"a": "b"}}); err == nil {
		t.Error("unknown parameter: got nil error")
	}
}
