package agent

import (
	"testing"

	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/presets"
)

// TestApplyPreset: a preset brings its format, run name and config files,
// and through Preset.Apply its parser options; what the source sets wins.
func TestApplyPreset(t *testing.T) {
	p, _ := presets.Lookup("lightning")
	got := applyPreset(Source{Name: "l", Format: "lightning", Params: map[string]string{"time": "metric"}}, p)
	if got.Format != "csv" || got.RunName != "{{.Dir}}" || len(got.ConfigFiles) != 1 || got.ConfigFiles[0] != "hparams.yaml" {
		t.Errorf("lightning preset not applied: %+v", got)
	}
	k, _ := presets.Lookup("keras")
	got = applyPreset(Source{Name: "k", Format: "keras", StepField: "my_epoch", RunName: "x"}, k)
	if got.RunName != "x" {
		t.Errorf("the user's run name must win: %+v", got)
	}
	src := &sourceRT{a: &Agent{opts: Options{}}, cfg: got, preset: &k}
	opts := src.parserOptions("/x/log.csv")
	if opts.StepField != "my_epoch" {
		t.Errorf("the user's step field must win over the preset's: %q", opts.StepField)
	}
	src.cfg.StepField = ""
	if opts := src.parserOptions("/x/log.csv"); opts.StepField != k.StepField {
		t.Errorf("the preset's step field = %q, want %q", opts.StepField, k.StepField)
	}
	var _ parsers.Options = opts
}
