package mlopfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file is the backend (web/server, Hono + zod + Prisma) listener.

type projectKey struct {
	org  string
	name string
}

type project struct {
	org        *org
	name       string
	prefix     string
	nextNumber int
}

// StatusEvent is one RunStatusEvent row (web/server/lib/run-status.ts).
type StatusEvent struct {
	From     string    `json:"fromStatus"` // "" for the creation event
	To       string    `json:"toStatus"`
	Source   string    `json:"source"` // api, resume, ui
	At       time.Time `json:"createdAt"`
	Metadata any       `json:"metadata,omitempty"`
}

// run is a runs row plus its run_logs, heartbeats and alerts. Guarded by
// Server.mu.
type run struct {
	id              int64
	number          int
	org             *org
	project         *project
	name            string
	externalID      string
	tags            []string
	config          any
	loggerSettings  any
	systemMetadata  any
	status          string
	statusUpdated   time.Time
	statusUpdatedMs *float64 // client-supplied statusUpdated (backfills)
	statusMetadata  any
	createdAt       time.Time
	updatedAt       time.Time // Prisma @updatedAt: any write to the runs row
	clientCreatedAt *float64
	clientUpdatedAt *float64
	forkedFrom      int64
	forkStep        *int64
	history         []StatusEvent
	logNames        map[string]string // name -> logType
	logOrder        []string
	heartbeats      []time.Time
	heartbeatCount  int
	alerts          []map[string]any
	notes           string
	graphs          int
}

func (s *Server) apiHandler() http.Handler {
	type route struct {
		method string
		fn     func(http.ResponseWriter, *http.Request)
	}
	routes := map[string]route{
		"/api/health":                 {http.MethodGet, s.apiHealth},
		"/api/slug":                   {http.MethodPost, s.apiSlug},
		"/api/runs/create":            {http.MethodPost, s.apiCreateRun},
		"/api/runs/resume":            {http.MethodPost, s.apiResumeRun},
		"/api/runs/status/update":     {http.MethodPost, s.apiStatusUpdate},
		"/api/runs/logName/add":       {http.MethodPost, s.apiLogNameAdd},
		"/api/runs/tags/update":       {http.MethodPost, s.apiTagsUpdate},
		"/api/runs/config/update":     {http.MethodPost, s.apiConfigUpdate},
		"/api/runs/notes/update":      {http.MethodPost, s.apiNotesUpdate},
		"/api/runs/modelGraph/create": {http.MethodPost, s.apiModelGraph},
		// The read API (read.go).
		"/api/runs/auth/validate":  {http.MethodGet, s.apiAuthValidate},
		"/api/runs/list":           {http.MethodGet, s.apiListRuns},
		"/api/runs/metrics/raw":    {http.MethodGet, s.apiMetricsRaw},
		"/api/runs/metrics":        {http.MethodGet, s.apiMetricsSampled},
		"/api/runs/metric-names":   {http.MethodGet, s.apiMetricNames},
		"/api/runs/files":          {http.MethodGet, s.apiFiles},
		"/api/runs/logs":           {http.MethodGet, s.apiLogs},
		"/api/runs/status/history": {http.MethodGet, s.apiStatusHistory},
	}

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, standinPrefix) {
			s.serveStandin(w, r)
			return
		}
		if param, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/runs/details/"); ok && param != "" && !strings.Contains(param, "/") &&
			(r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if dec, err := url.PathUnescape(param); err == nil {
				s.apiRunDetails(w, r, dec)
				return
			}
		}
		rt, ok := routes[p]
		if !ok || (rt.method != r.Method && !(rt.method == http.MethodGet && r.Method == http.MethodHead)) {
			// Hono answers an unknown path, or a known path with another
			// method, with a plain 404.
			s.reject(ServiceAPI, r, http.StatusNotFound, fmt.Sprintf("no route %s %s on the api (backend) listener", r.Method, p))
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "404 Not Found")
			return
		}
		rt.fn(w, r)
	})
	return gzipMiddleware(h)
}

