package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/internal/telemetry"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/sink/mlop"

	// Formats register themselves.
	_ "github.com/mlop-ai/mlop-agent/parsers/csv"
	_ "github.com/mlop-ai/mlop-agent/parsers/hftrainer"
	_ "github.com/mlop-ai/mlop-agent/parsers/jsonl"
	_ "github.com/mlop-ai/mlop-agent/parsers/mlflow"
	_ "github.com/mlop-ai/mlop-agent/parsers/neptune"
	_ "github.com/mlop-ai/mlop-agent/parsers/neptune/export"
	_ "github.com/mlop-ai/mlop-agent/parsers/tensorboard"
)

// errConfig marks configuration problems (exit code 2).
var errConfig = errors.New("configuration error")

// commonFlags are the flags every agent command shares.
type commonFlags struct {
	config   string
	logLevel string
	logFmt   string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	// Like Vector's VECTOR_CONFIG: the environment names the default file.
	def := os.Getenv("MLOP_AGENT_CONFIG")
	fs.StringVar(&c.config, "c", def, "configuration `file` (YAML); the default comes from MLOP_AGENT_CONFIG")
	fs.StringVar(&c.config, "config", def, "same as -c")
	fs.StringVar(&c.logLevel, "log-level", "", "`level`: debug, info, warn or error (overrides log.level and MLOP_AGENT_LOG_LEVEL)")
	fs.StringVar(&c.logFmt, "log-format", "", "`format`: text or json (overrides log.format)")
}

// loadConfig loads and validates the configuration, formatting every
// problem.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		path = os.Getenv("MLOP_AGENT_CONFIG")
	}
	if path == "" {
		return nil, &usageError{"no configuration file: pass -c FILE (or set MLOP_AGENT_CONFIG)"}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", errConfig, formatConfigError(err))
	}
	return cfg, nil
}

