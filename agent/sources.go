package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/internal/telemetry"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/presets"
	"github.com/mlop-ai/mlop-agent/watcher"
)

// sourceRT is a configured source at run time.
type sourceRT struct {
	a           *Agent
	cfg         Source
	log         *slog.Logger
	namer       *runNamer
	factory     parsers.Factory      // line formats
	stream      parsers.StreamFormat // stream formats
	uploadRoots []string

	badMu    sync.Mutex
	badLast  time.Time
	badCount int   // bad records logged in the current second
	badQuiet int64 // bad records not logged in the current second

	// Only the reader goroutine touches lines.
	lines map[string]*lineStream

	tailer atomic.Pointer[watcher.Tailer] // for file counts
}

// lineStream is one file generation of a line source.
type lineStream struct {
	ss      *streamState
	lastEnd int64 // offset after the previous chunk
	parser  parsers.Parser
	state   parsers.Stateful // nil when the parser has no state
	evs     []event.Event
}

// buildSources resolves formats and templates before anything starts.
func (a *Agent) buildSources() ([]*sourceRT, error) {
	var out []*sourceRT
	for _, s := range a.opts.Sources {
		s = applyPreset(s)
		rt := &sourceRT{a: a, cfg: s, log: a.log.With("source", s.Name), lines: map[string]*lineStream{}}
		var err error
		if rt.namer, err = newRunNamer(s); err != nil {
			return nil, err
		}
		if f, ok := parsers.Lookup(s.Format); ok {
			rt.factory = f
		} else if sf, ok := parsers.LookupStream(s.Format); ok {
			rt.stream = sf
		} else {
			return nil, fmt.Errorf("source %q: unknown format %q (known: %s)", s.Name, s.Format, strings.Join(parsers.Formats(), ", "))
		}
		rt.uploadRoots = a.uploadRoots(s)
		if rt.stream != nil && strings.HasPrefix(s.Format, "neptune") {
			// Neptune's inline files (base64 images) are written out under
			// the state directory; those may be uploaded.
			spool := filepath.Join(a.opts.StateDir, "spool", s.Name)
			if rt.cfg.Params == nil {
				rt.cfg.Params = map[string]string{}
			}
			if rt.cfg.Params["spool_dir"] == "" {
				rt.cfg.Params["spool_dir"] = spool
				if err := os.MkdirAll(spool, 0o700); err == nil {
					if real, err := filepath.EvalSymlinks(spool); err == nil {
						spool = real
					}
					rt.uploadRoots = append(rt.uploadRoots, spool)
				}
			}
		}
		out = append(out, rt)
	}
	return out, nil
}

// applyPreset expands a preset format name (lightning, keras, yolo, sb3,
// ...) into the format it uses and its defaults; what the source sets
// itself wins.
func applyPreset(s Source) Source {
	p, ok := presets.Lookup(s.Format)
	if !ok {
		return s
	}
	s.Format = p.Format
	if s.StepField == "" {
		s.StepField = p.StepField
	}
	if s.TimeField == "" {
		s.TimeField = p.TimeField
	}
	if s.RunName == "" {
		s.RunName = p.RunName
	}
	if len(s.ConfigFiles) == 0 {
		s.ConfigFiles = p.ConfigFiles
	}
	params := map[string]string{}
	for k, v := range p.Params {
		params[k] = v
	}
	for k, v := range s.Params {
		params[k] = v
	}
	s.Params = params
	return s
}

// uploadRoots returns the resolved directories files may be uploaded from.
func (a *Agent) uploadRoots(s Source) []string {
	roots := a.opts.UploadRoots
	if len(roots) == 0 {
		m, err := watcher.NewMatcher(s.Paths, nil)
		if err == nil {
			roots = m.Roots()
		}
	}
	var out []string
	for _, r := range roots {
		if real, err := filepath.EvalSymlinks(r); err == nil {
			r = real
		}
		out = append(out, filepath.Clean(r))
	}
	return out
}

