package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/agent/ledger"
	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/watcher"
)

// Deterministic tests of the delivery guarantee (docs/design.md §2) without
// the binary and without the watcher: the harness builds an agent on a
// fake sink and feeds its line reader chunks directly, as the tailer
// would, cuts batches explicitly instead of waiting for the linger, and
// saves the checkpoint when the test says so. Nothing waits on time: every
// wait is for a condition (the fake sink broadcasts each change; agent
// state is polled under its locks with a deadline).

// harness is one agent process over a state directory.
type harness struct {
	t      *testing.T
	a      *Agent
	f      *fakeSink
	lr     *lineReader
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// fileLine is a line of a test file and the offset just past it.
type fileLine struct {
	text string
	end  int64
	no   int64
}

// lines makes file lines from texts, with offsets as on disk.
func lines(texts ...string) []fileLine {
	var out []fileLine
	var off int64
	for i, s := range texts {
		off += int64(len(s)) + 1
		out = append(out, fileLine{text: s, end: off, no: int64(i + 1)})
	}
	return out
}

// newHarness starts an agent on f over stateDir; with autoSave its saver
// runs as in the agent (on request and every few milliseconds), else the
// test saves.
func newHarness(t *testing.T, f *fakeSink, stateDir string, maxLines int, autoSave bool) *harness {
	t.Helper()
	opts := Options{Project: "p", StateDir: stateDir, Logger: testLogger(t), Batch: BatchOptions{MaxLines: maxLines, Linger: time.Hour},
		CheckpointInterval: time.Hour, HeartbeatInterval: time.Hour,
		Sources: []Source{{Name: "s", Format: "jsonl", Paths: []string{filepath.Join(stateDir, "none", "*.jsonl")}, RunName: "{{.Stem}}"}}}
	a, err := New(opts, f)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, a: a, f: f, lr: &lineReader{s: a.srcs[0], files: map[string]*lineFile{}}}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	a.snd.ctx = ctx
	for i := 0; i < 8; i++ {
		h.wg.Add(1)
		go func() { defer h.wg.Done(); a.snd.worker() }()
	}
	if autoSave {
		h.wg.Add(1)
		go func() { defer h.wg.Done(); a.saver.loop(ctx, 5*time.Millisecond) }()
	}
	t.Cleanup(h.crash)
	return h
}

// open announces a file to the line reader, resumed at offset when the
// checkpoint has it (as the watcher does on restart).
func (h *harness) open(key, path string) int64 {
	h.t.Helper()
	var off, line int64
	resumed := false
	for _, k := range h.a.ledger.Known("s") {
		if k.Key == key {
			off, line, resumed = k.Pos.Offset, k.Line, true
		}
	}
	if err := h.lr.StreamOpened(context.Background(), watcher.StreamInfo{Key: key, Path: path, RunPath: path,
		Resumed: resumed, Offset: off, Line: line}); err != nil {
		h.t.Fatal(err)
	}
	return off
}

// chunk hands the lines after from to the line reader as one chunk.
func (h *harness) chunk(key, path string, ls []fileLine, from int64) {
	h.t.Helper()
	var recs []event.Record
	var end, no int64
	for _, l := range ls {
		if l.end <= from {
			continue
		}
		recs = append(recs, event.Record{Line: l.no, Pos: event.Position{Offset: l.end}, Data: []byte(l.text)})
		end, no = l.end, l.no
	}
	if len(recs) == 0 {
		return
	}
	c := &watcher.Chunk{Key: key, Path: path, Records: recs, End: end, Line: no,
		File: event.FileMark{Fingerprint: "fp-" + key, FingerLen: 8, Marker: fmt.Sprintf("m%d", end), MarkerLen: 8}}
	if err := h.lr.StreamChunk(context.Background(), c); err != nil {
		h.t.Fatal(err)
	}
}

