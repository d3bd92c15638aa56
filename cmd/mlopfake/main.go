// Command mlopfake runs the strict mlop/pluto stand-in server. It is a TEST
// DOUBLE, not the mlop server: it serves the backend (api), ingest, py and S3
// endpoints of the real server on separate loopback listeners, validates
// requests like the real services, stores what they would store in memory,
// and lets people and tests inspect it under /_standin/ on the api listener.
// See package internal/mlopfake for the behaviour it reproduces.
//
// Example (a self-hosted server's ports on loopback, key mlpi_testkey; it
// prints a server: block for agent.yaml):
//
//	mlopfake
//	mlop-agent backfill -c agent.yaml             # in another shell
//	curl -s http://127.0.0.1:3001/_standin/summary
//
// For tests (free ports, a ready file, faults):
//
//	mlopfake -api 127.0.0.1:0 -ingest 127.0.0.1:0 -py 127.0.0.1:0 -s3 127.0.0.1:0 \
//	    -ready-file /tmp/mlopfake.json -summary-on-exit -fail-rate 0.1 -seed 7
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
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "mlopfake: %v\nrun 'mlopfake -h' for the flags\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "mlopfake: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a bad command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

const usageText = `mlopfake: a strict stand-in for the mlop/pluto server, for tests and trials.
This is a TEST DOUBLE, not the mlop server: it keeps everything in memory.

It serves the real topology on separate listeners (each answers only its own
routes): the backend (-api, the agent's url_api), the ingest (-ingest,
url_ingest), the py service (-py, url_py) and S3 for presigned uploads (-s3).
By default it listens on 127.0.0.1 at a self-hosted server's ports (api 3001,
ingest 3003, py 3004; S3 3005) and accepts the key ` + mlopfake.DefaultKey + `. Once
listening it prints, on stderr, the URLs, the key and a server: block to
paste into agent.yaml.

Inspection and control live under /_standin/ on the api listener (not part of
the mlop API): GET /_standin/summary (every run with its metrics and point
counts), /_standin/runs, /_standin/metrics?runId=N, POST /_standin/faults,
/_standin/outage, /_standin/keys, /_standin/cancel, and /_standin/alter
(deliberate damage to stored data, for verification tests); GET /_standin/
lists them all. The run URLs it returns have the real server's path under
-app-url; by default that is the stand-in's own /_standin/app, which answers
each run URL with the run's summary (a real server links its web app there).
The read API (GET /api/runs/list, details/{id}, metrics/raw, ...) answers
from the same store the write endpoints fill.

Usage: mlopfake [flags]

Example:
  mlopfake                                   # api :3001, ingest :3003, py :3004, S3 :3005
  mlop-agent backfill -c agent.yaml          # in another shell, with the printed server: block
  curl -s http://127.0.0.1:3001/_standin/summary

For tests (free ports, the URLs in a JSON file, faults):
  mlopfake -api 127.0.0.1:0 -ingest 127.0.0.1:0 -py 127.0.0.1:0 -s3 127.0.0.1:0 \
      -ready-file /tmp/mlopfake.json -summary-on-exit -fail-rate 0.1 -seed 7

Flags:
`

// ready is the JSON written to -ready-file once every listener is up.
type ready struct {
	API    string        `json:"api"`
	Ingest string        `json:"ingest"`
	Py     string        `json:"py"`
	S3     string        `json:"s3"`
	Mode   mlopfake.Mode `json:"mode"`
	Keys   []string      `json:"keys"`
	PID    int           `json:"pid"`
}

