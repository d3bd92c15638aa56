package mlop

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// A request "did not reach the tracker" when the answer is a redirect (never
// followed: the http.Client is built with CheckRedirect returning
// http.ErrUseLastResponse) or a 404 whose body is not the server's own
// "Run not found". Both are configuration or rollout faults — an ingress
// default backend during a deploy, url_api pointed at the web UI, an
// http→https redirect — and say nothing about the data, so they are retried
// with backoff and logged loudly, never dropped (sink.ErrRouting).
//
// What the real services answer for an unknown run (mlop-api.md §2):
//   - backend (Hono): 404 {"error":"Run not found"}
//   - py service (FastAPI): 404 {"detail":"Run not found"}; its unknown
//     routes answer {"detail":"Not Found"}, which is a routing fault here
//   - ingest (axum): no per-run 404; its unknown routes answer 404 with an
//     empty body
//
// Presigned object-store requests (noAuth) are not judged this way: an
// object store's 404 is its own answer.

// maxPeek is how much of a 404 body is read to tell the server's own answer
// from a proxy's.
const maxPeek = 4 << 10

var runNotFound = regexp.MustCompile(`(?i)\brun\b.*\bnot found\b`)

// isRedirect reports a 3xx answer other than 304 (which a POST never gets).
func isRedirect(status int) bool {
	return status >= 300 && status < 400 && status != http.StatusNotModified
}

// routingFault reports whether resp did not come from the tracker's service,
// and why. It may read (and then restore) the start of a 404's body.
func routingFault(resp *http.Response) (bool, string) {
	switch {
	case isRedirect(resp.StatusCode):
		loc := stripQuery(resp.Header.Get("Location"))
		if loc == "" {
			loc = "(no Location)"
		}
		return true, "redirect to " + loc + " refused: redirects are never followed (they would send the API key elsewhere and turn a POST into a GET); set the URL to the final address"
	case resp.StatusCode == http.StatusNotFound:
		body := peekBody(resp, maxPeek)
		if serverNotFound(body) {
			return false, ""
		}
		return true, "404 that is not the mlop server's answer (" + describeBody(resp, body) + "): a wrong URL, or a proxy that cannot reach the service yet"
	}
	return false, ""
}

// serverNotFound reports whether a 404 body is the server's own "run not
// found" JSON ({"error": ...} from the backend, {"detail": ...} from the py
// service).
func serverNotFound(body []byte) bool {
	var v struct {
		Error  string `json:"error"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(bytes.TrimSpace(body), &v) != nil {
		return false
	}
	return runNotFound.MatchString(v.Error) || runNotFound.MatchString(v.Detail)
}

// describeBody summarises a body for a log line: its type and first words.
func describeBody(resp *http.Response, body []byte) string {
	ct := resp.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	switch {
	case s == "":
		s = "empty body"
	case ct != "":
		s = ct + ": " + s
	}
	return s
}

// peekBody reads up to n bytes of resp.Body and puts them back in front of
// the rest, so the body can still be read in full afterwards.
func peekBody(resp *http.Response, n int) []byte {
	if resp.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, int64(n)))
	resp.Body = &peeked{Reader: io.MultiReader(bytes.NewReader(b), resp.Body), c: resp.Body}
	return b
}

type peeked struct {
	io.Reader
	c io.Closer
}

func (p *peeked) Close() error { return p.c.Close() }
