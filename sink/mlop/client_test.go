package mlop

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
)

const testKey = "mlpi_s3cr3tTestKey42"

// recorded is one request as the fake server saw it.
type recorded struct {
	Method, Path, RawQuery string
	Proto                  string
	Header                 http.Header
	ContentLength          int64
	TransferEncoding       []string
	Body                   string
}

// fake is an httptest server that records every request and answers with
// respond (called with the 0-based index of the request).
type fake struct {
	srv     *httptest.Server
	conns   atomic.Int32 // connections accepted
	mu      sync.Mutex
	reqs    []recorded
	respond func(w http.ResponseWriter, r *http.Request, n int)
}

func newFake(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) *fake {
	t.Helper()
	f := &fake{respond: respond}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.handle))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, recorded{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Proto: r.Proto,
		Header: r.Header.Clone(), ContentLength: r.ContentLength,
		TransferEncoding: r.TransferEncoding, Body: string(body),
	})
	f.mu.Unlock()
	if f.respond == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	f.respond(w, r, n)
}

func (f *fake) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

// reply answers every request with one status and body.
func reply(status int, body string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// replies answers request n with statuses[n] (the last one repeats) and
// body okBody for 2xx.
func replies(okBody string, statuses ...int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, n int) {
		s := statuses[min(n, len(statuses)-1)]
		w.WriteHeader(s)
		if s >= 200 && s < 300 {
			_, _ = io.WriteString(w, okBody)
		} else {
			_, _ = io.WriteString(w, `{"error":"boom"}`)
		}
	}
}

// testOptions points the three bases at distinct path prefixes of one
// server, so the tests see which base a call used.
func testOptions(url string) Options {
	return Options{
		APIURL:         url + "/A/",
		IngestURL:      url + "/I",
		PyURL:          url + "/P",
		APIKey:         testKey,
		Project:        "default-project",
		Version:        "1.2.3",
		Timeout:        5 * time.Second,
		InitialBackoff: time.Millisecond,
		MaxBackoff:     5 * time.Millisecond,
		MaxAttempts:    5,
	}
}

func newTestClient(t *testing.T, opts Options) *Client {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.hostname = "testhost" // systemMetadata must be predictable
	t.Cleanup(c.Close)
	return c
}

