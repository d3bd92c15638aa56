package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

func TestWriteTimeOf(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    int64
		wantErr bool
	}{
		{"integer", `{"time":1,"step":2,"data":{"t_write_us":1764107374123456,"loss":0.5}}`, 1764107374123456, false},
		{"last field", `{"time":1,"step":2,"data":{"loss":0.5,"t_write_us":17}}`, 17, false},
		{"float", `{"time":1,"step":2,"data":{"t_write_us":1.5e3}}`, 1500, false},
		{"spaces", `{"data":{"t_write_us": 42 }}`, 42, false},
		{"missing", `{"time":1,"step":2,"data":{"loss":0.5}}`, 0, true},
		{"string", `{"data":{"t_write_us":"NaN"}}`, 0, true},
		{"unterminated", `{"data":{"t_write_us":12`, 0, true},
	}
	for _, tt := range tests {
		got, err := writeTimeOf([]byte(tt.line))
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v, wantErr %v", tt.name, err, tt.wantErr)
			continue
		}
		if err != nil && !errors.Is(err, errNoWriteField) {
			t.Errorf("%s: err = %v, want errNoWriteField", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: writeTimeOf = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// The receiver reads the lines the agent really sends: build them with the
// agent's own encoder.
func TestReceiverRecordsAgentLines(t *testing.T) {
	r := &latencyReceiver{}
	var body []byte
	writes := []int64{1_764_107_374_000_000, 1_764_107_374_000_500, 1_764_107_375_000_000}
	for i, us := range writes {
		body = mlop.AppendMetricLine(body, us/1000, int64(i), []event.Point{
			{Name: "loss", Value: 0.25}, {Name: writeField, Value: float64(us)}, {Name: "lr", Value: 1e-7},
		})
	}
	body = append(body, "\n  \n"...)                                                  // blank lines are not lines
	body = mlop.AppendMetricLine(body, 1, 9, []event.Point{{Name: "loss", Value: 1}}) // no write time
	req := httptest.NewRequest(http.MethodPost, "/ingest/metrics", bytes.NewReader(body))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got := r.Lines(); got != 4 {
		t.Errorf("Lines = %d, want 4", got)
	}
	if got := r.noField.Load(); got != 1 {
		t.Errorf("lines without a write time = %d, want 1", got)
	}
	all := r.Samples(0, 1<<62)
	if len(all) != len(writes) {
		t.Fatalf("%d samples, want %d", len(all), len(writes))
	}
	for i, s := range all {
		if s.WriteUS != writes[i] || s.RecvUS <= 0 {
			t.Errorf("sample %d = %+v, want write %d and a receive time", i, s, writes[i])
		}
	}
	if got := r.Samples(writes[1], writes[2]); len(got) != 1 || got[0].WriteUS != writes[1] {
		t.Errorf("Samples(window) = %+v, want only the second write", got)
	}
}

func TestReceiverGzipAndOtherRoutes(t *testing.T) {
	r := &latencyReceiver{}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	io.WriteString(zw, `{"time":1,"step":1,"data":{"t_write_us":5}}`+"\n")
	zw.Close()
	req := httptest.NewRequest(http.MethodPost, "/ingest/metrics", &zb)
	req.Header.Set("Content-Encoding", "gzip")
	r.ServeHTTP(httptest.NewRecorder(), req)
	if got := r.Samples(0, 10); len(got) != 1 || got[0].WriteUS != 5 {
		t.Errorf("gzip body: samples %+v, want one with write 5", got)
	}
	for _, path := range []string{"/health", "/ingest/data", "/ingest/logs", "/step", "/files"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader("{}\n")))
		if w.Code != http.StatusOK {
			t.Errorf("%s: status %d, want 200", path, w.Code)
		}
	}
	if got := r.Lines(); got != 1 {
		t.Errorf("Lines = %d after non-metric routes, want 1", got)
	}
}

func TestReceiverServes(t *testing.T) {
	r, err := startLatencyReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	resp, err := http.Post(r.URL()+"/ingest/metrics", "application/x-ndjson",
		strings.NewReader(`{"time":1,"step":1,"data":{"t_write_us":7}}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "1 records") {
		t.Errorf("response %d %q, want 200 and 1 record", resp.StatusCode, b)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
