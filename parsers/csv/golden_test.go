package csv_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// The expectations below are written from the files themselves (their
// first and last data rows and counted cells), not from the parser's output.
// Files that have a preset are tested with it in package presets.

func TestGoldenBaselines(t *testing.T) {
	tests := []struct {
		name string
		file string
		opts parsers.Options
		rows int // KindMetrics events
		want []want
	}{
		{
			// Column order is arbitrary and epoch (the step) is not first.
			name: "her-042920",
			file: "openai-baselines-progress/her-042920/04_29_20_21_32/progress.csv",
			rows: 43,
			want: []want{
				{"test/mean_Q", 43, 0, -1.4526747, 42, -22.841196},
				{"train/episode", 43, 0, 100.0, 42, 4300.0},
				{"stats_g/mean", 43, 0, 0.0, 42, 0.0},
				{"test/episode", 43, 0, 20.0, 42, 860.0},
				{"test/success_rate", 43, 0, 0.07083333333333335, 42, 0.09583333333333333},
				{"stats_o/std", 43, 0, 1.0, 42, 1.0},
				{"stats_g/std", 43, 0, 1.0, 42, 1.0},
				{"train/success_rate", 43, 0, 0.0575, 42, 0.07333333333333335},
				{"stats_o/mean", 43, 0, 0.0, 42, 0.0},
			},
		},
		{
			// Same keys as her-042920 in a different column order: the
			// header maps them by name.
			name: "her-050309",
			file: "openai-baselines-progress/her-050309/05_03_09_21_09/progress.csv",
			rows: 5,
			want: []want{
				{"test/success_rate", 5, 0, 0.037500000000000006, 4, 0.016666666666666666},
				{"test/mean_Q", 5, 0, -1.4544945, 4, -3.3421564},
				{"stats_o/mean", 5, 0, 0.0, 4, 0.0},
				{"stats_g/std", 5, 0, 1.0, 4, 1.0},
				{"stats_g/mean", 5, 0, 0.0, 4, 0.0},
				{"stats_o/std", 5, 0, 1.0, 4, 1.0},
				{"train/episode", 5, 0, 100.0, 4, 500.0},
				{"train/success_rate", 5, 0, 0.03916666666666666, 4, 0.04416666666666667},
				{"test/episode", 5, 0, 20.0, 4, 100.0},
			},
		},
		{
			// Names with spaces, no step column at all (auto step from 1),
			// float32 reprs.
			name: "gail-ppo",
			file: "openai-baselines-progress/gail-ppo/sample_result/ppo/progress.csv",
			rows: 100,
			want: []want{
				{"agent acc", 100, 1, 0.8125, 100, 0.6875},
				{"demo acc", 100, 1, 0.6875, 100, 0.59375},
				{"discriminator loss agent", 100, 1, 0.6788308, 100, 0.67376053},
				{"discriminator loss demo", 100, 1, 0.6563749, 100, 0.571676},
				{"discriminator loss total", 100, 1, 1.3352057, 100, 1.2454365},
				{"entropy loss", 100, 1, 0.685299, 100, 0.44541058},
				{"frac", 100, 1, 0.0, 100, 0.0},
				{"kl", 100, 1, -2.5609508e-05, 100, -8.215153e-05},
				{"loss", 100, 1, 10.812586, 100, 1.3707446},
				{"max 100 episode reward", 100, 1, 34, 100, 200},
				{"mean 100 episode reward", 100, 1, 25.75, 100, 194.39},
				{"min 100 episode reward", 100, 1, 17, 100, 128},
				{"num episodes", 100, 1, 4, 100, 7006},
				{"policy loss", 100, 1, 0.077723145, 100, 0.11182067},
				{"reward signal mean", 100, 1, 0.4944928, 100, 0.41384733},
				{"value loss", 100, 1, 21.48343, 100, 2.526756},
			},
		},
		{
			// step is the last column; every 20.
			name: "improved-diffusion",
			file: "openai-baselines-progress/improved-diffusion-2000/experiments/logs_2000_0.0001_KL/progress.csv",
			rows: 575,
			want: []want{
				{"grad_norm", 575, 0, 84.45609810260152, 11480, 4.629342206302378},
				{"loss", 575, 0, 17.263771057128906, 11480, 0.0768353414721787},
				{"loss_q0", 575, 0, 36.84524608842023, 11480, 0.2941463935944113},
				{"loss_q1", 575, 0, 7.297211282149604, 11480, 0.005005895442519444},
				{"loss_q2", 575, 0, 9.170836914417363, 11480, 0.005575629361958882},
				{"loss_q3", 575, 0, 12.76892638769675, 11480, 0.007759161535747258},
				{"lr", 575, 0, 0.0001, 11480, 5e-05},
				{"samples", 575, 0, 512, 11480, 5878272},
			},
		},
		{
			// The SB3 logger's progress.csv with an explicit step column;
			// row 1 leaves all ten train/* cells empty.
			name: "sb3-progress",
			file: "sb3-progress/jobshop-ppo/logs/progress.csv",
			opts: parsers.Options{StepField: "time/total_timesteps"},
			rows: 25,
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
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newParser(t, tc.opts)
			evs, errs := feed(t, p, records(readFile(t, tc.file)))
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			if got := countKind(evs, event.KindMetrics); got != tc.rows || got != len(evs) {
				t.Errorf("got %d metrics events of %d, want %d", got, len(evs), tc.rows)
			}
			checkSeries(t, summarize(evs), tc.want)
		})
	}
}

