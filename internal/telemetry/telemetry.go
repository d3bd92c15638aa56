// Package telemetry is the agent's self-observability: Prometheus metrics
// on a registry of its own, and the optional HTTP listener that serves them
// with health, readiness and flush endpoints.
//
// It is the only package that imports client_golang (internal/archtest
// enforces that). The agent calls plain methods on *Telemetry; no
// Prometheus type appears in any exported signature. Every method is safe on
// a nil *Telemetry and then does nothing, so the agent runs unchanged
// without telemetry.
//
// Label values come from closed sets: sources are the configured source
// names (at most 256 of them, the rest counted as "_other"),
// endpoints, reasons and statuses are fixed lists, and anything outside a
// list is counted as "other". Per-file data (lag) is aggregated per source
// at scrape time, never exported per path.
//
// The hot-path methods (RecordsRead, LinesSent, PointsSent, Request,
// BatchSize, ...) do not allocate once a label combination has been seen:
// children of the metric vectors are resolved once and kept in fixed
// arrays or a copy-on-write map.
package telemetry

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric of the agent.
const namespace = "mlop_agent"

// maxSources bounds the source label. Sources come from the configuration,
// so the bound is only hit by a bug; past it, series go to otherSource
// rather than growing without limit.
const maxSources = 256

// otherSource is the source label used once maxSources-1 distinct sources
// have been seen. Names that map to it are remembered (so they stay on the
// lock-free path) up to maxSourceNames entries in all.
const (
	otherSource    = "_other"
	maxSourceNames = 4 * maxSources
)

// Options configure New. The zero value is usable.
type Options struct {
	// Version is exported as mlop_agent_build_info{version}.
	Version string
	// Sources are the configured source names. Their per-source series
	// are created at start (at zero), so rates and alerts work before the
	// first event. Other names are added when first seen.
	Sources []string
	// Now is the clock for mlop_agent_checkpoint_age_seconds; nil means
	// time.Now. Tests inject a fake one.
	Now func() time.Time
	// Logger receives errors of the HTTP listener and of scrapes; nil
	// discards them.
	Logger *slog.Logger
}

// Telemetry holds the agent's metrics. Create it with New; a nil
// *Telemetry is valid and records nothing.
type Telemetry struct {
	reg     *prometheus.Registry
	handler http.Handler
	now     func() time.Time
	log     *slog.Logger
	start   time.Time

	// Per source. sources is a copy-on-write map read without locks on
	// the hot path; srcMu serialises writers.
	sources       atomic.Pointer[map[string]*sourceSet]
	srcMu         sync.Mutex
	nLabels       int // distinct source labels; guarded by srcMu
	recordsRead   *prometheus.CounterVec
	recordsBad    *prometheus.CounterVec
	valuesSkipped *prometheus.CounterVec
	filesWatched  *prometheus.GaugeVec
	filesOpen     *prometheus.GaugeVec

	// Sending. The per-endpoint and per-(endpoint, status) children are
	// resolved lazily into these fixed arrays, so label combinations that
	// never happen export nothing and the ones that do cost one atomic
	// load to find.
	linesSentVec     *prometheus.CounterVec
	linesRejectedVec *prometheus.CounterVec
	requestsVec      *prometheus.CounterVec
	retriesVec       *prometheus.CounterVec
	failuresVec      *prometheus.CounterVec
	durationVec      *prometheus.HistogramVec
	batchLinesVec    *prometheus.HistogramVec
	batchBytesVec    *prometheus.HistogramVec
	linesSent        [nEndpoints]slot[prometheus.Counter]
	linesRejected    [nEndpoints]slot[prometheus.Counter]
	requests         [nEndpoints][nStatuses]slot[prometheus.Counter]
	retries          [nEndpoints][nStatuses]slot[prometheus.Counter]
	failures         [nEndpoints][nStatuses]slot[prometheus.Counter]
	duration         [nEndpoints]slot[prometheus.Observer]
	batchLines       [nEndpoints]slot[prometheus.Observer]
	batchBytes       [nEndpoints]slot[prometheus.Observer]
	pointsSent       prometheus.Counter
	deadLettered     prometheus.Counter

	// Runs.
	runsActive   prometheus.Gauge
	runsCreated  [2]prometheus.Counter // [0] new, [1] resumed
	runsFinished [nRunStatuses]prometheus.Counter

	// Checkpoint. lastSave is unix nanoseconds of the newest successful
	// save (0: none yet); the age gauge reads it at scrape time.
	lastSave         atomic.Int64
	checkpointSaves  prometheus.Counter
	checkpointFails  prometheus.Counter
	checkpointSaveDu prometheus.Histogram

	// Buffer.
	bufferBytes prometheus.Gauge
	bufferLimit prometheus.Gauge

	// lagFunc is called at scrape time; nil reports zero lag.
	lagFunc atomic.Pointer[func() []Lag]
}

