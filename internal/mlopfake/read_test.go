package mlopfake

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// getAPI sends a GET to the backend with the default key.
func getAPI(t testing.TB, s *Server, path string, q url.Values) response {
	t.Helper()
	u := s.APIURL() + path
	if q != nil {
		u += "?" + q.Encode()
	}
	return do(t, http.MethodGet, u, authHeader(DefaultKey), nil)
}

// zodIssuePaths returns "path: code" of each issue of a zod 400 body.
func zodIssuePaths(t *testing.T, r response) []string {
	t.Helper()
	var ze struct {
		Success bool `json:"success"`
		Error   struct {
			Issues []struct {
				Code    string `json:"code"`
				Path    []any  `json:"path"`
				Message string `json:"message"`
			} `json:"issues"`
			Name string `json:"name"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &ze); err != nil || ze.Success || ze.Error.Name != "ZodError" {
		t.Fatalf("not a zod error: %d %s", r.status, r.body)
	}
	var out []string
	for _, is := range ze.Error.Issues {
		out = append(out, fmt.Sprintf("%v: %s: %s", is.Path, is.Code, is.Message))
	}
	return out
}

func TestReadQueryValidation(t *testing.T) {
	s := startServer(t, Options{})
	id, _ := newRun(t, s, "p")
	rid := fmt.Sprint(id)
	tests := []struct {
		name   string
		path   string
		q      url.Values
		status int
		issue  string // substring of one zod issue; "" for a non-zod answer
	}{
		{"raw without logName", "/api/runs/metrics/raw", url.Values{"runId": {rid}, "projectName": {"p"}}, 400, "[logName]: invalid_type: Required"},
		{"raw with a bad runId", "/api/runs/metrics/raw", url.Values{"runId": {"abc"}, "projectName": {"p"}, "logName": {"x"}}, 400, "[runId]: invalid_type: Expected number, received nan"},
		{"raw without runId", "/api/runs/metrics/raw", url.Values{"projectName": {"p"}, "logName": {"x"}}, 400, "[runId]: invalid_type: Expected number, received nan"},
		{"raw without projectName", "/api/runs/metrics/raw", url.Values{"runId": {rid}, "logName": {"x"}}, 400, "[projectName]: invalid_type: Required"},
		{"raw limit 0", "/api/runs/metrics/raw", url.Values{"runId": {rid}, "projectName": {"p"}, "logName": {"x"}, "limit": {"0"}}, 400, "[limit]: too_small: Number must be greater than or equal to 1"},
		{"raw limit 50001", "/api/runs/metrics/raw", url.Values{"runId": {rid}, "projectName": {"p"}, "logName": {"x"}, "limit": {"50001"}}, 400, "[limit]: too_big: Number must be less than or equal to 50000"},
		{"raw limit 50000", "/api/runs/metrics/raw", url.Values{"runId": {rid}, "projectName": {"p"}, "logName": {"x"}, "limit": {"50000"}}, 200, ""},
		{"raw stepMin negative", "/api/runs/metrics/raw", url.Values{"runId": {rid}, "projectName": {"p"}, "logName": {"x"}, "stepMin": {"-1"}}, 400, "[stepMin]: too_small"},
		{"raw stepMin fractional", "/api/runs/metrics/raw", url.Values{"runId": {rid}, "projectName": {"p"}, "logName": {"x"}, "stepMin": {"1.5"}}, 400, "[stepMin]: invalid_type: Expected integer, received float"},
		{"raw logName twice", "/api/runs/metrics/raw", url.Values{"runId": {rid}, "projectName": {"p"}, "logName": {"x", "y"}}, 400, "[logName]: invalid_type: Expected string, received array"},
		{"raw fractional runId", "/api/runs/metrics/raw", url.Values{"runId": {"1.5"}, "projectName": {"p"}, "logName": {"x"}}, 500, ""},
		{"raw empty runId is 0", "/api/runs/metrics/raw", url.Values{"runId": {""}, "projectName": {"p"}, "logName": {"x"}}, 200, ""},
		{"sampled limit 10001", "/api/runs/metrics", url.Values{"runId": {rid}, "projectName": {"p"}, "limit": {"10001"}}, 400, "[limit]: too_big: Number must be less than or equal to 10000"},
		{"sampled limit 10000", "/api/runs/metrics", url.Values{"runId": {rid}, "projectName": {"p"}, "limit": {"10000"}}, 200, ""},
		{"list limit 0", "/api/runs/list", url.Values{"projectName": {"p"}, "limit": {"0"}}, 400, "[limit]: too_small"},
		{"list limit 201", "/api/runs/list", url.Values{"projectName": {"p"}, "limit": {"201"}}, 400, "[limit]: too_big: Number must be less than or equal to 200"},
		{"list limit 200", "/api/runs/list", url.Values{"projectName": {"p"}, "limit": {"200"}}, 200, ""},
		{"list without projectName", "/api/runs/list", nil, 400, "[projectName]: invalid_type: Required"},
		{"list negative offset", "/api/runs/list", url.Values{"projectName": {"p"}, "offset": {"-1"}}, 400, "[offset]: too_small"},
		{"list fractional limit", "/api/runs/list", url.Values{"projectName": {"p"}, "limit": {"1.5"}}, 500, ""},
		{"logs limit 10001", "/api/runs/logs", url.Values{"runId": {rid}, "projectName": {"p"}, "limit": {"10001"}}, 400, "[limit]: too_big"},
		{"logs bad logType", "/api/runs/logs", url.Values{"runId": {rid}, "projectName": {"p"}, "logType": {"LOUD"}}, 400, "[logType]: invalid_enum_value"},
		{"files without projectName", "/api/runs/files", url.Values{"runId": {rid}}, 400, "[projectName]: invalid_type: Required"},
		{"metric-names bad limit", "/api/runs/metric-names", url.Values{"projectName": {"p"}, "limit": {"x"}}, 400, "[limit]: invalid_type"},
		{"status history bad runId", "/api/runs/status/history", url.Values{"runId": {"x"}}, 400, "[runId]: invalid_type"},
		{"details bad runId", "/api/runs/details/abc", nil, 400, "[runId]: invalid_type: Expected number, received nan"},
		{"details fractional runId", "/api/runs/details/1.5", nil, 500, ""},
		{"details hex runId is a number", "/api/runs/details/0x" + fmt.Sprintf("%x", id), nil, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := getAPI(t, s, tc.path, tc.q)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.issue != "" {
				issues := zodIssuePaths(t, r)
				found := false
				for _, is := range issues {
					found = found || strings.Contains(is, tc.issue)
				}
				if !found {
					t.Fatalf("issues %q do not contain %q", issues, tc.issue)
				}
			}
		})
	}
	// Authentication comes before validation, on every read route.
	for _, path := range []string{"/api/runs/auth/validate", "/api/runs/list", "/api/runs/details/x", "/api/runs/metrics/raw",
		"/api/runs/metrics", "/api/runs/metric-names", "/api/runs/files", "/api/runs/logs", "/api/runs/status/history"} {
		if r := do(t, http.MethodGet, s.APIURL()+path, authHeader("mlpi_unknown"), nil); r.status != 401 {
			t.Errorf("%s with an unknown key: %d %s, want 401", path, r.status, r.body)
		}
	}
	// The read routes answer GET only, like every Hono route its method.
	if r := postAPI(t, s, "/api/runs/metrics/raw", DefaultKey, map[string]any{}); r.status != 404 {
		t.Errorf("POST metrics/raw: %d, want 404", r.status)
	}
}

func TestReadAuthValidate(t *testing.T) {
	s := startServer(t, Options{})
	r := getAPI(t, s, "/api/runs/auth/validate", nil)
	if r.status != 200 || string(r.body) != `{"organization":{"id":"org_test-org","slug":"test-org"},"user":{"id":"user_test-org"},"valid":true}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

type rawRow struct {
	LogGroup       string  `json:"logGroup"`
	Step           string  `json:"step"`
	Time           string  `json:"time"`
	Value          float64 `json:"value"`
	NonFiniteFlags int     `json:"nonFiniteFlags"`
}

func getRaw(t *testing.T, s *Server, q url.Values) ([]rawRow, bool) {
	t.Helper()
	r := getAPI(t, s, "/api/runs/metrics/raw", q)
	if r.status != 200 {
		t.Fatalf("metrics/raw %v: %d %s", q, r.status, r.body)
	}
	var body struct {
		Rows      []rawRow `json:"rows"`
		Truncated *bool    `json:"truncated"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Truncated == nil || body.Rows == nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return body.Rows, *body.Truncated
}

func TestMetricsRaw(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	// Out of order, a re-sent step with a later time, non-finite values, -0.
	body := `{"time":1700000000000,"step":3,"data":{"train/loss":3}}
{"time":1700000000000,"step":1,"data":{"train/loss":1,"other":7}}
{"time":1700000000005,"step":2,"data":{"train/loss":"NaN"}}
{"time":1700000000001,"step":3,"data":{"train/loss":30}}
{"time":1700000000006,"step":4,"data":{"train/loss":"Infinity"}}
{"time":1700000000007,"step":5,"data":{"train/loss":"-Infinity"}}
{"time":1700000000008,"step":6,"data":{"train/loss":-0}}
{"time":1700000000009,"step":7,"data":{"train/loss":1e-7}}
`
	if r := postIngest(t, s, "/ingest/metrics", rid, "p", body); r.status != 200 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	q := url.Values{"runId": {rid}, "projectName": {"p"}, "logName": {"train/loss"}}
	rows, trunc := getRaw(t, s, q)
	want := []rawRow{
		{"train", "1", "2023-11-14 22:13:20.000", 1, 0},
		{"train", "2", "2023-11-14 22:13:20.005", 0, 1},
		{"train", "3", "2023-11-14 22:13:20.000", 3, 0},
		{"train", "3", "2023-11-14 22:13:20.001", 30, 0},
		{"train", "4", "2023-11-14 22:13:20.006", 0, 2},
		{"train", "5", "2023-11-14 22:13:20.007", 0, 4},
		{"train", "6", "2023-11-14 22:13:20.008", 0, 0},
		{"train", "7", "2023-11-14 22:13:20.009", 1e-7, 0},
	}
	if trunc || fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("rows %v truncated %v\nwant %v", rows, trunc, want)
	}
	// -0 is written as 0, 1e-7 as JavaScript writes it.
	r := getAPI(t, s, "/api/runs/metrics/raw", q)
	if strings.Contains(string(r.body), "-0") || !strings.Contains(string(r.body), `"value":1e-7`) {
		t.Errorf("body %s", r.body)
	}
	// Paging: limit and truncated, stepMin and stepMax inclusive.
	q.Set("limit", "3")
	if rows, trunc := getRaw(t, s, q); len(rows) != 3 || !trunc || rows[2].Step != "3" {
		t.Errorf("limit 3: %v %v", rows, trunc)
	}
	q.Set("stepMin", "3")
	q.Set("stepMax", "4")
	if rows, trunc := getRaw(t, s, q); len(rows) != 3 || trunc || rows[0].Step != "3" || rows[2].Step != "4" {
		t.Errorf("steps 3..4: %v %v", rows, trunc)
	}
	q.Set("limit", "2")
	if rows, trunc := getRaw(t, s, q); len(rows) != 2 || !trunc {
		t.Errorf("steps 3..4 limit 2: %v %v", rows, trunc)
	}
	q.Set("stepMin", "5")
	q.Set("stepMax", "4")
	if rows, trunc := getRaw(t, s, q); len(rows) != 0 || trunc {
		t.Errorf("stepMin > stepMax: %v %v", rows, trunc)
	}
	// Rows are filed under the project the ingest was told; another
	// project, an unknown metric, another organisation: nothing.
	for _, q := range []url.Values{
		{"runId": {rid}, "projectName": {"other"}, "logName": {"train/loss"}},
		{"runId": {rid}, "projectName": {"p"}, "logName": {"nope"}},
	} {
		if rows, trunc := getRaw(t, s, q); len(rows) != 0 || trunc {
			t.Errorf("%v: %v", q, rows)
		}
	}
	if got := len(s.RawMetrics(id)["train/loss"]); got != 8 {
		t.Fatalf("raw rows %d", got)
	}
}

// TestMetricsRawLargeSeries reads a 50,000-row strictly increasing series
// (the chunk index path) in pages and checks every row once.
func TestMetricsRawLargeSeries(t *testing.T) {
	s := startServer(t, Options{})
	_, rid := newRun(t, s, "p")
	var b strings.Builder
	const n = 50000
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"time":%d,"step":%d,"data":{"m":%d}}`+"\n", 1700000000000+i, i*2, i)
	}
	if r := postIngest(t, s, "/ingest/metrics", rid, "p", b.String()); r.status != 200 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	q := url.Values{"runId": {rid}, "projectName": {"p"}, "logName": {"m"}, "limit": {"20000"}}
	next, seen, pages := 0, 0, 0
	for {
		q.Set("stepMin", fmt.Sprint(next))
		rows, trunc := getRaw(t, s, q)
		pages++
		for _, r := range rows {
			seen++
			if r.Step != fmt.Sprint(seen*2) || r.Value != float64(seen) {
				t.Fatalf("row %d: %+v", seen, r)
			}
		}
		if !trunc {
			break
		}
		var last int
		fmt.Sscan(rows[len(rows)-1].Step, &last)
		next = last + 1
	}
	if seen != n || pages != 3 {
		t.Fatalf("saw %d rows in %d pages", seen, pages)
	}
	// A window in the middle starts at the right chunk.
	q.Set("stepMin", "70001")
	q.Set("stepMax", "70010")
	rows, _ := getRaw(t, s, q)
	if len(rows) != 5 || rows[0].Step != "70002" {
		t.Fatalf("window: %v", rows)
	}
}

func TestMetricsSampled(t *testing.T) {
	s := startServer(t, Options{})
	_, rid := newRun(t, s, "p")
	var b strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&b, `{"time":%d,"step":%d,"data":{"a/x":%d,"b":"NaN"}}`+"\n", 1700000000000+i, i, i)
	}
	postIngest(t, s, "/ingest/metrics", rid, "p", b.String())
	r := getAPI(t, s, "/api/runs/metrics", url.Values{"runId": {rid}, "projectName": {"p"}, "limit": {"10"}})
	var body struct {
		Metrics []struct {
			LogName, LogGroup, Time, Step, ValueFlag string
			Value                                    float64
		} `json:"metrics"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, m := range body.Metrics {
		counts[m.LogName]++
		if m.LogName == "b" && (m.Value != 0 || m.ValueFlag != "NaN") {
			t.Errorf("NaN row %+v", m)
		}
	}
	// rn % 10 == 1 (10 rows) plus the last one.
	if counts["a/x"] != 11 || counts["b"] != 11 || body.Metrics[0].LogGroup != "a" {
		t.Fatalf("sampled %v (%+v)", counts, body.Metrics[0])
	}
}

func TestListAndDetails(t *testing.T) {
	s := startServer(t, Options{ForeignKeys: []string{"mlpi_foreign"}})
	a := runIDOf(t, createRun(t, s, map[string]any{"runName": "alpha_1", "projectName": "proj", "externalId": "ext-a",
		"tags": []string{"x", "y"}, "config": `{"lr":0.1,"nested":{"k":[1,2]}}`}))
	bID := runIDOf(t, createRun(t, s, map[string]any{"runName": "beta", "projectName": "proj", "externalId": "ext-b",
		"forkRunId": a, "forkStep": 5}))
	runIDOf(t, createRun(t, s, map[string]any{"runName": "alpha_2", "projectName": "other"}))
	postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": a, "logType": "METRIC", "logName": []string{"train/loss", "acc"}})
	postAPI(t, s, "/api/runs/status/update", DefaultKey, map[string]any{"runId": a, "status": "COMPLETED"})

	list := func(q url.Values) (ids []int64, total int) {
		t.Helper()
		r := getAPI(t, s, "/api/runs/list", q)
		var body struct {
			Runs []struct {
				ID          int64    `json:"id"`
				ProjectName string   `json:"projectName"`
				DisplayID   string   `json:"displayId"`
				Tags        []string `json:"tags"`
				Status      string   `json:"status"`
			} `json:"runs"`
			Total int `json:"total"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &body) != nil {
			t.Fatalf("list %v: %d %s", q, r.status, r.body)
		}
		for _, run := range body.Runs {
			if run.ProjectName != "proj" || run.Tags == nil {
				t.Errorf("list item %+v", run)
			}
			ids = append(ids, run.ID)
		}
		return ids, body.Total
	}
	if ids, total := list(url.Values{"projectName": {"proj"}}); fmt.Sprint(ids) != fmt.Sprint([]int64{bID, a}) || total != 2 {
		t.Errorf("list: %v %d (newest first)", ids, total)
	}
	if ids, total := list(url.Values{"projectName": {"proj"}, "limit": {"1"}, "offset": {"1"}}); fmt.Sprint(ids) != fmt.Sprint([]int64{a}) || total != 2 {
		t.Errorf("page 2: %v %d", ids, total)
	}
	// search is ILIKE on the name or the display id; '_' matches one character.
	if ids, _ := list(url.Values{"projectName": {"proj"}, "search": {" ALPHA_ "}}); fmt.Sprint(ids) != fmt.Sprint([]int64{a}) {
		t.Errorf("search alpha_: %v", ids)
	}
	if ids, _ := list(url.Values{"projectName": {"proj"}, "search": {"PRO-2"}}); fmt.Sprint(ids) != fmt.Sprint([]int64{bID}) {
		t.Errorf("search by display id: %v", ids)
	}
	if ids, _ := list(url.Values{"projectName": {"proj"}, "tags": {"nope, y"}}); fmt.Sprint(ids) != fmt.Sprint([]int64{a}) {
		t.Errorf("tags: %v", ids)
	}
	if ids, total := list(url.Values{"projectName": {"nope"}}); len(ids) != 0 || total != 0 {
		t.Errorf("unknown project: %v %d", ids, total)
	}

	r := getAPI(t, s, fmt.Sprintf("/api/runs/details/%d", a), nil)
	var d map[string]any
	if r.status != 200 || json.Unmarshal(r.body, &d) != nil {
		t.Fatalf("details: %d %s", r.status, r.body)
	}
	// The keys in the order the real handler writes them.
	want := []string{"id", "name", "number", "displayId", "status", "tags", "config", "systemMetadata", "loggerSettings",
		"statusMetadata", "createdAt", "updatedAt", "statusUpdated", "projectName", "externalId", "forkedFromRunId", "forkStep", "logNames"}
	if got := jsonKeys(t, r.body); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("details keys %v\nwant %v", got, want)
	}
	if d["status"] != "COMPLETED" || d["externalId"] != "ext-a" || d["forkedFromRunId"] != nil ||
		fmt.Sprint(d["config"]) != "map[lr:0.1 nested:map[k:[1 2]]]" ||
		fmt.Sprint(d["logNames"]) != "[map[logGroup:train logName:train/loss logType:METRIC] map[logGroup: logName:acc logType:METRIC]]" {
		t.Errorf("details %s", r.body)
	}
	r = getAPI(t, s, fmt.Sprintf("/api/runs/details/%d", bID), nil)
	json.Unmarshal(r.body, &d)
	// The fork inherited the parent's config (inheritConfig defaults to true).
	if d["forkedFromRunId"] != float64(a) || d["forkStep"] != float64(5) || fmt.Sprint(d["config"]) != "map[lr:0.1 nested:map[k:[1 2]]]" {
		t.Errorf("fork details %s", r.body)
	}
	for _, tc := range []struct {
		key  string
		path string
	}{
		{DefaultKey, "/api/runs/details/999999"},
		{"mlpi_foreign", fmt.Sprintf("/api/runs/details/%d", a)},
	} {
		r := do(t, http.MethodGet, s.APIURL()+tc.path, authHeader(tc.key), nil)
		if r.status != 404 || string(r.body) != `{"error":"Run not found"}` {
			t.Errorf("%s as %s: %d %s", tc.path, tc.key, r.status, r.body)
		}
	}
	// Status history, oldest first.
	r = getAPI(t, s, "/api/runs/status/history", url.Values{"runId": {fmt.Sprint(a)}})
	var h struct {
		Events []struct {
			FromStatus *string `json:"fromStatus"`
			ToStatus   string  `json:"toStatus"`
			Source     string  `json:"source"`
		} `json:"events"`
	}
	if json.Unmarshal(r.body, &h) != nil || len(h.Events) != 2 || h.Events[0].FromStatus != nil ||
		h.Events[1].ToStatus != "COMPLETED" || *h.Events[1].FromStatus != "RUNNING" || h.Events[1].Source != "api" {
		t.Errorf("history %s", r.body)
	}
	if r := getAPI(t, s, "/api/runs/status/history", url.Values{"runId": {"999999"}}); r.status != 404 {
		t.Errorf("history of an unknown run: %d", r.status)
	}
}