// TestRequestShapes checks method, path, headers and the exact body of every
// call against the shapes in mlop-api.md §2.
func TestRequestShapes(t *testing.T) {
	ctx := context.Background()
	sysMeta := `{\"agent\":\"mlop-agent\",\"arch\":\"` + runtime.GOARCH + `\",\"hostname\":\"testhost\",\"os\":\"` + runtime.GOOS + `\",\"version\":\"1.2.3\"}`
	loggerSettings := `{\"agent\":\"mlop-agent\",\"version\":\"1.2.3\"}`
	runResp := `{"runId":42,"number":1,"displayId":"MPR-1","projectName":"my-project","organizationSlug":"test-org","url":"http://x/o/test-org/projects/my-project/abcde","resumed":false,"forkedFromRunId":null,"forkStep":null}`

	tests := []struct {
		name     string
		response string
		call     func(c *Client) error
		method   string
		path     string
		query    string
		ctype    string
		body     string
		headers  map[string]string // exact values; "" means must be absent
	}{
		{
			name: "login", response: `{"organization":{"slug":"test-org"}}`,
			call: func(c *Client) error {
				slug, err := c.Login(ctx)
				if err == nil && slug != "test-org" {
					t.Errorf("slug = %q", slug)
				}
				return err
			},
			method: "POST", path: "/A/api/slug", ctype: "application/json", body: "",
		},
		{
			name: "create run, everything", response: runResp,
			call: func(c *Client) error {
				_, err := c.CreateRun(ctx, CreateRun{
					RunName: "agent-run", ProjectName: "my-project", ExternalID: "ext-123",
					Config:         map[string]any{"model": map[string]any{"depth": 4}, "lr": 0.001, "name": "<a&b>"},
					Tags:           []string{"baseline"},
					CreatedAt:      1700000000123,
					SystemMetadata: map[string]any{"source": "/data/run.jsonl", "agent": "spoofed"},
				})
				return err
			},
			method: "POST", path: "/A/api/runs/create", ctype: "application/json",
			body: `{"runName":"agent-run","projectName":"my-project","externalId":"ext-123",` +
				`"config":"{\"lr\":0.001,\"model\":{\"depth\":4},\"name\":\"<a&b>\"}",` +
				`"loggerSettings":"` + loggerSettings + `",` +
				`"systemMetadata":"` + sysMetaWith(sysMeta, `\"source\":\"/data/run.jsonl\",`) + `",` +
				`"tags":["baseline"],"createdAt":1700000000123,"updatedAt":null}`,
		},
		{
			name: "create run, minimal: default project, null config, no externalId", response: runResp,
			call: func(c *Client) error {
				_, err := c.CreateRun(ctx, CreateRun{RunName: "r"})
				return err
			},
			method: "POST", path: "/A/api/runs/create", ctype: "application/json",
			body: `{"runName":"r","projectName":"default-project","config":null,` +
				`"loggerSettings":"` + loggerSettings + `","systemMetadata":"` + sysMeta + `",` +
				`"tags":[],"createdAt":null,"updatedAt":null}`,
		},
		{
			name: "create run, fork at step 0", response: runResp,
			call: func(c *Client) error {
				_, err := c.CreateRun(ctx, CreateRun{RunName: "child", ForkRunID: 7, ForkStep: 0, InheritConfig: true, UpdatedAt: 5})
				return err
			},
			method: "POST", path: "/A/api/runs/create", ctype: "application/json",
			body: `{"runName":"child","projectName":"default-project","config":null,` +
				`"loggerSettings":"` + loggerSettings + `","systemMetadata":"` + sysMeta + `",` +
				`"tags":[],"createdAt":null,"updatedAt":5,"forkRunId":7,"forkStep":0,"inheritConfig":true}`,
		},
		{
			name: "resume run", response: strings.Replace(runResp, `"resumed":false`, `"resumed":true`, 1),
			call: func(c *Client) error {
				run, err := c.ResumeRun(ctx, 42)
				if err == nil && !run.Resumed {
					t.Errorf("resumed = false")
				}
				return err
			},
			method: "POST", path: "/A/api/runs/resume", ctype: "application/json", body: `{"runId":42}`,
		},
		{
			name: "status update, now", response: `{"success":true}`,
			call:   func(c *Client) error { return c.UpdateStatus(ctx, 42, event.StatusCompleted, 0) },
			method: "POST", path: "/A/api/runs/status/update", ctype: "application/json",
			body: `{"runId":42,"status":"COMPLETED","statusMetadata":null,"statusUpdated":null}`,
		},
		{
			name: "status update, backfilled", response: `{"success":true}`,
			call:   func(c *Client) error { return c.UpdateStatus(ctx, 42, event.StatusFailed, 1795637520632) },
			method: "POST", path: "/A/api/runs/status/update", ctype: "application/json",
			body: `{"runId":42,"status":"FAILED","statusMetadata":null,"statusUpdated":1795637520632}`,
		},
		{
			name: "log names", response: `{"success":true}`,
			call: func(c *Client) error {
				return c.AddLogNames(ctx, 42, LogTypeMetric, []string{"train/loss", "train/acc"})
			},
			method: "POST", path: "/A/api/runs/logName/add", ctype: "application/json",
			body: `{"runId":42,"logType":"METRIC","logName":["train/loss","train/acc"]}`,
		},
		{
			name: "tags", response: `{"success":true}`,
			call:   func(c *Client) error { return c.UpdateTags(ctx, 42, []string{"baseline", "neptune", "v2"}) },
			method: "POST", path: "/A/api/runs/tags/update", ctype: "application/json",
			body: `{"runId":42,"tags":["baseline","neptune","v2"]}`,
		},
		{
			name: "tags, empty list", response: `{"success":true}`,
			call:   func(c *Client) error { return c.UpdateTags(ctx, 42, nil) },
			method: "POST", path: "/A/api/runs/tags/update", ctype: "application/json",
			body: `{"runId":42,"tags":[]}`,
		},
		{
			name: "config", response: `{"success":true}`,
			call: func(c *Client) error {
				return c.UpdateConfig(ctx, 42, map[string]any{"epochs": 10, "model": map[string]any{"width": 8}, "bad": math.NaN(), "vals": []float64{1, math.Inf(-1)}})
			},
			method: "POST", path: "/A/api/runs/config/update", ctype: "application/json",
			body: `{"runId":42,"config":"{\"bad\":\"NaN\",\"epochs\":10,\"model\":{\"width\":8},\"vals\":[1,\"-Infinity\"]}"}`,
		},
		{
			name: "trigger", response: `{"status":"RUNNING","triggers":null}`,
			call: func(c *Client) error {
				s, err := c.Trigger(ctx, 42)
				if err == nil && s != "RUNNING" {
					t.Errorf("status = %q", s)
				}
				return err
			},
			method: "POST", path: "/P/api/runs/trigger", ctype: "application/json", body: `{"runId":42}`,
		},
		{
			name: "metrics", response: "Stream processed successfully: 2 records",
			call: func(c *Client) error {
				b := AppendMetricLine(nil, 1795637520632, 1, []event.Point{{Name: "train/loss", Value: 0.5}})
				b = AppendMetricLine(b, 1795637520726, 2, []event.Point{{Name: "train/loss", Value: math.NaN()}})
				return c.SendMetrics(ctx, 42, "my-project", b, 2)
			},
			method: "POST", path: "/I/ingest/metrics", ctype: "application/x-ndjson",
			body: `{"time":1795637520632,"step":1,"data":{"train/loss":0.5}}` + "\n" +
				`{"time":1795637520726,"step":2,"data":{"train/loss":"NaN"}}` + "\n",
			headers: map[string]string{"X-Run-Id": "42", "X-Project-Name": "my-project"},
		},
		{
			name: "data, default project", response: "Stream processed successfully: 1 records",
			call: func(c *Client) error {
				return c.SendData(ctx, 42, "", AppendDataLine(nil, 1, 2, "string-series", "phase", "warmup"), 1)
			},
			method: "POST", path: "/I/ingest/data", ctype: "application/x-ndjson",
			body:    `{"time":1,"step":2,"dataType":"string-series","logName":"phase","data":"warmup"}` + "\n",
			headers: map[string]string{"X-Run-Id": "42", "X-Project-Name": "default-project"},
		},
		{
			name: "logs", response: "Stream processed successfully: 1 records",
			call: func(c *Client) error {
				return c.SendLogs(ctx, 42, "p", AppendLogLine(nil, 1795637570270, "hello", 1, "INFO"), 1)
			},
			method: "POST", path: "/I/ingest/logs", ctype: "application/x-ndjson",
			body:    `{"time":1795637570270,"message":"hello","lineNumber":1,"logType":"INFO"}` + "\n",
			headers: map[string]string{"X-Run-Id": "42", "X-Project-Name": "p"},
		},
		{
			name: "files", response: `{"files/notes":[{"a.txt":"http://s3/b/a.txt?X-Amz-Signature=abc"}]}`,
			call: func(c *Client) error {
				urls, err := c.RequestUploads(ctx, 42, "my-project", []FileMeta{{
					FileName: "a.txt", FileType: "txt", FileSize: 5, LogName: "files/notes", Step: 3, Time: 1795637520999,
				}, {
					FileName: "b.png", FileType: "png", FileSize: 9, LogName: "img", Step: 0, Time: 1, SampleIndex: 1, Caption: "cap",
				}})
				if err == nil && urls["files/notes"]["a.txt"] != "http://s3/b/a.txt?X-Amz-Signature=abc" {
					t.Errorf("urls = %v", urls)
				}
				return err
			},
			method: "POST", path: "/I/files", ctype: "application/json",
			body: `{"files":[{"fileName":"a.txt","fileSize":5,"fileType":"txt","time":1795637520999,"logName":"files/notes","step":3},` +
				`{"fileName":"b.png","fileSize":9,"fileType":"png","time":1,"logName":"img","step":0,"sampleIndex":1,"caption":"cap"}]}`,
			headers: map[string]string{"X-Run-Id": "42", "X-Project-Name": "my-project"},
		},
		{
			name: "max step", response: `{"step":7}`,
			call: func(c *Client) error {
				s, err := c.Step(ctx, 42, "my-project")
				if err == nil && s != 7 {
					t.Errorf("step = %d", s)
				}
				return err
			},
			method: "POST", path: "/I/step", body: "",
			headers: map[string]string{"X-Run-Id": "42", "X-Project-Name": "my-project", "Content-Type": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, reply(http.StatusOK, tt.response))
			c := newTestClient(t, testOptions(f.srv.URL))
			if err := tt.call(c); err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.method || r.Path != tt.path || r.RawQuery != tt.query {
				t.Errorf("request = %s %s?%s, want %s %s?%s", r.Method, r.Path, r.RawQuery, tt.method, tt.path, tt.query)
			}
			if r.Body != tt.body {
				t.Errorf("body\ngot  %s\nwant %s", r.Body, tt.body)
			}
			if r.Proto != "HTTP/1.1" {
				t.Errorf("proto = %s", r.Proto)
			}
			if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
				t.Errorf("Authorization = %q", got)
			}
			if got := r.Header.Get("User-Agent"); got != "mlop-agent/1.2.3" {
				t.Errorf("User-Agent = %q", got)
			}
			if tt.ctype != "" {
				if got := r.Header.Get("Content-Type"); got != tt.ctype {
					t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
				}
			}
			if r.ContentLength != int64(len(tt.body)) || len(r.TransferEncoding) != 0 {
				t.Errorf("Content-Length = %d, Transfer-Encoding = %v; want %d, none", r.ContentLength, r.TransferEncoding, len(tt.body))
			}
			for k, want := range tt.headers {
				if got := r.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// sysMetaWith inserts extra (already escaped) key-value text into the
// escaped systemMetadata string at its sorted position after "os".
func sysMetaWith(sysMeta, extra string) string {
	i := strings.Index(sysMeta, `\"version\"`)
	return sysMeta[:i] + extra + sysMeta[i:]
}

func TestCreateRunResponse(t *testing.T) {
	seven, three := int64(7), int64(3)
	tests := []struct {
		name string
		resp string
		want Run
	}{
		{"current", `{"runId":42,"number":1,"displayId":"MPR-1","projectName":"my-project","organizationSlug":"test-org","url":"http://x/u","resumed":true,"forkedFromRunId":7,"forkStep":3}`,
			Run{ID: 42, Number: 1, DisplayID: "MPR-1", ProjectName: "my-project", OrganizationSlug: "test-org", URL: "http://x/u", Resumed: true, ForkedFromRunID: &seven, ForkStep: &three}},
		{"legacy", `{"runId":42,"projectName":"my-project","organizationSlug":"test-org","url":"http://x/u"}`,
			Run{ID: 42, ProjectName: "my-project", OrganizationSlug: "test-org", URL: "http://x/u"}},
		{"unknown fields and nulls", `{"runId":9,"number":null,"displayId":null,"future":{"a":1}}`,
			Run{ID: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, reply(http.StatusOK, tt.resp))
			c := newTestClient(t, testOptions(f.srv.URL))
			got, err := c.CreateRun(context.Background(), CreateRun{RunName: "r"})
			if err != nil {
				t.Fatal(err)
			}
			if !runEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("no runId", func(t *testing.T) {
		f := newFake(t, reply(http.StatusOK, `{"projectName":"p"}`))
		c := newTestClient(t, testOptions(f.srv.URL))
		if _, err := c.CreateRun(context.Background(), CreateRun{RunName: "r"}); err == nil {
			t.Fatal("want an error for a response without runId")
		}
	})
}

func runEqual(a, b Run) bool {
	eq := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.ForkedFromRunID, b.ForkedFromRunID) && eq(a.ForkStep, b.ForkStep) &&
		a.ID == b.ID && a.Number == b.Number && a.DisplayID == b.DisplayID && a.ProjectName == b.ProjectName &&
		a.OrganizationSlug == b.OrganizationSlug && a.URL == b.URL && a.Resumed == b.Resumed
}

// The backend compresses responses (hono/compress); the client must ask for
// gzip and decode it.
func TestGzipResponse(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			t.Errorf("Accept-Encoding = %q", r.Header.Get("Accept-Encoding"))
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/json")
		gz := gzip.NewWriter(w)
		_, _ = io.WriteString(gz, `{"runId":42,"number":3,"displayId":"MPR-3","projectName":"p","organizationSlug":"o","url":"u","resumed":false}`)
		_ = gz.Close()
	})
	c := newTestClient(t, testOptions(f.srv.URL))
	run, err := c.CreateRun(context.Background(), CreateRun{RunName: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if run.ID != 42 || run.DisplayID != "MPR-3" {
		t.Errorf("run = %+v", run)
	}
}

func TestErrorClassification(t *testing.T) {
	ctx := context.Background()
	metrics := AppendMetricLine(nil, 1, 1, []event.Point{{Name: "a", Value: 1}})
	tests := []struct {
		name         string
		status       int
		body         string
		call         func(c *Client) error
		unauthorized bool
		notFound     bool
		rejected     bool
		permanent    bool
	}{
		{"400 create", 400, `{"error":"A run can have at most one group:* tag."}`,
			func(c *Client) error { _, err := c.CreateRun(ctx, CreateRun{RunName: "r"}); return err },
			false, false, true, true},
		{"404 resume", 404, `{"error":"Run not found"}`,
			func(c *Client) error { _, err := c.ResumeRun(ctx, 9); return err },
			false, true, true, true},
		{"409 resume", 409, `{"error":"ambiguous"}`,
			func(c *Client) error { _, err := c.ResumeRun(ctx, 9); return err },
			false, false, true, true},
		{"422 metrics line rejected", 422, `{"code":"PROCESSING_FAILED","message":"Failed to process metrics stream: InvalidMetricFormat (2005 - Validation Error): metric name cannot be empty"}`,
			func(c *Client) error { return c.SendMetrics(ctx, 1, "p", metrics, 1) },
			false, false, true, true},
		{"422 metrics invalid token", 422, `{"code":"PROCESSING_FAILED","message":"Failed to process metrics stream: InvalidToken (1002 - Authentication Error): Invalid API key"}`,
			func(c *Client) error { return c.SendMetrics(ctx, 1, "p", metrics, 1) },
			true, false, false, true},
		{"422 logs expired", 422, `{"code":"PROCESSING_FAILED","message":"Failed to process logs stream: TokenExpired (1005 - Authentication Error): API key has expired"}`,
			func(c *Client) error { return c.SendLogs(ctx, 1, "p", metrics, 1) },
			true, false, false, true},
		{"401 login", 401, `{"error":"Unauthorized","message":"Key not found"}`,
			func(c *Client) error { _, err := c.Login(ctx); return err },
			true, false, false, true},
		{"403 tags", 403, `{"error":"Forbidden"}`,
			func(c *Client) error { return c.UpdateTags(ctx, 1, nil) },
			true, false, false, true},
		{"401 files", 401, `{"code":"INVALID_TOKEN","message":"Invalid API key"}`,
			func(c *Client) error {
				_, err := c.RequestUploads(ctx, 1, "p", []FileMeta{{FileName: "a", FileType: "t", LogName: "l"}})
				return err
			},
			true, false, false, true},
		{"501 config", 501, `not implemented`,
			func(c *Client) error { return c.UpdateConfig(ctx, 1, map[string]any{"a": 1}) },
			false, false, true, true},
		{"403 presigned put is not the key's fault", 403, `<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>`,
			func(c *Client) error { return c.PutFile(ctx, "", bytes.NewReader([]byte("x")), 1, "text/plain") },
			false, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, reply(tt.status, tt.body))
			c := newTestClient(t, testOptions(f.srv.URL))
			call := tt.call
			if strings.HasPrefix(tt.name, "403 presigned") {
				call = func(c *Client) error {
					return c.PutFile(ctx, f.srv.URL+"/bucket/obj?X-Amz-Signature=zz", bytes.NewReader([]byte("x")), 1, "text/plain")
				}
			}
			err := call(c)
			if err == nil {
				t.Fatal("want an error")
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d attempts, want 1 (no retry)", n)
			}
			if got := errors.Is(err, sink.ErrUnauthorized); got != tt.unauthorized {
				t.Errorf("Is(ErrUnauthorized) = %v, want %v (err %v)", got, tt.unauthorized, err)
			}
			if got := errors.Is(err, sink.ErrNotFound); got != tt.notFound {
				t.Errorf("Is(ErrNotFound) = %v, want %v", got, tt.notFound)
			}
			if got := errors.Is(err, sink.ErrRejected); got != tt.rejected {
				t.Errorf("Is(ErrRejected) = %v, want %v", got, tt.rejected)
			}
			var se *sink.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("err %T is not a *sink.StatusError", err)
			}
			if se.Status != tt.status || se.Permanent() != tt.permanent || se.Body != tt.body {
				t.Errorf("StatusError = %+v, permanent %v", se, se.Permanent())
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error contains the key: %v", err)
			}
		})
	}
}

// The key must not leak through an error body that echoes the request, nor
// through a cut at the 1 KiB limit that would keep part of it.
func TestErrorBodyRedactedAndLimited(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"echoed header", `{"error":"Unauthorized","got":"Bearer ` + testKey + `"}`},
		{"key across the limit", strings.Repeat("x", maxErrorBody-4) + testKey + strings.Repeat("y", 100)},
		{"long body", strings.Repeat("é", 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, reply(http.StatusUnauthorized, tt.body))
			c := newTestClient(t, testOptions(f.srv.URL))
			_, err := c.Login(context.Background())
			var se *sink.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v", err)
			}
			if len(se.Body) > maxErrorBody {
				t.Errorf("body has %d bytes, want <= %d", len(se.Body), maxErrorBody)
			}
			for _, leak := range []string{testKey, testKey[:5], "s3cr3t"} {
				if strings.Contains(se.Body, leak) || strings.Contains(err.Error(), leak) {
					t.Errorf("error leaks %q: %v", leak, err)
				}
			}
			if !strings.HasPrefix(tt.body, "x") && !strings.Contains(tt.body, testKey) && !strings.HasPrefix(se.Body, "éé") {
				t.Errorf("body = %.40q", se.Body)
			}
		})
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	var (
		mu       sync.Mutex
		retries  []int
		attempts []int
	)
	f := newFake(t, replies("Stream processed successfully: 1 records", 500, 503, 429, 408, 200))
	opts := testOptions(f.srv.URL)
	opts.MaxAttempts = 0
	opts.OnRetry = func(op string, status int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if op != "send metrics" || err != nil {
			t.Errorf("OnRetry(%q, %d, %v)", op, status, err)
		}
		retries = append(retries, status)
	}
	opts.OnRequest = func(op string, status int, n int, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if op != "send metrics" || n != 41 || d < 0 {
			t.Errorf("OnRequest(%q, %d, %d, %v)", op, status, n, d)
		}
		attempts = append(attempts, status)
	}
	c := newTestClient(t, opts)
	body := AppendMetricLine(nil, 1, 2, []event.Point{{Name: "loss", Value: 0.25}})
	if len(body) != 41 {
		t.Fatalf("test body has %d bytes", len(body))
	}
	if err := c.SendMetrics(context.Background(), 42, "p", body, 1); err != nil {
		t.Fatalf("SendMetrics: %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 5 {
		t.Fatalf("%d attempts, want 5", len(reqs))
	}
	for i, r := range reqs {
		if r.Body != string(body) || r.ContentLength != int64(len(body)) || r.Header.Get("X-Run-Id") != "42" {
			t.Errorf("attempt %d: body %q (len %d), X-Run-Id %q: not replayed identically", i, r.Body, r.ContentLength, r.Header.Get("X-Run-Id"))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := retries, []int{500, 503, 429, 408}; !equalInts(got, want) {
		t.Errorf("OnRetry statuses = %v, want %v", got, want)
	}
	if got, want := attempts, []int{500, 503, 429, 408, 200}; !equalInts(got, want) {
		t.Errorf("OnRequest statuses = %v, want %v", got, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMaxAttempts(t *testing.T) {
	for _, attempts := range []int{1, 3} {
		t.Run(strconv.Itoa(attempts), func(t *testing.T) {
			f := newFake(t, reply(http.StatusServiceUnavailable, "down"))
			opts := testOptions(f.srv.URL)
			opts.MaxAttempts = attempts
			c := newTestClient(t, opts)
			err := c.UpdateTags(context.Background(), 1, []string{"a"})
			if n := len(f.requests()); n != attempts {
				t.Errorf("%d attempts, want %d", n, attempts)
			}
			var se *sink.StatusError
			if !errors.As(err, &se) || se.Status != 503 || se.Permanent() || se.Body != "down" {
				t.Fatalf("err = %#v", err)
			}
			if errors.Is(err, sink.ErrRejected) || errors.Is(err, sink.ErrUnauthorized) {
				t.Errorf("a transient failure matches a permanent sentinel: %v", err)
			}
		})
	}
}

func TestRetryForeverUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 9 {
			cancel() // the tenth attempt fails and the caller gives up
		}
		w.WriteHeader(http.StatusBadGateway)
	})
	opts := testOptions(f.srv.URL)
	opts.MaxAttempts = 0
	c := newTestClient(t, opts)
	err := c.UpdateStatus(ctx, 1, event.StatusRunning, 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := len(f.requests()); n != 10 {
		t.Errorf("%d attempts, want 10", n)
	}
}

// A server's Retry-After must not stall the client beyond MaxBackoff.
func TestRetryAfterCapped(t *testing.T) {
	for _, ra := range []string{"3600", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)} {
		t.Run(ra, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, _ *http.Request, n int) {
				if n == 0 {
					w.Header().Set("Retry-After", ra)
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				_, _ = io.WriteString(w, `{"success":true}`)
			})
			opts := testOptions(f.srv.URL)
			opts.MaxBackoff = 20 * time.Millisecond
			c := newTestClient(t, opts)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			if err := c.UpdateTags(ctx, 1, nil); err != nil {
				t.Fatalf("err = %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: Retry-After was not capped", d)
			}
			if n := len(f.requests()); n != 2 {
				t.Errorf("%d attempts, want 2", n)
			}
		})
	}
}

