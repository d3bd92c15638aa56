package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
)

// clock is an injected clock: it moves only when a test says so.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestLedger(loaded ...checkpoint.Stream) (*Ledger, *clock) {
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return New(loaded, c.now), c
}

func chunkAt(off int64, bytes int64) *Chunk {
	return &Chunk{End: event.Position{Offset: off}, Line: off / 10, Bytes: bytes,
		File: event.FileMark{Fingerprint: "fp", FingerLen: 4, Marker: fmt.Sprintf("m%d", off), MarkerLen: 8}}
}

// TestContiguity: the committed position moves only over a prefix of
// chunks that hold no references, whatever order the acknowledgements
// arrive in (metric batches overtake each other).
func TestContiguity(t *testing.T) {
	tests := []struct {
		name    string
		chunks  int
		refs    []int   // references each chunk's work holds (besides the pusher's)
		release [][]int // after each step, the chunk whose one reference is released
		want    []int64 // committed offset after each step
	}{
		{"in order", 3, []int{1, 1, 1}, [][]int{{0}, {1}, {2}}, []int64{10, 20, 30}},
		{"last first", 3, []int{1, 1, 1}, [][]int{{2}, {1}, {0}}, []int64{0, 0, 30}},
		{"middle first", 3, []int{1, 1, 1}, [][]int{{1}, {0}, {2}}, []int64{0, 20, 30}},
		{"a chunk with two rows", 2, []int{2, 1}, [][]int{{0}, {1}, {0}}, []int64{0, 0, 20}},
		{"a chunk with no work", 3, []int{1, 0, 1}, [][]int{{0}, {2}}, []int64{20, 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newTestLedger()
			s := l.Claim("k", "src", "/f", "/f")
			var chunks []*Chunk
			var work []Refs
			for i := 0; i < tt.chunks; i++ {
				c := chunkAt(int64(10*(i+1)), 10)
				s.Push(c)
				var r Refs
				for n := 0; n < tt.refs[i]; n++ {
					r.Add(c)
				}
				c.Release() // dispatch done
				chunks, work = append(chunks, c), append(work, r)
			}
			for step, rel := range tt.release {
				for _, i := range rel {
					// Release one reference of chunk i.
					work[i][0].c.release(1)
					work[i][0].n--
				}
				s.Advance()
				if got := s.Entry().Pos.Offset; got != tt.want[step] {
					t.Errorf("step %d: committed %d, want %d", step, got, tt.want[step])
				}
			}
			if e := s.Entry(); e.Pos.Offset == 30 && e.Marker != "m30" {
				t.Errorf("marker of the committed chunk = %q, want m30", e.Marker)
			}
		})
	}
}

// TestRefsMergeAndRelease: references move between pieces of work (a
// failed tag update puts its references back) and count the same.
func TestRefsMergeAndRelease(t *testing.T) {
	l, _ := newTestLedger()
	s := l.Claim("k", "src", "/f", "/f")
	a, b := chunkAt(10, 1), chunkAt(20, 1)
	s.Push(a)
	s.Push(b)
	var x, y Refs
	x.Add(a)
	x.Add(a)
	y.Add(a)
	y.Add(b)
	a.Release()
	b.Release()
	x.Merge(y)
	if len(x) != 2 || x[0].n != 3 || x[1].n != 1 {
		t.Fatalf("merged refs = %+v, want a×3, b×1", x)
	}
	if s.Advance() {
		t.Fatal("advanced while references are held")
	}
	x.Release()
	if !s.Advance() || s.Entry().Pos.Offset != 20 {
		t.Errorf("after release: %+v", s.Entry().Pos)
	}
}

