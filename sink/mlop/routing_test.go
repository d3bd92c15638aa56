package mlop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/sink"
)

// TestRoutingFaults: a 404 that is not the server's own answer, and any
// redirect, are routing faults — retried (the data is kept), never
// followed, never a rejection; the server's "Run not found" stays a
// permanent not-found; on login a routing fault ends the call at once with
// "not an mlop API".
func TestRoutingFaults(t *testing.T) {
	htmlNotFound := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "<html><body><h1>404 Not Found</h1>nginx</body></html>")
	}
	tests := []struct {
		name string
		// bad answers the first n requests badly, then 200.
		bad      func(w http.ResponseWriter, r *http.Request)
		call     func(c *Client) error
		wantErr  error // nil: succeeds after the bad answers
		attempts int   // MaxAttempts (0: the default of testOptions)
		requests int   // requests the fake must see
	}{
		{
			name: "ingress html 404 then ok", bad: func(w http.ResponseWriter, _ *http.Request) { htmlNotFound(w) },
			call: func(c *Client) error {
				return c.SendMetrics(context.Background(), 7, "p", []byte(`{"time":1,"step":1,"data":{"a":1}}`+"\n"), 1)
			},
			requests: 4,
		},
		{
			name: "empty-body 404 (axum unknown route) then ok", bad: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) },
			call:     func(c *Client) error { return c.SendData(context.Background(), 7, "p", []byte(`{}`+"\n"), 1) },
			requests: 4,
		},
		{
			name: "fastapi route miss then ok", bad: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, `{"detail":"Not Found"}`)
			},
			call:     func(c *Client) error { _, err := c.Trigger(context.Background(), 7); return err },
			requests: 1, wantErr: sink.ErrRouting, // heartbeats make one attempt
		},
		{
			name: "redirect is refused and retried", bad: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://elsewhere.invalid/login?token=SECRET", http.StatusFound)
			},
			call:     func(c *Client) error { return c.UpdateTags(context.Background(), 7, []string{"a"}) },
			requests: 4,
		},
		{
			name: "routing faults beyond the attempts stay routing faults", bad: func(w http.ResponseWriter, _ *http.Request) { htmlNotFound(w) },
			call:     func(c *Client) error { return c.UpdateConfig(context.Background(), 7, map[string]any{"a": 1}) },
			attempts: 2, requests: 2, wantErr: sink.ErrRouting,
		},
		{
			name: "the server's own run-not-found is permanent", bad: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, `{"error":"Run not found"}`)
			},
			call:     func(c *Client) error { return c.UpdateStatus(context.Background(), 7, "COMPLETED", 0) },
			requests: 1, wantErr: sink.ErrNotFound,
		},
		{
			name: "login 404 is not an mlop API, at once", bad: func(w http.ResponseWriter, _ *http.Request) { htmlNotFound(w) },
			call:     func(c *Client) error { _, err := c.Login(context.Background()); return err },
			requests: 1, wantErr: sink.ErrRouting,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n < 3 {
					tt.bad(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"success":true,"status":"RUNNING"}`)
			})
			opts := testOptions(f.srv.URL)
			if tt.attempts > 0 {
				opts.MaxAttempts = tt.attempts
			}
			c := newTestClient(t, opts)
			err := tt.call(c)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("err = %v, want success after the bad answers", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, sink.ErrRouting) {
				var se *sink.StatusError
				if !errors.As(err, &se) || se.Permanent() || errors.Is(err, sink.ErrRejected) {
					t.Errorf("routing fault %v must be transient and not a rejection", err)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error leaks a query string: %v", err)
				}
			}
			if got := len(f.requests()); got != tt.requests {
				t.Errorf("%d requests, want %d", got, tt.requests)
			}
			for _, r := range f.requests() {
				if r.Path == "/login" {
					t.Errorf("a redirect was followed")
				}
			}
		})
	}
	t.Run("login message", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) { htmlNotFound(w) })
		c := newTestClient(t, testOptions(f.srv.URL))
		_, err := c.Login(context.Background())
		if err == nil || !strings.Contains(err.Error(), "is not an mlop API") || !strings.Contains(err.Error(), "/A/api/slug") {
			t.Errorf("err = %v, want 'not an mlop API' naming the URL", err)
		}
	})
}

// TestTroubleLog: the first failure of an operation is a WARN with the real
// error and URL, a failure that goes on is reminded about every
// troubleReminder with the buffered bytes, and the recovery is an INFO line.
func TestTroubleLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tr := newTrouble(log, func() int64 { return 4096 })
	now := time.Unix(1000, 0)
	tr.now = func() time.Time { return now }

	lines := func() []string {
		s := strings.TrimSpace(buf.String())
		buf.Reset()
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	tr.failed("send metrics", "http://h/ingest/metrics", "dial tcp: connection refused")
	got := lines()
	if len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "connection refused") ||
		!strings.Contains(got[0], "url=http://h/ingest/metrics") {
		t.Fatalf("first failure: %q", got)
	}
	for i := 0; i < 5; i++ {
		now = now.Add(time.Second)
		tr.failed("send metrics", "http://h/ingest/metrics", "dial tcp: connection refused")
	}
	if got := lines(); len(got) != 0 {
		t.Fatalf("repeated failures within the reminder interval logged: %q", got)
	}
	tr.failed("create run", "http://h/api/runs/create", "HTTP 503 Service Unavailable")
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "op=\"create run\"") {
		t.Fatalf("another operation's first failure: %q", got)
	}
	now = now.Add(troubleReminder)
	tr.failed("send metrics", "http://h/ingest/metrics", "dial tcp: connection refused")
	got = lines()
	if len(got) != 1 || !strings.Contains(got[0], "still not answering") || !strings.Contains(got[0], "failing_for=35s") ||
		!strings.Contains(got[0], "buffered_bytes=4096") || !strings.Contains(got[0], "attempts=7") {
		t.Fatalf("reminder: %q", got)
	}
	now = now.Add(time.Second)
	tr.succeeded("send metrics")
	got = lines()
	if len(got) != 1 || !strings.Contains(got[0], "level=INFO") || !strings.Contains(got[0], "answering again") ||
		!strings.Contains(got[0], "failed_for=36s") {
		t.Fatalf("recovery: %q", got)
	}
	tr.succeeded("send metrics")
	if got := lines(); len(got) != 0 {
		t.Fatalf("a success without failures logged: %q", got)
	}
}
