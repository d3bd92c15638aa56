package mlop

import (
	"log/slog"
	"sync"
	"time"
)

// troubleReminder is how often a failure that goes on is logged again.
const troubleReminder = 30 * time.Second

// trouble keeps the operator told about a server that does not answer, per
// operation ("send metrics", "create run", ...): the first failed attempt
// after a success (or at start) is a WARN line with the real error and URL;
// while it keeps failing, a reminder every troubleReminder says for how long
// and how much data waits; the first success after that is an INFO line.
// Only failures worth retrying count (connection errors, timeouts, 408, 429,
// 5xx, routing faults): an answer the server gave on purpose, even a 4xx,
// shows that it is reachable. It owns its lock; the request path calls it
// once per attempt.
type trouble struct {
	log      *slog.Logger
	now      func() time.Time
	buffered func() int64 // bytes waiting for the server; nil: unknown

	mu  sync.Mutex
	ops map[string]*opTrouble
}

type opTrouble struct {
	since    time.Time // first failure of this spell
	reminded time.Time // last line logged
	attempts int       // failed attempts in this spell
}

func newTrouble(log *slog.Logger, buffered func() int64) *trouble {
	return &trouble{log: log, now: time.Now, buffered: buffered, ops: map[string]*opTrouble{}}
}

// failed records a failed attempt of op against url.
func (t *trouble) failed(op, url, reason string) {
	now := t.now()
	t.mu.Lock()
	o := t.ops[op]
	first := o == nil
	if first {
		o = &opTrouble{since: now}
		t.ops[op] = o
	}
	o.attempts++
	remind := !first && now.Sub(o.reminded) >= troubleReminder
	if first || remind {
		o.reminded = now
	}
	since, attempts := o.since, o.attempts
	t.mu.Unlock()
	switch {
	case first:
		t.log.Warn("server not answering; retrying, data is kept", "op", op, "url", url, "error", reason)
	case remind:
		attrs := []any{"op", op, "url", url, "failing_for", now.Sub(since).Round(time.Second),
			"attempts", attempts, "error", reason}
		if t.buffered != nil {
			attrs = append(attrs, "buffered_bytes", t.buffered())
		}
		t.log.Warn("server still not answering; retrying, data is kept", attrs...)
	}
}

// succeeded records an answer for op; after failures it logs the recovery.
func (t *trouble) succeeded(op string) {
	t.mu.Lock()
	o := t.ops[op]
	if o == nil {
		t.mu.Unlock()
		return
	}
	delete(t.ops, op)
	t.mu.Unlock()
	t.log.Info("server answering again", "op", op, "failed_for", t.now().Sub(o.since).Round(time.Millisecond),
		"failed_attempts", o.attempts)
}
