package tensorboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// stream reads one lane: its events files in order, as one stream.
// Position{Offset: index of the file in laneState.Files, Seq: the byte
// offset just after the record}. Only the agent's reader goroutine calls
// its methods.
type stream struct {
	ln    *laneInfo
	o     options
	st    *laneState
	m     *mapper
	warn  warnBuf
	spool spooler

	pos     event.Position // after the last record consumed
	rd      *recordReader  // reader of st.Files[pos.Offset], nil when none
	runSent bool           // the run event was emitted since Open
	opened  bool           // the first Next ran

	// heads records the files (by index) whose head was searched for a
	// purge marker completely.
	heads map[int]bool

	// Follow mode: a record that fails its checksum, or an incomplete
	// record with a newer file after it, is read again until it has been
	// like that for corruptWait.
	holdAt    event.Position
	holdSize  int64
	holdSince time.Time

	// truncWarned remembers the incomplete tail already reported.
	truncWarned event.Position

	// yamlKeys are the top-level keys of hparams.yaml: the hparams
	// plugin's values for them (flattened, stringified copies of the same
	// hyperparameters) are not sent, so the YAML's typed values stay.
	yamlKeys map[string]bool
}

var (
	_ parsers.Stream = (*stream)(nil)
	_ parsers.Warner = (*stream)(nil)
)

func openStream(ln *laneInfo, resume event.Position, state []byte, o options) (*stream, error) {
	st, err := decodeState(state)
	if err != nil {
		st = nil // rebuilt below by reading up to resume again
	}
	s := &stream{ln: ln, o: o, spool: spooler{dir: o.spoolDir}, pos: resume, heads: map[int]bool{}}
	s.warn = warnBuf{max: o.maxWarnings, onSkip: o.onSkip}
	fresh := st == nil
	if fresh {
		st = &laneState{V: stateVersion, Meta: map[string]string{}}
	}
	s.st = st
	s.m = newMapper(st, ln, &s.spool, func() int64 { return o.now().UnixMilli() }, &s.warn)
	s.refreshFiles()
	if st.Role == roleUndecided && ln.parentKey == "" {
		st.Role = roleRun
	}
	if fresh && resume != (event.Position{}) {
		// The state was lost: read again up to the resume position,
		// without sending anything, to rebuild it.
		if err := s.rebuild(resume); err != nil {
			return nil, err
		}
	}
	if int(resume.Offset) > len(st.Files) {
		return nil, fmt.Errorf("open %s: resume position %d:%d is past the lane's %d files", ln.key, resume.Offset, resume.Seq, len(st.Files))
	}
	s.applyHide()
	return s, nil
}

// refreshFiles appends the lane's events files not seen yet, in name
// order. A file that sorts before one already read is still appended
// (positions only grow) and reported.
func (s *stream) refreshFiles() bool {
	names := listEvents(s.ln.dir)
	known := make(map[string]bool, len(s.st.Files))
	for _, f := range s.st.Files {
		known[f] = true
	}
	added := false
	for _, n := range names {
		if known[n] {
			continue
		}
		if k := len(s.st.Files); k > 0 && n < s.st.Files[k-1] && int(s.pos.Offset) >= k-1 && s.pos != (event.Position{}) {
			s.warn.add(filepath.Join(s.ln.dir, n), s.pos, 0, ReasonOutOfOrder,
				"appeared after "+s.st.Files[k-1]+" was read; read after it, not before as TensorBoard would")
		}
		s.st.Files = append(s.st.Files, n)
		added = true
	}
	return added
}

func (s *stream) path(i int) string { return filepath.Join(s.ln.dir, s.st.Files[i]) }

// Warnings implements parsers.Warner.
func (s *stream) Warnings() ([]parsers.Warning, int) { return s.warn.take() }

// Close implements parsers.Stream.
func (s *stream) Close() error {
	if s.rd != nil {
		err := s.rd.Close()
		s.rd = nil
		return err
	}
	return nil
}

