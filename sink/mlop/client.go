// Package mlop is the HTTP client for an mlop / pluto experiment tracker
// (mlop-api.md is the wire protocol): runs, log names, tags, config, status,
// heartbeats, NDJSON ingest of metrics / data / logs, and file uploads, with
// retries. It also holds the NDJSON line encoders the agent builds batch
// bodies with, and the client of the server's read API (read.go: GET
// requests only — run list and details, raw metric rows paged by step,
// files, logs, status history), which mlop-agent verify uses. A client built
// with Options.ReadOnly refuses every other request before sending it.
//
// Every call takes a context first and retries per the policy below until it
// succeeds, fails permanently, runs out of attempts (Options.MaxAttempts) or
// the context is done. Errors are classified for errors.Is/As with the
// sentinels and *sink.StatusError of package sink.
//
// Retry policy (go-retryablehttp, wrapped; see retry.go):
//   - retried: connection errors and timeouts, 408, 429, 5xx except 501;
//   - not retried: every other status, TLS verification failures, redirect
//     loops, malformed URLs or headers, a done context;
//   - waits: exponential from InitialBackoff with full jitter, capped at
//     MaxBackoff; a Retry-After header (seconds or HTTP date) replaces the
//     computed wait but is capped at MaxBackoff too;
//   - every attempt has its own timeout (Options.Timeout).
//
// Retrying a POST is safe for what the agent sends: metric lines are
// deduplicated by the server per (run, metric, step), run creation with an
// externalId is idempotent, tags and config are full replacements or deep
// merges. Data and log lines and file registrations are not deduplicated, so
// a request that timed out after the server stored it is stored twice: the
// delivery guarantee is at-least-once.
//
// The API key goes only into the Authorization header of requests to the
// three configured base URLs. It is never logged, never part of an error, and
// never sent with the presigned upload PUT.
package mlop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/mlop-ai/mlop-agent/sink"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout         = 30 * time.Second
	DefaultInitialBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
	DefaultMaxConnsPerHost = 64
	// TriggerTimeout bounds the single attempt of a heartbeat (Trigger).
	TriggerTimeout = 5 * time.Second
)

// Limits of what the client sends and reads.
const (
	maxErrorBody    = 1 << 10  // bytes of an error response kept in sink.StatusError.Body
	maxResponseBody = 16 << 20 // bytes of a success response decoded at most
	drainLimit      = 64 << 10 // bytes of an unneeded body read to reuse the connection
	logNamesPerCall = 1000     // names per logName/add request
	filesPerCall    = 100      // files per /files request (axum's 2 MB JSON limit)
	maxTags         = 50       // tags per run (server limit)
	maxNameLen      = 255      // run name and externalId (Postgres varchar(255))
	// uploadMinRate is the slowest upload throughput (bytes/s) a presigned PUT
	// attempt is given time for, on top of Options.Timeout.
	uploadMinRate = 1 << 20
)

const (
	ctypeJSON   = "application/json"
	ctypeNDJSON = "application/x-ndjson"
)

