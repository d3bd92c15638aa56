package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/internal/fsutil"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
	"github.com/mlop-ai/mlop-agent/verify"
)

const verifyAbout = `Prove that the server holds what a source holds: read the source again with the
same parsers and mapping as the command that migrated it (nothing is sent: the
requests are captured in memory and on a temporary disk spool), then read every run
back from the server's read API and compare — every metric point bit for bit,
the run's name, status, tags, config keys and values, fork link and registered log
names, and the number of console lines and files.

Run it after a migration and before you delete the source: before you delete the
Neptune project or its .neptune directories, the neptune-exporter parquet files,
or the old metric files. Exit code 0 means everything matched; 3 means something
differs or could not be checked (each difference is printed with its run, metric,
step, want and got; --report FILE has them all as JSON); 1 an error, 2 a usage
or configuration error.

It only reads: GET requests, the key checked with GET /api/runs/auth/validate; no
run is created, resumed or changed, so it is safe on a production server beside
a running agent. A run is found by the state directory's run id (read, never
written), else by listing the project and matching its externalId.

What is not a difference:
`

const verifyExamples = `Examples:
  mlop-agent verify -c agent.yaml                        # the configured sources, as backfill reads them
  mlop-agent verify neptune ./.neptune --project vision --report verify.json
  mlop-agent verify neptune-export ./exports/data --files-dir ./exports/files --project vision
  mlop-agent verify tensorboard ./logs --project vision
`

func verifyRules() string {
	var b strings.Builder
	for _, r := range verify.Rules {
		b.WriteString("  - ")
		b.WriteString(wrap(r, 80, "    "))
		b.WriteString("\n")
	}
	return b.String()
}

// wrap breaks s into lines of at most width, indenting continuations.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteString("\n" + indent)
			n = len(indent)
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// verifyFlags are verify's own flags.
type verifyFlags struct {
	report          string
	maxDiffs        int
	reportMax       int
	noProgress      bool
	requireFinished bool
}

func (v *verifyFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&v.report, "report", "", "write the whole result as JSON here: per run and metric the counts, every difference (up to --report-max), what could not be checked and why")
	fs.IntVar(&v.maxDiffs, "max-diffs", 20, "differences printed (the counts are always complete)")
	fs.IntVar(&v.reportMax, "report-max", 100000, "differences listed in --report")
	fs.BoolVar(&v.noProgress, "no-progress", false, "no progress lines")
}

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage:\n  mlop-agent verify -c FILE [flags]\n  mlop-agent verify FORMAT PATH... --project P [flags]   (FORMAT: neptune, neptune-export, tensorboard, ...)\n\n")
		fmt.Fprint(w, verifyAbout+verifyRules()+"\n"+verifyExamples)
		fmt.Fprintf(w, "\nRun 'mlop-agent verify -c FILE -h' or 'mlop-agent verify neptune -h' for the flags.\n")
	}
	if len(args) == 0 {
		if os.Getenv("MLOP_AGENT_CONFIG") != "" {
			return verifyConfigured(ctx, args, stdout, stderr)
		}
		return &usageError{"say what to verify: -c FILE, or a format and its paths"}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return flag.ErrHelp
	}
	if strings.HasPrefix(args[0], "-") {
		return verifyConfigured(ctx, args, stdout, stderr)
	}
	return verifyFormat(ctx, args[0], args[1:], stdout, stderr)
}

// verifyConfigured is `verify -c FILE`: the configured sources, read to
// their end as backfill reads them.
func verifyConfigured(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", verifyAbout+verifyRules(), "mlop-agent verify -c agent.yaml --report verify.json", stderr)
	var cf commonFlags
	cf.register(fs)
	var vf verifyFlags
	vf.register(fs)
	stateDir := fs.String("state-dir", "", "read this state directory's run ids (never written) instead of the configuration's state_dir")
	parallel := fs.Int("parallel", 4, "runs checked at once")
	fs.BoolVar(&vf.requireFinished, "require-finished", false, "a run still RUNNING on the server is a difference, not a note")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *parallel < 1 {
		return &usageError{"--parallel must be at least 1"}
	}
	cfg, err := loadConfig(cf.config)
	if err != nil {
		return err
	}
	if *stateDir != "" {
		cfg.StateDir, _ = filepath.Abs(*stateDir)
	}
	return runVerify(ctx, cfg, cf, vf, *parallel, agent.Shard{}, !vf.requireFinished, stdout, stderr)
}

