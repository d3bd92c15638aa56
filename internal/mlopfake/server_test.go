package mlopfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestListenerSeparation(t *testing.T) {
	s := startServer(t, Options{})
	metric := `{"time":1,"step":1,"data":{"a":1}}`
	h := authHeader(DefaultKey)
	h["X-Run-Id"], h["X-Project-Name"], h["Content-Type"] = "1", "p", "application/json"
	tests := []struct {
		name   string
		svc    Service
		method string
		path   string
		want   int
	}{
		{"metrics on the api listener", ServiceAPI, "POST", "/ingest/metrics", 404},
		{"files on the api listener", ServiceAPI, "POST", "/files", 404},
		{"trigger on the api listener", ServiceAPI, "POST", "/api/runs/trigger", 404},
		{"create on the ingest listener", ServiceIngest, "POST", "/api/runs/create", 404},
		{"trigger on the ingest listener", ServiceIngest, "POST", "/api/runs/trigger", 404},
		{"create on the py listener", ServicePy, "POST", "/api/runs/create", 404},
		{"metrics on the py listener", ServicePy, "POST", "/ingest/metrics", 404},
		{"metrics on the s3 listener", ServiceS3, "POST", "/ingest/metrics", 404},
		{"GET metrics on ingest is 405", ServiceIngest, "GET", "/ingest/metrics", 405},
		{"GET trigger on py is 405", ServicePy, "GET", "/api/runs/trigger", 405},
		{"GET create on api is 404 (Hono)", ServiceAPI, "GET", "/api/runs/create", 404},
		{"trailing slash is another path", ServiceAPI, "POST", "/api/runs/create/", 404},
		{"metrics on ingest", ServiceIngest, "POST", "/ingest/metrics", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, s.URL(tc.svc)+tc.path, h, strings.NewReader(metric))
			if r.status != tc.want {
				t.Fatalf("%s %s on %s: %d, want %d (%s)", tc.method, tc.path, tc.svc, r.status, tc.want, r.body)
			}
		})
	}
	urls := []string{s.APIURL(), s.IngestURL(), s.PyURL(), s.S3URL()}
	slices.Sort(urls)
	if len(slices.Compact(urls)) != 4 {
		t.Fatalf("listeners share a port: %v", urls)
	}
}