func (s *Server) apiHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	io.WriteString(w, "OK")
}

func (s *Server) apiSlug(w http.ResponseWriter, r *http.Request) {
	o := s.backendAuth(w, r)
	if o == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"organization": map[string]string{"slug": o.slug}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"mlopfake: encode response"}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}

// The content-type tests of @hono/zod-openapi (prefix) and of hono's json
// validator (full); both case-sensitive.
var (
	jsonContentTypePrefix = regexp.MustCompile(`^application/([a-z-.]+\+)?json`)
	jsonContentTypeFull   = regexp.MustCompile(`^application/([a-z-.]+\+)?json(;\s*[a-zA-Z0-9\-]+=([^;]+))*$`)
)

// backendBody authenticates, then decodes and zod-validates the JSON body.
// On failure it has written the response and returns ok=false.
func (s *Server) backendBody(w http.ResponseWriter, r *http.Request, schema []zfield) (o *org, body map[string]any, ok bool) {
	o = s.backendAuth(w, r)
	if o == nil {
		return nil, nil, false
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" || !jsonContentTypePrefix.MatchString(ct) {
		// @hono/zod-openapi skips validation of an optional body that is not
		// JSON and hands the handler {}; the handlers then crash on the
		// missing fields (Prisma / TypeError) and Hono answers 500.
		drain(r.Body)
		s.reject(ServiceAPI, r, http.StatusInternalServerError,
			fmt.Sprintf("Content-Type %q is not JSON: the real backend skips validation and crashes on the empty body", ct))
		writeText(w, http.StatusInternalServerError, "Internal Server Error")
		return nil, nil, false
	}
	if !jsonContentTypeFull.MatchString(ct) {
		// hono's json validator: a JSON-ish type with odd parameters.
		drain(r.Body)
		s.reject(ServiceAPI, r, http.StatusBadRequest, fmt.Sprintf("Content-Type %q refused by hono's json validator", ct))
		writeText(w, http.StatusBadRequest, "Invalid HTTP header: Content-Type="+ct)
		return nil, nil, false
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		s.reject(ServiceAPI, r, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
		writeText(w, http.StatusBadRequest, "Malformed JSON in request body")
		return nil, nil, false
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&v); err != nil || dec.More() || trailingGarbage(dec) {
		s.reject(ServiceAPI, r, http.StatusBadRequest, fmt.Sprintf("malformed JSON body: %v", err))
		writeText(w, http.StatusBadRequest, "Malformed JSON in request body")
		return nil, nil, false
	}
	m, issues := zodValidate(v, schema)
	if issues != nil {
		ze := newZodError(issues)
		s.reject(ServiceAPI, r, http.StatusBadRequest, ze.summary())
		writeJSON(w, http.StatusBadRequest, ze)
		return nil, nil, false
	}
	return o, m, true
}

func trailingGarbage(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err != io.EOF
}

func (s *Server) apiError(w http.ResponseWriter, r *http.Request, status int, msg, reason string) {
	if reason == "" {
		reason = msg
	}
	s.reject(ServiceAPI, r, status, reason)
	writeJSON(w, status, map[string]string{"error": msg})
}

// internalError is Hono's default onError for an exception a handler does
// not catch (e.g. BigInt(1.5), Prisma rejecting a value).
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, reason string) {
	s.reject(ServiceAPI, r, http.StatusInternalServerError, reason)
	writeText(w, http.StatusInternalServerError, "Internal Server Error")
}

func str(m map[string]any, k string) (string, bool) {
	v, ok := m[k].(string)
	return v, ok
}

func num(m map[string]any, k string) (float64, bool) {
	v, ok := m[k].(float64)
	return v, ok
}