// Next implements parsers.Stream.
func (s *stream) Next(ctx context.Context, dst []event.Event) (parsers.Chunk, error) {
	m := s.m
	m.reset(dst)
	start := s.pos
	var consumed int64
	if !s.opened {
		s.opened = true
		s.scanHeads()
		if s.st.Role != roleUndecided {
			// Also a folded lane resumed with its role decided: its events
			// need the run event to attach to its parent's run.
			s.emitRun()
		}
		s.checkYAML()
	}
	chunk := func(err error) (parsers.Chunk, error) {
		m.endMerge()
		c := parsers.Chunk{Events: m.evs, End: s.pos, Bytes: consumed}
		if s.pos != start || len(m.evs) > 0 {
			c.State = s.st.encode()
		}
		return c, err
	}
	atEOF := false
	for n := 0; ; n++ {
		if n&255 == 255 {
			if err := ctx.Err(); err != nil {
				return chunk(err)
			}
		}
		if len(m.evs) >= s.o.chunkEvents || consumed >= s.o.chunkBytes {
			return chunk(nil)
		}
		idx := int(s.pos.Offset)
		if idx >= len(s.st.Files) {
			if atEOF || !s.refreshFiles() {
				s.checkYAML()
				return chunk(io.EOF)
			}
			atEOF = true
			s.scanHeads()
			continue
		}
		if s.rd == nil {
			rd, err := openRecords(s.path(idx), s.pos.Seq, s.o.maxRecord)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					s.warn.add(s.path(idx), s.pos, s.pos.Seq, ReasonMissingFile, "the file is gone; what it held after this offset is not sent")
					s.nextFile()
					continue
				}
				return chunk(err)
			}
			s.rd = rd
			s.m.file = s.path(idx)
		}
		rec, err := s.rd.next()
		if err != nil {
			return chunk(err)
		}
		switch rec.status {
		case recOK:
			s.holdAt = event.Position{}
			before := len(m.evs)
			end := event.Position{Offset: s.pos.Offset, Seq: rec.end()}
			s.consume(rec.data, end, rec.off)
			if s.spool.failed != nil {
				m.evs = m.evs[:before]
				return chunk(fmt.Errorf("read %s: %w", s.path(idx), s.spool.failed))
			}
			consumed += rec.end() - rec.off
			s.pos = end
			s.rd.skipTo(rec.end())
		case recTooLarge:
			reason, what := ReasonTooLarge, fmt.Sprintf("a record of %d bytes (limit %d) was skipped", rec.length, s.o.maxRecord)
			if rec.kind == evGraph || rec.kind == evMetaGraph || rec.kind == evRunMetadata {
				reason, what = ReasonGraph, fmt.Sprintf("%s (%d bytes)", kindName(rec.kind), rec.length)
			}
			s.warn.add(s.path(idx), s.pos, rec.off, reason, what)
			consumed += rec.end() - rec.off
			s.pos = event.Position{Offset: s.pos.Offset, Seq: rec.end()}
			s.rd.skipTo(rec.end())
		case recEOF, recPartial:
			if idx+1 < len(s.st.Files) || s.refreshFiles() {
				s.scanHeads()
				if rec.status == recPartial {
					if s.holding(rec.off, true) {
						return chunk(io.EOF)
					}
					size, _ := s.rd.size()
					s.warn.add(s.path(idx), s.pos, rec.off, ReasonTruncated,
						fmt.Sprintf("%d bytes at the end do not form a complete record; the writer stopped mid-record", size-rec.off))
				}
				s.nextFile()
				continue
			}
			if rec.status == recPartial && !s.o.follow && s.truncWarned != s.pos {
				s.truncWarned = s.pos
				size, _ := s.rd.size()
				s.warn.add(s.path(idx), s.pos, rec.off, ReasonTruncated,
					fmt.Sprintf("%d bytes at the end do not form a complete record (a writer killed mid-record); read again when the file grows", size-rec.off))
			}
			if !atEOF {
				// New files, and the heads of files still being written.
				atEOF = true
				s.scanHeads()
			}
			s.checkYAML()
			return chunk(io.EOF)
		case recBadLength, recBadData:
			if s.holding(rec.off, false) {
				return chunk(io.EOF)
			}
			to := int64(-1)
			if rec.status == recBadData {
				to = rec.end()
			} else {
				at, found, err := s.rd.resync()
				if err != nil {
					return chunk(err)
				}
				switch {
				case found:
					to = at
				case !s.o.follow:
					size, err := s.rd.size()
					if err != nil {
						return chunk(err)
					}
					to = size
				default:
					// Nothing that looks like a record follows yet: wait
					// for more bytes, then look again.
					return chunk(io.EOF)
				}
			}
			s.warn.add(s.path(idx), s.pos, rec.off, ReasonCorrupt,
				fmt.Sprintf("%s; %d bytes skipped", rec.status, to-rec.off))
			consumed += to - rec.off
			s.pos = event.Position{Offset: s.pos.Offset, Seq: to}
			s.rd.skipTo(to)
			s.holdAt = event.Position{}
			s.m.endMerge()
		}
	}
}