func TestTriggerAndAlert(t *testing.T) {
	s := startServer(t, Options{ForeignKeys: []string{"mlpi_foreign"}})
	id := runIDOf(t, createRun(t, s, map[string]any{"runName": "r", "projectName": "p"}))
	post := func(path, key string, body string) response {
		h := authHeader(key)
		h["Content-Type"] = "application/json"
		return do(t, http.MethodPost, s.PyURL()+path, h, strings.NewReader(body))
	}
	tests := []struct {
		name       string
		path, key  string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"heartbeat", "/api/runs/trigger", DefaultKey, fmt.Sprintf(`{"runId": %d}`, id), 200, `{"status":"RUNNING","triggers":null}`},
		{"heartbeat again", "/api/runs/trigger", DefaultKey, fmt.Sprintf(`{"runId": %d}`, id), 200, `"RUNNING"`},
		{"missing runId", "/api/runs/trigger", DefaultKey, `{}`, 422, `"loc":["body","runId"],"msg":"Field required"`},
		{"runId fractional", "/api/runs/trigger", DefaultKey, `{"runId": 1.5}`, 422, `int_from_float`},
		{"no key", "/api/runs/trigger", noKey, fmt.Sprintf(`{"runId": %d}`, id), 401, `{"detail":"Invalid or expired API key for this run"}`},
		{"unknown run", "/api/runs/trigger", DefaultKey, `{"runId": 4}`, 404, `Run not found`},
		{"other organisation", "/api/runs/trigger", "mlpi_foreign", fmt.Sprintf(`{"runId": %d}`, id), 404, `Run not found`},
		{"alert", "/api/runs/alert", DefaultKey, fmt.Sprintf(`{"runId":%d,"alert":{"timestamp":1,"level":"INFO","title":"t","body":"b","email":true,"url":null}}`, id), 200, `{"status":"success"}`},
		{"alert with url fails like the real service", "/api/runs/alert", DefaultKey, fmt.Sprintf(`{"runId":%d,"alert":{"title":"t","url":"http://x"}}`, id), 500, `Failed to send alert`},
		{"alert without alert", "/api/runs/alert", DefaultKey, fmt.Sprintf(`{"runId":%d}`, id), 422, `"loc":["body","alert"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(tc.path, tc.key, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	n, times := s.Heartbeats(id)
	if n != 2 || len(times) != 2 || times[1].Before(times[0]) {
		t.Fatalf("heartbeats %d %v, want 2", n, times)
	}
	if err := s.CancelRun(id); err != nil {
		t.Fatal(err)
	}
	if r := post("/api/runs/trigger", DefaultKey, fmt.Sprintf(`{"runId": %d}`, id)); string(r.body) != `{"status":"CANCELLED","triggers":null}` {
		t.Fatalf("after cancel: %s", r.body)
	}
	if err := s.CancelRun(99); !errors.Is(err, ErrNoRun) {
		t.Fatalf("CancelRun(99) = %v, want ErrNoRun", err)
	}
}

func TestFaultsFailRateDeterministic(t *testing.T) {
	s := startServer(t, Options{})
	statuses := func() []int {
		if err := s.SetFaults(Faults{FailRate: 0.33, Seed: 42, Services: []Service{ServiceAPI}}); err != nil {
			t.Fatal(err)
		}
		var out []int
		for range 300 {
			r := do(t, http.MethodGet, s.APIURL()+"/api/health", nil, nil)
			out = append(out, r.status)
			switch r.status {
			case 200:
			case 429, 503:
				if r.header.Get("Retry-After") != "1" {
					t.Fatalf("%d without Retry-After: 1", r.status)
				}
			case 500:
			default:
				t.Fatalf("unexpected status %d", r.status)
			}
		}
		return out
	}
	first := statuses()
	second := statuses()
	if !slices.Equal(first, second) {
		t.Fatal("same seed and request order gave different faults")
	}
	counts := map[int]int{}
	for _, st := range first {
		counts[st]++
	}
	failed := 300 - counts[200]
	if failed < 70 || failed > 130 || counts[500] == 0 || counts[503] == 0 || counts[429] == 0 {
		t.Fatalf("status counts %v: want about 33%% failures spread over 500/503/429", counts)
	}
	// Another seed gives another sequence; faults limited to api leave ingest alone.
	s.SetFaults(Faults{FailRate: 0.33, Seed: 43, Services: []Service{ServiceAPI}})
	var third []int
	for range 300 {
		third = append(third, do(t, http.MethodGet, s.APIURL()+"/api/health", nil, nil).status)
	}
	if slices.Equal(first, third) {
		t.Fatal("different seeds gave the same sequence")
	}
	for range 50 {
		if r := do(t, http.MethodGet, s.IngestURL()+"/health", nil, nil); r.status != 200 {
			t.Fatalf("ingest faulted though not listed: %d", r.status)
		}
	}
	if c := s.Counters(); c.InjectedFail != int64(2*failed)+int64(300-countOK(third)) {
		t.Fatalf("InjectedFail = %d", c.InjectedFail)
	}
	if len(s.Rejected()) != 0 {
		t.Fatal("injected faults must not be recorded as validation rejections")
	}
}

func countOK(st []int) int {
	n := 0
	for _, s := range st {
		if s == 200 {
			n++
		}
	}
	return n
}

func TestFaultsAcceptThenFail(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	if err := s.SetFaults(Faults{AcceptThenFailRate: 1, Services: []Service{ServiceIngest}}); err != nil {
		t.Fatal(err)
	}
	r := postIngest(t, s, "/ingest/metrics", rid, "p", `{"time":1,"step":1,"data":{"a":1,"b":2}}`)
	if r.status != 500 || r.header.Get("X-Mlopfake-Fault") != "injected" {
		t.Fatalf("status %d, want an injected 500", r.status)
	}
	if got := s.RawMetricCount(id); got != 2 {
		t.Fatalf("stored %d points, want 2: the request was processed before the 500", got)
	}
	reqs := s.Requests()
	last := reqs[len(reqs)-1]
	if last.Fault != "accept-then-fail" || last.Status != 500 || last.HandlerStatus != 200 || last.Records != 2 {
		t.Fatalf("request log %+v", last)
	}
	// Retrying then duplicates the raw rows but not the deduplicated view.
	s.SetFaults(Faults{})
	postIngest(t, s, "/ingest/metrics", rid, "p", `{"time":1,"step":1,"data":{"a":1,"b":2}}`)
	if raw, dedup := s.RawMetricCount(id), len(s.Metrics(id)["a"]); raw != 4 || dedup != 1 {
		t.Fatalf("raw %d dedup %d, want 4 and 1", raw, dedup)
	}
}

func TestFaultsValidation(t *testing.T) {
	s := startServer(t, Options{})
	for _, f := range []Faults{{FailRate: 1.5}, {FailRate: 0.6, AcceptThenFailRate: 0.6}, {Latency: -1}, {Services: []Service{"db"}}} {
		if err := s.SetFaults(f); err == nil {
			t.Errorf("SetFaults(%+v) accepted", f)
		}
	}
	if _, err := Start(Options{Faults: Faults{FailRate: 2}}); err == nil {
		t.Error("Start accepted an invalid fault rate")
	}
}

func TestFaultsLatency(t *testing.T) {
	s := startServer(t, Options{Faults: Faults{Latency: 80 * time.Millisecond, Services: []Service{ServicePy}}})
	start := time.Now()
	do(t, http.MethodGet, s.PyURL()+"/healthz", nil, nil)
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("py answered in %v, want >= 80ms", d)
	}
}

func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

func TestDownUpRefusesConnections(t *testing.T) {
	s := startServer(t, Options{})
	urls := map[Service]string{}
	for _, svc := range AllServices {
		urls[svc] = s.URL(svc)
	}
	// Hold a keep-alive connection open to prove Down closes it too.
	client := &http.Client{}
	res, err := client.Get(s.APIURL() + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()

	s.Down()
	for _, svc := range AllServices {
		if s.IsUp(svc) {
			t.Fatalf("%s still up", svc)
		}
		_, err := net.DialTimeout("tcp", strings.TrimPrefix(urls[svc], "http://"), time.Second)
		if !refused(err) {
			t.Fatalf("dial %s while down: %v, want connection refused", svc, err)
		}
	}
	if _, err := client.Get(s.APIURL() + "/api/health"); err == nil {
		t.Fatal("request over the old keep-alive connection succeeded while down")
	}

	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	for _, svc := range AllServices {
		if s.URL(svc) != urls[svc] {
			t.Fatalf("%s moved from %s to %s", svc, urls[svc], s.URL(svc))
		}
	}
	if r := do(t, http.MethodGet, s.APIURL()+"/api/health", nil, nil); r.status != 200 {
		t.Fatalf("after Up: %d", r.status)
	}
	// One service only.
	s.Down(ServiceIngest)
	if _, err := net.Dial("tcp", strings.TrimPrefix(s.IngestURL(), "http://")); !refused(err) {
		t.Fatalf("ingest dial: %v", err)
	}
	if r := do(t, http.MethodGet, s.PyURL()+"/healthz", nil, nil); r.status != 200 {
		t.Fatal("py went down with ingest")
	}
	s.Up(ServiceIngest)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOutageWindow(t *testing.T) {
	s := startServer(t, Options{})
	// Through the control endpoint, taking the api listener down too.
	r := do(t, http.MethodPost, s.APIURL()+"/_standin/outage", map[string]string{"Content-Type": "application/json"},
		strings.NewReader(`{"durationMs": 300, "services": ["api", "ingest"]}`))
	if r.status != http.StatusAccepted {
		t.Fatalf("outage: %d %s", r.status, r.body)
	}
	waitUntil(t, "the api and ingest listeners to go down", func() bool { return !s.IsUp(ServiceAPI) && !s.IsUp(ServiceIngest) })
	if _, err := net.Dial("tcp", strings.TrimPrefix(s.IngestURL(), "http://")); !refused(err) {
		t.Fatalf("ingest during outage: %v", err)
	}
	if !s.IsUp(ServicePy) {
		t.Fatal("py is not part of the outage")
	}
	waitUntil(t, "the outage to end", func() bool { return s.IsUp(ServiceAPI) && s.IsUp(ServiceIngest) })
	if r := do(t, http.MethodGet, s.IngestURL()+"/health", nil, nil); r.status != 200 {
		t.Fatalf("after outage: %d", r.status)
	}
	r = do(t, http.MethodPost, s.APIURL()+"/_standin/outage", nil, strings.NewReader(`{"services": ["api"]}`))
	if r.status != 400 {
		t.Fatalf("endless api outage accepted: %d", r.status)
	}
}

func TestCloseIsIdempotentAndCancelsOutage(t *testing.T) {
	s, err := Start(Options{ReapInterval: time.Millisecond}) // Close also stops the reaper
	if err != nil {
		t.Fatal(err)
	}
	s.DownFor(time.Hour, ServiceAPI)
	s.Close()
	s.Close()
	if err := s.Up(); err == nil {
		t.Fatal("Up after Close succeeded")
	}
	for _, svc := range AllServices {
		if s.IsUp(svc) {
			t.Fatalf("%s up after Close", svc)
		}
	}
}

func TestStandinControlEndpoints(t *testing.T) {
	s := startServer(t, Options{})
	id := runIDOf(t, createRun(t, s, map[string]any{"runName": "r", "projectName": "p"}))
	post := func(path, body string) response {
		return do(t, http.MethodPost, s.APIURL()+path, map[string]string{"Content-Type": "application/json"}, strings.NewReader(body))
	}
	if r := post("/_standin/faults", `{"failRate":0.5,"acceptThenFailRate":0.25,"latencyMs":3,"seed":9,"services":["py"]}`); r.status != 200 {
		t.Fatalf("faults: %d %s", r.status, r.body)
	}
	if f := s.Faults(); f.FailRate != 0.5 || f.AcceptThenFailRate != 0.25 || f.Latency != 3*time.Millisecond || f.Seed != 9 || !slices.Equal(f.Services, []Service{ServicePy}) {
		t.Fatalf("faults %+v", f)
	}
	if r := post("/_standin/faults", `{"failRate":7}`); r.status != 400 {
		t.Fatalf("bad faults: %d", r.status)
	}
	if r := post("/_standin/keys", `{"key":"`+DefaultKey+`","state":"revoked"}`); r.status != 200 {
		t.Fatalf("keys: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodPost, s.APIURL()+"/api/slug", authHeader(DefaultKey), nil); r.status != 401 {
		t.Fatalf("revoked via endpoint: %d", r.status)
	}
	post("/_standin/keys", `{"key":"`+DefaultKey+`","state":"active"}`)
	if r := post("/_standin/cancel", fmt.Sprintf(`{"runId":%d}`, id)); r.status != 200 {
		t.Fatalf("cancel: %d", r.status)
	}
	if run, _ := s.Run(id); run.Status != "CANCELLED" {
		t.Fatalf("status %s", run.Status)
	}
	// Inspection requests are not logged, faulted or counted.
	n := len(s.Requests())
	do(t, http.MethodGet, s.APIURL()+"/_standin/summary", nil, nil)
	if len(s.Requests()) != n {
		t.Fatal("an inspection request was logged")
	}
}

func TestSummaryEndpoint(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": id, "logType": "METRIC", "logName": []string{"train/loss"}})
	postIngest(t, s, "/ingest/metrics", rid, "p", `{"time":1,"step":1,"data":{"train/loss":NaN,"train/acc":1}}`+"\n"+`{"time":2,"step":1,"data":{"train/loss":0.5}}`)
	postIngest(t, s, "/ingest/metrics", rid, "wrong-project", `{"time":1,"step":1,"data":{"x":1}}`)
	postAPI(t, s, "/api/runs/create", DefaultKey, map[string]any{"runName": 1})

	r := do(t, http.MethodGet, s.APIURL()+"/_standin/summary", nil, nil)
	if r.status != 200 {
		t.Fatalf("summary: %d", r.status)
	}
	var sum Summary
	if err := json.Unmarshal(r.body, &sum); err != nil {
		t.Fatalf("decode summary: %v\n%s", err, r.body)
	}
	if !strings.Contains(sum.Note, "NOT part of the mlop") || sum.Mode != ModeStrict {
		t.Fatalf("note %q mode %q", sum.Note, sum.Mode)
	}
	if len(sum.Runs) != 1 {
		t.Fatalf("runs %d", len(sum.Runs))
	}
	rs := sum.Runs[0]
	if rs.ID != id || rs.Project != "p" || rs.Status != "RUNNING" || rs.RawPoints != 3 || rs.DedupPoints != 2 ||
		rs.Metrics["train/loss"] != (MetricCount{Raw: 2, Dedup: 1, LogType: "METRIC"}) ||
		!slices.Equal(rs.UnregisteredMetrics, []string{"train/acc"}) {
		t.Fatalf("run summary %+v", rs)
	}
	if len(sum.OrphanStreams) != 1 || sum.OrphanStreams[0].Project != "wrong-project" {
		t.Fatalf("orphans %+v", sum.OrphanStreams)
	}
	if sum.RejectedTotal != 1 || sum.Rejected[0].Status != 400 || !strings.Contains(sum.Rejected[0].Reason, "runName") {
		t.Fatalf("rejected %+v", sum.Rejected)
	}
	// NaN survives the JSON of the metrics endpoint.
	r = do(t, http.MethodGet, s.APIURL()+"/_standin/metrics?raw=1&runId="+rid, nil, nil)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"value":"NaN"`)) {
		t.Fatalf("metrics: %d %s", r.status, r.body)
	}
}

