package agent

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/telemetry"
)

// Options configure an Agent. They are plain Go values: cmd/mlop-agent
// builds them from the YAML config (FromConfig), tests build them directly.
type Options struct {
	Project  string
	StateDir string

	// Follow keeps reading until Run's context ends (the run command);
	// without it every source is read to its end, the runs are finished and
	// Run returns (backfill).
	Follow bool

	Sources []Source

	// Parallel is how many streams of a stream format (Neptune runs) are
	// read at once (default 4). Order within a stream is always kept, and a
	// fork's parent is started before its children.
	Parallel int

	// Shard selects a stable part of the streams of stream formats: those
	// whose fork family hashes to Shard.Index modulo Shard.Count. N
	// machines with the same export and indexes 0..N-1 import each run
	// exactly once between them. Zero Count: everything.
	Shard Shard

	// ReportNames keeps per-metric point counts for Report (the first
	// 1,000 names of each run); without it only totals are kept, which is
	// what bounds memory with millions of distinct names.
	ReportNames bool

	// Progress, when set, turns on progress reports: with ProgressTTY a
	// line written to Progress and rewritten in place every second,
	// otherwise an INFO log line every ten seconds.
	Progress    io.Writer
	ProgressTTY bool
	// ProgressEvery is the interval of progress reports; 0: a second on a
	// terminal, ten seconds otherwise.
	ProgressEvery time.Duration
	// AllowMissingFiles: files the data refers to that are not on this
	// machine are expected; still listed (not_imported, missing_files),
	// but a backfill does not fail for them.
	AllowMissingFiles bool

	// DryRun reads and maps everything but moves no checkpoint: the state
	// directory is read, never locked or written. Pair it with a Client
	// that sends nothing.
	DryRun bool

	Batch              BatchOptions
	MaxInFlight        int           // concurrent requests in total
	BufferBytes        int64         // memory budget for read-but-unacknowledged data
	CheckpointInterval time.Duration // how often acknowledged progress is saved
	HeartbeatInterval  time.Duration // /api/runs/trigger per active run
	ShutdownTimeout    time.Duration // how long a stop waits for in-flight data
	DeadLetterPath     string        // rejected records are appended here ("" = off)
	Watch              WatchOptions
	UploadRoots        []string // files outside these directories are never uploaded

	// Telemetry receives the agent's self-metrics; nil disables them.
	Telemetry *telemetry.Telemetry
	// OnStateLoaded is called once the checkpoint has been read (readiness).
	OnStateLoaded func()
	// OnReady is called once every source is reading: in follow mode when
	// each has looked at the files matched at start and watches for more
	// (a write from then on is never missed); otherwise right after the
	// state is loaded.
	OnReady func()

	// ReadConfigFile decodes a sidecar config file (YAML or JSON) for
	// run.config_files; nil disables them.
	ReadConfigFile func(path string) (map[string]any, error)

	Logger *slog.Logger
	Now    func() time.Time
}

// Shard is one part of a sharded import.
type Shard struct {
	Index, Count int
}

// BatchOptions bound one ingest request.
type BatchOptions struct {
	MaxLines int
	MaxBytes int
	Linger   time.Duration
}

// WatchOptions tune file discovery and reading.
type WatchOptions struct {
	PollInterval     time.Duration
	FingerprintBytes int
	MaxLineBytes     int
	MaxOpenFiles     int
}

// Source is one configured input.
type Source struct {
	Name    string
	Format  string // a parsers registry name (jsonl, csv, neptune, ...)
	Paths   []string
	Exclude []string
	Project string // overrides Options.Project

	StepField      string
	TimeField      string
	RunField       string
	IdleTimeout    time.Duration // live mode: finish a run after this long without data (<0: never)
	StepMultiplier int64
	// MaxNamesPerRun caps the distinct log names of one run (default
	// DefaultMaxNamesPerRun): points of further names are bad records. It
	// protects the server and bounds the agent's memory per run.
	MaxNamesPerRun int
	Params         map[string]string

	// Run metadata. Name and ID are text/template strings over
	// .Source .Path .Dir .Stem .Run.
	RunName     string
	RunID       string
	Tags        []string
	Config      map[string]any
	ConfigFiles []string // globs relative to the metric file's directory
}

// Defaults for options left zero.
const (
	DefaultMaxLines        = 5000
	DefaultMaxBytes        = 1 << 20
	DefaultLinger          = 10 * time.Millisecond
	DefaultMaxInFlight     = 8
	DefaultBufferBytes     = 64 << 20
	DefaultCheckpoint      = time.Second
	DefaultHeartbeat       = 30 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultMaxNamesPerRun  = 10000
)

func (o *Options) setDefaults() error {
	if o.Batch.MaxLines <= 0 {
		o.Batch.MaxLines = DefaultMaxLines
	}
	if o.Batch.MaxBytes <= 0 {
		o.Batch.MaxBytes = DefaultMaxBytes
	}
	if o.Batch.Linger <= 0 {
		o.Batch.Linger = DefaultLinger
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.Shard.Count < 0 || (o.Shard.Count > 0 && (o.Shard.Index < 0 || o.Shard.Index >= o.Shard.Count)) {
		return fmt.Errorf("shard %d/%d: the index must be in 0..count-1", o.Shard.Index, o.Shard.Count)
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.BufferBytes <= 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	if o.BufferBytes < int64(o.Batch.MaxBytes)*2 {
		o.BufferBytes = int64(o.Batch.MaxBytes) * 2
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = DefaultCheckpoint
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeat
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StateDir == "" {
		return fmt.Errorf("state directory not set")
	}
	seen := map[string]bool{}
	for i := range o.Sources {
		s := &o.Sources[i]
		if s.Name == "" {
			return fmt.Errorf("source %d has no name", i)
		}
		if seen[s.Name] {
			return fmt.Errorf("source %q defined twice", s.Name)
		}
		seen[s.Name] = true
		if s.Project == "" {
			s.Project = o.Project
		}
		if s.Project == "" {
			return fmt.Errorf("source %q: no project", s.Name)
		}
		if s.IdleTimeout == 0 {
			s.IdleTimeout = DefaultIdleTimeout
		}
		if s.MaxNamesPerRun <= 0 {
			s.MaxNamesPerRun = DefaultMaxNamesPerRun
		}
	}
	return nil
}
