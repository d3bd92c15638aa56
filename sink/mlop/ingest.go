package mlop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// SendMetrics posts an NDJSON body of AppendMetricLine lines to
// {ingest}/ingest/metrics for a run. project "" means Options.Project; it
// must be the run's project exactly, the ingest files the rows under it.
// lines is the number of lines in body, for logs.
//
// A 422 is permanent: one line was refused (sink.ErrRejected) and the lines
// before it were stored, or the key was refused (sink.ErrUnauthorized). An
// empty body sends nothing. body is not modified and may be reused once the
// call returns.
func (c *Client) SendMetrics(ctx context.Context, runID int64, project string, body []byte, lines int) error {
	return c.sendNDJSON(ctx, "send metrics", "/ingest/metrics", runID, project, body, lines)
}

// SendData posts an NDJSON body of AppendDataLine lines to
// {ingest}/ingest/data. See SendMetrics. Data lines are not deduplicated by
// the server.
func (c *Client) SendData(ctx context.Context, runID int64, project string, body []byte, lines int) error {
	return c.sendNDJSON(ctx, "send data", "/ingest/data", runID, project, body, lines)
}

// SendLogs posts an NDJSON body of AppendLogLine lines to
// {ingest}/ingest/logs. See SendMetrics. Log lines are not deduplicated by
// the server.
func (c *Client) SendLogs(ctx context.Context, runID int64, project string, body []byte, lines int) error {
	return c.sendNDJSON(ctx, "send logs", "/ingest/logs", runID, project, body, lines)
}

func (c *Client) sendNDJSON(ctx context.Context, op, path string, runID int64, project string, body []byte, lines int) error {
	if len(body) == 0 {
		return nil
	}
	if project == "" {
		project = c.project
	}
	if err := checkRunHeaders(op, runID, project); err != nil {
		return err
	}
	start := time.Now()
	err := c.do(ctx, &request{
		op: op, method: "POST", url: c.ingest + path,
		// A []byte body is replayed from its start on every attempt and
		// sent with Content-Length.
		body:  body,
		ctype: ctypeNDJSON,
		runID: runID, project: project,
	}, nil)
	if err == nil && c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.Debug("batch sent", "op", op, "run_id", runID, "lines", lines, "bytes", len(body),
			"duration", time.Since(start).Round(time.Millisecond))
	}
	return err
}

// checkRunHeaders checks what the ingest needs in X-Run-Id and
// X-Project-Name: a positive id (a non-numeric or missing id silently files
// the data under run 0, or panics the /files handler) and a project.
func checkRunHeaders(op string, runID int64, project string) error {
	if runID <= 0 {
		return invalidf("%s: run id %d", op, runID)
	}
	if project == "" {
		return invalidf("%s: no project name", op)
	}
	return nil
}

// Step returns the largest step stored for a run's metrics (system metrics
// included) via POST {ingest}/step. The SDK does not use it; the server
// declares the step as u32, so runs with larger steps may fail here.
func (c *Client) Step(ctx context.Context, runID int64, project string) (int64, error) {
	const op = "max step"
	if project == "" {
		project = c.project
	}
	if err := checkRunHeaders(op, runID, project); err != nil {
		return 0, err
	}
	var resp struct {
		Step *int64 `json:"step"`
	}
	if err := c.do(ctx, &request{op: op, method: "POST", url: c.ingest + "/step", runID: runID, project: project}, &resp); err != nil {
		return 0, err
	}
	if resp.Step == nil {
		return 0, fmt.Errorf("%s: response has no step", op)
	}
	return *resp.Step, nil
}

// FileMeta describes one file to upload (mlop-api.md §2.10).
type FileMeta struct {
	FileName string // object name, unique within LogName (the SDK uses "<uuid>.<ext>")
	FileType string // extension without the dot, e.g. "png"; "mask" for masks
	FileSize int64  // bytes
	LogName  string // the run's log name the file belongs to
	Step     int64
	Time     int64 // epoch ms
	// SampleIndex orders several files logged for one (LogName, Step); sent
	// only when not 0 (older servers do not know the field).
	SampleIndex int
	Caption     string // optional
	Annotations string // optional JSON string (boxes, masks)
}

