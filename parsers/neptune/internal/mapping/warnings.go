package mapping

import (
	"sync"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// MaxWarnings is how many warnings a WarnBuf keeps between two calls of
// Warnings; more are only counted.
const MaxWarnings = 1000

// WarnBuf collects a stream's warnings for parsers.Warner; every reader of
// the Neptune formats uses one. OnSkip, when set, is called once per
// warning (the agent counts skipped operations with it).
type WarnBuf struct {
	OnSkip func(string)

	mu      sync.Mutex
	ws      []parsers.Warning
	dropped int
}

// Add records the mapper's warnings for an operation read from file.
func (b *WarnBuf) Add(file string, ws []Warning) {
	if len(ws) == 0 {
		return
	}
	b.mu.Lock()
	for _, w := range ws {
		if len(b.ws) < MaxWarnings {
			b.ws = append(b.ws, parsers.Warning{File: file, Pos: w.Pos, Reason: w.Reason, Detail: w.Detail, Missing: w.Missing})
		} else {
			b.dropped++
		}
	}
	b.mu.Unlock()
	if b.OnSkip != nil {
		for range ws {
			b.OnSkip(parsers.SkipOther)
		}
	}
}

// One records one warning.
func (b *WarnBuf) One(file string, pos event.Position, reason, detail string) {
	b.Add(file, []Warning{{Pos: pos, Reason: reason, Detail: detail}})
}

// Warnings returns the warnings collected since the last call, and how
// many were dropped, and forgets them.
func (b *WarnBuf) Warnings() ([]parsers.Warning, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws, d := b.ws, b.dropped
	b.ws, b.dropped = nil, 0
	return ws, d
}
