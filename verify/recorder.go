package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Recorder is an http.RoundTripper that plays the mlop server for a client
// that believes it is talking to one: it decodes the write protocol
// (mlop-api.md §2) as the server would, keeps what the server would keep —
// runs with their name, tags, config (deep-merged), status, fork link and
// registered log names in memory; metric rows in one spool file per run on
// disk; counts of string-series rows, histogram rows, console lines and
// files — and answers like the server (run ids, presigned URLs, success
// bodies). Nothing leaves the process.
//
// mlop-agent verify plugs it into a sink/mlop client (Options.Transport)
// and runs the agent in dry-run mode over the source, so the expected data
// comes from the same parsers and mapping as the migration, captured at
// the HTTP boundary.
//
// It accepts every well-formed request, including data the real server
// would refuse: what the server refused during the migration is missing
// there, and the comparison says so.
type Recorder struct {
	dir string

	mu     sync.Mutex
	runs   map[int64]*capRun
	byKey  map[string]*capRun // project + "\x00" + externalId
	order  []*capRun
	nextID int64
	issues []string // requests the recorder could not make sense of

	buffered  atomic.Int64 // spool bytes held in memory, over all runs
	flushMu   sync.Mutex   // one flush of every run at a time
	requests  atomic.Int64
	points    atomic.Int64
	closed    atomic.Bool
	flushErr  atomic.Pointer[error]
	maxBuffer int64
}

// runFlushBytes is how much of one run's spool is buffered before it is
// written; all runs together hold at most Recorder.maxBuffer.
const runFlushBytes = 1 << 20

// Hosts of the base URLs a capture client must be given; anything else is
// refused.
const (
	CaptureAPIURL    = "http://api.verify.invalid"
	CaptureIngestURL = "http://ingest.verify.invalid"
	CapturePyURL     = "http://py.verify.invalid"
	captureS3Host    = "s3.verify.invalid"
	captureOrgSlug   = "verify"
)

// capRun is one run the client created. mu guards everything below it.
type capRun struct {
	id int64

	mu         sync.Mutex
	project    string
	externalID string
	name       string
	tags       []string
	config     map[string]any
	status     string
	statuses   []string // every status set, in order
	forkParent int64    // capture id, 0 when not a fork
	forkStep   int64
	logNames   map[string]string // name -> logType; the first registration wins
	logOrder   []string

	metricIDs  map[string]uint32
	metricName []string
	metricRows []int64 // rows per metric id
	enc        pointEncoder
	buf        []byte // spool bytes not yet written
	spooled    bool   // the spool file exists
	rows       int64

	dataRows map[string]int64 // dataType + "\x00" + logName -> rows
	logLines int64
	files    []ExpectedFile
	uploads  int64
}

// NewRecorder returns a recorder that spools metric rows under dir (which
// must exist and be private to it).
func NewRecorder(dir string) *Recorder {
	return &Recorder{dir: dir, runs: map[int64]*capRun{}, byKey: map[string]*capRun{}, nextID: 1, maxBuffer: 8 << 20}
}

// Points is the number of metric rows recorded so far.
func (r *Recorder) Points() int64 { return r.points.Load() }

// Runs is the number of runs created so far.
func (r *Recorder) Runs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// RoundTrip answers one request like the server would.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if r.closed.Load() {
		return nil, errors.New("verify recorder: closed")
	}
	r.requests.Add(1)
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, fmt.Errorf("verify recorder: read body: %w", err)
		}
		body = b
	}
	status, ctype, out := r.serve(req, body)
	resp := &http.Response{
		StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {ctype}}, Body: io.NopCloser(bytes.NewReader(out)),
		ContentLength: int64(len(out)), Request: req,
	}
	return resp, nil
}

func jsonBody(v any) (int, string, []byte) {
	b, err := json.Marshal(v)
	if err != nil {
		return http.StatusInternalServerError, "application/json", []byte(`{"error":"verify recorder: encode"}`)
	}
	return http.StatusOK, "application/json", b
}