func TestConnectionErrorsRetried(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n < 2 {
			// Drop the connection without a response.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		_, _ = io.WriteString(w, `{"success":true}`)
	})
	var retries atomic.Int32
	opts := testOptions(f.srv.URL)
	opts.OnRetry = func(_ string, status int, err error) {
		if status != 0 || err == nil {
			t.Errorf("OnRetry status %d err %v, want 0 and an error", status, err)
		}
		retries.Add(1)
	}
	c := newTestClient(t, opts)
	if err := c.AddLogNames(context.Background(), 1, LogTypeMetric, []string{"a"}); err != nil {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.requests()); n != 3 || retries.Load() != 2 {
		t.Errorf("%d attempts, %d retries; want 3, 2", n, retries.Load())
	}
}

// Each attempt has its own timeout; a hung attempt is abandoned and retried.
func TestPerAttemptTimeout(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			<-r.Context().Done() // hang until the client gives up on this attempt
			return
		}
		_, _ = io.WriteString(w, `{"success":true}`)
	})
	opts := testOptions(f.srv.URL)
	opts.Timeout = 100 * time.Millisecond
	c := newTestClient(t, opts)
	if err := c.UpdateTags(context.Background(), 1, nil); err != nil {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

// A connection refused everywhere ends with the transport error after
// MaxAttempts, not with a StatusError.
func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	var tries atomic.Int32
	opts := testOptions("http://" + addr)
	opts.MaxAttempts = 3
	opts.OnRequest = func(string, int, int, time.Duration) { tries.Add(1) }
	c := newTestClient(t, opts)
	err = c.PutFile(context.Background(), "http://"+addr+"/bucket/key?X-Amz-Signature=SIGSECRET", bytes.NewReader([]byte("abc")), 3, "text/plain")
	if err == nil {
		t.Fatal("want an error")
	}
	var se *sink.StatusError
	if errors.As(err, &se) || errors.Is(err, sink.ErrRejected) {
		t.Errorf("err = %v, want a transport error", err)
	}
	if tries.Load() != 3 {
		t.Errorf("%d attempts, want 3", tries.Load())
	}
	if strings.Contains(err.Error(), "SIGSECRET") {
		t.Errorf("error leaks the presigned signature: %v", err)
	}
}