func formatConfigError(err error) string {
	fes := config.FieldErrors(err)
	if len(fes) == 0 {
		return err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problem(s):", len(fes))
	for _, fe := range fes {
		fmt.Fprintf(&b, "\n  %s", fe.Error())
	}
	return b.String()
}

// newLogger builds the agent's logger on stderr.
func newLogger(cfg *config.Config, f commonFlags, stderr io.Writer) (*slog.Logger, error) {
	level := cfg.Log.Level
	if f.logLevel != "" {
		level = f.logLevel
	}
	format := cfg.Log.Format
	if f.logFmt != "" {
		format = f.logFmt
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, &usageError{fmt.Sprintf("log level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	default:
		return nil, &usageError{fmt.Sprintf("log format %q: want text or json", format)}
	}
}

// newClient builds the mlop client from the configuration; the hooks may be
// nil.
func newClient(cfg *config.Config, log *slog.Logger, onRequest func(string, int, int, time.Duration), onRetry func(string, int, error), buffered func() int64) (*mlop.Client, error) {
	s := cfg.Server
	return mlop.New(mlop.Options{
		APIURL: s.URLAPI, IngestURL: s.URLIngest, PyURL: s.URLPy,
		APIKey: s.APIKey.Reveal(), Project: cfg.Project,
		Version: version, Timeout: time.Duration(s.Timeout),
		InitialBackoff: time.Duration(s.Retry.InitialBackoff), MaxBackoff: time.Duration(s.Retry.MaxBackoff),
		MaxAttempts: s.Retry.MaxAttempts, CAFile: s.TLS.CAFile, InsecureSkipVerify: s.TLS.InsecureSkipVerify,
		MaxConnsPerHost: max(64, s.MaxInFlight*2), Logger: log.With("component", "mlop"),
		OnRequest: onRequest, OnRetry: onRetry, Buffered: buffered,
	})
}

// agentFlags are the flags of run and backfill beyond the common ones.
type agentFlags struct {
	commonFlags
	dryRun       bool
	exitWhenDone bool
	pid          int
	sentinel     string
	noProgress   bool
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", "Follow the configured files and ship new data to mlop until SIGINT or SIGTERM,\n"+
		"then deliver what is buffered (within shutdown_timeout) and exit. A second signal\n"+
		"stops at once; nothing is lost either way: the next start resumes where the server\n"+
		"acknowledged. SIGHUP re-reads the configuration (an invalid one is refused and the\n"+
		"old one keeps running).\n\n"+
		"As a sidecar, --exit-when-done with --pid or --sentinel reads everything to the end,\n"+
		"delivers it, marks the runs finished and exits 0 once the training process is gone\n"+
		"or the sentinel file exists.\n\n"+formatsLine(),
		"mlop-agent run -c agent.yaml\n  mlop-agent run -c agent.yaml --exit-when-done --sentinel /logs/.done", stderr)
	var f agentFlags
	f.register(fs)
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the requests that would be sent as JSON lines on stdout; send nothing, move no checkpoint")
	fs.BoolVar(&f.exitWhenDone, "exit-when-done", false, "sidecar mode: finish and exit when the process of --pid is gone or --sentinel exists")
	fs.IntVar(&f.pid, "pid", 0, "with --exit-when-done: the training process to watch")
	fs.StringVar(&f.sentinel, "sentinel", "", "with --exit-when-done: a file whose appearance means the training is done")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if f.exitWhenDone && f.pid == 0 && f.sentinel == "" {
		return &usageError{"--exit-when-done needs --pid or --sentinel"}
	}
	if !f.exitWhenDone && (f.pid != 0 || f.sentinel != "") {
		return &usageError{"--pid and --sentinel only make sense with --exit-when-done"}
	}
	return runAgent(ctx, f, true, stdout, stderr)
}

func cmdBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backfill", "Ship everything in the configured files to mlop, mark the runs finished and exit.\n"+
		"Resumable: a second backfill over unchanged files sends nothing. Exit code 3 if the\n"+
		"server rejected any data (see the summary and dead_letter.path), 4 if interrupted.\n\n"+formatsLine(),
		"mlop-agent backfill -c agent.yaml\n  mlop-agent backfill -c agent.yaml --dry-run | head", stderr)
	var f agentFlags
	f.register(fs)
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the requests that would be sent as JSON lines on stdout; send nothing, move no checkpoint")
	fs.BoolVar(&f.noProgress, "no-progress", false, "no progress reports (on a terminal a line rewritten every second, otherwise an INFO line every 10s)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return runAgent(ctx, f, false, stdout, stderr)
}

// runAgent runs the agent until it is done (backfill), stopped, or finished
// (sidecar). In follow mode SIGHUP reloads the configuration: the running
// agent stops reading, delivers what it holds and saves its checkpoint; a
// new one starts from that checkpoint with the new configuration, so
// unchanged sources continue exactly where they were.
func runAgent(ctx context.Context, f agentFlags, follow bool, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, f.commonFlags, stderr)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	startPprof(log)
	if !f.dryRun {
		if err := cfg.Server.RequireAPIKey(); err != nil {
			return fmt.Errorf("%w: %v", errConfig, err)
		}
	}
	var names []string
	for _, s := range cfg.Sources {
		names = append(names, s.Name)
	}
	tel := telemetry.New(telemetry.Options{Version: version, Sources: names, Logger: log})
	var current atomic.Pointer[agent.Agent]
	ready := telemetry.NewReadyTracker(telemetry.ReadyOptions{OldestUnacked: func() time.Time {
		if a := current.Load(); a != nil {
			return a.OldestUnacked()
		}
		return time.Time{}
	}})
	if cfg.HTTP.Listen != "" && !f.dryRun {
		srv, err := tel.Listen(cfg.HTTP.Listen, telemetry.Hooks{
			Ready: ready.Ready,
			Flush: func(ctx context.Context) error {
				if a := current.Load(); a != nil {
					return a.Flush(ctx)
				}
				return nil
			},
		})
		if err != nil {
			return fmt.Errorf("%w: http.listen %s: %v", errConfig, cfg.HTTP.Listen, err)
		}
		defer srv.Close()
		log.Info("serving /metrics, /healthz, /readyz and POST /flush", "addr", srv.Addr())
	}
	abortHook = func() {
		if a := current.Load(); a != nil {
			a.Abort()
		}
	}
	var hup chan os.Signal
	if follow && !f.dryRun {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	start := time.Now()
	for {
		var client sink.Sink
		var closeClient func()
		if f.dryRun {
			client, closeClient = newDrySink(stdout), func() {}
		} else {
			onReq, onRetry := clientHooks(tel, ready)
			c, err := newClient(cfg, log, onReq, onRetry, func() int64 {
				if a := current.Load(); a != nil {
					return a.BufferedBytes()
				}
				return 0
			})
			if err != nil {
				return fmt.Errorf("%w: %v", errConfig, err)
			}
			client, closeClient = mlop.NewSink(c), c.Close
		}
		opts := agent.FromConfig(cfg, follow, log)
		opts.DryRun = f.dryRun
		opts.Telemetry = tel
		opts.OnStateLoaded = ready.StateLoaded
		if !follow && !f.noProgress {
			opts.Progress, opts.ProgressTTY = stderr, isTerminal(stderr)
		}
		if follow {
			opts.OnReady = func() { log.Info("ready: watching every source", "sources", len(cfg.Sources)) }
		}
		a, err := agent.New(opts, client)
		if err != nil {
			closeClient()
			return err
		}
		current.Store(a)
		mode := map[bool]string{true: "run", false: "backfill"}[follow]
		log.Info("mlop-agent starting", "version", version, "mode", mode, "dry_run", f.dryRun,
			"sources", strings.Join(sourceList(cfg), ","), "server", cfg.Server.URLAPI, "project", cfg.Project,
			"state_dir", cfg.StateDir)
		runCtx, stopRun := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(runCtx) }()
		var stopWatch func()
		var finishedWhy func() string
		if f.exitWhenDone {
			stopWatch, finishedWhy = watchDone(f, a, log)
		}
		var newCfg *config.Config
	wait:
		for {
			select {
			case err = <-done:
				break wait
			case <-hup:
				c, lerr := loadConfig(f.config)
				if lerr != nil {
					log.Error("reload refused: the new configuration is invalid; the running one stays", "error", lerr)
					continue
				}
				log.Info("reloading the configuration")
				newCfg = c
				stopRun()
				err = <-done
				break wait
			}
		}
		stopRun()
		if stopWatch != nil {
			stopWatch()
		}
		closeClient()
		if newCfg != nil && ctx.Err() == nil && (err == nil || errors.Is(err, agent.ErrIncomplete)) {
			for _, w := range newCfg.Warnings {
				log.Warn("config: " + w)
			}
			cfg = newCfg
			continue
		}
		why := ""
		switch {
		case finishedWhy != nil && finishedWhy() != "":
			why = finishedWhy()
		case context.Cause(ctx) != nil && ctx.Err() != nil:
			why = context.Cause(ctx).Error()
		case err != nil:
			why = "an error (above)"
		}
		return finishReport(a, err, cfg, follow, start, log, stderr, why)
	}
}