func TestFilesLogsMetricNames(t *testing.T) {
	s := startServer(t, Options{})
	id, rid := newRun(t, s, "p")
	postIngest(t, s, "/ingest/metrics", rid, "p", `{"time":1,"step":1,"data":{"b/loss":1,"a":2}}`+"\n")
	_, rid2 := newRun(t, s, "p")
	postIngest(t, s, "/ingest/metrics", rid2, "p", `{"time":1,"step":1,"data":{"c":1}}`+"\n")
	postIngest(t, s, "/ingest/logs", rid, "p", `{"time":1700000000000,"message":"two","lineNumber":2,"logType":"ERROR"}
{"time":1700000000000,"message":"one","lineNumber":1,"logType":"INFO"}
`)
	h := authHeader(DefaultKey)
	h["Content-Type"] = "application/json"
	h["X-Run-Id"] = rid
	h["X-Project-Name"] = "p"
	do(t, http.MethodPost, s.IngestURL()+"/files", h, strings.NewReader(
		`{"files":[{"fileName":"b.png","fileType":"png","fileSize":3,"logName":"img/x","step":2,"time":1},{"fileName":"a.txt","fileType":"txt","fileSize":4,"logName":"notes","step":1,"time":1}]}`))

	r := getAPI(t, s, "/api/runs/metric-names", url.Values{"projectName": {"p"}})
	if string(r.body) != `{"metricNames":["a","b/loss","c"],"projectName":"p"}` {
		t.Errorf("metric-names %s", r.body)
	}
	r = getAPI(t, s, "/api/runs/metric-names", url.Values{"projectName": {"p"}, "runIds": {rid + ",x"}, "search": {"LOSS"}})
	if string(r.body) != `{"metricNames":["b/loss"],"projectName":"p"}` {
		t.Errorf("metric-names of one run, searched %s", r.body)
	}
	r = getAPI(t, s, "/api/runs/logs", url.Values{"runId": {rid}, "projectName": {"p"}, "limit": {"1"}})
	if !strings.Contains(string(r.body), `"lineNumber":"1","message":"one"`) || !strings.Contains(string(r.body), `"total":2`) {
		t.Errorf("logs %s", r.body)
	}
	r = getAPI(t, s, "/api/runs/logs", url.Values{"runId": {rid}, "projectName": {"p"}, "logType": {"ERROR"}})
	if !strings.Contains(string(r.body), `"message":"two"`) || !strings.Contains(string(r.body), `"total":1`) {
		t.Errorf("logs of one type %s", r.body)
	}
	r = getAPI(t, s, "/api/runs/files", url.Values{"runId": {rid}, "projectName": {"p"}})
	var f struct {
		Files []struct{ FileName, FileSize, Step, LogGroup, URL string }
	}
	if json.Unmarshal(r.body, &f) != nil || len(f.Files) != 2 || f.Files[0].FileName != "a.txt" || f.Files[1].LogGroup != "img" ||
		f.Files[1].FileSize != "3" || f.Files[1].Step != "2" {
		t.Fatalf("files %s", r.body)
	}
	r = getAPI(t, s, "/api/runs/files", url.Values{"runId": {rid}, "projectName": {"p"}, "logName": {"notes"}})
	if !strings.Contains(string(r.body), "a.txt") || strings.Contains(string(r.body), "b.png") {
		t.Errorf("files of one log name %s", r.body)
	}
	_ = id
}

