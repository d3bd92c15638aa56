// Package presets names the settings that make common metric writers work
// with one line of config (format: lightning, keras, yolo, sb3, sb3-progress,
// mlflow, hf-trainer). A preset is data: the underlying format, the step and
// time columns, the parser parameters, a default run name template, the
// config files that sit next to the metric file, and a glob hint for the
// docs. It holds no code beyond the lookup and Apply.
//
// Run name templates are Go text/template strings rendered by the agent over
// these fields (the meaning the presets assume):
//
//	.Source  the configured source name
//	.Path    the metric file's (or stream's) path
//	.Dir     the base name of the directory holding the file (Lightning: version_4)
//	.Stem    the file's base name without its last extension (0.monitor.csv: 0.monitor)
//	.Run     the run_field value, for files holding several runs
//
// An empty RunName means the format names the run itself (MLflow's run_name,
// the Hugging Face Trainer's output directory).
package presets

import (
	"maps"
	"slices"
	"strings"

	"github.com/mlop-ai/mlop-agent/parsers"
)

// Preset is the configuration one name stands for.
type Preset struct {
	Name   string // the name used as format: in the config
	Format string // the registered format it uses: csv, jsonl, mlflow or hf-trainer

	StepField string // parsers.Options.StepField ("" = the format's default columns)
	TimeField string // parsers.Options.TimeField ("" = the format's default columns)

	// RunName is the default run name template ("" = the format decides).
	RunName string
	// ConfigFiles are globs, relative to the metric file's directory, of
	// YAML files whose contents become the run's config.
	ConfigFiles []string
	// Paths are typical globs for the metric files, a hint for the docs
	// (the README and -h); not applied automatically.
	Paths []string
	// Params are the format parameters (parsers.Options.Params).
	Params map[string]string

	Doc string // one paragraph for the docs
}

// progressSteps are the step columns of the sb3-progress preset, in order
// of preference: the first one a progress.csv has is its step. SB3's logger
// writes time/total_timesteps; the OpenAI baselines algorithms log their
// own counters through the same logger (baselines/logger.py):
// misc/total_timesteps (ppo2 since 2018), total_timesteps (earlier ppo2,
// a2c, acktr; stable-baselines 2), TimestepsSoFar (ppo1, trpo_mpi),
// total/steps (ddpg), steps (deepq), step (forks of the logger such as
// improved-diffusion), epoch (her), misc/nupdates and nupdates (update
// counters, for a file that has no timestep counter); global_step and iter
// keep the csv format's own defaults. Whichever is the step is not also a
// metric (as time/total_timesteps never was); the others a file has are.
var progressSteps = []string{
	"time/total_timesteps", "misc/total_timesteps", "total_timesteps", "TimestepsSoFar",
	"total/steps", "steps", "step", "global_step", "epoch", "misc/nupdates", "nupdates", "iter",
}