// runSources runs every source until ctx ends (follow) or they are read to
// the end (backfill).
func (a *Agent) runSources(ctx context.Context, srcs []*sourceRT) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range srcs {
		g.Go(func() error {
			var err error
			if s.factory != nil {
				err = s.runLines(gctx)
			} else {
				err = s.runStreams(gctx)
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("source %q: %w", s.cfg.Name, err)
			}
			return err
		})
	}
	return g.Wait()
}

// claimStream returns the state of a stream, from the checkpoint when it
// was seen before.
func (a *Agent) claimStream(key, source, format, path, runPath string) *streamState {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ss, ok := a.streams[key]; ok {
		ss.mu.Lock()
		ss.path = path
		ss.dirty = true
		ss.mu.Unlock()
		return ss
	}
	cp, ok := a.loaded[key]
	if ok {
		delete(a.loaded, key)
	} else {
		cp = checkpoint.Stream{Key: key, Source: source, Path: path, RunPath: runPath}
	}
	if cp.RunPath == "" {
		cp.RunPath = runPath
	}
	ss := newStreamState(cp)
	ss.path, ss.format = path, format // not shared yet
	a.streams[key] = ss
	return ss
}

// knownFor lists the checkpointed line streams of a source for the watcher.
func (a *Agent) knownFor(source string) []watcher.Known {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []watcher.Known
	for _, s := range a.loaded {
		if s.Source != source || s.Fingerprint == "" {
			continue
		}
		out = append(out, watcher.Known{
			Key: s.Key, Path: s.Path, RunPath: s.RunPath, Fingerprint: s.Fingerprint, FingerLen: s.FingerLen,
			Offset: s.Pos.Offset, Line: s.Line, Marker: s.Marker, MarkerLen: s.MarkerLen, Done: s.Done,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (s *sourceRT) parserOptions(path string) parsers.Options {
	a := s.a
	return parsers.Options{
		Source: s.cfg.Name, Path: path, StepField: s.cfg.StepField, TimeField: s.cfg.TimeField,
		RunField: s.cfg.RunField, MaxRecordBytes: a.opts.Watch.MaxLineBytes, StepMultiplier: s.cfg.StepMultiplier,
		Params: s.cfg.Params, Now: a.now,
		OnSkip: func(reason string) {
			a.stats.skip(reason)
			a.tel.ValueSkipped(s.cfg.Name, reason)
		},
	}.WithDefaults()
}

// runLines follows (or reads once) the files of a line-format source.
func (s *sourceRT) runLines(ctx context.Context) error {
	w := s.a.opts.Watch
	t, err := watcher.New(watcher.Options{
		Source: s.cfg.Name, Include: s.cfg.Paths, Exclude: s.cfg.Exclude, Follow: s.a.opts.Follow,
		PollInterval: w.PollInterval, FingerprintBytes: w.FingerprintBytes, MaxLineBytes: w.MaxLineBytes,
		MaxOpenFiles: w.MaxOpenFiles, Logger: s.log,
	})
	if err != nil {
		return err
	}
	s.tailer.Store(t)
	if s.a.finishing.Load() {
		t.Finish()
	}
	return t.Run(ctx, s.a.knownFor(s.cfg.Name), s)
}

// StreamOpened implements watcher.Handler.
func (s *sourceRT) StreamOpened(_ context.Context, info watcher.StreamInfo) error {
	ss := s.a.claimStream(info.Key, s.cfg.Name, s.cfg.Format, info.Path, info.RunPath)
	p, err := s.factory(s.parserOptions(info.RunPath))
	if err != nil {
		return fmt.Errorf("parser for %s: %w", info.Path, err)
	}
	ls := &lineStream{ss: ss, parser: p, lastEnd: info.Offset}
	if st, ok := p.(parsers.Stateful); ok {
		ls.state = st
		if info.Resumed {
			ss.mu.Lock()
			state := ss.committed.ParserState
			ss.mu.Unlock()
			if err := st.Restore(state); err != nil {
				s.log.Warn("parser state unreadable; continuing without it", "path", info.Path, "error", err)
			}
		}
	}
	if info.Resumed {
		s.log.Debug("resuming file", "path", info.Path, "offset", info.Offset, "line", info.Line)
	} else {
		s.log.Info("reading new file", "path", info.Path)
	}
	s.lines[info.Key] = ls
	return nil
}

// StreamChunk implements watcher.Handler: parse, then route.
func (s *sourceRT) StreamChunk(ctx context.Context, c *watcher.Chunk) error {
	ls := s.lines[c.Key]
	if ls == nil {
		return fmt.Errorf("chunk for unknown stream %s", c.Key)
	}
	ss := ls.ss
	if err := s.a.budget.wait(ctx); err != nil {
		return err
	}
	if err := ss.waitWindow(ctx, s.a.window()); err != nil {
		return err
	}
	ls.evs = ls.evs[:0]
	for i := range c.Records {
		rec := &c.Records[i]
		var err error
		ls.evs, err = ls.parser.Parse(ls.evs, *rec)
		if err != nil {
			s.badRecord(ss, rec.Line, parsers.Reason(err), err, rec.Data)
		}
	}
	s.a.stats.RecordsRead.Add(int64(len(c.Records)))
	s.a.tel.RecordsRead(s.cfg.Name, len(c.Records))
	ch := &chunk{end: event.Position{Offset: c.End}, line: c.Line, marker: c.Marker, markerN: c.MarkerLen, size: c.Size,
		bytes: max(c.End-ls.lastEnd, 0)}
	ls.lastEnd = c.End
	if ls.state != nil {
		st, err := ls.state.State()
		if err != nil {
			return fmt.Errorf("parser state of %s: %w", c.Path, err)
		}
		ch.state = st
	}
	ss.mu.Lock()
	ss.path = c.Path
	ss.committed.Fingerprint, ss.committed.FingerLen = c.Fingerprint, c.FingerLen
	ss.mu.Unlock()
	ch.refs.Store(1)
	ss.push(ch)
	s.a.routeChunk(s, ss, ch, ls.evs)
	ch.refs.Add(-1)
	clear(ls.evs) // drop references to points and strings
	return nil
}

// StreamClosed implements watcher.Handler.
func (s *sourceRT) StreamClosed(_ context.Context, key, reason string) error {
	ls := s.lines[key]
	delete(s.lines, key)
	if ls == nil {
		return nil
	}
	ls.ss.mu.Lock()
	ls.ss.linesDone = true
	if reason != watcher.ClosedDone {
		ls.ss.doneWhenIdle = true
		ls.ss.dirty = true
	}
	ls.ss.mu.Unlock()
	ls.ss.firstOnce.Do(func() { close(ls.ss.firstCommit) })
	return nil
}

// badRecord counts a record that could not be used, dead-letters it and
// logs it (at most maxBadLogsPerSecond lines a second per source).
func (s *sourceRT) badRecord(ss *streamState, line int64, reason string, err error, data []byte) {
	s.a.stats.badRecord(reason)
	s.a.tel.RecordRejected(s.cfg.Name, reason)
	if s.a.dlq != nil {
		s.a.tel.DeadLettered(1)
	}
	s.a.dlq.write(deadLetterEntry{Source: s.cfg.Name, Path: ss.currentPath(), Line: line, Reason: reason, Error: err.Error(), Data: string(data)})
	s.logBad(ss, line, reason, err)
}

// logBad logs bad records with a per-second cap.
func (s *sourceRT) logBad(ss *streamState, line int64, reason string, err error) {
	s.badMu.Lock()
	defer s.badMu.Unlock()
	if now := time.Now(); now.Sub(s.badLast) >= time.Second {
		if s.badQuiet > 0 {
			s.log.Warn("bad records not logged in the last second", "count", s.badQuiet)
		}
		s.badLast, s.badCount, s.badQuiet = now, 0, 0
	}
	s.badCount++
	if s.badCount > maxBadLogsPerSecond {
		s.badQuiet++
		return
	}
	s.log.Warn("bad record skipped", "file", fmt.Sprintf("%s:%d", ss.currentPath(), line), "reason", reason, "error", err)
}

const maxBadLogsPerSecond = 20

// badEvent reports an event the server would reject.
func (s *sourceRT) badEvent(ss *streamState, ev *event.Event, err error) {
	s.a.stats.badRecord("invalid_event")
	s.a.tel.RecordRejected(s.cfg.Name, "invalid_event")
	s.a.dlq.write(deadLetterEntry{Source: s.cfg.Name, Path: ss.currentPath(), Reason: "invalid_event", Error: err.Error(), Kind: ev.Kind.String()})
	s.logBad(ss, 0, "invalid_event", err)
}

// runStreams discovers and reads the streams of a stream-format source.
func (s *sourceRT) runStreams(ctx context.Context) error {
	m, err := watcher.NewMatcher(s.cfg.Paths, s.cfg.Exclude)
	if err != nil {
		return err
	}
	opened := map[string]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, s.a.opts.Parallel)
	poll := s.a.opts.Watch.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	byKey := map[string]*streamState{}
	runKeys := map[string]string{} // run external id -> stream key, over every pass
	finished := false
	for {
		paths, err := m.GlobAll()
		if err != nil {
			s.log.Debug("some paths could not be read", "error", err)
		}
		var infos []parsers.StreamInfo
		for _, p := range paths {
			found, err := s.discover(p)
			if err != nil {
				s.log.Error("cannot read", "path", p, "error", err)
				s.a.stats.badRecord("unreadable")
				s.a.tel.RecordRejected(s.cfg.Name, "unreadable")
				s.a.noteFailure(s.cfg.Name, p, err)
				continue
			}
			infos = append(infos, found...)
		}
		infos = linkParents(infos, runKeys)
		infos = s.a.inShard(infos)
		for _, info := range infos {
			if opened[info.Key] {
				continue
			}
			opened[info.Key] = true
			if info.Signature == "" {
				info.Signature = pathSignature(info.Path)
			}
			ss := s.a.claimStream(info.Key, s.cfg.Name, s.cfg.Format, info.Path, info.Path)
			byKey[info.Key] = ss
			ss.mu.Lock()
			skip := !s.a.opts.Follow && ss.committed.Done && ss.committed.Signature == info.Signature
			ss.signature = info.Signature
			if skip {
				ss.complete = true
			}
			ss.mu.Unlock()
			if skip {
				// Imported completely before and unchanged since.
				ss.firstOnce.Do(func() { close(ss.firstCommit) })
				s.a.stats.StreamsSkipped.Add(1)
				continue
			}
			var parent *streamState
			if info.Parent != "" {
				parent = byKey[info.Parent]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if parent != nil {
					// Parents first: a fork's run is created after its
					// parent's, and the parent's data leads.
					select {
					case <-parent.firstCommit:
					case <-ctx.Done():
						return
					}
				}
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				defer func() { <-sem }()
				if err := s.readStream(ctx, info, ss); err != nil && !errors.Is(err, context.Canceled) {
					s.log.Error("stream failed; the other streams go on", "path", info.Path, "key", info.Key, "error", err)
					s.a.stats.badRecord("stream_failed")
					s.a.tel.RecordRejected(s.cfg.Name, "stream_failed")
					ss.mu.Lock()
					ss.failed = err.Error()
					ss.mu.Unlock()
					s.a.stats.StreamsFailed.Add(1)
				}
			}()
		}
		if !s.a.opts.Follow || finished {
			wg.Wait()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.a.finishCh:
			finished = true // one more discovery pass, then read everything to the end
		case <-time.After(poll):
		}
	}
}

// linkParents sets Parent from ParentRunID when the parent run's stream was
// found under another path, and orders parents before their forks.
func linkParents(infos []parsers.StreamInfo, runKeys map[string]string) []parsers.StreamInfo {
	for _, in := range infos {
		if in.RunID != "" {
			if _, dup := runKeys[in.RunID]; !dup {
				runKeys[in.RunID] = in.Key
			}
		}
	}
	for i := range infos {
		if infos[i].Parent == "" && infos[i].ParentRunID != "" {
			if k, ok := runKeys[infos[i].ParentRunID]; ok && k != infos[i].Key {
				infos[i].Parent = k
			}
		}
	}
	// Depth in the fork tree first, then the discovery order.
	index := map[string]int{}
	for i, in := range infos {
		index[in.Key] = i
	}
	depth := map[string]int{}
	for _, in := range infos {
		d := 0
		for k := in.Parent; k != "" && d < 64; d++ {
			j, ok := index[k]
			if !ok {
				break
			}
			k = infos[j].Parent
		}
		depth[in.Key] = d
	}
	sort.SliceStable(infos, func(i, j int) bool { return depth[infos[i].Key] < depth[infos[j].Key] })
	return infos
}

// inShard keeps the streams of this shard: whole fork families hash to one
// shard, so a fork and its parent are imported by the same process.
func (a *Agent) inShard(infos []parsers.StreamInfo) []parsers.StreamInfo {
	n := a.opts.Shard.Count
	if n <= 1 {
		return infos
	}
	parent := map[string]string{}
	for _, in := range infos {
		parent[in.Key] = in.Parent
	}
	root := func(k string) string {
		for i := 0; i < 64; i++ { // a cycle would be a format bug; stop anyway
			p, ok := parent[k]
			if !ok || p == "" {
				return k
			}
			k = p
		}
		return k
	}
	var out []parsers.StreamInfo
	for _, in := range infos {
		h := fnv.New64a()
		h.Write([]byte(root(in.Key)))
		if int(h.Sum64()%uint64(n)) == a.opts.Shard.Index {
			out = append(out, in)
		}
	}
	return out
}

// pathSignature summarises the sizes and modification times of a file or
// of the files under a directory: cheap (stat only) and different whenever
// data was added or rewritten.
func pathSignature(path string) string {
	h := fnv.New64a()
	n := 0
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if n++; n > 10000 {
			return fs.SkipAll
		}
		if fi, err := d.Info(); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%d\n", p, fi.Size(), fi.ModTime().UnixNano())
		}
		return nil
	})
	return fmt.Sprintf("stat:%016x", h.Sum64())
}

