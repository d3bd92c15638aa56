package mlflow

import (
	"maps"
	"os"
	"testing"
)

func TestParseMeta(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{
			name: "run meta.yaml from MLflow 1.x (fixture)",
			in:   "testdata:bilevel-rl-dqn/mlruns/1/770cc011eb214ea997501cabcfe12f58/meta.yaml",
			want: map[string]string{
				"artifact_uri":     "file:///home/jbauer/PycharmProjects/bilevel-rl/experiments/mlruns/1/770cc011eb214ea997501cabcfe12f58/artifacts",
				"end_time":         "1675440096325",
				"entry_point_name": "",
				"experiment_id":    "1",
				"lifecycle_stage":  "active",
				"name":             "",
				"run_id":           "770cc011eb214ea997501cabcfe12f58",
				"run_uuid":         "770cc011eb214ea997501cabcfe12f58",
				"source_name":      "",
				"source_type":      "4",
				"source_version":   "",
				"start_time":       "1675439113199",
				"status":           "3",
				"user_id":          "jbauer",
			},
		},
		{
			name: "running run: end_time null (fixture)",
			in:   "testdata:deepcnn-running/mlruns/0/cb0096518b0e4c66a94428555f05420b/meta.yaml",
			want: map[string]string{
				"artifact_uri":     "file:///E:/Ineuron/Project/Deep%20Learning%20Project/DeepCNNClassifier/DEEPCNNCLASSIFIER/mlruns/0/cb0096518b0e4c66a94428555f05420b/artifacts",
				"entry_point_name": "",
				"experiment_id":    "0",
				"lifecycle_stage":  "active",
				"name":             "",
				"run_id":           "cb0096518b0e4c66a94428555f05420b",
				"run_uuid":         "cb0096518b0e4c66a94428555f05420b",
				"source_name":      "",
				"source_type":      "4",
				"source_version":   "",
				"start_time":       "1664364007025",
				"status":           "1",
				"user_id":          "Administrator",
			},
		},
		{
			name: "experiment meta.yaml (fixture)",
			in:   "testdata:bilevel-rl-dqn/mlruns/1/meta.yaml",
			want: map[string]string{
				"artifact_location": "file:///home/jbauer/PycharmProjects/bilevel-rl/experiments/mlruns/1",
				"experiment_id":     "1",
				"lifecycle_stage":   "active",
				"name":              "DQN",
			},
		},
		{
			name: "folded scalars, quotes, nesting, comments, CRLF",
			in: "# comment\r\nrun_name: a rather long run name that PyYAML\r\n  folded onto a second line\r\n" +
				"quoted: 'it''s'\ndq: \"a\\tb\"\nnested:\n  inner: 1\n  other: 2\nlist:\n- a\n- b\n" +
				"flow: [x, y]\nnull1: null\nnull2: ~\nplain: v # trailing comment\n'q key': 5\nafter: 6\n",
			want: map[string]string{
				"run_name": "a rather long run name that PyYAML folded onto a second line",
				"quoted":   "it's",
				"dq":       "a\tb",
				"plain":    "v",
				"q key":    "5",
				"after":    "6",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.in)
			if rest, ok := cutFixture(tc.in); ok {
				var err error
				if data, err = os.ReadFile("../../testdata/realworld/mlflow-filestore/" + rest); err != nil {
					t.Fatal(err)
				}
			}
			if got := parseMeta(data); !maps.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func cutFixture(s string) (string, bool) {
	const p = "testdata:"
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		in   string
		want point
		ok   bool
	}{
		{"1675439293719 198990.32598862267 3600", point{time: 1675439293719, value: 198990.32598862267, step: 3600}, true},
		{"1664364007310 0.7858095765113831 0", point{time: 1664364007310, value: 0.7858095765113831}, true},
		{"1500000000000 5", point{time: 1500000000000, value: 5}, true},
		{"1 nan 2", point{time: 1, step: 2}, true}, // value checked separately
		{"1 2 -3", point{}, false},
		{"1 2 3 4", point{}, false},
		{"x 2 3", point{}, false},
		{"1 y 3", point{}, false},
		{"", point{}, false},
	}
	for _, tc := range tests {
		got, ok := parseLine([]byte(tc.in))
		if ok != tc.ok {
			t.Errorf("parseLine(%q): ok %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if tc.in == "1 nan 2" {
			if got.value == got.value {
				t.Errorf("parseLine(%q): value %v, want NaN", tc.in, got.value)
			}
			got.value = 0
		}
		if ok && got != tc.want {
			t.Errorf("parseLine(%q): got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