// verifyFormat is `verify FORMAT PATH...`: the source `import FORMAT`
// reads, built the same way.
func verifyFormat(ctx context.Context, kind string, args []string, stdout, stderr io.Writer) error {
	if _, ok := parsers.LookupStream(kind); !ok {
		var stream []string
		for _, f := range parsers.Formats() {
			if _, ok := parsers.LookupStream(f); ok {
				stream = append(stream, f)
			}
		}
		return &usageError{fmt.Sprintf("cannot verify %q: want -c FILE or one of %s", kind, strings.Join(stream, ", "))}
	}
	example := "mlop-agent verify " + kind + " PATH --project vision --report verify.json"
	switch kind {
	case "neptune":
		example = "mlop-agent verify neptune ./.neptune --project vision --report verify.json"
	case "neptune-export":
		example = "mlop-agent verify neptune-export ./exports/data --files-dir ./exports/files --project vision"
	}
	fs := newFlagSet("verify "+kind+" PATH...", verifyAbout+verifyRules()+"\nThe paths and flags are those of 'mlop-agent import "+kind+
		"'; give the same ones the import was\ngiven. Server URLs and the API key come from -c FILE or the environment, as for import.", example, stderr)
	var f sourceFlags
	f.register(fs, kind, "verify")
	var vf verifyFlags
	vf.register(fs)
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(positional) == 0 {
		return &usageError{"no path to verify"}
	}
	cfg, sh, err := importConfig(kind, positional, &f)
	if err != nil {
		return err
	}
	return runVerify(ctx, cfg, f.commonFlags, vf, f.parallel, sh, false, stdout, stderr)
}

// levelFloor drops records below a level: the capture's agent reports only
// warnings and errors unless debug logging is asked for.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(as), h.min}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(name), h.min}
}