// readStream reads one stream of a stream format.
func (s *sourceRT) readStream(ctx context.Context, info parsers.StreamInfo, ss *streamState) error {
	ss.mu.Lock()
	resume, state := ss.committed.Pos, ss.committed.ParserState
	ss.mu.Unlock()
	defer ss.firstOnce.Do(func() { close(ss.firstCommit) })
	st, err := s.stream.Open(info, resume, state, s.parserOptions(info.Path))
	if err != nil {
		return err
	}
	defer st.Close()
	poll := s.a.opts.Watch.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	var evs []event.Event
	finishedNow := false
	for {
		if err := s.a.budget.wait(ctx); err != nil {
			return err
		}
		if err := ss.waitWindow(ctx, s.a.window()); err != nil {
			return err
		}
		c, err := st.Next(ctx, evs[:0])
		if len(c.Events) > 0 || (c.End != (event.Position{}) && resume.Less(c.End)) {
			ch := &chunk{end: c.End, state: c.State, bytes: c.Bytes}
			ch.refs.Store(1)
			ss.push(ch)
			s.a.stats.RecordsRead.Add(int64(len(c.Events)))
			s.a.tel.RecordsRead(s.cfg.Name, len(c.Events))
			s.a.routeChunk(s, ss, ch, c.Events)
			ch.refs.Add(-1)
			resume = c.End
			evs = c.Events
			clear(evs)
		}
		if w, ok := st.(parsers.Warner); ok {
			s.reportWarnings(ss, w)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			if !s.a.opts.Follow || finishedNow {
				if !s.a.opts.Follow {
					ss.mu.Lock()
					ss.complete = true
					ss.dirty = true
					ss.mu.Unlock()
				}
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.a.finishCh:
				finishedNow = true // read what is there now, then stop
			case <-time.After(poll):
			}
		default:
			return err
		}
	}
}