func TestRequestLog(t *testing.T) {
	s := startServer(t, Options{MaxRequestLog: 3})
	for range 5 {
		do(t, http.MethodGet, s.IngestURL()+"/health", nil, nil)
	}
	do(t, http.MethodPost, s.APIURL()+"/nope", nil, strings.NewReader("abc"))
	reqs := s.Requests()
	if len(reqs) != 3 {
		t.Fatalf("log holds %d, want the newest 3", len(reqs))
	}
	last := reqs[2]
	if last.Service != ServiceAPI || last.Method != "POST" || last.Path != "/nope" || last.Status != 404 || last.RequestBytes != 3 || last.ResponseBytes == 0 || last.Reason == "" {
		t.Fatalf("last entry %+v", last)
	}
	if c := s.Counters(); c.Requests != 6 {
		t.Fatalf("Requests counter %d, want 6", c.Requests)
	}
}

func TestStartValidatesKeys(t *testing.T) {
	for _, keys := range [][]string{{"testkey"}, {"mlpi_bad key"}, {"mlps_x!"}} {
		_, err := Start(Options{Keys: keys})
		if !errors.Is(err, ErrBadKey) {
			t.Errorf("Start(keys %q) = %v, want ErrBadKey", keys, err)
		}
	}
	if _, err := Start(Options{Mode: "fast"}); err == nil {
		t.Error("Start accepted an unknown mode")
	}
}

