package agent

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
)

// chunk is one unit of reading from a stream (one read of a file, one Next
// of a stream format). Every piece of work its events create holds a
// reference to it; the stream's checkpoint may move to the chunk's end once
// it and every chunk before it have no references left. Commits therefore
// never pass a record whose events were not acknowledged.
type chunk struct {
	end     event.Position
	line    int64
	marker  string
	markerN int
	state   []byte // parser state after the chunk
	size    int64  // file size when read
	bytes   int64  // bytes of input, for progress
	readAt  time.Time
	newest  int64        // newest event time in the chunk, unix ms
	ss      *streamState // set by push
	refs    atomic.Int64
	// recs are the chunk's records while its events are routed (line
	// sources; nil otherwise and afterwards), for the line and text of a
	// record found bad then. Their Data alias the reader's buffer.
	recs []event.Record
}

// record finds the record an event at pos came from, while routing.
func (c *chunk) record(pos event.Position) (event.Record, bool) {
	i := sort.Search(len(c.recs), func(i int) bool { return !c.recs[i].Pos.Less(pos) })
	if i < len(c.recs) && c.recs[i].Pos == pos {
		return c.recs[i], true
	}
	return event.Record{}, false
}

// lineOf is the line of the record at pos (the position's sequence number
// for stream formats, 0 when unknown).
func (c *chunk) lineOf(pos event.Position) int64 {
	if rec, ok := c.record(pos); ok {
		return rec.Line
	}
	return pos.Seq
}

// dataOf is a copy of the record at pos, for the dead-letter file.
func (c *chunk) dataOf(pos event.Position) []byte {
	if rec, ok := c.record(pos); ok {
		return append([]byte(nil), rec.Data...)
	}
	return nil
}

// ref counts how many references a piece of work holds on one chunk.
type ref struct {
	c *chunk
	n int64
}

// refs is a run-length list of chunk references held by one piece of work
// (a batch, a control operation).
type refs []ref

// add takes one reference on c.
func (r *refs) add(c *chunk) {
	c.refs.Add(1)
	if n := len(*r); n > 0 && (*r)[n-1].c == c {
		(*r)[n-1].n++
		return
	}
	*r = append(*r, ref{c: c, n: 1})
}

// merge moves the references of o into r.
func (r *refs) merge(o refs) {
	for _, x := range o {
		if n := len(*r); n > 0 && (*r)[n-1].c == x.c {
			(*r)[n-1].n += x.n
			continue
		}
		*r = append(*r, x)
	}
}

// release drops every reference, and wakes a reader waiting for its
// stream's window when a chunk becomes free.
func (r refs) release() {
	for _, x := range r {
		if x.c.refs.Add(-x.n) == 0 && x.c.ss != nil && x.c.ss.waiters.Load() > 0 {
			x.c.ss.mu.Lock()
			x.c.ss.cond.Broadcast()
			x.c.ss.mu.Unlock()
		}
	}
}

