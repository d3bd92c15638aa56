package agent

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/parsers"
)

// Report is the machine-readable account of a backfill or import: per
// stream (a file, a Neptune run), the run it fed and what was sent.
type Report struct {
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Complete bool           `json:"complete"` // everything read was delivered
	Summary  string         `json:"summary"`
	Totals   ReportTotals   `json:"totals"`
	Streams  []StreamReport `json:"streams"`
	Failures []Failure      `json:"failures,omitempty"` // paths that could not be read at all
	// NotImported lists what the sources found and did not import
	// (neptune-client model registry containers, unreadable directories,
	// runs still being exported), each once.
	NotImported []NotImported `json:"not_imported,omitempty"`
}

// NotImported is one thing a stream format found and did not import
// (parsers.Skipped).
type NotImported struct {
	Source     string `json:"source"`
	Reason     string `json:"reason"`         // parsers.SkippedContainer, SkippedUnreadable, SkippedIncomplete
	Type       string `json:"type,omitempty"` // model, model_version, project, run, directory
	ID         string `json:"id,omitempty"`
	Path       string `json:"path"`
	Attributes int64  `json:"attributes"`
	Series     int64  `json:"series"`
	LeftBehind bool   `json:"data_left_behind"` // holds data this import did not deliver
	Detail     string `json:"detail,omitempty"`
}

// SkippedItem is one thing a stream's format skipped while reading (a
// parsers.Warning): where, why, what.
type SkippedItem struct {
	Reason string `json:"reason"`
	File   string `json:"file"`
	Seq    int64  `json:"seq"` // record version, row or sequence id within File
	Detail string `json:"detail"`
}

// ReportTotals sums the report.
type ReportTotals struct {
	Streams        int   `json:"streams"`
	StreamsSkipped int64 `json:"streams_skipped"` // complete before and unchanged
	StreamsFailed  int64 `json:"streams_failed"`
	Runs           int   `json:"runs"`
	// Points are the numeric metric points sent (Stats.PointsSent once
	// everything is delivered); Rows the string-series, histogram and
	// console rows; Files the files uploaded.
	Points        int64 `json:"points"`
	Rows          int64 `json:"rows"`
	Files         int64 `json:"files"`
	RecordsBad    int64 `json:"records_bad"`
	LinesRejected int64 `json:"lines_rejected"`
	// NotImported counts Report.NotImported by reason.
	NotImported map[string]int `json:"not_imported,omitempty"`
}

// StreamReport is one stream's line of the report.
type StreamReport struct {
	Source   string         `json:"source"`
	SourceID string         `json:"source_id"` // the stream key (Neptune run id, file fingerprint)
	Path     string         `json:"path"`
	Complete bool           `json:"complete"`
	Skipped  bool           `json:"skipped_unchanged,omitempty"`
	Error    string         `json:"error,omitempty"`
	Warnings map[string]int `json:"skipped,omitempty"` // what the format could not use, by reason
	// Items lists what was skipped, each with its reason and place (the
	// first maxReportItems; ItemsDropped counts the rest).
	Items        []SkippedItem `json:"skipped_items,omitempty"`
	ItemsDropped int           `json:"skipped_items_dropped,omitempty"`
	Runs         []RunReport   `json:"runs"`
	committed    int64
}

// RunReport is one mlop run.
type RunReport struct {
	Name       string `json:"name"`
	ExternalID string `json:"external_id"`
	Project    string `json:"project"`
	RunID      int64  `json:"run_id,omitempty"`
	URL        string `json:"url,omitempty"`
	Status     string `json:"status,omitempty"`
	// Points counts per name: points per metric, rows per string series,
	// files per file name.
	Points map[string]int64 `json:"points,omitempty"`
	// MetricPoints, Rows and Files are the run's totals by kind.
	MetricPoints int64 `json:"metric_points,omitempty"`
	Rows         int64 `json:"rows,omitempty"`
	Files        int64 `json:"files,omitempty"`
	// OtherNames and OtherPoints sum the names beyond the first 1,000 of a
	// run, which have no line of their own in Points.
	OtherNames  int   `json:"other_names,omitempty"`
	OtherPoints int64 `json:"other_points,omitempty"`
}

// Failure is a path that could not be read.
type Failure struct {
	Source string `json:"source"`
	Path   string `json:"path"`
	Error  string `json:"error"`
}

