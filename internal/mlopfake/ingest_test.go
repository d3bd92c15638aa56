package mlopfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func newRun(t *testing.T, s *Server, project string) (int64, string) {
	t.Helper()
	id := runIDOf(t, createRun(t, s, map[string]any{"runName": "r", "projectName": project}))
	return id, fmt.Sprint(id)
}

func TestIngestPartialAcceptanceThen422(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	body := `{"time":1,"step":1,"data":{"a":1,"b":2}}
{"time":2,"step":2,"data":{"a":3}}
{"time":3,"step":2.5,"data":{"a":4}}
{"time":4,"step":4,"data":{"a":5}}
`
	r := postIngest(t, s, "/ingest/metrics", rid, "p", body)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422: %s", r.status, r.body)
	}
	m := r.json(t)
	if m["code"] != "PROCESSING_FAILED" {
		t.Fatalf("code = %v, want PROCESSING_FAILED", m["code"])
	}
	msg, _ := m["message"].(string)
	if !strings.HasPrefix(msg, "Failed to process metrics stream: StreamDecodingError (3004 - Processing Error): Failed to parse JSON line") {
		t.Fatalf("message = %q", msg)
	}
	if got := s.RawMetricCount(id); got != 3 {
		t.Fatalf("stored %d points, want the 3 of lines 1-2", got)
	}
	if got := s.Metrics(id)["a"]; len(got) != 2 {
		t.Fatalf("a = %v, want steps 1 and 2 only", got)
	}
	rej := s.Rejected()
	if len(rej) == 0 || rej[len(rej)-1].Status != 422 || !strings.Contains(rej[len(rej)-1].Reason, "line 3") {
		t.Fatalf("rejections = %+v, want the line-3 422", rej)
	}
	if c := s.Counters(); c.MetricLines != 2 || c.MetricBadLines != 1 || c.MetricPoints != 3 {
		t.Fatalf("counters = %+v", c)
	}
}

func TestIngestSuccessBodyAndBlankLines(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	body := "\n  \r\n{\"time\":1,\"step\":1,\"data\":{\"a\":1,\"b\":null,\"c\":NaN}}\n\n{\"time\":2,\"step\":2,\"data\":{\"a\":2}}" // last line has no newline
	r := postIngest(t, s, "/ingest/metrics", rid, "p", body)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got, want := string(r.body), "Stream processed successfully: 3 records"; got != want {
		t.Fatalf("body %q, want %q", got, want)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want text/plain", ct)
	}
	if got := s.RawMetricCount(id); got != 3 {
		t.Fatalf("stored %d, want 3", got)
	}
	if c := s.Counters(); c.MetricBlankLines != 3 {
		t.Fatalf("blank lines = %d, want 3", c.MetricBlankLines)
	}
}

// TestIngestChunkedAndContentLength sends the same body both ways.
func TestIngestChunkedAndContentLength(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	var lines strings.Builder
	for i := range 500 {
		fmt.Fprintf(&lines, `{"time":%d,"step":%d,"data":{"x":%d}}`+"\n", 1000+i, i, i)
	}
	h := map[string]string{"Authorization": "Bearer " + DefaultKey, "X-Run-Id": rid, "X-Project-Name": "p"}

	// Chunked: an io.Pipe has no length, so net/http streams it chunked.
	pr, pw := io.Pipe()
	go func() {
		for _, chunk := range strings.SplitAfter(lines.String(), "}") { // split mid-line
			pw.Write([]byte(chunk))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, s.IngestURL()+"/ingest/metrics", pr)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("chunked: status %d", res.StatusCode)
	}
	reqs := s.Requests()
	if last := reqs[len(reqs)-1]; last.Records != 500 {
		t.Fatalf("chunked request stored %d records, want 500", last.Records)
	}
	// Content-Length.
	if r := do(t, http.MethodPost, s.IngestURL()+"/ingest/metrics", h, bytes.NewReader([]byte(lines.String()))); r.status != 200 {
		t.Fatalf("content-length: status %d", r.status)
	}
	if got := s.RawMetricCount(id); got != 1000 {
		t.Fatalf("stored %d, want 1000", got)
	}
	if got := len(s.Metrics(id)["x"]); got != 500 {
		t.Fatalf("dedup view has %d points, want 500", got)
	}
}

