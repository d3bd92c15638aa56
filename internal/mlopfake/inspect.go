package mlopfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Inspection: Go methods for in-process tests and the /_standin/ HTTP
// endpoints on the API listener. Neither is part of the mlop API.

const standinPrefix = "/_standin/"

// standinNote marks every inspection response.
const standinNote = "mlopfake test-double inspection endpoint: NOT part of the mlop/pluto API"

// ErrNoRun is returned for a run id the stand-in never created.
var ErrNoRun = errors.New("no such run")

// Run is a snapshot of one run with everything the backend stored about it.
type Run struct {
	ID                    int64               `json:"id"`
	Number                int                 `json:"number"`
	DisplayID             string              `json:"displayId"`
	OrganizationSlug      string              `json:"organizationSlug"`
	Project               string              `json:"project"`
	Name                  string              `json:"name"`
	ExternalID            string              `json:"externalId,omitempty"`
	Tags                  []string            `json:"tags"`
	Config                map[string]any      `json:"config"`                // nil when unset or not an object
	ConfigValue           any                 `json:"configValue,omitempty"` // the stored JSON value whatever its type
	LoggerSettings        any                 `json:"loggerSettings,omitempty"`
	SystemMetadata        any                 `json:"systemMetadata,omitempty"`
	Status                string              `json:"status"`
	StatusUpdated         time.Time           `json:"statusUpdated"`
	ClientStatusUpdatedMs *float64            `json:"clientStatusUpdatedMs,omitempty"` // statusUpdated sent by the client
	StatusMetadata        any                 `json:"statusMetadata,omitempty"`
	CreatedAt             time.Time           `json:"createdAt"`
	ClientCreatedAtMs     *float64            `json:"clientCreatedAtMs,omitempty"`
	ClientUpdatedAtMs     *float64            `json:"clientUpdatedAtMs,omitempty"`
	ForkedFromRunID       int64               `json:"forkedFromRunId,omitempty"`
	ForkStep              *int64              `json:"forkStep,omitempty"`
	StatusHistory         []StatusEvent       `json:"statusHistory"`
	LogNames              map[string][]string `json:"logNames"` // registered names by logType, in registration order
	Heartbeats            int                 `json:"heartbeats"`
	HeartbeatTimes        []time.Time         `json:"-"`
	LastHeartbeat         time.Time           `json:"lastHeartbeat,omitzero"`
	Alerts                []map[string]any    `json:"alerts,omitempty"`
	Notes                 string              `json:"notes,omitempty"`
	ModelGraphs           int                 `json:"modelGraphs,omitempty"`
}

// LogType returns the registered logType of name, or "".
func (r Run) LogType(name string) string {
	for typ, names := range r.LogNames {
		if slices.Contains(names, name) {
			return typ
		}
	}
	return ""
}

func (rn *run) snapshot() Run {
	out := Run{
		ID: rn.id, Number: rn.number, DisplayID: fmt.Sprintf("%s-%d", rn.project.prefix, rn.number),
		OrganizationSlug: rn.org.slug, Project: rn.project.name, Name: rn.name, ExternalID: rn.externalID,
		Tags:        slices.Clone(rn.tags),
		ConfigValue: deepCopy(rn.config), LoggerSettings: deepCopy(rn.loggerSettings), SystemMetadata: deepCopy(rn.systemMetadata),
		Status: rn.status, StatusUpdated: rn.statusUpdated, StatusMetadata: deepCopy(rn.statusMetadata),
		CreatedAt: rn.createdAt, ForkedFromRunID: rn.forkedFrom, ForkStep: rn.forkStep,
		StatusHistory: slices.Clone(rn.history), LogNames: make(map[string][]string),
		Heartbeats: rn.heartbeatCount, HeartbeatTimes: slices.Clone(rn.heartbeats),
		Notes: rn.notes, ModelGraphs: rn.graphs,
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	out.Config, _ = out.ConfigValue.(map[string]any)
	if rn.statusUpdatedMs != nil {
		out.ClientStatusUpdatedMs = ptr(*rn.statusUpdatedMs)
	}
	if rn.clientCreatedAt != nil {
		out.ClientCreatedAtMs = ptr(*rn.clientCreatedAt)
	}
	if rn.clientUpdatedAt != nil {
		out.ClientUpdatedAtMs = ptr(*rn.clientUpdatedAt)
	}
	if rn.forkStep != nil {
		out.ForkStep = ptr(*rn.forkStep)
	}
	for _, name := range rn.logOrder {
		t := rn.logNames[name]
		out.LogNames[t] = append(out.LogNames[t], name)
	}
	if n := len(rn.heartbeats); n > 0 {
		out.LastHeartbeat = rn.heartbeats[n-1]
	}
	for _, a := range rn.alerts {
		out.Alerts = append(out.Alerts, deepCopy(a).(map[string]any))
	}
	return out
}

// Runs returns every run, in creation order.
func (s *Server) Runs() []Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Run, 0, len(s.runOrder))
	for _, rn := range s.runOrder {
		out = append(out, rn.snapshot())
	}
	return out
}