// runIDArg reads the numeric runId; a fractional id makes Prisma throw (500).
func (s *Server) runIDArg(w http.ResponseWriter, r *http.Request, m map[string]any) (int64, bool) {
	f, _ := num(m, "runId")
	if f != math.Trunc(f) || math.Abs(f) > 1<<62 {
		s.internalError(w, r, fmt.Sprintf("runId %v is not an integer: Prisma rejects it", f))
		return 0, false
	}
	return int64(f), true
}

// lockRun reads the body's runId, takes s.mu and finds the run of org o.
// On success s.mu is held and the caller unlocks; on failure the error
// response is written, the lock released, and ok is false.
func (s *Server) lockRun(w http.ResponseWriter, r *http.Request, o *org, m map[string]any, endpoint string) (*run, bool) {
	id, ok := s.runIDArg(w, r, m)
	if !ok {
		return nil, false
	}
	s.mu.Lock()
	rn := s.lookupRun(o, id)
	if rn == nil {
		s.mu.Unlock()
		s.apiError(w, r, http.StatusNotFound, "Run not found", fmt.Sprintf("%s: run %d not found in org %s", endpoint, id, o.slug))
		return nil, false
	}
	return rn, true
}

// lookupRun finds a run of org o. Caller holds s.mu.
func (s *Server) lookupRun(o *org, id int64) *run {
	rn := s.runs[id]
	if rn == nil || rn.org != o {
		return nil
	}
	return rn
}

// parseJSONString is JSON.parse of a string field: "" and "null" (and JSON
// null) mean none.
func parseJSONString(m map[string]any, k string) (v any, present bool, err error) {
	sv, ok := m[k].(string)
	if !ok || sv == "" || sv == "null" {
		return nil, false, nil
	}
	if err := json.Unmarshal([]byte(sv), &v); err != nil {
		return nil, false, err
	}
	return v, true, nil
}

func hasMultipleGroupTags(tags []string) bool {
	n := 0
	for _, t := range tags {
		if strings.HasPrefix(t, "group:") {
			n++
		}
	}
	return n > 1
}

func stringsOf(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		out = append(out, e.(string))
	}
	return out
}

type createRunResponse struct {
	RunID            int64  `json:"runId"`
	Number           int    `json:"number"`
	DisplayID        string `json:"displayId"`
	ProjectName      string `json:"projectName"`
	OrganizationSlug string `json:"organizationSlug"`
	URL              string `json:"url"`
	Resumed          bool   `json:"resumed"`
	ForkedFromRunID  *int64 `json:"forkedFromRunId"`
	ForkStep         *int64 `json:"forkStep"`
}

type resumeRunResponse struct {
	RunID            int64  `json:"runId"`
	Number           int    `json:"number"`
	DisplayID        string `json:"displayId"`
	ProjectName      string `json:"projectName"`
	OrganizationSlug string `json:"organizationSlug"`
	URL              string `json:"url"`
	Resumed          bool   `json:"resumed"`
}

func (s *Server) runURL(rn *run) string {
	return fmt.Sprintf("%s/o/%s/projects/%s/%s", s.AppURL(), rn.org.slug, encodeURIComponent(rn.project.name), sqidLike(rn.id))
}