// window is how many input bytes a stream may have read but not committed.
func (a *Agent) window() int64 { return 4 * int64(a.opts.Batch.MaxBytes) }

// reportWarnings logs, counts and dead-letters what a stream format skipped.
func (s *sourceRT) reportWarnings(ss *streamState, w parsers.Warner) {
	ws, dropped := w.Warnings()
	s.a.notImported.addItems(ss.key, ws)
	if len(ws) > 0 {
		ss.mu.Lock()
		if ss.warnings == nil {
			ss.warnings = map[string]int{}
		}
		for _, x := range ws {
			ss.warnings[x.Reason]++
		}
		ss.mu.Unlock()
	}
	for _, x := range ws {
		s.a.stats.badRecord(x.Reason)
		s.a.tel.RecordRejected(s.cfg.Name, telemetry.ReasonOther)
		s.a.dlq.write(deadLetterEntry{Source: s.cfg.Name, Path: x.File, Line: x.Pos.Seq, Reason: x.Reason, Error: x.Detail})
		s.badMu.Lock()
		if now := time.Now(); now.Sub(s.badLast) >= time.Second {
			s.badLast, s.badCount = now, 0
		}
		s.badCount++
		show := s.badCount <= maxBadLogsPerSecond
		s.badMu.Unlock()
		if show {
			s.log.Warn("skipped", "at", x.String())
		}
	}
	if dropped > 0 {
		s.log.Warn("more warnings were dropped", "count", dropped)
	}
}

