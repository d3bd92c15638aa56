package sink

import (
	"context"

	"github.com/mlop-ai/mlop-agent/event"
)

// Sink is a tracker the agent delivers runs and their events to. The agent
// decides what to send when (batching, ordering, acknowledgement, the
// checkpoint); a Sink decides how: it validates events, encodes them into
// request bodies behind Batch, and speaks the tracker's protocol with its
// own retries. Errors are classified with this package's sentinels. The
// mlop implementation is sink/mlop's NewSink; --dry-run has its own.
//
// Run ids are the tracker's numeric ids. Every method is safe for
// concurrent use.
type Sink interface {
	// Limits are the tracker's rules the agent applies before it sends.
	Limits() Limits
	// Names appends the log names ev needs registered with its run before
	// a batch holding it is sent (none for console lines).
	Names(ev *event.Event, dst []Name) []Name
	// NewBatch starts an empty request body for one endpoint.
	NewBatch(ep Endpoint, l BatchLimits) Batch

	// Login checks the credentials and returns the organization's name.
	Login(ctx context.Context) (string, error)
	// CreateRun creates a run, or returns the existing one with the same
	// external id (Run.Resumed).
	CreateRun(ctx context.Context, spec RunSpec) (Run, error)
	// AddNames registers log names with a run (idempotent).
	AddNames(ctx context.Context, runID int64, names []Name) error
	// SetTags replaces a run's tags with the full list.
	SetTags(ctx context.Context, runID int64, tags []string) error
	// MergeConfig deep-merges keys into a run's config.
	MergeConfig(ctx context.Context, runID int64, cfg map[string]any) error
	// SetStatus sets a run's status with the time it took effect (unix ms;
	// 0: now).
	SetStatus(ctx context.Context, runID int64, status string, at int64) error
	// Heartbeat keeps a running run alive and returns the status the
	// tracker holds (CANCELLED when a user cancelled it).
	Heartbeat(ctx context.Context, runID int64) (string, error)
	// Send delivers a batch to a run. ErrRejected on a Metrics batch of
	// several rows means the tracker stored the rows before a bad one and
	// refused the rest: split it and send the halves.
	Send(ctx context.Context, runID int64, project string, b Batch) error
}

// Endpoint is where rows of one kind go.
type Endpoint uint8

// The endpoints. Only Metrics is deduplicated by the tracker (per run,
// metric and step); rows of the others are stored as often as they are
// sent.
const (
	Metrics Endpoint = iota // metric points at a step
	Data                    // string series and histograms
	Logs                    // console lines
	Files                   // file uploads
	NumEndpoints
)

var endpointNames = [NumEndpoints]string{"metrics", "data", "logs", "files"}

func (e Endpoint) String() string {
	if e < NumEndpoints {
		return endpointNames[e]
	}
	return "unknown"
}

// Idempotent reports whether the tracker deduplicates re-sent rows.
func (e Endpoint) Idempotent() bool { return e == Metrics }

// EndpointOf returns the endpoint of a row event; false for the events
// that are not rows (tags, config, status, run identity).
func EndpointOf(k event.Kind) (Endpoint, bool) {
	switch k {
	case event.KindMetrics:
		return Metrics, true
	case event.KindData:
		return Data, true
	case event.KindLog:
		return Logs, true
	case event.KindFile:
		return Files, true
	}
	return 0, false
}

// RunSpec describes a run to create, or to find again by its external id.
type RunSpec struct {
	Name       string
	Project    string
	ExternalID string // the idempotency key: the same id returns the same run
	Config     map[string]any
	Tags       []string
	CreatedAt  int64 // unix ms; 0: now
	// ForkOf is the tracker id of the run this one forks from at ForkStep
	// (0: not a fork).
	ForkOf   int64
	ForkStep int64
	// Meta is extra system metadata (the source's name).
	Meta map[string]any
}

// Run is a created or resumed run.
type Run struct {
	ID      int64
	URL     string
	Resumed bool // it existed (same external id)
}

// Name is a log name and the kind the tracker files it under.
type Name struct {
	Name string
	Kind string
}

// Limits are a tracker's rules about runs.
type Limits struct {
	MaxTags        int    // tags one run may hold
	GroupTagPrefix string // tags with this prefix: at most MaxGroupTags per run
	MaxGroupTags   int
	MaxNameLen     int // bytes of a run name or external id
}

// BatchLimits bound one request body.
type BatchLimits struct {
	MaxRows  int
	MaxBytes int
}

// Batch is a request body being built for one run and endpoint. Only the
// goroutine holding it (under its run's lock) uses it.
type Batch interface {
	// Endpoint is where the batch goes.
	Endpoint() Endpoint
	// Add validates ev and appends it; an error matching ErrInvalid means
	// the tracker would refuse it, and nothing was added.
	Add(ev *event.Event) error
	// Rows, Points and Bytes describe the batch; Cap is the memory it holds
	// (its buffer's capacity), which the agent's memory budget counts.
	Rows() int
	Points() int
	Bytes() int
	Cap() int
	// Full reports whether the batch reached a limit of one request.
	Full() bool
	// Split halves the batch by rows (to isolate a row the tracker
	// refuses); the halves own copies of the rows.
	Split() (Batch, Batch)
	// Dump returns each row as text, for the dead-letter file.
	Dump() []string
	// Release returns the batch's buffers; it is not used afterwards.
	Release()
}
