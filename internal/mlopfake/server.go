package mlopfake

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a running stand-in. All methods are safe for concurrent use.
type Server struct {
	opts   Options
	log    *slog.Logger
	secret []byte // signs presigned S3 URLs

	listeners map[Service]*listener

	// mu guards the backend (Postgres-side) state: keys, projects, runs.
	mu        sync.Mutex
	keys      map[string]*apiKey
	orgs      map[string]*org // by slug
	projects  map[projectKey]*project
	runs      map[int64]*run
	runOrder  []*run
	nextRunID int64

	streams streams // ingest (ClickHouse-side) rows
	objects objects // S3 objects

	faults    atomic.Pointer[faultState]
	routing   routingFaults
	requests  ring[Request]
	rejected  ring[Rejection]
	cnt       counters
	countRuns atomic.Int64 // run ids handed out in count mode
	reqSeq    atomic.Int64 // numbers the request log

	timersMu sync.Mutex
	timers   []*time.Timer
	closed   atomic.Bool
	close    sync.Once

	reapStop chan struct{} // closed by Close; nil without ReapInterval
	reapDone chan struct{} // closed when reapLoop returns
}

// Start listens on every address in opts and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.Mode == "" {
		opts.Mode = ModeStrict
	}
	if opts.Mode != ModeStrict && opts.Mode != ModeCount {
		return nil, fmt.Errorf("mode %q: want strict or count", opts.Mode)
	}
	if len(opts.Keys) == 0 {
		opts.Keys = []string{DefaultKey}
	}
	if opts.OrgSlug == "" {
		opts.OrgSlug = "test-org"
	}
	if opts.AppURL == "" {
		opts.AppURL = "http://127.0.0.1:3000"
	}
	opts.AppURL = strings.TrimRight(opts.AppURL, "/")
	if opts.Bucket == "" {
		opts.Bucket = "mlop"
	}
	if opts.FirstRunID <= 0 {
		opts.FirstRunID = 1001
	}
	if opts.MaxRequestLog <= 0 {
		opts.MaxRequestLog = 100000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		secret:    make([]byte, 32),
		keys:      make(map[string]*apiKey),
		orgs:      make(map[string]*org),
		projects:  make(map[projectKey]*project),
		runs:      make(map[int64]*run),
		nextRunID: opts.FirstRunID,
	}
	s.requests.max = opts.MaxRequestLog
	s.rejected.max = opts.MaxRequestLog
	if _, err := rand.Read(s.secret); err != nil {
		return nil, fmt.Errorf("generate signing secret: %w", err)
	}
	home := &org{id: "org_" + opts.OrgSlug, slug: opts.OrgSlug}
	other := &org{id: "org_other-org", slug: "other-org"}
	if other.slug == home.slug {
		other = &org{id: "org_other-org-2", slug: "other-org-2"}
	}
	s.orgs[home.slug], s.orgs[other.slug] = home, other
	for _, k := range opts.Keys {
		if err := validKeyFormat(k); err != nil {
			return nil, err
		}
		s.keys[k] = &apiKey{org: home}
	}
	for _, k := range opts.ForeignKeys {
		if err := validKeyFormat(k); err != nil {
			return nil, err
		}
		if _, dup := s.keys[k]; dup {
			return nil, fmt.Errorf("key %q is in both Keys and ForeignKeys", k)
		}
		s.keys[k] = &apiKey{org: other}
	}
	if err := s.SetFaults(opts.Faults); err != nil {
		return nil, err
	}

	addrs := map[Service]string{
		ServiceAPI: opts.APIAddr, ServiceIngest: opts.IngestAddr,
		ServicePy: opts.PyAddr, ServiceS3: opts.S3Addr,
	}
	var handlers map[Service]http.Handler
	if opts.Mode == ModeCount {
		handlers = s.countHandlers()
	} else {
		handlers = map[Service]http.Handler{
			ServiceAPI:    s.apiHandler(),
			ServiceIngest: s.ingestHandler(),
			ServicePy:     s.pyHandler(),
			ServiceS3:     s.s3Handler(),
		}
	}
	// The map is complete before anything serves: handlers read it (URL).
	s.listeners = make(map[Service]*listener, len(AllServices))
	for _, svc := range AllServices {
		addr := addrs[svc]
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		s.listeners[svc] = &listener{svc: svc, addr: addr, handler: s.wrap(svc, handlers[svc]), log: s.log}
	}
	for _, svc := range AllServices {
		if err := s.listeners[svc].start(); err != nil {
			s.Close()
			return nil, fmt.Errorf("listen %s on %s: %w", svc, addrs[svc], err)
		}
	}
	if opts.ReapInterval > 0 && opts.Mode == ModeStrict {
		s.reapStop, s.reapDone = make(chan struct{}), make(chan struct{})
		go s.reapLoop(opts.ReapInterval, s.reapStop, s.reapDone)
	}
	s.log.Info("mlopfake started", "mode", string(opts.Mode),
		"api", s.APIURL(), "ingest", s.IngestURL(), "py", s.PyURL(), "s3", s.S3URL())
	return s, nil
}

