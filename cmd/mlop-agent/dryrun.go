package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// drySink is the sink.Sink of --dry-run: it builds every request exactly as
// the mlop sink would (its batches and names come from sink/mlop), prints
// each as one JSON object per line, and sends nothing. Run ids are
// invented (1, 2, ...).
type drySink struct {
	mu     sync.Mutex
	w      io.Writer
	nextID atomic.Int64
	ids    map[string]int64
}

var _ sink.Sink = (*drySink)(nil)

func newDrySink(w io.Writer) *drySink { return &drySink{w: w, ids: map[string]int64{}} }

func (d *drySink) emit(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.w.Write(append(b, '\n'))
}

func (d *drySink) Limits() sink.Limits { return mlop.ServerLimits }

func (d *drySink) Names(ev *event.Event, dst []sink.Name) []sink.Name { return mlop.Names(ev, dst) }

func (d *drySink) NewBatch(ep sink.Endpoint, l sink.BatchLimits) sink.Batch {
	return mlop.NewBatch(ep, l)
}

func (d *drySink) Login(context.Context) (string, error) { return "dry-run", nil }

func (d *drySink) CreateRun(_ context.Context, spec sink.RunSpec) (sink.Run, error) {
	d.mu.Lock()
	id, ok := d.ids[spec.Project+"\x00"+spec.ExternalID]
	if !ok {
		id = d.nextID.Add(1)
		d.ids[spec.Project+"\x00"+spec.ExternalID] = id
	}
	d.mu.Unlock()
	req := map[string]any{"request": "POST /api/runs/create", "runName": spec.Name, "projectName": spec.Project,
		"externalId": spec.ExternalID, "config": spec.Config, "tags": spec.Tags, "createdAt": spec.CreatedAt, "dry_run_id": id}
	if spec.ForkOf != 0 {
		req["forkRunId"], req["forkStep"] = spec.ForkOf, spec.ForkStep
	}
	d.emit(req)
	return sink.Run{ID: id, Resumed: ok}, nil
}

func (d *drySink) SetStatus(_ context.Context, runID int64, status string, at int64) error {
	d.emit(map[string]any{"request": "POST /api/runs/status/update", "runId": runID, "status": status, "statusUpdated": at})
	return nil
}

func (d *drySink) AddNames(_ context.Context, runID int64, names []sink.Name) error {
	byKind := map[string][]string{}
	var kinds []string
	for _, n := range names {
		if _, ok := byKind[n.Kind]; !ok {
			kinds = append(kinds, n.Kind)
		}
		byKind[n.Kind] = append(byKind[n.Kind], n.Name)
	}
	for _, k := range kinds {
		d.emit(map[string]any{"request": "POST /api/runs/logName/add", "runId": runID, "logType": k, "logName": byKind[k]})
	}
	return nil
}

func (d *drySink) SetTags(_ context.Context, runID int64, tags []string) error {
	d.emit(map[string]any{"request": "POST /api/runs/tags/update", "runId": runID, "tags": tags})
	return nil
}

func (d *drySink) MergeConfig(_ context.Context, runID int64, cfg map[string]any) error {
	d.emit(map[string]any{"request": "POST /api/runs/config/update", "runId": runID, "config": cfg})
	return nil
}

func (d *drySink) Heartbeat(context.Context, int64) (string, error) { return "RUNNING", nil }

func (d *drySink) Send(_ context.Context, runID int64, project string, b sink.Batch) error {
	mb := b.(*mlop.Batch)
	if b.Endpoint() == sink.Files {
		files, err := mb.FileMetas()
		if err != nil {
			return err
		}
		d.emit(map[string]any{"request": "POST /files", "X-Run-Id": runID, "X-Project-Name": project, "files": files})
		for _, f := range files {
			d.emit(map[string]any{"request": "PUT dry-run://" + f.LogName + "/" + f.FileName, "bytes": f.FileSize,
				"contentType": mlop.ContentType(f.FileName)})
		}
		return nil
	}
	var lines []json.RawMessage
	for _, l := range strings.Split(strings.TrimSuffix(string(mb.Lines()), "\n"), "\n") {
		lines = append(lines, json.RawMessage(l))
	}
	d.emit(map[string]any{"request": "POST /ingest/" + b.Endpoint().String(), "X-Run-Id": runID, "X-Project-Name": project, "lines": lines})
	return nil
}
