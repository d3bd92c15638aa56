package mlopfake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return m
}

// noKey marks a request sent without an Authorization header.
const noKey = "<none>"

// do sends one request with a fresh transport (no connection reuse, no
// transparent gzip) so status, headers and bodies are seen as sent.
func do(t testing.TB, method, url string, hdr map[string]string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableKeepAlives: true, DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func authHeader(key string) map[string]string {
	h := map[string]string{}
	if key != noKey {
		h["Authorization"] = "Bearer " + key
	}
	return h
}

// postAPI posts v (a string is sent verbatim) as JSON to the backend.
func postAPI(t testing.TB, s *Server, path string, key string, v any) response {
	t.Helper()
	var body []byte
	if raw, ok := v.(string); ok {
		body = []byte(raw)
	} else {
		var err error
		if body, err = json.Marshal(v); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	}
	h := authHeader(key)
	h["Content-Type"] = "application/json"
	return do(t, http.MethodPost, s.APIURL()+path, h, bytes.NewReader(body))
}

func createRun(t testing.TB, s *Server, body map[string]any) map[string]any {
	t.Helper()
	r := postAPI(t, s, "/api/runs/create", DefaultKey, body)
	if r.status != http.StatusOK {
		t.Fatalf("create run %v: status %d: %s", body, r.status, r.body)
	}
	return r.json(t)
}

func runIDOf(t testing.TB, m map[string]any) int64 {
	t.Helper()
	f, ok := m["runId"].(float64)
	if !ok {
		t.Fatalf("no runId in %v", m)
	}
	return int64(f)
}

// postIngest sends an NDJSON body with the usual ingest headers.
func postIngest(t testing.TB, s *Server, path, runID, project, body string) response {
	t.Helper()
	h := authHeader(DefaultKey)
	h["Content-Type"] = "application/x-ndjson"
	h["X-Run-Id"] = runID
	h["X-Project-Name"] = project
	return do(t, http.MethodPost, s.IngestURL()+path, h, strings.NewReader(body))
}