// URL returns the base URL of one listener, e.g. "http://127.0.0.1:40123".
// The port stays the same across Down and Up.
func (s *Server) URL(svc Service) string {
	l := s.listeners[svc]
	if l == nil {
		return ""
	}
	return "http://" + l.address()
}

// APIURL is the backend base URL (the SDK's url_api).
func (s *Server) APIURL() string { return s.URL(ServiceAPI) }

// IngestURL is the ingest base URL (url_ingest).
func (s *Server) IngestURL() string { return s.URL(ServiceIngest) }

// PyURL is the py service base URL (url_py).
func (s *Server) PyURL() string { return s.URL(ServicePy) }

// S3URL is the object store base URL that presigned URLs point at.
func (s *Server) S3URL() string { return s.URL(ServiceS3) }

// AppURL is the base of the run URLs the backend returns: Options.AppURL,
// or <api>/_standin/app with Options.AppAtStandin.
func (s *Server) AppURL() string {
	if s.opts.AppAtStandin {
		return s.APIURL() + appPagePrefix
	}
	return s.opts.AppURL
}

// Mode reports the mode the server was started in.
func (s *Server) Mode() Mode { return s.opts.Mode }

// Close stops every listener and pending outage timer. It is idempotent.
func (s *Server) Close() error {
	s.close.Do(func() {
		s.closed.Store(true)
		s.timersMu.Lock()
		for _, t := range s.timers {
			t.Stop()
		}
		s.timers = nil
		s.timersMu.Unlock()
		if s.reapStop != nil {
			close(s.reapStop)
			<-s.reapDone
		}
		for _, svc := range AllServices {
			if l := s.listeners[svc]; l != nil {
				l.stop()
			}
		}
	})
	return nil
}

// Down closes the listeners of svcs (all when none given) together with
// their open connections, so new connections are refused, like a crashed
// service. Up re-listens on the same ports.
func (s *Server) Down(svcs ...Service) {
	if len(svcs) == 0 {
		svcs = AllServices
	}
	for _, svc := range svcs {
		if l := s.listeners[svc]; l != nil {
			l.stop()
			s.log.Info("listener down", "service", string(svc))
		}
	}
}

// Up re-opens listeners closed by Down on their previous addresses.
func (s *Server) Up(svcs ...Service) error {
	if s.closed.Load() {
		return errors.New("server closed")
	}
	if len(svcs) == 0 {
		svcs = AllServices
	}
	var errs []error
	for _, svc := range svcs {
		if l := s.listeners[svc]; l != nil {
			if err := l.start(); err != nil {
				errs = append(errs, fmt.Errorf("listen %s on %s: %w", svc, l.address(), err))
				continue
			}
			s.log.Info("listener up", "service", string(svc))
		}
	}
	return errors.Join(errs...)
}

