package telemetry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// get performs a request and returns the status and body.
func get(t *testing.T, c *http.Client, method, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// waitGoroutines waits (bounded) for the goroutine count to fall back to
// at most n, and fails with the stacks if it does not.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, want at most %d; stacks:\n%s", runtime.NumGoroutine(), n, buf)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestServerEndpoints(t *testing.T) {
	base := runtime.NumGoroutine()
	tel := New(Options{Version: "v9", Sources: []string{"train"}})
	tel.RecordsRead("train", 5)
	var ready atomic.Bool
	var flushes atomic.Int32
	srv, err := tel.Listen("127.0.0.1:0", Hooks{
		Ready: func() (bool, string) {
			if ready.Load() {
				return true, "ok"
			}
			return false, "the server has been failing for 2m0s"
		},
		Flush: func(ctx context.Context) error { flushes.Add(1); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	u := "http://" + srv.Addr()

	t.Run("metrics", func(t *testing.T) {
		code, body, hdr := get(t, c, "GET", u+"/metrics")
		if code != 200 {
			t.Fatalf("GET /metrics = %d", code)
		}
		if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type = %q, want text/plain", ct)
		}
		for _, want := range []string{
			`mlop_agent_build_info{version="v9"} 1`,
			`mlop_agent_records_read_total{source="train"} 5`,
			`mlop_agent_checkpoint_age_seconds `,
			`mlop_agent_lag_bytes{source="train"} 0`,
			"go_goroutines ",
			"process_cpu_seconds_total ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
	t.Run("healthz", func(t *testing.T) {
		if code, body, _ := get(t, c, "GET", u+"/healthz"); code != 200 || body != "ok\n" {
			t.Errorf("GET /healthz = %d %q, want 200 ok", code, body)
		}
	})
	t.Run("readyz flips", func(t *testing.T) {
		code, body, hdr := get(t, c, "GET", u+"/readyz")
		if code != 503 || !strings.Contains(body, "failing for 2m0s") {
			t.Errorf("GET /readyz not ready = %d %q, want 503 with the reason", code, body)
		}
		if ct := hdr.Get("Content-Type"); ct != textPlain {
			t.Errorf("Content-Type = %q, want %q", ct, textPlain)
		}
		ready.Store(true)
		if code, body, _ := get(t, c, "GET", u+"/readyz"); code != 200 || body != "ok\n" {
			t.Errorf("GET /readyz ready = %d %q, want 200 ok", code, body)
		}
		ready.Store(false)
		if code, _, _ := get(t, c, "GET", u+"/readyz"); code != 503 {
			t.Errorf("GET /readyz after flipping back = %d, want 503", code)
		}
	})
	t.Run("flush", func(t *testing.T) {
		if code, body, _ := get(t, c, "POST", u+"/flush"); code != 200 || body != "flushed\n" {
			t.Errorf("POST /flush = %d %q, want 200 flushed", code, body)
		}
		if n := flushes.Load(); n != 1 {
			t.Errorf("flush hook called %d times, want 1", n)
		}
		code, _, hdr := get(t, c, "GET", u+"/flush")
		if code != http.StatusMethodNotAllowed {
			t.Errorf("GET /flush = %d, want 405", code)
		}
		if allow := hdr.Get("Allow"); !strings.Contains(allow, "POST") {
			t.Errorf("Allow = %q, want POST", allow)
		}
		if n := flushes.Load(); n != 1 {
			t.Errorf("GET /flush called the hook; calls = %d", n)
		}
	})
	t.Run("methods and paths", func(t *testing.T) {
		if code, _, _ := get(t, c, "POST", u+"/metrics"); code != http.StatusMethodNotAllowed {
			t.Errorf("POST /metrics = %d, want 405", code)
		}
		if code, _, _ := get(t, c, "GET", u+"/nope"); code != http.StatusNotFound {
			t.Errorf("GET /nope = %d, want 404", code)
		}
		if code, body, _ := get(t, c, "GET", u+"/"); code != 200 || !strings.Contains(body, "/readyz") {
			t.Errorf("GET / = %d %q, want the index", code, body)
		}
	})

	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		conn.Close()
		t.Error("listener still accepts after Close")
	}
	tr.CloseIdleConnections()
	waitGoroutines(t, base)
}

func TestFlushOutcomes(t *testing.T) {
	secret := errors.New("post https://user:secret-key-123@example.com: boom")
	tests := []struct {
		name     string
		hooks    Hooks
		query    string
		wantCode int
		wantBody string
	}{
		{"timeout", Hooks{FlushTimeout: 20 * time.Millisecond, Flush: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}, "", http.StatusGatewayTimeout, "not everything was acknowledged within 20ms"},
		{"shorter timeout from the query", Hooks{FlushTimeout: time.Hour, Flush: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}, "?timeout=20ms", http.StatusGatewayTimeout, "within 20ms"},
		{"longer timeout from the query is capped", Hooks{FlushTimeout: 20 * time.Millisecond, Flush: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}, "?timeout=1h", http.StatusGatewayTimeout, "within 20ms"},
		{"bad timeout", Hooks{Flush: func(context.Context) error { return nil }}, "?timeout=soon", http.StatusBadRequest, "positive duration"},
		{"error hides its text", Hooks{Flush: func(context.Context) error { return secret }}, "", http.StatusInternalServerError, "flush failed"},
		{"wrapped deadline", Hooks{Flush: func(context.Context) error {
			return errors.Join(errors.New("3 batches left"), context.DeadlineExceeded)
		}}, "", http.StatusGatewayTimeout, "not everything was acknowledged"},
		{"no hook", Hooks{}, "", http.StatusNotImplemented, "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(Options{}).Listen("127.0.0.1:0", tc.hooks)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			c := &http.Client{Timeout: 10 * time.Second}
			code, body, _ := get(t, c, "POST", "http://"+srv.Addr()+"/flush"+tc.query)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Errorf("POST /flush%s = %d %q, want %d containing %q", tc.query, code, body, tc.wantCode, tc.wantBody)
			}
			if strings.Contains(body, "secret") {
				t.Errorf("answer carries the error text: %q", body)
			}
		})
	}
}

// TestCloseEndsARunningFlush: Close cancels the hook's context instead of
// waiting for the flush timeout.
func TestCloseEndsARunningFlush(t *testing.T) {
	base := runtime.NumGoroutine()
	entered := make(chan struct{})
	returned := make(chan error, 1)
	srv, err := New(Options{}).Listen("127.0.0.1:0", Hooks{FlushTimeout: time.Hour, Flush: func(ctx context.Context) error {
		close(entered)
		<-ctx.Done()
		returned <- ctx.Err()
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	done := make(chan int, 1)
	go func() {
		resp, err := c.Post("http://"+srv.Addr()+"/flush", "text/plain", nil)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-entered
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Close took %s; it should cancel the flush", d)
	}
	if err := <-returned; !errors.Is(err, context.Canceled) {
		t.Errorf("hook context ended with %v, want Canceled", err)
	}
	if code := <-done; code != http.StatusServiceUnavailable && code != -1 {
		t.Errorf("flush answer during Close = %d, want 503 or no answer", code)
	}
	tr.CloseIdleConnections()
	waitGoroutines(t, base)
}

func TestServe(t *testing.T) {
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		err = New(Options{}).Serve(context.Background(), ln.Addr().String(), Hooks{})
		if err == nil || !strings.Contains(err.Error(), "listen on") {
			t.Errorf("Serve on a used port = %v, want a listen error", err)
		}
	})
	t.Run("until the context ends", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- New(Options{}).Serve(ctx, addr, Hooks{}) }()
		c := &http.Client{Timeout: time.Second}
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := c.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("healthz = %d", resp.StatusCode)
				}
				break
			}
			select {
			case err := <-errc:
				t.Fatalf("Serve returned early: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("server never answered: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
	})
}
