// Package parsers defines how an input format turns what it reads into
// events, and keeps the registry of formats. Each format lives in its own
// subpackage and registers itself from init.
//
// Two shapes of format exist:
//   - line formats (JSONL, CSV) implement Parser: the watcher reads complete
//     lines, the parser decodes one record at a time and does no I/O;
//   - stream formats (Neptune databases and queues, documents rewritten in
//     place) implement StreamFormat: they read their own storage and hand out
//     events with the position to resume from.
package parsers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
)

// Parser turns one record into zero or more events, appended to dst. It is
// pure: no I/O, no goroutines, and no reference to rec.Data kept after it
// returns. A malformed record returns dst as it was and a *RecordError; the
// caller counts it and moves past it.
type Parser interface {
	Parse(dst []event.Event, rec event.Record) ([]event.Event, error)
}

// Stateful is implemented by parsers whose output depends on earlier records
// (a CSV header, the auto-step counter). The state is saved in the same
// checkpoint entry as the position it belongs to and restored before the
// first Parse after a restart.
type Stateful interface {
	State() ([]byte, error)
	Restore(state []byte) error
}

// Options configure one parser or stream. Parsers are never shared between
// files.
type Options struct {
	Source    string // the configured source name
	Path      string // the file being read
	StepField string // field or column holding the step ("" = format default)
	TimeField string // field or column holding the time ("" = format default)
	RunField  string // field or column naming the run, for files holding several runs

	// MaxRecordBytes is the largest record accepted; longer ones are
	// rejected as bad records (0 = no limit).
	MaxRecordBytes int

	// StepMultiplier forces the factor applied to fractional steps by
	// formats that have them (0 = choose automatically).
	StepMultiplier int64

	// Params holds format-specific settings from the source's config.
	Params map[string]string

	// Follow is true when the stream will be read again for new data (run)
	// and false when it is read once to its end (backfill, import). A
	// stream format may wait for a writer to finish what it is writing
	// only when following; at the end of a backfill it reports it instead.
	Follow bool

	// Now is the clock used for records without a time. Never nil once the
	// options have passed through WithDefaults.
	Now func() time.Time

	// OnSkip is called for each value that is dropped without making the
	// record bad (a boolean, a null, an array), with a reason from a small
	// closed set. May be nil.
	OnSkip func(reason string)

	// Notice is called when the input holds something the parser stepped
	// over without losing a record (NUL padding around a line), with the
	// line, a reason from the Notice* set and a sentence for the log. The
	// parser calls it at most once per file and reason. May be nil.
	Notice func(line int64, reason, detail string)
}

// Notice reasons.
const (
	NoticeNULPadding = "nul_padding" // zero bytes around a line, as a crash leaves
)

// WithDefaults fills the zero fields that have a default.
func (o Options) WithDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnSkip == nil {
		o.OnSkip = func(string) {}
	}
	if o.Notice == nil {
		o.Notice = func(int64, string, string) {}
	}
	return o
}

// Skip reasons reported through Options.OnSkip.
const (
	SkipBool   = "bool"
	SkipNull   = "null"
	SkipArray  = "array"
	SkipString = "string"
	SkipOther  = "other"
)

// Factory makes a parser for one file.
type Factory func(opts Options) (Parser, error)

// RecordError reports a malformed record. Field names the offending field or
// column when there is one.
type RecordError struct {
	Line  int64
	Field string
	Err   error
}

func (e *RecordError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("line %d: field %q: %v", e.Line, e.Field, e.Err)
	}
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Reasons a record is rejected. A RecordError wraps one of these so the
// agent can count rejections by a closed set of reasons.
var (
	ErrSyntax     = errors.New("malformed record")
	ErrNotObject  = errors.New("record is not an object")
	ErrTooLong    = errors.New("record too long")
	ErrBadStep    = errors.New("step is not a non-negative integer")
	ErrBadTime    = errors.New("time is not a valid timestamp")
	ErrBadValue   = errors.New("invalid value")
	ErrBadRunName = errors.New("invalid run field")
)

