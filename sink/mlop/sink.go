package mlop

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
)

// Sink is the agent's seam onto an mlop server (sink.Sink): the client's
// calls under tracker-neutral names, and the batch builder that validates
// events and encodes them as the ingest's NDJSON. Nothing above sink/
// knows the mlop wire format.
type Sink struct {
	c *Client
}

var _ sink.Sink = (*Sink)(nil)

// NewSink wraps a client.
func NewSink(c *Client) *Sink { return &Sink{c: c} }

// Client returns the wrapped client.
func (s *Sink) Client() *Client { return s.c }

// ServerLimits are the mlop server's rules about runs (mlop-api.md §2.1,
// §2.5).
var ServerLimits = sink.Limits{MaxTags: maxTags, GroupTagPrefix: "group:", MaxGroupTags: 1, MaxNameLen: maxNameLen}

// Limits implements sink.Sink.
func (s *Sink) Limits() sink.Limits { return ServerLimits }

// Names implements sink.Sink.
func (s *Sink) Names(ev *event.Event, dst []sink.Name) []sink.Name { return Names(ev, dst) }

// Names appends the log names an event needs registered (metrics METRIC,
// string series DATA, histograms HISTOGRAM, files their type or FILE).
func Names(ev *event.Event, dst []sink.Name) []sink.Name {
	switch ev.Kind {
	case event.KindMetrics:
		for i := range ev.Points {
			dst = append(dst, sink.Name{Name: ev.Points[i].Name, Kind: LogTypeMetric})
		}
	case event.KindData:
		kind := LogTypeData
		if ev.Type == event.DataHistogram {
			kind = LogTypeHistogram
		}
		dst = append(dst, sink.Name{Name: ev.Name, Kind: kind})
	case event.KindFile:
		kind := ev.Type
		if kind == "" {
			kind = LogTypeFile
		}
		dst = append(dst, sink.Name{Name: ev.Name, Kind: kind})
	}
	return dst
}

// NewBatch implements sink.Sink.
func (s *Sink) NewBatch(ep sink.Endpoint, l sink.BatchLimits) sink.Batch { return NewBatch(ep, l) }

// Login implements sink.Sink.
func (s *Sink) Login(ctx context.Context) (string, error) { return s.c.Login(ctx) }

// CreateRun implements sink.Sink.
func (s *Sink) CreateRun(ctx context.Context, spec sink.RunSpec) (sink.Run, error) {
	r, err := s.c.CreateRun(ctx, CreateRun{RunName: spec.Name, ProjectName: spec.Project, ExternalID: spec.ExternalID,
		Config: spec.Config, Tags: spec.Tags, CreatedAt: spec.CreatedAt, ForkRunID: spec.ForkOf, ForkStep: spec.ForkStep,
		SystemMetadata: spec.Meta})
	if err != nil {
		return sink.Run{}, err
	}
	return sink.Run{ID: r.ID, URL: r.URL, Resumed: r.Resumed}, nil
}

// AddNames implements sink.Sink: one request per log type.
func (s *Sink) AddNames(ctx context.Context, runID int64, names []sink.Name) error {
	byKind := map[string][]string{}
	var kinds []string
	for _, n := range names {
		if _, ok := byKind[n.Kind]; !ok {
			kinds = append(kinds, n.Kind)
		}
		byKind[n.Kind] = append(byKind[n.Kind], n.Name)
	}
	for _, k := range kinds {
		if err := s.c.AddLogNames(ctx, runID, k, byKind[k]); err != nil {
			return err
		}
	}
	return nil
}

// SetTags implements sink.Sink.
func (s *Sink) SetTags(ctx context.Context, runID int64, tags []string) error {
	return s.c.UpdateTags(ctx, runID, tags)
}

// MergeConfig implements sink.Sink.
func (s *Sink) MergeConfig(ctx context.Context, runID int64, cfg map[string]any) error {
	return s.c.UpdateConfig(ctx, runID, cfg)
}

