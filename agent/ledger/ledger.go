// Package ledger is the agent's delivery ledger: for every stream (a file
// generation, a Neptune run, a TensorBoard run) what was read and is not yet
// acknowledged, and what is committed — the position the checkpoint may
// record. It owns the rules of docs/design.md §2:
//
//   - contiguity: every piece of work made from a chunk (a batch row, a tag
//     or config change, a final status) holds a reference on it; a stream's
//     committed position moves to the end of a chunk only when that chunk
//     and every chunk before it hold no references;
//   - sent marks: for rows the tracker does not deduplicate, the last one
//     acknowledged per run, saved with the checkpoint, so a restart does not
//     send them again;
//   - the durability barrier: save generations, so a run sends its next
//     non-idempotent batch only after the save that records the previous
//     one's mark is durable;
//   - the window: how much a stream may have read but not committed.
//
// The ledger never decides what to send, never talks to a tracker and
// never touches the disk; it hands the checkpoint saver snapshots
// (checkpoint.Stream values) and is told when a save is durable.
//
// Locks: Ledger.mu guards the stream table and the unclaimed checkpoint
// entries; each Stream has its own mu; durable waiters have durMu. Lock
// order: Ledger.mu before Stream.mu; no ledger lock is held while calling
// out (OnDurable callbacks run with no lock held). Callers may hold their own
// locks (a run's) while calling into a Stream, never the reverse.
package ledger

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
)

// Ledger is the delivery bookkeeping of every stream of one agent.
type Ledger struct {
	now func() time.Time

	mu      sync.Mutex
	streams map[string]*Stream
	loaded  map[string]checkpoint.Stream // checkpointed streams not claimed yet

	saveStarted atomic.Uint64 // generation of the last save begun
	saveGen     atomic.Uint64 // generation of the last durable save
	durMu       sync.Mutex
	waiters     []durableWaiter
}

type durableWaiter struct {
	gen uint64
	fn  func()
}

// New makes a ledger over the streams of a loaded checkpoint; now is the
// clock (nil: time.Now).
func New(loaded []checkpoint.Stream, now func() time.Time) *Ledger {
	if now == nil {
		now = time.Now
	}
	l := &Ledger{now: now, streams: map[string]*Stream{}, loaded: map[string]checkpoint.Stream{}}
	for _, s := range loaded {
		l.loaded[s.Key] = s
	}
	return l
}

// Claim returns the stream with this key, from the checkpoint when it was
// seen before, else new; path is where it is now, runPath where it was
// first seen (run names derive from it). Claiming a claimed stream returns
// it with its path updated.
func (l *Ledger) Claim(key, source, path, runPath string) *Stream {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.streams[key]; ok {
		s.mu.Lock()
		if s.entry.Path != path {
			s.entry.Path, s.dirty = path, true
		}
		s.mu.Unlock()
		return s
	}
	cp, ok := l.loaded[key]
	if ok {
		delete(l.loaded, key)
	} else {
		cp = checkpoint.Stream{Key: key, Source: source, Path: path, RunPath: runPath}
	}
	if cp.RunPath == "" {
		cp.RunPath = runPath
	}
	cp.Path = path
	s := newStream(cp, l.now)
	l.streams[key] = s
	return s
}

