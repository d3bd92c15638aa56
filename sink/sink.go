// Package sink holds what the agent needs to know about any destination for
// runs and their events: the errors it branches on. Implementations live in
// subpackages (sink/mlop); the interfaces the agent calls them through are
// defined by the agent, where they are used.
//
// Classification, for every sink:
//
//   - ErrUnauthorized: the credentials are wrong, expired or revoked. Retrying
//     cannot help; the operator must act.
//   - ErrNotFound: the run (or endpoint) does not exist. Also matches
//     ErrRejected.
//   - ErrRejected: the request's content was refused permanently. Sending the
//     same bytes again gets the same answer.
//   - ErrInvalid: the client refused to send an event the server would reject;
//     nothing was sent.
//   - ErrRouting: the request did not reach the tracker's service: a 404 that
//     is not the server's own answer (an ingress default backend, a wrong
//     URL), or a redirect, which is never followed. A configuration or
//     rollout fault, never a verdict on the data: retried, never dropped.
//   - a *StatusError whose Permanent() is false (408, 429, 5xx but 501) that
//     survived the sink's own retries: transient, try again later.
//   - anything else (connection errors, context errors): transient.
package sink

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrUnauthorized means the server refused the credentials (HTTP 401/403, or
// an authentication failure the server reported under another status).
var ErrUnauthorized = errors.New("unauthorized")

// ErrRejected means the server refused the request permanently: a 4xx other
// than 408 and 429, or a 501. On an NDJSON ingest request it means one line
// was rejected; the lines before it were already stored.
var ErrRejected = errors.New("rejected")

// ErrNotFound means the run (or the endpoint) does not exist on the server
// (HTTP 404). It wraps ErrRejected, so errors.Is(err, ErrRejected) also holds.
var ErrNotFound = fmt.Errorf("%w: not found", ErrRejected)

// ErrInvalid means the client refused to send an event or request because the
// server would reject it (negative step, blank metric name, ...). Nothing was
// sent.
var ErrInvalid = errors.New("invalid")

// ErrRouting means the answer did not come from the tracker's service: a
// 404 without the server's own "not found" body (an ingress default backend
// during a rollout, a URL pointing at another service) or a redirect (never
// followed: it would carry the API key elsewhere and turn a POST into a
// GET). The data is fine; the path to the server is not. It is transient:
// the request is retried and the data kept.
var ErrRouting = errors.New("the request did not reach the tracker's service")

// StatusError is an HTTP response the sink did not accept as success, after
// its retries. It unwraps to ErrUnauthorized, ErrNotFound or ErrRejected when
// the status (or Err) says so, and to nothing for transient statuses.
type StatusError struct {
	Op     string // what the sink was doing, e.g. "create run", "send metrics"
	Status int    // the HTTP status code
	// URL is the request's URL without its query (set for routing faults,
	// where the URL is the clue).
	URL string
	// Body is at most 1 KiB of the response body, for humans. Sinks remove
	// their credentials from it before they build the error.
	Body string
	// Err overrides the classification derived from Status: a sink sets it
	// when the body says more than the status (the mlop ingest reports a bad
	// API key as 422). Nil means "derive from Status".
	Err error
}

// Error formats the operation, status and body on one line.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.URL != "" {
		msg += " from " + e.URL
	}
	if e.Err != nil && !errors.Is(e.Err, ErrRejected) {
		msg += " (" + e.Err.Error() + ")"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Unwrap returns the sentinel this error is classified as, or nil for a
// transient status.
func (e *StatusError) Unwrap() error {
	if e.Err != nil {
		return e.Err
	}
	switch {
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return ErrUnauthorized
	case e.Status == http.StatusNotFound:
		return ErrNotFound
	case e.Permanent():
		return ErrRejected
	}
	return nil
}

// Permanent reports whether sending the same request again cannot succeed:
// every status except 408, 429 and the 5xx other than 501 (and 0, which stands
// for "no valid status").
func (e *StatusError) Permanent() bool {
	if errors.Is(e.Err, ErrRouting) {
		return false
	}
	return !RetryableStatus(e.Status)
}

// RetryableStatus reports whether an HTTP status is worth retrying: 408, 429,
// and every 5xx except 501 Not Implemented. Status 0 (no valid status line) is
// retryable too.
func RetryableStatus(status int) bool {
	switch {
	case status == 0,
		status == http.StatusRequestTimeout,
		status == http.StatusTooManyRequests:
		return true
	case status >= 500 && status != http.StatusNotImplemented:
		return true
	}
	return false
}
