package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"sync/atomic"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// dryClient is the agent.Client of --dry-run: it prints every request the
// agent would send, one JSON object per line, and sends nothing. Run ids
// are invented (1, 2, ...).
type dryClient struct {
	mu     sync.Mutex
	w      io.Writer
	nextID atomic.Int64
	ids    map[string]int64
}

var _ agent.Client = (*dryClient)(nil)

func newDryClient(w io.Writer) *dryClient { return &dryClient{w: w, ids: map[string]int64{}} }

func (d *dryClient) emit(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.w.Write(append(b, '\n'))
}

func (d *dryClient) Login(context.Context) (string, error) { return "dry-run", nil }

func (d *dryClient) CreateRun(_ context.Context, spec mlop.CreateRun) (mlop.Run, error) {
	d.mu.Lock()
	id, ok := d.ids[spec.ProjectName+"\x00"+spec.ExternalID]
	if !ok {
		id = d.nextID.Add(1)
		d.ids[spec.ProjectName+"\x00"+spec.ExternalID] = id
	}
	d.mu.Unlock()
	req := map[string]any{"request": "POST /api/runs/create", "runName": spec.RunName, "projectName": spec.ProjectName,
		"externalId": spec.ExternalID, "config": spec.Config, "tags": spec.Tags, "createdAt": spec.CreatedAt, "dry_run_id": id}
	if spec.ForkRunID != 0 {
		req["forkRunId"], req["forkStep"] = spec.ForkRunID, spec.ForkStep
	}
	d.emit(req)
	return mlop.Run{ID: id, Resumed: ok}, nil
}

func (d *dryClient) UpdateStatus(_ context.Context, runID int64, status string, at int64) error {
	d.emit(map[string]any{"request": "POST /api/runs/status/update", "runId": runID, "status": status, "statusUpdated": at})
	return nil
}

func (d *dryClient) AddLogNames(_ context.Context, runID int64, logType string, names []string) error {
	d.emit(map[string]any{"request": "POST /api/runs/logName/add", "runId": runID, "logType": logType, "logName": names})
	return nil
}

func (d *dryClient) UpdateTags(_ context.Context, runID int64, tags []string) error {
	d.emit(map[string]any{"request": "POST /api/runs/tags/update", "runId": runID, "tags": tags})
	return nil
}

func (d *dryClient) UpdateConfig(_ context.Context, runID int64, cfg map[string]any) error {
	d.emit(map[string]any{"request": "POST /api/runs/config/update", "runId": runID, "config": cfg})
	return nil
}

func (d *dryClient) Trigger(context.Context, int64) (string, error) { return "RUNNING", nil }

func (d *dryClient) ndjson(path string, runID int64, project string, body []byte) {
	var lines []json.RawMessage
	for _, l := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
		lines = append(lines, json.RawMessage(l))
	}
	d.emit(map[string]any{"request": "POST " + path, "X-Run-Id": runID, "X-Project-Name": project, "lines": lines})
}

func (d *dryClient) SendMetrics(_ context.Context, runID int64, project string, body []byte, _ int) error {
	d.ndjson("/ingest/metrics", runID, project, body)
	return nil
}

func (d *dryClient) SendData(_ context.Context, runID int64, project string, body []byte, _ int) error {
	d.ndjson("/ingest/data", runID, project, body)
	return nil
}

func (d *dryClient) SendLogs(_ context.Context, runID int64, project string, body []byte, _ int) error {
	d.ndjson("/ingest/logs", runID, project, body)
	return nil
}

func (d *dryClient) RequestUploads(_ context.Context, runID int64, project string, files []mlop.FileMeta) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, f := range files {
		if out[f.LogName] == nil {
			out[f.LogName] = map[string]string{}
		}
		out[f.LogName][f.FileName] = "dry-run://" + f.LogName + "/" + f.FileName
	}
	d.emit(map[string]any{"request": "POST /files", "X-Run-Id": runID, "X-Project-Name": project, "files": files})
	return out, nil
}

func (d *dryClient) PutFile(_ context.Context, url string, _ io.ReaderAt, size int64, contentType string) error {
	d.emit(map[string]any{"request": "PUT " + url, "bytes": size, "contentType": contentType})
	return nil
}
