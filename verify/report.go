package verify

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kinds of Difference.
const (
	KindRunMissing     = "run-missing"      // no run on the server for the source's run
	KindPointMissing   = "point-missing"    // a (metric, step) the source has and the server not
	KindPointDifferent = "point-different"  // the server's value differs
	KindPointExtra     = "point-extra"      // a (metric, step) the server has and the source not
	KindName           = "name"             // run name
	KindStatus         = "status"           // run status
	KindTagMissing     = "tag-missing"      // a tag the source has and the server not
	KindTagExtra       = "tag-extra"        // a tag the server has and the source not
	KindConfigMissing  = "config-missing"   // a config key the server lacks
	KindConfigDiff     = "config-different" // a config value that differs
	KindConfigExtra    = "config-extra"     // a config key the source does not have
	KindFork           = "fork"             // fork parent or step
	KindLogNameMissing = "log-name-missing" // a registered log name the server lacks
	KindLogNameExtra   = "log-name-extra"   // a registered log name the source does not have
	KindLogType        = "log-type"         // a log name registered with another type
	KindConsoleMissing = "console-lines-missing"
	KindFileMissing    = "file-missing"
	KindFileExtra      = "file-extra"
)

// Difference is one thing the server holds differently from the source.
type Difference struct {
	Kind       string  `json:"kind"`
	Run        string  `json:"run"`
	ExternalID string  `json:"externalId,omitempty"`
	RunID      int64   `json:"runId,omitempty"` // on the server
	Metric     string  `json:"metric,omitempty"`
	Step       *uint64 `json:"step,omitempty"`
	Key        string  `json:"key,omitempty"` // config key path, tag, log name, file
	Want       string  `json:"want,omitempty"`
	Got        string  `json:"got,omitempty"`
	Detail     string  `json:"detail,omitempty"`
}

// String is one line for people.
func (d Difference) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: run %q", d.Kind, d.Run)
	if d.RunID != 0 {
		fmt.Fprintf(&b, " (id %d)", d.RunID)
	}
	if d.Metric != "" {
		fmt.Fprintf(&b, " metric %q", d.Metric)
	}
	if d.Step != nil {
		fmt.Fprintf(&b, " step %d", *d.Step)
	}
	if d.Key != "" {
		fmt.Fprintf(&b, " %s", d.Key)
	}
	if d.Want != "" || d.Got != "" {
		fmt.Fprintf(&b, ": want %s, got %s", orNone(d.Want), orNone(d.Got))
	}
	if d.Detail != "" {
		fmt.Fprintf(&b, " (%s)", d.Detail)
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// MetricReport is the tally of one metric of a run.
type MetricReport struct {
	Name      string `json:"name"`
	Points    int64  `json:"points"`              // the source's (metric, step) pairs
	Rows      int64  `json:"rows"`                // rows the source sent (re-sends included)
	Server    int64  `json:"serverRows"`          // rows the server returned
	Missing   int64  `json:"missing,omitempty"`   // points
	Different int64  `json:"different,omitempty"` // points
	Extra     int64  `json:"extra,omitempty"`     // server steps the source does not have
	Unchecked int64  `json:"unchecked,omitempty"` // points not compared (the read failed)
	Ambiguous int64  `json:"ambiguous,omitempty"` // steps with several candidate values
	Error     string `json:"error,omitempty"`     // why some could not be checked
	OnlyOnSrv bool   `json:"onlyOnServer,omitempty"`
}

// RunReport is the result for one run.
type RunReport struct {
	Name        string         `json:"name"`
	Project     string         `json:"project"`
	ExternalID  string         `json:"externalId"`
	RunID       int64          `json:"runId,omitempty"` // on the server, 0 when not found
	FoundBy     string         `json:"foundBy,omitempty"`
	Metrics     []MetricReport `json:"metrics"`
	Points      int64          `json:"points"`
	Missing     int64          `json:"missing"`
	Different   int64          `json:"different"`
	Extra       int64          `json:"extra"`
	Unchecked   int64          `json:"unchecked"`   // points not compared
	Other       int64          `json:"other"`       // differences other than points
	Differences []Difference   `json:"differences"` // as many as the report keeps
	Omitted     int64          `json:"differencesOmitted,omitempty"`
	Problems    []string       `json:"problems,omitempty"` // what could not be checked, and why
	Notes       []string       `json:"notes,omitempty"`    // observations that are not differences
	ConsoleLine struct {
		Want int64 `json:"want"`
		Got  int64 `json:"got"`
	} `json:"consoleLines"`
	Files struct {
		Want int `json:"want"`
		Got  int `json:"got"`
	} `json:"files"`
	DataRows map[string]int64 `json:"dataRowsNotChecked,omitempty"` // "dataType logName" -> rows
}

// Report is the whole verification.
type Report struct {
	Complete    bool         `json:"complete"` // everything matched and everything was checked
	Runs        int          `json:"runs"`
	Metrics     int          `json:"metrics"`
	Points      int64        `json:"points"`
	Missing     int64        `json:"missing"`
	Different   int64        `json:"different"`
	Extra       int64        `json:"extra"`
	Other       int64        `json:"otherDifferences"`
	Unchecked   int64        `json:"uncheckedPoints"`
	Problems    int          `json:"problems"` // things that could not be checked
	Differences []Difference `json:"differences"`
	Omitted     int64        `json:"differencesOmitted"`
	RunReports  []*RunReport `json:"runReports"`
	Notes       []string     `json:"notes,omitempty"`
	Rules       []string     `json:"rules"`
	Started     time.Time    `json:"started"`
	Seconds     float64      `json:"seconds"`
}

// diffLog collects differences up to a cap, counting the rest. Safe for
// concurrent use.
type diffLog struct {
	mu   sync.Mutex
	max  int
	kept int
}

// keep reports whether one more difference fits under the cap.
func (l *diffLog) keep() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kept >= l.max {
		return false
	}
	l.kept++
	return true
}

