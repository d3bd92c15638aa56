// Command demo is what `make demo` runs: it starts the mlop stand-in
// (internal/mlopfake, a test double of the mlop server) on loopback, runs
// the built mlop-agent binary over testdata/demo with `backfill`, and prints
// the runs, metrics and point counts the stand-in received, then what to try
// next. The agent's state stays in -state for `mlop-agent status`.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// stateMarker marks a state directory the demo made, so a re-run may remove
// it (a new stand-in knows none of the old run ids) and never removes
// anything else.
const stateMarker = ".mlop-agent-demo"

func main() {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: demo [flags]

Starts the mlop stand-in on loopback, backfills the demo directory with the
given mlop-agent binary and prints what the stand-in received.

Example:
  go run ./internal/tools/demo -agent bin/mlop-agent -dir testdata/demo -state demo-out/state

Flags:
`)
		fs.PrintDefaults()
	}
	bin := fs.String("agent", "bin/mlop-agent", "the mlop-agent binary")
	dir := fs.String("dir", "testdata/demo", "the demo directory (agent.yaml and runs/)")
	state := fs.String("state", "demo-out/state", "the agent's state directory; replaced on every run if the demo made it")
	fs.Parse(os.Args[1:])
	if err := run(os.Stdout, *bin, *dir, *state); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run does the demo, writing everything (the agent's log too) to w.
func run(w io.Writer, bin, dir, state string) error {
	stateAbs, err := freshStateDir(state)
	if err != nil {
		return err
	}
	// The stand-in's own run pages go into the run URLs, so the url= in the
	// agent's log is an address that answers (while the stand-in runs).
	srv, err := mlopfake.Start(mlopfake.Options{AppAtStandin: true})
	if err != nil {
		return fmt.Errorf("start the stand-in: %w", err)
	}
	defer srv.Close()
	fmt.Fprintf(w, `Started the mlop stand-in: internal/mlopfake, a strict test double of the mlop server (not
the server), in this process on loopback. It keeps what it receives in memory and stops
when the demo ends.
  api     %s
  ingest  %s
  py      %s
  key     %s

`, srv.APIURL(), srv.IngestURL(), srv.PyURL(), mlopfake.DefaultKey)

	// testdata/demo/agent.yaml takes the URLs, key and state directory from
	// these variables; the command shown is one a user can paste.
	shownState := stateAbs
	if !filepath.IsAbs(state) {
		shownState = "$PWD/" + filepath.ToSlash(filepath.Clean(state))
	}
	cfg := filepath.Join(dir, "agent.yaml")
	fmt.Fprintf(w, "$ DEMO_URL_API=%s DEMO_URL_INGEST=%s \\\n    DEMO_URL_PY=%s DEMO_API_KEY=%s \\\n    DEMO_STATE_DIR=%s \\\n    %s backfill -c %s\n",
		srv.APIURL(), srv.IngestURL(), srv.PyURL(), mlopfake.DefaultKey, shownState, bin, cfg)
	cmd := exec.Command(bin, "backfill", "-c", cfg)
	cmd.Env = append(os.Environ(),
		"DEMO_URL_API="+srv.APIURL(), "DEMO_URL_INGEST="+srv.IngestURL(), "DEMO_URL_PY="+srv.PyURL(),
		"DEMO_API_KEY="+mlopfake.DefaultKey, "DEMO_STATE_DIR="+stateAbs)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mlop-agent: %w", err)
	}

	fmt.Fprintf(w, "\nWhat the stand-in received (RUN ID is the run_id= of the log above; DISPLAY ID is\nthe id a real server's web app shows):\n\n")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tRUN ID\tDISPLAY ID\tSTATUS\tMETRIC\tPOINTS\tSTEPS\tTAGS")
	runs := srv.Runs()
	sort.Slice(runs, func(i, j int) bool { return runs[i].Name < runs[j].Name })
	var notes []string
	for _, r := range runs {
		metrics := srv.Metrics(r.ID)
		names := make([]string, 0, len(metrics))
		for n := range metrics {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			pts := metrics[n]
			name, id, display, status, tags := "", "", "", "", ""
			if i == 0 {
				name, id, display, status, tags = r.Name, fmt.Sprint(r.ID), r.DisplayID, r.Status, strings.Join(r.Tags, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d..%d\t%s\n", name, id, display, status, n, len(pts), pts[0].Step, pts[len(pts)-1].Step, tags)
		}
		notes = append(notes, fmt.Sprintf("%s (run %d): config %s%s", r.Name, r.ID, configJSON(r.ConfigValue), series(srv.Data(r.ID))))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	c := srv.Counters()
	fmt.Fprintf(w, "\n%d requests, %d metric lines, %d points stored, %d rejected by validation.\n",
		c.Requests, c.MetricLines, c.MetricPoints, c.Rejected)
	if c.Rejected > 0 {
		return fmt.Errorf("the stand-in rejected %d requests", c.Rejected)
	}
	fmt.Fprintf(w, `The url= links in the log are the stand-in's run pages (a real server links its web
app there); they stop answering when the demo ends. The agent's state (acknowledged
offsets, run ids) stays in %s until the next make demo.

Next:
  %s status --state-dir %s
      what the agent delivered, per file, read from its state
  make stand-in
      a stand-in that stays up, for an agent.yaml of your own
      (README: "Try it against the bundled stand-in"; a real server: "Quick start")
`, state, bin, state)
	return nil
}

// freshStateDir empties state for a new run and returns its absolute path.
// It removes only a directory the demo made (with stateMarker in it).
func freshStateDir(state string) (string, error) {
	abs, err := filepath.Abs(state)
	if err != nil {
		return "", fmt.Errorf("state directory %s: %w", state, err)
	}
	if _, err := os.Stat(abs); err == nil {
		if _, err := os.Stat(filepath.Join(abs, stateMarker)); err != nil {
			return "", fmt.Errorf("state directory %s exists and was not made by the demo; remove it or pass another -state", state)
		}
		if err := os.RemoveAll(abs); err != nil {
			return "", fmt.Errorf("remove the previous demo state: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("state directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("create state directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(abs, stateMarker), []byte("made by `make demo`; replaced by the next one\n"), 0o600); err != nil {
		return "", fmt.Errorf("mark state directory: %w", err)
	}
	return abs, nil
}

// configJSON prints a run's config as JSON; encoding/json sorts map keys.
func configJSON(v any) string {
	if v == nil {
		return "(none)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(unprintable: %v)", err)
	}
	return string(b)
}

// series describes a run's /ingest/data rows by name, e.g.
// "; string series phase: 10 values".
func series(rows []mlopfake.DataRow) string {
	count := map[string]int{}
	for _, r := range rows {
		count[r.LogName]++
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "; string series %s: %d values", n, count[n])
	}
	return b.String()
}
