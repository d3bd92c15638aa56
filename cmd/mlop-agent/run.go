package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/sink/mlop"

	// Formats register themselves.
	_ "github.com/mlop-ai/mlop-agent/parsers/csv"
	_ "github.com/mlop-ai/mlop-agent/parsers/hftrainer"
	_ "github.com/mlop-ai/mlop-agent/parsers/jsonl"
	_ "github.com/mlop-ai/mlop-agent/parsers/mlflow"
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
	fs.StringVar(&c.config, "c", "", "configuration file (YAML); required")
	fs.StringVar(&c.config, "config", "", "same as -c")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error (overrides log.level and MLOP_AGENT_LOG_LEVEL)")
	fs.StringVar(&c.logFmt, "log-format", "", "text or json (overrides log.format)")
}

// loadConfig loads and validates the configuration, formatting every
// problem.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, &usageError{"no configuration file: pass -c FILE"}
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

// newClient builds the mlop client from the configuration.
func newClient(cfg *config.Config, log *slog.Logger) (*mlop.Client, error) {
	s := cfg.Server
	return mlop.New(mlop.Options{
		APIURL: s.URLAPI, IngestURL: s.URLIngest, PyURL: s.URLPy,
		APIKey: s.APIKey.Reveal(), Project: cfg.Project,
		Version: version, Timeout: time.Duration(s.Timeout),
		InitialBackoff: time.Duration(s.Retry.InitialBackoff), MaxBackoff: time.Duration(s.Retry.MaxBackoff),
		MaxAttempts: s.Retry.MaxAttempts, CAFile: s.TLS.CAFile, InsecureSkipVerify: s.TLS.InsecureSkipVerify,
		MaxConnsPerHost: max(64, s.MaxInFlight*2), Logger: log.With("component", "mlop"),
	})
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", "Follow the configured files and ship new data to mlop until SIGINT or SIGTERM,\n"+
		"then deliver what is buffered (within shutdown_timeout) and exit. A second signal\n"+
		"stops at once; nothing is lost either way: the next start resumes where the server\n"+
		"acknowledged.", "mlop-agent run -c agent.yaml", stderr)
	var cf commonFlags
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runAgent(ctx, cf, true, stderr)
}

func cmdBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backfill", "Ship everything in the configured files to mlop, mark the runs finished and exit.\n"+
		"Resumable: a second backfill over unchanged files sends nothing. Exit code 3 if the\n"+
		"server rejected any data (see the summary and dead_letter.path), 4 if interrupted.",
		"mlop-agent backfill -c agent.yaml", stderr)
	var cf commonFlags
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runAgent(ctx, cf, false, stderr)
}

func runAgent(ctx context.Context, cf commonFlags, follow bool, stderr io.Writer) error {
	if fs := flag.CommandLine; fs.NArg() > 0 {
		return &usageError{"unexpected arguments"}
	}
	cfg, err := loadConfig(cf.config)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, cf, stderr)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	if err := cfg.Server.RequireAPIKey(); err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	client, err := newClient(cfg, log)
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	defer client.Close()
	opts := agent.FromConfig(cfg, follow, log)
	a, err := agent.New(opts, client)
	if err != nil {
		return err
	}
	abortHook = a.Abort
	mode := "backfill"
	if follow {
		mode = "run"
	}
	var names []string
	for _, s := range cfg.Sources {
		names = append(names, s.Name+"("+s.Format+")")
	}
	log.Info("mlop-agent starting", "version", version, "mode", mode, "sources", strings.Join(names, ","),
		"server", cfg.Server.URLAPI, "project", cfg.Project, "state_dir", cfg.StateDir)
	start := time.Now()
	err = a.Run(ctx)
	st := a.Stats()
	if errors.Is(err, sink.ErrUnauthorized) {
		return fmt.Errorf("%v\nThe API key from %s was refused; check it (it is not printed here)", err, cfg.Server.APIKeySource())
	}
	if !follow || err != nil {
		log.Info("summary", "elapsed", time.Since(start).Round(time.Millisecond), "detail", st.Summary())
		for _, r := range st.Rejected() {
			log.Error("rejected", "what", r)
		}
	}
	if errors.Is(err, agent.ErrRejected) && cfg.DeadLetter.Path != "" {
		fmt.Fprintf(stderr, "rejected lines were written to %s\n", cfg.DeadLetter.Path)
	}
	return err
}

var _ = os.Stdout