// Run returns one run.
func (s *Server) Run(id int64) (Run, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runs[id]
	if rn == nil {
		return Run{}, false
	}
	return rn.snapshot(), true
}

// CancelRun marks a run CANCELLED, as the UI's cancel button does; the next
// heartbeat (/api/runs/trigger) then answers "CANCELLED".
func (s *Server) CancelRun(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runs[id]
	if rn == nil {
		return fmt.Errorf("cancel run %d: %w", id, ErrNoRun)
	}
	s.transition(rn, "CANCELLED", "ui", nil, false, nil)
	return nil
}

// runStream is the stream the UI reads for a run: (org, project, run id).
func (s *Server) runStream(id int64) *stream {
	s.mu.Lock()
	rn := s.runs[id]
	s.mu.Unlock()
	if rn == nil {
		return nil
	}
	return s.streams.lookup(streamKey{rn.org.id, rn.project.name, uint64(id)})
}

// streamOf finds the stream for a run id, or for (project, id) in the home
// organisation when project is not empty.
func (s *Server) streamFor(project string, id uint64) *stream {
	if project == "" {
		return s.runStream(int64(id))
	}
	return s.streams.lookup(streamKey{s.orgs[s.opts.OrgSlug].id, project, id})
}

func seriesView(st *stream, deduped bool) map[string][]Point {
	out := make(map[string][]Point)
	if st == nil {
		return out
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, ser := range st.order {
		raw := ser.raw()
		if deduped {
			raw = dedup(raw, ser.increasing)
		}
		out[ser.name] = raw
	}
	return out
}

// Metrics returns the deduplicated view (mlop_metrics_v2 FINAL) of a run's
// metrics, stored under the run's own project: per name, one point per step,
// the largest time winning, sorted by step.
func (s *Server) Metrics(runID int64) map[string][]Point {
	return seriesView(s.runStream(runID), true)
}

// RawMetrics returns every stored metric row of a run (mlop_metrics),
// duplicates included, in arrival order.
func (s *Server) RawMetrics(runID int64) map[string][]Point {
	return seriesView(s.runStream(runID), false)
}

// MetricsIn is Metrics for rows stored under any (X-Project-Name, X-Run-Id)
// in the home organisation, including ones that match no run.
func (s *Server) MetricsIn(project string, runID uint64) map[string][]Point {
	return seriesView(s.streamFor(project, runID), true)
}

// RawMetricCount is the number of raw metric rows stored for a run.
func (s *Server) RawMetricCount(runID int64) int {
	st := s.runStream(runID)
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.rawPoints
}

// MaxStep is what POST /step answers for the run (max raw step, 0 if none).
func (s *Server) MaxStep(runID int64) uint64 {
	st := s.runStream(runID)
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.maxStep
}

// Data returns the run's /ingest/data rows in arrival order.
func (s *Server) Data(runID int64) []DataRow {
	st := s.runStream(runID)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.data)
}

// Logs returns the run's /ingest/logs rows in arrival order.
func (s *Server) Logs(runID int64) []LogRow {
	st := s.runStream(runID)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.logs)
}

// Files returns the run's mlop_files rows with the uploaded bytes, if any.
func (s *Server) Files(runID int64) []File {
	return s.filesOf(s.runStream(runID))
}

func (s *Server) filesOf(st *stream) []File {
	if st == nil {
		return nil
	}
	st.mu.Lock()
	rows := make([]File, len(st.files))
	for i, f := range st.files {
		rows[i] = *f
	}
	st.mu.Unlock()
	for i := range rows {
		if ob, ok := s.objects.get(rows[i].Key); ok {
			rows[i].Uploaded = true
			rows[i].Bytes = ob.data
			rows[i].ContentType = ob.contentType
		}
	}
	return rows
}

