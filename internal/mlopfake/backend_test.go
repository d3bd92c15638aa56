package mlopfake

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestCreateRunRejections(t *testing.T) {
	s := startServer(t, Options{})
	parent := runIDOf(t, createRun(t, s, map[string]any{"runName": "parent", "projectName": "p"}))
	other := runIDOf(t, createRun(t, s, map[string]any{"runName": "elsewhere", "projectName": "q"}))
	tags51 := make([]string, 51)
	for i := range tags51 {
		tags51[i] = "t"
	}
	tests := []struct {
		name       string
		body       any // a string is sent verbatim
		wantStatus int
		wantBody   string // substring
	}{
		{"missing runName", map[string]any{"projectName": "p"}, 400, `"path":["runName"],"message":"Required"`},
		{"runName not a string", map[string]any{"runName": 5, "projectName": "p"}, 400, `"message":"Expected string, received number"`},
		{"missing projectName", map[string]any{"runName": "r"}, 400, `"path":["projectName"]`},
		{"empty externalId", map[string]any{"runName": "r", "projectName": "p", "externalId": ""}, 400, `String must contain at least 1 character(s)`},
		{"config object instead of string", map[string]any{"runName": "r", "projectName": "p", "config": map[string]any{"lr": 1}}, 400, `"path":["config"],"message":"Expected string, received object"`},
		{"systemMetadata object", map[string]any{"runName": "r", "projectName": "p", "systemMetadata": map[string]any{}}, 400, `"path":["systemMetadata"]`},
		{"loggerSettings number", map[string]any{"runName": "r", "projectName": "p", "loggerSettings": 1}, 400, `"path":["loggerSettings"]`},
		{"createdAt string", map[string]any{"runName": "r", "projectName": "p", "createdAt": "2024-01-01"}, 400, `"path":["createdAt"],"message":"Expected number, received string"`},
		{"updatedAt bool", map[string]any{"runName": "r", "projectName": "p", "updatedAt": true}, 400, `"path":["updatedAt"]`},
		{"51 tags", map[string]any{"runName": "r", "projectName": "p", "tags": tags51}, 400, `Array must contain at most 50 element(s)`},
		{"tag not a string", map[string]any{"runName": "r", "projectName": "p", "tags": []any{"a", 1}}, 400, `"path":["tags",1]`},
		{"two group tags", map[string]any{"runName": "r", "projectName": "p", "tags": []string{"group:a", "group:b"}}, 400, `{"error":"A run can have at most one group:* tag."}`},
		{"inheritConfig not bool", map[string]any{"runName": "r", "projectName": "p", "inheritConfig": "yes"}, 400, `"path":["inheritConfig"]`},
		{"forkRunId without forkStep", map[string]any{"runName": "r", "projectName": "p", "forkRunId": parent}, 400, `{"error":"forkStep is required when forkRunId is provided"}`},
		{"forkRunId unknown", map[string]any{"runName": "r", "projectName": "p", "forkRunId": 999999, "forkStep": 1}, 400, `{"error":"Fork parent run not found in this project"}`},
		{"fork parent in another project", map[string]any{"runName": "r", "projectName": "p", "forkRunId": other, "forkStep": 0}, 400, `Fork parent run not found in this project`},
		{"body is an array", `[{"runName":"r","projectName":"p"}]`, 400, `"expected":"object","received":"array"`},
		{"malformed JSON", `{"runName":`, 400, `Malformed JSON in request body`},
		{"config string is not JSON", map[string]any{"runName": "r", "projectName": "p", "config": "{lr: 1}"}, 400, `{"error":"Invalid JSON format in request body"}`},
		{"runName over varchar(255)", map[string]any{"runName": strings.Repeat("x", 256), "projectName": "p"}, 500, `{"error":"Failed to create run"}`},
		{"externalId over varchar(255)", map[string]any{"runName": "r", "projectName": "p", "externalId": strings.Repeat("e", 256)}, 500, `{"error":"Failed to create run"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.Runs())
			r := postAPI(t, s, "/api/runs/create", DefaultKey, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
			if tc.wantStatus == 400 && strings.Contains(tc.wantBody, `"path"`) && !strings.HasPrefix(string(r.body), `{"success":false,"error":{"issues":[`) {
				t.Fatalf("zod body shape: %s", r.body)
			}
			if n := len(s.Runs()); n != before {
				t.Fatalf("a rejected create made a run (%d -> %d)", before, n)
			}
			rej := s.Rejected()
			if len(rej) == 0 || rej[len(rej)-1].Status != tc.wantStatus {
				t.Fatalf("rejection not recorded: %+v", rej)
			}
		})
	}
}

func TestCreateRunAccepts(t *testing.T) {
	s := startServer(t, Options{})
	tests := []struct {
		name string
		body map[string]any
	}{
		{"minimal", map[string]any{"runName": "r", "projectName": "p"}},
		{"unknown keys are stripped", map[string]any{"runName": "r", "projectName": "p", "somethingNew": []int{1}}},
		{"nulls everywhere", map[string]any{"runName": "r", "projectName": "p", "externalId": nil, "tags": nil, "config": nil, "loggerSettings": nil, "systemMetadata": nil, "createdAt": nil, "updatedAt": nil}},
		{"config string null", map[string]any{"runName": "r", "projectName": "p", "config": "null"}},
		{"one group tag and 50 tags", map[string]any{"runName": "r", "projectName": "p", "tags": append([]string{"group:g"}, slices.Repeat([]string{"x"}, 49)...)}},
		{"observed pluto payload", map[string]any{"runName": "agent-run", "projectName": "p", "externalId": "ext-1", "config": `{"lr": 0.001, "model": {"depth": 4}}`,
			"loggerSettings": `{"tag": "pluto"}`, "systemMetadata": `{"process": {}}`, "tags": []string{"baseline"}, "createdAt": nil, "updatedAt": nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			createRun(t, s, tc.body)
		})
	}
}

func TestCreateRunResponseShape(t *testing.T) {
	s := startServer(t, Options{})
	r := postAPI(t, s, "/api/runs/create", DefaultKey, map[string]any{"runName": "a", "projectName": "my-project", "tags": []string{"t1"}, "config": `{"lr":0.1}`})
	// Field order and presence exactly as the server sends them.
	keys := jsonKeys(t, r.body)
	want := []string{"runId", "number", "displayId", "projectName", "organizationSlug", "url", "resumed", "forkedFromRunId", "forkStep"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	first := r.json(t)
	second := createRun(t, s, map[string]any{"runName": "b", "projectName": "my-project"})
	third := createRun(t, s, map[string]any{"runName": "c", "projectName": "image classification"})
	checks := []struct {
		m                          map[string]any
		number                     float64
		displayID, project, suffix string
	}{
		{first, 1, "MPR-1", "my-project", "/o/test-org/projects/my-project/"},
		{second, 2, "MPR-2", "my-project", "/o/test-org/projects/my-project/"},
		{third, 1, "ICL-1", "image classification", "/o/test-org/projects/image%20classification/"},
	}
	for _, c := range checks {
		if c.m["number"] != c.number || c.m["displayId"] != c.displayID || c.m["projectName"] != c.project ||
			c.m["organizationSlug"] != "test-org" || c.m["resumed"] != false || c.m["forkedFromRunId"] != nil || c.m["forkStep"] != nil {
			t.Fatalf("response %v", c.m)
		}
		u := c.m["url"].(string)
		if !strings.HasPrefix(u, "http://127.0.0.1:3000"+c.suffix) || len(u)-len("http://127.0.0.1:3000"+c.suffix) < 5 {
			t.Fatalf("url %q", u)
		}
	}
	if runIDOf(t, first) == 1 {
		t.Fatal("run ids should not coincide with run numbers")
	}
	run, ok := s.Run(runIDOf(t, first))
	if !ok || run.Status != "RUNNING" || !reflect.DeepEqual(run.Tags, []string{"t1"}) || run.Config["lr"] != 0.1 ||
		len(run.StatusHistory) != 1 || run.StatusHistory[0].To != "RUNNING" || run.StatusHistory[0].Source != "api" {
		t.Fatalf("stored run %+v", run)
	}
}

func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestGenerateRunPrefix(t *testing.T) {
	tests := map[string]string{
		"my-ml-project": "MMP", "training": "TRA", "image-classification": "ICL", "resnet-50": "R50",
		"a": "A", "my project name": "MPN", "my-project": "MPR", "a_b_c_d_e": "ABCD", "---": "RUN", "x.y": "XY",
	}
	for in, want := range tests {
		if got := generateRunPrefix(in); got != want {
			t.Errorf("generateRunPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExternalIDIdempotency(t *testing.T) {
	s := startServer(t, Options{})
	body := map[string]any{"runName": "first", "projectName": "p", "externalId": "ext-1", "tags": []string{"a"}, "config": `{"lr":0.1,"model":{"depth":4,"act":"relu"}}`}
	first := createRun(t, s, body)
	id := runIDOf(t, first)
	if r := postAPI(t, s, "/api/runs/status/update", DefaultKey, map[string]any{"runId": id, "status": "COMPLETED"}); r.status != 200 {
		t.Fatalf("status update: %d %s", r.status, r.body)
	}
	again := createRun(t, s, map[string]any{"runName": "second name", "projectName": "p", "externalId": "ext-1", "tags": []string{"b"}, "config": `{"model":{"depth":8},"epochs":3}`})
	if runIDOf(t, again) != id || again["resumed"] != true || again["number"] != first["number"] || again["displayId"] != first["displayId"] {
		t.Fatalf("second create %v, want run %d resumed", again, id)
	}
	run, _ := s.Run(id)
	wantCfg := map[string]any{"lr": 0.1, "model": map[string]any{"depth": 8.0, "act": "relu"}, "epochs": 3.0}
	if !reflect.DeepEqual(run.Config, wantCfg) {
		t.Fatalf("config %v, want deep merge %v", run.Config, wantCfg)
	}
	if !reflect.DeepEqual(run.Tags, []string{"a"}) || run.Name != "first" {
		t.Fatalf("resume changed tags or name: %v %q", run.Tags, run.Name)
	}
	if run.Status != "RUNNING" {
		t.Fatalf("status %s, want RUNNING after resume", run.Status)
	}
	last := run.StatusHistory[len(run.StatusHistory)-1]
	if last.From != "COMPLETED" || last.To != "RUNNING" || last.Source != "resume" {
		t.Fatalf("history %+v, want a resume event", run.StatusHistory)
	}
	// Same externalId in another project is another run.
	if other := createRun(t, s, map[string]any{"runName": "x", "projectName": "q", "externalId": "ext-1"}); runIDOf(t, other) == id || other["resumed"] != false {
		t.Fatalf("other project reused the run: %v", other)
	}
	// Resuming a RUNNING run adds no event.
	n := len(run.StatusHistory)
	createRun(t, s, map[string]any{"runName": "x", "projectName": "p", "externalId": "ext-1"})
	if run, _ = s.Run(id); len(run.StatusHistory) != n {
		t.Fatalf("resume of a running run added an event: %+v", run.StatusHistory)
	}
}

func TestResumeEndpoint(t *testing.T) {
	s := startServer(t, Options{ForeignKeys: []string{"mlpi_foreign"}})
	m := createRun(t, s, map[string]any{"runName": "r", "projectName": "my-project", "externalId": "e1"})
	id := runIDOf(t, m)
	postAPI(t, s, "/api/runs/status/update", DefaultKey, map[string]any{"runId": id, "status": "FAILED"})
	tests := []struct {
		name       string
		key        string
		body       map[string]any
		wantStatus int
		wantBody   string
	}{
		{"by runId", DefaultKey, map[string]any{"runId": id}, 200, `"resumed":true`},
		{"by displayId", DefaultKey, map[string]any{"displayId": "mpr-1"}, 200, `"displayId":"MPR-1"`},
		{"by externalId", DefaultKey, map[string]any{"externalId": "e1", "projectName": "my-project"}, 200, `"projectName":"my-project"`},
		{"externalId without project", DefaultKey, map[string]any{"externalId": "e1"}, 400, `projectName is required when using externalId`},
		{"none given", DefaultKey, map[string]any{"projectName": "my-project"}, 400, `Provide exactly one of: runId, displayId, or externalId`},
		{"two given", DefaultKey, map[string]any{"runId": id, "displayId": "MPR-1"}, 400, `Provide exactly one of`},
		{"bad displayId", DefaultKey, map[string]any{"displayId": "MPR1"}, 400, `Invalid displayId format`},
		{"unknown run", DefaultKey, map[string]any{"runId": 1}, 404, `{"error":"Run not found"}`},
		{"other organisation", "mlpi_foreign", map[string]any{"runId": id}, 404, `Run not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postAPI(t, s, "/api/runs/resume", tc.key, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	run, _ := s.Run(id)
	if run.Status != "RUNNING" {
		t.Fatalf("status %s", run.Status)
	}
	sources := []string{}
	for _, e := range run.StatusHistory {
		sources = append(sources, e.Source+":"+e.To)
	}
	if want := []string{"api:RUNNING", "api:FAILED", "resume:RUNNING"}; !slices.Equal(sources, want) {
		t.Fatalf("history %v, want %v", sources, want)
	}
	keys := jsonKeys(t, postAPI(t, s, "/api/runs/resume", DefaultKey, map[string]any{"runId": id}).body)
	if want := []string{"runId", "number", "displayId", "projectName", "organizationSlug", "url", "resumed"}; !slices.Equal(keys, want) {
		t.Fatalf("resume keys %v, want %v", keys, want)
	}
}

func TestStatusUpdate(t *testing.T) {
	s := startServer(t, Options{})
	id := runIDOf(t, createRun(t, s, map[string]any{"runName": "r", "projectName": "p"}))
	tests := []struct {
		name       string
		body       map[string]any
		wantStatus int
		wantBody   string
	}{
		{"status not in enum", map[string]any{"runId": id, "status": "DONE"}, 400, `Invalid enum value. Expected 'RUNNING' | 'COMPLETED' | 'FAILED' | 'TERMINATED' | 'CANCELLED', received 'DONE'`},
		{"missing status", map[string]any{"runId": id}, 400, `"path":["status"]`},
		{"runId as string", map[string]any{"runId": "1", "status": "COMPLETED"}, 400, `"path":["runId"],"message":"Expected number, received string"`},
		{"statusUpdated as string", map[string]any{"runId": id, "status": "COMPLETED", "statusUpdated": "now"}, 400, `"path":["statusUpdated"]`},
		{"statusMetadata object", map[string]any{"runId": id, "status": "COMPLETED", "statusMetadata": map[string]any{}}, 400, `"path":["statusMetadata"]`},
		{"statusMetadata not JSON", map[string]any{"runId": id, "status": "COMPLETED", "statusMetadata": "{oops"}, 400, `{"error":"Invalid statusMetadata JSON"}`},
		{"loggerSettings not JSON", map[string]any{"runId": id, "status": "COMPLETED", "loggerSettings": "{oops"}, 400, `{"error":"Invalid loggerSettings JSON"}`},
		{"unknown run", map[string]any{"runId": 5, "status": "COMPLETED"}, 404, `{"error":"Run not found"}`},
		{"fractional runId", map[string]any{"runId": 1.5, "status": "COMPLETED"}, 500, `Internal Server Error`},
		{"observed pluto body", map[string]any{"runId": id, "status": "FAILED", "statusMetadata": `{"type":"ValueError","message":"boom"}`, "statusUpdated": 1795637520632}, 200, `{"success":true}`},
		{"lower severity after FAILED is ignored", map[string]any{"runId": id, "status": "COMPLETED", "statusMetadata": nil, "statusUpdated": nil}, 200, `{"success":true}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postAPI(t, s, "/api/runs/status/update", DefaultKey, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	run, _ := s.Run(id)
	if run.Status != "FAILED" || run.ClientStatusUpdatedMs == nil || *run.ClientStatusUpdatedMs != 1795637520632 {
		t.Fatalf("run %+v, want FAILED with the client's statusUpdated", run)
	}
	if md, _ := run.StatusMetadata.(map[string]any); md["type"] != "ValueError" {
		t.Fatalf("statusMetadata %v", run.StatusMetadata)
	}
	if len(run.StatusHistory) != 2 {
		t.Fatalf("history %+v, want creation + FAILED", run.StatusHistory)
	}
}

func TestLogNameAdd(t *testing.T) {
	s := startServer(t, Options{ForeignKeys: []string{"mlpi_foreign"}})
	id := runIDOf(t, createRun(t, s, map[string]any{"runName": "r", "projectName": "p"}))
	tests := []struct {
		name       string
		key        string
		body       map[string]any
		wantStatus int
		wantBody   string
	}{
		{"GRAPH is not in the enum", DefaultKey, map[string]any{"runId": id, "logType": "GRAPH", "logName": []string{"g"}}, 400, `received 'GRAPH'`},
		{"lowercase type", DefaultKey, map[string]any{"runId": id, "logType": "metric", "logName": []string{"g"}}, 400, `invalid_enum_value`},
		{"logName a string", DefaultKey, map[string]any{"runId": id, "logType": "METRIC", "logName": "train/loss"}, 400, `"path":["logName"],"message":"Expected array, received string"`},
		{"unknown run", DefaultKey, map[string]any{"runId": 7, "logType": "METRIC", "logName": []string{"a"}}, 404, `Run not found`},
		{"other organisation", "mlpi_foreign", map[string]any{"runId": id, "logType": "METRIC", "logName": []string{"a"}}, 404, `Run not found`},
		{"metrics", DefaultKey, map[string]any{"runId": id, "logType": "METRIC", "logName": []string{"train/loss", "train/acc", "train/loss"}}, 200, `{"success":true}`},
		{"already registered is skipped", DefaultKey, map[string]any{"runId": id, "logType": "HISTOGRAM", "logName": []string{"train/loss", "hist"}}, 200, `{"success":true}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postAPI(t, s, "/api/runs/logName/add", tc.key, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	run, _ := s.Run(id)
	want := map[string][]string{"METRIC": {"train/loss", "train/acc"}, "HISTOGRAM": {"hist"}}
	if !reflect.DeepEqual(run.LogNames, want) {
		t.Fatalf("log names %v, want %v", run.LogNames, want)
	}
}

func TestTagsUpdate(t *testing.T) {
	s := startServer(t, Options{})
	id := runIDOf(t, createRun(t, s, map[string]any{"runName": "r", "projectName": "p", "tags": []string{"group:initial"}}))
	tests := []struct {
		name       string
		body       map[string]any
		wantStatus int
		wantBody   string
	}{
		{"two group tags", map[string]any{"runId": id, "tags": []string{"group:one", "group:two"}}, 400, `{"error":"A run can have at most one group:* tag."}`},
		{"51 tags", map[string]any{"runId": id, "tags": slices.Repeat([]string{"x"}, 51)}, 400, `Array must contain at most 50 element(s)`},
		{"tags null", map[string]any{"runId": id, "tags": nil}, 400, `"path":["tags"],"message":"Expected array, received null"`},
		{"unknown run", map[string]any{"runId": 3, "tags": []string{"a"}}, 404, `Run not found`},
		{"full replacement", map[string]any{"runId": id, "tags": []string{"baseline", "neptune", "v2"}}, 200, `{"success":true}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.Run(id)
			r := postAPI(t, s, "/api/runs/tags/update", DefaultKey, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
			if after, _ := s.Run(id); tc.wantStatus != 200 && !reflect.DeepEqual(before.Tags, after.Tags) {
				t.Fatalf("rejected update changed tags %v -> %v", before.Tags, after.Tags)
			}
		})
	}
	run, _ := s.Run(id)
	if !reflect.DeepEqual(run.Tags, []string{"baseline", "neptune", "v2"}) {
		t.Fatalf("tags %v", run.Tags)
	}
	postAPI(t, s, "/api/runs/tags/update", DefaultKey, map[string]any{"runId": id, "tags": []string{}})
	if run, _ = s.Run(id); len(run.Tags) != 0 {
		t.Fatalf("tags %v, want cleared", run.Tags)
	}
}

func TestConfigUpdate(t *testing.T) {
	s := startServer(t, Options{})
	id := runIDOf(t, createRun(t, s, map[string]any{"runName": "r", "projectName": "p", "config": `{"lr":0.001,"batch":32,"model":{"width":8,"layers":[1,2]},"opt":{"name":"adam"}}`}))
	tests := []struct {
		name       string
		body       map[string]any
		wantStatus int
		wantBody   string
	}{
		{"config null (SDK's empty dict)", map[string]any{"runId": id, "config": nil}, 400, `"path":["config"],"message":"Expected string, received null"`},
		{"config object", map[string]any{"runId": id, "config": map[string]any{"a": 1}}, 400, `Expected string, received object`},
		{"config missing", map[string]any{"runId": id}, 400, `"path":["config"],"message":"Required"`},
		{"config JSON array", map[string]any{"runId": id, "config": `[1,2]`}, 400, `{"error":"Invalid config JSON: expected an object"}`},
		{"config JSON number", map[string]any{"runId": id, "config": `5`}, 400, `expected an object`},
		{"config bad JSON", map[string]any{"runId": id, "config": `not valid json {{{`}, 400, `{"error":"Invalid config JSON"}`},
		{"unknown run", map[string]any{"runId": 2, "config": `{"a":1}`}, 404, `Run not found`},
		{"string null is a no-op", map[string]any{"runId": id, "config": `null`}, 200, `{"success":true}`},
		{"deep merge", map[string]any{"runId": id, "config": `{"lr":0.01,"model":{"layers":[3],"depth":4},"opt":"sgd","new":{"x":1}}`}, 200, `{"success":true}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postAPI(t, s, "/api/runs/config/update", DefaultKey, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	run, _ := s.Run(id)
	want := map[string]any{
		"lr": 0.01, "batch": 32.0,
		"model": map[string]any{"width": 8.0, "layers": []any{3.0}, "depth": 4.0}, // arrays replaced, objects merged
		"opt":   "sgd",                                                            // an object replaced by a scalar
		"new":   map[string]any{"x": 1.0},
	}
	if !reflect.DeepEqual(run.Config, want) {
		t.Fatalf("config %v, want %v", run.Config, want)
	}
}

func TestDeepMerge(t *testing.T) {
	tests := []struct {
		name           string
		target, source map[string]any
		want           map[string]any
	}{
		{"nil target", nil, map[string]any{"a": 1}, map[string]any{"a": 1}},
		{"nested merge", map[string]any{"m": map[string]any{"a": 1, "b": 2}}, map[string]any{"m": map[string]any{"b": 3}}, map[string]any{"m": map[string]any{"a": 1, "b": 3}}},
		{"object over scalar", map[string]any{"m": 1}, map[string]any{"m": map[string]any{"b": 3}}, map[string]any{"m": map[string]any{"b": 3}}},
		{"array replaced", map[string]any{"l": []any{1, 2}}, map[string]any{"l": []any{3}}, map[string]any{"l": []any{3}}},
		{"null replaces", map[string]any{"a": map[string]any{"x": 1}}, map[string]any{"a": nil}, map[string]any{"a": nil}},
	}
	for _, tc := range tests {
		if got := deepMerge(tc.target, tc.source); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestForkRun(t *testing.T) {
	s := startServer(t, Options{})
	parent := runIDOf(t, createRun(t, s, map[string]any{"runName": "parent", "projectName": "p", "tags": []string{"group:parent-grp", "shared"}, "config": `{"lr":1,"bs":2}`}))
	postIngest(t, s, "/ingest/metrics", fmt.Sprint(parent), "p", `{"time":1,"step":10,"data":{"a":1}}`)
	r := postAPI(t, s, "/api/runs/create", DefaultKey, map[string]any{"runName": "child", "projectName": "p", "forkRunId": parent, "forkStep": 11})
	if r.status != 400 || !strings.Contains(string(r.body), "forkStep (11) exceeds the parent run's max step (10)") {
		t.Fatalf("fork beyond max step: %d %s", r.status, r.body)
	}
	child := createRun(t, s, map[string]any{"runName": "child", "projectName": "p", "forkRunId": parent, "forkStep": 5, "inheritTags": true, "tags": []string{"group:child-grp"}, "config": `{"bs":4}`})
	if child["forkedFromRunId"] != float64(parent) || child["forkStep"] != 5.0 {
		t.Fatalf("fork response %v", child)
	}
	run, _ := s.Run(runIDOf(t, child))
	if !reflect.DeepEqual(run.Tags, []string{"shared", "group:child-grp"}) {
		t.Fatalf("tags %v: explicit group:* must win over the inherited one", run.Tags)
	}
	if !reflect.DeepEqual(run.Config, map[string]any{"lr": 1.0, "bs": 4.0}) {
		t.Fatalf("config %v, want inherited lr and explicit bs", run.Config)
	}
	noInherit := createRun(t, s, map[string]any{"runName": "c2", "projectName": "p", "forkRunId": parent, "forkStep": 1, "inheritConfig": false})
	if run, _ := s.Run(runIDOf(t, noInherit)); run.Config != nil || len(run.Tags) != 0 {
		t.Fatalf("inheritConfig=false run %+v", run)
	}
}

func TestBackendAuth(t *testing.T) {
	s := startServer(t, Options{Keys: []string{DefaultKey, "mlps_gone", "mlpi_old"}})
	s.RevokeKey("mlps_gone")
	s.ExpireKey("mlpi_old")
	tests := []struct {
		name       string
		auth       string
		wantStatus int
		wantBody   string
	}{
		{"no header", "", 401, `{"error":"Unauthorized"}`},
		{"scheme only", "Bearer", 401, `{"error":"Unauthorized"}`},
		{"no mlp prefix", "Bearer invalid_key", 401, `{"error":"Unauthorized","message":"Invalid API key"}`},
		{"unknown key", "Bearer mlpi_unknown", 401, `{"error":"Unauthorized","message":"Key not found"}`},
		{"revoked", "Bearer mlps_gone", 401, `"message":"API key has been revoked"`},
		{"expired", "Bearer mlpi_old", 401, `"message":"API key has expired"`},
		{"scheme word is not checked", "Token " + DefaultKey, 200, `{"organization":{"slug":"test-org"}}`},
		{"valid", "Bearer " + DefaultKey, 200, `{"organization":{"slug":"test-org"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			r := do(t, http.MethodPost, s.APIURL()+"/api/slug", h, nil)
			if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	// Auth is checked before the body.
	if r := postAPI(t, s, "/api/runs/create", "mlpi_unknown", `{not json`); r.status != 401 {
		t.Fatalf("create with bad key and bad body: %d, want 401", r.status)
	}
	// Revocation at runtime affects a key already in use.
	s.AddKey("mlpi_later")
	if r := postAPI(t, s, "/api/runs/create", "mlpi_later", map[string]any{"runName": "r", "projectName": "p"}); r.status != 200 {
		t.Fatalf("new key: %d", r.status)
	}
	s.RevokeKey("mlpi_later")
	if r := postAPI(t, s, "/api/runs/create", "mlpi_later", map[string]any{"runName": "r", "projectName": "p"}); r.status != 401 {
		t.Fatalf("revoked key: %d", r.status)
	}
}

func TestBackendContentType(t *testing.T) {
	s := startServer(t, Options{})
	h := authHeader(DefaultKey)
	r := do(t, http.MethodPost, s.APIURL()+"/api/runs/create", h, strings.NewReader(`{"runName":"r","projectName":"p"}`))
	if r.status != 500 || string(r.body) != "Internal Server Error" {
		t.Fatalf("no Content-Type: %d %s", r.status, r.body)
	}
	tests := []struct {
		ct         string
		wantStatus int
		wantBody   string
	}{
		{"application/json; charset=utf-8", 200, `"runId"`},
		{"application/vnd.api+json", 200, `"runId"`},
		{"Application/JSON", 500, "Internal Server Error"}, // zod-openapi's test is case-sensitive
		{"text/plain", 500, "Internal Server Error"},
		{"application/json;", 400, "Invalid HTTP header: Content-Type=application/json;"},
	}
	for _, tc := range tests {
		h["Content-Type"] = tc.ct
		r := do(t, http.MethodPost, s.APIURL()+"/api/runs/create", h, strings.NewReader(`{"runName":"r","projectName":"p"}`))
		if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantBody) {
			t.Errorf("Content-Type %q: %d %s, want %d %s", tc.ct, r.status, r.body, tc.wantStatus, tc.wantBody)
		}
	}
}

func TestBackendGzip(t *testing.T) {
	s := startServer(t, Options{})
	h := authHeader(DefaultKey)
	h["Content-Type"] = "application/json"
	h["Accept-Encoding"] = "gzip"
	r := do(t, http.MethodPost, s.APIURL()+"/api/runs/create", h, strings.NewReader(`{"runName":"r","projectName":"p"}`))
	if r.status != 200 || r.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("status %d, Content-Encoding %q", r.status, r.header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("body is not gzip: %v", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(plain, &m); err != nil || m["runId"] == nil {
		t.Fatalf("decompressed %q: %v", plain, err)
	}
	// Errors are compressed too; identity when not accepted.
	h["Accept-Encoding"] = "gzip;q=0, identity"
	if r := do(t, http.MethodPost, s.APIURL()+"/api/runs/create", h, strings.NewReader(`{}`)); r.header.Get("Content-Encoding") != "" || r.status != 400 {
		t.Fatalf("q=0: %d %q", r.status, r.header.Get("Content-Encoding"))
	}
	// Go's default client asks for gzip and decodes it transparently.
	res, err := http.Post(s.APIURL()+"/api/health", "text/plain", nil)
	if err == nil {
		res.Body.Close()
	}
	got, err := http.Get(s.APIURL() + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	b, _ := io.ReadAll(got.Body)
	if string(b) != "OK" || !got.Uncompressed {
		t.Fatalf("health %q uncompressed=%v", b, got.Uncompressed)
	}
}

func TestSlugAndHealth(t *testing.T) {
	s := startServer(t, Options{OrgSlug: "acme"})
	if r := do(t, http.MethodPost, s.APIURL()+"/api/slug", authHeader(DefaultKey), nil); string(r.body) != `{"organization":{"slug":"acme"}}` {
		t.Fatalf("slug %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, s.APIURL()+"/api/slug", authHeader(DefaultKey), nil); r.status != 404 || string(r.body) != "404 Not Found" {
		t.Fatalf("GET slug: %d %s", r.status, r.body)
	}
	for _, c := range []struct{ url, want string }{
		{s.APIURL() + "/api/health", "OK"}, {s.IngestURL() + "/health", "OK"}, {s.PyURL() + "/healthz", `{"status":"ok"}`},
	} {
		if r := do(t, http.MethodGet, c.url, nil, nil); r.status != 200 || string(r.body) != c.want {
			t.Errorf("%s: %d %s", c.url, r.status, r.body)
		}
	}
}
