package agent

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlop-ai/mlop-agent/agent/ledger"
	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/sink"
)

// run is one tracker run the agent feeds. key, project and source are fixed
// when it is made; everything else is guarded by mu, which is taken by the
// goroutine routing events to it, the sender running its jobs, and the
// lifecycle loop. While holding mu a goroutine may call into the ledger
// (stream locks come after run locks), never take another run's mu.
type run struct {
	key     string // external id: the identity on the tracker
	project string
	source  string

	mu sync.Mutex

	name      string
	info      event.RunInfo // identity and fork, from the source
	createdAt int64         // time of the first event, unix ms

	srv   trackerRun // what the tracker knows of it
	out   outbox     // its batches
	ctl   control    // its control operations
	live  liveness   // heartbeats and idleness
	names nameSet    // log names seen

	points, rows, files int64 // routed, for the report: metric points, data and log rows, files
	// ckDirty is set when the persisted view (checkpoint.Run) changed.
	ckDirty bool
}

// trackerRun is the run as the tracker has it.
type trackerRun struct {
	id      int64
	url     string
	created bool  // created (or resumed) in this process and not finished since
	broken  error // the tracker refused to create it; its data is dead-lettered
}

// outbox holds a run's batches: the partial one of each endpoint, those cut
// and waiting, and how many are in flight.
type outbox struct {
	open     [sink.NumEndpoints]*batch
	queue    [sink.NumEndpoints][]*batch
	inflight [sink.NumEndpoints]int
	lingered bool // on the agent's linger list
	paused   bool // held back after a routing fault (pauseData)
	// barrier is the save generation the next send waits for: what the
	// tracker acknowledged must be durably checkpointed first, so a crash
	// re-sends little (docs/design.md §2).
	barrier       uint64
	awaitingSave  bool // a wake-up is registered for the barrier
	metricsQueued bool // more metric batches wait (catching up)
}

// control holds a run's control operations (create, log names, config,
// tags, final status), run one at a time and in that order.
type control struct {
	busy       bool // a control job is queued or running
	waitParent bool // creation waits for the fork parent to be created

	unreg   []sink.Name // names not yet registered
	nameGen uint64      // generation of the newest name noted
	regGen  uint64      // names up to this generation are registered

	cfgInitial map[string]any // config sent with the first create
	cfgFiles   *configFiles   // the run.config_files that feed it (nil: none)

	tags      []string // the full tag set as the agent believes it is
	tagsDirty bool
	tagRefs   ledger.Refs
	cfgDelta  map[string]any
	cfgRefs   ledger.Refs

	finish         string // status to set once everything before it is delivered
	finishAt       int64
	finishRefs     ledger.Refs
	finishInFlight bool   // the final status request is being sent
	explicit       bool   // the source set the final status itself
	finished       string // the final status sent, "" while running
}

// liveness is what the lifecycle loop needs.
type liveness struct {
	idleTimeout  time.Duration // follow mode: finish after this long without data (<0 never)
	lastTime     int64         // newest event time, unix ms
	lastActivity time.Time     // when the run last received an event
	lastBeat     time.Time
	cancelled    bool // the tracker answered a heartbeat with CANCELLED
	touched      bool // received events in this process
}

// configFiles are the sidecar config files of a run (run.config_files).
type configFiles struct {
	src  *sourceRT
	path string // the metric file the globs are relative to
	sig  string // signature of the files last read
}

// batch is one request's worth of rows for one run and endpoint: the
// sink's body and the agent's bookkeeping around it.
type batch struct {
	ep      sink.Endpoint
	b       sink.Batch
	refs    ledger.Refs
	marks   []streamMark
	nameGen uint64 // the run's names up to this generation are registered first
	newest  int64  // newest event time in the batch
	charged int64  // what the batch counts against the memory budget
	// parent is the batch this one was split from; the parent's references
	// are released when all its children are done.
	parent   *batch
	children atomic.Int32
}

// streamMark is the newest non-idempotent event of one stream in a batch.
type streamMark struct {
	s *ledger.Stream
	m checkpoint.Mark
}