// Heartbeats returns the run's heartbeat count and their times (the newest
// ones when there were very many).
func (s *Server) Heartbeats(runID int64) (int, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runs[runID]
	if rn == nil {
		return 0, nil
	}
	return rn.heartbeatCount, slices.Clone(rn.heartbeats)
}

// MetricCount is the per-metric tally of a summary.
type MetricCount struct {
	Raw     int    `json:"raw"`
	Dedup   int    `json:"dedup"`
	LogType string `json:"logType,omitempty"` // registered type, "" if never registered
}

// RunSummary is a run with tallies of everything stored under it.
type RunSummary struct {
	Run
	Metrics             map[string]MetricCount `json:"metrics"`
	RawPoints           int                    `json:"rawPoints"`
	DedupPoints         int                    `json:"dedupPoints"`
	MaxStep             uint64                 `json:"maxStep"`
	DataRows            int                    `json:"dataRows"`
	LogRows             int                    `json:"logRows"`
	Files               int                    `json:"files"`
	FilesUploaded       int                    `json:"filesUploaded"`
	UnregisteredMetrics []string               `json:"unregisteredMetrics,omitempty"` // have rows but no logName/add: invisible in the UI
}

// StreamSummary tallies rows stored under an (org, project, run id) that
// matches no run: the real ingest accepts them, the UI never shows them.
type StreamSummary struct {
	Organization string `json:"organization"`
	Project      string `json:"project"`
	RunID        uint64 `json:"runId"`
	RawPoints    int    `json:"rawPoints"`
	DataRows     int    `json:"dataRows"`
	LogRows      int    `json:"logRows"`
	Files        int    `json:"files"`
}

// Summary is the whole state in one JSON-friendly value.
type Summary struct {
	Note          string             `json:"note"`
	Mode          Mode               `json:"mode"`
	URLs          map[Service]string `json:"urls"`
	Runs          []RunSummary       `json:"runs"`
	OrphanStreams []StreamSummary    `json:"orphanStreams"`
	Counters      Counters           `json:"counters"`
	Faults        Faults             `json:"faults"`
	RejectedTotal int64              `json:"rejectedTotal"`
	Rejected      []Rejection        `json:"rejected"` // the newest 200
}

// Summary collects everything; deduplicated counts are computed now.
func (s *Server) Summary() Summary {
	sum := Summary{
		Note: standinNote, Mode: s.opts.Mode, URLs: map[Service]string{},
		Runs: []RunSummary{}, OrphanStreams: []StreamSummary{},
		Counters: s.Counters(), Faults: s.Faults(), RejectedTotal: s.rejected.count(),
	}
	for _, svc := range AllServices {
		sum.URLs[svc] = s.URL(svc)
	}
	rej := s.Rejected()
	if len(rej) > 200 {
		rej = rej[len(rej)-200:]
	}
	sum.Rejected = rej
	owned := make(map[streamKey]bool)
	for _, r := range s.Runs() {
		rs, key := s.runSummary(r)
		owned[key] = true
		sum.Runs = append(sum.Runs, rs)
	}
	for _, st := range s.streams.all() {
		if owned[st.key] {
			continue
		}
		st.mu.Lock()
		ss := StreamSummary{Organization: st.key.org, Project: st.key.project, RunID: st.key.runID,
			RawPoints: st.rawPoints, DataRows: len(st.data), LogRows: len(st.logs), Files: len(st.files)}
		st.mu.Unlock()
		if ss.RawPoints+ss.DataRows+ss.LogRows+ss.Files == 0 {
			continue // a request whose every line was rejected
		}
		ss.Organization = s.orgSlugByID(ss.Organization)
		sum.OrphanStreams = append(sum.OrphanStreams, ss)
	}
	return sum
}