// sourceSet holds the resolved series of one source.
type sourceSet struct {
	label    string
	read     prometheus.Counter
	rejected []prometheus.Counter // by reasonNames
	skipped  [nSkipReasons]prometheus.Counter
	watched  prometheus.Gauge
	open     prometheus.Gauge
}

// slot is a lazily resolved child of a metric vector. Once set it never
// changes, so readers need only an atomic load.
type slot[T any] struct{ p atomic.Pointer[T] }

// Buckets. Batch sizes follow the agent's defaults (batch.max_lines 5000,
// batch.max_bytes 1 MiB) with room either side; request durations span a
// loopback answer to a retry-worthy stall.
var (
	requestBuckets    = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	batchLineBuckets  = []float64{1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 50000}
	batchByteBuckets  = []float64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}
	checkpointBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

// New creates the metrics on a registry of their own, together with the Go
// runtime and process collectors.
func New(opts Options) *Telemetry {
	t := &Telemetry{reg: prometheus.NewRegistry(), now: opts.Now, log: opts.Logger}
	if t.now == nil {
		t.now = time.Now
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.start = t.now()
	empty := map[string]*sourceSet{}
	t.sources.Store(&empty)

	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	gaugeVec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	histVec := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	}

	t.recordsRead = counterVec("records_read_total", "Records (lines, stream entries) read, by source.", "source")
	t.recordsBad = counterVec("records_rejected_total", "Records passed over as bad, by source and reason.", "source", "reason")
	t.valuesSkipped = counterVec("values_skipped_total", "Values dropped without making the record bad (booleans, nulls, arrays, strings), by source and reason.", "source", "reason")
	t.filesWatched = gaugeVec("files_watched", "Files the source's globs currently match.", "source")
	t.filesOpen = gaugeVec("files_open", "File descriptors the source currently holds open.", "source")

	t.linesSentVec = counterVec("lines_sent_total", "Lines (metric lines, data rows, log lines, files, control operations) acknowledged by the server, by endpoint.", "endpoint")
	t.linesRejectedVec = counterVec("lines_rejected_total", "Lines the server rejected permanently or that were given up on, by endpoint.", "endpoint")
	t.requestsVec = counterVec("requests_total", "Requests to the server by endpoint and status (an HTTP code, a class such as 4xx, or error for no answer); one per attempt.", "endpoint", "status")
	t.retriesVec = counterVec("request_retries_total", "Request attempts that will be retried, by endpoint and status.", "endpoint", "status")
	t.failuresVec = counterVec("request_failures_total", "Requests that failed permanently (no retry), by endpoint and status.", "endpoint", "status")
	t.durationVec = histVec("request_duration_seconds", "Duration of one request attempt, by endpoint.", requestBuckets, "endpoint")
	t.batchLinesVec = histVec("batch_lines", "Lines per batch sent, by endpoint.", batchLineBuckets, "endpoint")
	t.batchBytesVec = histVec("batch_bytes", "Encoded bytes per batch sent, by endpoint.", batchByteBuckets, "endpoint")
	t.pointsSent = counter("points_sent_total", "Metric points acknowledged by the server.")
	t.deadLettered = counter("dead_letter_entries_total", "Entries written to the dead-letter file.")

	t.runsActive = gauge("runs_active", "Runs the agent currently feeds.")
	runsCreated := counterVec("runs_created_total", "Runs created on the server (resumed=false) or resumed by their external id (resumed=true).", "resumed")
	t.runsCreated[0] = runsCreated.WithLabelValues("false")
	t.runsCreated[1] = runsCreated.WithLabelValues("true")
	runsFinished := counterVec("runs_finished_total", "Runs the agent finished, by final status.", "status")
	for i, s := range runStatusNames {
		t.runsFinished[i] = runsFinished.WithLabelValues(s)
	}

	t.checkpointSaves = counter("checkpoint_saves_total", "Checkpoint saves that completed.")
	t.checkpointFails = counter("checkpoint_failures_total", "Checkpoint saves that failed.")
	t.checkpointSaveDu = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "checkpoint_save_duration_seconds",
		Help: "Duration of a checkpoint save (write, fsync, rename, fsync of the directory).", Buckets: checkpointBuckets})
	checkpointAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "checkpoint_age_seconds",
		Help: "Seconds since the last completed checkpoint save, or since start when there was none yet."}, t.checkpointAge)

	t.bufferBytes = gauge("buffer_bytes", "Bytes of read but unacknowledged data held in memory.")
	t.bufferLimit = gauge("buffer_limit_bytes", "The memory budget for unacknowledged data (buffer.max_bytes).")

	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; the version label names the running agent.", ConstLabels: prometheus.Labels{"version": opts.Version}})
	buildInfo.Set(1)

	t.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		t.recordsRead, t.recordsBad, t.valuesSkipped, t.filesWatched, t.filesOpen,
		t.linesSentVec, t.linesRejectedVec, t.requestsVec, t.retriesVec, t.failuresVec,
		t.durationVec, t.batchLinesVec, t.batchBytesVec, t.pointsSent, t.deadLettered,
		t.runsActive, runsCreated, runsFinished,
		t.checkpointSaves, t.checkpointFails, t.checkpointSaveDu, checkpointAge,
		t.bufferBytes, t.bufferLimit, buildInfo,
		&lagCollector{t: t},
	)
	for _, s := range opts.Sources {
		t.source(s)
	}

	h := promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{t.log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            t.reg,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
	t.handler = promhttp.InstrumentMetricHandler(t.reg, h)
	return t
}