// runVerify captures what the source holds and compares it with the
// server.
func runVerify(ctx context.Context, cfg *config.Config, cf commonFlags, vf verifyFlags, parallel int, shard agent.Shard, live bool, stdout, stderr io.Writer) error {
	log, err := newLogger(cfg, cf, stderr)
	if err != nil {
		return err
	}
	if err := cfg.Server.RequireAPIKey(); err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	startPprof(log)
	started := time.Now()
	s := cfg.Server
	attempts := s.Retry.MaxAttempts
	if attempts == 0 {
		// The write path retries forever; a verification must end. Ten
		// attempts ride out a restart of the server.
		attempts = 10
	}
	reader, err := mlop.New(mlop.Options{
		APIURL: s.URLAPI, IngestURL: s.URLIngest, PyURL: s.URLPy, APIKey: s.APIKey.Reveal(), Project: cfg.Project,
		Version: version, Timeout: time.Duration(s.Timeout), InitialBackoff: time.Duration(s.Retry.InitialBackoff),
		MaxBackoff: time.Duration(s.Retry.MaxBackoff), MaxAttempts: attempts, CAFile: s.TLS.CAFile,
		InsecureSkipVerify: s.TLS.InsecureSkipVerify, MaxConnsPerHost: max(16, parallel*2), Logger: log.With("component", "mlop"),
		ReadOnly: true,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	defer reader.Close()
	key, err := reader.ValidateKey(ctx)
	if err != nil {
		if errors.Is(err, sink.ErrUnauthorized) {
			return fmt.Errorf("%v\nThe API key from %s was refused; check it (it is not printed here)", err, cfg.Server.APIKeySource())
		}
		return fmt.Errorf("check the API key with %s/api/runs/auth/validate: %w", s.URLAPI, err)
	}
	log.Info("verify starting", "version", version, "sources", strings.Join(sourceList(cfg), ","), "server", s.URLAPI,
		"organization", key.OrganizationSlug, "project", cfg.Project, "state_dir", cfg.StateDir)

	runMap := map[string]int64{}
	if fi, err := os.Stat(cfg.StateDir); err == nil && fi.IsDir() {
		st, err := checkpoint.Read(cfg.StateDir)
		if err != nil {
			return fmt.Errorf("read the run ids of %s: %w", cfg.StateDir, err)
		}
		for _, r := range st.Runs {
			if r.RunID > 0 {
				runMap[r.Project+"\x00"+r.ExternalID] = r.RunID
			}
		}
	} else {
		log.Info("no state directory: every run is looked up by listing its project", "state_dir", cfg.StateDir)
	}

	tmp, err := os.MkdirTemp("", "mlop-agent-verify-")
	if err != nil {
		return fmt.Errorf("create a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	spool := filepath.Join(tmp, "spool")
	if err := os.Mkdir(spool, 0o700); err != nil {
		return fmt.Errorf("create the spool: %w", err)
	}

	// Read the source as the migration did, with a client whose transport
	// is the recorder: the agent's requests never leave the process.
	rec := verify.NewRecorder(spool)
	capClient, err := mlop.New(mlop.Options{
		APIURL: verify.CaptureAPIURL, IngestURL: verify.CaptureIngestURL, PyURL: verify.CapturePyURL,
		APIKey: "mlpi_verify-capture", Project: cfg.Project, Version: version, MaxAttempts: 1, Transport: rec,
		Logger: log.With("component", "capture"),
	})
	if err != nil {
		return err
	}
	defer capClient.Close()
	floor := slog.LevelWarn
	if log.Enabled(ctx, slog.LevelDebug) {
		floor = slog.LevelDebug
	}
	opts := agent.FromConfig(cfg, false, slog.New(levelFloor{log.Handler(), floor}).With("component", "capture"))
	opts.DryRun = true
	opts.StateDir = filepath.Join(tmp, "state") // fresh: everything is read from the start
	opts.DeadLetterPath = ""
	opts.Parallel = parallel
	opts.Shard = shard
	a, err := agent.New(opts, mlop.NewSink(capClient))
	if err != nil {
		return err
	}
	abortHook = a.Abort
	progress, tty := io.Writer(nil), false
	if !vf.noProgress {
		progress, tty = stderr, isTerminal(stderr)
	}
	stopCapture := captureProgress(progress, tty, rec)
	capErr := a.Run(ctx)
	stopCapture()
	var sourceProblems []string
	switch {
	case capErr == nil:
	case errors.Is(capErr, agent.ErrFailed):
		rep := a.Report()
		for _, st := range rep.Streams {
			if st.Error != "" {
				sourceProblems = append(sourceProblems, fmt.Sprintf("%s: %s", st.Path, st.Error))
			}
		}
		for _, f := range rep.Failures {
			sourceProblems = append(sourceProblems, fmt.Sprintf("%s: %s", f.Path, f.Error))
		}
	case errors.Is(capErr, agent.ErrRejected):
		// Records the agent refuses are never sent, so the server cannot
		// have them either; the capture lacks them too.
		for _, r := range a.Stats().Rejected() {
			log.Warn("the agent refuses this part of the source; it was never sent", "what", r)
		}
	default:
		return fmt.Errorf("read the source: %w", capErr)
	}
	capture, err := rec.Finish()
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer capture.Close()
	// The agent's buffers are garbage now; hand them back before the
	// comparison allocates its own.
	debug.FreeOSMemory()
	log.Info("source read", "runs", len(capture.Runs), "points", capture.Points, "elapsed", time.Since(started).Round(time.Millisecond))

	rep, verr := verify.Run(ctx, reader, capture, verify.Options{
		RunMap: runMap, Parallel: parallel, Live: live, TmpDir: tmp, MaxDifferences: max(vf.reportMax, vf.maxDiffs, 1),
		Progress: progress, ProgressTTY: tty, Logger: log.With("component", "verify"),
	})
	if verr != nil && !errors.Is(verr, verify.ErrMismatch) {
		return verr
	}
	for _, p := range sourceProblems {
		rep.Problems++
		rep.Complete = false
		rep.Notes = append(rep.Notes, "the source could not be read completely: "+p)
	}
	rep.Seconds = time.Since(started).Seconds()
	rep.Write(stdout, vf.maxDiffs)
	if vf.report != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = fsutil.WriteFileAtomic(vf.report, append(b, '\n'), 0o644)
		}
		if err != nil {
			return fmt.Errorf("write the report: %w", err)
		}
		log.Info("report written", "path", vf.report)
	}
	log.Info("verify done", "elapsed", time.Since(started).Round(time.Millisecond), "complete", rep.Complete,
		"points_per_second", int64(float64(rep.Points)/max(time.Since(started).Seconds(), 1e-9)))
	if !rep.Complete {
		return fmt.Errorf("%w (see above)", verify.ErrMismatch)
	}
	return nil
}

// captureProgress prints how much of the source has been read until the
// returned function is called.
func captureProgress(w io.Writer, tty bool, rec *verify.Recorder) func() {
	if w == nil {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	every := 10 * time.Second
	if tty {
		every = 500 * time.Millisecond
	}
	start := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				if tty {
					fmt.Fprintln(w)
				}
				return
			case <-t.C:
			}
			line := fmt.Sprintf("verify: reading the source: %d runs, %d points (%.0f points/s)", rec.Runs(), rec.Points(),
				float64(rec.Points())/time.Since(start).Seconds())
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}()
	return func() { close(stop); <-done }
}
