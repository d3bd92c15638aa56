package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/internal/fsutil"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// importKinds are the formats `import` reads.
var importKinds = map[string]string{
	"neptune":        "Neptune offline data: .neptune directories of neptune-client 1.x (async/offline queues) and neptune-scale (run_operations.sqlite3)",
	"neptune-export": "a neptune-exporter parquet export directory",
}

func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintf(stderr, "Usage: mlop-agent import <neptune|neptune-export> [flags] PATH...\n\n"+
			"Load data that never reached a tracker, or that is leaving one, into mlop: every run,\n"+
			"point, config key, tag, console line, histogram and file, exactly once, resumably.\n\n"+
			"  neptune         %s\n  neptune-export  %s\n\n"+
			"Examples:\n"+
			"  mlop-agent import neptune ./.neptune --project vision\n"+
			"  mlop-agent import neptune-export ./exports/data --files-dir ./exports/files --project vision \\\n"+
			"      --parallel 8 --report import-report.json\n"+
			"  mlop-agent import neptune-export ./exports/data --project vision --shard 3/8   # machine 3 of 8\n\n"+
			"Run 'mlop-agent import neptune -h' for the flags.\n", importKinds["neptune"], importKinds["neptune-export"])
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage()
		if len(args) == 0 {
			return &usageError{"say what to import: neptune or neptune-export"}
		}
		return nil
	}
	kind := args[0]
	if _, ok := importKinds[kind]; !ok {
		usage()
		return &usageError{fmt.Sprintf("cannot import %q: want neptune or neptune-export", kind)}
	}
	example := "mlop-agent import neptune ./.neptune --project vision"
	if kind == "neptune-export" {
		example = "mlop-agent import neptune-export ./exports/data --files-dir ./exports/files --project vision --report report.json"
	}
	fs := newFlagSet("import "+kind+" PATH...", importKinds[kind]+".\n\n"+
		"Server URLs and the API key come from -c FILE (its sources are ignored) or, like the SDK,\n"+
		"from PLUTO_URL_API/_INGEST/_PY and PLUTO_API_KEY (MLOP_* also read). Progress and a\n"+
		"summary go to stderr. Killed and started again, it continues where it stopped; a run\n"+
		"imported completely before is skipped at the cost of a stat; a second import of the\n"+
		"same data changes nothing on the server.", example, stderr)
	var cf commonFlags
	cf.register(fs)
	fs.Lookup("c").Usage = "optional configuration file for the server, batching and logging (its sources are ignored)"
	project := fs.String("project", "", "mlop project to import into (default: PLUTO_PROJECT, MLOP_PROJECT, or the config's)")
	stateDir := fs.String("state-dir", "", "where import progress is kept (default .mlop-agent-import in the working directory)")
	parallel := fs.Int("parallel", 4, "runs imported at once")
	shard := fs.String("shard", "", "I/N: import only shard I (0-based) of N; N machines with the same data split it without overlap")
	dryRun := fs.Bool("dry-run", false, "read and validate everything, print the requests that would be sent, send nothing")
	report := fs.String("report", "", "write a JSON report here: per run the source id, mlop run id and URL, points per metric, files, what was skipped and why")
	stepMul := fs.Int64("step-multiplier", 0, "force this multiplier for fractional Neptune steps (default: the smallest power of ten that makes every step of a run an integer)")
	noProgress := fs.Bool("no-progress", false, "no progress lines")
	skipContainers := fs.Bool("skip-containers", false, "expect Neptune model registry data (neptune-client model, model_version and project containers; exported models): still listed in the summary and the report, but no exit 3 for leaving it behind")
	var filesDir, previews string
	var pathMaps multiFlag
	fs.Var(&pathMaps, "path-map", "FROM=TO: files recorded under FROM (on the machine that trained) are read from TO here; repeatable")
	if kind == "neptune-export" {
		fs.StringVar(&filesDir, "files-dir", "", "the export's files directory (default: the exporter's layout next to the data directory)")
	} else {
		fs.StringVar(&previews, "previews", "", "keep (default) or drop the preview points that no committed point supersedes")
	}
	positional, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if len(positional) == 0 {
		return &usageError{"no path to import"}
	}
	var sh agent.Shard
	if *shard != "" {
		i, n, ok := strings.Cut(*shard, "/")
		si, err1 := strconv.Atoi(i)
		sn, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || sn < 1 || si < 0 || si >= sn {
			return &usageError{fmt.Sprintf("--shard %q: want I/N with 0 <= I < N", *shard)}
		}
		sh = agent.Shard{Index: si, Count: sn}
	}
	if *parallel < 1 {
		return &usageError{"--parallel must be at least 1"}
	}

	var cfg *config.Config
	if cf.config != "" {
		cfg, err = loadConfig(cf.config)
	} else {
		// No file: the defaults plus the environment, like the SDK. The
		// placeholder source is replaced below.
		cfg, err = config.Parse([]byte("sources: [{name: import, format: jsonl, paths: [/dev/null]}]\n"), "")
		if err != nil {
			err = fmt.Errorf("%w: %s", errConfig, formatConfigError(err))
		}
	}
	if err != nil {
		return err
	}
	if *project != "" {
		cfg.Project = *project
	} else if cf.config == "" && os.Getenv("PLUTO_PROJECT") == "" && os.Getenv("MLOP_PROJECT") == "" {
		return &usageError{"--project is required (or set PLUTO_PROJECT)"}
	}
	if *stateDir != "" {
		cfg.StateDir, _ = filepath.Abs(*stateDir)
	} else if cf.config == "" {
		cfg.StateDir, _ = filepath.Abs(".mlop-agent-import")
	}
	var paths []string
	for _, p := range positional {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return &usageError{fmt.Sprintf("%s: %v", p, err)}
		}
		paths = append(paths, globEscape(abs))
	}
	src := config.Source{Name: kind, Format: kind, Paths: paths, Project: cfg.Project,
		StepMultiplier: *stepMul, Params: map[string]string{}}
	if filesDir != "" {
		abs, _ := filepath.Abs(filesDir)
		src.Params["files_dir"] = abs
	}
	if previews != "" {
		if previews != "keep" && previews != "drop" {
			return &usageError{"--previews: want keep or drop"}
		}
		src.Params["previews"] = previews
	}
	var roots []string
	for _, p := range positional {
		roots = append(roots, filepath.Clean(p))
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			roots[len(roots)-1] = filepath.Dir(filepath.Clean(p))
		}
	}
	if len(pathMaps) > 0 {
		var rules []string
		for _, pm := range pathMaps {
			from, to, ok := strings.Cut(pm, "=")
			if !ok || from == "" || to == "" {
				return &usageError{fmt.Sprintf("--path-map %q: want FROM=TO", pm)}
			}
			abs, _ := filepath.Abs(to)
			rules = append(rules, from+"="+abs)
			roots = append(roots, abs)
		}
		src.Params["path_map"] = strings.Join(rules, ";")
	}
	if filesDir != "" {
		roots = append(roots, src.Params["files_dir"])
	}
	if cf.config == "" || len(cfg.Uploads.Roots) == 0 {
		for i, r := range roots {
			roots[i], _ = filepath.Abs(r)
		}
		cfg.Uploads.Roots = roots
	}
	cfg.Sources = []config.Source{src}

	log, err := newLogger(cfg, cf, stderr)
	if err != nil {
		return err
	}
	startPprof(log)
	var client agent.Client
	if *dryRun {
		client = newDryClient(stdout)
	} else {
		if err := cfg.Server.RequireAPIKey(); err != nil {
			return fmt.Errorf("%w: %v", errConfig, err)
		}
		c, err := newClient(cfg, log, nil, nil)
		if err != nil {
			return fmt.Errorf("%w: %v", errConfig, err)
		}
		defer c.Close()
		client = c
	}
	opts := agent.FromConfig(cfg, false, log)
	opts.DryRun = *dryRun
	opts.Parallel = *parallel
	opts.Shard = sh
	if !*noProgress {
		opts.Progress = stderr
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			opts.ProgressTTY = true
		}
	}
	a, err := agent.New(opts, client)
	if err != nil {
		return err
	}
	abortHook = a.Abort
	log.Info("import starting", "version", version, "kind", kind, "paths", strings.Join(positional, " "),
		"project", cfg.Project, "server", cfg.Server.URLAPI, "state_dir", cfg.StateDir, "parallel", *parallel,
		"shard", *shard, "dry_run", *dryRun)
	start := time.Now()
	runErr := a.Run(ctx)
	rep := a.Report()
	if *report != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = fsutil.WriteFileAtomic(*report, append(b, '\n'), 0o644)
		}
		if err != nil {
			log.Error("report not written", "path", *report, "error", err)
		} else {
			log.Info("report written", "path", *report)
		}
	}
	log.Info("import summary", "elapsed", time.Since(start).Round(time.Millisecond), "streams", rep.Totals.Streams,
		"skipped_unchanged", rep.Totals.StreamsSkipped, "failed", rep.Totals.StreamsFailed, "runs", rep.Totals.Runs,
		"points", rep.Totals.Points, "files", rep.Totals.Files, "not_imported", len(rep.NotImported), "detail", rep.Summary)
	for _, s := range rep.Streams {
		if s.Error != "" {
			log.Error("not imported", "source_id", s.SourceID, "path", s.Path, "error", s.Error)
		}
	}
	for _, f := range rep.Failures {
		log.Error("not imported", "path", f.Path, "error", f.Error)
	}
	for _, n := range rep.NotImported {
		log.Warn("not imported", "reason", n.Reason, "type", n.Type, "id", n.ID, "path", n.Path,
			"attributes", n.Attributes, "series", n.Series, "data_left_behind", n.LeftBehind, "detail", n.Detail)
	}
	if runErr == nil {
		runErr = leftBehind(rep.NotImported, *skipContainers)
	}
	return finishReport(a, runErr, cfg, false, start, discardLogger(), stderr)
}

// leftBehind is the error (exit 3) for data found and not imported: model
// registry containers unless --skip-containers said they are expected,
// and anything else holding data (an unreadable directory). Runs still
// being exported are listed but left for a later import.
func leftBehind(ns []agent.NotImported, skipContainers bool) error {
	var left, containers int
	for _, n := range ns {
		switch {
		case !n.LeftBehind:
		case n.Reason == parsers.SkippedContainer:
			if !skipContainers {
				left++
				containers++
			}
		default:
			left++
		}
	}
	if left == 0 {
		return nil
	}
	hint := ""
	if containers > 0 {
		hint = "; mlop has no model registry: pass --skip-containers if leaving the containers behind is expected"
	}
	return &leftBehindError{fmt.Sprintf("%d found and not imported, listed above and in the report%s", left, hint)}
}

// leftBehindError is an agent.ErrFailed (exit 3) with its own message.
type leftBehindError struct{ msg string }

func (e *leftBehindError) Error() string { return e.msg }
func (e *leftBehindError) Unwrap() error { return agent.ErrFailed }

// parseInterleaved parses flags that may come after positional arguments
// (import neptune ./.neptune --project p), which the flag package alone
// stops at. "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// globEscape makes a literal path safe to use as a glob.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
