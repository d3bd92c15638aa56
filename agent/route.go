package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlop-ai/mlop-agent/agent/ledger"
	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/sink"
)

// routing is what a stream's reader goroutine knows while it hands the
// events of one chunk to their runs: the source, the stream, the chunk and
// (line sources) its records, for naming bad records by file:line.
type routing struct {
	src  *sourceRT
	st   *streamRT
	c    *ledger.Chunk
	recs []event.Record // Data alias the reader's buffer: only while routing
}

// record finds the record an event at pos came from.
func (rt *routing) record(pos event.Position) (event.Record, bool) {
	lo, hi := 0, len(rt.recs)
	for lo < hi {
		m := (lo + hi) / 2
		if rt.recs[m].Pos.Less(pos) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(rt.recs) && rt.recs[lo].Pos == pos {
		return rt.recs[lo], true
	}
	return event.Record{}, false
}

// lineOf is the line of the record at pos (its sequence number for stream
// formats).
func (rt *routing) lineOf(pos event.Position) int64 {
	if rec, ok := rt.record(pos); ok {
		return rec.Line
	}
	return pos.Seq
}

// dataOf is a copy of the record at pos, for the dead-letter file.
func (rt *routing) dataOf(pos event.Position) []byte {
	if rec, ok := rt.record(pos); ok {
		return append([]byte(nil), rec.Data...)
	}
	return nil
}

// bad reports a record of this chunk as bad.
func (rt *routing) bad(pos event.Position, reason string, err error, withData bool) {
	var data []byte
	if withData {
		data = rt.dataOf(pos)
	}
	rt.src.a.rep.badRecord(rt.src.cfg.Name, rt.st.ls.Path(), rt.lineOf(pos), reason, err, data)
}

// routeChunk hands the events of one chunk to their runs. It is called by
// the stream's reader goroutine, which holds a reference on the chunk for
// the duration.
func (a *Agent) routeChunk(rt *routing, evs []event.Event) {
	var (
		lastPos event.Position
		idx     int
		r       *run
		lastRun = "\x00"
	)
	flush := func() {
		if r != nil {
			jobs := a.snd.schedule(r)
			r.mu.Unlock()
			a.snd.jobs.push(jobs...)
			r = nil
		}
	}
	for i := range evs {
		ev := &evs[i]
		if ev.Time > rt.c.Newest && ev.Kind != event.KindRun {
			rt.c.Newest = ev.Time
		}
		if i > 0 && ev.Pos == lastPos {
			idx++
		} else {
			lastPos, idx = ev.Pos, 0
		}
		if r == nil || ev.Run != lastRun || ev.Kind == event.KindRun {
			flush()
			r = a.runFor(rt, ev)
			if r == nil {
				continue
			}
			lastRun = ev.Run
			r.mu.Lock()
		}
		a.addEvent(rt, r, ev, idx)
	}
	flush()
}

// runFor finds or creates the run an event belongs to.
func (a *Agent) runFor(rt *routing, ev *event.Event) *run {
	src, st := rt.src, rt.st
	if ev.Kind != event.KindRun {
		if ev.Run == "" && st.defaultRun != nil {
			return st.defaultRun
		}
		if r, ok := st.runs[ev.Run]; ok {
			return r
		}
	}
	project := src.cfg.Project
	var info event.RunInfo
	if ev.Kind == event.KindRun && ev.Info != nil {
		info = *ev.Info
		if info.Project != "" {
			project = info.Project
		}
	}
	entry := st.ls.Entry()
	maxLen := a.limits.MaxNameLen
	nd := newNameData(src.cfg.Name, entry.RunPath, ev.Run)
	if src.namer.short {
		nd.Short = src.shortName(entry.RunPath)
	}
	name, id, err := src.namer.names(nd, maxLen)
	if err != nil {
		rt.bad(ev.Pos, parsers.ReasonBadRun, err, false)
		return nil
	}
	if info.ExternalID != "" {
		id = shortenID(info.ExternalID, maxLen)
	}
	if info.Name != "" && !src.namedByTemplate {
		name = truncateName(info.Name, maxLen)
	}
	r := a.getRun(src, project, id, name, entry.RunPath)
	if ev.Kind == event.KindRun && ev.Info != nil {
		r.mu.Lock()
		if !r.srv.created {
			if info.Name != "" {
				// A run event without a name attaches to a run another
				// stream names (TensorBoard's folded sub-directories).
				r.name = name
				r.info = info
			}
			if info.CreatedAt > 0 {
				r.createdAt = info.CreatedAt
			}
			if _, refused := r.addTags(a.limits, info.Tags, nil); len(refused) > 0 {
				rt.bad(ev.Pos, parsers.ReasonBadTags, tagsRefusedError(a.limits, refused), false)
			}
			r.ctl.cfgInitial = deepMerge(r.ctl.cfgInitial, info.Config)
		}
		r.mu.Unlock()
	}
	if st.runs == nil {
		st.runs = map[string]*run{}
	}
	st.runs[ev.Run] = r
	st.ls.NoteRun(checkpoint.RunRef{Project: r.project, ExternalID: r.key})
	if ev.Run == "" {
		st.defaultRun = r
	}
	return r
}

// getRun returns the run with this identity, making its state (not the
// tracker's run) on first use. The config files are read before the run
// table is locked: no disk I/O under a lock.
func (a *Agent) getRun(src *sourceRT, project, id, name, runPath string) *run {
	k := runKey(project, id)
	if r, _, ok, _ := a.runs.get(k); ok {
		return r
	}
	r := &run{key: id, project: project, source: src.cfg.Name, name: name,
		names: newNameSet(src.cfg.MaxNamesPerRun, a.opts.ReportNames)}
	r.live.idleTimeout = src.cfg.IdleTimeout
	r.addTags(a.limits, src.cfg.Tags, nil) // within the limits: config validation checks them
	r.ctl.cfgInitial = deepMerge(nil, src.cfg.Config)
	if len(src.cfg.ConfigFiles) > 0 {
		doc, sig := src.readConfigFiles(runPath)
		r.ctl.cfgInitial = deepMerge(r.ctl.cfgInitial, doc)
		r.ctl.cfgFiles = &configFiles{src: src, path: runPath, sig: sig}
	}
	if _, known, _, isKnown := a.runs.get(k); isKnown {
		r.srv.id, r.srv.url = known.RunID, known.URL
		r.ctl.tags = append(append([]string(nil), known.Tags...), r.ctl.tags...)
		r.ctl.tags = dedupe(r.ctl.tags)
		r.live.lastTime = known.LastTime
		if known.RunID > 0 && known.Name != "" && known.Name != name {
			// The run exists on the tracker under its first name, and the
			// protocol has no rename: creating it again with its external
			// id returns it unchanged. Say so instead of pretending.
			if src.namedByTemplate {
				src.log.Warn("the run's name template now gives another name; mlop cannot rename a run, it keeps its name",
					"run", known.Name, "new_name", name, "external_id", id)
			} else {
				src.log.Debug("the default run name now differs; the run keeps its first name", "run", known.Name,
					"new_name", name, "external_id", id)
			}
			r.name = known.Name
		}
	}
	return a.runs.add(r)
}

// dedupe removes repeated strings, keeping the first of each.
func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// addEvent adds one event to its run. Called with r.mu held.
func (a *Agent) addEvent(rt *routing, r *run, ev *event.Event, idx int) {
	if r.srv.broken != nil {
		return
	}
	src := rt.src
	now := a.now()
	if ev.Kind != event.KindRun {
		r.live.touched = true
		r.live.lastActivity = now
		if r.ctl.finished != "" && ev.Kind != event.KindStatus {
			// New data for a run the agent finished: resume it (the create
			// call with its external id sets it RUNNING again).
			r.ctl.finished, r.srv.created = "", false
			src.log.Info("run resumed", "run", r.name, "external_id", r.key)
		}
		if r.createdAt == 0 && ev.Time > 0 {
			r.createdAt = ev.Time
		}
		if _, isRow := sink.EndpointOf(ev.Kind); isRow {
			// The newest data, not the time a _status or _tags line
			// without its own time was read: the finish time and
			// status's LAST POINT.
			r.live.lastTime = max(r.live.lastTime, ev.Time)
		}
		r.ckDirty = true
	}
	mark := checkpoint.Mark{Pos: ev.Pos, Index: idx}
	if ep, isRow := sink.EndpointOf(ev.Kind); isRow {
		a.addRow(rt, r, ev, ep, mark)
		return
	}
	c := rt.c
	switch ev.Kind {
	case event.KindTags:
		changed, refused := r.addTags(a.limits, ev.Tags, ev.Untags)
		if changed {
			r.ctl.tagsDirty = true
			r.ctl.tagRefs.Add(c)
		}
		if len(refused) > 0 {
			// A bad record, not a bad run: the tags that fit are kept and
			// the run's data goes on.
			rt.bad(ev.Pos, parsers.ReasonBadTags, tagsRefusedError(a.limits, refused), true)
		}
	case event.KindConfig:
		if len(ev.Config) > 0 {
			r.ctl.cfgDelta = deepMerge(r.ctl.cfgDelta, ev.Config)
			r.ctl.cfgRefs.Add(c)
		}
	case event.KindStatus:
		switch ev.Status {
		case event.StatusRunning, "":
		default:
			at := ev.Time
			if at == 0 {
				at = r.live.lastTime // a status without its own time: the last data's
			}
			r.ctl.finish, r.ctl.finishAt, r.ctl.explicit = ev.Status, at, true
			r.ctl.finishRefs.Add(c)
		}
	}
}

// addRow adds a row event (metrics, string series, console line, file) to
// the run's open batch of its endpoint. Called with r.mu held.
func (a *Agent) addRow(rt *routing, r *run, ev *event.Event, ep sink.Endpoint, mark checkpoint.Mark) {
	st := rt.st
	if !ep.Idempotent() && st.ls.AlreadySent(r.key, mark) {
		return // delivered before a crash
	}
	if ep == sink.Files {
		if err := rt.src.checkUpload(ev); err != nil {
			rt.bad(ev.Pos, parsers.ReasonInvalidEvent, err, false)
			return
		}
	}
	// The names the row needs registered; names beyond the run's limit are
	// refused (their points are not sent).
	st.names = a.sink.Names(ev, st.names[:0])
	var refused []string
	for _, n := range st.names {
		if !a.noteName(r, n) {
			refused = append(refused, n.Name)
		}
	}
	if len(refused) > 0 {
		rt.bad(ev.Pos, parsers.ReasonTooManyNames, tooManyNames(r, refused), true)
		if ev.Kind != event.KindMetrics {
			return
		}
		kept := *ev
		kept.Points = make([]event.Point, 0, len(ev.Points)-len(refused))
		for _, p := range ev.Points {
			if r.names.has(p.Name) {
				kept.Points = append(kept.Points, p)
			}
		}
		if len(kept.Points) == 0 {
			return
		}
		ev = &kept
	}
	b := a.snd.openBatch(r, ep, a.now())
	if err := b.b.Add(ev); err != nil {
		a.rep.stats.badRecord(parsers.ReasonInvalidEvent)
		a.rep.tel.RecordRejected(rt.src.cfg.Name, parsers.ReasonInvalidEvent)
		a.rep.dlq.write(deadLetterEntry{Source: rt.src.cfg.Name, Path: st.ls.Path(), Line: rt.lineOf(ev.Pos),
			Reason: parsers.ReasonInvalidEvent, Error: err.Error(), Kind: ev.Kind.String()})
		if a.rep.allowLog() {
			rt.src.log.Warn("bad record skipped", "file", fmt.Sprintf("%s:%d", st.ls.Path(), rt.lineOf(ev.Pos)),
				"reason", parsers.ReasonInvalidEvent, "error", err)
		}
		return
	}
	switch ev.Kind {
	case event.KindMetrics:
		r.points += int64(len(ev.Points))
	case event.KindData, event.KindLog:
		r.rows++
	case event.KindFile:
		r.files++
	}
	if !ep.Idempotent() {
		b.addMark(st.ls, mark)
	}
	a.snd.account(r, b, rt.c, ev.Time)
}

// noteName records a log name so it is registered before the batch that
// carries it is sent. It reports false for a new name beyond the run's
// limit of distinct names, which is not sent. Called with r.mu held.
func (a *Agent) noteName(r *run, n sink.Name) bool {
	isNew, ok := r.names.note(n.Name)
	if !ok || !isNew {
		return ok
	}
	r.ctl.unreg = append(r.ctl.unreg, n)
	r.ctl.nameGen++
	return true
}

// tooManyNames is the bad-record error for names beyond a run's limit.
func tooManyNames(r *run, refused []string) error {
	return fmt.Errorf("%w: the run already has %d distinct metric and series names (sources[].max_names_per_run); %d more not sent: %s",
		parsers.ErrBadValue, r.names.limit, len(refused), strings.Join(refused[:min(len(refused), 5)], ", "))
}

// checkUpload refuses files outside the upload roots.
func (s *sourceRT) checkUpload(ev *event.Event) error {
	if ev.Path == "" || ev.Name == "" {
		return fmt.Errorf("file event without path or name")
	}
	abs, err := filepath.Abs(ev.Path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("file %s: %w", ev.Path, err)
	}
	for _, root := range s.uploadRoots {
		if real == root || strings.HasPrefix(real, root+string(os.PathSeparator)) {
			return nil
		}
	}
	return fmt.Errorf("file %s is outside the upload roots %v", ev.Path, s.uploadRoots)
}
