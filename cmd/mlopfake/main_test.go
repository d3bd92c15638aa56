package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
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
	for _, want := range []string{"TEST DOUBLE, not the mlop server", "Example:", "-ready-file", "-accept-then-fail-rate", "/_standin/"} {
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