// IsUp reports whether svc is currently listening.
func (s *Server) IsUp(svc Service) bool {
	l := s.listeners[svc]
	return l != nil && l.isUp()
}

// DownFor takes svcs down now and brings them back after d. Close cancels
// the pending Up.
func (s *Server) DownFor(d time.Duration, svcs ...Service) {
	s.Down(svcs...)
	s.after(d, func() {
		if err := s.Up(svcs...); err != nil {
			s.log.Error("outage end: re-listen failed", "err", err)
		}
	})
}

// after runs fn after d unless the server is closed first.
func (s *Server) after(d time.Duration, fn func()) {
	s.timersMu.Lock()
	defer s.timersMu.Unlock()
	if s.closed.Load() {
		return
	}
	s.timers = append(s.timers, time.AfterFunc(d, func() {
		if !s.closed.Load() {
			fn()
		}
	}))
}

// listener is one service's socket plus the http.Server serving it. The
// http.Server is replaced on every Up; mu serialises start and stop.
type listener struct {
	svc     Service
	handler http.Handler
	log     *slog.Logger

	mu    sync.Mutex
	addr  string // host:port; fixed to the bound port after the first start
	bound bool   // started at least once: a re-listen may race the kernel
	srv   *http.Server
	done  chan struct{} // closed when srv.Serve returns
}

func (l *listener) address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr
}

func (l *listener) isUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.srv != nil
}

func (l *listener) start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv != nil {
		return nil
	}
	// Re-binding right after Close can race the kernel releasing the port;
	// Go sets SO_REUSEADDR, so a short retry is enough.
	attempts := 1
	if l.bound {
		attempts = 50
	}
	var ln net.Listener
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if ln, err = net.Listen("tcp", l.addr); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	l.addr, l.bound = ln.Addr().String(), true
	srv := &http.Server{
		Handler:           l.handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.log.Error("serve failed", "service", string(l.svc), "err", err)
		}
	}()
	l.srv, l.done = srv, done
	return nil
}

func (l *listener) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv == nil {
		return
	}
	_ = l.srv.Close() // closes the listener and every open connection
	<-l.done
	l.srv, l.done = nil, nil
}

// Request is one entry of the request log.
type Request struct {
	Seq           int64         `json:"seq"`
	Time          time.Time     `json:"time"`
	Service       Service       `json:"service"`
	Method        string        `json:"method"`
	Path          string        `json:"path"`
	RunIDHeader   string        `json:"runIdHeader,omitempty"`
	Status        int           `json:"status"`                // as sent; 0 when the connection was dropped
	HandlerStatus int           `json:"handlerStatus"`         // what the handler chose before an accept-then-fail fault
	RequestBytes  int64         `json:"requestBytes"`          // body bytes read
	ResponseBytes int64         `json:"responseBytes"`         // body bytes written (compressed size when gzipped)
	Fault         string        `json:"fault,omitempty"`       // "", "fail", "accept-then-fail", "routing-404" or "redirect"
	Duration      time.Duration `json:"durationNs"`            // handling time
	Gzip          bool          `json:"gzip,omitempty"`        // response was gzip-compressed
	Error         string        `json:"error,omitempty"`       // e.g. "aborted"
	Records       int           `json:"records,omitempty"`     // rows stored by an ingest stream
	Reason        string        `json:"reason,omitempty"`      // rejection reason, when rejected
	ContentType   string        `json:"contentType,omitempty"` // request Content-Type
}

// Rejection is a 4xx/5xx the stand-in chose by validation (not an injected
// fault), with the reason.
type Rejection struct {
	Time        time.Time `json:"time"`
	Service     Service   `json:"service"`
	Method      string    `json:"method"`
	Path        string    `json:"path"`
	RunIDHeader string    `json:"runIdHeader,omitempty"`
	Status      int       `json:"status"`
	Reason      string    `json:"reason"`
}

// Requests returns the request log, oldest first (bounded by MaxRequestLog).
func (s *Server) Requests() []Request { return s.requests.snapshot() }