// streamState is the agent's record of one stream: its identity, the chunks
// read but not yet committed, and what has been committed. The reader
// goroutine appends chunks; the checkpointer pops them.
type streamState struct {
	key     string
	source  string
	format  string
	path    string
	runPath string

	mu           sync.Mutex
	cond         *sync.Cond   // signalled when pending shrinks; guarded by mu
	pending      []*chunk     // read, not committed, in order
	pendingBytes int64        // input bytes of pending
	enc          []byte       // the committed entry as last encoded for the state file
	waiters      atomic.Int32 // readers blocked in waitWindow
	committed    checkpoint.Stream
	dirty        bool // committed changed since the last save
	closed       bool // no more chunks will come (the reader finished with it)

	// sent marks, per run, the last non-idempotent event delivered. Guarded
	// by mu; updated by senders, saved by the checkpointer.
	sent map[string]checkpoint.Mark
	// lastTime is the newest point time acknowledged (unix ms).
	lastTime atomic.Int64
	// defaultRun and runs cache the runs this stream feeds; only the
	// stream's reader goroutine touches them.
	defaultRun *runState
	runs       map[string]*runState
	// runSet indexes committed.Runs (guarded by mu).
	runSet map[checkpoint.RunRef]struct{}
	// doneWhenIdle marks a stream that left its path (rotated, deleted):
	// once everything read from it is committed it is saved as done.
	doneWhenIdle bool
	// Stream formats: the signature of the data, set when the stream was
	// discovered; complete is set once a backfill read it to the end, and the
	// entry is saved as done when everything is committed.
	signature string
	complete  bool
	linesDone bool // line files: the reader closed the file (progress only)
	// warnings counts what the stream format skipped, by reason; failed is
	// why the stream stopped early. Both guarded by mu; for the report.
	warnings map[string]int
	failed   string
	// firstCommit is closed when the stream first commits or finishes;
	// fork children wait on their parent's.
	firstCommit chan struct{}
	firstOnce   sync.Once
	// doneCh is closed once a stream-format stream was read to its end (or
	// failed) and everything it produced is committed. In a backfill a
	// fork's stream waits for its parent's: the server refuses a fork step
	// beyond the parent's last stored step.
	doneCh   chan struct{}
	doneOnce sync.Once
	// skipBefore holds the marks loaded at start: non-idempotent events at
	// or before them were delivered before a crash and are not re-sent.
	skipBefore map[string]checkpoint.Mark
}

func newStreamState(cp checkpoint.Stream) *streamState {
	s := &streamState{
		key:         cp.Key,
		source:      cp.Source,
		path:        cp.Path,
		runPath:     cp.RunPath,
		committed:   cp,
		firstCommit: make(chan struct{}),
		doneCh:      make(chan struct{}),
	}
	if len(cp.Sent) > 0 {
		s.sent = make(map[string]checkpoint.Mark, len(cp.Sent))
		s.skipBefore = make(map[string]checkpoint.Mark, len(cp.Sent))
		for k, v := range cp.Sent {
			s.sent[k] = v
			s.skipBefore[k] = v
		}
	}
	s.lastTime.Store(cp.LastTime)
	s.cond = sync.NewCond(&s.mu)
	s.dirty = true
	return s
}

// lag returns how far the stream is behind: the file size minus the
// committed offset (line files), and the age of its oldest uncommitted
// chunk.
func (s *streamState) lag(now time.Time) (path string, bytes int64, oldest time.Time) {
	s.mu.Lock()
	path, off := s.path, s.committed.Pos.Offset
	if len(s.pending) > 0 {
		oldest = s.pending[0].readAt
	}
	fp := s.committed.Fingerprint
	done := s.doneWhenIdle
	s.mu.Unlock()
	if fp != "" && !done {
		if fi, err := os.Stat(path); err == nil && fi.Size() > off {
			bytes = fi.Size() - off
		}
	}
	return path, bytes, oldest
}

// currentPath is where the stream was last seen.
func (s *streamState) currentPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// noteRun remembers that the stream feeds a run.
func (s *streamState) noteRun(ref checkpoint.RunRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runSet == nil {
		// A file feeding twenty thousand runs (run_field) must not scan
		// the list for each new one.
		s.runSet = make(map[checkpoint.RunRef]struct{}, len(s.committed.Runs)+1)
		for _, have := range s.committed.Runs {
			s.runSet[have] = struct{}{}
		}
	}
	if _, ok := s.runSet[ref]; ok {
		return
	}
	s.runSet[ref] = struct{}{}
	s.committed.Runs = append(s.committed.Runs, ref)
	s.dirty = true
}

// runRefs returns the runs the stream feeds.
func (s *streamState) runRefs() []checkpoint.RunRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]checkpoint.RunRef(nil), s.committed.Runs...)
}

// push records a chunk whose events are being dispatched. The caller holds
// one reference of its own until dispatch is complete.
func (s *streamState) push(c *chunk) {
	c.readAt = time.Now()
	c.ss = s
	s.mu.Lock()
	s.pending = append(s.pending, c)
	s.pendingBytes += c.bytes
	s.mu.Unlock()
}

