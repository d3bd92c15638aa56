package mlop

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestComputeBackoff(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	maxJitter := func(n int64) int64 { return n - 1 } // the top of the range
	noJitter := func(int64) int64 { return 0 }
	withHeader := func(status int, ra string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {ra}}}
	}
	tests := []struct {
		name    string
		min     time.Duration
		max     time.Duration
		attempt int
		resp    *http.Response
		jitter  func(int64) int64
		want    time.Duration
	}{
		{"first wait, top of jitter", 500 * time.Millisecond, 30 * time.Second, 0, nil, maxJitter, 500 * time.Millisecond},
		{"doubles", 500 * time.Millisecond, 30 * time.Second, 3, nil, maxJitter, 4 * time.Second},
		{"capped", 500 * time.Millisecond, 30 * time.Second, 10, nil, maxJitter, 30 * time.Second},
		{"huge attempt does not overflow", 500 * time.Millisecond, 30 * time.Second, 1000, nil, maxJitter, 30 * time.Second},
		{"attempt 61 does not overflow", time.Second, time.Minute, 61, nil, maxJitter, time.Minute},
		{"full jitter reaches 0", 500 * time.Millisecond, 30 * time.Second, 5, nil, noJitter, 0},
		{"retry-after seconds", time.Millisecond, 30 * time.Second, 0, withHeader(429, "7"), maxJitter, 7 * time.Second},
		{"retry-after capped", time.Millisecond, 30 * time.Second, 0, withHeader(503, "3600"), maxJitter, 30 * time.Second},
		{"retry-after on 500 too", time.Millisecond, 30 * time.Second, 0, withHeader(500, "2"), maxJitter, 2 * time.Second},
		{"retry-after date", time.Millisecond, 30 * time.Second, 0, withHeader(429, now.Add(12*time.Second).Format(http.TimeFormat)), maxJitter, 12 * time.Second},
		{"retry-after date capped", time.Millisecond, 30 * time.Second, 0, withHeader(429, now.Add(time.Hour).Format(http.TimeFormat)), maxJitter, 30 * time.Second},
		{"retry-after date in the past", time.Millisecond, 30 * time.Second, 4, withHeader(429, now.Add(-time.Hour).Format(http.TimeFormat)), maxJitter, 0},
		{"retry-after zero", time.Millisecond, 30 * time.Second, 4, withHeader(429, "0"), maxJitter, 0},
		{"retry-after garbage is ignored", 100 * time.Millisecond, 30 * time.Second, 1, withHeader(429, "soon"), maxJitter, 200 * time.Millisecond},
		{"retry-after negative is ignored", 100 * time.Millisecond, 30 * time.Second, 1, withHeader(429, "-5"), maxJitter, 200 * time.Millisecond},
		{"retry-after enormous", time.Millisecond, 30 * time.Second, 0, withHeader(429, "99999999999999999"), maxJitter, 30 * time.Second},
		{"response without header", 100 * time.Millisecond, 30 * time.Second, 2, &http.Response{StatusCode: 502, Header: http.Header{}}, maxJitter, 400 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := computeBackoff(tt.min, tt.max, tt.attempt, tt.resp, now, tt.jitter)
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// With the real jitter source every wait stays inside [0, ceiling].
func TestBackoffJitterRange(t *testing.T) {
	c, err := New(Options{APIURL: "http://a", IngestURL: "http://i", PyURL: "http://p", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[bool]int{}
	for attempt := range 8 {
		ceiling := min(100*time.Millisecond<<attempt, 5*time.Second)
		for range 200 {
			d := c.backoff(100*time.Millisecond, 5*time.Second, attempt, nil)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: wait %v outside [0, %v]", attempt, d, ceiling)
			}
			seen[d < ceiling/2]++
		}
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Errorf("no jitter: %v", seen)
	}
}

func TestCheckRetry(t *testing.T) {
	c, err := New(Options{APIURL: "http://a", IngestURL: "http://i", PyURL: "http://p", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	resp := func(status int) *http.Response { return &http.Response{StatusCode: status} }
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		resp    *http.Response
		err     error
		retry   bool
		wantErr bool
	}{
		{"200", context.Background(), resp(200), nil, false, false},
		{"400", context.Background(), resp(400), nil, false, false},
		{"401", context.Background(), resp(401), nil, false, false},
		{"404", context.Background(), resp(404), nil, false, false},
		{"408", context.Background(), resp(408), nil, true, false},
		{"422", context.Background(), resp(422), nil, false, false},
		{"429", context.Background(), resp(429), nil, true, false},
		{"500", context.Background(), resp(500), nil, true, false},
		{"501", context.Background(), resp(501), nil, false, false},
		{"502", context.Background(), resp(502), nil, true, false},
		{"503", context.Background(), resp(503), nil, true, false},
		{"504", context.Background(), resp(504), nil, true, false},
		{"connection reset", context.Background(), nil, &url.Error{Op: "Post", URL: "http://a", Err: errors.New("connection reset by peer")}, true, false},
		{"tls unknown authority", context.Background(), nil, &url.Error{Op: "Post", URL: "https://a", Err: &tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")}}, false, false},
		{"redirect loop", context.Background(), nil, &url.Error{Op: "Post", URL: "http://a", Err: errors.New("stopped after 10 redirects")}, false, false},
		{"bad scheme", context.Background(), nil, &url.Error{Op: "Post", URL: "ftp://a", Err: errors.New("unsupported protocol scheme \"ftp\"")}, false, false},
		{"context done", cancelled, nil, &url.Error{Op: "Post", URL: "http://a", Err: context.Canceled}, false, true},
		{"context done after a 503", cancelled, resp(503), nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retry, err := c.checkRetry(tt.ctx, tt.resp, tt.err)
			if retry != tt.retry || (err != nil) != tt.wantErr {
				t.Errorf("checkRetry = %v, %v; want %v, error %v", retry, err, tt.retry, tt.wantErr)
			}
		})
	}
}

func TestStripQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"http://a/b", "http://a/b"},
		{"http://a/b?X-Amz-Signature=s", "http://a/b?[REDACTED]"},
		{`Put "http://a/b?sig=s": dial tcp: refused`, `Put "http://a/b?[REDACTED]": dial tcp: refused`},
		{"PUT http://a/b?sig=s (status: 503)", "PUT http://a/b?[REDACTED] (status: 503)"},
		{"a?x b?y", "a?[REDACTED] b?[REDACTED]"},
	}
	for _, tt := range tests {
		if got := stripQuery(tt.in); got != tt.want {
			t.Errorf("stripQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// writeCA writes the test server's certificate as a PEM CA file.
func writeCA(t *testing.T, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLS(t *testing.T) {
	f := newTLSFake(t)
	ca := writeCA(t, f.srv.Certificate().Raw)
	notPEM := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("custom CA", func(t *testing.T) {
		opts := testOptions(f.srv.URL)
		opts.CAFile = ca
		c := newTestClient(t, opts)
		slug, err := c.Login(context.Background())
		if err != nil || slug != "tls-org" {
			t.Fatalf("Login = %q, %v", slug, err)
		}
		reqs := f.requests()
		if p := reqs[len(reqs)-1].Proto; p != "HTTP/1.1" {
			t.Errorf("proto = %s, want HTTP/1.1", p)
		}
	})
	t.Run("unknown CA fails at once, not retried", func(t *testing.T) {
		before := len(f.requests())
		opts := testOptions(f.srv.URL)
		opts.MaxAttempts = 0 // would retry forever if it retried at all
		var attempts int
		opts.OnRequest = func(string, int, int, time.Duration) { attempts++ }
		c := newTestClient(t, opts)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Login(ctx)
		var cve *tls.CertificateVerificationError
		if !errors.As(err, &cve) {
			t.Fatalf("err = %v, want a certificate verification error", err)
		}
		if ctx.Err() != nil || attempts != 1 {
			t.Errorf("%d attempts (ctx %v), want 1", attempts, ctx.Err())
		}
		if len(f.requests()) != before {
			t.Errorf("a request reached the handler")
		}
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		opts := testOptions(f.srv.URL)
		opts.InsecureSkipVerify = true
		c := newTestClient(t, opts)
		if _, err := c.Login(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CA file without certificates", func(t *testing.T) {
		opts := testOptions(f.srv.URL)
		opts.CAFile = notPEM
		if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
			t.Fatalf("err = %v", err)
		}
	})
}

func newTLSFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{respond: reply(http.StatusOK, `{"organization":{"slug":"tls-org"}}`)}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.handle))
	f.srv.EnableHTTP2 = true // offered, but the client must stay on HTTP/1.1
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}