// Rejected returns every validation rejection, oldest first (bounded).
func (s *Server) Rejected() []Rejection { return s.rejected.snapshot() }

// reqCtxKey carries the per-request record so handlers can annotate it.
type reqCtxKey struct{}

type reqInfo struct {
	reason  string
	records int
}

func infoOf(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(reqCtxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// reject records a validation rejection. The handler writes the response.
func (s *Server) reject(svc Service, r *http.Request, status int, reason string) {
	infoOf(r).reason = reason
	s.cnt.rejected.Add(1)
	rej := Rejection{
		Time: time.Now(), Service: svc, Method: r.Method, Path: r.URL.Path,
		RunIDHeader: r.Header.Get("X-Run-Id"), Status: status, Reason: reason,
	}
	s.rejected.add(rej)
	s.log.Info("rejected", "service", string(svc), "method", r.Method, "path", r.URL.Path,
		"status", status, "reason", reason)
}

// wrap adds the request log, fault injection and latency around one
// listener's handler.
func (s *Server) wrap(svc Service, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if svc == ServiceAPI && strings.HasPrefix(r.URL.Path, standinPrefix) {
			h.ServeHTTP(w, r) // inspection: never logged, faulted or delayed
			return
		}
		start := time.Now()
		s.cnt.requests.Add(1)
		body := &countingReader{r: r.Body}
		r.Body = body
		ri := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqCtxKey{}, ri))
		sw := &statusWriter{ResponseWriter: w}
		rec := Request{
			Time: start, Service: svc, Method: r.Method, Path: r.URL.Path,
			RunIDHeader: r.Header.Get("X-Run-Id"), ContentType: r.Header.Get("Content-Type"),
		}
		finish := func() {
			if s.opts.Mode == ModeCount {
				return
			}
			rec.Duration = time.Since(start)
			rec.RequestBytes = body.n
			rec.ResponseBytes = sw.n
			rec.Gzip = sw.Header().Get("Content-Encoding") == "gzip"
			rec.Reason, rec.Records = ri.reason, ri.records
			rec.Seq = s.reqSeq.Add(1)
			s.requests.add(rec)
		}
		defer func() {
			if p := recover(); p != nil {
				rec.Status, rec.Error = 0, "aborted"
				finish()
				panic(p)
			}
		}()

		if kind := s.takeRouting(svc); kind != 0 {
			drain(r.Body)
			rec.Status, rec.Fault = writeRouting(sw, r, kind)
			finish()
			return
		}
		d := s.decide(svc)
		if d.latency > 0 {
			t := time.NewTimer(d.latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
			}
		}
		switch d.kind {
		case faultFail:
			s.cnt.injectedFail.Add(1)
			rec.Fault = "fail"
			drain(r.Body)
			writeInjected(sw, d.status)
			rec.Status, rec.HandlerStatus = d.status, 0
		case faultAcceptThenFail:
			s.cnt.injectedAcceptThenFail.Add(1)
			rec.Fault = "accept-then-fail"
			sink := &swallowWriter{header: make(http.Header)}
			h.ServeHTTP(sink, r)
			drain(r.Body)
			writeInjected(sw, http.StatusInternalServerError)
			rec.Status, rec.HandlerStatus = http.StatusInternalServerError, sink.status()
		default:
			h.ServeHTTP(sw, r)
			drain(r.Body) // so RequestBytes counts what the client sent
			rec.Status = sw.status()
			rec.HandlerStatus = rec.Status
		}
		finish()
	})
}

func writeInjected(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Mlopfake-Fault", "injected")
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "mlopfake: injected fault %d %s\n", status, http.StatusText(status))
}

// drain reads what is left of a request body (bounded) so the client gets
// the response instead of a reset while it is still writing.
func drain(r io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 256<<20))
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

type statusWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// swallowWriter discards a response that an accept-then-fail fault replaces.
type swallowWriter struct {
	header http.Header
	code   int
}