// waitWindow blocks while the stream has more than limit input bytes read
// but not committed. It bounds how much acknowledged data can pile up
// behind one slow batch, and so how much a crash can make the agent send
// again.
func (s *streamState) waitWindow(ctx context.Context, limit int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	if s.pendingBytes <= limit || len(s.pending) == 0 {
		return nil
	}
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	for {
		s.advanceLocked()
		if s.pendingBytes <= limit || len(s.pending) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s.cond.Wait()
	}
}

// advance pops the leading chunks that have no references left and moves
// the committed position to the last of them. It reports whether it moved.
func (s *streamState) advance() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.advanceLocked()
}

// advanceLocked is advance with mu held.
func (s *streamState) advanceLocked() bool {
	i := 0
	for ; i < len(s.pending); i++ {
		if s.pending[i].refs.Load() != 0 {
			break
		}
	}
	if i == 0 {
		return false
	}
	for _, done := range s.pending[:i] {
		if done.newest > s.lastTime.Load() {
			s.lastTime.Store(done.newest)
		}
	}
	c := s.pending[i-1]
	s.committed.Pos = c.end
	s.committed.Line = c.line
	if c.markerN > 0 {
		s.committed.Marker, s.committed.MarkerLen = c.marker, c.markerN
	}
	s.committed.ParserState = c.state
	if c.size > 0 {
		s.committed.Size = c.size
	}
	s.firstOnce.Do(func() { close(s.firstCommit) })
	for _, done := range s.pending[:i] {
		s.pendingBytes -= done.bytes
	}
	clear(s.pending[:i])
	s.pending = s.pending[i:]
	s.dirty = true
	s.cond.Broadcast()
	s.noteDoneLocked()
	return true
}

// noteDoneLocked closes doneCh once the stream is finished. Called with mu
// held.
func (s *streamState) noteDoneLocked() {
	if (s.complete || s.failed != "") && len(s.pending) == 0 {
		s.doneOnce.Do(func() { close(s.doneCh) })
	}
}

// finished reports whether a stream-format stream has been read to the end
// and everything it produced is committed.
func (s *streamState) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return (s.complete || s.linesDone || s.failed != "") && len(s.pending) == 0
}

// idle reports whether every chunk read so far has been committed.
func (s *streamState) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) == 0
}

// markSent records that the non-idempotent event m of run was delivered.
func (s *streamState) markSent(run string, m checkpoint.Mark) {
	s.mu.Lock()
	if s.sent == nil {
		s.sent = map[string]checkpoint.Mark{}
	}
	if cur, ok := s.sent[run]; !ok || cur.Less(m) {
		s.sent[run] = m
		s.dirty = true
	}
	s.mu.Unlock()
}

// alreadySent reports whether a non-idempotent event was delivered before
// the agent restarted.
func (s *streamState) alreadySent(run string, m checkpoint.Mark) bool {
	if len(s.skipBefore) == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.skipBefore[run]
	return ok && !last.Less(m)
}

// encoded returns the committed entry encoded for the state file, and
// whether it changed since the last call.
func (s *streamState) encoded() ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty && s.enc != nil {
		return s.enc, false, nil
	}
	cp := s.snapshotLocked()
	b, err := json.Marshal(cp)
	if err != nil {
		return nil, false, err
	}
	s.enc, s.dirty = b, false
	return b, true, nil
}

// snapshotLocked returns the committed entry. Called with mu held.
func (s *streamState) snapshotLocked() checkpoint.Stream {
	cp := s.committed
	cp.Key, cp.Source, cp.Path, cp.RunPath = s.key, s.source, s.path, s.runPath
	if len(s.sent) > 0 {
		cp.Sent = make(map[string]checkpoint.Mark, len(s.sent))
		for k, v := range s.sent {
			cp.Sent[k] = v
		}
	} else {
		cp.Sent = nil
	}
	cp.LastTime = s.lastTime.Load()
	if s.doneWhenIdle && len(s.pending) == 0 {
		cp.Done = true
	}
	if s.complete && len(s.pending) == 0 && s.failed == "" {
		cp.Done, cp.Signature = true, s.signature
	}
	cp.Updated = time.Now().UTC()
	return cp
}
