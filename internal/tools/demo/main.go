// Command demo is what `make demo` runs: it starts the mlop stand-in
// (internal/mlopfake, a test double of the mlop server) on loopback, runs
// the built mlop-agent binary over testdata/demo with `backfill`, and prints
// the runs, metrics and point counts the stand-in received.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

func main() {
	bin := flag.String("agent", "bin/mlop-agent", "the mlop-agent binary")
	dir := flag.String("dir", "testdata/demo", "the demo directory (agent.yaml and runs/)")
	flag.Parse()
	if err := run(*bin, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(bin, dir string) error {
	srv, err := mlopfake.Start(mlopfake.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	state, err := os.MkdirTemp("", "mlop-agent-demo-state")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	fmt.Printf("mlop stand-in (a test double of the mlop server) listening:\n  api %s\n  ingest %s\n  py %s\n\n",
		srv.APIURL(), srv.IngestURL(), srv.PyURL())

	cfg := filepath.Join(dir, "agent.yaml")
	fmt.Printf("$ %s backfill -c %s\n", bin, cfg)
	cmd := exec.Command(bin, "backfill", "-c", cfg)
	cmd.Env = append(os.Environ(),
		"DEMO_URL_API="+srv.APIURL(), "DEMO_URL_INGEST="+srv.IngestURL(), "DEMO_URL_PY="+srv.PyURL(),
		"DEMO_API_KEY="+mlopfake.DefaultKey, "DEMO_STATE_DIR="+state)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mlop-agent: %w", err)
	}

	fmt.Printf("\nWhat the stand-in received:\n\n")
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tID\tSTATUS\tMETRIC\tPOINTS\tSTEPS\tTAGS")
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
			run, id, status, tags := "", "", "", ""
			if i == 0 {
				run, id, status, tags = r.Name, r.DisplayID, r.Status, strings.Join(r.Tags, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d..%d\t%s\n", run, id, status, n, len(pts), pts[0].Step, pts[len(pts)-1].Step, tags)
		}
		notes = append(notes, fmt.Sprintf("%s: config %v; %d string-series rows; %d heartbeats",
			r.Name, r.Config, len(srv.Data(r.ID)), r.Heartbeats))
	}
	tw.Flush()
	fmt.Println()
	for _, n := range notes {
		fmt.Println(n)
	}
	c := srv.Counters()
	fmt.Printf("\n%d requests, %d metric lines, %d points stored, %d rejected by validation\n",
		c.Requests, c.MetricLines, c.MetricPoints, c.Rejected)
	if c.Rejected > 0 {
		return fmt.Errorf("the stand-in rejected %d requests", c.Rejected)
	}
	return nil
}