// runSummary tallies what is stored under r's stream, which it also returns.
func (s *Server) runSummary(r Run) (RunSummary, streamKey) {
	rs := RunSummary{Run: r, Metrics: map[string]MetricCount{}}
	key := streamKey{s.orgBySlug(r.OrganizationSlug).id, r.Project, uint64(r.ID)}
	st := s.streams.lookup(key)
	if st == nil {
		return rs, key
	}
	st.mu.Lock()
	for _, ser := range st.order {
		mc := MetricCount{Raw: ser.n, Dedup: ser.dedupCount(), LogType: r.LogType(ser.name)}
		rs.Metrics[ser.name] = mc
		rs.RawPoints += mc.Raw
		rs.DedupPoints += mc.Dedup
		if mc.LogType == "" {
			rs.UnregisteredMetrics = append(rs.UnregisteredMetrics, ser.name)
		}
	}
	rs.MaxStep = st.maxStep
	rs.DataRows, rs.LogRows = len(st.data), len(st.logs)
	st.mu.Unlock()
	for _, f := range s.filesOf(st) {
		rs.Files++
		if f.Uploaded {
			rs.FilesUploaded++
		}
	}
	return rs, key
}

// appPagePrefix is the base of the stand-in's run pages (Options.AppAtStandin).
const appPagePrefix = "/_standin/app"

// RunPage is what a run URL answers when Options.AppAtStandin put the
// stand-in's own run pages in the run URLs.
type RunPage struct {
	Note string `json:"note"`
	RunSummary
}

// serveRunPage answers GET /_standin/app/o/{org}/projects/{project}/{sqid},
// the path of the real web app's run page, with the run's summary.
func (s *Server) serveRunPage(w http.ResponseWriter, r *http.Request) {
	notFound := func(why string) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": why, "note": standinNote})
	}
	// The project is encodeURIComponent-escaped in the URL, so split the
	// escaped path: an escaped "/" must stay inside its segment.
	rest := strings.TrimPrefix(r.URL.EscapedPath(), appPagePrefix+"/")
	seg := strings.Split(rest, "/")
	if len(seg) != 5 || seg[0] != "o" || seg[2] != "projects" {
		notFound("not a run page: want " + appPagePrefix + "/o/{org}/projects/{project}/{run}")
		return
	}
	for i, v := range seg {
		u, err := url.PathUnescape(v)
		if err != nil {
			notFound(fmt.Sprintf("not a run page: segment %q: %v", v, err))
			return
		}
		seg[i] = u
	}
	org, project, sqid := seg[1], seg[3], seg[4]
	for _, run := range s.Runs() {
		if run.OrganizationSlug == org && run.Project == project && sqidLike(run.ID) == sqid {
			rs, _ := s.runSummary(run)
			writeJSON(w, http.StatusOK, RunPage{Note: standinNote + "; this stands in for the web app's run page", RunSummary: rs})
			return
		}
	}
	notFound(fmt.Sprintf("no run %s in project %q of organisation %q", sqid, project, org))
}

func (s *Server) orgBySlug(slug string) *org {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.orgs[slug]
}

func (s *Server) orgSlugByID(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.orgs {
		if o.id == id {
			return o.slug
		}
	}
	return id
}

// MarshalJSON writes non-finite values as the strings "NaN", "Infinity" and
// "-Infinity", which encoding/json cannot express as numbers.
func (p Point) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64)
	b = append(b, `{"step":`...)
	b = strconv.AppendUint(b, p.Step, 10)
	b = append(b, `,"time":`...)
	b = strconv.AppendUint(b, p.Time, 10)
	b = append(b, `,"value":`...)
	switch {
	case math.IsNaN(p.Value):
		b = append(b, `"NaN"`...)
	case math.IsInf(p.Value, 1):
		b = append(b, `"Infinity"`...)
	case math.IsInf(p.Value, -1):
		b = append(b, `"-Infinity"`...)
	default:
		b = strconv.AppendFloat(b, p.Value, 'g', -1, 64)
	}
	return append(b, '}'), nil
}

