package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/parsers/tensorboard"
)

// sourceFlags are the flags of `import KIND` and `verify KIND` that say
// where the data is and how it is read, so both read a source the same
// way.
type sourceFlags struct {
	commonFlags
	project  string
	stateDir string
	parallel int
	shard    string
	stepMul  int64
	filesDir string
	previews string
	pathMaps multiFlag
	params   multiFlag // tensorboard: KEY=VALUE source parameters
	// allowMissing: files the data refers to may be missing here.
	allowMissing bool
}

// register adds the flags; verb is "import" or "verify" for the texts.
func (f *sourceFlags) register(fs *flag.FlagSet, kind, verb string) {
	f.commonFlags.register(fs)
	fs.Lookup("c").Usage = "optional configuration `file` for the server, batching and logging (its sources are ignored)"
	if verb == "import" {
		fs.StringVar(&f.project, "project", "", "mlop project to import into (default: PLUTO_PROJECT, MLOP_PROJECT, or the config's)")
		fs.StringVar(&f.stateDir, "state-dir", "", "where import progress is kept (default .mlop-agent-import in the working directory)")
		fs.IntVar(&f.parallel, "parallel", 4, "runs imported at once")
		fs.StringVar(&f.shard, "shard", "", "I/N: import only shard I (0-based) of N; N machines with the same data split it without overlap")
	} else {
		fs.StringVar(&f.project, "project", "", "mlop project the data was imported into (default: PLUTO_PROJECT, MLOP_PROJECT, or the config's)")
		fs.StringVar(&f.stateDir, "state-dir", "", "the import's state directory, read (never written) for its run ids (default .mlop-agent-import in the working directory)")
		fs.IntVar(&f.parallel, "parallel", 4, "runs read from the source and checked at once")
		fs.StringVar(&f.shard, "shard", "", "I/N: verify only shard I (0-based) of N, as `import --shard` split it")
	}
	switch kind {
	case "tensorboard":
		fs.Var(&f.params, "param", "KEY=VALUE: a source parameter of the tensorboard format (fold_scalars, fold_hparams, hparams_yaml, purge: true|false; corrupt_wait: a duration); repeatable")
	default:
		fs.Int64Var(&f.stepMul, "step-multiplier", 0, "force this multiplier for fractional Neptune steps (default: the smallest power of ten that makes every step of a run an integer)")
		fs.Var(&f.pathMaps, "path-map", "FROM=TO: files recorded under FROM (on the machine that trained) are read from TO here; repeatable")
		fs.BoolVar(&f.allowMissing, "allow-missing-files", false, "expect files the data refers to (uploads recorded on the training machine) to be missing here: still listed in the summary and the report, but no exit 3 for them")
	}
	switch kind {
	case "neptune-export":
		fs.StringVar(&f.filesDir, "files-dir", "", "the export's files directory (default: the exporter's layout next to the data directory)")
	case "neptune":
		fs.StringVar(&f.previews, "previews", "", "keep (default) or drop the preview points that no committed point supersedes")
	}
}

// importConfig builds the configuration `import KIND PATH...` runs with:
// the -c file (its sources ignored) or the defaults and the environment,
// and one source of format kind over the paths.
func importConfig(kind string, positional []string, f *sourceFlags) (*config.Config, agent.Shard, error) {
	var sh agent.Shard
	if f.shard != "" {
		i, n, ok := strings.Cut(f.shard, "/")
		si, err1 := strconv.Atoi(i)
		sn, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || sn < 1 || si < 0 || si >= sn {
			return nil, sh, &usageError{fmt.Sprintf("--shard %q: want I/N with 0 <= I < N", f.shard)}
		}
		sh = agent.Shard{Index: si, Count: sn}
	}
	if f.parallel < 1 {
		return nil, sh, &usageError{"--parallel must be at least 1"}
	}

	var cfg *config.Config
	var err error
	if f.config != "" {
		cfg, err = loadConfig(f.config)
	} else {
		// No file: the defaults plus the environment, like the SDK. The
		// placeholder source is replaced below.
		cfg, err = config.Parse([]byte("sources: [{name: import, format: jsonl, paths: [/dev/null]}]\n"), "")
		if err != nil {
			err = fmt.Errorf("%w: %s", errConfig, formatConfigError(err))
		}
	}
	if err != nil {
		return nil, sh, err
	}
	if f.project != "" {
		cfg.Project = f.project
	} else if f.config == "" && os.Getenv("PLUTO_PROJECT") == "" && os.Getenv("MLOP_PROJECT") == "" {
		return nil, sh, &usageError{"--project is required (or set PLUTO_PROJECT)"}
	}
	if f.stateDir != "" {
		cfg.StateDir, _ = filepath.Abs(f.stateDir)
	} else if f.config == "" {
		cfg.StateDir, _ = filepath.Abs(".mlop-agent-import")
	}
	var paths []string
	for _, p := range positional {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, sh, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, sh, &usageError{fmt.Sprintf("%s: %v", p, err)}
		}
		paths = append(paths, globEscape(abs))
	}
	src := config.Source{Name: kind, Format: kind, Paths: paths, Project: cfg.Project,
		StepMultiplier: f.stepMul, Params: map[string]string{}, CSV: config.DefaultSource().CSV}
	for _, kv := range f.params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, sh, &usageError{fmt.Sprintf("--param %q: want KEY=VALUE", kv)}
		}
		src.Params[k] = v
	}
	if kind == "tensorboard" {
		if err := tensorboard.CheckParams(src.Params); err != nil {
			return nil, sh, &usageError{"--param: " + err.Error()}
		}
	}
	if f.filesDir != "" {
		abs, _ := filepath.Abs(f.filesDir)
		src.Params["files_dir"] = abs
	}
	if f.previews != "" {
		if f.previews != "keep" && f.previews != "drop" {
			return nil, sh, &usageError{"--previews: want keep or drop"}
		}
		src.Params["previews"] = f.previews
	}
	var roots []string
	for _, p := range positional {
		roots = append(roots, filepath.Clean(p))
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			roots[len(roots)-1] = filepath.Dir(filepath.Clean(p))
		}
	}
	if len(f.pathMaps) > 0 {
		var rules []string
		for _, pm := range f.pathMaps {
			from, to, ok := strings.Cut(pm, "=")
			if !ok || from == "" || to == "" {
				return nil, sh, &usageError{fmt.Sprintf("--path-map %q: want FROM=TO", pm)}
			}
			abs, _ := filepath.Abs(to)
			rules = append(rules, from+"="+abs)
			roots = append(roots, abs)
		}
		src.Params["path_map"] = strings.Join(rules, ";")
	}
	if f.filesDir != "" {
		roots = append(roots, src.Params["files_dir"])
	}
	if f.config == "" || len(cfg.Uploads.Roots) == 0 {
		for i, r := range roots {
			roots[i], _ = filepath.Abs(r)
		}
		cfg.Uploads.Roots = roots
	}
	cfg.Sources = []config.Source{src}
	return cfg, sh, nil
}