// Report describes what the agent did; call it after Run returns.
func (a *Agent) Report() Report {
	rep := Report{Started: a.started, Finished: time.Now().UTC(), Summary: a.rep.stats.Summary()}
	runs := map[string]*run{}
	for _, r := range a.runs.list(nil) {
		runs[runKey(r.project, r.key)] = r
	}
	seenRun := map[string]bool{}
	for _, st := range a.streams.list() {
		e := st.ls.Entry()
		sr := StreamReport{Source: st.source, SourceID: e.Key, Path: e.Path, Complete: st.ls.CompleteOK(), Error: st.ls.Failed()}
		st.mu.Lock()
		if len(st.warnings) > 0 {
			sr.Warnings = map[string]int{}
			for k, v := range st.warnings {
				sr.Warnings[k] = v
			}
		}
		st.mu.Unlock()
		sr.Items, sr.ItemsDropped = a.rep.notImported.itemsOf(e.Key)
		for _, ref := range e.Runs {
			k := runKey(ref.Project, ref.ExternalID)
			rr := RunReport{ExternalID: ref.ExternalID, Project: ref.Project}
			if r, ok := runs[k]; ok {
				r.mu.Lock()
				rr.Name, rr.RunID, rr.URL = r.name, r.srv.id, r.srv.url
				rr.MetricPoints, rr.Rows, rr.Files = r.points, r.rows, r.files
				rr.Status = r.ctl.finished
				if rr.Status == "" && r.srv.created {
					rr.Status = "RUNNING"
				}
				if len(r.names.counts) > 0 {
					rr.Points = map[string]int64{}
					for n, c := range r.names.counts {
						rr.Points[n] = c
					}
				}
				rr.OtherNames, rr.OtherPoints = r.names.nOther, r.names.other
				if rr.Points == nil && r.names.keep == 0 {
					rr.OtherNames, rr.OtherPoints = r.names.len(), r.points+r.rows+r.files
				}
				r.mu.Unlock()
			} else if _, kr, _, ok := a.runs.get(k); ok {
				rr.Name, rr.RunID, rr.URL, rr.Status = kr.Name, kr.RunID, kr.URL, kr.Status
			}
			if !seenRun[k] {
				seenRun[k] = true
				rep.Totals.Runs++
				rep.Totals.Points += rr.MetricPoints
				rep.Totals.Rows += rr.Rows
				rep.Totals.Files += rr.Files
			}
			sr.Runs = append(sr.Runs, rr)
		}
		rep.Streams = append(rep.Streams, sr)
	}
	sort.Slice(rep.Streams, func(i, j int) bool { return rep.Streams[i].SourceID < rep.Streams[j].SourceID })
	rep.Failures = a.rep.fails.snapshot()
	rep.Totals.Streams = len(rep.Streams)
	rep.Totals.StreamsSkipped = a.rep.stats.StreamsSkipped.Load()
	rep.Totals.StreamsFailed = a.rep.stats.StreamsFailed.Load()
	rep.Totals.RecordsBad = a.rep.stats.RecordsBad.Load()
	rep.Totals.LinesRejected = a.rep.stats.LinesRejected.Load()
	rep.Complete = a.drainedAll && rep.Totals.StreamsFailed == 0 && len(rep.Failures) == 0
	rep.NotImported = a.rep.notImported.list()
	if len(rep.NotImported) > 0 {
		rep.Totals.NotImported = map[string]int{}
		for _, n := range rep.NotImported {
			rep.Totals.NotImported[n.Reason]++
		}
		rep.Summary += "; found but not imported: " + countsText(len(rep.NotImported), rep.Totals.NotImported)
	}
	return rep
}