func TestAlter(t *testing.T) {
	s := startServer(t, Options{})
	id := runIDOf(t, createRun(t, s, map[string]any{"runName": "r", "projectName": "p", "tags": []string{"keep", "drop"},
		"config": `{"a":1,"b":2}`}))
	rid := fmt.Sprint(id)
	postIngest(t, s, "/ingest/metrics", rid, "p", `{"time":1,"step":1,"data":{"m":1}}
{"time":2,"step":2,"data":{"m":"NaN"}}
{"time":3,"step":3,"data":{"m":3}}
`)
	postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": id, "logType": "METRIC", "logName": []string{"m"}})
	if n, err := s.DropMetricSteps(id, "m", 3); n != 1 || err != nil {
		t.Fatalf("drop: %d %v", n, err)
	}
	if n, err := s.SetMetricValue(id, "m", 2, 0.5); n != 1 || err != nil {
		t.Fatalf("set: %d %v", n, err)
	}
	if err := s.AddMetricRow(id, "m", Point{Step: 1, Time: 9, Value: math.Inf(1)}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.Metrics(id)["m"]); got != "[{1 9 +Inf} {2 2 0.5}]" {
		t.Errorf("dedup view after changes: %s", got)
	}
	if s.RawMetricCount(id) != 3 || s.MaxStep(id) != 2 {
		t.Errorf("raw %d max step %d", s.RawMetricCount(id), s.MaxStep(id))
	}
	if err := s.RemoveTag(id, "drop"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConfigValue(id, "a", "changed", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConfigValue(id, "b", nil, true); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveLogName(id, "m"); err != nil {
		t.Fatal(err)
	}
	run, _ := s.Run(id)
	if fmt.Sprint(run.Tags) != "[keep]" || fmt.Sprint(run.Config) != "map[a:changed]" || len(run.LogNames) != 0 {
		t.Errorf("run after changes: %+v", run)
	}
	if _, err := s.DropMetricSteps(id, "nope", 1); err == nil {
		t.Error("unknown metric: no error")
	}
	if err := s.RemoveTag(id, "nope"); err == nil {
		t.Error("unknown tag: no error")
	}
	// The same through the inspection endpoint.
	r := do(t, http.MethodPost, s.APIURL()+"/_standin/alter", map[string]string{"Content-Type": "application/json"},
		strings.NewReader(fmt.Sprintf(`{"runId":%d,"op":"set-value","logName":"m","step":2,"value":"NaN"}`, id)))
	if r.status != 200 || !strings.Contains(string(r.body), `"changed":1`) {
		t.Fatalf("alter endpoint: %d %s", r.status, r.body)
	}
	if v := s.Metrics(id)["m"][1].Value; !math.IsNaN(v) {
		t.Errorf("value after the endpoint: %v", v)
	}
	r = do(t, http.MethodPost, s.APIURL()+"/_standin/alter", nil, strings.NewReader(`{"runId":1,"op":"explode"}`))
	if r.status != 400 {
		t.Errorf("bad op: %d %s", r.status, r.body)
	}
	r = do(t, http.MethodPost, s.APIURL()+"/_standin/alter", nil, strings.NewReader(`{"runId":424242,"op":"remove-tag","tag":"x"}`))
	if r.status != 404 {
		t.Errorf("unknown run: %d %s", r.status, r.body)
	}
}

func TestJSNumberAndILike(t *testing.T) {
	for in, want := range map[string]float64{"": 0, " 12 ": 12, "0x1f": 31, "1e3": 1000, ".5": 0.5, "5.": 5, "-Infinity": math.Inf(-1), "+3": 3} {
		if got := jsNumber(in); got != want {
			t.Errorf("Number(%q) = %v, want %v", in, got, want)
		}
	}
	for _, in := range []string{"abc", "1_000", "inf", "NaN", "0x", "-0x1", "1e", "1.2.3", "0x1p3"} {
		if got := jsNumber(in); !math.IsNaN(got) {
			t.Errorf("Number(%q) = %v, want NaN", in, got)
		}
	}
	for _, tc := range []struct {
		s, p string
		want bool
	}{
		{"Alpha_1", "%pha\\_%", true}, {"Alpha1", "%pha\\_%", false}, {"Alpha1", "%pha_%", true},
		{"abc", "abc", true}, {"abc", "%", true}, {"abc", "a%c", true}, {"abc", "a_", false}, {"ABC", "%b%", true},
	} {
		if got := ilike(tc.s, tc.p); got != tc.want {
			t.Errorf("%q ILIKE %q = %v", tc.s, tc.p, got)
		}
	}
}

func TestAppendCHTime(t *testing.T) {
	for _, ms := range []uint64{0, 1, 951782400000, 951825600123, 1700000000500, 4102444800999, 253402300799999, 253402300800000} {
		want := time.UnixMilli(int64(ms)).UTC().Format("2006-01-02 15:04:05.000")
		if got := chTime(ms); got != want {
			t.Errorf("%d: %s, want %s", ms, got, want)
		}
	}
}
