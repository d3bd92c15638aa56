// Command bench is what `make bench` runs: the end-to-end performance
// harness of mlop-agent (issue "Performance").
//
// It builds bin/mlop-agent (or takes -agent), generates each scenario's data
// in a temporary directory (removed at the end), starts a loopback receiver
// in this process — the strict stand-in (internal/mlopfake, a test double of
// the mlop server) or the stand-in in count mode, a minimal receiver that
// only counts NDJSON lines and points, so the receiver is not what is
// measured — runs the agent binary as a subprocess per scenario, times it
// from outside and reads its CPU and memory from the kernel (/proc/<pid>
// every 100 ms, wait4's rusage at exit). It prints one table: scenario,
// figure, value, unit, the target, whether it is met, and the run's
// parameters.
//
// Targets are reported, never asserted: a slow agent does not fail the
// harness. A functional failure does (exit 1): an agent exiting non-zero,
// or a receiver count that differs from what was generated.
//
// Scenarios (-only takes a comma-separated subset):
//
//	backfill  1 M lines x 10 metrics: points/s, peak RSS; count and strict receivers
//	tensorboard  `import tensorboard` of 1 M and 10 M scalar points in 4 runs: points/s, peak RSS
//	scaling   100 K, 1 M, 10 M lines (count): points/s and peak RSS for each
//	manyruns  1,000 files x 1,000 lines backfilled: wall time
//	cardinality  1 M distinct metric names (1,000 runs x 1,000 names), and
//	          20,000 runs in one file by run_field: peak RSS
//	neptune   `import neptune` of 1 M points from a neptune-client queue and
//	          from a neptune-scale DB (n/a when the binary has no import command)
//	live      100 files appended at 1,000 lines/s, `run` mode: latency, CPU
//	idle      10,000 unchanged files: CPU, RSS; then one append's latency
//	verify    `verify -c FILE` of a 10 M-point backfill in the strict stand-in: points/s, peak RSS
//
// Example:
//
//	go run ./internal/tools/bench -quick
//	go run ./internal/tools/bench -agent bin/mlop-agent -only live,idle -out bench-out
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
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	agent  string
	quick  bool
	only   []string
	scale  float64
	out    string
	tmp    string
	keep   bool
	repeat int
}

// scenarioNames lists the scenarios in the order they run.
var scenarioNames = []string{"backfill", "tensorboard", "scaling", "manyruns", "cardinality", "neptune", "live", "idle", "verify"}

// errFunctional marks a run where the agent misbehaved (not a slow one).
var errFunctional = errors.New("functional failure")