func (s *Server) apiCreateRun(w http.ResponseWriter, r *http.Request) {
	o, m, ok := s.backendBody(w, r, createRunSchema)
	if !ok {
		return
	}
	runName, _ := str(m, "runName")
	projectName, _ := str(m, "projectName")
	externalID, _ := str(m, "externalId")
	tags := stringsOf(m["tags"])
	if hasMultipleGroupTags(tags) {
		s.apiError(w, r, http.StatusBadRequest, "A run can have at most one group:* tag.", "")
		return
	}
	forkRunF, hasFork := num(m, "forkRunId")
	hasFork = hasFork && forkRunF != 0 // JS truthiness
	if hasFork && forkRunF != math.Trunc(forkRunF) {
		s.internalError(w, r, fmt.Sprintf("forkRunId %v: BigInt() of a non-integer throws", forkRunF))
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	// Project upsert happens first in the real handler, whatever follows.
	pk := projectKey{o.id, projectName}
	proj := s.projects[pk]
	if proj == nil {
		proj = &project{org: o, name: projectName, prefix: generateRunPrefix(projectName), nextNumber: 1}
		s.projects[pk] = proj
	}

	var rn *run
	resumed := false
	if externalID != "" {
		for _, cand := range s.runOrder {
			if cand.org == o && cand.project == proj && cand.externalID == externalID {
				rn = cand
				resumed = true
				break
			}
		}
	}

	var forkParent *run
	var forkStep *int64
	if hasFork && !resumed {
		fs, ok := num(m, "forkStep")
		if !ok {
			s.apiError(w, r, http.StatusBadRequest, "forkStep is required when forkRunId is provided", "")
			return
		}
		if fs != math.Trunc(fs) {
			s.internalError(w, r, fmt.Sprintf("forkStep %v: BigInt() of a non-integer throws", fs))
			return
		}
		parent := s.runs[int64(forkRunF)]
		if parent == nil || parent.org != o || parent.project != proj {
			s.apiError(w, r, http.StatusBadRequest, "Fork parent run not found in this project", "")
			return
		}
		// resolveForkParent: walk up while the step belongs to an ancestor.
		for depth := 0; depth < 10 && parent.forkStep != nil && int64(fs) <= *parent.forkStep && parent.forkedFrom != 0; depth++ {
			anc := s.runs[parent.forkedFrom]
			if anc == nil || anc.org != o {
				break
			}
			parent = anc
		}
		if st := s.streams.lookup(streamKey{o.id, projectName, uint64(parent.id)}); st != nil {
			st.mu.Lock()
			maxStep, has := st.maxStep, st.hasMetric
			st.mu.Unlock()
			if has && maxStep > 0 && fs > float64(maxStep) {
				msg := fmt.Sprintf("forkStep (%d) exceeds the parent run's max step (%d)", int64(fs), maxStep)
				s.apiError(w, r, http.StatusBadRequest, msg, "")
				return
			}
		}
		forkParent = parent
		forkStep = ptr(int64(fs))
	}

	if rn == nil {
		loggerSettings, hasLS, err1 := parseJSONString(m, "loggerSettings")
		systemMetadata, hasSM, err2 := parseJSONString(m, "systemMetadata")
		config, hasCfg, err3 := parseJSONString(m, "config")
		if err := firstErr(err1, err2, err3); err != nil {
			s.apiError(w, r, http.StatusBadRequest, "Invalid JSON format in request body", fmt.Sprintf("JSON.parse of a string field: %v", err))
			return
		}
		// runs.name and runs.externalId are varchar(255): Prisma throws and
		// the handler answers its generic 500.
		if n := utf8.RuneCountInString(runName); n > 255 {
			s.apiError(w, r, http.StatusInternalServerError, "Failed to create run", fmt.Sprintf("runName has %d characters; Postgres varchar(255) refuses it", n))
			return
		}
		if n := utf8.RuneCountInString(externalID); n > 255 {
			s.apiError(w, r, http.StatusInternalServerError, "Failed to create run", fmt.Sprintf("externalId has %d characters; Postgres varchar(255) refuses it", n))
			return
		}
		finalTags := tags
		if forkParent != nil {
			if ic, isBool := m["inheritConfig"].(bool); !isBool || ic { // JS: inheritConfig !== false
				if forkParent.config != nil {
					if !hasCfg {
						config, hasCfg = deepCopy(forkParent.config), true
					} else if pm, ok := forkParent.config.(map[string]any); ok {
						if cm, ok := config.(map[string]any); ok {
							merged := deepCopy(pm).(map[string]any)
							for k, v := range cm {
								merged[k] = v
							}
							config = merged
						}
					}
				}
			}
			if inh, _ := m["inheritTags"].(bool); inh {
				finalTags = dedupGroupTagsKeepLast(uniqueStrings(append(append([]string{}, forkParent.tags...), tags...)))
			}
		}
		now := time.Now()
		rn = &run{
			id: s.nextRunID, number: proj.nextNumber, org: o, project: proj,
			name: runName, externalID: externalID, tags: finalTags,
			status: "RUNNING", statusUpdated: now, createdAt: now, updatedAt: now,
			logNames: make(map[string]string),
		}
		if hasLS {
			rn.loggerSettings = loggerSettings
		}
		if hasSM {
			rn.systemMetadata = systemMetadata
		}
		if hasCfg {
			rn.config = config
		}
		if f, ok := num(m, "createdAt"); ok {
			rn.clientCreatedAt = ptr(f)
		}
		if f, ok := num(m, "updatedAt"); ok {
			rn.clientUpdatedAt = ptr(f)
		}
		if forkParent != nil {
			rn.forkedFrom, rn.forkStep = forkParent.id, forkStep
		}
		rn.history = append(rn.history, StatusEvent{To: "RUNNING", Source: "api", At: now})
		s.nextRunID++
		proj.nextNumber++
		s.runs[rn.id] = rn
		s.runOrder = append(s.runOrder, rn)
		s.cnt.runsCreated.Add(1)
	} else {
		s.cnt.runsResumed.Add(1)
		if rn.status != "RUNNING" {
			s.transition(rn, "RUNNING", "resume", nil, false, nil)
		}
		// Resumed through externalId: deep-merge the sent config. The real
		// handler JSON.parses it outside any try, so bad JSON is a 500.
		cfg, has, err := parseJSONString(m, "config")
		if err != nil {
			s.internalError(w, r, fmt.Sprintf("config of a resumed run is not valid JSON (uncaught SyntaxError): %v", err))
			return
		}
		if cm, ok := cfg.(map[string]any); has && ok {
			base, _ := rn.config.(map[string]any)
			rn.config = deepMerge(base, cm)
		}
	}

	resp := createRunResponse{
		RunID: rn.id, Number: rn.number, DisplayID: fmt.Sprintf("%s-%d", proj.prefix, rn.number),
		ProjectName: projectName, OrganizationSlug: o.slug, URL: s.runURL(rn), Resumed: resumed,
	}
	if forkParent != nil {
		resp.ForkedFromRunID, resp.ForkStep = ptr(forkParent.id), forkStep
	}
	writeJSON(w, http.StatusOK, resp)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func uniqueStrings(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// dedupGroupTagsKeepLast keeps only the last group:* tag (lib/group-tag.ts).
func dedupGroupTagsKeepLast(tags []string) []string {
	last := -1
	for i := len(tags) - 1; i >= 0; i-- {
		if strings.HasPrefix(tags[i], "group:") {
			last = i
			break
		}
	}
	out := make([]string, 0, len(tags))
	for i, t := range tags {
		if !strings.HasPrefix(t, "group:") || i == last {
			out = append(out, t)
		}
	}
	return out
}

// transition is transitionRunStatus (lib/run-status.ts): for the api source a
// lower-severity terminal status never overwrites a higher one (the write is
// ignored but still answered 200); a same-status write refreshes
// statusUpdated without an event. Caller holds s.mu.
func (s *Server) transition(rn *run, to, source string, meta any, hasMeta bool, clientUpdated *float64) {
	severity := map[string]int{"RUNNING": -1, "COMPLETED": 0, "TERMINATED": 1, "CANCELLED": 2, "FAILED": 3}
	terminal := func(st string) bool { return st != "RUNNING" }
	from := rn.status
	if source == "api" && terminal(from) && terminal(to) && severity[to] < severity[from] {
		return
	}
	now := time.Now()
	rn.status, rn.statusUpdated, rn.updatedAt = to, now, now
	if clientUpdated != nil {
		rn.statusUpdatedMs = clientUpdated
	}
	if hasMeta {
		rn.statusMetadata = meta
	}
	if from == to {
		return
	}
	ev := StatusEvent{From: from, To: to, Source: source, At: now}
	if hasMeta {
		ev.Metadata = meta
	}
	rn.history = append(rn.history, ev)
}

func (s *Server) apiResumeRun(w http.ResponseWriter, r *http.Request) {
	o, m, ok := s.backendBody(w, r, resumeRunSchema)
	if !ok {
		return
	}
	n := 0
	for _, k := range []string{"runId", "displayId", "externalId"} {
		if _, present := m[k]; present {
			n++
		}
	}
	if n != 1 {
		ze := newZodError([]zodIssue{{Code: "custom", Path: []any{}, Message: "Provide exactly one of: runId, displayId, or externalId"}})
		s.reject(ServiceAPI, r, http.StatusBadRequest, ze.summary())
		writeJSON(w, http.StatusBadRequest, ze)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var rn *run
	switch {
	case m["runId"] != nil:
		f, _ := num(m, "runId")
		if f != math.Trunc(f) {
			s.internalError(w, r, fmt.Sprintf("runId %v is not an integer: Prisma rejects it", f))
			return
		}
		rn = s.lookupRun(o, int64(f))
	case m["displayId"] != nil:
		did, _ := str(m, "displayId")
		mm := displayIDRe.FindStringSubmatch(did)
		if mm == nil {
			s.apiError(w, r, http.StatusBadRequest, "Invalid displayId format. Expected PREFIX-NUMBER (e.g., 'MMP-1')", "")
			return
		}
		number, err := strconv.Atoi(mm[2])
		if err != nil {
			s.apiError(w, r, http.StatusBadRequest, "Invalid displayId format. Expected PREFIX-NUMBER (e.g., 'MMP-1')", "")
			return
		}
		prefix := strings.ToUpper(mm[1])
		projName, scoped := str(m, "projectName")
		var matches []*run
		for _, cand := range s.runOrder {
			if cand.org == o && cand.number == number && cand.project.prefix == prefix && (!scoped || cand.project.name == projName) {
				matches = append(matches, cand)
			}
		}
		if len(matches) > 1 {
			s.apiError(w, r, http.StatusConflict,
				fmt.Sprintf("Display ID '%s' is ambiguous: it matches runs in %d projects. Pass projectName to disambiguate.", did, len(matches)), "")
			return
		}
		if len(matches) == 1 {
			rn = matches[0]
		}
	default:
		ext, _ := str(m, "externalId")
		projName, _ := str(m, "projectName")
		if projName == "" {
			s.apiError(w, r, http.StatusBadRequest, "projectName is required when using externalId", "")
			return
		}
		for _, cand := range s.runOrder {
			if cand.org == o && cand.externalID == ext && cand.project.name == projName {
				rn = cand
				break
			}
		}
	}
	if rn == nil {
		s.apiError(w, r, http.StatusNotFound, "Run not found", "")
		return
	}
	s.cnt.runsResumed.Add(1)
	if rn.status != "RUNNING" {
		s.transition(rn, "RUNNING", "resume", nil, false, nil)
	}
	writeJSON(w, http.StatusOK, resumeRunResponse{
		RunID: rn.id, Number: rn.number, DisplayID: fmt.Sprintf("%s-%d", rn.project.prefix, rn.number),
		ProjectName: rn.project.name, OrganizationSlug: o.slug, URL: s.runURL(rn), Resumed: true,
	})
}

var displayIDRe = regexp.MustCompile(`^([^-]+)-(\d+)$`)

func (s *Server) apiStatusUpdate(w http.ResponseWriter, r *http.Request) {
	o, m, ok := s.backendBody(w, r, statusUpdateSchema)
	if !ok {
		return
	}
	rn, ok := s.lockRun(w, r, o, m, "status/update")
	if !ok {
		return
	}
	defer s.mu.Unlock()
	ls, hasLS, err := parseJSONString(m, "loggerSettings")
	if err != nil {
		s.apiError(w, r, http.StatusBadRequest, "Invalid loggerSettings JSON", "")
		return
	}
	var meta any
	hasMeta := false
	if sm, ok := str(m, "statusMetadata"); ok && sm != "" {
		if err := json.Unmarshal([]byte(sm), &meta); err != nil {
			s.apiError(w, r, http.StatusBadRequest, "Invalid statusMetadata JSON", "")
			return
		}
		hasMeta = true
	} else if v, present := m["statusMetadata"]; present && v == nil {
		hasMeta = true
	}
	if hasLS {
		if lm, ok := ls.(map[string]any); ok {
			base, _ := rn.loggerSettings.(map[string]any)
			rn.loggerSettings = deepMerge(base, lm)
		}
	}
	var clientUpdated *float64
	if f, ok := num(m, "statusUpdated"); ok {
		clientUpdated = ptr(f)
	}
	status, _ := str(m, "status")
	s.transition(rn, status, "api", meta, hasMeta, clientUpdated)
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func (s *Server) apiLogNameAdd(w http.ResponseWriter, r *http.Request) {
	o, m, ok := s.backendBody(w, r, logNameAddSchema)
	if !ok {
		return
	}
	rn, ok := s.lockRun(w, r, o, m, "logName/add")
	if !ok {
		return
	}
	defer s.mu.Unlock()
	logType, _ := str(m, "logType")
	for _, name := range stringsOf(m["logName"]) {
		if _, exists := rn.logNames[name]; exists {
			continue // @@unique([runId, logName]): the first registration wins
		}
		rn.logNames[name] = logType
		rn.logOrder = append(rn.logOrder, name)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func (s *Server) apiTagsUpdate(w http.ResponseWriter, r *http.Request) {
	o, m, ok := s.backendBody(w, r, tagsUpdateSchema)
	if !ok {
		return
	}
	tags := stringsOf(m["tags"])
	if hasMultipleGroupTags(tags) {
		s.apiError(w, r, http.StatusBadRequest, "A run can have at most one group:* tag.", "")
		return
	}
	rn, ok := s.lockRun(w, r, o, m, "tags/update")
	if !ok {
		return
	}
	defer s.mu.Unlock()
	rn.tags, rn.updatedAt = tags, time.Now()
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func (s *Server) apiConfigUpdate(w http.ResponseWriter, r *http.Request) {
	o, m, ok := s.backendBody(w, r, configUpdateSchema)
	if !ok {
		return
	}
	rn, ok := s.lockRun(w, r, o, m, "config/update")
	if !ok {
		return
	}
	defer s.mu.Unlock()
	cfg, _ := str(m, "config")
	if cfg != "" && cfg != "null" {
		var v any
		if err := json.Unmarshal([]byte(cfg), &v); err != nil {
			s.apiError(w, r, http.StatusBadRequest, "Invalid config JSON", fmt.Sprintf("Invalid config JSON: %v", err))
			return
		}
		cm, ok := v.(map[string]any)
		if !ok {
			s.apiError(w, r, http.StatusBadRequest, "Invalid config JSON: expected an object", "")
			return
		}
		base, _ := rn.config.(map[string]any)
		rn.config, rn.updatedAt = deepMerge(base, cm), time.Now()
		if len(rn.config.(map[string]any)) == 0 {
			rn.config = nil // Prisma.DbNull for an empty object
		}
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func (s *Server) apiNotesUpdate(w http.ResponseWriter, r *http.Request) {
	o, m, ok := s.backendBody(w, r, notesUpdateSchema)
	if !ok {
		return
	}
	id, ok := s.runIDArg(w, r, m)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.lookupRun(o, id)
	if rn == nil {
		s.apiError(w, r, http.StatusNotFound, "Run not found", "")
		return
	}
	rn.notes, _ = str(m, "notes")
	rn.updatedAt = time.Now()
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func (s *Server) apiModelGraph(w http.ResponseWriter, r *http.Request) {
	o, m, ok := s.backendBody(w, r, modelGraphSchema)
	if !ok {
		return
	}
	g := m["graph"].(map[string]any)
	var issues []zodIssue
	if _, ok := g["format"].(string); !ok {
		issues = append(issues, typeIssue([]any{"graph", "format"}, "string", zodType(g["format"], g["format"] != nil || hasKey(g, "format"))))
	}
	if _, ok := g["nodes"].(map[string]any); !ok {
		issues = append(issues, typeIssue([]any{"graph", "nodes"}, "object", zodType(g["nodes"], hasKey(g, "nodes"))))
	}
	if issues != nil {
		ze := newZodError(issues)
		s.reject(ServiceAPI, r, http.StatusBadRequest, ze.summary())
		writeJSON(w, http.StatusBadRequest, ze)
		return
	}
	id, ok := s.runIDArg(w, r, m)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.lookupRun(o, id)
	if rn == nil {
		s.apiError(w, r, http.StatusNotFound, "Run not found", "")
		return
	}
	rn.graphs++
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

// deepMerge is lib/deep-merge.ts: plain objects merged key by key, arrays and
// scalars replaced; neither input is modified.
func deepMerge(target, source map[string]any) map[string]any {
	out := make(map[string]any, len(target)+len(source))
	for k, v := range target {
		out[k] = v
	}
	for k, sv := range source {
		tm, tok := out[k].(map[string]any)
		sm, sok := sv.(map[string]any)
		if tok && sok {
			out[k] = deepMerge(tm, sm)
		} else {
			out[k] = sv
		}
	}
	return out
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// generateRunPrefix is lib/run-prefix.ts.
func generateRunPrefix(projectName string) string {
	words := strings.FieldsFunc(projectName, func(r rune) bool {
		return r == '-' || r == '_' || r == '.' || unicode.IsSpace(r)
	})
	if len(words) == 0 {
		return "RUN"
	}
	first := func(w string, n int) string {
		rs := []rune(w)
		return string(rs[:min(n, len(rs))])
	}
	var prefix string
	if len(words) == 1 {
		prefix = first(words[0], 3)
	} else {
		for _, w := range words {
			prefix += first(w, 1)
		}
		if n := utf8.RuneCountInString(prefix); n < 3 {
			needed := 3 - n
			rs := []rune(prefix)
			prefix = string(rs[:len(rs)-1]) + first(words[len(words)-1], needed+1)
		}
		prefix = first(prefix, 4)
	}
	return strings.ToUpper(prefix)
}

// encodeURIComponent escapes like the JavaScript function of that name.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// sqidLike encodes a run id over a-zA-Z0-9 with at least 5 characters, the
// shape of lib/sqid.ts (not the same alphabet order, so not the same string).
func sqidLike(id int64) string {
	const alphabet = "k3G7QAe51FCsPW92uEOyq4Bg6Sp8YzVTmnU0liwDdHXLajZrfxNMbRcJIKhtvo"
	x := uint64(id)*0x9E3779B1 + 0x5bd1e995 // spread consecutive ids
	var out []byte
	for x > 0 || len(out) < 5 {
		out = append(out, alphabet[x%62])
		x /= 62
	}
	return string(out)
}

// gzipMiddleware compresses responses when the client accepts gzip, like
// hono/compress in front of the real backend. It compresses every response
// (hono skips bodies under 1 KiB) so clients are proven to cope.
func gzipMiddleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !acceptsGzip(r.Header.Get("Accept-Encoding")) || r.Method == http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		gw := newGzipWriter(w)
		defer gw.close()
		h.ServeHTTP(gw, r)
	})
}

func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}