// serveStandin routes the /_standin/ endpoints.
func (s *Server) serveStandin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Mlopfake", "inspection; not part of the mlop API")
	q := r.URL.Query()
	runID := func() (int64, bool) {
		id, err := strconv.ParseInt(q.Get("runId"), 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "runId query parameter: want an integer", "note": standinNote})
			return 0, false
		}
		return id, true
	}
	decode := func(v any) bool {
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("decode body: %v", err), "note": standinNote})
			return false
		}
		return true
	}
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch p := r.URL.Path[len(standinPrefix):]; {
	case strings.HasPrefix(p, "app/") && get:
		s.serveRunPage(w, r)
	case p == "" && get:
		writeJSON(w, http.StatusOK, map[string]any{"note": standinNote, "endpoints": []string{
			"GET summary", "GET runs", "GET app/o/{org}/projects/{project}/{run} (a run URL's page)", "GET metrics?runId=N[&raw=1][&name=X]", "GET data?runId=N", "GET logs?runId=N",
			"GET files?runId=N", "GET requests", "GET rejected", "GET counters", "GET|POST faults",
			"POST outage {durationMs, services}", "POST up {services}", "POST keys {key, state}", "POST cancel {runId}",
			"POST alter {runId, op, ...} (deliberate damage for verification tests)",
		}})
	case p == "summary" && get:
		writeJSON(w, http.StatusOK, s.Summary())
	case p == "runs" && get:
		writeJSON(w, http.StatusOK, s.Runs())
	case p == "metrics" && get:
		id, ok := runID()
		if !ok {
			return
		}
		var m map[string][]Point
		if q.Get("raw") != "" {
			m = s.RawMetrics(id)
		} else {
			m = s.Metrics(id)
		}
		if name := q.Get("name"); name != "" {
			m = map[string][]Point{name: m[name]}
		}
		writeJSON(w, http.StatusOK, m)
	case p == "data" && get:
		if id, ok := runID(); ok {
			writeJSON(w, http.StatusOK, s.Data(id))
		}
	case p == "logs" && get:
		if id, ok := runID(); ok {
			writeJSON(w, http.StatusOK, s.Logs(id))
		}
	case p == "files" && get:
		if id, ok := runID(); ok {
			writeJSON(w, http.StatusOK, s.Files(id))
		}
	case p == "requests" && get:
		writeJSON(w, http.StatusOK, s.Requests())
	case p == "rejected" && get:
		writeJSON(w, http.StatusOK, s.Rejected())
	case p == "counters" && get:
		writeJSON(w, http.StatusOK, s.Counters())
	case p == "faults" && get:
		writeJSON(w, http.StatusOK, s.Faults())
	case p == "faults" && post:
		var f Faults
		if !decode(&f) {
			return
		}
		if err := s.SetFaults(f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "note": standinNote})
			return
		}
		writeJSON(w, http.StatusOK, s.Faults())
	case p == "outage" && post:
		var req struct {
			DurationMS int64     `json:"durationMs"`
			Services   []Service `json:"services"`
		}
		if !decode(&req) {
			return
		}
		svcs := req.Services
		if len(svcs) == 0 {
			svcs = AllServices
		}
		for _, svc := range svcs {
			if _, err := ParseService(string(svc)); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "note": standinNote})
				return
			}
		}
		if req.DurationMS <= 0 && slices.Contains(svcs, ServiceAPI) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "durationMs must be > 0 when the api listener goes down (nothing could bring it back)", "note": standinNote})
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"down": svcs, "durationMs": req.DurationMS, "note": standinNote})
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		// Go down after answering: the api listener may be one of them.
		d := time.Duration(req.DurationMS) * time.Millisecond
		go func() {
			if d > 0 {
				s.DownFor(d, svcs...)
			} else {
				s.Down(svcs...)
			}
		}()
	case p == "up" && post:
		var req struct {
			Services []Service `json:"services"`
		}
		if !decode(&req) {
			return
		}
		if err := s.Up(req.Services...); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error(), "note": standinNote})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"up": true, "note": standinNote})
	case p == "keys" && post:
		var req struct {
			Key   string   `json:"key"`
			State KeyState `json:"state"`
		}
		if !decode(&req) {
			return
		}
		if err := s.SetKeyState(req.Key, req.State); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "note": standinNote})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"key": req.Key, "state": req.State})
	case p == "alter" && post:
		var req AlterRequest
		if !decode(&req) {
			return
		}
		n, err := s.Alter(req)
		if err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrNoRun) || errors.Is(err, ErrNoSeries) {
				status = http.StatusNotFound
			}
			writeJSON(w, status, map[string]string{"error": err.Error(), "note": standinNote})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"changed": n, "note": standinNote})
	case p == "cancel" && post:
		var req struct {
			RunID int64 `json:"runId"`
		}
		if !decode(&req) {
			return
		}
		if err := s.CancelRun(req.RunID); err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error(), "note": standinNote})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"runId": req.RunID, "status": "CANCELLED"})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown inspection endpoint " + r.Method + " " + r.URL.Path, "note": standinNote})
	}
}
