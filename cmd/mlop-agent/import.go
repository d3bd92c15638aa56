package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/internal/fsutil"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// importKinds are the formats `import` reads.
var importKinds = map[string]string{
	"neptune":        "Neptune offline data: .neptune directories of neptune-client 1.x (async/offline queues) and neptune-scale (run_operations.sqlite3)",
	"neptune-export": "a neptune-exporter parquet export directory",
	"tensorboard":    "TensorBoard log directories: every directory holding events.out.tfevents.* files is a run, named by its path below the directory given",
}

func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintf(stderr, "Usage: mlop-agent import <neptune|neptune-export|tensorboard> [flags] PATH...\n\n"+
			"Load data that never reached a tracker, or that is leaving one, into mlop: every run,\n"+
			"point, config key, tag, console line, histogram and file, exactly once, resumably.\n\n"+
			"  neptune         %s\n  neptune-export  %s\n  tensorboard     %s\n\n"+
			"Examples:\n"+
			"  mlop-agent import neptune ./.neptune --project vision\n"+
			"  mlop-agent import neptune-export ./exports/data --files-dir ./exports/files --project vision \\\n"+
			"      --parallel 8 --report import-report.json\n"+
			"  mlop-agent import neptune-export ./exports/data --project vision --shard 3/8   # machine 3 of 8\n"+
			"  mlop-agent import tensorboard ./lightning_logs ./runs --project vision --report report.json\n\n"+
			"Run 'mlop-agent import neptune -h' for the flags.\n", importKinds["neptune"], importKinds["neptune-export"], importKinds["tensorboard"])
	}
	if len(args) == 0 {
		return &usageError{"say what to import: neptune, neptune-export or tensorboard"}
	}
	if args[0] == "-h" || args[0] == "--help" {
		usage()
		return flag.ErrHelp
	}
	kind := args[0]
	if _, ok := importKinds[kind]; !ok {
		return &usageError{fmt.Sprintf("cannot import %q: want neptune, neptune-export or tensorboard", kind)}
	}
	example := "mlop-agent import neptune ./.neptune --project vision"
	switch kind {
	case "neptune-export":
		example = "mlop-agent import neptune-export ./exports/data --files-dir ./exports/files --project vision --report report.json"
	case "tensorboard":
		example = "mlop-agent import tensorboard ./lightning_logs --project vision --report report.json"
	}
	fs := newFlagSet("import "+kind+" PATH...", importKinds[kind]+".\n\n"+
		"Server URLs and the API key come from -c FILE (its sources are ignored) or, like the SDK,\n"+
		"from PLUTO_URL_API/_INGEST/_PY and PLUTO_API_KEY (MLOP_* also read). Progress and a\n"+
		"summary go to stderr. Killed and started again, it continues where it stopped; a run\n"+
		"imported completely before is skipped at the cost of a stat; a second import of the\n"+
		"same data changes nothing on the server.", example, stderr)
	var f sourceFlags
	f.register(fs, kind, "import")
	dryRun := fs.Bool("dry-run", false, "read and validate everything, print the requests that would be sent, send nothing")
	report := fs.String("report", "", "write a JSON report here: per run the source id, mlop run id and URL, points per metric, files, what was skipped and why")
	noProgress := fs.Bool("no-progress", false, "no progress reports (on a terminal a line rewritten every second, otherwise an INFO line every 10s)")
	skipContainers := new(bool)
	if kind != "tensorboard" {
		fs.BoolVar(skipContainers, "skip-containers", false, "expect Neptune model registry data (neptune-client model, model_version and project containers; exported models): still listed in the summary and the report, but no exit 3 for leaving it behind")
	}
	positional, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if len(positional) == 0 {
		return &usageError{"no path to import"}
	}
	cfg, sh, err := importConfig(kind, positional, &f)
	if err != nil {
		return err
	}
	cf, parallel, shard := f.commonFlags, &f.parallel, &f.shard

	log, err := newLogger(cfg, cf, stderr)
	if err != nil {
		return err
	}
	startPprof(log)
	var client sink.Sink
	var running atomic.Pointer[agent.Agent] // for the sink's buffered-bytes reminders
	if *dryRun {
		client = newDrySink(stdout)
	} else {
		if err := cfg.Server.RequireAPIKey(); err != nil {
			return fmt.Errorf("%w: %v", errConfig, err)
		}
		c, err := newClient(cfg, log, nil, nil, func() int64 {
			if a := running.Load(); a != nil {
				return a.BufferedBytes()
			}
			return 0
		})
		if err != nil {
			return fmt.Errorf("%w: %v", errConfig, err)
		}
		defer c.Close()
		client = mlop.NewSink(c)
	}
	opts := agent.FromConfig(cfg, false, log)
	opts.DryRun = *dryRun
	opts.Parallel = *parallel
	opts.Shard = sh
	opts.ReportNames = true
	opts.AllowMissingFiles = f.allowMissing
	if !*noProgress {
		opts.Progress, opts.ProgressTTY = stderr, isTerminal(stderr)
	}
	a, err := agent.New(opts, client)
	if err != nil {
		return err
	}
	running.Store(a)
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
		"points", rep.Totals.Points, "rows", rep.Totals.Rows, "files", rep.Totals.Files, "not_imported", len(rep.NotImported), "detail", rep.Summary)
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
		runErr = leftBehind(rep.NotImported, *skipContainers, f.allowMissing)
	}
	return finishReport(a, runErr, cfg, false, start, discardLogger(), stderr, "")
}

// leftBehind is the error (exit 3) for data found and not imported: model
// registry containers unless --skip-containers said they are expected,
// and anything else holding data (an unreadable directory). Runs still
// being exported are listed but left for a later import.
func leftBehind(ns []agent.NotImported, skipContainers, allowMissing bool) error {
	var left, containers int
	for _, n := range ns {
		switch {
		case !n.LeftBehind:
		case n.Reason == agent.MissingFiles && allowMissing:
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
		if err := parseFlags(fs, args); err != nil {
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
