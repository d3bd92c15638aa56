package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the result table.
type row struct {
	Scenario string  `json:"scenario"`
	Figure   string  `json:"figure"`
	Value    float64 `json:"value"`
	// NA replaces the value when there is none: the reason ("n/a (...)",
	// "FAILED: ...").
	NA     string  `json:"na,omitempty"`
	Unit   string  `json:"unit"`
	Target *target `json:"target,omitempty"`
	Params params  `json:"params"`
}

// target is the goal for a figure. It is reported, never asserted:
// a miss does not fail the harness.
type target struct {
	Op    string  `json:"op"` // "<" or ">="
	Value float64 `json:"value"`
}

// Met reports whether v reaches the target.
func (t target) Met(v float64) bool {
	switch t.Op {
	case "<":
		return v < t.Value
	case ">=":
		return v >= t.Value
	}
	return false
}

func (t target) String(unit string) string {
	return t.Op + " " + formatValue(t.Value, unit)
}

func lessThan(v float64) *target { return &target{Op: "<", Value: v} }
func atLeast(v float64) *target  { return &target{Op: ">=", Value: v} }

// params are the run's parameters, printed after the figure.
type params struct {
	Lines    int64  `json:"lines,omitempty"`
	Points   int64  `json:"points,omitempty"`
	Files    int64  `json:"files,omitempty"`
	Receiver string `json:"receiver,omitempty"`
	Note     string `json:"note,omitempty"` // anything else: wall time, window, scale
}

func (p params) String() string {
	var parts []string
	if p.Lines > 0 {
		parts = append(parts, "lines="+thousands(p.Lines))
	}
	if p.Points > 0 {
		parts = append(parts, "points="+thousands(p.Points))
	}
	if p.Files > 0 {
		parts = append(parts, "files="+thousands(p.Files))
	}
	if p.Receiver != "" {
		parts = append(parts, "receiver="+p.Receiver)
	}
	if p.Note != "" {
		parts = append(parts, p.Note)
	}
	return strings.Join(parts, " ")
}

// Met is "yes", "NO", or "" when the row has no target or no value.
func (r row) Met() string {
	if r.Target == nil || r.NA != "" || math.IsNaN(r.Value) {
		return ""
	}
	if r.Target.Met(r.Value) {
		return "yes"
	}
	return "NO"
}

// formatValue prints v as the unit's figures usually are.
func formatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch unit {
	case "points/s", "lines/s", "points", "lines", "files":
		return thousands(int64(math.Round(v)))
	case "MiB", "s":
		return strconv.FormatFloat(v, 'f', 1, 64)
	case "ms", "% of 1 core":
		if v < 10 {
			return strconv.FormatFloat(v, 'f', 2, 64)
		}
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// thousands writes n with comma separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// printTable writes the rows as an aligned table.
func printTable(w io.Writer, rows []row) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVALUE\tUNIT\tTARGET\tMET\tPARAMS")
	for _, r := range rows {
		val := r.NA
		if val == "" {
			val = formatValue(r.Value, r.Unit)
		}
		tgt := ""
		if r.Target != nil {
			tgt = r.Target.String(r.Unit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Figure, val, r.Unit, tgt, r.Met(), r.Params)
	}
	return tw.Flush()
}

// report is the JSON form written to -out.
type report struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Host     hostInfo  `json:"host"`
	Agent    string    `json:"agent"`
	Version  string    `json:"agent_version"`
	Quick    bool      `json:"quick"`
	Scale    float64   `json:"scale"`
	Rows     []row     `json:"rows"`
	Failures []string  `json:"failures"`
}

// hostInfo describes the machine the figures come from.
type hostInfo struct {
	CPUs   int    `json:"cpus"`
	CPU    string `json:"cpu"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	// LoadStart and LoadEnd are /proc/loadavg's 1/5/15-minute figures.
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
}

// MarshalJSON writes NaN values (a scenario without samples) as null.
func (r row) MarshalJSON() ([]byte, error) {
	type plain row
	v := struct {
		plain
		Value *float64 `json:"value"`
		Met   string   `json:"met,omitempty"`
	}{plain: plain(r), Met: r.Met()}
	if r.NA == "" && !math.IsNaN(r.Value) && !math.IsInf(r.Value, 0) {
		v.Value = &r.Value
	}
	return json.Marshal(v)
}