func (w *swallowWriter) Header() http.Header { return w.header }
func (w *swallowWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *swallowWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(p), nil
}
func (w *swallowWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// ring is a bounded log that keeps the newest max entries.
type ring[T any] struct {
	mu    sync.Mutex
	max   int
	buf   []T
	next  int
	total int64
}

func (r *ring[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if len(r.buf) < r.max {
		r.buf = append(r.buf, v)
		return
	}
	r.buf[r.next] = v
	r.next = (r.next + 1) % r.max
}

func (r *ring[T]) snapshot() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]T, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

func (r *ring[T]) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// counters are the server-wide tallies; see Counters.
type counters struct {
	requests, rejected                               atomic.Int64
	injectedFail, injectedAcceptThenFail             atomic.Int64
	metricRequests, metricLines, metricPoints        atomic.Int64
	metricBlankLines, metricBadLines                 atomic.Int64
	dataLines, logLines, dataBadLines, logBadLines   atomic.Int64
	fileRequests, filesPresigned, s3Puts, s3PutBytes atomic.Int64
	heartbeats, alerts, runsCreated, runsResumed     atomic.Int64
	ingestBytes                                      atomic.Int64
}

// Counters is a snapshot of the server-wide tallies.
type Counters struct {
	Requests               int64 `json:"requests"`
	Rejected               int64 `json:"rejected"`
	InjectedFail           int64 `json:"injectedFail"`
	InjectedAcceptThenFail int64 `json:"injectedAcceptThenFail"`
	MetricRequests         int64 `json:"metricRequests"`
	MetricLines            int64 `json:"metricLines"`      // accepted (stored) metric lines
	MetricPoints           int64 `json:"metricPoints"`     // stored raw metric rows (count mode: points seen)
	MetricBlankLines       int64 `json:"metricBlankLines"` // skipped blank lines
	MetricBadLines         int64 `json:"metricBadLines"`   // lines that ended a request with 422
	DataLines              int64 `json:"dataLines"`
	DataBadLines           int64 `json:"dataBadLines"`
	LogLines               int64 `json:"logLines"`
	LogBadLines            int64 `json:"logBadLines"`
	FileRequests           int64 `json:"fileRequests"`
	FilesPresigned         int64 `json:"filesPresigned"`
	S3Puts                 int64 `json:"s3Puts"`
	S3PutBytes             int64 `json:"s3PutBytes"`
	Heartbeats             int64 `json:"heartbeats"`
	Alerts                 int64 `json:"alerts"`
	RunsCreated            int64 `json:"runsCreated"`
	RunsResumed            int64 `json:"runsResumed"`
	IngestBytes            int64 `json:"ingestBytes"` // NDJSON body bytes read
}

// Counters returns the current tallies.
func (s *Server) Counters() Counters {
	c := &s.cnt
	return Counters{
		Requests: c.requests.Load(), Rejected: c.rejected.Load(),
		InjectedFail: c.injectedFail.Load(), InjectedAcceptThenFail: c.injectedAcceptThenFail.Load(),
		MetricRequests: c.metricRequests.Load(), MetricLines: c.metricLines.Load(),
		MetricPoints: c.metricPoints.Load(), MetricBlankLines: c.metricBlankLines.Load(),
		MetricBadLines: c.metricBadLines.Load(),
		DataLines:      c.dataLines.Load(), DataBadLines: c.dataBadLines.Load(),
		LogLines: c.logLines.Load(), LogBadLines: c.logBadLines.Load(),
		FileRequests: c.fileRequests.Load(), FilesPresigned: c.filesPresigned.Load(),
		S3Puts: c.s3Puts.Load(), S3PutBytes: c.s3PutBytes.Load(),
		Heartbeats: c.heartbeats.Load(), Alerts: c.alerts.Load(),
		RunsCreated: c.runsCreated.Load(), RunsResumed: c.runsResumed.Load(),
		IngestBytes: c.ingestBytes.Load(),
	}
}