func sourceList(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.Sources {
		out = append(out, s.Name+"("+s.Format+")")
	}
	return out
}

// finishReport logs the summary (a backfill, an import) or the closing line
// (run: what was delivered and why it stopped) and turns the agent's error
// into the command's.
func finishReport(a *agent.Agent, err error, cfg *config.Config, follow bool, start time.Time, log *slog.Logger, stderr io.Writer, why string) error {
	st := a.Stats()
	if errors.Is(err, sink.ErrUnauthorized) {
		return fmt.Errorf("%v\nThe API key from %s was refused; check it (it is not printed here)", err, cfg.Server.APIKeySource())
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	if follow {
		msg := "stopped: everything read was delivered"
		switch {
		case errors.Is(err, agent.ErrIncomplete):
			msg = "stopped: some data read was not delivered; the next start sends it"
		case err != nil:
			msg = "stopped on an error"
		}
		log.Info(msg, "reason", why, "elapsed", elapsed, "points_sent", st.PointsSent.Load(),
			"rows_sent", st.LinesSent[sink.Data].Load()+st.LinesSent[sink.Logs].Load(), "files_sent", st.LinesSent[sink.Files].Load(),
			"runs", st.RunsCreated.Load()+st.RunsResumed.Load(), "records_read", st.RecordsRead.Load(), "records_bad", st.RecordsBad.Load(),
			"lines_rejected", st.LinesRejected.Load())
	} else {
		log.Info("summary", "elapsed", elapsed, "detail", a.Report().Summary)
	}
	for _, r := range st.Rejected() {
		log.Error("rejected", "what", r)
	}
	if errors.Is(err, agent.ErrRejected) && cfg.DeadLetter.Path != "" {
		fmt.Fprintf(stderr, "rejected lines were written to %s\n", cfg.DeadLetter.Path)
	}
	return err
}

// watchDone finishes the agent when the watched process is gone or the
// sentinel file appears. It returns a function that stops watching.
// The second function says why it finished ("" while it has not).
func watchDone(f agentFlags, a *agent.Agent, log *slog.Logger) (stopWatching func(), why func() string) {
	stop := make(chan struct{})
	var reason atomic.Value // string
	reason.Store("")
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if f.pid != 0 && !processAlive(f.pid) {
				log.Info("the training process is gone; delivering everything and finishing", "pid", f.pid)
				reason.Store(fmt.Sprintf("the training process %d is gone", f.pid))
				a.Finish()
				return
			}
			if f.sentinel != "" {
				if _, err := os.Stat(f.sentinel); err == nil {
					log.Info("sentinel file found; delivering everything and finishing", "sentinel", f.sentinel)
					reason.Store("sentinel file " + f.sentinel + " found")
					a.Finish()
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop) }) }, func() string { return reason.Load().(string) }
}

// processAlive reports whether pid exists (signal 0 checks without
// sending).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
