package agent

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/telemetry"
)

// lags reports every stream's lag, for /metrics: the bytes of its file not
// yet committed — the file it reads, also after it was rotated away (the
// size the reader last saw), or the one at its path if that is larger —
// and the age of its oldest uncommitted chunk.
func (a *Agent) lags() []telemetry.Lag {
	now := time.Now()
	streams := a.ledger.Streams()
	out := make([]telemetry.Lag, 0, len(streams))
	for _, s := range streams {
		lg := s.Lag()
		st := a.streams.get(s, "", "")
		l := telemetry.Lag{Source: st.source, Path: lg.Path}
		if lg.LineFile {
			size := lg.Size
			if !lg.Left {
				if fi, err := os.Stat(lg.Path); err == nil {
					size = max(size, fi.Size())
				}
			}
			l.BytesBehind = max(size-lg.Committed, 0)
		}
		if !lg.Oldest.IsZero() {
			l.SecondsBehind = now.Sub(lg.Oldest).Seconds()
		}
		out = append(out, l)
	}
	return out
}

// OldestUnacked returns when the oldest data not yet acknowledged was read
// (zero when everything is acknowledged), for readiness.
func (a *Agent) OldestUnacked() time.Time {
	var oldest time.Time
	for _, s := range a.ledger.Streams() {
		if o := s.Oldest(); !o.IsZero() && (oldest.IsZero() || o.Before(oldest)) {
			oldest = o
		}
	}
	return oldest
}

// Flush sends every partial batch now and waits until the tracker has
// acknowledged everything read so far, or ctx ends (POST /flush, a
// preStop hook). Reading goes on meanwhile.
func (a *Agent) Flush(ctx context.Context) error {
	a.flushAll()
	if !a.waitIdle(ctx) {
		if err := ctx.Err(); err != nil {
			return err
		}
		return errors.New("flush interrupted")
	}
	return a.saver.save()
}

// BufferedBytes is how many bytes of read data wait for the tracker (the
// memory budget in use): what the sink's trouble log reports while an
// endpoint fails.
func (a *Agent) BufferedBytes() int64 { return a.snd.budget.inUse() }