// Known lists the checkpointed streams of a source not claimed yet, by key
// (the watcher matches files against them on start).
func (l *Ledger) Known(source string) []checkpoint.Stream {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []checkpoint.Stream
	for _, s := range l.loaded {
		if s.Source == source {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Streams returns the claimed streams, in no particular order.
func (l *Ledger) Streams() []*Stream {
	return l.AppendStreams(nil)
}

// AppendStreams appends the claimed streams to dst (the saver reuses its
// slice: an idle agent with 10,000 files must not allocate per save).
func (l *Ledger) AppendStreams(dst []*Stream) []*Stream {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.streams {
		dst = append(dst, s)
	}
	return dst
}

// Claimed reports whether a stream was claimed in this process.
func (l *Ledger) Claimed(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.streams[key]
	return ok
}

// The durability barrier. A save is numbered when it begins; everything
// recorded in the ledger before BeginSave returns is in that save.

// NextSave returns the generation of the first save that will include
// everything recorded so far: once it is durable, so is what the caller
// just recorded (a sent mark, a commit).
func (l *Ledger) NextSave() uint64 { return l.saveStarted.Load() + 1 }

// BeginSave numbers a save that is about to snapshot the streams. Saves
// must be serialised by the caller.
func (l *Ledger) BeginSave() uint64 { return l.saveStarted.Add(1) }

// SaveDurable records that save gen is on disk (or that nothing needed
// writing), and runs the callbacks waiting for it, with no lock held.
func (l *Ledger) SaveDurable(gen uint64) {
	for {
		cur := l.saveGen.Load()
		if gen <= cur || l.saveGen.CompareAndSwap(cur, gen) {
			break
		}
	}
	durable := l.saveGen.Load()
	l.durMu.Lock()
	var due []func()
	keep := l.waiters[:0]
	for _, w := range l.waiters {
		if w.gen <= durable {
			due = append(due, w.fn)
		} else {
			keep = append(keep, w)
		}
	}
	clear(l.waiters[len(keep):])
	l.waiters = keep
	l.durMu.Unlock()
	for _, fn := range due {
		fn()
	}
}

// Durable reports whether save gen is on disk.
func (l *Ledger) Durable(gen uint64) bool { return gen <= l.saveGen.Load() }

// OnDurable runs fn once save gen is durable: at once (on this goroutine)
// if it is, else from SaveDurable. It reports whether fn ran now.
func (l *Ledger) OnDurable(gen uint64, fn func()) bool {
	l.durMu.Lock()
	if gen > l.saveGen.Load() {
		l.waiters = append(l.waiters, durableWaiter{gen: gen, fn: fn})
		l.durMu.Unlock()
		return false
	}
	l.durMu.Unlock()
	fn()
	return true
}

// Stream is the delivery record of one stream: the chunks read but not
// committed, in order, and the committed entry the checkpoint saves. The
// reader goroutine pushes chunks; senders release references and record
// sent marks; the saver advances and snapshots.
type Stream struct {
	now func() time.Time

	mu           sync.Mutex
	cond         *sync.Cond // signalled when pending shrinks
	entry        checkpoint.Stream
	pending      []*Chunk
	pendingBytes int64
	dirty        bool // entry changed since the last snapshot
	waiters      atomic.Int32
	runSet       map[checkpoint.RunRef]struct{}
	// sent holds the marks of this process; skipBefore those loaded at
	// start (events at or before them were delivered before a crash).
	sent, skipBefore map[string]checkpoint.Mark
	lastTime         int64 // newest point time committed, unix ms

	// Lifecycle: closed (a line file the reader let go: read to the end,
	// rotated or deleted; leftWhenDone when it left its path), complete (a
	// stream format read to its end at signature), failed (why it stopped
	// early).
	closed, leftPath bool
	complete         bool
	signature        string
	failed           string

	firstCommit chan struct{} // closed at the first commit, or when finished
	firstOnce   sync.Once
	doneCh      chan struct{} // closed when finished and everything committed
	doneOnce    sync.Once
}

func newStream(cp checkpoint.Stream, now func() time.Time) *Stream {
	s := &Stream{now: now, entry: cp, lastTime: cp.LastTime, dirty: true,
		firstCommit: make(chan struct{}), doneCh: make(chan struct{})}
	if len(cp.Sent) > 0 {
		s.sent = make(map[string]checkpoint.Mark, len(cp.Sent))
		s.skipBefore = make(map[string]checkpoint.Mark, len(cp.Sent))
		for k, v := range cp.Sent {
			s.sent[k] = v
			s.skipBefore[k] = v
		}
	}
	s.entry.Sent = nil // rebuilt from sent by each snapshot
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Key returns the stream's key.
func (s *Stream) Key() string { return s.entry.Key }

// Entry returns a copy of the committed entry (for status and restarts).
func (s *Stream) Entry() checkpoint.Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entry
}

// Path returns where the stream was last seen.
func (s *Stream) Path() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entry.Path
}

// Chunk is one unit of reading (the lines of one read of a file, one Next
// of a stream format) and what committing it means. Every piece of work its
// events create holds a reference (Refs.Add); the pusher holds one until
// its events are dispatched.
type Chunk struct {
	End    event.Position // resume position after the chunk
	Line   int64          // lines up to End (line files)
	File   event.FileMark // the file's identity and the marker before End (line files)
	Path   string         // where the file was when read ("" for stream formats)
	State  []byte         // parser state after the chunk
	Size   int64          // file size when read (0: unknown)
	Bytes  int64          // input bytes, for the window and progress
	Newest int64          // newest event time in the chunk, unix ms (set while routing)

	readAt time.Time
	s      *Stream
	refs   atomic.Int64
}

// Push records a chunk whose events are being dispatched; the caller holds
// one reference until dispatch is done (Release).
func (s *Stream) Push(c *Chunk) {
	c.readAt = s.now()
	c.s = s
	c.refs.Store(1)
	s.mu.Lock()
	s.pending = append(s.pending, c)
	s.pendingBytes += c.Bytes
	s.mu.Unlock()
}

// Release drops the pusher's reference (or any single one).
func (c *Chunk) Release() { c.release(1) }

func (c *Chunk) release(n int64) {
	if c.refs.Add(-n) == 0 && c.s != nil && c.s.waiters.Load() > 0 {
		c.s.mu.Lock()
		c.s.cond.Broadcast()
		c.s.mu.Unlock()
	}
}

// Refs is a run-length list of chunk references held by one piece of work
// (a batch, a control operation). The zero value is empty.
type Refs []ref

type ref struct {
	c *Chunk
	n int64
}

// Add takes one reference on c.
func (r *Refs) Add(c *Chunk) {
	c.refs.Add(1)
	if n := len(*r); n > 0 && (*r)[n-1].c == c {
		(*r)[n-1].n++
		return
	}
	*r = append(*r, ref{c: c, n: 1})
}

// Merge moves the references of o into r.
func (r *Refs) Merge(o Refs) {
	for _, x := range o {
		if n := len(*r); n > 0 && (*r)[n-1].c == x.c {
			(*r)[n-1].n += x.n
			continue
		}
		*r = append(*r, x)
	}
}

// Release drops every reference, waking a reader waiting for its stream's
// window when a chunk becomes free.
func (r Refs) Release() {
	for _, x := range r {
		x.c.release(x.n)
	}
}

// WaitWindow blocks while the stream has more than limit input bytes read
// but not committed. It bounds how much acknowledged data can pile up
// behind one slow batch, and so how much a crash can make the agent send
// again.
func (s *Stream) WaitWindow(ctx context.Context, limit int64) error {
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

// Advance pops the leading chunks that hold no references and moves the
// committed entry to the last of them. It reports whether it moved.
func (s *Stream) Advance() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.advanceLocked()
}

func (s *Stream) advanceLocked() bool {
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
		s.lastTime = max(s.lastTime, done.Newest)
		s.pendingBytes -= done.Bytes
	}
	c := s.pending[i-1]
	s.entry.Pos, s.entry.Line, s.entry.ParserState = c.End, c.Line, c.State
	if c.File.FingerLen > 0 {
		s.entry.Fingerprint, s.entry.FingerLen = c.File.Fingerprint, c.File.FingerLen
	}
	if c.File.MarkerLen > 0 {
		s.entry.Marker, s.entry.MarkerLen = c.File.Marker, c.File.MarkerLen
	}
	if c.Size > 0 {
		s.entry.Size = c.Size
	}
	if c.Path != "" {
		s.entry.Path = c.Path
	}
	s.firstOnce.Do(func() { close(s.firstCommit) })
	clear(s.pending[:i])
	s.pending = s.pending[i:]
	s.dirty = true
	s.cond.Broadcast()
	s.noteDoneLocked()
	return true
}

// Idle reports whether every chunk read so far is committed (after an
// Advance).
func (s *Stream) Idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	return len(s.pending) == 0
}