func TestTriggerSingleAttempt(t *testing.T) {
	f := newFake(t, reply(http.StatusInternalServerError, "legacy py"))
	opts := testOptions(f.srv.URL)
	opts.MaxAttempts = 0
	c := newTestClient(t, opts)
	_, err := c.Trigger(context.Background(), 42)
	var se *sink.StatusError
	if !errors.As(err, &se) || se.Status != 500 {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestPutFile(t *testing.T) {
	tests := []struct {
		name     string
		content  string
		statuses []int
	}{
		{"small", "hello", []int{200}},
		{"retried and replayed", strings.Repeat("0123456789", 10000), []int{500, 503, 200}},
		{"empty", "", []int{200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, replies("", tt.statuses...))
			c := newTestClient(t, testOptions(f.srv.URL))
			url := f.srv.URL + "/bucket/org/proj/42/files/notes/a.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc"
			err := c.PutFile(context.Background(), url, strings.NewReader(tt.content), int64(len(tt.content)), "text/plain")
			if err != nil {
				t.Fatalf("PutFile: %v", err)
			}
			reqs := f.requests()
			if len(reqs) != len(tt.statuses) {
				t.Fatalf("%d attempts, want %d", len(reqs), len(tt.statuses))
			}
			for i, r := range reqs {
				if r.Method != "PUT" || r.Path != "/bucket/org/proj/42/files/notes/a.txt" || !strings.Contains(r.RawQuery, "X-Amz-Signature=abc") {
					t.Errorf("attempt %d: %s %s?%s", i, r.Method, r.Path, r.RawQuery)
				}
				if _, ok := r.Header["Authorization"]; ok {
					t.Errorf("attempt %d sent an Authorization header to the object store", i)
				}
				for k, v := range r.Header {
					for _, s := range v {
						if strings.Contains(s, testKey) {
							t.Errorf("attempt %d: header %s carries the key", i, k)
						}
					}
				}
				if r.Body != tt.content || r.ContentLength != int64(len(tt.content)) || len(r.TransferEncoding) != 0 {
					t.Errorf("attempt %d: %d bytes, Content-Length %d, Transfer-Encoding %v", i, len(r.Body), r.ContentLength, r.TransferEncoding)
				}
				if r.Header.Get("Content-Type") != "text/plain" {
					t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
				}
			}
		})
	}
}

// Client-side checks fail with sink.ErrInvalid before any request is made.
func TestInvalidCallsSendNothing(t *testing.T) {
	ctx := context.Background()
	tooMany := make([]string, 51)
	for i := range tooMany {
		tooMany[i] = "t" + strconv.Itoa(i)
	}
	calls := map[string]func(c *Client) error{
		"create: blank name": func(c *Client) error { _, err := c.CreateRun(ctx, CreateRun{RunName: " "}); return err },
		"create: long name": func(c *Client) error {
			_, err := c.CreateRun(ctx, CreateRun{RunName: strings.Repeat("ü", 256)})
			return err
		},
		"create: 51 tags":       func(c *Client) error { _, err := c.CreateRun(ctx, CreateRun{RunName: "r", Tags: tooMany}); return err },
		"resume: run 0":         func(c *Client) error { _, err := c.ResumeRun(ctx, 0); return err },
		"status: unknown":       func(c *Client) error { return c.UpdateStatus(ctx, 1, "DONE", 0) },
		"status: negative time": func(c *Client) error { return c.UpdateStatus(ctx, 1, event.StatusFailed, -1) },
		"log names: bad type":   func(c *Client) error { return c.AddLogNames(ctx, 1, "GRAPH", []string{"a"}) },
		"tags: two groups":      func(c *Client) error { return c.UpdateTags(ctx, 1, []string{"group:a", "group:b"}) },
		"tags: 51":              func(c *Client) error { return c.UpdateTags(ctx, 1, tooMany) },
		"config: run -1":        func(c *Client) error { return c.UpdateConfig(ctx, -1, map[string]any{"a": 1}) },
		"metrics: run 0":        func(c *Client) error { return c.SendMetrics(ctx, 0, "p", []byte("x\n"), 1) },
		"trigger: run 0":        func(c *Client) error { _, err := c.Trigger(ctx, 0); return err },
		"files: blank log name": func(c *Client) error {
			_, err := c.RequestUploads(ctx, 1, "p", []FileMeta{{FileName: "a", FileType: "t"}})
			return err
		},
		"files: negative size": func(c *Client) error {
			_, err := c.RequestUploads(ctx, 1, "p", []FileMeta{{FileName: "a", FileType: "t", LogName: "l", FileSize: -1}})
			return err
		},
		"put: negative size": func(c *Client) error { return c.PutFile(ctx, "http://x/", nil, -1, "") },
		"step: no project":   func(c *Client) error { c.project = ""; _, err := c.Step(ctx, 1, ""); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, nil)
			c := newTestClient(t, testOptions(f.srv.URL))
			err := call(c)
			if !errors.Is(err, sink.ErrInvalid) {
				t.Errorf("err = %v, want sink.ErrInvalid", err)
			}
			if n := len(f.requests()); n != 0 {
				t.Errorf("%d requests sent, want 0", n)
			}
		})
	}
}

