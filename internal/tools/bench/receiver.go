package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// latencyReceiver stands in for the ingest service (url_ingest) in the live
// scenarios. The count-mode stand-in does not look at values, and the strict
// one keeps them without their arrival time, so this receiver parses each
// /ingest/metrics line for the t_write_us field the harness wrote and
// records when the line arrived. It runs in the harness process, so write
// and receive times come from the same clock. The backend and py services
// stay with the count-mode stand-in.
type latencyReceiver struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve returns

	lines     atomic.Int64 // non-blank metric lines received
	noField   atomic.Int64 // metric lines without a readable t_write_us
	closeOnce sync.Once

	mu      sync.Mutex
	samples []latencySample // guarded by mu
}

// latencySample is one delivered line: when the harness wrote it and when
// its request body had been read, both in µs since the Unix epoch.
type latencySample struct {
	WriteUS, RecvUS int64
}

// LatencyMS is the sample's write-to-receive latency in milliseconds.
func (s latencySample) LatencyMS() float64 { return float64(s.RecvUS-s.WriteUS) / 1000 }

// startLatencyReceiver listens on a free loopback port.
func startLatencyReceiver() (*latencyReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	r := &latencyReceiver{ln: ln, done: make(chan struct{})}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln) // ErrServerClosed after Close
	}()
	return r, nil
}

// URL is the base URL to use as url_ingest.
func (r *latencyReceiver) URL() string { return "http://" + r.ln.Addr().String() }

// Close stops the server and waits for it. Idempotent.
func (r *latencyReceiver) Close() error {
	var err error
	r.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = r.srv.Shutdown(ctx)
		<-r.done
	})
	return err
}

// Lines is the number of metric lines received so far.
func (r *latencyReceiver) Lines() int64 { return r.lines.Load() }

// Samples returns the samples whose write time is within [fromUS, toUS).
func (r *latencyReceiver) Samples(fromUS, toUS int64) []latencySample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []latencySample
	for _, s := range r.samples {
		if s.WriteUS >= fromUS && s.WriteUS < toUS {
			out = append(out, s)
		}
	}
	return out
}

// ServeHTTP answers what the agent sends to the ingest like the real
// service does on success.
func (r *latencyReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case "/health":
		io.WriteString(w, "OK")
		return
	case "/step":
		io.WriteString(w, `{"step":0}`)
		return
	case "/ingest/metrics", "/ingest/data", "/ingest/logs":
	default:
		_, _ = io.Copy(io.Discard, req.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, "bad gzip body", http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	recv := time.Now().UnixMicro()
	n := int64(0)
	if req.URL.Path == "/ingest/metrics" {
		n = r.record(b, recv)
	} else {
		n = int64(countLines(b))
	}
	fmt.Fprintf(w, "Stream processed successfully: %d records", n)
}

// record counts the metric lines of an NDJSON body and keeps a sample for
// each that carries t_write_us.
func (r *latencyReceiver) record(body []byte, recvUS int64) int64 {
	var n int64
	var got []latencySample
	for line := range bytes.Lines(body) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n++
		us, err := writeTimeOf(line)
		if err != nil {
			r.noField.Add(1)
			continue
		}
		got = append(got, latencySample{WriteUS: us, RecvUS: recvUS})
	}
	r.mu.Lock()
	r.samples = append(r.samples, got...)
	r.mu.Unlock()
	r.lines.Add(n)
	return n
}

// errNoWriteField reports a metric line without a numeric t_write_us.
var errNoWriteField = errors.New("no numeric " + writeField + " in the line")

// writeTimeOf extracts t_write_us from a metric line as the agent encodes
// it ({"time":T,"step":S,"data":{"t_write_us":V,...}}). V arrives as a
// JSON number (the agent writes integral values below 2^53 as integers,
// others in shortest float form).
func writeTimeOf(line []byte) (int64, error) {
	const key = `"` + writeField + `":`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return 0, errNoWriteField
	}
	rest := line[i+len(key):]
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return 0, errNoWriteField
	}
	num := string(bytes.TrimSpace(rest[:end]))
	if v, err := strconv.ParseInt(num, 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", errNoWriteField, num)
	}
	return int64(f), nil
}

// countLines counts the non-blank lines of an NDJSON body.
func countLines(b []byte) int {
	n := 0
	for line := range bytes.Lines(b) {
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}