// Options configures a Client. Zero values take the documented defaults.
type Options struct {
	// APIURL, IngestURL and PyURL are the base URLs of the backend, the
	// ingest and the py service (mlop-api.md §1.1), e.g.
	// https://pluto-api.trainy.ai. All three are required; a path prefix is
	// kept, a trailing slash is dropped.
	APIURL, IngestURL, PyURL string
	// APIKey is sent as "Authorization: Bearer <key>". It is never logged and
	// never part of an error. Required.
	APIKey string
	// Project is the project name used when a call's project is "" (the
	// X-Project-Name header, CreateRun.ProjectName).
	Project string
	// UserAgent is the User-Agent header; default "mlop-agent/<Version>".
	UserAgent string
	// Version is the agent version reported in loggerSettings and
	// systemMetadata at run creation; default "dev".
	Version string
	// Timeout bounds each attempt: connect, send, and read the response.
	// Default 30s. A presigned upload gets Timeout plus one second per MiB.
	Timeout time.Duration
	// InitialBackoff and MaxBackoff bound the wait between attempts (default
	// 500ms and 30s). MaxBackoff also caps a server's Retry-After.
	InitialBackoff, MaxBackoff time.Duration
	// MaxAttempts is the number of attempts per call, the first included.
	// 0 retries until the context is done.
	MaxAttempts int
	// CAFile is a PEM file of extra CA certificates trusted on top of the
	// system pool (self-hosted servers with a private CA).
	CAFile string
	// InsecureSkipVerify turns TLS certificate verification off. Only for
	// testing; New logs a warning.
	InsecureSkipVerify bool
	// MaxConnsPerHost is the number of idle keep-alive connections kept per
	// host (default 64), enough for that many concurrent requests to reuse
	// connections. The number of open connections is not limited; the caller
	// bounds its concurrency.
	MaxConnsPerHost int
	// Logger receives debug lines about retries (never the key). Default:
	// discard.
	Logger *slog.Logger
	// OnRetry, if set, is called before every retry with the operation and
	// the status (0 for a connection error) and error of the failed attempt.
	OnRetry func(op string, status int, err error)
	// Buffered, if set, reports how many bytes of data wait for the server;
	// reminders about a server that does not answer include it.
	Buffered func() int64
	// OnRequest, if set, is called after every attempt with the operation,
	// the status (0 for a connection error), the request body size and the
	// attempt's duration.
	OnRequest func(op string, status int, bytes int, d time.Duration)
	// Transport, if set, carries every request instead of the client's own
	// HTTP transport (CAFile, InsecureSkipVerify and MaxConnsPerHost then do
	// not apply). Retries, timeouts and redaction stay the same. For an
	// in-process recorder of the protocol (mlop-agent verify captures what
	// the agent would send this way) and for tests.
	Transport http.RoundTripper
	// ReadOnly makes the client refuse, before anything is sent, every
	// request that is not a GET: the read API only, safe on a production
	// server beside a running agent (mlop-agent verify).
	ReadOnly bool
}

// Client talks to one mlop / pluto deployment. It is safe for concurrent use.
type Client struct {
	api, ingest, py string
	key             string
	auth            string // "Bearer " + key
	project         string
	userAgent       string
	version         string
	hostname        string

	timeout   time.Duration
	minWait   time.Duration
	maxWait   time.Duration
	retryMax  int
	log       *slog.Logger
	onRetry   func(op string, status int, err error)
	onRequest func(op string, status int, bytes int, d time.Duration)
	transport *http.Transport   // the client's own; nil with Options.Transport
	rt        http.RoundTripper // what carries requests: transport or Options.Transport
	readOnly  bool
	trouble   *trouble              // logs a server that stops and starts answering
	retrying  *retryablehttp.Client // calls with the configured retries
	single    *retryablehttp.Client // one attempt (heartbeats)
	jitter    func(n int64) int64   // uniform in [0, n); tests replace it
	closeOnce sync.Once
}