// Handler serves the metrics in the Prometheus text format. It is what the
// listener mounts at /metrics; nil on a nil *Telemetry.
func (t *Telemetry) Handler() http.Handler {
	if t == nil {
		return nil
	}
	return t.handler
}

// promLogger adapts slog to promhttp's error log.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("metrics scrape error", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}

// ---- sources ----

// source returns the series of a source, creating them on first sight.
func (t *Telemetry) source(name string) *sourceSet {
	if s := (*t.sources.Load())[name]; s != nil {
		return s
	}
	t.srcMu.Lock()
	defer t.srcMu.Unlock()
	cur := *t.sources.Load()
	if s := cur[name]; s != nil {
		return s
	}
	label := name
	if t.nLabels >= maxSources-1 {
		label = otherSource
	}
	s := cur[label]
	if s != nil && len(cur) >= maxSourceNames {
		// Out of labels and aliases: answer from the overflow set
		// without remembering the name (only a bug gets here).
		return s
	}
	if s == nil {
		t.nLabels++
		s = &sourceSet{
			label:   label,
			read:    t.recordsRead.WithLabelValues(label),
			watched: t.filesWatched.WithLabelValues(label),
			open:    t.filesOpen.WithLabelValues(label),
		}
		s.rejected = make([]prometheus.Counter, len(reasonNames))
		for i, r := range reasonNames {
			s.rejected[i] = t.recordsBad.WithLabelValues(label, r)
		}
		for i, r := range skipReasonNames {
			s.skipped[i] = t.valuesSkipped.WithLabelValues(label, r)
		}
	}
	next := make(map[string]*sourceSet, len(cur)+2)
	for k, v := range cur {
		next[k] = v
	}
	next[name] = s
	next[label] = s
	t.sources.Store(&next)
	return s
}

