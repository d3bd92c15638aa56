package mlop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/mlop-ai/mlop-agent/sink"
)

// go-retryablehttp is wrapped as the style guide's habit 11 and
// anchors-style.md §5.2 say: its policy hooks are good, several defaults are
// not. What we replace and why:
//   - Backoff: the default has no jitter and obeys Retry-After without a cap
//     (hashicorp/go-retryablehttp#247), which lets a server stall shutdown
//     for an hour. Ours: full jitter, Retry-After capped at MaxBackoff.
//   - CheckRetry: we keep DefaultRetryPolicy's exclusions (TLS verification,
//     redirect loops, bad scheme or header: not retried) and its context
//     check, and decide statuses ourselves (408 is retried too).
//   - ErrorHandler: PassthroughErrorHandler, so the last response reaches us
//     and we keep up to 1 KiB of its body in the error.
//   - Logger: our slog, at debug level, with query strings (presigned upload
//     signatures) removed. The key is never in a URL, so never in its logs.
//   - The transport is wrapped so that the library's CloseIdleConnections
//     calls (it makes one after every failed call) do not empty the shared
//     keep-alive pool other calls are using.

// attemptState travels in the request context from one hook to the next for
// one call: retryablehttp runs the hooks, attempts and waits of a call on the
// caller's goroutine, one after the other, so it needs no lock.
type attemptState struct {
	op    string
	url   string // without its query, for logs
	bytes int
	// final makes a routing fault end the call at once (login: a 404 there
	// means the URL is not an mlop API, and waiting will not change it).
	final      bool
	noAuth     bool      // a presigned object-store request
	routing    string    // why the last answer was a routing fault ("" if not)
	start      time.Time // of the current attempt
	end        time.Time // of the previous attempt
	lastStatus int
	lastErr    error
}

type attemptKey struct{}

func stateOf(ctx context.Context) *attemptState {
	st, _ := ctx.Value(attemptKey{}).(*attemptState)
	return st
}

// keepIdle hides the transport's CloseIdleConnections from the library.
type keepIdle struct{ rt http.RoundTripper }

func (k keepIdle) RoundTrip(r *http.Request) (*http.Response, error) { return k.rt.RoundTrip(r) }

// newRetryClient builds a retryablehttp client on the shared transport with
// the given per-attempt timeout and number of retries after the first attempt.
func (c *Client) newRetryClient(timeout time.Duration, retries int) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient: &http.Client{Transport: keepIdle{c.rt}, Timeout: timeout,
			CheckRedirect: checkRedirect},
		Logger:         libLogger{c.log.With("component", "retryablehttp")},
		RetryWaitMin:   c.minWait,
		RetryWaitMax:   c.maxWait,
		RetryMax:       retries,
		RequestLogHook: c.beforeAttempt,
		CheckRetry:     c.checkRetry,
		Backoff:        c.backoff,
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
	}
}

// checkRedirect never follows a redirect of a request to the tracker: it
// would carry the API key to another host or port, and turn a POST into a
// GET. The 3xx comes back as the answer and is a routing fault (routing.go).
// A presigned object-store request carries no key and may follow the store's
// own redirects (S3's 307 to a regional endpoint).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if st := stateOf(req.Context()); st != nil && st.noAuth && len(via) < 10 {
		return nil
	}
	return http.ErrUseLastResponse
}

// beforeAttempt runs before every attempt; attempt 0 is the first.
func (c *Client) beforeAttempt(_ retryablehttp.Logger, req *http.Request, attempt int) {
	st := stateOf(req.Context())
	if st == nil {
		return
	}
	st.start = time.Now()
	if attempt == 0 {
		return
	}
	c.log.Debug("retrying request", "op", st.op, "attempt", attempt+1,
		"last_status", st.lastStatus, "last_error", redactedErr(st.lastErr),
		"waited", st.start.Sub(st.end).Round(time.Millisecond))
	if c.onRetry != nil {
		c.onRetry(st.op, st.lastStatus, st.lastErr)
	}
}