// New validates opts, applies defaults and builds a Client. It does no I/O
// except reading CAFile.
func New(opts Options) (*Client, error) {
	c := &Client{
		key:       opts.APIKey,
		auth:      "Bearer " + opts.APIKey,
		project:   opts.Project,
		userAgent: opts.UserAgent,
		version:   opts.Version,
		timeout:   opts.Timeout,
		minWait:   opts.InitialBackoff,
		maxWait:   opts.MaxBackoff,
		log:       opts.Logger,
		onRetry:   opts.OnRetry,
		onRequest: opts.OnRequest,
		readOnly:  opts.ReadOnly,
		jitter:    rand.Int64N,
	}
	var err error
	if c.api, err = baseURL("api url", opts.APIURL); err != nil {
		return nil, err
	}
	if c.ingest, err = baseURL("ingest url", opts.IngestURL); err != nil {
		return nil, err
	}
	if c.py, err = baseURL("py url", opts.PyURL); err != nil {
		return nil, err
	}
	if err := checkKey(opts.APIKey); err != nil {
		return nil, err
	}
	if opts.MaxAttempts < 0 {
		return nil, fmt.Errorf("max attempts %d is negative", opts.MaxAttempts)
	}
	if opts.Timeout < 0 || opts.InitialBackoff < 0 || opts.MaxBackoff < 0 {
		return nil, errors.New("timeout and backoffs must not be negative")
	}
	if c.version == "" {
		c.version = "dev"
	}
	if c.userAgent == "" {
		c.userAgent = "mlop-agent/" + c.version
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.minWait == 0 {
		c.minWait = DefaultInitialBackoff
	}
	if c.maxWait == 0 {
		c.maxWait = DefaultMaxBackoff
	}
	c.maxWait = max(c.maxWait, c.minWait)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.retryMax = math.MaxInt32 // MaxAttempts 0: until the context is done
	if opts.MaxAttempts > 0 {
		c.retryMax = opts.MaxAttempts - 1
	}
	c.hostname, _ = os.Hostname()
	c.trouble = newTrouble(c.log, opts.Buffered)

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opts.InsecureSkipVerify}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read ca file %s: no PEM certificates", opts.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	if opts.InsecureSkipVerify {
		c.log.Warn("tls certificate verification is disabled")
	}
	idle := opts.MaxConnsPerHost
	if idle <= 0 {
		idle = DefaultMaxConnsPerHost
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true) // the servers speak HTTP/1.1; no h2 upgrade surprises
	c.transport = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          4 * idle,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		Protocols:             &protocols,
		// DisableCompression stays false: the transport asks for gzip and
		// decodes it transparently (the backend compresses responses).
	}
	c.rt = c.transport
	if opts.Transport != nil {
		c.transport, c.rt = nil, opts.Transport
	}
	c.retrying = c.newRetryClient(c.timeout, c.retryMax)
	c.single = c.newRetryClient(c.timeout, 0)
	return c, nil
}

// Close releases idle connections. It is idempotent and does not interrupt
// calls in flight; a call made after Close opens new connections.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		if ci, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
			ci.CloseIdleConnections()
		}
	})
}

// baseURL checks that s is an absolute http(s) URL and drops a trailing slash.
func baseURL(what, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%s is empty", what)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", what, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s %q: want http(s)://host[:port][/path]", what, s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%s %q: no query, fragment or user info allowed", what, s)
	}
	return strings.TrimRight(s, "/"), nil
}

// checkKey rejects keys that cannot be a header value. The message never
// contains the key.
func checkKey(key string) error {
	if key == "" {
		return errors.New("api key is empty")
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] >= 0x7f {
			return errors.New("api key contains white space or non-ASCII characters")
		}
	}
	return nil
}

// request is one logical call: an HTTP request and its retries.
type request struct {
	op      string // for errors, logs and hooks
	method  string
	url     string
	body    any   // nil, []byte or retryablehttp.ReaderFunc; must be replayable
	size    int64 // body size when body is a ReaderFunc
	ctype   string
	runID   int64  // X-Run-Id when > 0
	project string // X-Project-Name when != ""
	noAuth  bool   // presigned upload: never send the key
	final   bool   // a routing fault ends the call (login)
	client  *retryablehttp.Client
}

// do performs r with retries. On a 2xx response it decodes the JSON body into
// out (if out is not nil). Otherwise it returns a *sink.StatusError, or the
// transport error wrapped with r.op.
func (c *Client) do(ctx context.Context, r *request, out any) error {
	if c.readOnly && r.method != http.MethodGet {
		return invalidf("%s: %s refused: the client is read-only", r.op, r.method)
	}
	st := &attemptState{op: r.op, url: stripQuery(r.url), final: r.final, noAuth: r.noAuth}
	switch b := r.body.(type) {
	case []byte:
		st.bytes = len(b)
	case nil:
	default:
		st.bytes = int(min(r.size, math.MaxInt32))
	}
	req, err := retryablehttp.NewRequestWithContext(context.WithValue(ctx, attemptKey{}, st), r.method, r.url, r.body)
	if err != nil {
		return fmt.Errorf("%s: %w", r.op, redactURLError(err))
	}
	if _, ok := r.body.(retryablehttp.ReaderFunc); ok {
		// A ReaderFunc has no length the library can see; without this the
		// body would go out chunked, which S3 refuses.
		req.ContentLength = r.size
	}
	h := req.Header
	h.Set("User-Agent", c.userAgent)
	if !r.noAuth {
		h.Set("Authorization", c.auth)
	}
	if r.ctype != "" {
		h.Set("Content-Type", r.ctype)
	}
	if r.runID > 0 {
		h.Set("X-Run-Id", strconv.FormatInt(r.runID, 10))
	}
	if r.project != "" {
		h.Set("X-Project-Name", r.project)
	}
	client := r.client
	if client == nil {
		client = c.retrying
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", r.op, redactURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(r, resp, st.routing)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		return nil
	}
	if d, ok := out.(bodyDecoder); ok {
		if err := d.decodeBody(resp.Body); err != nil {
			return fmt.Errorf("%s: decode response: %w", r.op, err)
		}
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		return fmt.Errorf("%s: decode response: %w", r.op, err)
	}
	return nil
}

