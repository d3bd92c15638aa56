package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/internal/fsutil"
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
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage()
		if len(args) == 0 {
			return &usageError{"say what to import: neptune, neptune-export or tensorboard"}
		}
		return nil
	}
	kind := args[0]
	if _, ok := importKinds[kind]; !ok {
		usage()
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
	noProgress := fs.Bool("no-progress", false, "no progress lines")
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
	if *dryRun {
		client = newDrySink(stdout)
	} else {
		if err := cfg.Server.RequireAPIKey(); err != nil {
			return fmt.Errorf("%w: %v", errConfig, err)
		}
		c, err := newClient(cfg, log, nil, nil)
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
		"points", rep.Totals.Points, "files", rep.Totals.Files, "detail", a.Stats().Summary())
	for _, s := range rep.Streams {
		if s.Error != "" {
			log.Error("not imported", "source_id", s.SourceID, "path", s.Path, "error", s.Error)
		}
	}
	for _, f := range rep.Failures {
		log.Error("not imported", "path", f.Path, "error", f.Error)
	}
	return finishReport(a, runErr, cfg, false, start, discardLogger(), stderr)
}

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