// route hands events to their runs as a stream format's chunk.
func (h *harness) route(key string, end int64, evs []event.Event) {
	ls := h.a.ledger.Claim(key, "s", "/streams/"+key, "/streams/"+key)
	st := h.a.streams.get(ls, "s", "jsonl")
	c := &ledger.Chunk{End: event.Position{Seq: end}}
	ls.Push(c)
	h.a.routeChunk(&routing{src: h.a.srcs[0], st: st, c: c}, evs)
	c.Release()
}

// flush cuts every partial batch (what the linger does after 10 ms).
func (h *harness) flush() { h.a.flushAll() }

// save writes the checkpoint now.
func (h *harness) save() {
	h.t.Helper()
	if err := h.a.saver.save(); err != nil {
		h.t.Fatal(err)
	}
}

// committed is the offset the state file holds for a stream.
func (h *harness) committed(key string) int64 {
	h.t.Helper()
	st, err := checkpoint.Read(h.a.opts.StateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, s := range st.Streams {
		if s.Key == key {
			return s.Pos.Offset
		}
	}
	return 0
}

// extOf is the external id of the run a file feeds by default.
func extOf(path string) string { return defaultExternalID("s", path, "") }

// runOf finds this process's run by external id.
func (h *harness) runOf(ext string) *run {
	r, _, _, _ := h.a.runs.get(runKey("p", ext))
	return r
}

// until polls a condition on the agent's state with a deadline.
func (h *harness) until(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// inRun reads a run's state under its lock.
func (h *harness) inRun(ext string, f func(r *run) bool) bool {
	r := h.runOf(ext)
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return f(r)
}

// crash ends the process as SIGKILL would: requests in flight are cut off,
// nothing is drained, no final checkpoint; the state directory is freed.
func (h *harness) crash() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.a.snd.jobs.close()
	h.wg.Wait()
	h.a.store.Close()
	h.cancel = nil
}

// stop ends the process cleanly: everything is delivered, then saved
// (saving as it waits: sends behind the barrier need saves).
func (h *harness) stop() {
	h.t.Helper()
	h.flush()
	h.until("everything delivered", func() bool {
		h.save()
		return h.a.idle()
	})
	h.save()
	h.crash()
}

func metricLines(from, to int) []string {
	var out []string
	for s := from; s <= to; s++ {
		out = append(out, fmt.Sprintf(`{"step":%d,"loss":%d}`, s, s))
	}
	return out
}

// TestCommitIsContiguousUnderReorder: metric batches of one run are
// acknowledged out of order; the checkpoint never passes a batch the
// tracker has not acknowledged, and reaches the end once it has.
func TestCommitIsContiguousUnderReorder(t *testing.T) {
	f := newFakeSink()
	f.script = func(n int, s sent) action {
		if s.ep == sink.Metrics {
			return hold
		}
		return ack
	}
	h := newHarness(t, f, t.TempDir(), 2, false)
	const key, path = "s:a", "/runs/a.jsonl"
	ls := lines(metricLines(1, 6)...)
	h.open(key, path)
	for i := 0; i < 3; i++ {
		h.chunk(key, path, ls[2*i:2*i+2], 0)
	}
	h.flush()
	f.waitFor(t, "three metric batches in flight", func() bool { return len(f.held) == 3 })
	// The second and third are acknowledged first.
	f.release(t, 2, nil)
	f.release(t, 1, nil)
	h.until("two acknowledgements processed", func() bool {
		return h.inRun(extOf(path), func(r *run) bool { return r.out.inflight[sink.Metrics] == 1 })
	})
	h.save()
	if got := h.committed(key); got != 0 {
		t.Fatalf("committed %d with the first batch unacknowledged, want 0", got)
	}
	f.release(t, 0, nil)
	h.until("the last acknowledgement", func() bool {
		return h.inRun(extOf(path), func(r *run) bool { return r.out.inflight[sink.Metrics] == 0 })
	})
	h.save()
	if got, want := h.committed(key), ls[5].end; got != want {
		t.Fatalf("committed %d after every acknowledgement, want %d", got, want)
	}
}

// TestHalvingIsolatesABadRow: the ingest stores the rows before a bad one
// and refuses the rest (422); the agent halves the batch until the bad row
// is alone, dead-letters only it, delivers every other row and moves the
// checkpoint past all of them.
func TestHalvingIsolatesABadRow(t *testing.T) {
	f := newFakeSink()
	f.script = func(n int, s sent) action { return refuseIngest }
	h := newHarness(t, f, t.TempDir(), 100, false)
	const key, path = "s:a", "/runs/a.jsonl"
	texts := metricLines(1, 8)
	texts[4] = `{"step":5,"POISON":1}`
	ls := lines(texts...)
	h.open(key, path)
	h.chunk(key, path, ls, 0)
	h.stop()
	stored := map[string]int{}
	for _, row := range f.rowsOf(extOf(path), sink.Metrics) {
		stored[row]++
	}
	for i, l := range texts {
		if i == 4 {
			for row := range stored {
				if strings.Contains(row, "POISON") {
					t.Errorf("the bad row was stored: %s", row)
				}
			}
			continue
		}
		found := false
		for row := range stored {
			if strings.Contains(row, fmt.Sprintf(`"step":%d,`, i+1)) {
				found = true
			}
		}
		if !found {
			t.Errorf("row %q was lost", l)
		}
	}
	if n := h.a.rep.stats.LinesRejected.Load(); n != 1 {
		t.Errorf("%d rows rejected, want the one bad row", n)
	}
	if got := h.committed(key); got != ls[7].end {
		t.Errorf("committed %d, want past every row (%d)", got, ls[7].end)
	}
}

// TestBarrierHoldsTheNextNonIdempotentBatch: after a string-series batch is
// acknowledged, the run's next one waits until the checkpoint recording the
// first one's sent mark is durable (so a crash re-sends one batch at most).
func TestBarrierHoldsTheNextNonIdempotentBatch(t *testing.T) {
	f := newFakeSink()
	h := newHarness(t, f, t.TempDir(), 1, false)
	const key, path = "s:a", "/runs/a.jsonl"
	ls := lines(`{"step":1,"phase":"warmup"}`, `{"step":2,"phase":"train"}`)
	h.open(key, path)
	h.chunk(key, path, ls[:1], 0)
	h.flush()
	f.waitFor(t, "the first batch", func() bool { return len(f.sends) == 1 })
	h.until("its acknowledgement processed", func() bool {
		return h.inRun(extOf(path), func(r *run) bool { return r.out.inflight[sink.Data] == 0 && r.out.barrier > 0 })
	})
	h.chunk(key, path, ls, ls[0].end)
	h.flush()
	h.until("the second batch parked behind the barrier", func() bool {
		return h.inRun(extOf(path), func(r *run) bool { return len(r.out.queue[sink.Data]) == 1 && r.out.awaitingSave })
	})
	if n := len(f.sendsOf(sink.Data)); n != 1 {
		t.Fatalf("%d data batches sent before the save, want 1", n)
	}
	h.save()
	f.waitFor(t, "the second batch after the save", func() bool { return len(f.sends) == 2 })
	// The save recorded the first batch's mark.
	st, _ := checkpoint.Read(h.a.opts.StateDir)
	if m := st.Streams[0].Sent[extOf(path)]; m.Pos.Offset != ls[0].end {
		t.Errorf("saved sent mark = %+v, want the first row (%d)", m, ls[0].end)
	}
}

// TestDuplicateBoundAfterACrash: killed at any point of a backfill, then
// restarted from the checkpoint, the agent loses no row; rows of non-
// idempotent endpoints are stored twice at most for the one batch in
// flight at the crash; metric rows in the deduplicated view are exact.
func TestDuplicateBoundAfterACrash(t *testing.T) {
	const batch = 5
	for crashAt := 0; crashAt < 12; crashAt++ {
		t.Run(fmt.Sprintf("crash at send %d", crashAt), func(t *testing.T) {
			var texts []string
			for s := 1; s <= 30; s++ {
				texts = append(texts, fmt.Sprintf(`{"step":%d,"loss":%d,"phase":"p%d"}`, s, s, s))
			}
			ls := lines(texts...)
			const key, path = "s:a", "/runs/a.jsonl"
			state := t.TempDir()
			f := newFakeSink()
			f.script = func(n int, s sent) action {
				if n == crashAt {
					return storeHold // the tracker stored it; the agent dies before the answer
				}
				return ack
			}
			h := newHarness(t, f, state, batch, true)
			off := h.open(key, path)
			for i := 0; i < len(ls); i += batch {
				h.chunk(key, path, ls[i:i+batch], off)
				h.flush()
			}
			f.waitFor(t, "the crash point", func() bool { return len(f.sends) > crashAt })
			h.crash()

			f.script = nil
			h2 := newHarness(t, f, state, batch, true)
			off = h2.open(key, path)
			h2.chunk(key, path, ls, off)
			h2.stop()

			count := map[string]int{}
			for _, row := range f.rowsOf(extOf(path), sink.Data) {
				count[row]++
			}
			dups := 0
			for s := 1; s <= 30; s++ {
				n := 0
				for row, c := range count {
					if strings.Contains(row, fmt.Sprintf(`"p%d"`, s)) {
						n += c
					}
				}
				if n == 0 {
					t.Errorf("string row p%d lost", s)
				}
				dups += n - 1
			}
			if dups > batch {
				t.Errorf("%d string rows stored twice, want at most one batch (%d)", dups, batch)
			}
			steps := map[string]bool{}
			for _, row := range f.rowsOf(extOf(path), sink.Metrics) {
				steps[row[strings.Index(row, `"step"`):]] = true
			}
			if len(steps) != 30 {
				t.Errorf("%d distinct metric steps stored, want 30", len(steps))
			}
		})
	}
}

// TestSentMarksSurviveAStalledCommit: string rows acknowledged while the
// metric batches of the same chunks are stuck (so the committed position
// cannot move) are not sent again after a crash: their sent marks were
// saved, and the restarted agent skips them while re-reading the chunks.
func TestSentMarksSurviveAStalledCommit(t *testing.T) {
	const batch = 5
	var texts []string
	for s := 1; s <= 30; s++ {
		texts = append(texts, fmt.Sprintf(`{"step":%d,"loss":%d,"phase":"p%d"}`, s, s, s))
	}
	ls := lines(texts...)
	const key, path = "s:a", "/runs/a.jsonl"
	state := t.TempDir()
	f := newFakeSink()
	f.script = func(n int, s sent) action {
		if s.ep == sink.Metrics {
			return storeHold // the metric batches never get an answer
		}
		return ack
	}
	h := newHarness(t, f, state, batch, true)
	h.open(key, path)
	for i := 0; i < len(ls); i += batch {
		h.chunk(key, path, ls[i:i+batch], 0)
		h.flush()
	}
	f.waitFor(t, "every string batch acknowledged", func() bool { return len(f.rows[f.runs[extOf(path)]][sink.Data]) == 30 })
	h.until("the last mark saved", func() bool {
		st, err := checkpoint.Read(state)
		return err == nil && len(st.Streams) == 1 && st.Streams[0].Sent[extOf(path)].Pos.Offset >= ls[24].end
	})
	if got := h.committed(key); got != 0 {
		t.Fatalf("committed %d with every metric batch unanswered", got)
	}
	h.crash()

	f.script = nil
	h2 := newHarness(t, f, state, batch, true)
	off := h2.open(key, path)
	h2.chunk(key, path, ls, off)
	h2.stop()
	if n := len(f.rowsOf(extOf(path), sink.Data)); n > 30+batch {
		t.Errorf("%d string rows stored for 30, want at most one batch (%d) again", n, batch)
	}
	if n := len(f.rowsOf(extOf(path), sink.Data)); n < 30 {
		t.Errorf("string rows lost: %d of 30", n)
	}
}

// TestForkWaitsForItsParent: a fork's run is created only once its
// parent's is, with the parent's id; a fork whose parent is not part of the
// import keeps the link in its config.
func TestForkWaitsForItsParent(t *testing.T) {
	f := newFakeSink()
	f.creates = func(spec sink.RunSpec) action {
		if spec.ExternalID == "parent" {
			return hold
		}
		return ack
	}
	h := newHarness(t, f, t.TempDir(), 10, false)
	point := func(pos int64) event.Event {
		return event.Event{Kind: event.KindMetrics, Pos: event.Position{Seq: pos}, Step: pos, Time: 1,
			Points: []event.Point{{Name: "loss", Value: 1}}}
	}
	h.route("parent-stream", 2, []event.Event{
		{Kind: event.KindRun, Pos: event.Position{Seq: 1}, Info: &event.RunInfo{ExternalID: "parent", Name: "parent"}},
		point(2)})
	h.route("child-stream", 2, []event.Event{
		{Kind: event.KindRun, Pos: event.Position{Seq: 1}, Info: &event.RunInfo{ExternalID: "child", Name: "child", ForkParent: "parent", ForkStep: 7}},
		point(2)})
	h.route("orphan-stream", 2, []event.Event{
		{Kind: event.KindRun, Pos: event.Position{Seq: 1}, Info: &event.RunInfo{ExternalID: "orphan", Name: "orphan", ForkParent: "elsewhere", ForkStep: 3}},
		point(2)})
	f.waitFor(t, "the parent's create held", func() bool { return f.heldCreate["parent"] != nil })
	h.until("the child parked", func() bool { return h.inRun("child", func(r *run) bool { return r.ctl.waitParent }) })
	f.mu.Lock()
	for _, c := range f.created {
		if c.ExternalID == "child" {
			t.Error("the fork was created before its parent")
		}
	}
	f.mu.Unlock()
	f.releaseCreate(t, "parent")
	f.waitFor(t, "the child created", func() bool {
		for _, c := range f.created {
			if c.ExternalID == "child" {
				return true
			}
		}
		return false
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.created {
		switch c.ExternalID {
		case "child":
			if c.ForkOf != f.runs["parent"] || c.ForkStep != 7 {
				t.Errorf("child created with fork %d at %d, want %d at 7", c.ForkOf, c.ForkStep, f.runs["parent"])
			}
		case "orphan":
			fork, _ := c.Config["fork"].(map[string]any)
			if c.ForkOf != 0 || fork["parent_external_id"] != "elsewhere" {
				t.Errorf("orphan created with fork %d, config %v", c.ForkOf, c.Config)
			}
		}
	}
}

// TestAcceptedThenFailedIsSentAgain: a batch the tracker stored but whose
// answer was lost is sent again (the tracker's dedup keeps metrics exact)
// and the checkpoint moves only after the second answer.
func TestAcceptedThenFailedIsSentAgain(t *testing.T) {
	f := newFakeSink()
	f.script = func(n int, s sent) action {
		if n == 0 {
			return acceptFail
		}
		return ack
	}
	h := newHarness(t, f, t.TempDir(), 10, false)
	const key, path = "s:a", "/runs/a.jsonl"
	ls := lines(metricLines(1, 3)...)
	h.open(key, path)
	h.chunk(key, path, ls, 0)
	h.stop()
	if n := len(f.rowsOf(extOf(path), sink.Metrics)); n != 6 {
		t.Errorf("%d raw rows, want 6 (the batch stored twice)", n)
	}
	if got := h.committed(key); got != ls[2].end {
		t.Errorf("committed %d, want %d", got, ls[2].end)
	}
}
