package agent

import (
	"context"
	"io"

	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// Client is what the agent needs from the mlop server. *mlop.Client
// implements it; tests may wrap one to inject failures.
type Client interface {
	Login(ctx context.Context) (string, error)
	CreateRun(ctx context.Context, spec mlop.CreateRun) (mlop.Run, error)
	UpdateStatus(ctx context.Context, runID int64, status string, statusUpdated int64) error
	AddLogNames(ctx context.Context, runID int64, logType string, names []string) error
	UpdateTags(ctx context.Context, runID int64, tags []string) error
	UpdateConfig(ctx context.Context, runID int64, config map[string]any) error
	Trigger(ctx context.Context, runID int64) (string, error)
	SendMetrics(ctx context.Context, runID int64, project string, body []byte, lines int) error
	SendData(ctx context.Context, runID int64, project string, body []byte, lines int) error
	SendLogs(ctx context.Context, runID int64, project string, body []byte, lines int) error
	RequestUploads(ctx context.Context, runID int64, project string, files []mlop.FileMeta) (map[string]map[string]string, error)
	PutFile(ctx context.Context, url string, r io.ReaderAt, size int64, contentType string) error
}

var _ Client = (*mlop.Client)(nil)