// TestWindow: a reader waits while more than the window is read but not
// committed, and goes on as soon as a commit frees it; a cancelled context
// ends the wait.
func TestWindow(t *testing.T) {
	l, _ := newTestLedger()
	s := l.Claim("k", "src", "/f", "/f")
	c := chunkAt(100, 100)
	s.Push(c)
	var r Refs
	r.Add(c)
	c.Release()
	if err := s.WaitWindow(context.Background(), 100); err != nil {
		t.Fatalf("within the window: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WaitWindow(context.Background(), 50) }()
	select {
	case err := <-done:
		t.Fatalf("returned %v with 100 bytes pending over a 50-byte window", err)
	default:
	}
	r.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c2 := chunkAt(200, 100)
	s.Push(c2) // held by its pusher
	go func() { done <- s.WaitWindow(ctx, 50) }()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("cancelled wait = %v", err)
	}
}

// TestSentMarks: marks recorded are in the snapshot; loaded into a new
// ledger they make the events at or before them already sent, per run.
func TestSentMarks(t *testing.T) {
	l, _ := newTestLedger()
	s := l.Claim("k", "src", "/f", "/f")
	m := func(off int64, idx int) checkpoint.Mark {
		return checkpoint.Mark{Pos: event.Position{Offset: off}, Index: idx}
	}
	s.MarkSent("run-a", m(50, 1))
	s.MarkSent("run-a", m(40, 0)) // older: ignored
	s.MarkSent("run-b", m(10, 0))
	snap, changed := s.Snapshot()
	if !changed || snap.Sent["run-a"] != m(50, 1) || snap.Sent["run-b"] != m(10, 0) {
		t.Fatalf("snapshot marks = %+v", snap.Sent)
	}
	if s.AlreadySent("run-a", m(10, 0)) {
		t.Error("a mark of this process must not skip events of this process")
	}
	l2, _ := newTestLedger(snap)
	s2 := l2.Claim("k", "src", "/f", "/f")
	for _, tc := range []struct {
		run  string
		m    checkpoint.Mark
		want bool
	}{
		{"run-a", m(50, 1), true}, {"run-a", m(50, 0), true}, {"run-a", m(49, 9), true},
		{"run-a", m(50, 2), false}, {"run-a", m(60, 0), false},
		{"run-b", m(10, 0), true}, {"run-b", m(10, 1), false}, {"run-c", m(1, 0), false},
	} {
		if got := s2.AlreadySent(tc.run, tc.m); got != tc.want {
			t.Errorf("AlreadySent(%s, %+v) = %v, want %v", tc.run, tc.m, got, tc.want)
		}
	}
	if snap2, _ := s2.Snapshot(); snap2.Sent["run-a"] != m(50, 1) {
		t.Errorf("loaded marks are not saved again: %+v", snap2.Sent)
	}
}

// TestDurabilityBarrier: work waiting for a save generation runs once that
// save (or a later one) is durable, never before, and at once if it is.
func TestDurabilityBarrier(t *testing.T) {
	l, _ := newTestLedger()
	var ran []string
	barrier := l.NextSave() // what is recorded now is in save 1
	if barrier != 1 {
		t.Fatalf("NextSave = %d, want 1", barrier)
	}
	if l.OnDurable(barrier, func() { ran = append(ran, "a") }) {
		t.Fatal("ran before any save")
	}
	gen := l.BeginSave()
	// Recorded after the save began: needs the next one.
	b2 := l.NextSave()
	l.OnDurable(b2, func() { ran = append(ran, "b") })
	l.SaveDurable(gen)
	if fmt.Sprint(ran) != "[a]" {
		t.Fatalf("after save %d: ran %v, want [a]", gen, ran)
	}
	if !l.Durable(barrier) || l.Durable(b2) {
		t.Fatalf("Durable(%d)=%v Durable(%d)=%v", barrier, l.Durable(barrier), b2, l.Durable(b2))
	}
	if !l.OnDurable(barrier, func() { ran = append(ran, "c") }) || fmt.Sprint(ran) != "[a c]" {
		t.Fatalf("an already durable generation must run at once: %v", ran)
	}
	l.SaveDurable(l.BeginSave())
	if fmt.Sprint(ran) != "[a c b]" {
		t.Fatalf("after the second save: %v", ran)
	}
	// A late SaveDurable of an older generation does not move back.
	l.SaveDurable(1)
	if !l.Durable(b2) {
		t.Error("durability went back")
	}
}

// TestSnapshotDone: a line file that left its path is saved as done only
// once everything read from it is committed; a stream format read to its
// end is done at its signature; a failed one is not.
func TestSnapshotDone(t *testing.T) {
	l, clk := newTestLedger()
	s := l.Claim("k", "src", "/f", "/f")
	c := chunkAt(10, 10)
	s.Push(c)
	s.Close(true)
	if snap, _ := s.Snapshot(); snap.Done {
		t.Error("done with a chunk pending")
	}
	c.Release()
	clk.t = clk.t.Add(time.Minute)
	snap, changed := s.Snapshot()
	if !changed || !snap.Done || snap.Pos.Offset != 10 || !snap.Updated.Equal(clk.t) {
		t.Errorf("after the commit: %+v (changed %v)", snap, changed)
	}
	if _, changed := s.Snapshot(); changed {
		t.Error("unchanged stream reported changed")
	}

	n := l.Claim("n", "nep", "/d", "/d")
	if n.SetSignature("sig1", true) {
		t.Fatal("a new stream cannot be complete")
	}
	n.Complete()
	snap, _ = n.Snapshot()
	if !snap.Done || snap.Signature != "sig1" {
		t.Errorf("complete stream: %+v", snap)
	}
	select {
	case <-n.Done():
	default:
		t.Error("Done not closed for a complete stream")
	}
	// Reloaded: complete at the same signature means skip, at another not.
	l2, _ := newTestLedger(snap)
	if !l2.Claim("n", "nep", "/d", "/d").SetSignature("sig1", true) {
		t.Error("an unchanged complete stream is not skipped")
	}
	l3, _ := newTestLedger(snap)
	if l3.Claim("n", "nep", "/d", "/d").SetSignature("sig2", true) {
		t.Error("a changed stream is skipped")
	}

	f := l.Claim("f", "nep", "/e", "/e")
	f.Fail("corrupt")
	if snap, _ := f.Snapshot(); snap.Done {
		t.Error("a failed stream is saved as done")
	}
}

// TestKnownAndClaim: checkpointed streams are offered until claimed, and a
// claimed stream keeps its committed position and takes its new path.
func TestKnownAndClaim(t *testing.T) {
	l, _ := newTestLedger(
		checkpoint.Stream{Key: "a:1", Source: "a", Path: "/old", Pos: event.Position{Offset: 77}},
		checkpoint.Stream{Key: "b:1", Source: "b", Path: "/b"},
	)
	if k := l.Known("a"); len(k) != 1 || k[0].Key != "a:1" {
		t.Fatalf("known = %+v", k)
	}
	s := l.Claim("a:1", "a", "/new", "/new")
	if e := s.Entry(); e.Pos.Offset != 77 || e.Path != "/new" || e.RunPath != "/new" {
		t.Errorf("claimed entry = %+v", e)
	}
	if len(l.Known("a")) != 0 || !l.Claimed("a:1") || l.Claimed("b:1") {
		t.Error("claimed stream still offered")
	}
	if l.Claim("a:1", "a", "/newer", "/x") != s || s.Path() != "/newer" {
		t.Error("a second claim must return the same stream at its new path")
	}
}

// TestLag: a stream's lag counts the bytes of the file it reads, also
// when that file left its path (rotation): the size comes from the chunks.
func TestLag(t *testing.T) {
	l, clk := newTestLedger()
	s := l.Claim("k", "src", "/f", "/f")
	c := chunkAt(100, 100)
	c.Size = 11 << 20
	s.Push(c)
	at := clk.t
	clk.t = clk.t.Add(time.Second)
	lag := s.Lag()
	if lag.Size != 11<<20 || lag.Committed != 0 || !lag.Oldest.Equal(at) || !lag.LineFile {
		t.Errorf("lag = %+v", lag)
	}
}
