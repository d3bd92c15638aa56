package mlopfake

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// metricsBody builds lines NDJSON lines of names metrics each, shaped like
// pluto's: integer time and step, float values with ~17 significant digits.
func metricsBody(lines, names, firstStep int) []byte {
	var b bytes.Buffer
	for i := range lines {
		step := firstStep + i
		fmt.Fprintf(&b, `{"time": %d, "step": %d, "data": {`, 1795637520632+step*97, step)
		for n := range names {
			if n > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, `"train/layer_%d/loss": %v`, n, 0.1234567890123456+float64(step*names+n)*1e-7)
		}
		b.WriteString("}}\n")
	}
	return b.Bytes()
}

func BenchmarkParseMetricLine(b *testing.B) {
	line := bytes.TrimSpace(metricsBody(1, 10, 12345))
	var p metricParser
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.parseLine(line, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkIngestMetrics measures parse + store through the ingest handler
// in-process (no sockets): 100 lines x 10 metrics = 1000 points an op.
func BenchmarkIngestMetrics(b *testing.B) {
	s := startServer(b, Options{})
	h := s.listeners[ServiceIngest].handler
	body := metricsBody(100, 10, 0)
	rd := bytes.NewReader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		rd.Reset(body)
		req := httptest.NewRequest(http.MethodPost, "/ingest/metrics", io.NopCloser(rd))
		req.Header.Set("Authorization", "Bearer "+DefaultKey)
		req.Header.Set("X-Run-Id", "1001")
		req.Header.Set("X-Project-Name", "bench")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	points := float64(b.N) * 1000
	b.ReportMetric(points/b.Elapsed().Seconds(), "points/s")
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/points, "heapB/point")
}

// BenchmarkIngestMetricsHTTP is the same over a loopback keep-alive
// connection, as the agent would send it.
func BenchmarkIngestMetricsHTTP(b *testing.B) {
	s := startServer(b, Options{})
	body := metricsBody(100, 10, 0)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	url := s.IngestURL() + "/ingest/metrics"
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+DefaultKey)
		req.Header.Set("X-Run-Id", "1001")
		req.Header.Set("X-Project-Name", "bench")
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkCountModeHTTP measures the minimal receiver.
func BenchmarkCountModeHTTP(b *testing.B) {
	s := startServer(b, Options{Mode: ModeCount})
	body := metricsBody(100, 10, 0)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	url := s.IngestURL() + "/ingest/metrics"
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		res, err := client.Post(url, "application/x-ndjson", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "points/s")
}