// holding reports whether a bad or incomplete record at off is to be read
// again later: following, and not yet corruptWait in that state. For an
// incomplete tail (untilStable) the wait starts again whenever the file
// grows, as the writer may still be completing it; for a record whose
// checksum fails it runs from when it was first seen, so a file that keeps
// growing after a bad record is not held for ever.
func (s *stream) holding(off int64, untilStable bool) bool {
	if !s.o.follow {
		return false
	}
	at := event.Position{Offset: s.pos.Offset, Seq: off + 1} // +1: never the zero position
	var size int64
	if untilStable {
		size, _ = s.rd.size()
	}
	now := s.o.now()
	if s.holdAt != at || s.holdSize != size {
		s.holdAt, s.holdSize, s.holdSince = at, size, now
	}
	return now.Sub(s.holdSince) < s.o.corruptWait
}

// nextFile moves to the start of the next file, reporting what the purge
// hid in the one left.
func (s *stream) nextFile() {
	idx := int(s.pos.Offset)
	if s.st.Hidden > 0 && idx < len(s.st.Files) {
		s.warn.add(s.path(idx), s.pos, s.pos.Seq, ReasonPurged, fmt.Sprintf(
			"%d points at steps >= %d not sent: TensorBoard hides them (a later file starts with SessionLog START, a restart from a checkpoint)",
			s.st.Hidden, s.m.hide))
	}
	s.st.Hidden = 0
	if s.rd != nil {
		s.rd.Close()
		s.rd = nil
	}
	s.pos = event.Position{Offset: int64(idx + 1)}
	s.holdAt = event.Position{}
	s.m.endMerge()
	s.applyHide()
}

// applyHide sets the mapper's purge threshold for the current file: the
// lowest step of the START markers in later files.
func (s *stream) applyHide() {
	hide, ok := int64(0), false
	if s.o.purge {
		for _, p := range s.st.Purges {
			if p.At.Offset > s.pos.Offset && (!ok || p.Step < hide) {
				hide, ok = p.Step, true
			}
		}
	}
	s.m.setHide(hide, ok)
}

// consume maps one record.
func (s *stream) consume(data []byte, end event.Position, off int64) {
	m := s.m
	if s.st.Role == roleUndecided {
		if !s.decide(data) {
			return
		}
		s.emitRun()
		s.checkYAML()
	}
	hiddenBefore, first := m.hidden, len(m.evs)
	res := m.record(data, end, off)
	s.st.Hidden += m.hidden - hiddenBefore
	if len(s.yamlKeys) > 0 {
		for i := first; i < len(m.evs); i++ {
			if m.evs[i].Kind == event.KindConfig {
				for k := range s.yamlKeys {
					delete(m.evs[i].Config, k)
				}
			}
		}
	}
	if res.start {
		s.addPurge(purgeMark{At: end, Step: res.step, Seen: end})
	}
}

// decide settles what a sub-directory is from its first tag. It reports
// false while the lane has shown no tag yet.
func (s *stream) decide(data []byte) bool {
	var ev rawEvent
	if decodeEvent(data, &ev) != nil || ev.kind != evSummary {
		return false
	}
	var tag string
	found := false
	_ = eachValue(ev.summary, func(v *rawValue) error {
		t := v.tag
		if len(t) == 0 {
			t = v.nodeName
		}
		tag, found = string(t), true
		return errStop
	})
	if !found {
		return false
	}
	st, sub := s.st, s.ln.sub
	switch {
	case s.o.foldHParams && strings.HasPrefix(tag, hparamsPrefix):
		st.Role = roleHParams
	case s.o.foldScalars && tag != "" && foldsAsScalars(sub, tag):
		st.Role, st.FoldTag = roleScalars, tag
		key := strings.TrimPrefix(sub, tag+"/")
		if key == sub {
			key = strings.TrimPrefix(sub, strings.ReplaceAll(tag, "/", "_")+"_")
		}
		st.FoldName = tag + "/" + key
	default:
		st.Role = roleUnfolded
	}
	return true
}

var errStop = errors.New("stop")

