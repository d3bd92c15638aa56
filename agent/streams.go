package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/agent/ledger"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/watcher"
)

// runStreams discovers and reads the streams of a stream-format source
// (Neptune runs, exports, TensorBoard runs), Parallel at a time, a fork
// after its parent.
func (s *sourceRT) runStreams(ctx context.Context) error {
	a := s.a
	m, err := watcher.NewMatcher(s.cfg.Paths, s.cfg.Exclude)
	if err != nil {
		return err
	}
	opened := map[string]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, a.opts.Parallel)
	poll := a.opts.Watch.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	byKey := map[string]*ledger.Stream{}
	runKeys := map[string]string{} // run external id -> stream key, over every pass
	finished, discovered := false, false
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
				a.rep.stats.badRecord(parsers.ReasonUnreadable)
				a.rep.tel.RecordRejected(s.cfg.Name, parsers.ReasonUnreadable)
				a.rep.unreadable(s.cfg.Name, p, err)
				continue
			}
			infos = append(infos, found...)
		}
		s.discovered.Add(int64(len(infos)))
		infos = linkParents(infos, runKeys)
		infos = a.inShard(infos)
		for _, info := range infos {
			if opened[info.Key] {
				continue
			}
			opened[info.Key] = true
			if info.Signature == "" {
				info.Signature = pathSignature(info.Path)
			}
			ls := a.ledger.Claim(info.Key, s.cfg.Name, info.Path, info.Path)
			st := a.streams.get(ls, s.cfg.Name, s.cfg.Format)
			byKey[info.Key] = ls
			if ls.SetSignature(info.Signature, !a.opts.Follow) {
				// Imported completely before and unchanged since.
				a.rep.stats.StreamsSkipped.Add(1)
				continue
			}
			var parent *ledger.Stream
			if info.Parent != "" {
				parent = byKey[info.Parent]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if parent != nil {
					// Parents first: a fork's run is created after its
					// parent's, and the parent's data leads. A backfill
					// waits for all of it — the tracker refuses a fork
					// step beyond the parent's last stored step; a live
					// follow cannot wait for a parent that never ends.
					wait := parent.FirstCommit()
					if !a.opts.Follow {
						wait = parent.Done()
					}
					select {
					case <-wait:
					case <-ctx.Done():
						return
					}
				}
				sl := &slot{sem: sem}
				if sl.acquire(ctx) != nil {
					return
				}
				defer sl.release()
				if err := s.readStream(ctx, info, st, sl); err != nil && !errors.Is(err, context.Canceled) {
					s.log.Error("stream failed; the other streams go on", "path", info.Path, "key", info.Key, "error", err)
					a.rep.stats.badRecord(parsers.ReasonStreamFailed)
					a.rep.tel.RecordRejected(s.cfg.Name, parsers.ReasonStreamFailed)
					ls.Fail(err.Error())
					a.rep.stats.StreamsFailed.Add(1)
				}
			}()
		}
		if !a.opts.Follow || finished {
			wg.Wait()
			return nil
		}
		if !discovered {
			discovered = true
			a.life.sourceReady(1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.life.finishCh:
			finished = true // one more discovery pass, then read everything to the end
		case <-time.After(poll):
		}
	}
}

// slot is a stream's share of Options.Parallel. A followed stream gives it
// back while it waits for new data, so that more streams than Parallel can
// be followed (a TensorBoard run with sub-directories is several).
type slot struct {
	sem  chan struct{}
	held bool
}

func (sl *slot) acquire(ctx context.Context) error {
	if sl.held {
		return nil
	}
	select {
	case sl.sem <- struct{}{}:
		sl.held = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (sl *slot) release() {
	if sl.held {
		<-sl.sem
		sl.held = false
	}
}

// readStream reads one stream of a stream format.
func (s *sourceRT) readStream(ctx context.Context, info parsers.StreamInfo, st *streamRT, sl *slot) error {
	a, ls := s.a, st.ls
	entry := ls.Entry()
	resume, state := entry.Pos, entry.ParserState
	defer ls.EndFirstCommit()
	strm, err := s.stream.Open(info, resume, state, s.parserOptions(info.Path))
	if err != nil {
		return err
	}
	defer strm.Close()
	poll := a.opts.Watch.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	var evs []event.Event
	finishedNow := false
	for {
		if err := a.snd.budget.wait(ctx); err != nil {
			return err
		}
		if err := ls.WaitWindow(ctx, a.window()); err != nil {
			return err
		}
		c, err := strm.Next(ctx, evs[:0])
		if len(c.Events) > 0 || (c.End != (event.Position{}) && resume.Less(c.End)) {
			ch := &ledger.Chunk{End: c.End, State: c.State, Bytes: c.Bytes}
			ls.Push(ch)
			a.rep.stats.RecordsRead.Add(int64(len(c.Events)))
			a.rep.tel.RecordsRead(s.cfg.Name, len(c.Events))
			a.routeChunk(&routing{src: s, st: st, c: ch}, c.Events)
			ch.Release()
			resume = c.End
			evs = c.Events
			clear(evs)
		}
		if w, ok := strm.(parsers.Warner); ok {
			s.reportWarnings(st, w)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			if !a.opts.Follow || finishedNow {
				if !a.opts.Follow {
					ls.Complete()
				}
				return nil
			}
			sl.release() // a followed stream waiting for data holds no slot
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-a.life.finishCh:
				finishedNow = true // read what is there now, then stop
			case <-time.After(poll):
			}
			if err := sl.acquire(ctx); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// reportWarnings counts, logs and dead-letters what a stream format
// skipped, and keeps the counts by reason for the report.
func (s *sourceRT) reportWarnings(st *streamRT, w parsers.Warner) {
	ws, dropped := w.Warnings()
	s.a.rep.notImported.addItems(st.ls.Key(), ws)
	if len(ws) > 0 {
		st.mu.Lock()
		if st.warnings == nil {
			st.warnings = map[string]int{}
		}
		for _, x := range ws {
			st.warnings[x.Reason]++
		}
		st.mu.Unlock()
	}
	for _, x := range ws {
		if x.Missing != "" {
			s.missing.add(x.Missing)
		}
	}
	for _, x := range ws {
		s.a.rep.warning(s.cfg.Name, x.File, x.Pos.Seq, x.Reason, x.Detail, x.String())
	}
	if dropped > 0 {
		s.log.Warn("more warnings were dropped", "count", dropped)
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