// readConfigFiles merges the sidecar config files of a metric file, and
// returns a signature of their names, sizes and times.
func (s *sourceRT) readConfigFiles(path string) (map[string]any, string) {
	out := map[string]any{}
	matches := s.configFiles(path)
	sig := filesSignature(matches)
	if s.a.opts.ReadConfigFile == nil {
		return out, sig
	}
	for _, m := range matches {
		doc, err := s.a.opts.ReadConfigFile(m)
		if err != nil {
			s.log.Warn("cannot read config file", "path", m, "error", err)
			continue
		}
		out = deepMerge(out, doc)
	}
	return out, sig
}

// configFiles lists the files run.config_files matches beside path.
func (s *sourceRT) configFiles(path string) []string {
	dir := filepath.Dir(path)
	var all []string
	for _, g := range s.cfg.ConfigFiles {
		matches, _ := filepath.Glob(filepath.Join(dir, g))
		sort.Strings(matches)
		all = append(all, matches...)
	}
	return all
}

// filesSignature summarises names, sizes and modification times.
func filesSignature(paths []string) string {
	h := fnv.New64a()
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%d\n", p, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// refreshConfigFiles re-reads a run's config files when they changed and
// queues the new content as a config update. Called with r.mu held.
func (a *Agent) refreshConfigFiles(r *runState) bool {
	src := r.cfgSource
	if src == nil {
		return false
	}
	if filesSignature(src.configFiles(r.cfgPath)) == r.cfgSig {
		return false
	}
	doc, sig := src.readConfigFiles(r.cfgPath)
	r.cfgSig = sig
	if len(doc) == 0 {
		return false
	}
	src.log.Info("config file changed; updating the run's config", "run", r.name)
	r.cfgDelta = deepMerge(r.cfgDelta, doc)
	return true
}
