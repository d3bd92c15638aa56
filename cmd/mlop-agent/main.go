// Command mlop-agent ships the metric files of training jobs — and Neptune
// data — to an mlop (pluto) server, without changing the training code.
//
// Usage: mlop-agent <command> [flags]; mlop-agent help for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/verify"
)

// version is stamped by the build: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK         = 0
	exitError      = 1 // the agent failed
	exitUsage      = 2 // bad flags or configuration
	exitRejected   = 3 // a backfill finished but the server rejected some data or some inputs could not be read; verify found differences
	exitIncomplete = 4 // stopped before everything was delivered (it resumes next time)
)

// usageError is a problem with how the command was called; main prints it
// with a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands []command

func init() {
	commands = []command{
		{"run", "follow the configured files and ship new data until stopped", cmdRun},
		{"backfill", "ship everything in the configured files, finish the runs, exit", cmdBackfill},
		{"import", "load TensorBoard logs, Neptune offline data or a neptune-exporter export, resumably", cmdImport},
		{"verify", "prove a migration complete: compare the source with what the server holds (read-only)", cmdVerify},
		{"check", "validate the configuration (and the server and key, unless --offline)", cmdCheck},
		{"status", "show what has been delivered, per file, from the state directory", cmdStatus},
		{"completion", "print a shell completion script (bash, zsh or fish)", cmdCompletion},
		{"version", "print the version", cmdVersion},
	}
}

func main() {
	// Signals first: from here on a SIGTERM stops the command cleanly
	// (exit 0, or 4 with data left unsent), never the Go runtime's default.
	ctx, stop := signalContext()
	if f := os.Getenv("MLOP_AGENT_TEST_STARTED"); f != "" {
		// A test seam: tests signal the process from this moment on.
		os.WriteFile(f, nil, 0o600)
	}
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, "mlop-agent %s — ship training metrics and Neptune data to mlop, no code changes\n\n", version)
	fmt.Fprintf(w, "Usage:\n  mlop-agent <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nExamples:\n  mlop-agent check -c agent.yaml\n  mlop-agent run -c agent.yaml\n  mlop-agent backfill -c agent.yaml\n  mlop-agent verify neptune ./.neptune --project vision   # before you delete the source\n\nRun 'mlop-agent <command> -h' for a command's flags.\n")
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		topUsage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "-v" || args[0] == "--version" {
		args[0] = "version"
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "mlop-agent: unknown command %q\nRun 'mlop-agent help' for the commands.\n", args[0])
		return exitUsage
	}

	err := cmd.run(ctx, args[1:], stdout, stderr)
	return exitCode(err, cmd.name, stderr)
}

// exitCode maps a command's error to the process exit code, printing it.
func exitCode(err error, name string, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mlop-agent %s: %v\nRun 'mlop-agent %s -h' for help.\n", name, err, name)
		return exitUsage
	case errors.Is(err, errConfig):
		fmt.Fprintf(stderr, "%v\n", err)
		return exitUsage
	case errors.Is(err, agent.ErrRejected), errors.Is(err, agent.ErrFailed), errors.Is(err, verify.ErrMismatch):
		fmt.Fprintf(stderr, "mlop-agent %s: %v\n", name, err)
		return exitRejected
	case errors.Is(err, agent.ErrIncomplete):
		fmt.Fprintf(stderr, "mlop-agent %s: %v; run it again to continue where it stopped\n", name, err)
		return exitIncomplete
	default:
		fmt.Fprintf(stderr, "mlop-agent %s: %v\n", name, err)
		return exitError
	}
}

// abortHook lets the second signal reach the running agent.
var abortHook = func() {}

// signalContext ends the context at the first SIGINT/SIGTERM; a second
// signal calls abortHook (the agent stops draining at once).
// Its cause (context.Cause) names the signal, for the closing line.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case sig := <-ch:
				n++
				if n == 1 {
					cancel(fmt.Errorf("received %s", signalName(sig)))
				} else {
					abortHook()
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// signalName is SIGTERM, SIGINT.
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return sig.String()
}

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "Print the version.", "mlop-agent version", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mlop-agent %s\n", version)
	return nil
}

// newFlagSet makes a command's flag set. Its usage text, shown by -h (and
// parseFlags), names every flag as the README does (-c, --config FILE) and
// ends with an example; a bad flag is one line and a hint, never the whole
// text (main prints it, exit code 2).
func newFlagSet(name, about, example string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are returned, and printed once by main
	fs.Usage = func() {}
	usages.Store(fs, func() {
		fmt.Fprintf(stderr, "Usage: mlop-agent %s [flags]\n\n%s\n\nFlags:\n", name, about)
		printFlags(stderr, fs)
		fmt.Fprintf(stderr, "\nExample:\n  %s\n", example)
	})
	return fs
}

// usages holds each flag set's -h text printer.
var usages sync.Map // *flag.FlagSet -> func()

// parseFlags parses args: -h prints the usage text (flag.ErrHelp, exit
// 0); any other problem is a usage error (exit 2) with the flag package's
// one-line message.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if u, ok := usages.Load(fs); ok {
			u.(func())()
		}
		return err
	default:
		return &usageError{err.Error()}
	}
}

// flagAliases are long names that mean the same as a short one.
var flagAliases = map[string]string{"config": "c"}

// printFlags writes a flag set's flags, a short name and its long alias on
// one line (-c, --config FILE), long names with two dashes.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	long := map[string]string{} // short -> long
	for l, sh := range flagAliases {
		if fs.Lookup(l) != nil && fs.Lookup(sh) != nil {
			long[sh] = l
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if sh, ok := flagAliases[f.Name]; ok && fs.Lookup(sh) != nil {
			return // printed with its short name
		}
		arg, usage := flag.UnquoteUsage(f)
		names := dashed(f.Name)
		if l, ok := long[f.Name]; ok {
			names += ", " + dashed(l)
		}
		if arg != "" {
			names += " " + strings.ToUpper(arg)
		}
		fmt.Fprintf(w, "  %s\n    \t%s", names, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