// run parses args, serves until ctx is done and returns. It owns every
// goroutine it starts.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mlopfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	var (
		keys, foreignKeys                            listFlag
		apiAddr, ingestAddr, pyAddr, s3Addr          string
		mode, readyFile, org, appURL, logLevel       string
		faultServices, outageServices                string
		failRate, acceptThenFailRate                 float64
		seed, firstRunID                             int64
		latency, outageAfter, outageFor, outageEvery time.Duration
		reapEvery                                    time.Duration
		summaryOnExit                                bool
	)
	fs.StringVar(&apiAddr, "api", "127.0.0.1:3001", "backend (url_api) listen address; port 0 picks a free port")
	fs.StringVar(&ingestAddr, "ingest", "127.0.0.1:3003", "ingest (url_ingest) listen address")
	fs.StringVar(&pyAddr, "py", "127.0.0.1:3004", "py service (url_py) listen address")
	fs.StringVar(&s3Addr, "s3", "127.0.0.1:3005", "S3 listen address used in presigned URLs")
	fs.Var(&keys, "key", "accepted API key, mlpi_... or mlps_... (repeatable; default "+mlopfake.DefaultKey+")")
	fs.Var(&foreignKeys, "foreign-key", "API key of a second organisation, to test cross-organisation 404s (repeatable)")
	fs.StringVar(&org, "org", "test-org", "organisation slug")
	fs.StringVar(&appURL, "app-url", "", "web app base URL put in run URLs, as a real server's BETTER_AUTH_URL (e.g. http://127.0.0.1:3000);\ndefault: the stand-in's own run pages, <api>/_standin/app")
	fs.Int64Var(&firstRunID, "first-run-id", 1001, "id of the first created run")
	fs.StringVar(&mode, "mode", "strict", "strict: validate and store like the real server; count: minimal receiver that only counts lines and points")
	fs.Float64Var(&failRate, "fail-rate", 0, "probability a request is answered 500, 503 or 429 (Retry-After: 1) without processing")
	fs.Float64Var(&acceptThenFailRate, "accept-then-fail-rate", 0, "probability a request is processed and stored, then answered 500")
	fs.DurationVar(&latency, "latency", 0, "latency added to every faulted-service request")
	fs.Int64Var(&seed, "seed", 0, "fault decision seed (same seed + same request order = same faults)")
	fs.StringVar(&faultServices, "fault-services", "", "comma-separated listeners the faults apply to (api,ingest,py,s3; default all)")
	fs.DurationVar(&outageAfter, "outage-after", 0, "start an outage (listeners closed, connections refused) this long after start; 0 = none")
	fs.DurationVar(&outageFor, "outage-for", 5*time.Second, "length of each outage")
	fs.DurationVar(&outageEvery, "outage-every", 0, "repeat the outage with this period (0 = once)")
	fs.StringVar(&outageServices, "outage-services", "", "comma-separated listeners taken down by the outage (default all)")
	fs.DurationVar(&reapEvery, "reap-every", 0, "run the py service's stale-run reaper at this interval (the real one: 60s); 0 = off")
	fs.StringVar(&readyFile, "ready-file", "", "write the listener URLs as JSON to this file once listening")
	fs.BoolVar(&summaryOnExit, "summary-on-exit", false, "print the /_standin/summary JSON to stdout on SIGINT/SIGTERM")
	fs.StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return usageError{fmt.Errorf("-log-level %q: %w", logLevel, err)}
	}
	fsvcs, err := parseServices(faultServices)
	if err != nil {
		return usageError{fmt.Errorf("-fault-services: %w", err)}
	}
	osvcs, err := parseServices(outageServices)
	if err != nil {
		return usageError{fmt.Errorf("-outage-services: %w", err)}
	}
	if mode != string(mlopfake.ModeStrict) && mode != string(mlopfake.ModeCount) {
		return usageError{fmt.Errorf("-mode %q: want strict or count", mode)}
	}
	if outageAfter > 0 && outageFor <= 0 {
		return usageError{errors.New("-outage-for must be > 0")}
	}
	if outageEvery > 0 && outageEvery <= outageFor {
		return usageError{errors.New("-outage-every must be longer than -outage-for")}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("component", "mlopfake")
	s, err := mlopfake.Start(mlopfake.Options{
		APIAddr: apiAddr, IngestAddr: ingestAddr, PyAddr: pyAddr, S3Addr: s3Addr,
		Keys: keys, ForeignKeys: foreignKeys, OrgSlug: org, AppURL: appURL, AppAtStandin: appURL == "", FirstRunID: firstRunID,
		Mode: mlopfake.Mode(mode), Logger: log, ReapInterval: reapEvery,
		Faults: mlopfake.Faults{FailRate: failRate, AcceptThenFailRate: acceptThenFailRate, Latency: latency, Seed: seed, Services: fsvcs},
	})
	if err != nil {
		if errors.Is(err, mlopfake.ErrBadKey) {
			return usageError{err}
		}
		return fmt.Errorf("start: %w", err)
	}
	defer s.Close()

	k := []string(keys)
	if len(k) == 0 {
		k = []string{mlopfake.DefaultKey}
	}
	if readyFile != "" {
		r := ready{API: s.APIURL(), Ingest: s.IngestURL(), Py: s.PyURL(), S3: s.S3URL(), Mode: s.Mode(), Keys: k, PID: os.Getpid()}
		if err := writeFileAtomic(readyFile, r); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}

	printReady(stderr, s, k, appURL == "")

	var wg sync.WaitGroup
	if outageAfter > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scheduleOutages(ctx, s, outageAfter, outageFor, outageEvery, osvcs)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	if summaryOnExit {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s.Summary()); err != nil {
			return fmt.Errorf("print summary: %w", err)
		}
	}
	return nil
}