// foldsAsScalars reports whether a sub-directory at path sub (relative to
// its run) holding tag is what add_scalars writes: <main_tag>/<key>
// (tensorboardX) or <main_tag with / as _>_<key> (torch).
func foldsAsScalars(sub, tag string) bool {
	if k, ok := strings.CutPrefix(sub, tag+"/"); ok && k != "" {
		return true
	}
	if k, ok := strings.CutPrefix(sub, strings.ReplaceAll(tag, "/", "_")+"_"); ok && k != "" && !strings.Contains(k, "/") {
		return true
	}
	return false
}

// emitRun emits the run event once per Open: a lane that is its own run
// names it; a folded lane attaches to its parent's run without a name.
func (s *stream) emitRun() {
	if s.runSent {
		return
	}
	s.runSent = true
	info := &event.RunInfo{}
	switch s.st.Role {
	case roleScalars, roleHParams:
		info.ExternalID = s.ln.parentID
	default:
		info.Name, info.ExternalID = s.ln.name, s.ln.runID
	}
	s.m.endMerge()
	s.m.evs = append(s.m.evs, event.Event{Kind: event.KindRun, Pos: s.pos, Info: info})
}

// checkYAML sends Lightning's hparams.yaml as config when it is new or
// changed.
func (s *stream) checkYAML() {
	if !s.o.hparamsYAML || !s.runSent || (s.st.Role != roleRun && s.st.Role != roleUnfolded) {
		return
	}
	p := filepath.Join(s.ln.dir, hparamsYAMLName)
	sig := fileSig(p)
	if sig == "" || (sig == s.st.YAML && s.yamlKeys != nil) {
		return
	}
	send := sig != s.st.YAML
	s.st.YAML = sig
	s.yamlKeys = map[string]bool{}
	data, err := os.ReadFile(p)
	if err != nil {
		s.warn.add(p, s.pos, 0, ReasonHParamsYAML, err.Error())
		return
	}
	cfg, err := parseHParamsYAML(data)
	if err != nil {
		if send {
			s.warn.add(p, s.pos, 0, ReasonHParamsYAML, err.Error())
		}
		return
	}
	for k := range cfg {
		s.yamlKeys[k] = true
	}
	if len(cfg) == 0 || !send {
		return
	}
	s.m.endMerge()
	s.m.evs = append(s.m.evs, event.Event{Kind: event.KindConfig, Pos: s.pos, Config: cfg})
}

// scanHeads searches the start of every file after the current one for
// SessionLog START (TensorBoard's purge marker: a writer restarted from a
// checkpoint at that step), so points it hides are not sent. A head is
// searched again while it may still grow (following, no data record yet).
func (s *stream) scanHeads() {
	if !s.o.purge {
		return
	}
	for i := int(s.pos.Offset) + 1; i < len(s.st.Files); i++ {
		if s.heads[i] {
			continue
		}
		marks, done := s.scanHead(i)
		if done || !s.o.follow {
			s.heads[i] = true
		}
		for _, p := range marks {
			s.addPurge(p)
		}
	}
}

// scanHead reads the first records of file i up to the first one holding
// data. done reports that nothing after them can be a head marker.
func (s *stream) scanHead(i int) (marks []purgeMark, done bool) {
	rd, err := openRecords(s.path(i), 0, s.o.maxRecord)
	if err != nil {
		// Gone or unreadable: reading it reports that.
		return nil, true
	}
	defer rd.Close()
	for n := 0; n < s.o.headRecords; n++ {
		rec, err := rd.next()
		if err != nil || rec.status != recOK {
			return marks, rec.status == recTooLarge
		}
		var ev rawEvent
		if decodeEvent(rec.data, &ev) != nil {
			return marks, true
		}
		switch ev.kind {
		case evFileVersion, evNone:
		case evSessionLog:
			if ev.status == sessionStart {
				end := event.Position{Offset: int64(i), Seq: rec.end()}
				marks = append(marks, purgeMark{At: end, Step: ev.step, Seen: s.pos})
			}
		default:
			return marks, true
		}
		rd.skipTo(rec.end())
	}
	return marks, true
}