// checkRetry decides after every attempt whether to try again. It returns an
// error only for a done context, which ends the call with that error.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if st := stateOf(ctx); st != nil {
		st.end = time.Now()
		st.lastStatus, st.lastErr = status, err
		if c.onRequest != nil {
			c.onRequest(st.op, status, st.bytes, st.end.Sub(st.start))
		}
	}
	retry, cerr := retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	if cerr != nil {
		return false, cerr
	}
	st := stateOf(ctx)
	if err != nil {
		// Connection errors and per-attempt timeouts are retried; the
		// library's exclusions (TLS verification, redirects, bad scheme or
		// header) are not.
		if retry {
			c.noteFailure(st, redactedErr(err))
		}
		return retry, nil
	}
	if st != nil && !st.noAuth {
		if bad, why := routingFault(resp); bad {
			st.routing = why
			c.noteFailure(st, why)
			return !st.final, nil
		}
		st.routing = ""
	}
	if sink.RetryableStatus(status) {
		c.noteFailure(st, fmt.Sprintf("HTTP %d %s", status, http.StatusText(status)))
		return true, nil
	}
	if st != nil && !st.noAuth {
		c.trouble.succeeded(st.op)
	}
	return false, nil
}

// noteFailure tells the trouble log about a failed attempt (not for
// presigned uploads, whose failures are the object store's).
func (c *Client) noteFailure(st *attemptState, reason string) {
	if st == nil || st.noAuth {
		return
	}
	c.trouble.failed(st.op, st.url, reason)
}

// backoff is the wait before retry number attempt+1 (attempt counts from 0).
func (c *Client) backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	return computeBackoff(minWait, maxWait, attempt, resp, time.Now(), c.jitter)
}

// computeBackoff is "full jitter" exponential backoff: uniform in
// [0, min(maxWait, minWait·2^attempt)]. A Retry-After header on the response
// replaces it, capped at maxWait, so a server can slow us down but not stall
// us beyond our own limit. jitter(n) returns a uniform value in [0, n).
func computeBackoff(minWait, maxWait time.Duration, attempt int, resp *http.Response, now time.Time, jitter func(int64) int64) time.Duration {
	if resp != nil {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), now); ok {
			return min(d, maxWait)
		}
	}
	ceiling := maxWait
	if attempt < 62 {
		if d := minWait << uint(attempt); d > 0 && d>>uint(attempt) == minWait && d < maxWait {
			ceiling = d
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(jitter(int64(ceiling) + 1))
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date. A
// date in the past means no wait.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(time.Duration(1<<62)/time.Second) {
			secs = int64(time.Duration(1<<62) / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// libLogger adapts our slog to retryablehttp's LeveledLogger. Everything the
// library says is debug detail for us: its per-attempt "request failed"
// errors are followed by a retry or by an error we return, which the caller
// logs once. URLs lose their query strings on the way.
type libLogger struct{ l *slog.Logger }

// The library panics at run time on a logger of another type.
var _ retryablehttp.LeveledLogger = libLogger{}

func (a libLogger) Error(msg string, kv ...any) { a.debug(msg, kv) }
func (a libLogger) Warn(msg string, kv ...any)  { a.debug(msg, kv) }
func (a libLogger) Info(msg string, kv ...any)  { a.debug(msg, kv) }
func (a libLogger) Debug(msg string, kv ...any) { a.debug(msg, kv) }

func (a libLogger) debug(msg string, kv []any) {
	if !a.l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	clean := make([]any, len(kv))
	for i, v := range kv {
		switch x := v.(type) {
		case string:
			clean[i] = stripQuery(x)
		case error:
			clean[i] = redactedErr(x)
		default:
			clean[i] = v
		}
	}
	a.l.Debug(msg, clean...)
}

// redactedErr renders an error for a log line without URL query strings.
func redactedErr(err error) string {
	if err == nil {
		return ""
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// Copy, so the caller's error keeps its URL.
		cp := *ue
		cp.URL = stripQuery(cp.URL)
		return stripQuery(cp.Error())
	}
	return stripQuery(err.Error())
}