func TestStartOnFixedAddressConflict(t *testing.T) {
	s := startServer(t, Options{})
	_, err := Start(Options{APIAddr: strings.TrimPrefix(s.APIURL(), "http://")})
	if err == nil {
		t.Fatal("Start on a busy port succeeded")
	}
}

func TestCountMode(t *testing.T) {
	s := startServer(t, Options{Mode: ModeCount})
	h := map[string]string{"Content-Type": "application/json"}
	r := do(t, http.MethodPost, s.APIURL()+"/api/runs/create", h, strings.NewReader(`{}`))
	var cr map[string]any
	if err := json.Unmarshal(r.body, &cr); err != nil || r.status != 200 || cr["runId"] == nil {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	body := "{\"time\":1,\"step\":1,\"data\":{\"a\":1,\"b\":{\"x\":2},\"c\":\"d:e\"}}\n\n{\"time\":2,\"step\":2,\"data\":{\"a\":NaN}}"
	r = do(t, http.MethodPost, s.IngestURL()+"/ingest/metrics", nil, strings.NewReader(body))
	if r.status != 200 || string(r.body) != "Stream processed successfully: 4 records" {
		t.Fatalf("metrics: %d %s", r.status, r.body)
	}
	do(t, http.MethodPost, s.IngestURL()+"/ingest/logs", nil, strings.NewReader("{}\n{}\n"))
	r = do(t, http.MethodPost, s.IngestURL()+"/files", h, strings.NewReader(`{"files":[{"fileName":"a.txt","logName":"f"}]}`))
	var fr map[string][]map[string]string
	json.Unmarshal(r.body, &fr)
	if u := fr["f"][0]["a.txt"]; u == "" {
		t.Fatalf("files: %s", r.body)
	} else if pr := do(t, http.MethodPut, u, nil, strings.NewReader("xyz")); pr.status != 200 {
		t.Fatalf("put: %d", pr.status)
	}
	if r := do(t, http.MethodPost, s.PyURL()+"/api/runs/trigger", nil, strings.NewReader(`{"runId":1}`)); string(r.body) != `{"status":"RUNNING","triggers":null}` {
		t.Fatalf("trigger: %s", r.body)
	}
	c := s.Counters()
	if c.MetricLines != 2 || c.MetricPoints != 4 || c.LogLines != 2 || c.S3PutBytes != 3 || c.Heartbeats != 1 {
		t.Fatalf("counters %+v", c)
	}
	if len(s.Runs()) != 0 || len(s.Requests()) != 0 {
		t.Fatal("count mode stored runs or logged requests")
	}
}

// TestObservedSession replays the pluto v0.0.28 session of the wire spec.
func TestObservedSession(t *testing.T) {
	s := startServer(t, Options{})
	if r := do(t, http.MethodPost, s.APIURL()+"/api/slug", authHeader(DefaultKey), nil); r.status != 200 {
		t.Fatal("slug")
	}
	m := createRun(t, s, map[string]any{"runName": "agent-run", "projectName": "my-project", "externalId": "ext-123",
		"config": `{"lr": 0.001, "model": {"depth": 4}}`, "loggerSettings": `{"tag": "pluto"}`, "systemMetadata": `{"process": {}}`,
		"tags": []string{"baseline"}, "createdAt": nil, "updatedAt": nil})
	id := runIDOf(t, m)
	rid := fmt.Sprint(id)
	py := func(path, body string) {
		h := authHeader(DefaultKey)
		h["Content-Type"] = "application/json"
		if r := do(t, http.MethodPost, s.PyURL()+path, h, strings.NewReader(body)); r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
	}
	ok := func(r response) {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	py("/api/runs/trigger", fmt.Sprintf(`{"runId": %d}`, id))
	ok(postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": id, "logType": "METRIC", "logName": []string{"sys/cpu.percentage.0", "sys/memory.used"}}))
	ok(postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": id, "logType": "METRIC", "logName": []string{"train/loss", "train/acc"}}))
	ok(postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": id, "logType": "METRIC", "logName": []string{"grad/norm"}}))
	ok(postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": id, "logType": "DATA", "logName": []string{"phase"}}))
	ok(postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": id, "logType": "HISTOGRAM", "logName": []string{"hist"}}))
	ok(postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": id, "logType": "ARTIFACT", "logName": []string{"files/notes"}}))
	ok(postIngest(t, s, "/ingest/metrics", rid, "my-project", `{"time": 1795637520632, "step": 1, "data": {"train/loss": 0.5, "train/acc": 1}}
{"time": 1795637520726, "step": 2, "data": {"train/loss": NaN, "grad/norm": Infinity}}
{"time": 1795637520911, "step": 3, "data": {"train/loss": 0.25}}
`))
	ok(postAPI(t, s, "/api/runs/config/update", DefaultKey, map[string]any{"runId": id, "config": `{"epochs": 10, "model": {"width": 8}}`}))
	ok(postAPI(t, s, "/api/runs/tags/update", DefaultKey, map[string]any{"runId": id, "tags": []string{"baseline", "neptune"}}))
	ok(postAPI(t, s, "/api/runs/tags/update", DefaultKey, map[string]any{"runId": id, "tags": []string{"baseline", "neptune", "v2"}}))
	ok(postIngest(t, s, "/ingest/metrics", rid, "my-project", `{"time": 1795637522631, "step": 2, "data": {"sys/cpu.percentage.0": 13.6, "sys/memory.used": 207892480}}`+"\n"))
	ok(postIngest(t, s, "/ingest/data", rid, "my-project", `{"time": 1795637520726, "data": "warmup", "dataType": "string-series", "logName": "phase", "step": 2}
{"time": 1795637520911, "data": "{\"freq\": [1, 2, 3], \"maxFreq\": 3, \"bins\": {\"min\": 0.0, \"max\": 3.0, \"num\": 3}, \"shape\": \"uniform\", \"type\": \"Histogram\", \"v\": 1}", "dataType": "HISTOGRAM", "logName": "hist", "step": 3}
`))
	h := authHeader(DefaultKey)
	h["Content-Type"], h["X-Run-Id"], h["X-Project-Name"] = "application/json", rid, "my-project"
	fr := do(t, http.MethodPost, s.IngestURL()+"/files", h, strings.NewReader(`{"files": [{"fileName": "n.txt", "fileSize": 5, "fileType": "txt", "time": 1795637520999, "logName": "files/notes", "step": 3, "sampleIndex": 0}]}`))
	ok(fr)
	var urls map[string][]map[string]string
	json.Unmarshal(fr.body, &urls)
	ok(do(t, http.MethodPut, urls["files/notes"][0]["n.txt"], map[string]string{"Content-Type": "text/plain"}, strings.NewReader("notes")))
	py("/api/runs/trigger", fmt.Sprintf(`{"runId": %d}`, id))
	ok(postAPI(t, s, "/api/runs/status/update", DefaultKey, map[string]any{"runId": id, "status": "COMPLETED", "statusMetadata": nil, "statusUpdated": nil}))

	sum := s.Summary()
	rs := sum.Runs[0]
	if rs.Status != "COMPLETED" || rs.RawPoints != 7 || rs.DataRows != 2 || rs.FilesUploaded != 1 || rs.Heartbeats != 2 ||
		len(rs.UnregisteredMetrics) != 0 || rs.Config["epochs"] != 10.0 || len(rs.Tags) != 3 || rs.MaxStep != 3 {
		t.Fatalf("summary %+v", rs)
	}
	if len(sum.Rejected) != 0 {
		t.Fatalf("the observed session was rejected: %+v", sum.Rejected)
	}
}

func TestReapStaleRuns(t *testing.T) {
	s := startServer(t, Options{})
	beating := runIDOf(t, createRun(t, s, map[string]any{"runName": "beating", "projectName": "p"}))
	silent := runIDOf(t, createRun(t, s, map[string]any{"runName": "silent", "projectName": "p"}))
	done := runIDOf(t, createRun(t, s, map[string]any{"runName": "done", "projectName": "p"}))
	postAPI(t, s, "/api/runs/status/update", DefaultKey, map[string]any{"runId": done, "status": "COMPLETED"})
	h := authHeader(DefaultKey)
	h["Content-Type"] = "application/json"
	do(t, http.MethodPost, s.PyURL()+"/api/runs/trigger", h, strings.NewReader(fmt.Sprintf(`{"runId":%d}`, beating)))
	// Metric times are the client's: a backfill from long ago keeps nothing alive.
	postIngest(t, s, "/ingest/metrics", fmt.Sprint(silent), "p", `{"time":1000,"step":1,"data":{"a":1}}`)

	now := time.Now()
	tests := []struct {
		at   time.Time
		want []int64
	}{
		{now.Add(100 * time.Second), nil},
		{now.Add(200 * time.Second), []int64{beating}}, // > 150 s since its heartbeat
		{now.Add(1700 * time.Second), nil},
		{now.Add(1900 * time.Second), []int64{silent}}, // > 1800 s, never heartbeated
	}
	for _, tc := range tests {
		if got := s.ReapStaleRuns(tc.at); !slices.Equal(got, tc.want) {
			t.Fatalf("ReapStaleRuns(+%v) = %v, want %v", tc.at.Sub(now).Round(time.Second), got, tc.want)
		}
	}
	run, _ := s.Run(beating)
	if last := run.StatusHistory[len(run.StatusHistory)-1]; run.Status != "FAILED" || last.Source != "stale-monitor" {
		t.Fatalf("reaped run %+v", run)
	}
	if run, _ := s.Run(done); run.Status != "COMPLETED" {
		t.Fatalf("finished run touched: %s", run.Status)
	}
}
