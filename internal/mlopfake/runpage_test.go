package mlopfake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestRunURLBase(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want func(s *Server) string // the run URL's prefix before /o/
	}{
		{"default: where a real web app would be", Options{}, func(*Server) string { return "http://127.0.0.1:3000" }},
		{"app url", Options{AppURL: "https://app.example/"}, func(*Server) string { return "https://app.example" }},
		{"at the stand-in", Options{AppAtStandin: true, AppURL: "https://ignored.example"}, func(s *Server) string { return s.APIURL() + "/_standin/app" }},
		{"at the stand-in, count mode", Options{AppAtStandin: true, Mode: ModeCount}, func(s *Server) string { return s.APIURL() + "/_standin/app" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.opts)
			if got, want := s.AppURL(), tt.want(s); got != want {
				t.Errorf("AppURL() = %q, want %q", got, want)
			}
			m := createRun(t, s, map[string]any{"runName": "r", "projectName": "p"})
			got, _ := m["url"].(string)
			if want := tt.want(s) + "/o/test-org/projects/"; !strings.HasPrefix(got, want) {
				t.Errorf("url = %q, want prefix %q", got, want)
			}
		})
	}
}

func TestRunPage(t *testing.T) {
	s := startServer(t, Options{AppAtStandin: true})
	other := createRun(t, s, map[string]any{"runName": "other", "projectName": "p"})
	m := createRun(t, s, map[string]any{"runName": "r", "projectName": "a b/c"})
	id := runIDOf(t, m)
	postAPI(t, s, "/api/runs/logName/add", DefaultKey, map[string]any{"runId": id, "logType": "METRIC", "logName": []string{"loss"}})
	if r := postIngest(t, s, "/ingest/metrics", strconv.FormatInt(id, 10), "a b/c", `{"time":1,"step":1,"data":{"loss":0.5}}`+"\n"+`{"time":2,"step":2,"data":{"loss":0.4}}`+"\n"); r.status != 200 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	u := m["url"].(string)
	if !strings.Contains(u, "/projects/a%20b%2Fc/") {
		t.Fatalf("url %q: project not escaped like encodeURIComponent", u)
	}

	r := do(t, http.MethodGet, u, nil, nil)
	if r.status != 200 {
		t.Fatalf("GET %s: %d %s", u, r.status, r.body)
	}
	var page RunPage
	if err := json.Unmarshal(r.body, &page); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	if page.ID != id || page.Name != "r" || page.Project != "a b/c" || page.Metrics["loss"] != (MetricCount{Raw: 2, Dedup: 2, LogType: "METRIC"}) || !strings.Contains(page.Note, "NOT part of the mlop") {
		t.Errorf("page = %+v", page)
	}

	otherURL := other["url"].(string)
	sqid := otherURL[strings.LastIndex(otherURL, "/")+1:]
	base := s.APIURL() + "/_standin/app"
	for _, bad := range []string{
		base + "/o/test-org/projects/a%20b%2Fc/" + sqid, // another run's id
		base + "/o/other-org/projects/p/" + sqid,
		base + "/o/test-org/projects/p",
		base + "/o/test-org/projects/p/" + sqid + "/extra",
		base + "/o/test-org/projects/p/",
		base + "/",
	} {
		if r := do(t, http.MethodGet, bad, nil, nil); r.status != 404 || !strings.Contains(string(r.body), "NOT part of the mlop") {
			t.Errorf("GET %s: %d %s, want a 404 from the stand-in", bad, r.status, r.body)
		}
	}
	if r := do(t, http.MethodGet, otherURL, nil, nil); r.status != 200 {
		t.Errorf("GET %s: %d", otherURL, r.status)
	}
}
