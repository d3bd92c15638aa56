package neptune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

var allFixtures = []string{
	"n1-a-offline-basic",
	"n1-async-colab-2021",
	"scale-a-training",
	"scale-b-fractional-steps",
	"scale-c-fork-child",
	"scale-d-series-files-preview",
	"scale-h-killed-offline-wal",
}

// setChunkLimit lowers how many operations one Next call reads.
func setChunkLimit(t testing.TB, s parsers.Stream, ops int) {
	t.Helper()
	switch x := s.(type) {
	case *n1Stream:
		x.maxOps = ops
	case *scaleStream:
		x.maxOps = ops
	default:
		t.Fatalf("unknown stream %T", s)
	}
}

type boundary struct {
	end   event.Position
	state []byte
	n     int // events delivered up to here
}

// TestResume reads each fixture in small chunks, then reopens it at chunk
// boundaries with the saved (End, State) — and with (End, nil), which
// replays to rebuild the state — and checks that the events that follow
// are exactly those of a single pass.
func TestResume(t *testing.T) {
	for _, name := range allFixtures {
		t.Run(name, func(t *testing.T) {
			fx := copyFixture(t, name)
			f := New()
			info := discoverOne(t, f, fx.root)
			opts := testOptions(fx, t)
			open := func(end event.Position, state []byte) parsers.Stream {
				s, err := f.Open(info, end, state, opts)
				if err != nil {
					t.Fatalf("Open(%v): %v", end, err)
				}
				return s
			}
			s := open(event.Position{}, nil)
			want, _, _ := readAll(t, s)
			s.Close()

			s = open(event.Position{}, nil)
			setChunkLimit(t, s, 7)
			var got []event.Event
			var bounds []boundary
			for {
				ch, err := s.Next(context.Background(), nil)
				got = append(got, ch.Events...)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ch.Events {
					if ch.End.Less(e.Pos) {
						t.Fatalf("event at %v after chunk end %v", e.Pos, ch.End)
					}
				}
				bounds = append(bounds, boundary{ch.End, ch.State, len(got)})
			}
			s.Close()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("chunked read differs from a single pass (%d vs %d events)", len(got), len(want))
			}
			if len(bounds) < 3 {
				t.Fatalf("only %d chunks", len(bounds))
			}
			// Events of one operation are never split across chunks.
			for _, b := range bounds[:len(bounds)-1] {
				if b.n < len(want) && b.n > 0 && want[b.n].Pos == want[b.n-1].Pos {
					t.Fatalf("operation %v split across chunks", want[b.n].Pos)
				}
			}
			step := max(1, len(bounds)/12)
			for i := 0; i < len(bounds); i += step {
				b := bounds[i]
				for _, state := range [][]byte{b.state, nil} {
					s := open(b.end, state)
					rest, _, _ := readAll(t, s)
					s.Close()
					rest = resumedRest(t, rest, want, state != nil)
					all := append(append([]event.Event(nil), want[:b.n]...), rest...)
					if !reflect.DeepEqual(all, want) {
						t.Fatalf("resume at %v (state %v): %d+%d events, want %d; first difference %s",
							b.end, state != nil, b.n, len(rest), len(want), firstDiff(all, want))
					}
				}
			}
		})
	}
}