// restartFiles are parsed whole, and in two halves with the state carried
// across a new parser, at many cut points.
var restartFiles = []struct {
	file string
	opts parsers.Options
}{
	{file: "lightning-csvlogger/ml-aos-v4/lightning_logs/version_4/metrics.csv"},
	{file: "lightning-testtube/contact-point-20200218/hall_of_fame/20200218/lightning_logs/metrics.csv"},
	{file: "ultralytics-yolov5/aud-bills-exp/runs/train/exp/results.csv"},
	{file: "sb3-monitor/cartpole-ppo/ppo/CartPole-v1_1/0.monitor.csv", opts: parsers.Options{TimeField: "t", Params: map[string]string{"time": "offset"}}},
	{file: "openai-baselines-progress/gail-ppo/sample_result/ppo/progress.csv"},
	{file: "keras-csvlogger/brats2020/training.log"},
}

func TestRestartEqualsSinglePass(t *testing.T) {
	type input struct {
		name string
		data []byte
		opts parsers.Options
	}
	inputs := []input{{
		name: "quoted multi-line records and runs",
		data: []byte("\xEF\xBB\xBF#{\"t_start\": 5}\nrun;\"step\";note;x\r\na;1;\"two\r\nlines\";1\r\nb;1;plain;2\r\na;2;\"three\n\nlines\";3\r\nrun;step;note;x\nb;2;y;4\n"),
		opts: parsers.Options{RunField: "run"},
	}, {
		name: "auto steps per run",
		data: []byte("run,x\na,1\nb,2\na,3\nrun,x\nb,4\n"),
		opts: parsers.Options{RunField: "run"},
	}}
	for _, f := range restartFiles {
		inputs = append(inputs, input{name: f.file, data: readFile(t, f.file), opts: f.opts})
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			recs := records(in.data)
			whole, errs := feed(t, newParser(t, in.opts), recs)
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			header := map[string]bool{}
			for _, e := range whole {
				for _, p := range e.Points {
					header[p.Name] = true
				}
				if e.Kind == event.KindData {
					header[e.Name] = true
				}
			}
			for _, e := range whole {
				if e.Kind == event.KindData && header[e.Text] {
					t.Errorf("a header cell became data: %s", show(e))
				}
			}
			step := max(1, len(recs)/40)
			for cut := 0; cut <= len(recs); cut += step {
				p1 := newParser(t, in.opts)
				first, _ := feed(t, p1, recs[:cut])
				st, err := p1.State()
				if err != nil {
					t.Fatal(err)
				}
				p2 := newParser(t, in.opts)
				if err := p2.Restore(st); err != nil {
					t.Fatalf("cut %d: Restore(%s): %v", cut, st, err)
				}
				rest, _ := feed(t, p2, recs[cut:])
				got := append(first, rest...)
				if !reflect.DeepEqual(got, whole) {
					t.Fatalf("cut %d (state %s): got %d events, want %d; first difference at %d",
						cut, st, len(got), len(whole), firstDiff(got, whole))
				}
			}
		})
	}
}

func firstDiff(a, b []event.Event) int {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestRestoreNilStartsAFreshGeneration(t *testing.T) {
	p := newParser(t, parsers.Options{})
	feed(t, p, records([]byte("step,a\n1,1\n2,2\n")))
	// The file was truncated and rewritten with other columns: the agent
	// resets the parser, whose first line is a header again.
	if err := p.Restore(nil); err != nil {
		t.Fatal(err)
	}
	evs, errs := feed(t, p, records([]byte("step,a,b\n1,1,1\n")))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := showAll(evs), []string{"M s=1 t=now a=1 b=1"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRestoreRejectsBadState(t *testing.T) {
	for _, st := range []string{
		`{`,
		`{"v":2}`,
		`{"v":1,"header":["a"]}`,
		`{"v":1,"header":["a"],"delim":",,"}`,
		`{"v":1,"steps":{"":-1}}`,
		`{"v":1,"t_start":-5}`,
		`{"v":1,"extra":true}`,
	} {
		p := newParser(t, parsers.Options{})
		if err := p.Restore([]byte(st)); err == nil {
			t.Errorf("Restore(%s): got nil error", st)
		}
		// A failed Restore leaves a fresh parser.
		evs, _ := feed(t, p, records([]byte("step,a\n1,1\n")))
		if got := showAll(evs); !slices.Equal(got, []string{"M s=1 t=now a=1"}) {
			t.Errorf("after Restore(%s): got %q", st, got)
		}
	}
}