func TestNoOps(t *testing.T) {
	f := newFake(t, nil)
	c := newTestClient(t, testOptions(f.srv.URL))
	ctx := context.Background()
	if err := c.UpdateConfig(ctx, 1, nil); err != nil {
		t.Error(err)
	}
	if err := c.UpdateConfig(ctx, 1, map[string]any{}); err != nil {
		t.Error(err)
	}
	if err := c.AddLogNames(ctx, 1, LogTypeMetric, nil); err != nil {
		t.Error(err)
	}
	if err := c.SendMetrics(ctx, 1, "p", nil, 0); err != nil {
		t.Error(err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests, want 0", n)
	}
}

func TestAddLogNamesChunks(t *testing.T) {
	f := newFake(t, reply(http.StatusOK, `{"success":true}`))
	c := newTestClient(t, testOptions(f.srv.URL))
	names := make([]string, 2500)
	for i := range names {
		names[i] = "m/" + strconv.Itoa(i)
	}
	if err := c.AddLogNames(context.Background(), 1, LogTypeMetric, names); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, want := range []int{1000, 1000, 500} {
		if got := strings.Count(reqs[i].Body, `"m/`); got != want {
			t.Errorf("request %d has %d names, want %d", i, got, want)
		}
	}
	if !strings.Contains(reqs[2].Body, `"m/2499"]`) || !strings.Contains(reqs[1].Body, `["m/1000",`) {
		t.Errorf("chunks out of order")
	}
}

// Nothing the client logs, at any level, may contain the key; each retry
// logs at debug level, and only the trouble log (first failure, recovery)
// speaks louder.
func TestLogsNeverContainKey(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "echo: "+r.Header.Get("Authorization"))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "echo: "+r.Header.Get("Authorization"))
	})
	opts := testOptions(f.srv.URL)
	opts.Logger = logger
	c := newTestClient(t, opts)
	_, err := c.Login(context.Background())
	if !errors.Is(err, sink.ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	_ = c.PutFile(context.Background(), f.srv.URL+"/b/k?X-Amz-Signature=SIGSECRET", strings.NewReader("x"), 1, "text/plain")
	out := buf.String()
	if !strings.Contains(out, "retrying request") {
		t.Errorf("no retry was logged:\n%s", out)
	}
	for _, leak := range []string{testKey, "s3cr3t", "SIGSECRET"} {
		if strings.Contains(out, leak) || strings.Contains(err.Error(), leak) {
			t.Errorf("%q leaked:\n%s\n%v", leak, out, err)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		trouble := strings.Contains(line, `msg="server not answering`) || strings.Contains(line, `msg="server answering again"`)
		if !strings.Contains(line, "level=DEBUG") && !trouble {
			t.Errorf("non-debug line: %s", line)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestConcurrentSends(t *testing.T) {
	f := newFake(t, replies("ok", 503, 200, 200, 200))
	c := newTestClient(t, testOptions(f.srv.URL))
	const workers, perWorker = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			var buf []byte
			for i := range perWorker {
				buf = AppendMetricLine(buf[:0], int64(i), int64(i), []event.Point{{Name: "w" + strconv.Itoa(w), Value: float64(i)}})
				errs <- c.SendMetrics(context.Background(), int64(w+1), "p", buf, 1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.requests()); n != workers*perWorker+1 {
		t.Errorf("%d requests, want %d", n, workers*perWorker+1)
	}
	// Without keep-alive every request dials (321 connections). With it,
	// a few more than one per worker are normal: net/http hands a
	// connection back to the pool asynchronously after the body is read, so
	// a worker's next request can start before that and dial.
	if n, most := f.conns.Load(), int32(workers*perWorker/4); n > most {
		t.Errorf("%d connections for %d workers and %d requests (at most %d): keep-alive not reused", n, workers, workers*perWorker+1, most)
	}
}

// After a failed call the library closes idle connections of its HTTP
// client; the client hides that from the shared pool so other calls keep
// their keep-alive connections.
func TestFailedCallKeepsIdleConnections(t *testing.T) {
	var inFlight atomic.Int32
	release := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.URL.Path == "/A/api/runs/status/update" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		// The first two tag updates meet here so that they need two
		// connections.
		if inFlight.Add(1) == 2 {
			close(release)
		}
		<-release
		_, _ = io.WriteString(w, `{"success":true}`)
	})
	opts := testOptions(f.srv.URL)
	opts.MaxAttempts = 1
	c := newTestClient(t, opts)
	ctx := context.Background()
	both := func() {
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if err := c.UpdateTags(ctx, 1, nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	both()
	if n := f.conns.Load(); n != 2 {
		t.Fatalf("%d connections after two concurrent calls, want 2", n)
	}
	if err := c.UpdateStatus(ctx, 1, event.StatusRunning, 0); err == nil {
		t.Fatal("want a 503 error")
	}
	// Two sequential calls now: both must reuse the pooled connections.
	for range 2 {
		if err := c.UpdateTags(ctx, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: idle connections were closed", n)
	}
}

func TestNewOptions(t *testing.T) {
	good := Options{APIURL: "http://a", IngestURL: "https://i:3003/x/", PyURL: "http://p", APIKey: "mlpi_k"}
	tests := []struct {
		name string
		mod  func(*Options)
		ok   bool
	}{
		{"good", func(*Options) {}, true},
		{"no api url", func(o *Options) { o.APIURL = "" }, false},
		{"no ingest url", func(o *Options) { o.IngestURL = "" }, false},
		{"no py url", func(o *Options) { o.PyURL = "" }, false},
		{"ftp scheme", func(o *Options) { o.APIURL = "ftp://a" }, false},
		{"no host", func(o *Options) { o.APIURL = "http://" }, false},
		{"relative", func(o *Options) { o.APIURL = "api.example.com" }, false},
		{"query", func(o *Options) { o.APIURL = "http://a/?x=1" }, false},
		{"user info", func(o *Options) { o.APIURL = "http://u:p@a/" }, false},
		{"no key", func(o *Options) { o.APIKey = "" }, false},
		{"key with newline", func(o *Options) { o.APIKey = "mlpi_secret\n" }, false},
		{"key with space", func(o *Options) { o.APIKey = "mlpi secret" }, false},
		{"negative attempts", func(o *Options) { o.MaxAttempts = -1 }, false},
		{"negative timeout", func(o *Options) { o.Timeout = -1 }, false},
		{"missing ca file", func(o *Options) { o.CAFile = "/nonexistent/ca.pem" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.mod(&o)
			c, err := New(o)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if err != nil {
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error contains the key: %v", err)
				}
				return
			}
			c.Close()
			c.Close() // idempotent
			if c.ingest != "https://i:3003/x" || c.timeout != DefaultTimeout || c.minWait != DefaultInitialBackoff ||
				c.maxWait != DefaultMaxBackoff || c.userAgent != "mlop-agent/dev" || c.retryMax != math.MaxInt32 {
				t.Errorf("defaults not applied: %+v", c)
			}
			if c.transport.MaxIdleConnsPerHost != DefaultMaxConnsPerHost {
				t.Errorf("idle conns per host = %d", c.transport.MaxIdleConnsPerHost)
			}
		})
	}
}