type fileMetaBody struct {
	FileName    string `json:"fileName"`
	FileSize    int64  `json:"fileSize"`
	FileType    string `json:"fileType"`
	Time        int64  `json:"time"`
	LogName     string `json:"logName"`
	Step        int64  `json:"step"`
	SampleIndex int    `json:"sampleIndex,omitempty"`
	Caption     string `json:"caption,omitempty"`
	Annotations string `json:"annotations,omitempty"`
}

// RequestUploads registers files with a run and returns a presigned PUT URL
// for each, as urls[logName][fileName], via POST {ingest}/files (at most 100
// files per request). The server records the files when they are requested,
// not when they are uploaded, and does not deduplicate them: a retried
// request can register a file twice. URLs are valid for an hour.
func (c *Client) RequestUploads(ctx context.Context, runID int64, project string, files []FileMeta) (map[string]map[string]string, error) {
	const op = "request uploads"
	if project == "" {
		project = c.project
	}
	if err := checkRunHeaders(op, runID, project); err != nil {
		return nil, err
	}
	metas := make([]fileMetaBody, len(files))
	for i, f := range files {
		switch {
		case strings.TrimSpace(f.FileName) == "":
			return nil, invalidf("%s: file %d: blank file name", op, i)
		case strings.TrimSpace(f.LogName) == "":
			return nil, invalidf("%s: file %q: blank log name", op, f.FileName)
		case strings.TrimSpace(f.FileType) == "":
			return nil, invalidf("%s: file %q: blank file type", op, f.FileName)
		case f.FileSize < 0 || f.Step < 0 || f.Time < 0 || f.SampleIndex < 0:
			return nil, invalidf("%s: file %q: negative size, step, time or sample index", op, f.FileName)
		}
		metas[i] = fileMetaBody{
			FileName: f.FileName, FileSize: f.FileSize, FileType: f.FileType, Time: f.Time,
			LogName: f.LogName, Step: f.Step, SampleIndex: f.SampleIndex,
			Caption: f.Caption, Annotations: f.Annotations,
		}
	}
	urls := make(map[string]map[string]string)
	for len(metas) > 0 {
		n := min(len(metas), filesPerCall)
		b, err := marshal(struct {
			Files []fileMetaBody `json:"files"`
		}{metas[:n]})
		if err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", op, err)
		}
		// {"<logName>": [{"<fileName>": "<url>"}, ...], ...}
		var resp map[string][]map[string]string
		err = c.do(ctx, &request{
			op: op, method: "POST", url: c.ingest + "/files", body: b, ctype: ctypeJSON,
			runID: runID, project: project,
		}, &resp)
		if err != nil {
			return nil, err
		}
		for logName, entries := range resp {
			m := urls[logName]
			if m == nil {
				m = make(map[string]string)
				urls[logName] = m
			}
			for _, e := range entries {
				for fileName, u := range e {
					m[fileName] = u
				}
			}
		}
		metas = metas[n:]
	}
	return urls, nil
}

// PutFile uploads size bytes of r to a presigned URL from RequestUploads with
// Content-Type contentType (e.g. "image/png") and Content-Length, retried like
// every call. It never sends the API key: the URL is its own credential.
// Each attempt reads r from offset 0, so r must not change meanwhile (an
// *os.File of a finished file is fine). An attempt may take Options.Timeout
// plus one second per MiB. A 401/403 from the object store means the URL's
// signature was refused (expired after an hour); it is sink.ErrRejected, not
// sink.ErrUnauthorized: request a new URL.
func (c *Client) PutFile(ctx context.Context, url string, r io.ReaderAt, size int64, contentType string) error {
	const op = "put file"
	if size < 0 {
		return invalidf("%s: negative size %d", op, size)
	}
	if r == nil && size > 0 {
		return invalidf("%s: no reader", op)
	}
	var body any // nil: an empty body goes out as "Content-Length: 0"
	if size > 0 {
		body = retryablehttp.ReaderFunc(func() (io.Reader, error) {
			return io.NewSectionReader(r, 0, size), nil
		})
	}
	timeout := c.timeout + time.Duration(size/uploadMinRate)*time.Second
	return c.do(ctx, &request{
		op: op, method: "PUT", url: url, body: body, size: size, ctype: contentType,
		noAuth: true, client: c.newRetryClient(timeout, c.retryMax),
	}, nil)
}
