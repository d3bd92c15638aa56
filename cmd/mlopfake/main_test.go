package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

var freePorts = []string{"-api", "127.0.0.1:0", "-ingest", "127.0.0.1:0", "-py", "127.0.0.1:0", "-s3", "127.0.0.1:0"}

// startRun runs the command in the background and waits for its ready file.
func startRun(t *testing.T, extra ...string) (ready, func() (string, error)) {
	t.Helper()
	dir := t.TempDir()
	readyPath := filepath.Join(dir, "ready.json")
	args := append(append([]string{}, freePorts...), "-ready-file", readyPath, "-log-level", "error")
	args = append(args, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	stop := func() (string, error) {
		cancel()
		err := <-done
		return stdout.String(), err
	}
	t.Cleanup(func() { cancel() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(readyPath)
		if err == nil {
			var r ready
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("ready file %s: %v", b, err)
			}
			return r, stop
		}
		select {
		case err := <-done:
			t.Fatalf("run exited early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no ready file")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadyFileAndSummaryOnExit(t *testing.T) {
	r, stop := startRun(t, "-summary-on-exit", "-key", "mlpi_one", "-key", "mlps_two")
	if r.Mode != mlopfake.ModeStrict || r.PID != os.Getpid() || len(r.Keys) != 2 {
		t.Fatalf("ready %+v", r)
	}
	for _, u := range []string{r.API, r.Ingest, r.Py, r.S3} {
		if !strings.HasPrefix(u, "http://127.0.0.1:") || strings.HasSuffix(u, ":0") {
			t.Fatalf("url %q", u)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, r.API+"/api/runs/create", strings.NewReader(`{"runName":"r","projectName":"p"}`))
	req.Header.Set("Authorization", "Bearer mlps_two")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("create: %d", res.StatusCode)
	}
	out, err := stop()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var sum mlopfake.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary on stdout: %v\n%s", err, out)
	}
	if len(sum.Runs) != 1 || sum.Runs[0].Name != "r" || !strings.Contains(sum.Note, "NOT part of the mlop") {
		t.Fatalf("summary %+v", sum)
	}
}

func TestFaultFlags(t *testing.T) {
	r, stop := startRun(t, "-fail-rate", "1", "-fault-services", "py", "-seed", "3")
	res, err := http.Get(r.Py + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 500 && res.StatusCode != 503 && res.StatusCode != 429 {
		t.Fatalf("py status %d, want an injected failure", res.StatusCode)
	}
	res, err = http.Get(r.Ingest + "/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("ingest status %d, want 200", res.StatusCode)
	}
	if out, err := stop(); err != nil || out != "" {
		t.Fatalf("stop: %q %v", out, err)
	}
}

func TestOutageFlags(t *testing.T) {
	r, stop := startRun(t, "-outage-after", "50ms", "-outage-for", "200ms", "-outage-services", "ingest")
	addr := strings.TrimPrefix(r.Ingest, "http://")
	wait := func(what string, cond func(error) bool) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			if cond(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (last dial error %v)", what, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait("connection refused", func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) })
	wait("the listener back", func(err error) bool { return err == nil })
	stop()
}

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &out, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"TEST DOUBLE, not the mlop server", "Example:", "mlpi_testkey", "curl -s http://127.0.0.1:3001/_standin/summary", "-ready-file", "-accept-then-fail-rate", "/_standin/"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h output lacks %q", want)
		}
	}
	tests := [][]string{
		{"-mode", "fast"},
		{"-nope"},
		{"extra-arg"},
		{"-fault-services", "db"},
		{"-key", "plainkey"},
		{"-outage-after", "1s", "-outage-for", "2s", "-outage-every", "1s"},
		{"-log-level", "loud"},
	}
	for _, args := range tests {
		err := run(context.Background(), append(append([]string{}, freePorts...), args...), &out, &out)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

// startBanner runs the command with stderr on a pipe and returns the lines
// of the startup banner, read up to the blank line that ends it.
func startBanner(t *testing.T, extra ...string) ([]string, func()) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := run(ctx, append(append([]string{}, freePorts...), extra...), io.Discard, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	stop := func() {
		cancel()
		for range lines { // drain, so run's last writes do not block
		}
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
	t.Cleanup(cancel)
	var banner []string
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stderr closed before the banner ended: %q", banner)
			}
			if banner == nil && !strings.HasPrefix(l, readyLine) {
				continue // a log line
			}
			if banner != nil && l == "" && strings.HasPrefix(banner[len(banner)-1], "Run URLs") {
				go func() { // keep reading the log lines that follow
					for range lines {
					}
				}()
				return banner, stop
			}
			banner = append(banner, l)
		case <-deadline:
			t.Fatalf("no complete startup banner; got %q", banner)
		}
	}
}

func TestStartupBanner(t *testing.T) {
	banner, stop := startBanner(t, "-key", "mlpi_first", "-key", "mlps_second")
	text := strings.Join(banner, "\n")
	// The first line names the three URLs and the keys.
	f := strings.Fields(banner[0])
	if len(f) != 10 || f[2] != "api" || f[4] != "ingest" || f[6] != "py" || f[8] != "key" || f[9] != "mlpi_first,mlps_second" {
		t.Fatalf("ready line %q", banner[0])
	}
	api, ingest, py := f[3], f[5], f[7]
	want := "server:\n  url_api: " + api + "\n  url_ingest: " + ingest + "\n  url_py: " + py + "\n  api_key: mlpi_first  #"
	if !strings.Contains(text, want) {
		t.Errorf("banner lacks the server: block\n%s\nwant\n%s", text, want)
	}
	for _, w := range []string{"test double", "curl -s " + api + "/_standin/summary", "Run URLs: " + api + "/_standin/app/o/"} {
		if !strings.Contains(text, w) {
			t.Errorf("banner lacks %q:\n%s", w, text)
		}
	}

	// The printed URLs answer: the run URL a create returns is a run page,
	// and the summary lists the run.
	req, _ := http.NewRequest(http.MethodPost, api+"/api/runs/create", strings.NewReader(`{"runName":"r","projectName":"p"}`))
	req.Header.Set("Authorization", "Bearer mlpi_first")
	req.Header.Set("Content-Type", "application/json")
	var created struct {
		RunID int64  `json:"runId"`
		URL   string `json:"url"`
	}
	getJSON(t, req, &created)
	if !strings.HasPrefix(created.URL, api+"/_standin/app/o/test-org/projects/p/") {
		t.Fatalf("run url %q", created.URL)
	}
	var page mlopfake.RunPage
	getJSON(t, newGet(t, created.URL), &page)
	if page.ID != created.RunID || page.Name != "r" {
		t.Errorf("run page %+v", page)
	}
	var sum mlopfake.Summary
	getJSON(t, newGet(t, api+"/_standin/summary"), &sum)
	if len(sum.Runs) != 1 || sum.Runs[0].ID != created.RunID {
		t.Errorf("summary runs %+v", sum.Runs)
	}
	stop()
}

func TestAppURLFlag(t *testing.T) {
	banner, stop := startBanner(t, "-app-url", "http://ui.example:3000/")
	api := strings.Fields(banner[0])[3]
	if !strings.Contains(strings.Join(banner, "\n"), "Run URLs: http://ui.example:3000/o/...; the -app-url given; the stand-in does not serve it.") {
		t.Errorf("banner %q", banner)
	}
	req, _ := http.NewRequest(http.MethodPost, api+"/api/runs/create", strings.NewReader(`{"runName":"r","projectName":"p"}`))
	req.Header.Set("Authorization", "Bearer "+mlopfake.DefaultKey)
	req.Header.Set("Content-Type", "application/json")
	var created struct {
		URL string `json:"url"`
	}
	getJSON(t, req, &created)
	if !strings.HasPrefix(created.URL, "http://ui.example:3000/o/test-org/projects/p/") {
		t.Errorf("run url %q", created.URL)
	}
	stop()
}

func newGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// getJSON sends req, wants a 200 and decodes the body into v.
func getJSON(t *testing.T, req *http.Request, v any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s %s: decode %s: %v", req.Method, req.URL, b, err)
	}
}
