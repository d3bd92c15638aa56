package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/mlop-ai/mlop-agent/agent/ledger"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/watcher"
)

// lineReader is the watcher.Handler of one line-format source: it parses
// the chunks the tailer reads and routes their events. Only the tailer's
// goroutine calls it, so its map needs no lock.
type lineReader struct {
	s     *sourceRT
	files map[string]*lineFile // by stream key
}

// lineFile is one file generation being read.
type lineFile struct {
	st      *streamRT
	lastEnd int64 // offset after the previous chunk
	// unusable: the parser said no record of the file can be used (a
	// column the configuration names is not in its header). Nothing of the
	// file is committed then, so a corrected configuration reads it all.
	unusable bool
	parser   parsers.Parser
	state    parsers.Stateful // nil when the parser has no state
	evs      []event.Event
}

var _ watcher.Handler = (*lineReader)(nil)

// runLines follows (or reads once) the files of a line-format source.
func (s *sourceRT) runLines(ctx context.Context) error {
	w := s.a.opts.Watch
	t, err := watcher.New(watcher.Options{
		Source: s.cfg.Name, Include: s.cfg.Paths, Exclude: s.cfg.Exclude, Follow: s.a.opts.Follow,
		PollInterval: w.PollInterval, FingerprintBytes: w.FingerprintBytes, MaxLineBytes: w.MaxLineBytes,
		MaxOpenFiles: w.MaxOpenFiles, Logger: s.log,
		OnWatching: func() { s.a.life.sourceReady(1) },
	})
	if err != nil {
		return err
	}
	s.tailer.Store(t)
	if s.a.life.finishing.Load() {
		t.Finish()
	}
	var known []watcher.Known
	for _, k := range s.a.ledger.Known(s.cfg.Name) {
		if k.FingerLen == 0 {
			continue // not a line file
		}
		known = append(known, watcher.Known{Key: k.Key, Path: k.Path, RunPath: k.RunPath, File: k.FileMark,
			Offset: k.Pos.Offset, Line: k.Line, Done: k.Done})
	}
	return t.Run(ctx, known, &lineReader{s: s, files: map[string]*lineFile{}})
}

// StreamOpened implements watcher.Handler.
func (h *lineReader) StreamOpened(_ context.Context, info watcher.StreamInfo) error {
	s := h.s
	ls := s.a.ledger.Claim(info.Key, s.cfg.Name, info.Path, info.RunPath)
	st := s.a.streams.get(ls, s.cfg.Name, s.cfg.Format)
	p, err := s.factory(s.parserOptions(info.RunPath))
	if err != nil {
		return fmt.Errorf("parser for %s: %w", info.Path, err)
	}
	lf := &lineFile{st: st, parser: p, lastEnd: info.Offset}
	if sp, ok := p.(parsers.Stateful); ok {
		lf.state = sp
		if info.Resumed {
			if err := sp.Restore(ls.Entry().ParserState); err != nil {
				s.log.Warn("parser state unreadable; continuing without it", "path", info.Path, "error", err)
			}
		}
	}
	if info.Resumed {
		s.log.Debug("resuming file", "path", info.Path, "offset", info.Offset, "line", info.Line)
	} else {
		s.log.Info("reading new file", "path", info.Path)
	}
	h.files[info.Key] = lf
	return nil
}