// SetStatus implements sink.Sink.
func (s *Sink) SetStatus(ctx context.Context, runID int64, status string, at int64) error {
	return s.c.UpdateStatus(ctx, runID, status, at)
}

// Heartbeat implements sink.Sink.
func (s *Sink) Heartbeat(ctx context.Context, runID int64) (string, error) {
	return s.c.Trigger(ctx, runID)
}

// Send implements sink.Sink.
func (s *Sink) Send(ctx context.Context, runID int64, project string, b sink.Batch) error {
	x, ok := b.(*Batch)
	if !ok {
		return fmt.Errorf("%w: a batch of another sink", sink.ErrInvalid)
	}
	switch x.ep {
	case sink.Metrics:
		return s.c.SendMetrics(ctx, runID, project, x.body, x.rows)
	case sink.Data:
		return s.c.SendData(ctx, runID, project, x.body, x.rows)
	case sink.Logs:
		return s.c.SendLogs(ctx, runID, project, x.body, x.rows)
	case sink.Files:
		return s.upload(ctx, runID, project, x.files)
	}
	return fmt.Errorf("%w: endpoint %v", sink.ErrInvalid, x.ep)
}

// FileMetas describes a files batch as /files wants it (dry runs print it).
func (b *Batch) FileMetas() ([]FileMeta, error) { return fileMetas(b.files) }

func fileMetas(files []fileItem) ([]FileMeta, error) {
	metas := make([]FileMeta, 0, len(files))
	for _, f := range files {
		fi, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("%w: file %s: %v", sink.ErrInvalid, f.path, err)
		}
		name := filepath.Base(f.path)
		ext := strings.TrimPrefix(filepath.Ext(name), ".")
		if ext == "" {
			ext = "bin"
		}
		metas = append(metas, FileMeta{FileName: name, FileType: ext, FileSize: fi.Size(),
			LogName: f.logName, Step: f.step, Time: f.time, Caption: f.caption})
	}
	return metas, nil
}