func firstDiff(a, b []event.Event) string {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return fmt.Sprintf("at %d: %+v vs %+v", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d vs %d", len(a), len(b))
}

// follow calls Next until io.EOF and returns what arrived.
func follow(t testing.TB, s parsers.Stream) []event.Event {
	t.Helper()
	var out []event.Event
	for {
		ch, err := s.Next(context.Background(), nil)
		out = append(out, ch.Events...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func appendFile(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLiveN1 follows a queue while a writer appends to it: a record split
// across two writes is held back until complete, a new segment is picked
// up, and every operation arrives exactly once.
func TestLiveN1(t *testing.T) {
	root := t.TempDir()
	exec := filepath.Join(root, ".neptune", "async", "run__11111111-2222-4333-8444-555555555555__42__abcdefgh")
	if err := os.MkdirAll(exec, 0o755); err != nil {
		t.Fatal(err)
	}
	seg1 := filepath.Join(exec, "data-1.log")
	line := func(v int64, step int64) []byte {
		obj := neptunetest.AppendLogFloats(nil, "train/loss", float64(v), step, 1735689600+float64(v))
		return neptunetest.AppendN1Record(nil, v, 1735689600+float64(v), obj)
	}
	name := neptunetest.AppendN1Record(nil, 1, 1735689600, neptunetest.AppendAssignString(nil, "sys/name", "live"))
	appendFile(t, seg1, name)
	appendFile(t, seg1, line(2, 0))

	f := New()
	info := discoverOne(t, f, root)
	s, err := f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := follow(t, s)

	l3 := line(3, 1)
	appendFile(t, seg1, l3[:len(l3)/2])
	if evs := follow(t, s); len(evs) != 0 {
		t.Fatalf("half a record produced %v", evs)
	}
	appendFile(t, seg1, l3[len(l3)/2:])
	appendFile(t, seg1, line(4, 2))
	got = append(got, follow(t, s)...)

	// The client rolls over to data-5.log (named after its first version).
	seg5 := filepath.Join(exec, "data-5.log")
	appendFile(t, seg5, line(5, 3))
	got = append(got, follow(t, s)...)
	// A fractional step after the multiplier was chosen is reported, not
	// merged into step 3 or 4.
	appendFile(t, seg5, neptunetest.AppendN1Record(nil, 6, 1735689606,
		[]byte(`{"type": "LogFloats", "path": ["train", "loss"], "values": [{"value": 6, "step": 3.5, "ts": 1735689606}]}`)))
	appendFile(t, seg5, line(7, 4))
	got = append(got, follow(t, s)...)

	sum := summarize(t, got)
	if sum.run.Name != "live" || sum.runCount != 1 {
		t.Errorf("run %+v ×%d", sum.run, sum.runCount)
	}
	var seqs []int64
	for _, p := range sum.metrics["train/loss"] {
		seqs = append(seqs, int64(p.value))
		if p.step != int64(p.value)-2-boolInt(p.value > 6) {
			t.Errorf("point %v at step %d", p.value, p.step)
		}
	}
	if !reflect.DeepEqual(seqs, []int64{2, 3, 4, 5, 7}) {
		t.Errorf("points %v, want versions 2,3,4,5,7 once each", seqs)
	}
	ws, _ := s.(Warner).Warnings()
	if r := warningsByReason(ws); r[ReasonBadStep] != 1 || len(ws) != 1 || ws[0].Pos.Seq != 6 {
		t.Errorf("warnings %v, want one bad_step at version 6", ws)
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestLiveN1TruncatedThenRollover: a partial last record followed by a
// new segment is corrupt (the writer moved on): reported and skipped.
func TestLiveN1TruncatedThenRollover(t *testing.T) {
	root := t.TempDir()
	exec := filepath.Join(root, ".neptune", "offline", "run__aaaaaaaa-2222-4333-8444-555555555555__1__abcdefgh")
	if err := os.MkdirAll(exec, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := func(v int64) []byte {
		return neptunetest.AppendN1Record(nil, v, 1735689600, neptunetest.AppendLogFloats(nil, "m", 1, v, 1735689600))
	}
	r2 := rec(2)
	appendFile(t, filepath.Join(exec, "data-1.log"), append(rec(1), r2[:10]...))
	appendFile(t, filepath.Join(exec, "data-3.log"), rec(3))
	f := New()
	s, err := f.Open(discoverOne(t, f, root), event.Position{}, nil, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sum := summarize(t, follow(t, s))
	if len(sum.metrics["m"]) != 2 {
		t.Errorf("points %v", sum.metrics["m"])
	}
	ws, _ := s.(Warner).Warnings()
	r := warningsByReason(ws)
	if r[ReasonCorrupt] != 1 || r[ReasonVersionGap] != 1 {
		t.Errorf("warnings %v", ws)
	}
}

// TestLiveScale follows a database in WAL mode while rows are inserted
// (written with modernc in this process), then after the writer closes:
// every row arrives exactly once.
func TestLiveScale(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, ".neptune", "proj_live-run_1", "run_operations.sqlite3")
	db, err := neptunetest.CreateScaleDB(path, neptunetest.ScaleOptions{RunID: "live-run"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Unix(1735689600, 0)
	if err := db.CreateRun("live", start, nil); err != nil {
		t.Fatal(err)
	}
	f := New()
	s, err := f.Open(discoverOne(t, f, root), event.Position{}, nil, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := follow(t, s)
	if mode := s.(*scaleStream).members[0].r.Mode().String(); mode != "readonly-wal" {
		t.Errorf("opened as %s, want readonly-wal while the writer is open", mode)
	}
	step := int64(0)
	for round := 0; round < 5; round++ {
		for i := 0; i < 3+round; i++ {
			if err := db.Metrics(step*1_000_000, start.Add(time.Duration(step)*time.Second), false, neptunetest.Metric{Path: "loss", Value: float64(step)}); err != nil {
				t.Fatal(err)
			}
			step++
		}
		got = append(got, follow(t, s)...)
	}
	if err := db.Tags(start, "done"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The follower's connection keeps SQLite from deleting the WAL on the
	// writer's close (a WAL-mode connection holds a shared lock), so the
	// rows may stay in the WAL: they must still be read, once.
	got = append(got, follow(t, s)...)
	sum := summarize(t, got)
	pts := sum.metrics["loss"]
	if int64(len(pts)) != step {
		t.Fatalf("%d points, want %d", len(pts), step)
	}
	for i, p := range pts {
		if p.step != int64(i) || p.value != float64(i) {
			t.Fatalf("point %d = %+v", i, p)
		}
	}
	if !sum.tags["done"] || sum.run.Name != "live" {
		t.Errorf("tags %v run %+v", sum.tags, sum.run)
	}
}

// TestLiveScaleConcurrent runs the writer in its own goroutine while the
// follower polls.
func TestLiveScaleConcurrent(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, ".neptune", "proj_conc_1", "run_operations.sqlite3")
	db, err := neptunetest.CreateScaleDB(path, neptunetest.ScaleOptions{RunID: "conc"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1735689600, 0)
	if err := db.CreateRun("conc", start, nil); err != nil {
		t.Fatal(err)
	}
	const n = 400
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < n && err == nil; i++ {
			err = db.Metrics(int64(i)*1_000_000, start.Add(time.Duration(i)*time.Millisecond), false, neptunetest.Metric{Path: "x", Value: float64(i)})
		}
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	f := New()
	s, err := f.Open(discoverOne(t, f, root), event.Position{}, nil, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []event.Event
	deadline := time.After(30 * time.Second)
	for finished := false; ; {
		got = append(got, follow(t, s)...)
		if finished {
			break
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		case <-deadline:
			t.Fatal("writer did not finish")
		case <-time.After(time.Millisecond): // the follower's poll interval
		}
	}
	pts := summarize(t, got).metrics["x"]
	if len(pts) != n {
		t.Fatalf("%d points, want %d", len(pts), n)
	}
	for i, p := range pts {
		if p.value != float64(i) {
			t.Fatalf("point %d = %+v", i, p)
		}
	}
}

// TestOpenUnknownKey: a key this format did not make.
func TestOpenUnknownKey(t *testing.T) {
	_, err := New().Open(parsers.StreamInfo{Key: "other:x", Path: t.TempDir()}, event.Position{}, nil, parsers.Options{})
	if !errors.Is(err, ErrUnknownStream) {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(fmt.Sprint(err), "other:x") {
		t.Errorf("err = %v", err)
	}
}

// TestStateBeforeFirstOperation: a checkpoint taken before any operation
// (an empty database being created) must not lose the run event.
func TestStateBeforeFirstOperation(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, ".neptune", "p_empty_1", "run_operations.sqlite3")
	db, err := neptunetest.CreateScaleDB(path, neptunetest.ScaleOptions{RunID: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := New()
	info := discoverOne(t, f, root)
	s, err := f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Next(context.Background(), nil)
	if !errors.Is(err, io.EOF) || len(ch.Events) != 0 || ch.State == nil {
		t.Fatalf("empty database: %+v, %v", ch, err)
	}
	s.Close()
	at := time.Unix(1735689600, 0)
	if err := db.CreateRun("later", at, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Metrics(0, at, false, neptunetest.Metric{Path: "x", Value: 1}); err != nil {
		t.Fatal(err)
	}
	s, err = f.Open(info, ch.End, ch.State, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sum := summarize(t, follow(t, s))
	if sum.runCount != 1 || sum.run.Name != "later" || len(sum.metrics["x"]) != 1 {
		t.Errorf("after resume: %+v", sum)
	}
}

// TestLiveNewMembers: a run resumed by a new process gets a new execution
// directory (neptune-client 1.9+) or a new database (neptune-scale); a
// follower picks it up after the first.
func TestLiveNewMembers(t *testing.T) {
	root := t.TempDir()
	const uuid = "bbbbbbbb-2222-4333-8444-555555555555"
	mk := func(name string, from int64) {
		dir := filepath.Join(root, ".neptune", "async", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b []byte
		for v := int64(1); v <= 2; v++ {
			b = neptunetest.AppendN1Record(b, v, 1735689600+float64(from+v), neptunetest.AppendLogFloats(nil, "m", float64(from+v), from+v, 1735689600+float64(from+v)))
		}
		appendFile(t, filepath.Join(dir, "data-1.log"), b)
	}
	mk("run__"+uuid+"__1__aaaaaaaa", 0)
	dbPath := filepath.Join(root, ".neptune", "p_r_1", "run_operations.sqlite3")
	db, err := neptunetest.CreateScaleDB(dbPath, neptunetest.ScaleOptions{RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1735689600, 0)
	if err := db.CreateRun("r", at, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Metrics(0, at, false, neptunetest.Metric{Path: "m", Value: 0}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	f := New()
	infos, err := f.Discover(root)
	if err != nil || len(infos) != 2 {
		t.Fatalf("Discover = %v, %v", infos, err)
	}
	var streams []parsers.Stream
	got := map[string][]event.Event{}
	for _, info := range infos {
		s, err := f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		streams = append(streams, s)
		got[info.Key] = follow(t, s)
	}
	mk("run__"+uuid+"__2__bbbbbbbb", 2)
	db2, err := neptunetest.CreateScaleDB(filepath.Join(root, ".neptune", "p_r_2", "run_operations.sqlite3"), neptunetest.ScaleOptions{RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db2.CreateRun("r", at.Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if err := db2.Metrics(1_000_000, at.Add(time.Hour), false, neptunetest.Metric{Path: "m", Value: 1}); err != nil {
		t.Fatal(err)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
	for i, info := range infos {
		got[info.Key] = append(got[info.Key], follow(t, streams[i])...)
	}
	for key, evs := range got {
		sum := summarize(t, evs)
		m := sum.metrics["m"]
		last := evs[len(evs)-1]
		var want int
		if strings.HasPrefix(key, keyPrefixN1) {
			want = 4
		} else {
			want = 2
		}
		if len(m) != want || last.Pos.Offset != 1 || sum.runCount != 1 {
			t.Errorf("%s: points %v, last position %v, %d run events", key, m, last.Pos, sum.runCount)
		}
		first := m[0].value
		for i, p := range m {
			if p.value != first+float64(i) || p.step != int64(p.value) {
				t.Errorf("%s: point %d = %+v", key, i, p)
			}
		}
	}
}

// TestResumedStreamNamesItsRun: a stream reopened from a saved state (the
// agent restarted after a checkpoint) starts with its run's identity again,
// the same external id and name as the first pass gave: the restarted agent
// knows the run only by it, and would otherwise put the rest of the data
// into a run named after the file.
func TestResumedStreamNamesItsRun(t *testing.T) {
	for _, name := range allFixtures {
		t.Run(name, func(t *testing.T) {
			fx := copyFixture(t, name)
			f := New()
			info := discoverOne(t, f, fx.root)
			opts := testOptions(fx, t)
			s, err := f.Open(info, event.Position{}, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			setChunkLimit(t, s, 3)
			first, err := s.Next(context.Background(), nil)
			if err != nil || len(first.Events) == 0 || first.Events[0].Kind != event.KindRun {
				t.Fatalf("first chunk: %v, %+v", err, first.Events)
			}
			want := *first.Events[0].Info
			ch, err := s.Next(context.Background(), nil)
			s.Close()
			if err != nil || ch.State == nil {
				t.Fatalf("second chunk: %v (state %v)", err, ch.State != nil)
			}
			r, err := f.Open(info, ch.End, ch.State, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			rest := follow(t, r)
			if len(rest) == 0 || rest[0].Kind != event.KindRun || rest[0].Info == nil {
				t.Fatalf("the resumed stream does not start with its run: %+v", rest[:min(len(rest), 1)])
			}
			got := rest[0].Info
			if got.ExternalID != want.ExternalID || got.Name != want.Name || got.CreatedAt != want.CreatedAt ||
				got.ForkParent != want.ForkParent || got.ForkStep != want.ForkStep {
				t.Errorf("resumed run identity %+v, want %+v", got, want)
			}
		})
	}
}