// readyLine starts what printReady writes, so a script (or a test) can wait
// for it.
const readyLine = "mlopfake ready"

// printReady tells a person at a terminal what they started and how to use
// it. The keys are made-up test keys, not secrets.
func printReady(w io.Writer, s *mlopfake.Server, keys []string, appAtStandin bool) {
	api := s.APIURL()
	fmt.Fprintf(w, "%s: api %s  ingest %s  py %s  key %s\n", readyLine, api, s.IngestURL(), s.PyURL(), strings.Join(keys, ","))
	fmt.Fprintf(w, `This is a test double of the mlop server (it validates like the real one), not the server;
it keeps what it receives in memory until it stops (Ctrl-C). For agent.yaml:

server:
  url_api: %s
  url_ingest: %s
  url_py: %s
  api_key: %s  # a test key; chmod 600 agent.yaml or the agent warns

What arrived: curl -s %s/_standin/summary  (per run: metrics, point counts; all endpoints: %s/_standin/)
Run URLs: %s/o/...; %s

`, api, s.IngestURL(), s.PyURL(), keys[0], api, api, s.AppURL(), runURLNote(s, appAtStandin))
}

// runURLNote says what the run URLs in the agent's log lead to.
func runURLNote(s *mlopfake.Server, appAtStandin bool) string {
	switch {
	case !appAtStandin:
		return "the -app-url given; the stand-in does not serve it."
	case s.Mode() == mlopfake.ModeCount:
		return "count mode stores no runs, so they answer 404."
	default:
		return "each answers with its run's summary (a real server links its web app there)."
	}
}

// scheduleOutages takes svcs down for length after first, then every period
// (once when period is 0), until ctx is done.
func scheduleOutages(ctx context.Context, s *mlopfake.Server, first, length, period time.Duration, svcs []mlopfake.Service) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.DownFor(length, svcs...)
		if period <= 0 {
			return
		}
		t.Reset(period)
	}
}

func parseServices(list string) ([]mlopfake.Service, error) {
	var out []mlopfake.Service
	for _, part := range strings.Split(list, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		svc, err := mlopfake.ParseService(part)
		if err != nil {
			return nil, err
		}
		out = append(out, svc)
	}
	return out, nil
}

// writeFileAtomic writes v as JSON via a temp file and rename, so a script
// polling for the file never reads it half-written.
func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mlopfake-ready-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