// upload registers files with the run and PUTs their bytes.
func (s *Sink) upload(ctx context.Context, runID int64, project string, files []fileItem) error {
	metas, err := fileMetas(files)
	if err != nil {
		return err
	}
	urls, err := s.c.RequestUploads(ctx, runID, project, metas)
	if err != nil {
		return err
	}
	for i, f := range files {
		url := urls[metas[i].LogName][metas[i].FileName]
		if url == "" {
			return fmt.Errorf("%w: no upload URL for %s", sink.ErrRejected, f.path)
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("%w: %v", sink.ErrInvalid, err)
		}
		err = s.c.PutFile(ctx, url, fh, metas[i].FileSize, ContentType(f.path))
		fh.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// ContentType is the MIME type a file is uploaded with.
func ContentType(path string) string {
	if ct := mime.TypeByExtension(filepath.Ext(path)); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

// fileItem is one file of a files batch.
type fileItem struct {
	path    string
	logName string
	step    int64
	time    int64
	caption string
}

// maxFilesPerBatch matches what one /files request accepts.
const maxFilesPerBatch = filesPerCall

// Batch is an mlop request body: NDJSON lines for /ingest/metrics, data or
// logs, or the files of one /files request. It implements sink.Batch.
type Batch struct {
	ep     sink.Endpoint
	limits sink.BatchLimits
	body   []byte
	rows   int
	points int
	files  []fileItem
}

var _ sink.Batch = (*Batch)(nil)

// bodies recycles batch buffers. A live batch is often one line; without
// the pool each would allocate a fresh buffer. They start small: ten
// thousand runs with one line each hold ten thousand of them.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

// NewBatch starts an empty batch (the dry run builds them without a
// client).
func NewBatch(ep sink.Endpoint, l sink.BatchLimits) *Batch {
	b := &Batch{ep: ep, limits: l}
	if ep != sink.Files {
		b.body = (*bodies.Get().(*[]byte))[:0]
	}
	return b
}

// Endpoint implements sink.Batch.
func (b *Batch) Endpoint() sink.Endpoint { return b.ep }

// Add implements sink.Batch: validate, then encode.
func (b *Batch) Add(ev *event.Event) error {
	switch b.ep {
	case sink.Metrics:
		if err := ValidateMetric(ev); err != nil {
			return err
		}
		b.body = AppendMetricLine(b.body, ev.Time, ev.Step, ev.Points)
		b.points += len(ev.Points)
	case sink.Data:
		if err := ValidateData(ev); err != nil {
			return err
		}
		b.body = AppendDataLine(b.body, ev.Time, ev.Step, ev.Type, ev.Name, ev.Text)
	case sink.Logs:
		if err := ValidateLog(ev); err != nil {
			return err
		}
		b.body = AppendLogLine(b.body, ev.Time, ev.Text, ev.Step, ev.Type)
	case sink.Files:
		if ev.Path == "" || blank(ev.Name) {
			return invalidf("file event without path or name")
		}
		b.files = append(b.files, fileItem{path: ev.Path, logName: ev.Name, step: ev.Step, time: ev.Time, caption: ev.Text})
	}
	b.rows++
	return nil
}

// Rows implements sink.Batch.
func (b *Batch) Rows() int { return b.rows }

// Points implements sink.Batch.
func (b *Batch) Points() int { return b.points }

// Bytes implements sink.Batch.
func (b *Batch) Bytes() int { return len(b.body) }

// fileItemCost is what one file of a files batch is counted as in memory.
const fileItemCost = 128

// Cap implements sink.Batch.
func (b *Batch) Cap() int {
	n := cap(b.body)
	for _, f := range b.files {
		n += fileItemCost + len(f.path) + len(f.logName) + len(f.caption)
	}
	return n
}

// Full implements sink.Batch.
func (b *Batch) Full() bool {
	if b.ep == sink.Files {
		return len(b.files) >= maxFilesPerBatch || (b.limits.MaxRows > 0 && len(b.files) >= b.limits.MaxRows)
	}
	return (b.limits.MaxRows > 0 && b.rows >= b.limits.MaxRows) || (b.limits.MaxBytes > 0 && len(b.body) >= b.limits.MaxBytes)
}

// Split implements sink.Batch. The points are shared out by line (the
// count of a half is an estimate used for statistics only).
func (b *Batch) Split() (sink.Batch, sink.Batch) {
	mk := func() *Batch { return &Batch{ep: b.ep, limits: b.limits} }
	l, r := mk(), mk()
	if b.ep == sink.Files {
		mid := len(b.files) / 2
		l.files = append(l.files, b.files[:mid]...)
		r.files = append(r.files, b.files[mid:]...)
		l.rows, r.rows = len(l.files), len(r.files)
		return l, r
	}
	lines := bytes.SplitAfter(b.body, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	mid := len(lines) / 2
	for _, ln := range lines[:mid] {
		l.body = append(l.body, ln...)
	}
	for _, ln := range lines[mid:] {
		r.body = append(r.body, ln...)
	}
	l.rows, r.rows = mid, len(lines)-mid
	if b.rows > 0 {
		l.points = b.points * l.rows / b.rows
	}
	r.points = b.points - l.points
	return l, r
}

// Dump implements sink.Batch.
func (b *Batch) Dump() []string {
	if b.ep == sink.Files {
		out := make([]string, len(b.files))
		for i, f := range b.files {
			out[i] = f.path
		}
		return out
	}
	var out []string
	for _, ln := range bytes.Split(bytes.TrimSuffix(b.body, []byte("\n")), []byte("\n")) {
		if len(ln) > 0 {
			out = append(out, string(ln))
		}
	}
	return out
}

// Lines returns the NDJSON body (dry runs print it). It aliases the batch.
func (b *Batch) Lines() []byte { return b.body }

// Release implements sink.Batch: the buffer goes back to the pool, unless
// it grew large (those go to the GC so the pool does not pin big buffers).
func (b *Batch) Release() {
	if b.body != nil && cap(b.body) <= 1<<20 {
		body := b.body[:0]
		bodies.Put(&body)
	}
	b.body, b.files = nil, nil
}
