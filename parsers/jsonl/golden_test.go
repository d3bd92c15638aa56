package jsonl

import (
	"bufio"
	"os"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// Golden tests on JSONL logs written by real research codebases (see each
// testdata directory's NOTICE). The expectations were read off the files
// by hand; they are not the parser's output.

type series struct {
	count               int
	firstStep, lastStep int64
	firstValue, lastVal float64
}

func parseFile(t *testing.T, path string, opts parsers.Options) (map[string]*series, int, map[string]int) {
	t.Helper()
	skips := map[string]int{}
	opts.OnSkip = func(r string) { skips[r]++ }
	p := newParser(t, opts)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	got := map[string]*series{}
	lines := 0
	for sc.Scan() {
		lines++
		evs, err := p.Parse(nil, event.Record{Line: int64(lines), Data: sc.Bytes()})
		if err != nil {
			t.Fatalf("%s:%d: %v", path, lines, err)
		}
		for _, ev := range evs {
			for _, pt := range ev.Points {
				s := got[pt.Name]
				if s == nil {
					s = &series{firstStep: ev.Step, firstValue: pt.Value}
					got[pt.Name] = s
				}
				s.count++
				s.lastStep, s.lastVal = ev.Step, pt.Value
			}
		}
	}
	return got, lines, skips
}

func TestGoldenResearchLogs(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		opts    parsers.Options
		lines   int
		metrics int // distinct metric names
		want    map[string]series
		skips   map[string]int
	}{
		{
			// 7 lines, 94 keys; epoch is the step; a second run appended to
			// the file makes the epochs 0,1,2,3,4,0,1; one array per line.
			name: "detr", path: "../../testdata/realworld/jsonl-detr-log/detr-custom/log.txt",
			opts: parsers.Options{StepField: "epoch"}, lines: 7, metrics: 92,
			want: map[string]series{
				"train_loss":        {7, 0, 1, 4.234414317799276, 3.007559477160542},
				"train_class_error": {7, 0, 1, 15.168051399253642, 3.4249297747881373},
				"n_parameters":      {7, 0, 1, 41279495, 41279495},
			},
			skips: map[string]int{parsers.SkipArray: 7},
		},
		{
			// 300 lines; epochs 0,1 then restart at 0 up to 299.
			name: "deit", path: "../../testdata/realworld/jsonl-deit-log/deit-tiny/log.txt",
			opts: parsers.Options{StepField: "epoch"}, lines: 300, metrics: 4,
			want: map[string]series{
				"train_loss":   {300, 0, 299, 4.177725998560588, 3.0652885325749715},
				"test_acc1":    {300, 0, 299, 0.3235215960918273, 0.6615282394660271},
				"train_lr":     {300, 0, 299, 9.999999999999985e-07, 1.0053732548662862e-05},
				"n_parameters": {300, 0, 299, 5536768, 5536768},
			},
		},
		{
			// 16 lines, all at step 26 (prefill); counts written as floats.
			name: "dreamer", path: "../../testdata/realworld/jsonl-dreamer/dreamerv3-torch/metrics.jsonl",
			lines: 16, metrics: 4,
			want: map[string]series{
				"dataset_size": {16, 26, 26, 13, 368},
				"train_return": {16, 26, 26, 9.704300880432129, 20.751428604125977},
				"train_length": {16, 26, 26, 13, 32},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, lines, skips := parseFile(t, tc.path, tc.opts)
			if lines != tc.lines || len(got) != tc.metrics {
				t.Errorf("lines %d metrics %d, want %d and %d", lines, len(got), tc.lines, tc.metrics)
			}
			for name, want := range tc.want {
				g := got[name]
				if g == nil || *g != want {
					t.Errorf("%s = %+v, want %+v", name, g, want)
				}
			}
			for r, n := range tc.skips {
				if skips[r] != n {
					t.Errorf("skips[%s] = %d, want %d", r, skips[r], n)
				}
			}
		})
	}
}
