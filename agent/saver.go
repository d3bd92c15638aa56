package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/agent/ledger"
	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/internal/telemetry"
)

// saver writes the checkpoint: what the ledger committed, the sent marks,
// and the runs' tracker ids, into the checkpoint image, then the image to
// the state file. It runs every interval and on request (a run waiting for
// the durability barrier), and tells the ledger when a save is durable. It
// never decides what is committed. mu serialises saves; the image is used
// only under it.
type saver struct {
	ledger *ledger.Ledger
	runs   *runTable
	store  *checkpoint.Store // nil in a dry run: nothing is written
	tel    *telemetry.Telemetry
	log    *slog.Logger
	now    func() time.Time

	req chan struct{}

	mu      sync.Mutex
	im      *checkpoint.Image
	force   bool // the last save failed: write even if nothing changed
	streams []*ledger.Stream
	rs      []*run
}

// keepDone is how long a finished stream's entry is kept, so a rotated file
// that shows up again under a matched name is recognised.
const keepDone = 7 * 24 * time.Hour

// minSaveGap spaces saves requested by acknowledgements: requests that
// arrive meanwhile share the next save. It bounds fsyncs to a few hundred a
// second however fast the tracker acknowledges.
const minSaveGap = 5 * time.Millisecond

func newSaver(l *ledger.Ledger, runs *runTable, store *checkpoint.Store, st *checkpoint.State, tel *telemetry.Telemetry,
	log *slog.Logger, now func() time.Time) *saver {
	return &saver{ledger: l, runs: runs, store: store, tel: tel, log: log, now: now,
		req: make(chan struct{}, 1), im: checkpoint.NewImage(st, now().Add(-keepDone))}
}

// request asks for a save and returns the generation of the first save
// that will include everything recorded so far.
func (s *saver) request() uint64 {
	gen := s.ledger.NextSave()
	select {
	case s.req <- struct{}{}:
	default:
	}
	return gen
}

// loop saves every interval and on request until ctx ends.
func (s *saver) loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.req:
			if gap := minSaveGap - time.Since(last); gap > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(gap):
				}
			}
		}
		last = time.Now()
		if err := s.save(); err != nil {
			s.log.Error("checkpoint not saved; will retry", "error", err)
		}
	}
}

// save writes the checkpoint: every stream's committed entry that changed
// and every run whose persisted view changed. Nothing is encoded for what
// did not change, and nothing is written when nothing did. The ledger is
// told the save's generation is durable afterwards (also in a dry run,
// which writes nothing, so sends waiting on the barrier go on).
func (s *saver) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen := s.ledger.BeginSave()
	var changedStreams []*ledger.Stream
	s.streams = s.ledger.AppendStreams(s.streams[:0])
	for _, ls := range s.streams {
		if e, changed := ls.Snapshot(); changed {
			s.im.PutStream(e)
			changedStreams = append(changedStreams, ls)
		}
	}
	var changedRuns []*run
	s.rs = s.runs.list(s.rs[:0])
	for _, r := range s.rs {
		r.mu.Lock()
		if r.srv.id > 0 && r.ckDirty {
			s.im.PutRun(r.checkpointRun())
			r.ckDirty = false
			changedRuns = append(changedRuns, r)
		}
		r.mu.Unlock()
	}
	clear(s.streams)
	clear(s.rs)
	if s.store != nil {
		start := time.Now()
		if err := s.store.SaveImage(s.im, s.now(), s.force); err != nil {
			// What this save would have recorded is recorded by the next.
			s.force = true
			for _, ls := range changedStreams {
				ls.Unsaved()
			}
			for _, r := range changedRuns {
				r.mu.Lock()
				r.ckDirty = true
				r.mu.Unlock()
			}
			s.tel.CheckpointFailed()
			return err
		}
		s.force = false
		s.tel.CheckpointSaved(time.Now(), time.Since(start))
	}
	s.ledger.SaveDurable(gen)
	return nil
}