func TestIngestLongLine(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	var b strings.Builder
	b.WriteString(`{"time":1,"step":1,"data":{`)
	for i := range 10000 { // ~200 KB, beyond the 64 KiB read buffer
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"layer_%05d/grad_norm":%d`, i, i)
	}
	b.WriteString("}}\n")
	b.WriteString(`{"time":2,"step":2,"data":{"layer_00000/grad_norm":5}}` + "\n")
	if r := postIngest(t, s, "/ingest/metrics", rid, "p", b.String()); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := s.RawMetricCount(id); got != 10001 {
		t.Fatalf("stored %d, want 10001", got)
	}
}

func TestIngestHeaders(t *testing.T) {
	s := startServer(t, Options{})
	line := `{"time":1,"step":1,"data":{"a":1}}`
	tests := []struct {
		name    string
		hdr     map[string]string
		want    int
		wantMsg string
	}{
		{"missing X-Run-Id", map[string]string{"X-Project-Name": "p"}, 422, "Missing required header: X-Run-Id"},
		{"missing X-Project-Name", map[string]string{"X-Run-Id": "5"}, 422, "Missing required header: X-Project-Name"},
		{"non-ASCII project name counts as missing", map[string]string{"X-Run-Id": "5", "X-Project-Name": "caf\xc3\xa9"}, 422, "Missing required header: X-Project-Name"},
		{"non-numeric X-Run-Id becomes 0", map[string]string{"X-Run-Id": "None", "X-Project-Name": "p"}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := authHeader(DefaultKey)
			for k, v := range tc.hdr {
				h[k] = v
			}
			r := do(t, http.MethodPost, s.IngestURL()+"/ingest/metrics", h, strings.NewReader(line))
			if r.status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.body)
			}
			if tc.wantMsg != "" && !strings.Contains(string(r.body), tc.wantMsg) {
				t.Fatalf("body %s, want %q", r.body, tc.wantMsg)
			}
		})
	}
	if got := len(s.MetricsIn("p", 0)["a"]); got != 1 {
		t.Fatalf("run id 0 stream has %d points, want 1", got)
	}
	orphans := s.Summary().OrphanStreams
	if len(orphans) != 1 || orphans[0].RunID != 0 || orphans[0].RawPoints != 1 {
		t.Fatalf("orphan streams = %+v, want the run-0 stream", orphans)
	}
}

func TestIngestAuth(t *testing.T) {
	s := startServer(t, Options{Keys: []string{DefaultKey, "mlps_revoked", "mlpi_expired"}})
	if err := s.RevokeKey("mlps_revoked"); err != nil {
		t.Fatal(err)
	}
	if err := s.ExpireKey("mlpi_expired"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		auth       string // "" = no header
		streamMsg  string // inside the 422 message of /ingest/*
		filesCode  string // /files and /step 401 code
		filesMsgOK string
	}{
		{"no header", "", "MissingToken (1003 - Authentication Error): Missing Authorization header", "MISSING_TOKEN", "Missing Authorization header"},
		{"basic scheme", "Basic abc", "InvalidBearerFormat (1007 - Authentication Error)", "INVALID_BEARER_FORMAT", "Authorization header must start with 'Bearer '"},
		// HTTP strips the trailing spaces, so "Bearer " arrives as "Bearer".
		{"bearer without token", "Bearer   ", "InvalidBearerFormat (1007 - Authentication Error)", "INVALID_BEARER_FORMAT", "Authorization header must start with 'Bearer '"},
		{"bad characters", "Bearer mlpi_a!b", "InvalidTokenFormat (1006 - Authentication Error)", "INVALID_TOKEN_FORMAT", "Bearer token contains invalid characters"},
		{"unknown key", "Bearer mlpi_nope", "InvalidToken (1002 - Authentication Error): Invalid API key", "INVALID_TOKEN", "Invalid API key"},
		{"revoked key", "Bearer mlps_revoked", "InvalidToken (1002 - Authentication Error): API key has been revoked", "INVALID_TOKEN", "API key has been revoked"},
		{"expired key", "Bearer mlpi_expired", "InvalidToken (1002 - Authentication Error): API key has expired", "INVALID_TOKEN", "API key has expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"X-Run-Id": "1", "X-Project-Name": "p", "Content-Type": "application/json"}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			r := do(t, http.MethodPost, s.IngestURL()+"/ingest/metrics", h, strings.NewReader(`{"time":1,"step":1,"data":{"a":1}}`))
			if r.status != 422 {
				t.Fatalf("/ingest/metrics status %d, want 422 (auth errors are wrapped)", r.status)
			}
			m := r.json(t)
			if m["code"] != "PROCESSING_FAILED" || !strings.Contains(m["message"].(string), "Failed to process metrics stream: "+tc.streamMsg) {
				t.Fatalf("/ingest/metrics body %s, want %q", r.body, tc.streamMsg)
			}
			files := `{"files":[{"fileName":"a.txt","fileSize":1,"fileType":"txt","time":1,"logName":"f","step":1}]}`
			for _, path := range []string{"/files", "/step"} {
				r = do(t, http.MethodPost, s.IngestURL()+path, h, strings.NewReader(files))
				if r.status != 401 {
					t.Fatalf("%s status %d, want 401", path, r.status)
				}
				m = r.json(t)
				if m["code"] != tc.filesCode || m["message"] != tc.filesMsgOK {
					t.Fatalf("%s body %s, want code %s message %q", path, r.body, tc.filesCode, tc.filesMsgOK)
				}
			}
		})
	}
}

func TestIngestDataAndLogsNotDeduplicated(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	data := `{"time": 1795637520726, "data": "warmup", "dataType": "string-series", "logName": "phase", "step": 2}` + "\n"
	logs := `{"time": 1795637570270, "message": "hello", "lineNumber": 1, "logType": "INFO"}` + "\n"
	for range 2 {
		if r := postIngest(t, s, "/ingest/data", rid, "p", data); r.status != 200 || string(r.body) != "Stream processed successfully: 1 records" {
			t.Fatalf("data: %d %s", r.status, r.body)
		}
		if r := postIngest(t, s, "/ingest/logs", rid, "p", logs); r.status != 200 {
			t.Fatalf("logs: %d %s", r.status, r.body)
		}
	}
	d := s.Data(id)
	if len(d) != 2 || d[0] != (DataRow{Time: 1795637520726, Step: 2, DataType: "string-series", LogName: "phase", Data: "warmup"}) {
		t.Fatalf("data rows = %+v, want the same row twice", d)
	}
	if l := s.Logs(id); len(l) != 2 || l[1].Message != "hello" || l[1].LogType != "INFO" || l[1].LineNumber != 1 {
		t.Fatalf("log rows = %+v", l)
	}
	r := postIngest(t, s, "/ingest/logs", rid, "p", `{"time":1,"message":"x","lineNumber":1,"logType":""}`)
	if r.status != 422 || !strings.Contains(string(r.body), "Failed to process logs stream: InvalidLogFormat (2006 - Validation Error): 'logType' field cannot be empty") {
		t.Fatalf("bad log line: %d %s", r.status, r.body)
	}
}

func TestFilesAndS3(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "my project")
	hdr := func(ct string) map[string]string {
		h := authHeader(DefaultKey)
		h["X-Run-Id"], h["X-Project-Name"] = rid, "my project"
		if ct != "" {
			h["Content-Type"] = ct
		}
		return h
	}
	body := `{"files": [{"fileName": "93d79107.txt", "fileSize": 5, "fileType": "txt", "time": 1795637520999, "logName": "files/notes", "step": 3, "sampleIndex": 0, "unknownKey": 1},
	                     {"fileName": "b.png", "fileSize": 3, "fileType": "PNG", "time": 1, "logName": "files/notes", "step": 3, "caption": "cap"}]}`

	t.Run("json content type required", func(t *testing.T) {
		r := do(t, http.MethodPost, s.IngestURL()+"/files", hdr("text/plain"), strings.NewReader(body))
		if r.status != http.StatusUnsupportedMediaType || string(r.body) != "Expected request with `Content-Type: application/json`" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("shape errors are 422 text", func(t *testing.T) {
		r := do(t, http.MethodPost, s.IngestURL()+"/files", hdr("application/json"), strings.NewReader(`{"files":[{"fileName":"a","logName":"l","fileSize":1.5,"fileType":"txt","step":1,"time":1}]}`))
		if r.status != 422 || !strings.Contains(string(r.body), "Failed to deserialize the JSON body into the target type: files[0]: fileSize: invalid type: floating point `1.5`, expected u64") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("syntax errors are 400 text", func(t *testing.T) {
		r := do(t, http.MethodPost, s.IngestURL()+"/files", hdr("application/json"), strings.NewReader(`{"files":[`))
		if r.status != 400 || !strings.HasPrefix(string(r.body), "Failed to parse the request body as JSON") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("missing header is 400", func(t *testing.T) {
		h := hdr("application/json")
		delete(h, "X-Project-Name")
		r := do(t, http.MethodPost, s.IngestURL()+"/files", h, strings.NewReader(body))
		if r.status != 400 || r.json(t)["code"] != "INVALID_HEADER_FORMAT" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("non-numeric run id drops the connection", func(t *testing.T) {
		h := hdr("application/json")
		h["X-Run-Id"] = "abc"
		req, _ := http.NewRequest(http.MethodPost, s.IngestURL()+"/files", strings.NewReader(body))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err == nil {
			res.Body.Close()
			t.Fatalf("got status %d, want the connection dropped", res.StatusCode)
		}
	})

	r := do(t, http.MethodPost, s.IngestURL()+"/files", hdr("application/json"), strings.NewReader(body))
	if r.status != 200 {
		t.Fatalf("files: %d %s", r.status, r.body)
	}
	var resp map[string][]map[string]string
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	group := resp["files/notes"]
	if len(resp) != 1 || len(group) != 2 {
		t.Fatalf("response %s, want 2 files grouped under files/notes", r.body)
	}
	url := group[0]["93d79107.txt"]
	if !strings.HasPrefix(url, s.S3URL()+"/mlop/org_test-org/my%20project/"+rid+"/files/notes/93d79107.txt?") || !strings.Contains(url, "X-Amz-Signature=") {
		t.Fatalf("presigned url %q", url)
	}
	// The metadata rows exist before any upload.
	files := s.Files(id)
	if len(files) != 2 || files[0].Uploaded || files[0].Step != 3 || files[0].FileType != "txt" || files[1].FileType != "png" || *files[1].Caption != "cap" {
		t.Fatalf("file rows = %+v", files)
	}

	// Tampering with the URL breaks the signature.
	bad := strings.Replace(url, "93d79107.txt?", "other.txt?", 1)
	if r := do(t, http.MethodPut, bad, nil, strings.NewReader("hello")); r.status != 403 {
		t.Fatalf("tampered PUT: %d, want 403", r.status)
	}
	if r := do(t, http.MethodPut, url, map[string]string{"Content-Type": "text/plain"}, strings.NewReader("hello")); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	get := do(t, http.MethodGet, strings.Split(url, "?")[0], nil, nil)
	if get.status != 200 || string(get.body) != "hello" || get.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("GET: %d %q %q", get.status, get.body, get.header.Get("Content-Type"))
	}
	files = s.Files(id)
	if !files[0].Uploaded || string(files[0].Bytes) != "hello" || files[1].Uploaded {
		t.Fatalf("after upload: %+v", files)
	}
}

func TestStep(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	h := authHeader(DefaultKey)
	h["X-Run-Id"], h["X-Project-Name"] = rid, "p"
	if r := do(t, http.MethodPost, s.IngestURL()+"/step", h, nil); r.status != 200 || string(r.body) != `{"step":0}` {
		t.Fatalf("empty run: %d %s", r.status, r.body)
	}
	postIngest(t, s, "/ingest/metrics", rid, "p", `{"time":1,"step":7,"data":{"a":1}}`+"\n"+`{"time":1,"step":3,"data":{"sys/cpu":1}}`)
	if r := do(t, http.MethodPost, s.IngestURL()+"/step", h, nil); string(r.body) != `{"step":7}` {
		t.Fatalf("step: %s", r.body)
	}
	if s.MaxStep(id) != 7 {
		t.Fatalf("MaxStep = %d", s.MaxStep(id))
	}
}