const usageText = `bench: end-to-end performance harness of mlop-agent (make bench).

Builds the agent, generates data, runs each scenario against a loopback
receiver (the mlop stand-in, a test double, strict or in count mode) and prints
a table of figures with the issue's targets. Targets are reported, never
asserted; the exit status is 1 only for a functional failure (an agent that
exits non-zero, or a receiver that counted a different number of points).

Usage: go run ./internal/tools/bench [flags]

Scenarios: ` + "backfill, tensorboard, scaling, manyruns, cardinality, neptune, live, idle, verify" + `

Example:
  go run ./internal/tools/bench -quick
  go run ./internal/tools/bench -agent bin/mlop-agent -only backfill,live -out bench-out

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintf(os.Stderr, "bench: %v\nrun 'go run ./internal/tools/bench -h' for the flags\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a bad command line (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	var o options
	var only string
	fs.StringVar(&o.agent, "agent", "", "mlop-agent binary to measure; empty: build ./cmd/mlop-agent into bin/mlop-agent first")
	fs.BoolVar(&o.quick, "quick", false, "reduced sizes and windows (about a minute)")
	fs.StringVar(&only, "only", "", "comma-separated scenarios to run (default all)")
	fs.Float64Var(&o.scale, "scale", 1, "multiply the backfill, scaling and manyruns sizes by this factor (shown in the table)")
	fs.StringVar(&o.out, "out", "", "directory for bench.json, bench.txt and the logs of failed agents")
	fs.StringVar(&o.tmp, "tmp", "", "parent of the temporary data directory (default the system temp dir)")
	fs.BoolVar(&o.keep, "keep", false, "keep the generated data and agent logs (the directory is printed)")
	fs.IntVar(&o.repeat, "repeat", 1, "run each backfill-style measurement this many times and report the fastest (for a busy machine)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usageError{err}
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if o.scale <= 0 || o.scale > 10 {
		return o, usageError{fmt.Errorf("-scale %v: want > 0 and <= 10", o.scale)}
	}
	if o.repeat < 1 {
		return o, usageError{fmt.Errorf("-repeat %d: want >= 1", o.repeat)}
	}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(scenarioNames, s) {
			return o, usageError{fmt.Errorf("-only: unknown scenario %q (want %s)", s, strings.Join(scenarioNames, ", "))}
		}
		o.only = append(o.only, s)
	}
	return o, nil
}

// bench is one harness run. Only the main goroutine touches it.
type bench struct {
	opts  options
	agent string // binary under test
	work  string // temporary data directory
	log   *slog.Logger
	rows  []row
	fails []string
	// files caches generated backfill files by line count, so the scaling
	// scenario reuses the backfill scenario's file.
	files map[int64]string
	pool  *valuePool
	seq   int // numbers agent runs (state dirs, logs)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	started := time.Now()
	loadStart := loadAvg()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "bench")

	bin := opts.agent
	if bin == "" {
		root, err := moduleRoot(ctx)
		if err != nil {
			return err
		}
		bin = filepath.Join(root, "bin", "mlop-agent")
		log.Info("building the agent", "out", bin)
		if err := buildAgent(ctx, root, bin); err != nil {
			return err
		}
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return fmt.Errorf("resolve -agent: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return usageError{fmt.Errorf("-agent: %w", err)}
	}
	work, err := os.MkdirTemp(opts.tmp, "mlop-agent-bench-")
	if err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if opts.keep {
		log.Info("keeping the data directory", "dir", work)
	} else {
		defer os.RemoveAll(work)
	}
	b := &bench{opts: opts, agent: bin, work: work, log: log, files: map[int64]string{}, pool: newValuePool(1)}
	version := agentVersion(ctx, bin)
	log.Info("start", "agent", bin, "version", version, "quick", opts.quick, "scale", opts.scale, "data", work)

	for _, name := range scenarioNames {
		if len(opts.only) > 0 && !slices.Contains(opts.only, name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		t0 := time.Now()
		log.Info("scenario", "name", name, "loadavg", loadAvg())
		if err := b.scenario(ctx, name); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			// A harness problem (data generation, a listener): the scenario
			// has no figures; say so in the table and go on.
			b.fail(name, "", fmt.Sprintf("harness: %v", err))
		}
		log.Info("scenario done", "name", name, "elapsed", time.Since(t0).Round(time.Millisecond))
	}

	fmt.Fprintf(stdout, "\nmlop-agent end-to-end benchmark — %s, %d CPUs (%s), %s; total %s; load average at start %s, at end %s\n",
		version, runtime.NumCPU(), cpuModel(), scaleNote(opts), time.Since(started).Round(time.Second), loadStart, loadAvg())
	fmt.Fprintln(stdout, "Targets are the issue's goals, reported and not asserted. Receivers run in the harness process, on the same cores.")
	fmt.Fprintln(stdout)
	if err := printTable(stdout, b.rows); err != nil {
		return fmt.Errorf("print table: %w", err)
	}
	for _, f := range b.fails {
		fmt.Fprintf(stdout, "\nFAILED %s\n", f)
	}
	if opts.out != "" {
		rep := report{
			Started: started, Seconds: time.Since(started).Seconds(), Agent: bin, Version: version,
			Host: hostInfo{CPUs: runtime.NumCPU(), CPU: cpuModel(), Kernel: kernel(), Go: runtime.Version(),
				LoadStart: loadStart, LoadEnd: loadAvg()},
			Quick: opts.quick, Scale: opts.scale, Rows: b.rows, Failures: append([]string{}, b.fails...),
		}
		if err := writeReport(opts.out, rep); err != nil {
			return err
		}
		log.Info("report written", "dir", opts.out)
	}
	if len(b.fails) > 0 {
		return fmt.Errorf("%w: %d scenario run(s) failed (see above)", errFunctional, len(b.fails))
	}
	return nil
}

func (b *bench) scenario(ctx context.Context, name string) error {
	switch name {
	case "backfill":
		return b.scenarioBackfill(ctx)
	case "tensorboard":
		return b.scenarioTensorBoard(ctx)
	case "scaling":
		return b.scenarioScaling(ctx)
	case "manyruns":
		return b.scenarioManyRuns(ctx)
	case "cardinality":
		return b.scenarioCardinality(ctx)
	case "neptune":
		return b.scenarioNeptune(ctx)
	case "live":
		return b.scenarioLive(ctx)
	case "idle":
		return b.scenarioIdle(ctx)
	case "verify":
		return b.scenarioVerify(ctx)
	}
	return fmt.Errorf("unknown scenario %q", name)
}

// add appends a row to the table.
func (b *bench) add(r row) { b.rows = append(b.rows, r) }

// fail records a functional failure of a scenario run: a FAILED row and a
// message (with the agent's log tail) printed under the table.
func (b *bench) fail(scenario, figure, msg string) {
	short := msg
	if i := strings.IndexByte(short, '\n'); i >= 0 {
		short = short[:i]
	}
	b.add(row{Scenario: scenario, Figure: figure, NA: "FAILED", Params: params{Note: short}})
	b.fails = append(b.fails, scenario+": "+msg)
	b.log.Error("scenario failed", "scenario", scenario, "detail", short)
}

// failAgent records a failure with the agent's log, copying the whole log
// to -out when given.
func (b *bench) failAgent(scenario, figure, msg string, p *agentProc) {
	if b.opts.out != "" {
		if err := os.MkdirAll(b.opts.out, 0o755); err == nil {
			if data, err := os.ReadFile(p.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(b.opts.out, filepath.Base(p.logPath)), data, 0o644)
			}
		}
	}
	b.fail(scenario, figure, msg+"\nagent log (last 40 lines of "+filepath.Base(p.logPath)+"):\n"+p.logTail(40))
}

// nextRun returns fresh paths for one agent run: a state directory, a log
// and a config file.
func (b *bench) nextRun(name string) (stateDir, logPath, cfgPath string) {
	b.seq++
	base := fmt.Sprintf("%02d-%s", b.seq, name)
	return filepath.Join(b.work, "state", base), filepath.Join(b.work, "logs", base+".log"), filepath.Join(b.work, "config", base+".yaml")
}

// scaled multiplies a size by -scale (and by quickFactor with -quick).
func (b *bench) scaled(n int64, quickFactor float64) int64 {
	f := b.opts.scale
	if b.opts.quick {
		f *= quickFactor
	}
	return max(1, int64(float64(n)*f+0.5))
}

func scaleNote(o options) string {
	var parts []string
	if o.quick {
		parts = append(parts, "-quick (reduced sizes and windows)")
	} else {
		parts = append(parts, "full run")
	}
	if o.scale != 1 {
		parts = append(parts, fmt.Sprintf("-scale %g (sizes multiplied)", o.scale))
	}
	return strings.Join(parts, ", ")
}

func writeReport(dir string, rep report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	var sb strings.Builder
	if err := printTable(&sb, rep.Rows); err != nil {
		return fmt.Errorf("print table: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.txt"), []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", usageError{errors.New("not inside the mlop-agent module; run from the repository or pass -agent")}
	}
	return filepath.Dir(mod), nil
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return runtime.GOOS + " " + strings.TrimSpace(string(b))
}

// loadAvg is the 1-, 5- and 15-minute load average: the figures are only
// as good as the machine was quiet (other builds and tests share the
// cores).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
