package agent

import (
	"testing"
)

func TestApplyPreset(t *testing.T) {
	got := applyPreset(Source{Name: "l", Format: "lightning", Params: map[string]string{"time": "metric"}})
	if got.Format != "csv" || got.RunName != "{{.Dir}}" || len(got.ConfigFiles) != 1 || got.ConfigFiles[0] != "hparams.yaml" {
		t.Errorf("lightning preset not applied: %+v", got)
	}
	if got.Params["time"] != "metric" {
		t.Errorf("the user's params must win: %v", got.Params)
	}
	got = applyPreset(Source{Name: "k", Format: "keras", StepField: "my_epoch", RunName: "x"})
	if got.StepField != "my_epoch" || got.RunName != "x" {
		t.Errorf("the user's fields must win: %+v", got)
	}
	if got := applyPreset(Source{Name: "j", Format: "jsonl"}); got.Format != "jsonl" {
		t.Errorf("a plain format changed: %+v", got)
	}
}
