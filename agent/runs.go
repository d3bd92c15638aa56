package agent

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// kind is the endpoint a batch goes to.
type kind uint8

const (
	kMetrics kind = iota // /ingest/metrics: deduplicated by the server
	kData                // /ingest/data
	kLogs                // /ingest/logs
	kFiles               // /files + PUT
	nKinds
)

var kindNames = [nKinds]string{"metrics", "data", "logs", "files"}

func (k kind) String() string { return kindNames[k] }

// idempotent reports whether the server deduplicates re-sent lines.
func (k kind) idempotent() bool { return k == kMetrics }

// fileItem is one file waiting for upload.
type fileItem struct {
	path    string
	logName string
	logType string
	step    int64
	time    int64
	caption string
}

// streamMark is the newest non-idempotent event of one stream in a batch.
type streamMark struct {
	s *streamState
	m checkpoint.Mark
}

// batch is one request's worth of lines for one run and endpoint.
type batch struct {
	kind    kind
	run     *runState
	body    []byte
	lines   int
	points  int
	files   []fileItem
	refs    refs
	marks   []streamMark
	nameGen uint64 // the run's log names up to this generation must be registered first
	newest  int64  // newest event time in the batch
	// charged is what the batch counts against the memory budget.
	charged int64
	// parent is the batch this one was split from; the parent's references
	// are released when all its children are done.
	parent   *batch
	children atomic.Int32
}

func (b *batch) addMark(s *streamState, m checkpoint.Mark) {
	for i := range b.marks {
		if b.marks[i].s == s {
			if b.marks[i].m.Less(m) {
				b.marks[i].m = m
			}
			return
		}
	}
	b.marks = append(b.marks, streamMark{s: s, m: m})
}

// runState is one mlop run the agent feeds. Fields below mu are guarded by
// it; the identity fields above it are set before the run is shared.
type runState struct {
	key     string // external id: the identity on the server
	project string
	source  string

	mu sync.Mutex

	name      string
	info      event.RunInfo // identity and fork, from the source
	createdAt int64         // time of the first event, unix ms
	runID     int64
	url       string
	created   bool          // created (or resumed) in this process and not finished since
	broken    error         // the server refused to create it; its data is dropped
	savedIn   atomic.Uint64 // generation of the last checkpoint save that wrote its entry

	// Partial batches being filled, and cut batches waiting to be sent.
	open     [nKinds]*batch
	queue    [nKinds][]*batch
	inflight [nKinds]int
	lingered bool // on the agent's linger list
	// dataPaused holds batches back after a routing fault (pauseData).
	dataPaused bool

	// Log names: every name seen, and those not yet registered by log type.
	names   nameSet // log names seen, and points (metrics) or rows routed per name
	unreg   map[string][]string
	nameGen uint64
	regGen  uint64

	cfgInitial  map[string]any // config sent with the first create
	cfgSource   *sourceRT      // the source whose config_files feed the run (nil: none)
	cfgPath     string         // the metric file the config_files globs are relative to
	cfgSig      string         // signature of the config files last read
	idleTimeout time.Duration  // follow mode: finish after this long without data (<0 never)

	tags       []string // the full tag set as the agent believes it is
	tagsDirty  bool
	tagRefs    refs
	cfgDelta   map[string]any
	cfgRefs    refs
	finish     string // status to set once everything before it is delivered
	finishAt   int64
	finishRefs refs
	explicit   bool   // the source set the final status itself
	finished   string // the final status sent, "" while running
	// finishInFlight is set while the final status request is being sent,
	// so a backfill's end or an idle timeout does not arm a second one.
	finishInFlight bool
	waitParent     bool // creation waits for the fork parent to be created

	controlBusy bool

	// barrier is the checkpoint save generation a non-idempotent send must
	// wait for: the previous one's marks must be durable first, which bounds
	// duplicates after a crash to the one batch that was in flight.
	barrier uint64

	lastTime     int64     // newest event time seen, unix ms
	lastActivity time.Time // when the run last received an event
	lastBeat     time.Time
	cancelled    bool // the server answered a heartbeat with CANCELLED
	touched      bool // received events in this process
	points       int64

	files int64 // files routed for upload

	enc      []byte // the persisted view as last encoded
	encDirty bool   // the persisted view changed since
}

// dataPending reports whether data (not control) work remains. Called with
// mu held.
func (r *runState) dataPending() bool {
	for k := kind(0); k < nKinds; k++ {
		if r.open[k] != nil || len(r.queue[k]) > 0 || r.inflight[k] > 0 {
			return true
		}
	}
	return false
}

// mayFinish reports whether a final status may be armed now: the run is
// up, not finished, not refused, and no finish is armed or in flight.
// Called with mu held.
func (r *runState) mayFinish() bool {
	return r.created && r.finished == "" && r.finish == "" && !r.finishInFlight && r.broken == nil
}

// busy reports whether anything of the run is buffered, queued or in
// flight, control included. Called with mu held.
func (r *runState) busy() bool {
	return r.dataPending() || r.tagsDirty || len(r.cfgDelta) > 0 || len(r.unreg) > 0 ||
		r.controlBusy || r.finish != "" || (!r.created && r.broken == nil && r.touched)
}

// checkpointRun is the persisted view of the run. Called with mu held.
func (r *runState) checkpointRun() checkpoint.Run {
	status := event.StatusRunning
	if r.finished != "" {
		status = r.finished
	}
	return checkpoint.Run{
		ExternalID: r.key, Project: r.project, Name: r.name, RunID: r.runID, URL: r.url,
		Source: r.source, Tags: append([]string(nil), r.tags...), Status: status,
		CreatedAt: r.createdAt, LastTime: r.lastTime,
	}
}

// Tag limits of the server (mlop-api.md §2.5): a run holds at most maxTags
// tags and at most one "group:" tag; a create or tags/update beyond them is
// refused as a whole.
const (
	maxTags     = 50
	groupPrefix = "group:"
)

// addTags adds and removes tags, keeping order and uniqueness, and reports
// whether the set changed. Additions the server would refuse — beyond
// maxTags, or a second group: tag — are not made and are returned, so the
// caller reports them and the rest of the run goes on. Called with mu held.
func (r *runState) addTags(add, remove []string) (changed bool, refused []string) {
	for _, t := range add {
		found, groups := false, 0
		for _, have := range r.tags {
			if have == t {
				found = true
				break
			}
			if strings.HasPrefix(have, groupPrefix) {
				groups++
			}
		}
		switch {
		case found:
		case len(r.tags) >= maxTags, strings.HasPrefix(t, groupPrefix) && groups > 0:
			refused = append(refused, t)
		default:
			r.tags = append(r.tags, t)
			changed = true
		}
	}
	for _, t := range remove {
		for i, have := range r.tags {
			if have == t {
				r.tags = append(r.tags[:i:i], r.tags[i+1:]...)
				changed = true
				break
			}
		}
	}
	return changed, refused
}

// tagsRefusedError says why tags were not added.
func tagsRefusedError(refused []string) error {
	return fmt.Errorf("%w: %d tag(s) not added (%s): a run holds at most %d tags and one %q tag",
		parsers.ErrBadValue, len(refused), strings.Join(refused, ", "), maxTags, groupPrefix)
}

// deepMerge merges src into dst the way the server merges config: objects
// key by key, anything else replaced.
func deepMerge(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = deepMerge(dm, sm)
				continue
			}
			dst[k] = deepMerge(nil, sm)
			continue
		}
		dst[k] = v
	}
	return dst
}