// issue records a request the recorder could not map onto the runs.
func (r *Recorder) issue(format string, args ...any) string {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	if len(r.issues) < 100 {
		r.issues = append(r.issues, msg)
	}
	r.mu.Unlock()
	return msg
}

func (r *Recorder) fail(status int, format string, args ...any) (int, string, []byte) {
	msg := r.issue(format, args...)
	b, _ := json.Marshal(map[string]string{"error": "verify recorder: " + msg})
	return status, "application/json", b
}

var okBody = []byte(`{"success":true}`)

func (r *Recorder) serve(req *http.Request, body []byte) (int, string, []byte) {
	host, path := req.URL.Host, req.URL.Path
	switch {
	case host == captureS3Host && req.Method == http.MethodPut:
		return r.upload(path, body)
	case req.Method == http.MethodGet && (path == "/api/health" || path == "/health" || path == "/healthz"):
		return http.StatusOK, "text/plain", []byte("OK")
	case req.Method != http.MethodPost:
		return r.fail(http.StatusNotFound, "unexpected %s %s%s", req.Method, host, path)
	}
	switch host + path {
	case "api.verify.invalid/api/slug":
		return jsonBody(map[string]any{"organization": map[string]string{"slug": captureOrgSlug}})
	case "api.verify.invalid/api/runs/create":
		return r.create(body)
	case "api.verify.invalid/api/runs/resume":
		return r.resume(body)
	case "api.verify.invalid/api/runs/status/update":
		return r.statusUpdate(body)
	case "api.verify.invalid/api/runs/logName/add":
		return r.logNameAdd(body)
	case "api.verify.invalid/api/runs/tags/update":
		return r.tagsUpdate(body)
	case "api.verify.invalid/api/runs/config/update":
		return r.configUpdate(body)
	case "api.verify.invalid/api/runs/notes/update", "api.verify.invalid/api/runs/modelGraph/create":
		return http.StatusOK, "application/json", okBody
	case "ingest.verify.invalid/ingest/metrics":
		return r.metrics(req, body)
	case "ingest.verify.invalid/ingest/data":
		return r.data(req, body)
	case "ingest.verify.invalid/ingest/logs":
		return r.logs(req, body)
	case "ingest.verify.invalid/files":
		return r.filesReq(req, body)
	case "ingest.verify.invalid/step":
		return jsonBody(map[string]int{"step": 0})
	case "py.verify.invalid/api/runs/trigger":
		return jsonBody(map[string]any{"status": "RUNNING", "triggers": nil})
	case "py.verify.invalid/api/runs/alert":
		return jsonBody(map[string]string{"status": "success"})
	}
	return r.fail(http.StatusNotFound, "unexpected POST %s%s", host, path)
}