// presets is the table. Keep it in sync with the README table (the report
// of TestTable prints it).
var presets = []Preset{
	{
		Name:        "lightning",
		Format:      "csv",
		TimeField:   "created_at",
		RunName:     "{{.Dir}}",
		ConfigFiles: []string{"hparams.yaml"},
		Paths:       []string{"**/lightning_logs/version_*/metrics.csv"},
		Params:      map[string]string{"time": "auto"},
		Doc: "PyTorch Lightning CSVLogger (lightning_logs/version_N/metrics.csv). The step is the " +
			"step column (the epoch column for the 0.6-era test-tube layout, which has none; epoch is " +
			"otherwise a metric). Train and validation metrics sit on different rows with empty " +
			"cells, which are no points. The 0.6-era created_at column (a datetime string) is the " +
			"row's time; CSVLogger files since 1.0 have no time column and rows get the read time. " +
			"The run is named after the version_N directory and hparams.yaml beside the file is the config.",
	},
	{
		Name:      "keras",
		Format:    "csv",
		StepField: "epoch",
		RunName:   "{{.Dir}}",
		Paths:     []string{"**/training.log"},
		Params:    map[string]string{"time": "metric"},
		Doc: "Keras CSVLogger (one row per epoch, epoch 0-based). The step is the epoch; every other " +
			"column, including float32 reprs such as 4.0000003e-05, is a metric. Keras writes no time " +
			"column and no config file.",
	},
	{
		Name:        "yolo",
		Format:      "csv",
		StepField:   "epoch",
		RunName:     "{{.Dir}}",
		ConfigFiles: []string{"opt.yaml", "hyp.yaml", "args.yaml"},
		Paths:       []string{"**/runs/*/*/results.csv"},
		Params:      map[string]string{"time": "metric"},
		Doc: "Ultralytics YOLOv5 and YOLOv8+ results.csv (runs/<task>/<name>/results.csv). The step " +
			"is the epoch (0-based in v5, 1-based in v8). v5 pads names and values with spaces, which " +
			"are trimmed. The v8 time column is cumulative training seconds, kept as a metric; rows get " +
			"the read time. opt.yaml and hyp.yaml (v5) or args.yaml (v8) beside the file are the config.",
	},
	{
		Name:    "sb3",
		Format:  "csv",
		RunName: "{{.Dir}}",
		Paths:   []string{"**/*monitor.csv"},
		Params: map[string]string{
			"time":           "offset",
			"auto_step":      "true",
			"comment_prefix": "monitor/",
		},
		TimeField: "t",
		Doc: "Stable-Baselines3 Monitor (N.monitor.csv: one row per episode, columns r, l, t and any " +
			"info keywords). The step is the episode number, counted from 1. The first line's JSON " +
			"comment becomes config (monitor/t_start, monitor/env_id); the row time is t_start + t, and " +
			"t is also kept as a metric. For the logger's progress.csv use sb3-progress.",
	},
	{
		// The step column is not fixed: SB3 and the OpenAI baselines
		// algorithms each write their own counter (see progressSteps), and
		// an explicit step_field still wins and is then required.
		Name:    "sb3-progress",
		Format:  "csv",
		RunName: "{{.Dir}}",
		Paths:   []string{"**/progress.csv"},
		Params: map[string]string{
			"time":            "metric",
			"step_candidates": strings.Join(progressSteps, "|"),
		},
		Doc: "Stable-Baselines3 and OpenAI baselines logger CSV output (progress.csv). The step is the " +
			"first column present of " + strings.Join(progressSteps, ", ") + " (SB3 first, then the " +
			"baselines algorithms' counters); with none of them the rows are numbered 1, 2, 3... " +
			"The column that is the step is not also a metric; every other column is (train/* cells " +
			"are empty before the first update and give no points). Rows get the read time.",
	},
	{
		Name:   "mlflow",
		Format: "mlflow",
		Paths:  []string{"**/mlruns"},
		Doc: "MLflow file store (mlruns/<experiment>/<run>/): each run is a stream. Metrics files give " +
			"points with their own step and timestamp, params the config, tags the tags, and meta.yaml " +
			"the run name, start time and final status.",
	},
	{
		Name:      "hf-trainer",
		Format:    "hf-trainer",
		StepField: "step",
		Paths:     []string{"**/trainer_state.json"},
		Doc: "Hugging Face Trainer trainer_state.json, rewritten at every save: log_history entries " +
			"become points at their step (epoch is a metric) and a rewrite sends only the new entries. " +
			"The run is named after the output directory (the parent of checkpoint-N); the top-level " +
			"fields are config under trainer/.",
	},
}

// Lookup returns the preset of a name. The result is a copy: changing it
// does not change the table.
func Lookup(name string) (Preset, bool) {
	for _, p := range presets {
		if p.Name == name {
			return p.clone(), true
		}
	}
	return Preset{}, false
}

// Names lists the preset names, sorted.
func Names() []string {
	out := make([]string, 0, len(presets))
	for _, p := range presets {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

// All returns a copy of every preset, in the table's order.
func All() []Preset {
	out := make([]Preset, 0, len(presets))
	for _, p := range presets {
		out = append(out, p.clone())
	}
	return out
}

func (p Preset) clone() Preset {
	p.ConfigFiles = slices.Clone(p.ConfigFiles)
	p.Paths = slices.Clone(p.Paths)
	p.Params = maps.Clone(p.Params)
	return p
}

// Apply fills the parser options the preset sets: StepField and TimeField
// when the user left them empty, and every parameter the user did not set
// (the user's own parameters win). It does not change opts.Params.
func (p Preset) Apply(opts parsers.Options) parsers.Options {
	if opts.StepField == "" {
		opts.StepField = p.StepField
	}
	if opts.TimeField == "" {
		opts.TimeField = p.TimeField
	}
	if len(p.Params) > 0 {
		params := maps.Clone(p.Params)
		maps.Copy(params, opts.Params)
		opts.Params = params
	}
	return opts
}

// Format is one name a source's format: may take — a registered reader or a
// preset over one.
type Format struct {
	Name string
	// Reader is the registered format that reads it (Name itself, or the
	// preset's underlying format).
	Reader string
	Preset bool
}

// Formats lists every usable format name of this build, sorted: the
// registered readers (line and stream formats) and the presets whose
// reader is registered. It is the one list `check`, `run`, `-h`, config
// validation and the README agree with (a test in cmd/mlop-agent keeps
// them so).
func Formats() []Format {
	var out []Format
	have := map[string]bool{}
	for _, f := range parsers.Formats() {
		out = append(out, Format{Name: f, Reader: f})
		have[f] = true
	}
	for _, p := range presets {
		if have[p.Format] && !have[p.Name] {
			out = append(out, Format{Name: p.Name, Reader: p.Format, Preset: true})
		}
	}
	slices.SortFunc(out, func(a, b Format) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// FormatNames is Formats' names.
func FormatNames() []string {
	var out []string
	for _, f := range Formats() {
		out = append(out, f.Name)
	}
	return out
}

// Resolve says which registered reader reads a format name (a reader's own
// name, or a preset's underlying format), and whether it is known.
func Resolve(name string) (reader string, ok bool) {
	for _, f := range Formats() {
		if f.Name == name {
			return f.Reader, true
		}
	}
	return "", false
}