// MarkSent records that the non-idempotent event m of run was acknowledged.
func (s *Stream) MarkSent(run string, m checkpoint.Mark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string]checkpoint.Mark{}
	}
	if cur, ok := s.sent[run]; !ok || cur.Less(m) {
		s.sent[run] = m
		s.dirty = true
	}
}

// AlreadySent reports whether a non-idempotent event was acknowledged
// before the agent restarted (at or before the mark loaded for run).
func (s *Stream) AlreadySent(run string, m checkpoint.Mark) bool {
	if len(s.skipBefore) == 0 { // set at creation only: no lock needed
		return false
	}
	last, ok := s.skipBefore[run]
	return ok && !last.Less(m)
}

// NoteRun remembers that the stream feeds a run (so a later backfill that
// finds nothing new still finishes it).
func (s *Stream) NoteRun(ref checkpoint.RunRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runSet == nil {
		s.runSet = make(map[checkpoint.RunRef]struct{}, len(s.entry.Runs)+1)
		for _, have := range s.entry.Runs {
			s.runSet[have] = struct{}{}
		}
	}
	if _, ok := s.runSet[ref]; ok {
		return
	}
	s.runSet[ref] = struct{}{}
	s.entry.Runs = append(s.entry.Runs, ref)
	s.dirty = true
}

// Runs returns the runs the stream feeds.
func (s *Stream) Runs() []checkpoint.RunRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]checkpoint.RunRef(nil), s.entry.Runs...)
}