// RecordsRead counts n records read by a source.
func (t *Telemetry) RecordsRead(source string, n int) {
	if t == nil || n <= 0 {
		return
	}
	t.source(source).read.Add(float64(n))
}

// Reasons a record is rejected (RecordRejected): parsers' one table
// (parsers.BadReasons); anything else counts as "other".
const (
	ReasonUnreadable = parsers.ReasonUnreadable
	ReasonOther      = parsers.ReasonOther
)

var reasonNames = parsers.BadReasons

func reasonIndex(r string) int {
	for i, n := range reasonNames {
		if n == r {
			return i
		}
	}
	return len(reasonNames) - 1 // other
}

// RecordRejected counts one bad record of a source. Unknown reasons count
// as "other".
func (t *Telemetry) RecordRejected(source, reason string) {
	if t == nil {
		return
	}
	t.source(source).rejected[reasonIndex(reason)].Inc()
}

// Reasons a value is skipped (ValueSkipped); they match the parsers' Skip*
// constants.
const (
	SkipBool   = "bool"
	SkipNull   = "null"
	SkipArray  = "array"
	SkipString = "string"
	SkipOther  = "other"
)

var skipReasonNames = [...]string{SkipBool, SkipNull, SkipArray, SkipString, SkipOther}

const nSkipReasons = len(skipReasonNames)

func skipIndex(r string) int {
	for i, n := range skipReasonNames {
		if n == r {
			return i
		}
	}
	return nSkipReasons - 1
}

// ValueSkipped counts one value a source's parser dropped without making
// the record bad. Unknown reasons count as "other".
func (t *Telemetry) ValueSkipped(source, reason string) {
	if t == nil {
		return
	}
	t.source(source).skipped[skipIndex(reason)].Inc()
}

// FilesWatched sets how many files a source's globs match.
func (t *Telemetry) FilesWatched(source string, n int) {
	if t == nil {
		return
	}
	t.source(source).watched.Set(float64(n))
}

// FilesOpen sets how many descriptors a source holds open.
func (t *Telemetry) FilesOpen(source string, n int) {
	if t == nil {
		return
	}
	t.source(source).open.Set(float64(n))
}

// ---- sending ----

// Endpoints (the endpoint label). EndpointUpload is the presigned PUT of a
// file's bytes, which goes to object storage rather than the mlop server.
const (
	EndpointMetrics   = "metrics"
	EndpointData      = "data"
	EndpointLogs      = "logs"
	EndpointFiles     = "files"
	EndpointUpload    = "upload"
	EndpointCreateRun = "create_run"
	EndpointLogNames  = "log_names"
	EndpointTags      = "tags"
	EndpointConfig    = "config"
	EndpointStatus    = "status"
	EndpointTrigger   = "trigger"
	EndpointOther     = "other"
)

var endpointNames = [...]string{EndpointMetrics, EndpointData, EndpointLogs, EndpointFiles, EndpointUpload,
	EndpointCreateRun, EndpointLogNames, EndpointTags, EndpointConfig, EndpointStatus, EndpointTrigger, EndpointOther}

const nEndpoints = len(endpointNames)

func endpointIndex(e string) int {
	switch e {
	case EndpointMetrics:
		return 0
	case EndpointData:
		return 1
	case EndpointLogs:
		return 2
	case EndpointFiles:
		return 3
	case EndpointUpload:
		return 4
	case EndpointCreateRun:
		return 5
	case EndpointLogNames:
		return 6
	case EndpointTags:
		return 7
	case EndpointConfig:
		return 8
	case EndpointStatus:
		return 9
	case EndpointTrigger:
		return 10
	}
	return nEndpoints - 1
}

// knownCodes are the HTTP codes exported as themselves; other codes are
// exported by class ("4xx"). These are the codes the mlop server, its
// ingest and object storage answer with, and the ones the retry policy
// distinguishes.
var knownCodes = [...]int{200, 201, 202, 204, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 501, 502, 503, 504}

