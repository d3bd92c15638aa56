// Package event is the shared vocabulary of mlop-agent: the records read from
// inputs, the positions that make reading resumable, and the tracker-neutral
// events that parsers produce and the agent ships. It imports nothing from the
// module and nothing outside the standard library.
package event

// Position is a resume point inside one stream: the byte offset just past a
// record for line-oriented files, and the source's own sequence number where
// it has one (a Neptune operation version or sequence_id, a parquet row
// index). Positions of one stream only ever grow within a file generation.
type Position struct {
	Offset int64 `json:"offset"`
	Seq    int64 `json:"seq,omitempty"`
}

// Less orders positions of the same stream.
func (p Position) Less(q Position) bool {
	if p.Offset != q.Offset {
		return p.Offset < q.Offset
	}
	return p.Seq < q.Seq
}

// Record is one complete, undecoded unit read from an input: a JSONL line or
// a CSV row without its line terminator. Data belongs to the reader and is
// only valid until the parser returns.
type Record struct {
	Line int64    // 1-based line number in the file, 0 when not line-based
	Pos  Position // resume position just after this record
	Data []byte
}

// Kind says what an Event carries and which mlop endpoint receives it.
type Kind uint8

// The event kinds. Only KindMetrics is deduplicated by the server (per run,
// metric and step); every other kind must not be sent twice.
const (
	KindMetrics Kind = iota + 1 // numeric points at one step: one line on /ingest/metrics
	KindData                    // a string-series or histogram value: one line on /ingest/data
	KindLog                     // a console line: one line on /ingest/logs
	KindFile                    // a local file to upload: /files, then PUT
	KindTags                    // tags added to / removed from the run
	KindConfig                  // keys deep-merged into the run's config
	KindStatus                  // the run finished (COMPLETED, FAILED, ...)
	KindRun                     // the run's identity and metadata, before its data
)

var kindNames = [...]string{"", "metrics", "data", "log", "file", "tags", "config", "status", "run"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Point is one named numeric value.
type Point struct {
	Name  string
	Value float64
}

// Data types used with KindData, as the mlop ingest names them.
const (
	DataStringSeries = "string-series"
	DataHistogram    = "HISTOGRAM"
)

// Event is a tracker-neutral fact about a run. Which fields are meaningful
// depends on Kind; the others are zero.
type Event struct {
	Kind Kind

	// Run selects the run inside the stream: "" is the stream's default
	// run (the file's run), any other value names one of several runs the
	// stream feeds (run_field, or the runs of a Neptune directory).
	Run string

	// Pos is the position just after the record the event came from. The
	// agent uses it to acknowledge, to checkpoint, and to recognise
	// non-idempotent events it already delivered before a crash. Events of
	// one record share Pos and are contiguous.
	Pos Position

	Step int64 // KindMetrics, KindData, KindFile: the step; KindLog: the line number
	Time int64 // unix milliseconds; KindStatus: statusUpdated (0: the run's last data time, else now)

	Points []Point // KindMetrics

	Name string // KindData, KindFile: the log name
	Type string // KindData: data type; KindLog: log type (INFO, ERROR); KindFile: log type (FILE, IMAGE, ...)
	Text string // KindData: the payload; KindLog: the message; KindFile: caption

	Path string // KindFile: the local file to upload

	Tags   []string // KindTags: tags to add, in order
	Untags []string // KindTags: tags to remove, applied after Tags

	Config map[string]any // KindConfig: keys to deep-merge into the run's config

	Status string // KindStatus: RUNNING, COMPLETED, FAILED, TERMINATED or CANCELLED

	Info *RunInfo // KindRun
}

// Run statuses, as the mlop server names them.
const (
	StatusRunning    = "RUNNING"
	StatusCompleted  = "COMPLETED"
	StatusFailed     = "FAILED"
	StatusTerminated = "TERMINATED"
	StatusCancelled  = "CANCELLED"
)

// RunInfo is what a source knows about a run's identity. Empty fields fall
// back to the source's configuration (run name and id templates).
type RunInfo struct {
	Name       string         // display name
	ExternalID string         // idempotency key on the server
	Project    string         // overrides the configured project when set
	CreatedAt  int64          // unix ms; 0: the time of the run's first event
	ForkParent string         // external id of the run this one was forked from
	ForkStep   int64          // the parent's step at the fork
	Tags       []string       // initial tags
	Config     map[string]any // initial config
}

// FileMark identifies one generation of a line file and a place in it,
// without its name: the hash of its first FingerLen bytes (the
// fingerprint; FingerLen is the file's length while it is shorter than the
// configured size, and the identity is prefix-matched as it grows), and
// the hash of the MarkerLen bytes just before an offset (the marker), which
// tells a file that still holds what was read from one rewritten under the
// same name and first bytes. The watcher computes it, the agent's ledger
// carries it from a read chunk to its commit, the checkpoint stores it and
// the watcher checks it on restart: one value, never copied field by field.
type FileMark struct {
	Fingerprint string `json:"fingerprint,omitempty"`
	FingerLen   int    `json:"finger_len,omitempty"`
	Marker      string `json:"marker,omitempty"`
	MarkerLen   int    `json:"marker_len,omitempty"`
}

// IsZero reports whether the mark holds nothing (a stream that is not a
// line file).
func (m FileMark) IsZero() bool { return m == FileMark{} }