// StreamChunk implements watcher.Handler: parse, then route.
func (h *lineReader) StreamChunk(ctx context.Context, c *watcher.Chunk) error {
	s, a := h.s, h.s.a
	lf := h.files[c.Key]
	if lf == nil {
		return fmt.Errorf("chunk for unknown stream %s", c.Key)
	}
	ls := lf.st.ls
	if err := a.snd.budget.wait(ctx); err != nil {
		return err
	}
	if err := ls.WaitWindow(ctx, a.window()); err != nil {
		return err
	}
	if lf.unusable {
		return nil // said once; the checkpoint stays where it was
	}
	lf.evs = lf.evs[:0]
	for i := range c.Records {
		rec := &c.Records[i]
		var err error
		lf.evs, err = lf.parser.Parse(lf.evs, *rec)
		if errors.Is(err, parsers.ErrUnusable) {
			lf.unusable = true
			lf.st.unusable.Store(true)
			s.fileUnusable(c.Path, rec.Line, err)
			clear(lf.evs)
			return nil
		}
		if err != nil {
			a.rep.badRecord(s.cfg.Name, c.Path, rec.Line, parsers.Reason(err), err, rec.Data)
			lf.st.bad.Add(1)
		}
	}
	lf.st.read.Add(int64(len(c.Records)))
	a.rep.stats.RecordsRead.Add(int64(len(c.Records)))
	a.rep.tel.RecordsRead(s.cfg.Name, len(c.Records))
	ch := &ledger.Chunk{End: event.Position{Offset: c.End}, Line: c.Line, File: c.File, Path: c.Path, Size: c.Size,
		Bytes: max(c.End-lf.lastEnd, 0)}
	lf.lastEnd = c.End
	if lf.state != nil {
		st, err := lf.state.State()
		if err != nil {
			return fmt.Errorf("parser state of %s: %w", c.Path, err)
		}
		ch.State = st
	}
	ls.Push(ch)
	a.routeChunk(&routing{src: s, st: lf.st, c: ch, recs: c.Records}, lf.evs)
	ch.Release()
	clear(lf.evs) // drop references to points and strings
	return nil
}

// StreamClosed implements watcher.Handler.
func (h *lineReader) StreamClosed(_ context.Context, key, reason string) error {
	lf := h.files[key]
	delete(h.files, key)
	if lf == nil {
		return nil
	}
	for _, r := range lf.st.runs {
		// Nothing more comes from this file: the run's name set can go (a
		// backfill of a million distinct names then holds one file's).
		r.mu.Lock()
		r.names.forget()
		r.mu.Unlock()
	}
	lf.st.ls.Close(reason != watcher.ClosedDone)
	return nil
}

// FileSkipped implements watcher.Handler: a matched path that is not read
// is said once, counted by reason, and in a backfill listed as an input
// that could not be read (exit code 3).
func (h *lineReader) FileSkipped(_ context.Context, path, reason string, err error) error {
	s := h.s
	s.a.rep.stats.fileSkipped(reason)
	s.a.rep.tel.RecordRejected(s.cfg.Name, parsers.ReasonUnreadable)
	s.log.Warn("file not read", "path", path, "reason", reason, "error", err)
	s.a.rep.unreadable(s.cfg.Name, path, fmt.Errorf("%s: %w", reason, err))
	return nil
}

// fileUnusable reports a file no record of which can be used: once, as a
// matched file not read (exit code 3 in a backfill), with the place and
// the parser's words (which column, what the header has).
func (s *sourceRT) fileUnusable(path string, line int64, err error) {
	s.a.rep.stats.fileSkipped(SkipUnusable)
	s.a.rep.tel.RecordRejected(s.cfg.Name, parsers.Reason(err))
	s.a.rep.dlq.write(deadLetterEntry{Source: s.cfg.Name, Path: path, Line: line, Reason: SkipUnusable, Error: err.Error()})
	s.log.Warn("file not read", "file", fmt.Sprintf("%s:%d", path, line), "reason", SkipUnusable, "error", err,
		"hint", "nothing of it is marked read: with the configuration corrected, the next start reads it all")
	s.a.rep.unreadable(s.cfg.Name, path, fmt.Errorf("%s: %w", SkipUnusable, err))
}

// SkipUnusable is the reason a file is not read when its parser says no
// record of it can be used (parsers.ErrUnusable).
const SkipUnusable = "unusable"

// window is how many input bytes a stream may have read but not committed.
func (a *Agent) window() int64 { return 4 * int64(a.opts.Batch.MaxBytes) }
