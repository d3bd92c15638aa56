package export

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
)

// arrowFixture is an export written by Apache Arrow's parquet writer (see
// testdata/neptune-export/NOTICE.md): a second writer besides the
// generator, with pyarrow's physical layout.
const arrowFixture = "../../../testdata/neptune-export/arrow"

// TestArrowFixture reads the arrow-written export.
func TestArrowFixture(t *testing.T) {
	f := New(quiet)
	infos := discover(t, f, filepath.Join(arrowFixture, "data"))
	const dir = "neptune-export:ws_proj-00871eb7ac1bdb01/"
	parentKey, childKey := dir+"parent-run-37a08f56aa273865", dir+"mouse-run-7-6c9c7367962659dc"
	if len(infos) != 2 || infos[0].Key != parentKey || infos[1].Key != childKey || infos[1].Parent != parentKey {
		t.Fatalf("Discover = %+v", infos)
	}

	evs, ws := openRead(t, f, infos[1], parsers.Options{})
	if len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}
	s := summarize(t, evs)
	info := s.run
	got := []any{info.Name, info.ExternalID, info.CreatedAt, info.ForkParent, info.ForkStep,
		info.Config["neptune/step_multiplier"], info.Config["neptune/export/variant"], info.Config["neptune/fork/step"]}
	want := []any{"exp-a", "mouse-run-7", int64(1735693200000), "parent-run", int64(1000), int64(100), variant3, "10.000000"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("run = %v, want %v (the parent's 9.75 makes the family's multiplier 100)", got, want)
	}
	wantMetrics := map[string][]point{
		"metrics/acc":  {{1050, 0.8, 1735693200123}, {1100, 0.9, 1735693201000}},
		"metrics/loss": {{1050, 0.25, 1735693200123}, {1100, 0.2, 1735693201000}},
	}
	if !reflect.DeepEqual(s.metrics, wantMetrics) || s.metricEv != 2 {
		t.Errorf("metrics = %v in %d events, want %v in 2", s.metrics, s.metricEv, wantMetrics)
	}
	for k, v := range map[string]any{"parameters/lr": 0.001, "parameters/epochs": int64(5), "parameters/amp": true,
		"neptune/sys/forking/parent": "parent-run", "neptune/sys/forking/step": 10.0, "neptune/sys/custom_run_id": "mouse-run-7"} {
		if s.config[k] != v {
			t.Errorf("config %s = %#v, want %#v", k, s.config[k], v)
		}
	}
	if _, ok := s.config["parameters/only_in_parent"]; ok {
		t.Error("a null parameter reached the config")
	}
	if got := s.tagList(); !reflect.DeepEqual(got, []string{"baseline", "forked"}) {
		t.Errorf("tags %v", got)
	}
	h := s.data["grads/l1"]
	if len(h) != 1 || h[0].Step != 1100 || h[0].Text != mapping.HistogramJSON([]float64{0, 1, 2}, []float64{3, 4}) {
		t.Errorf("histograms %+v", h)
	}
	if len(s.logs) != 1 || s.logs[0].Text != "epoch 1" || s.logs[0].Type != "INFO" || s.logs[0].Step != 1 {
		t.Errorf("logs %+v", s.logs)
	}
	files := s.files["preds"]
	wantPath, _ := filepath.Abs(filepath.Join(arrowFixture, "files/ws_proj-00871eb7ac1bdb01/mouse-run-7/preds/step_11_000000.png"))
	if len(files) != 1 || files[0].Path != wantPath || files[0].Step != 1100 || files[0].Type != "IMAGE" {
		t.Errorf("files %+v, want %s at 1100", files, wantPath)
	}

	evs, _ = openRead(t, f, infos[0], parsers.Options{})
	s = summarize(t, evs)
	if got := s.metrics["metrics/loss"]; !reflect.DeepEqual(got, []point{{975, 0.5, 1735689609750}, {1000, 0.4, 1735689610000}}) {
		t.Errorf("parent loss %v", got)
	}
	if s.run.Config["neptune/step_multiplier"] != int64(100) || s.run.ForkParent != "" {
		t.Errorf("parent run %+v", s.run)
	}
}