// SetSignature sets a stream format's data signature (sizes and times),
// before reading starts. It reports whether the checkpoint says the stream
// was imported completely at that signature, in which case the stream is
// complete at once.
func (s *Stream) SetSignature(sig string, skipIfDone bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signature = sig
	if skipIfDone && s.entry.Done && s.entry.Signature == sig {
		s.complete = true
		s.firstOnce.Do(func() { close(s.firstCommit) })
		s.noteDoneLocked()
		return true
	}
	return false
}

// Close records that the reader let go of a line file; leftPath when it
// left its path (rotated, deleted, truncated, rewritten), so its entry is
// saved as done once everything is committed.
func (s *Stream) Close(leftPath bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if leftPath {
		s.leftPath, s.dirty = true, true
	}
	s.firstOnce.Do(func() { close(s.firstCommit) })
}

// Complete records that a stream format was read to its end (a backfill):
// its entry is saved as done at its signature once everything is
// committed.
func (s *Stream) Complete() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.complete, s.dirty = true, true
	s.noteDoneLocked()
}

// Fail records why a stream stopped early.
func (s *Stream) Fail(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = why
	s.firstOnce.Do(func() { close(s.firstCommit) })
	s.noteDoneLocked()
}

// Failed returns why the stream stopped early ("" if it did not).
func (s *Stream) Failed() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// EndFirstCommit closes the first-commit signal without a commit (a reader
// that ends before committing anything: its forks need not wait).
func (s *Stream) EndFirstCommit() { s.firstOnce.Do(func() { close(s.firstCommit) }) }

func (s *Stream) noteDoneLocked() {
	if (s.complete || s.failed != "") && len(s.pending) == 0 {
		s.doneOnce.Do(func() { close(s.doneCh) })
	}
}

// FirstCommit is closed at the stream's first commit, or when it ends.
func (s *Stream) FirstCommit() <-chan struct{} { return s.firstCommit }

// Done is closed once a stream format was read to its end (or failed) and
// everything it produced is committed.
func (s *Stream) Done() <-chan struct{} { return s.doneCh }

// Finished reports whether the stream was read to its end (or let go, or
// failed) and everything it produced is committed.
func (s *Stream) Finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return (s.complete || s.closed || s.failed != "") && len(s.pending) == 0
}

// Complete reports whether a stream format was read to its end, everything
// committed, without failing (for the report).
func (s *Stream) CompleteOK() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return (s.complete || s.closed) && len(s.pending) == 0 && s.failed == ""
}

// Snapshot returns the committed entry for the checkpoint, and whether it
// changed since the last snapshot. It advances first.
func (s *Stream) Snapshot() (checkpoint.Stream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	if !s.dirty {
		return checkpoint.Stream{}, false
	}
	s.dirty = false
	cp := s.entry
	cp.Runs = append([]checkpoint.RunRef(nil), s.entry.Runs...)
	if len(s.sent) > 0 {
		cp.Sent = make(map[string]checkpoint.Mark, len(s.sent))
		for k, v := range s.sent {
			cp.Sent[k] = v
		}
	}
	cp.LastTime = s.lastTime
	if s.leftPath && len(s.pending) == 0 {
		cp.Done = true
	}
	if s.complete && len(s.pending) == 0 && s.failed == "" {
		cp.Done, cp.Signature = true, s.signature
	}
	cp.Updated = s.now().UTC()
	return cp, true
}

// Unsaved marks the entry changed again (the save that took the last
// snapshot failed).
func (s *Stream) Unsaved() {
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
}

// Lag is how far a stream is behind.
type Lag struct {
	Path      string
	Committed int64     // committed offset (line files)
	Size      int64     // the file's size when last read (0: unknown)
	Oldest    time.Time // when the oldest uncommitted chunk was read (zero: none)
	LineFile  bool
	Left      bool // the file left its path (rotated away)
}

// Lag returns the stream's lag figures.
func (s *Stream) Lag() Lag {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := Lag{Path: s.entry.Path, Committed: s.entry.Pos.Offset, Size: s.entry.Size,
		LineFile: s.entry.FingerLen > 0, Left: s.leftPath}
	if len(s.pending) > 0 {
		l.Oldest = s.pending[0].readAt
		last := s.pending[len(s.pending)-1]
		l.Size = max(l.Size, last.Size)
		l.LineFile = l.LineFile || last.File.FingerLen > 0
	}
	return l
}

// Oldest returns when the oldest uncommitted chunk was read (zero: none).
func (s *Stream) Oldest() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) > 0 {
		return s.pending[0].readAt
	}
	return time.Time{}
}

// PendingBytes is the input read but not committed.
func (s *Stream) PendingBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pendingBytes
}