// addPurge records a START marker once. Points that it hides but that
// were read before it became known were sent already: they are counted
// (by reading the files again) and reported.
func (s *stream) addPurge(p purgeMark) {
	for _, q := range s.st.Purges {
		if q.At == p.At {
			return
		}
	}
	prev := slices.Clone(s.st.Purges)
	s.st.Purges = append(s.st.Purges, p)
	s.applyHide()
	if !s.o.purge || p.Seen == (event.Position{}) {
		return
	}
	limit := p.Seen
	if p.At.Less(limit) {
		limit = p.At
	}
	n, gone := s.countSent(prev, limit, p.Step)
	if n == 0 && !gone {
		return
	}
	detail := fmt.Sprintf("%d points at steps >= %d were sent before the SessionLog START (a restart from a checkpoint) at %s:%d was seen; TensorBoard hides them, the server keeps them",
		n, p.Step, s.st.Files[p.At.Offset], p.At.Seq)
	if gone {
		detail += " (some files are gone; the count is of those still here)"
	}
	s.warn.add(s.path(int(p.At.Offset)), s.pos, p.At.Seq, ReasonPurgeSent, detail)
}

// countSent reads the lane from its start up to limit again, without
// sending, and counts the points at steps >= step that were sent: those
// that the markers known when they were read (marks) did not hide.
func (s *stream) countSent(marks []purgeMark, limit event.Position, step int64) (n int64, gone bool) {
	err := s.replay(limit, func(m *mapper, at event.Position) {
		hide, ok := int64(0), false
		for _, p := range marks {
			if p.At.Offset > at.Offset && !at.Less(p.Seen) && (!ok || p.Step < hide) {
				hide, ok = p.Step, true
			}
		}
		m.setHide(hide, ok)
	}, func(evs []event.Event) {
		for i := range evs {
			ev := &evs[i]
			if ev.Step < step {
				continue
			}
			switch ev.Kind {
			case event.KindMetrics:
				n += int64(len(ev.Points))
			case event.KindData, event.KindFile:
				n++
			}
		}
	})
	return n, err != nil
}

// rebuild restores the state of a stream whose saved state was lost by
// reading the lane up to resume again without sending anything.
func (s *stream) rebuild(resume event.Position) error {
	err := s.replay(resume, nil, nil)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rebuild the state of %s: %w", s.ln.key, err)
	}
	return nil
}

// replay reads the lane's records before limit with a mapper of its own
// (dry: no spool files, no warnings), calling before ahead of each record
// and after with its events. The mapper's state is s.st when rebuilding
// (before is nil) and a scratch copy otherwise.
func (s *stream) replay(limit event.Position, before func(m *mapper, at event.Position), after func([]event.Event)) error {
	st := s.st
	rebuilding := before == nil
	if !rebuilding {
		st = &laneState{V: stateVersion, Meta: map[string]string{}, Role: s.st.Role, FoldTag: s.st.FoldTag, FoldName: s.st.FoldName}
	}
	w := &warnBuf{quiet: true}
	m := newMapper(st, s.ln, &spooler{}, s.m.now, w)
	m.dry = true
	var missing error
	for i := 0; i <= int(limit.Offset) && i < len(s.st.Files); i++ {
		rd, err := openRecords(s.path(i), 0, s.o.maxRecord)
		if err != nil {
			missing = err
			continue
		}
		m.file = s.path(i)
		for {
			rec, err := rd.next()
			if err != nil {
				rd.Close()
				return err
			}
			at := event.Position{Offset: int64(i), Seq: rec.off}
			if !at.Less(limit) {
				break
			}
			var to int64
			switch rec.status {
			case recOK:
				end := event.Position{Offset: int64(i), Seq: rec.end()}
				if rebuilding && st.Role == roleUndecided {
					tmp := &stream{ln: s.ln, o: s.o, st: st}
					if !tmp.decide(rec.data) {
						to = rec.end()
						break
					}
				}
				if before != nil {
					before(m, at)
				}
				m.reset(nil)
				res := m.record(rec.data, end, rec.off)
				if rebuilding && res.start {
					st.Purges = append(st.Purges, purgeMark{At: end, Step: res.step, Seen: end})
				}
				if after != nil {
					after(m.evs)
				}
				to = rec.end()
			case recTooLarge, recBadData:
				to = rec.end()
			case recBadLength:
				p, found, err := rd.resync()
				if err != nil || !found {
					to = -1
				} else {
					to = p
				}
			default:
				to = -1
			}
			if to < 0 {
				break
			}
			rd.skipTo(to)
		}
		rd.Close()
	}
	return missing
}
