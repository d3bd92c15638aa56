package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
)

// statusRow is one stream in `status` output.
type statusRow struct {
	Source      string    `json:"source"`
	Path        string    `json:"path"`
	Key         string    `json:"key"`
	Run         string    `json:"run,omitempty"`
	ExternalID  string    `json:"external_id,omitempty"`
	RunID       int64     `json:"run_id,omitempty"`
	URL         string    `json:"url,omitempty"`
	RunStatus   string    `json:"run_status,omitempty"`
	Offset      int64     `json:"acked_offset"`
	Seq         int64     `json:"acked_seq,omitempty"`
	Line        int64     `json:"acked_line,omitempty"`
	Size        int64     `json:"size,omitempty"`
	BytesBehind int64     `json:"bytes_behind"`
	LastPoint   time.Time `json:"last_point,omitzero"`
	Done        bool      `json:"done,omitempty"`
	Updated     time.Time `json:"updated"`
}

func cmdStatus(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", "Show what the agent has delivered, from its state directory: per file (or Neptune\n"+
		"run) the run it feeds (name, mlop run id, URL), the acknowledged offset, the bytes\n"+
		"behind and the time of the last acknowledged point. Safe beside a running agent:\n"+
		"it only reads the state file.", "mlop-agent status -c agent.yaml --json | jq '.[] | select(.bytes_behind > 0)'", stderr)
	var cf commonFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	stateDir := fs.String("state-dir", "", "read this state directory instead of the configuration's state_dir")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir := *stateDir
	if dir == "" {
		cfg, err := loadConfig(cf.config)
		if err != nil {
			return err
		}
		dir = cfg.StateDir
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("state directory %s: not found (has the agent run yet?)", dir)
	}
	st, err := checkpoint.Read(dir)
	if err != nil {
		return err
	}
	runs := map[string]checkpoint.Run{}
	for _, r := range st.Runs {
		runs[r.Project+"\x00"+r.ExternalID] = r
	}
	rows := make([]statusRow, 0, len(st.Streams))
	for _, s := range st.Streams {
		row := statusRow{Source: s.Source, Path: s.Path, Key: s.Key, Offset: s.Pos.Offset, Seq: s.Pos.Seq,
			Line: s.Line, Size: s.Size, Done: s.Done, Updated: s.Updated}
		if s.LastTime > 0 {
			row.LastPoint = time.UnixMilli(s.LastTime).UTC()
		}
		if s.Fingerprint != "" && !s.Done {
			if fi, err := os.Stat(s.Path); err == nil {
				row.Size = fi.Size()
				if fi.Size() > s.Pos.Offset {
					row.BytesBehind = fi.Size() - s.Pos.Offset
				}
			}
		}
		for _, ref := range s.Runs {
			if r, ok := runs[ref.Project+"\x00"+ref.ExternalID]; ok {
				row.Run, row.ExternalID, row.RunID, row.URL, row.RunStatus = r.Name, r.ExternalID, r.RunID, r.URL, r.Status
				break
			}
			row.ExternalID = ref.ExternalID
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Source != rows[j].Source {
			return rows[i].Source < rows[j].Source
		}
		return rows[i].Path < rows[j].Path
	})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "nothing delivered yet (state directory %s, saved %s)\n", dir, st.SavedAt.Format(time.RFC3339))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tPATH\tRUN\tRUN ID\tSTATUS\tACKED\tBEHIND\tLAST POINT")
	for _, r := range rows {
		acked := fmt.Sprintf("%d B", r.Offset)
		if r.Offset == 0 && r.Seq > 0 {
			acked = fmt.Sprintf("seq %d", r.Seq)
		}
		last := "-"
		if !r.LastPoint.IsZero() {
			last = r.LastPoint.Format(time.RFC3339)
		}
		path := r.Path
		if r.Done {
			path += " (done)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d B\t%s\n", r.Source, path, r.Run, r.RunID, r.RunStatus, acked, r.BytesBehind, last)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nstate saved %s; run URLs: mlop-agent status --json\n", st.SavedAt.Format(time.RFC3339))
	return nil
}