// statusNames: the known codes, then the classes 1xx..5xx, then "error"
// (no answer) and "other" (not an HTTP code).
var statusNames = func() [len(knownCodes) + 7]string {
	var s [len(knownCodes) + 7]string
	for i, c := range knownCodes {
		s[i] = strconv.Itoa(c)
	}
	n := len(knownCodes)
	copy(s[n:], []string{"1xx", "2xx", "3xx", "4xx", "5xx", StatusError, "other"})
	return s
}()

// StatusError is the status label of a request that got no HTTP answer
// (connection refused, reset, timeout). Pass a status <= 0 for it.
const StatusError = "error"

const nStatuses = len(statusNames)

func statusIndex(code int) int {
	if code <= 0 {
		return nStatuses - 2
	}
	for i, c := range knownCodes {
		if c == code {
			return i
		}
	}
	if code >= 100 && code < 600 {
		return len(knownCodes) + code/100 - 1
	}
	return nStatuses - 1
}

// counterFor returns the child of vec for lvs, resolving it into s once.
func counterFor(s *slot[prometheus.Counter], vec *prometheus.CounterVec, lvs ...string) prometheus.Counter {
	if p := s.p.Load(); p != nil {
		return *p
	}
	c := vec.WithLabelValues(lvs...)
	s.p.CompareAndSwap(nil, &c)
	return *s.p.Load()
}

// observerFor is counterFor for histograms.
func observerFor(s *slot[prometheus.Observer], vec *prometheus.HistogramVec, lvs ...string) prometheus.Observer {
	if p := s.p.Load(); p != nil {
		return *p
	}
	o := vec.WithLabelValues(lvs...)
	s.p.CompareAndSwap(nil, &o)
	return *s.p.Load()
}

// The lookups below keep the fast path (one atomic load) inline in the
// caller and leave WithLabelValues, which hashes the label values and takes
// the vector's read lock (about 40 ns against 3 ns), to the first use of a
// combination.

func requestCounter(tab *[nEndpoints][nStatuses]slot[prometheus.Counter], vec *prometheus.CounterVec, e, s int) prometheus.Counter {
	if p := tab[e][s].p.Load(); p != nil {
		return *p
	}
	return counterFor(&tab[e][s], vec, endpointNames[e], statusNames[s])
}

func endpointCounter(tab *[nEndpoints]slot[prometheus.Counter], vec *prometheus.CounterVec, e int) prometheus.Counter {
	if p := tab[e].p.Load(); p != nil {
		return *p
	}
	return counterFor(&tab[e], vec, endpointNames[e])
}

func endpointObserver(tab *[nEndpoints]slot[prometheus.Observer], vec *prometheus.HistogramVec, e int) prometheus.Observer {
	if p := tab[e].p.Load(); p != nil {
		return *p
	}
	return observerFor(&tab[e], vec, endpointNames[e])
}

// LinesSent counts n lines of an endpoint acknowledged by the server.
func (t *Telemetry) LinesSent(endpoint string, n int) {
	if t == nil || n <= 0 {
		return
	}
	endpointCounter(&t.linesSent, t.linesSentVec, endpointIndex(endpoint)).Add(float64(n))
}

// PointsSent counts n metric points acknowledged by the server.
func (t *Telemetry) PointsSent(n int) {
	if t == nil || n <= 0 {
		return
	}
	t.pointsSent.Add(float64(n))
}

// Request records one request attempt: its endpoint, its HTTP status (<= 0
// when there was no answer) and how long it took.
func (t *Telemetry) Request(endpoint string, status int, d time.Duration) {
	if t == nil {
		return
	}
	e := endpointIndex(endpoint)
	requestCounter(&t.requests, t.requestsVec, e, statusIndex(status)).Inc()
	endpointObserver(&t.duration, t.durationVec, e).Observe(d.Seconds())
}

// Retry counts an attempt that failed with status (<= 0: no answer) and
// will be retried.
func (t *Telemetry) Retry(endpoint string, status int) {
	if t == nil {
		return
	}
	requestCounter(&t.retries, t.retriesVec, endpointIndex(endpoint), statusIndex(status)).Inc()
}