// countsText renders "3 (container 2, unreadable 1)".
func countsText(n int, by map[string]int) string {
	parts := make([]string, 0, len(by))
	for k, v := range by {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}

// maxReportItems bounds the skipped items a stream's report lists.
const maxReportItems = 1000

// notImported collects, for the summary and the report, what stream
// formats found and do not import (parsers.Skipped, from discovery) and
// the items each stream skipped while reading (its warnings). Safe for
// concurrent use; the zero value is ready.
type notImported struct {
	mu     sync.Mutex
	inputs []NotImported
	seen   map[string]bool       // source, reason, path of inputs
	items  map[string]*itemsList // by stream key
}

type itemsList struct {
	list    []SkippedItem
	dropped int
}

// discover runs the source's stream discovery of path; what a format
// that reports it (parsers.SkipReporter) found and does not import is
// logged once and kept for the report.
func (s *sourceRT) discover(path string) ([]parsers.StreamInfo, error) {
	sr, ok := s.stream.(parsers.SkipReporter)
	if !ok {
		return s.stream.Discover(path)
	}
	infos, skipped, err := sr.DiscoverSkipped(path)
	for _, sk := range skipped {
		n := NotImported{Source: s.cfg.Name, Reason: sk.Reason, Type: sk.Kind, ID: sk.ID, Path: sk.Path,
			Attributes: sk.Attributes, Series: sk.Series, LeftBehind: sk.LeftBehind, Detail: sk.Detail}
		if s.a.rep.notImported.addInput(n) {
			s.log.Warn("found, not imported", "reason", n.Reason, "type", n.Type, "id", n.ID, "path", n.Path,
				"attributes", n.Attributes, "series", n.Series, "detail", n.Detail)
		}
	}
	return infos, err
}

// addInput records n once (per source, reason and path) and reports
// whether it was new.
func (ni *notImported) addInput(n NotImported) bool {
	k := n.Source + "\x00" + n.Reason + "\x00" + n.Path
	ni.mu.Lock()
	defer ni.mu.Unlock()
	if ni.seen[k] {
		return false
	}
	if ni.seen == nil {
		ni.seen = map[string]bool{}
	}
	ni.seen[k] = true
	ni.inputs = append(ni.inputs, n)
	return true
}

// addItems records a stream's warnings as skipped items.
func (ni *notImported) addItems(key string, ws []parsers.Warning) {
	if len(ws) == 0 {
		return
	}
	ni.mu.Lock()
	defer ni.mu.Unlock()
	if ni.items == nil {
		ni.items = map[string]*itemsList{}
	}
	l := ni.items[key]
	if l == nil {
		l = &itemsList{}
		ni.items[key] = l
	}
	for _, w := range ws {
		if len(l.list) >= maxReportItems {
			l.dropped++
			continue
		}
		l.list = append(l.list, SkippedItem{Reason: w.Reason, File: w.File, Seq: w.Pos.Seq, Detail: w.Detail})
	}
}

func (ni *notImported) itemsOf(key string) ([]SkippedItem, int) {
	ni.mu.Lock()
	defer ni.mu.Unlock()
	l := ni.items[key]
	if l == nil {
		return nil, 0
	}
	return append([]SkippedItem(nil), l.list...), l.dropped
}

// list returns the inputs found and not imported, by path.
func (ni *notImported) list() []NotImported {
	ni.mu.Lock()
	out := append([]NotImported(nil), ni.inputs...)
	ni.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// progressLoop tells the operator how a backfill or import goes: streams
// done of those found, runs, points sent, rate and an estimate of the time
// left. On a terminal a line is rewritten in place every second (and left
// standing at the end); otherwise an INFO log line every ten seconds.
func (a *Agent) progressLoop(stop <-chan struct{}) {
	w, tty := a.opts.Progress, a.opts.ProgressTTY
	every := a.opts.ProgressEvery
	switch {
	case every > 0:
	case tty:
		every = time.Second
	default:
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	lastPoints, lastT := int64(0), start
	line := func(final bool) {
		total, done := 0, 0
		for _, s := range a.ledger.Streams() {
			total++
			if s.Finished() {
				done++
			}
		}
		st := a.rep.stats
		pts, runs := st.PointsSent.Load(), st.RunsCreated.Load()+st.RunsResumed.Load()
		now := time.Now()
		rate := float64(pts-lastPoints) / max(now.Sub(lastT).Seconds(), 1e-3)
		if final {
			rate = float64(pts) / max(now.Sub(start).Seconds(), 1e-3)
		}
		lastPoints, lastT = pts, now
		eta := "?"
		if done > 0 && done < total {
			el := now.Sub(start)
			eta = (time.Duration(float64(el) / float64(done) * float64(total-done))).Round(time.Second).String()
		} else if done == total {
			eta = "0s"
		}
		elapsed := now.Sub(start).Round(time.Second)
		if !tty {
			if !final {
				a.log.Info("progress", "streams_done", done, "streams", total, "runs", runs, "points_sent", pts,
					"points_per_s", int64(rate), "elapsed", elapsed, "eta", eta)
			}
			return
		}
		fmt.Fprintf(w, "\r\x1b[Kprogress: streams %d/%d done, %d runs, %s points sent (%s/s), elapsed %s, eta %s",
			done, total, runs, human(pts), human(int64(rate)), elapsed, eta)
		if final {
			io.WriteString(w, "\n")
		}
	}
	for {
		select {
		case <-stop:
			line(true)
			return
		case <-t.C:
			line(false)
		}
	}
}

// human prints a count with a k/M/G suffix.
func human(n int64) string {
	f := float64(n)
	for _, u := range []string{"", "k", "M", "G"} {
		if f < 1000 || u == "G" {
			if u == "" {
				return fmt.Sprintf("%d", n)
			}
			return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", f), "0"), ".0") + u
		}
		f /= 1000
	}
	return fmt.Sprint(n)
}