// parseConfigString is the server's JSON.parse of a config string: "" and
// "null" mean none; anything but an object is refused.
func parseConfigString(s *string) (map[string]any, error) {
	if s == nil || *s == "" || *s == "null" {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal([]byte(*s), &v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("config is not a JSON object")
	}
	return m, nil
}

func (r *Recorder) create(body []byte) (int, string, []byte) {
	var req struct {
		RunName     string   `json:"runName"`
		ProjectName string   `json:"projectName"`
		ExternalID  string   `json:"externalId"`
		Config      *string  `json:"config"`
		Tags        []string `json:"tags"`
		ForkRunID   *int64   `json:"forkRunId"`
		ForkStep    *int64   `json:"forkStep"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.RunName == "" || req.ProjectName == "" {
		return r.fail(http.StatusBadRequest, "create: bad body %.200q", body)
	}
	cfg, err := parseConfigString(req.Config)
	if err != nil {
		return r.fail(http.StatusBadRequest, "create %q: config: %v", req.RunName, err)
	}
	r.mu.Lock()
	key := req.ProjectName + "\x00" + req.ExternalID
	run := r.byKey[key]
	resumed := run != nil && req.ExternalID != ""
	if !resumed {
		run = &capRun{id: r.nextID, project: req.ProjectName, externalID: req.ExternalID, name: req.RunName,
			tags: slices.Clone(req.Tags), config: cfg, status: "RUNNING", statuses: []string{"RUNNING"},
			logNames: map[string]string{}, metricIDs: map[string]uint32{}, dataRows: map[string]int64{}}
		if req.ForkRunID != nil && *req.ForkRunID != 0 {
			run.forkParent = *req.ForkRunID
			if req.ForkStep != nil {
				run.forkStep = *req.ForkStep
			}
		}
		r.nextID++
		r.runs[run.id] = run
		r.order = append(r.order, run)
		if req.ExternalID != "" {
			r.byKey[key] = run
		}
	}
	r.mu.Unlock()
	if resumed {
		// The server's externalId resume: the run goes RUNNING again, the
		// sent config is deep-merged, the sent tags are ignored.
		run.mu.Lock()
		run.setStatus("RUNNING", "resume")
		if cfg != nil {
			run.config = deepMerge(run.config, cfg)
		}
		run.mu.Unlock()
	}
	return jsonBody(map[string]any{
		"runId": run.id, "number": run.id, "displayId": fmt.Sprintf("VER-%d", run.id), "projectName": req.ProjectName,
		"organizationSlug": captureOrgSlug, "url": fmt.Sprintf("verify://run/%d", run.id), "resumed": resumed,
		"forkedFromRunId": nilIfZero(run.forkParent), "forkStep": nilIfZero(run.forkStep),
	})
}

func nilIfZero(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// setStatus is the server's transitionRunStatus: from the API, a terminal
// status of lower severity never replaces a higher one. Caller holds mu.
func (c *capRun) setStatus(to, source string) {
	severity := map[string]int{"RUNNING": -1, "COMPLETED": 0, "TERMINATED": 1, "CANCELLED": 2, "FAILED": 3}
	if source == "api" && c.status != "RUNNING" && to != "RUNNING" && severity[to] < severity[c.status] {
		return
	}
	c.status = to
	c.statuses = append(c.statuses, to)
}

func (r *Recorder) runOf(id int64) *capRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[id]
}

// runBody decodes a backend body with a runId and finds the run.
func (r *Recorder) runBody(op string, body []byte, v any) (*capRun, error) {
	var head struct {
		RunID int64 `json:"runId"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("%s: bad body: %v", op, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("%s: bad body: %v", op, err)
	}
	run := r.runOf(head.RunID)
	if run == nil {
		return nil, fmt.Errorf("%s: unknown run %d", op, head.RunID)
	}
	return run, nil
}

func (r *Recorder) resume(body []byte) (int, string, []byte) {
	var req struct{}
	run, err := r.runBody("resume", body, &req)
	if err != nil {
		return r.fail(http.StatusNotFound, "%v", err)
	}
	run.mu.Lock()
	run.setStatus("RUNNING", "resume")
	project := run.project
	run.mu.Unlock()
	return jsonBody(map[string]any{"runId": run.id, "number": run.id, "displayId": fmt.Sprintf("VER-%d", run.id),
		"projectName": project, "organizationSlug": captureOrgSlug, "url": fmt.Sprintf("verify://run/%d", run.id), "resumed": true})
}

func (r *Recorder) statusUpdate(body []byte) (int, string, []byte) {
	var req struct {
		Status string `json:"status"`
	}
	run, err := r.runBody("status/update", body, &req)
	if err != nil {
		return r.fail(http.StatusNotFound, "%v", err)
	}
	run.mu.Lock()
	run.setStatus(req.Status, "api")
	run.mu.Unlock()
	return http.StatusOK, "application/json", okBody
}

func (r *Recorder) logNameAdd(body []byte) (int, string, []byte) {
	var req struct {
		LogType string   `json:"logType"`
		LogName []string `json:"logName"`
	}
	run, err := r.runBody("logName/add", body, &req)
	if err != nil {
		return r.fail(http.StatusNotFound, "%v", err)
	}
	run.mu.Lock()
	for _, n := range req.LogName {
		if _, ok := run.logNames[n]; !ok {
			run.logNames[n] = req.LogType
			run.logOrder = append(run.logOrder, n)
		}
	}
	run.mu.Unlock()
	return http.StatusOK, "application/json", okBody
}

func (r *Recorder) tagsUpdate(body []byte) (int, string, []byte) {
	var req struct {
		Tags []string `json:"tags"`
	}
	run, err := r.runBody("tags/update", body, &req)
	if err != nil {
		return r.fail(http.StatusNotFound, "%v", err)
	}
	run.mu.Lock()
	run.tags = slices.Clone(req.Tags)
	run.mu.Unlock()
	return http.StatusOK, "application/json", okBody
}

func (r *Recorder) configUpdate(body []byte) (int, string, []byte) {
	var req struct {
		Config *string `json:"config"`
	}
	run, err := r.runBody("config/update", body, &req)
	if err != nil {
		return r.fail(http.StatusNotFound, "%v", err)
	}
	cfg, err := parseConfigString(req.Config)
	if err != nil {
		return r.fail(http.StatusBadRequest, "config/update of run %d: %v", run.id, err)
	}
	run.mu.Lock()
	if cfg != nil {
		run.config = deepMerge(run.config, cfg)
	}
	run.mu.Unlock()
	return http.StatusOK, "application/json", okBody
}

// deepMerge is the server's lib/deep-merge.ts: objects merged key by key,
// arrays and scalars replaced; neither input is modified.
func deepMerge(dst, src map[string]any) map[string]any {
	out := make(map[string]any, len(dst)+len(src))
	for k, v := range dst {
		out[k] = v
	}
	for k, sv := range src {
		dm, dok := out[k].(map[string]any)
		sm, sok := sv.(map[string]any)
		if dok && sok {
			out[k] = deepMerge(dm, sm)
		} else {
			out[k] = sv
		}
	}
	return out
}

// ingestRun finds the run an ingest request is for by its headers.
// The real ingest files rows under whatever the headers say, so a request
// for an unknown run or another project is answered with success; its rows
// are not expected anywhere the UI would show them, and the capture lists
// it as an issue.
func (r *Recorder) ingestRun(req *http.Request) (*capRun, error) {
	id, err := strconv.ParseInt(req.Header.Get("X-Run-Id"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("X-Run-Id %q", req.Header.Get("X-Run-Id"))
	}
	run := r.runOf(id)
	if run == nil {
		return nil, fmt.Errorf("unknown run %d", id)
	}
	project := req.Header.Get("X-Project-Name")
	run.mu.Lock()
	want := run.project
	run.mu.Unlock()
	if project != want {
		// The server would file the rows under that project, where the UI
		// never shows them for this run.
		return nil, fmt.Errorf("run %d belongs to project %q, the request says %q", id, want, project)
	}
	return run, nil
}

func lines(body []byte, fn func(line []byte) error) error {
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		var line []byte
		if i < 0 {
			line, body = body, nil
		} else {
			line, body = body[:i], body[i+1:]
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recorder) metrics(req *http.Request, body []byte) (int, string, []byte) {
	run, err := r.ingestRun(req)
	if err != nil {
		r.issue("metrics: %v", err)
		return http.StatusOK, "text/plain", []byte("Stream processed successfully: 0 records")
	}
	var ml metricLine
	n := 0
	run.mu.Lock()
	before := len(run.buf)
	err = lines(body, func(line []byte) error {
		if err := parseMetricLine(line, &ml); err != nil {
			return err
		}
		for _, v := range ml.values {
			id, ok := run.metricIDs[string(v.name)]
			if !ok {
				id = uint32(len(run.metricName))
				name := string(v.name)
				run.metricIDs[name] = id
				run.metricName = append(run.metricName, name)
				run.metricRows = append(run.metricRows, 0)
			}
			run.metricRows[id]++
			run.buf = run.enc.append(run.buf, point{metric: id, step: ml.step, time: ml.time, bits: v.bits})
			n++
		}
		return nil
	})
	run.rows += int64(n)
	grown := int64(len(run.buf) - before)
	var ferr error
	if len(run.buf) >= runFlushBytes {
		// A busy run writes its own buffer out; the buffer is kept.
		grown -= int64(len(run.buf))
		ferr = run.flush(r.dir)
	}
	run.mu.Unlock()
	r.points.Add(int64(n))
	if ferr == nil && r.buffered.Add(grown) > r.maxBuffer {
		ferr = r.flushAll()
	}
	if ferr != nil {
		e := ferr
		r.flushErr.Store(&e)
		return r.fail(http.StatusInternalServerError, "spool: %v", ferr)
	}
	if err != nil {
		// The ingest stores the lines before a bad one and answers 422.
		return r.fail(http.StatusUnprocessableEntity, "metrics of run %d: %v", run.id, err)
	}
	return http.StatusOK, "text/plain", fmt.Appendf(nil, "Stream processed successfully: %d records", n)
}

// flushAll writes every run's buffered spool bytes to its file.
func (r *Recorder) flushAll() error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	runs := slices.Clone(r.order)
	r.mu.Unlock()
	var errs []error
	for _, run := range runs {
		run.mu.Lock()
		n := len(run.buf)
		err := run.flush(r.dir)
		run.mu.Unlock()
		if err == nil {
			r.buffered.Add(-int64(n))
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		r.flushErr.Store(&err)
		return err
	}
	return nil
}

// flush appends buf to the run's spool file. Caller holds mu.
func (c *capRun) flush(dir string) error {
	if len(c.buf) == 0 {
		return nil
	}
	f, err := os.OpenFile(spoolPath(dir, c.id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	_, err = f.Write(c.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write spool: %w", err)
	}
	c.spooled = true
	c.buf = c.buf[:0]
	if cap(c.buf) > 2*runFlushBytes {
		c.buf = nil
	}
	return nil
}

func (r *Recorder) data(req *http.Request, body []byte) (int, string, []byte) {
	run, err := r.ingestRun(req)
	if err != nil {
		r.issue("data: %v", err)
		return http.StatusOK, "text/plain", []byte("Stream processed successfully: 0 records")
	}
	counts := map[string]int64{}
	n := 0
	err = lines(body, func(line []byte) error {
		var d struct {
			DataType string `json:"dataType"`
			LogName  string `json:"logName"`
		}
		if err := json.Unmarshal(line, &d); err != nil {
			return err
		}
		counts[d.DataType+"\x00"+d.LogName]++
		n++
		return nil
	})
	run.mu.Lock()
	for k, v := range counts {
		run.dataRows[k] += v
	}
	run.mu.Unlock()
	if err != nil {
		return r.fail(http.StatusUnprocessableEntity, "data of run %d: %v", run.id, err)
	}
	return http.StatusOK, "text/plain", fmt.Appendf(nil, "Stream processed successfully: %d records", n)
}

func (r *Recorder) logs(req *http.Request, body []byte) (int, string, []byte) {
	run, err := r.ingestRun(req)
	if err != nil {
		r.issue("logs: %v", err)
		return http.StatusOK, "text/plain", []byte("Stream processed successfully: 0 records")
	}
	n := 0
	lines(body, func([]byte) error { n++; return nil })
	run.mu.Lock()
	run.logLines += int64(n)
	run.mu.Unlock()
	return http.StatusOK, "text/plain", fmt.Appendf(nil, "Stream processed successfully: %d records", n)
}

// ExpectedFile is one file the source registers with a run.
type ExpectedFile struct {
	LogName  string `json:"logName"`
	FileName string `json:"fileName"`
	Step     int64  `json:"step"`
	Size     int64  `json:"size"`
}

func (r *Recorder) filesReq(req *http.Request, body []byte) (int, string, []byte) {
	run, err := r.ingestRun(req)
	if err != nil {
		return r.fail(http.StatusBadRequest, "files: %v", err)
	}
	var in struct {
		Files []struct {
			FileName string `json:"fileName"`
			LogName  string `json:"logName"`
			FileSize int64  `json:"fileSize"`
			Step     int64  `json:"step"`
		} `json:"files"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return r.fail(http.StatusBadRequest, "files of run %d: %v", run.id, err)
	}
	out := map[string][]map[string]string{}
	run.mu.Lock()
	for _, f := range in.Files {
		run.files = append(run.files, ExpectedFile{LogName: f.LogName, FileName: f.FileName, Step: f.Step, Size: f.FileSize})
		u := fmt.Sprintf("http://%s/%d/%s/%s?X-Amz-Signature=verify", captureS3Host, run.id, url.PathEscape(f.LogName), url.PathEscape(f.FileName))
		out[f.LogName] = append(out[f.LogName], map[string]string{f.FileName: u})
	}
	run.mu.Unlock()
	return jsonBody(out)
}

func (r *Recorder) upload(path string, body []byte) (int, string, []byte) {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 2)
	id, err := strconv.ParseInt(parts[0], 10, 64)
	run := r.runOf(id)
	if err != nil || run == nil {
		return r.fail(http.StatusForbidden, "upload to an unknown URL %s", path)
	}
	run.mu.Lock()
	run.uploads++
	run.mu.Unlock()
	_ = body
	return http.StatusOK, "text/plain", nil
}

// Finish writes what is still buffered and returns the capture. The
// recorder refuses requests afterwards.
func (r *Recorder) Finish() (*Capture, error) {
	r.closed.Store(true)
	if err := r.flushAll(); err != nil {
		return nil, err
	}
	if p := r.flushErr.Load(); p != nil {
		return nil, *p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &Capture{dir: r.dir, Issues: slices.Clone(r.issues), Requests: r.requests.Load()}
	for _, run := range r.order {
		run.mu.Lock()
		er := &ExpectedRun{
			CaptureID: run.id, Project: run.project, ExternalID: run.externalID, Name: run.name,
			Tags: slices.Clone(run.tags), Config: run.config, Status: run.status, Statuses: slices.Clone(run.statuses),
			ForkParent: run.forkParent, ForkStep: run.forkStep, LogNames: map[string]string{},
			Metrics: slices.Clone(run.metricName), MetricRows: slices.Clone(run.metricRows), Rows: run.rows,
			LogLines: run.logLines, Files: slices.Clone(run.files), DataRows: map[string]int64{},
		}
		for k, v := range run.logNames {
			er.LogNames[k] = v
		}
		for k, v := range run.dataRows {
			er.DataRows[k] = v
		}
		if run.spooled {
			er.spool = spoolPath(r.dir, run.id)
		}
		run.mu.Unlock()
		c.Runs = append(c.Runs, er)
		c.Points += er.Rows
	}
	return c, nil
}

// Capture is everything the source holds, as the recorder received it.
type Capture struct {
	dir      string
	Runs     []*ExpectedRun
	Points   int64    // metric rows
	Issues   []string // requests the recorder refused
	Requests int64
}

// ExpectedRun is what the source says one run holds on the server.
type ExpectedRun struct {
	CaptureID  int64 // the recorder's id; fork parents refer to it
	Project    string
	ExternalID string
	Name       string
	Tags       []string
	Config     map[string]any
	Status     string   // the status the run ends in
	Statuses   []string // every status the source set, in order
	ForkParent int64    // capture id of the parent, 0 when none
	ForkStep   int64
	LogNames   map[string]string // name -> logType
	Metrics    []string          // metric names by run-local id
	MetricRows []int64           // rows sent per metric id
	Rows       int64             // metric rows sent
	LogLines   int64
	DataRows   map[string]int64 // dataType + "\x00" + logName -> rows
	Files      []ExpectedFile
	spool      string // "" when the run has no metric rows
}

// run returns the expected run with a capture id, or nil.
func (c *Capture) run(captureID int64) *ExpectedRun {
	for _, er := range c.Runs {
		if er.CaptureID == captureID {
			return er
		}
	}
	return nil
}