// Failure counts a request that failed for good: a permanent rejection, or
// a transient error after the configured attempts.
func (t *Telemetry) Failure(endpoint string, status int) {
	if t == nil {
		return
	}
	requestCounter(&t.failures, t.failuresVec, endpointIndex(endpoint), statusIndex(status)).Inc()
}

// BatchSize records the size of one batch sent to an endpoint.
func (t *Telemetry) BatchSize(endpoint string, lines int, bytes int) {
	if t == nil {
		return
	}
	e := endpointIndex(endpoint)
	endpointObserver(&t.batchLines, t.batchLinesVec, e).Observe(float64(lines))
	endpointObserver(&t.batchBytes, t.batchBytesVec, e).Observe(float64(bytes))
}

// LinesRejected counts n lines of an endpoint the server refused for good
// (or that were given up on); they are dead-lettered.
func (t *Telemetry) LinesRejected(endpoint string, n int) {
	if t == nil || n <= 0 {
		return
	}
	endpointCounter(&t.linesRejected, t.linesRejectedVec, endpointIndex(endpoint)).Add(float64(n))
}

// DeadLettered counts n entries written to the dead-letter file.
func (t *Telemetry) DeadLettered(n int) {
	if t == nil || n <= 0 {
		return
	}
	t.deadLettered.Add(float64(n))
}

// ---- runs ----

// Final run statuses (the status label of mlop_agent_runs_finished_total),
// lowercased from the mlop statuses; anything else is "other".
var runStatusNames = [...]string{"completed", "failed", "terminated", "cancelled", "other"}

const nRunStatuses = len(runStatusNames)

// RunsActive sets how many runs the agent currently feeds.
func (t *Telemetry) RunsActive(n int) {
	if t == nil {
		return
	}
	t.runsActive.Set(float64(n))
}

// RunCreated counts a run created on the server, or resumed by its
// external id.
func (t *Telemetry) RunCreated(resumed bool) {
	if t == nil {
		return
	}
	if resumed {
		t.runsCreated[1].Inc()
	} else {
		t.runsCreated[0].Inc()
	}
}

// RunFinished counts a run the agent finished with status (COMPLETED,
// FAILED, TERMINATED or CANCELLED, in any case).
func (t *Telemetry) RunFinished(status string) {
	if t == nil {
		return
	}
	i := nRunStatuses - 1
	for j, s := range runStatusNames[:nRunStatuses-1] {
		if strings.EqualFold(s, status) {
			i = j
			break
		}
	}
	t.runsFinished[i].Inc()
}

// ---- checkpoint ----

// CheckpointSaved records a completed checkpoint save that finished at
// at and took d.
func (t *Telemetry) CheckpointSaved(at time.Time, d time.Duration) {
	if t == nil {
		return
	}
	ns := at.UnixNano()
	for {
		cur := t.lastSave.Load()
		if ns <= cur || t.lastSave.CompareAndSwap(cur, ns) {
			break
		}
	}
	t.checkpointSaves.Inc()
	t.checkpointSaveDu.Observe(d.Seconds())
}

// CheckpointFailed counts a checkpoint save that failed.
func (t *Telemetry) CheckpointFailed() {
	if t == nil {
		return
	}
	t.checkpointFails.Inc()
}

// checkpointAge is evaluated at scrape time.
func (t *Telemetry) checkpointAge() float64 {
	last := t.start
	if ns := t.lastSave.Load(); ns != 0 {
		last = time.Unix(0, ns)
	}
	return max(t.now().Sub(last).Seconds(), 0)
}

// ---- buffer ----

// BufferBytes sets the bytes of unacknowledged data held in memory.
func (t *Telemetry) BufferBytes(n int64) {
	if t == nil {
		return
	}
	t.bufferBytes.Set(float64(n))
}

// BufferLimit sets the memory budget for unacknowledged data.
func (t *Telemetry) BufferLimit(n int64) {
	if t == nil {
		return
	}
	t.bufferLimit.Set(float64(n))
}