// thousands writes n with comma separators: 48,220,114.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
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

// Summary is the one-line result:
// "verified 412 runs, 3,108 metrics, 48,220,114 points: 0 missing, 0 different, 0 extra".
func (r *Report) Summary() string {
	count := func(n int64, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return thousands(n) + " " + many
	}
	s := fmt.Sprintf("verified %s, %s, %s: %s missing, %s different, %s extra",
		count(int64(r.Runs), "run", "runs"), count(int64(r.Metrics), "metric", "metrics"), count(r.Points, "point", "points"),
		thousands(r.Missing), thousands(r.Different), thousands(r.Extra))
	if r.Other > 0 {
		s += fmt.Sprintf("; %s other differences", thousands(r.Other))
	}
	if r.Problems > 0 || r.Unchecked > 0 {
		s += fmt.Sprintf("; %s things could not be checked", thousands(int64(r.Problems)))
		if r.Unchecked > 0 {
			s += fmt.Sprintf(" (%s points)", thousands(r.Unchecked))
		}
	}
	return s
}

// Write prints the summary, up to maxDiffs differences (with how many more
// there are), what could not be checked and the notes.
func (r *Report) Write(w io.Writer, maxDiffs int) {
	total := r.Missing + r.Different + r.Extra + r.Other
	shown := 0
	for _, d := range r.Differences {
		if shown >= maxDiffs {
			break
		}
		fmt.Fprintln(w, "  "+d.String())
		shown++
	}
	if rest := total - int64(shown); rest > 0 {
		fmt.Fprintf(w, "  ... and %s more differences (--report FILE lists them)\n", thousands(rest))
	}
	for _, rr := range r.RunReports {
		for _, p := range rr.Problems {
			fmt.Fprintf(w, "  not checked: run %q: %s\n", rr.Name, p)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "  note: "+n)
	}
	fmt.Fprintln(w, r.Summary())
}