// Reason maps a record error to its counting label.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrTooLong):
		return ReasonTooLong
	case errors.Is(err, ErrNotObject):
		return ReasonNotObject
	case errors.Is(err, ErrBadStep):
		return ReasonBadStep
	case errors.Is(err, ErrBadTime):
		return ReasonBadTime
	case errors.Is(err, ErrBadValue):
		return ReasonBadValue
	case errors.Is(err, ErrBadRunName):
		return ReasonBadRun
	case errors.Is(err, ErrSyntax):
		return ReasonSyntax
	default:
		return ReasonOther
	}
}

// StreamFormat is implemented by formats that read their own storage
// instead of lines: a Neptune queue directory or SQLite database, a parquet
// export, a JSON document rewritten in place.
type StreamFormat interface {
	// Discover lists the streams found at a path the source's globs
	// matched. A path may hold several streams (a .neptune directory holds
	// many runs) or none yet.
	Discover(path string) ([]StreamInfo, error)
	// Open starts reading one stream after resume (the zero Position
	// means from the beginning), with the state saved alongside it.
	Open(info StreamInfo, resume event.Position, state []byte, opts Options) (Stream, error)
}

// StreamInfo identifies one stream of a StreamFormat.
type StreamInfo struct {
	Key  string // stable identity, the checkpoint key
	Path string // the file or directory it reads
	// Parent is the key of a stream that must be opened first (a fork's
	// parent run), or "".
	Parent string
	// RunID is the external id of the run the stream feeds and ParentRunID
	// that of the run it was forked from, when the format knows them
	// without reading the stream. The agent uses them to import parents
	// before their forks when they were found under different paths.
	RunID, ParentRunID string
	// Signature changes whenever the stream's data may have changed (sizes
	// and modification times of its files). After a backfill read a stream
	// completely, a later backfill skips it without opening it while the
	// signature is unchanged. Empty: the agent derives one from Path.
	Signature string
}

// Stream is an ordered, resumable producer of events.
type Stream interface {
	// Next appends the events that follow the current position to dst.
	// It returns io.EOF once everything available now has been returned;
	// a follower calls it again later to see new data.
	Next(ctx context.Context, dst []event.Event) (Chunk, error)
	Close() error
}

// Warning is something a stream format skipped or could not use: an
// unknown operation, a corrupt row, a file that no longer exists.
type Warning struct {
	File   string         // the file or database it was found in
	Pos    event.Position // where in the stream
	Reason string         // a short label from the format's closed set
	Detail string
	// Missing is, for a file the data refers to that is not on this
	// machine, the path recorded for it (where it was when the data was
	// written): the agent suggests a path map from its directory.
	Missing string
}

func (w Warning) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", w.File, w.Pos.Seq, w.Reason, w.Detail)
}

// Spooler is implemented by stream formats that write content found inside
// their input (images in a TensorBoard events file, Neptune's inline files)
// to the directory named by the source parameter "spool_dir" so the agent
// can upload it; the agent sets the parameter and allows uploads from it.
type Spooler interface {
	Spools() bool
}

// Warner is implemented by streams that collect warnings. Warnings returns
// those collected since the previous call and forgets them, with the number
// dropped because too many piled up.
type Warner interface {
	Warnings() (ws []Warning, dropped int)
}

// Chunk is what one Next call produced.
type Chunk struct {
	Events []event.Event
	End    event.Position // resume position after these events
	State  []byte         // state to save with End (nil: none)
	Bytes  int64          // approximate input bytes consumed, for progress and memory accounting
}

var (
	registryMu sync.RWMutex
	lineFmts   = map[string]Factory{}
	streamFmts = map[string]StreamFormat{}
)

// Register makes a line format available by name. It panics on a duplicate,
// which is a programming error.
func Register(format string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := lineFmts[format]; dup {
		panic("parsers: duplicate format " + format)
	}
	lineFmts[format] = f
}

// RegisterStream makes a stream format available by name.
func RegisterStream(format string, f StreamFormat) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := streamFmts[format]; dup {
		panic("parsers: duplicate stream format " + format)
	}
	streamFmts[format] = f
}

// Lookup returns the factory of a line format.
func Lookup(format string) (Factory, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := lineFmts[format]
	return f, ok
}

// LookupStream returns a stream format.
func LookupStream(format string) (StreamFormat, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := streamFmts[format]
	return f, ok
}

// Formats lists every registered format name, sorted.
func Formats() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var out []string
	for k := range lineFmts {
		out = append(out, k)
	}
	for k := range streamFmts {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