// statusError reads at most maxErrorBody bytes of a failed response, removes
// the API key from them and classifies the status.
func (c *Client) statusError(r *request, resp *http.Response, routing string) error {
	// Read enough past the limit that a key straddling it is still seen whole
	// and redacted before the cut.
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, int64(maxErrorBody+len(c.key))))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	body := strings.ReplaceAll(string(raw), c.key, "[REDACTED]")
	if len(body) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && !utf8.RuneStart(body[cut]) {
			cut--
		}
		body = body[:cut]
	}
	body = strings.TrimSpace(strings.ToValidUTF8(body, "\uFFFD"))
	e := &sink.StatusError{Op: r.op, Status: resp.StatusCode, Body: body}
	switch {
	case routing != "":
		e.Err, e.URL = sink.ErrRouting, stripQuery(r.url)
		e.Body = routing
	case r.noAuth && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		// A presigned URL carries no API key: a 401/403 from the object
		// store means an expired or bad signature, not bad credentials.
		// The agent should ask for a new URL, not stop.
		e.Err = sink.ErrRejected
	case resp.StatusCode == http.StatusUnprocessableEntity && authFailure(body):
		// The ingest wraps every failure of /ingest/* into a 422, bad API
		// keys included (mlop-api.md §2.7). Its message names the error
		// code; this is the one place the client reads a body to classify.
		e.Err = sink.ErrUnauthorized
	}
	return e
}

// authMarkers are the substrings by which the ingest's 422 bodies reveal an
// authentication failure: its AppError display is "<Code> (<num> -
// Authentication Error): <message>" for the codes 1001–1008
// (ingest/src/error.rs), and the JSON form uses the SCREAMING_SNAKE code.
var authMarkers = []string{
	"Authentication Error",
	"InvalidToken", "INVALID_TOKEN",
	"TokenExpired", "TOKEN_EXPIRED",
	"MissingToken", "MISSING_TOKEN",
	"AuthenticationFailed", "AUTHENTICATION_FAILED",
	"InvalidTokenFormat", "InvalidBearerFormat",
	"Invalid API key", "API key has expired", "API key has been revoked",
}

func authFailure(body string) bool {
	for _, m := range authMarkers {
		if strings.Contains(body, m) {
			return true
		}
	}
	return false
}

// redactURLError strips the query string from the URL inside a *url.Error:
// a presigned upload URL carries its signature there, and the error ends up
// in logs.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = stripQuery(ue.URL)
	}
	return err
}

// stripQuery cuts every "?query" part of s up to the next white space, so a
// URL embedded in a message loses its query string.
func stripQuery(s string) string {
	if strings.IndexByte(s, '?') < 0 {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '?')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString("?[REDACTED]")
		s = s[i+1:]
		j := strings.IndexAny(s, " \t\n\"")
		if j < 0 {
			return b.String()
		}
		s = s[j:]
	}
}

// systemInfo is what the agent reports about itself at run creation.
func (c *Client) systemInfo() (loggerSettings, systemMetadata map[string]any) {
	loggerSettings = map[string]any{
		"agent":   "mlop-agent",
		"version": c.version,
	}
	systemMetadata = map[string]any{
		"agent":    "mlop-agent",
		"version":  c.version,
		"hostname": c.hostname,
		"os":       runtime.GOOS,
		"arch":     runtime.GOARCH,
	}
	return loggerSettings, systemMetadata
}