func (b *batch) addMark(s *ledger.Stream, m checkpoint.Mark) {
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

// dataPending reports whether data (not control) work remains. Called with
// mu held.
func (r *run) dataPending() bool {
	for ep := range sink.NumEndpoints {
		if r.out.open[ep] != nil || len(r.out.queue[ep]) > 0 || r.out.inflight[ep] > 0 {
			return true
		}
	}
	return false
}

// busy reports whether anything of the run is buffered, queued or in
// flight, control included. Called with mu held.
func (r *run) busy() bool {
	c := &r.ctl
	return r.dataPending() || c.tagsDirty || len(c.cfgDelta) > 0 || len(c.unreg) > 0 ||
		c.busy || c.finish != "" || (!r.srv.created && r.srv.broken == nil && r.live.touched)
}

// mayFinish reports whether a final status may be armed now: the run is
// up, not finished, not refused, and no finish is armed or in flight.
// Called with mu held.
func (r *run) mayFinish() bool {
	c := &r.ctl
	return r.srv.created && c.finished == "" && c.finish == "" && !c.finishInFlight && r.srv.broken == nil
}

// active reports whether the run is open on the tracker. Called with mu
// held.
func (r *run) active() bool { return r.srv.created && r.ctl.finished == "" && r.srv.broken == nil }

// checkpointRun is the persisted view of the run. Called with mu held.
func (r *run) checkpointRun() checkpoint.Run {
	status := event.StatusRunning
	if r.ctl.finished != "" {
		status = r.ctl.finished
	}
	return checkpoint.Run{
		ExternalID: r.key, Project: r.project, Name: r.name, RunID: r.srv.id, URL: r.srv.url,
		Source: r.source, Tags: append([]string(nil), r.ctl.tags...), Status: status,
		CreatedAt: r.createdAt, LastTime: r.live.lastTime,
	}
}

// addTags adds and removes tags, keeping order and uniqueness, and reports
// whether the set changed. Additions the tracker would refuse (beyond
// lim.MaxTags, or more group tags than it allows) are not made and are
// returned, so the caller reports them and the rest of the run goes on.
// Called with mu held.
func (r *run) addTags(lim sink.Limits, add, remove []string) (changed bool, refused []string) {
	for _, t := range add {
		found, groups := false, 0
		for _, have := range r.ctl.tags {
			if have == t {
				found = true
				break
			}
			if lim.GroupTagPrefix != "" && strings.HasPrefix(have, lim.GroupTagPrefix) {
				groups++
			}
		}
		group := lim.GroupTagPrefix != "" && strings.HasPrefix(t, lim.GroupTagPrefix)
		switch {
		case found:
		case lim.MaxTags > 0 && len(r.ctl.tags) >= lim.MaxTags, group && lim.MaxGroupTags > 0 && groups >= lim.MaxGroupTags:
			refused = append(refused, t)
		default:
			r.ctl.tags = append(r.ctl.tags, t)
			changed = true
		}
	}
	for _, t := range remove {
		for i, have := range r.ctl.tags {
			if have == t {
				r.ctl.tags = append(r.ctl.tags[:i:i], r.ctl.tags[i+1:]...)
				changed = true
				break
			}
		}
	}
	return changed, refused
}

// tagsRefusedError says why tags were not added.
func tagsRefusedError(lim sink.Limits, refused []string) error {
	return fmt.Errorf("%w: %d tag(s) not added (%s): a run holds at most %d tags and %d %q tag",
		parsers.ErrBadValue, len(refused), strings.Join(refused, ", "), lim.MaxTags, lim.MaxGroupTags, lim.GroupTagPrefix)
}

// deepMerge merges src into dst the way the tracker merges config: objects
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

// runKey is a run's key in the run table.
func runKey(project, externalID string) string { return project + "\x00" + externalID }

// runTable holds the runs of this process, the runs the checkpoint knows,
// and the forks waiting for their parent. It owns its lock, which is a
// leaf: nothing else is locked while holding it.
type runTable struct {
	mu          sync.Mutex
	runs        map[string]*run
	known       map[string]checkpoint.Run
	forkWaiters map[string][]*run
}

func newRunTable(known []checkpoint.Run) *runTable {
	t := &runTable{runs: map[string]*run{}, known: map[string]checkpoint.Run{}, forkWaiters: map[string][]*run{}}
	for _, r := range known {
		t.known[runKey(r.Project, r.ExternalID)] = r
	}
	return t
}

// get returns the run with key k and what the checkpoint knows of it.
func (t *runTable) get(k string) (*run, checkpoint.Run, bool, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.runs[k]
	kr, known := t.known[k]
	return r, kr, ok, known
}

// add inserts r unless a run with its key was added meanwhile, which it
// returns instead.
func (t *runTable) add(r *run) *run {
	k := runKey(r.project, r.key)
	t.mu.Lock()
	defer t.mu.Unlock()
	if have, ok := t.runs[k]; ok {
		return have
	}
	t.runs[k] = r
	return r
}

// list appends the runs of this process to dst.
func (t *runTable) list(dst []*run) []*run {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.runs {
		dst = append(dst, r)
	}
	return dst
}

// addForkWaiter parks a fork until its parent is created.
func (t *runTable) addForkWaiter(parentKey string, r *run) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forkWaiters[parentKey] = append(t.forkWaiters[parentKey], r)
}

// takeForkWaiters returns and forgets the forks waiting for a parent.
func (t *runTable) takeForkWaiters(parentKey string) []*run {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.forkWaiters[parentKey]
	delete(t.forkWaiters, parentKey)
	return w
}
