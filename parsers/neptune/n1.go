package neptune

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
)

// Limits of one Next call.
const (
	chunkEvents = 8192
	chunkOps    = 8192
	chunkBytes  = 8 << 20
)

// maxLineBytes bounds one queue record (LogImages carry base64 images).
const maxLineBytes = 256 << 20

// lineStatus is what lineReader.next found.
type lineStatus uint8

const (
	lineNone    lineStatus = iota // no complete line yet
	lineOK                        // a complete line
	lineTooLong                   // a line over the limit was skipped
)

// lineReader reads complete lines from a file that may still be growing.
// A trailing line without its newline (a writer mid-write) is held back
// until it is complete.
type lineReader struct {
	f    *os.File
	path string
	buf  []byte
	r, w int
	off  int64 // file offset of buf[0]
	max  int
	skip bool // discarding the rest of an over-long line
}

func openLineReader(path string, off int64, max int) (*lineReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("seek %s: %w", path, err)
		}
	}
	return &lineReader{f: f, path: path, buf: make([]byte, 256<<10), off: off, max: max}, nil
}

// next returns the next complete line without its newline, and the file
// offset just past it. The line is valid until the next call.
func (lr *lineReader) next() ([]byte, int64, lineStatus, error) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.r:lr.w], '\n'); i >= 0 {
			line := lr.buf[lr.r : lr.r+i]
			lr.r += i + 1
			end := lr.off + int64(lr.r)
			if lr.skip {
				lr.skip = false
				return nil, end, lineTooLong, nil
			}
			return bytes.TrimSuffix(line, []byte{'\r'}), end, lineOK, nil
		}
		if lr.skip {
			lr.off += int64(lr.w)
			lr.r, lr.w = 0, 0
		}
		if lr.r > 0 {
			copy(lr.buf, lr.buf[lr.r:lr.w])
			lr.w -= lr.r
			lr.off += int64(lr.r)
			lr.r = 0
		}
		if lr.w == len(lr.buf) {
			if lr.w >= lr.max {
				lr.skip = true
				continue
			}
			nb := make([]byte, min(2*len(lr.buf), lr.max))
			copy(nb, lr.buf[:lr.w])
			lr.buf = nb
		}
		n, err := lr.f.Read(lr.buf[lr.w:])
		lr.w += n
		if n == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				return nil, 0, lineNone, nil
			}
			return nil, 0, lineNone, fmt.Errorf("read %s: %w", lr.path, err)
		}
	}
}

// partial reports the bytes of an incomplete last line.
func (lr *lineReader) partial() int { return lr.w - lr.r }

// endOffset is the file offset after the last complete line returned.
func (lr *lineReader) endOffset() int64 { return lr.off + int64(lr.r) }

func (lr *lineReader) close() error { return lr.f.Close() }

// n1Stream reads one neptune-client run.
type n1Stream struct {
	*common
	id      n1ID
	members []n1Member

	member  int // index into members
	segs    []segment
	segIdx  int
	lr      *lineReader
	lastVer int64 // last version consumed in the member
	// delivered is the version the member was resumed after: records up
	// to it were delivered before; a lower version after it is out of
	// order.
	delivered int64
	deleted   map[string]opAt // from the pre-scan, never changed
	end       event.Position
	dec       n1Decoder
	closed    bool

	// Resume hint for the first segment opened.
	hintSeg, hintOff int64

	glob func(pattern string) ([]string, error) // filepath.Glob; fuzzing stubs it
}

func (f *Format) openN1(info parsers.StreamInfo, resume event.Position, st *streamState, opts parsers.Options) (parsers.Stream, error) {
	c, err := newCommon(info, opts)
	if err != nil {
		return nil, err
	}
	id := classifyN1(info.Path)
	if id.key() != info.Key {
		return nil, fmt.Errorf("open %s: path %s belongs to %s: %w", info.Key, info.Path, id.key(), ErrUnknownStream)
	}
	if id.ctype != "run" {
		// Discover lists model registry and project containers as
		// skipped, never as streams.
		return nil, fmt.Errorf("open %s: a %s container is not a run: %w", info.Key, id.ctype, ErrUnknownStream)
	}
	members, err := n1Members(id)
	if err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("open %s: no queue files: %w", info.Key, os.ErrNotExist)
	}
	s := &n1Stream{common: c, id: id, members: members, segIdx: -1, glob: filepath.Glob}

	// The pre-scan reads the run as it is now: its deletions always (see
	// n1Scan.deleted), and, for a fresh start, what the run event needs.
	scan, err := s.prescan(st == nil)
	if err != nil {
		return nil, err
	}
	s.deleted = scan.deleted
	mopts := mapping.Options{TrackSeries: true, TrackAttributes: true}
	if st == nil {
		mul := opts.StepMultiplier
		if mul <= 0 {
			mul = scan.steps.Multiplier()
		}
		s.runInfo = s.buildRunInfo(scan, mul)
		mopts.Multiplier = mul
		s.mapper = mapping.New(mapping.State{Multiplier: mul, LastTime: s.runInfo.CreatedAt}, mopts)
		if resume != (event.Position{}) {
			// The state is lost: map everything again, keep nothing up to
			// resume.
			s.replay, s.replayUntil = true, resume
		}
	} else {
		mul := st.Map.Multiplier
		if opts.StepMultiplier > 0 && opts.StepMultiplier != mul {
			// The chosen multiplier is kept: changing it mid-run would
			// misplace every later point.
			c.warn.Add(info.Path, []mapping.Warning{{Pos: resume, Reason: ReasonBadStep,
				Detail: fmt.Sprintf("step multiplier %d kept from the checkpoint; %d ignored", mul, opts.StepMultiplier)}})
		}
		mopts.Multiplier = mul
		s.mapper = mapping.New(st.Map, mopts)
		names := make([]string, len(members))
		for i, m := range members {
			names[i] = filepath.Base(m.dir)
		}
		s.member = s.resumeMember(resume, st.Mem, names)
		if s.member < len(members) {
			s.lastVer, s.delivered = resume.Seq, resume.Seq
			s.hintSeg, s.hintOff = st.Seg, st.Off
		}
		s.end = resume
	}
	return s, nil
}

// n1Scan is what a pre-scan learns.
type n1Scan struct {
	steps mapping.StepScan
	name  string
	first int64
	// deleted holds, per attribute path, the run's last DeleteAttribute
	// of it. Everything written to the path up to there is gone from the
	// Neptune run, so it is never sent: a migrated run does not show an
	// attribute the Neptune run no longer has. (A deletion written after
	// the pre-scan, in a run being followed, can only take back what was
	// sent: mapping.Mapper.Delete.)
	deleted map[string]opAt
}

// opAt is where an operation is in a run: the member (execution
// directory) index and the record's version.
type opAt struct {
	member  int
	version int64
}

// before reports whether a is at or before b.
func (a opAt) before(b opAt) bool {
	return a.member < b.member || (a.member == b.member && a.version <= b.version)
}

// prescan reads the whole run once, cheaply: for the deletions, and with
// full also for what the first event needs: the final sys/name, and the
// steps (to choose the multiplier).
func (s *n1Stream) prescan(full bool) (n1Scan, error) {
	sc := n1Scan{deleted: map[string]opAt{}}
	var d n1Decoder
	for i, m := range s.members {
		segs, err := listSegments(m.dir)
		if err != nil {
			return sc, err
		}
		for _, seg := range segs {
			lr, err := openLineReader(seg.path, 0, maxLineBytes)
			if err != nil {
				return sc, err
			}
			for {
				line, _, st, err := lr.next()
				if err != nil {
					lr.close()
					return sc, err
				}
				if st == lineNone {
					break
				}
				if st != lineOK {
					continue
				}
				prescanLine(&d, line, &sc, i, full)
			}
			lr.close()
		}
	}
	return sc, nil
}

var (
	keyStep   = []byte(`"step"`)
	keyName   = []byte(`"name"`)
	keyDelete = []byte(`"DeleteAttribute"`)
)

func prescanLine(d *n1Decoder, line []byte, sc *n1Scan, member int, steps bool) {
	del := bytes.Contains(line, keyDelete)
	full := del || (steps && (sc.first == 0 || bytes.Contains(line, keyName)))
	if steps && !full {
		// Only a fractional step needs a closer look.
		rest := line
		for {
			i := bytes.Index(rest, keyStep)
			if i < 0 {
				break
			}
			rest = rest[i+len(keyStep):]
			tok := numberAfterColon(rest)
			if tok == nil {
				continue
			}
			if micro, err := mapping.ParseMicro(tok); err == nil && mapping.FracDigits(micro) > 0 {
				full = true
				break
			}
		}
	}
	if !full {
		return
	}
	rec, err := d.decode(line)
	if err != nil {
		return
	}
	op := &rec.op
	typ := string(op.typ)
	if del && typ == "DeleteAttribute" && op.hasPath && rec.hasVersion {
		at := opAt{member, rec.version}
		if prev, ok := sc.deleted[string(op.path)]; !ok || prev.before(at) {
			sc.deleted[string(op.path)] = at
		}
	}
	if !steps {
		return
	}
	if sc.first == 0 {
		sc.first = recordTime(rec)
	}
	if typ == "AssignString" && string(op.path) == mapping.PathName && op.value.kind == tokString {
		sc.name = string(op.value.raw)
	}
	if typ == "LogStrings" {
		if _, console := mapping.ConsoleStream(string(op.path)); console {
			return
		}
	}
	for _, p := range op.points {
		if p.step.kind == tokNumber {
			if micro, err := mapping.ParseMicro(p.step.raw); err == nil {
				sc.steps.Add(micro)
			}
		}
	}
}

// numberAfterColon returns the number token after `: ` at the start of b.
func numberAfterColon(b []byte) []byte {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == ':' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) {
		c := b[j]
		if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
			j++
			continue
		}
		break
	}
	if j == i {
		return nil
	}
	return b[i:j]
}

// recordTime is a record's time in unix ms: "at" (1.9+), else its first
// point's "ts"; 0 if neither.
func recordTime(rec *n1Record) int64 {
	if t := tokMillis(rec.at); t > 0 {
		return t
	}
	for _, p := range rec.op.points {
		if t := tokMillis(p.ts); t > 0 {
			return t
		}
	}
	return 0
}

// tokMillis converts float unix seconds to ms the way the client sends
// them to the server: int(ts*1000).
func tokMillis(t n1Tok) int64 {
	f, ok := tokFloat(t)
	if !ok || !(f > 0) || f > 1e12 {
		return 0
	}
	return int64(f * 1000)
}

func tokFloat(t n1Tok) (float64, bool) {
	if t.kind != tokNumber {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(t.raw), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

func (s *n1Stream) buildRunInfo(sc n1Scan, mul int64) *event.RunInfo {
	name := sc.name
	if name == "" {
		name = "Untitled" // what the client assigns by default
	}
	created := s.members[0].created
	if created == 0 {
		created = sc.first
	}
	cfg := map[string]any{
		"neptune/source":          "neptune-client",
		"neptune/run_uuid":        s.id.uuid,
		"neptune/container_type":  s.id.ctype,
		"neptune/step_multiplier": mul,
	}
	if mode := filepath.Base(s.id.modeDir); mode == "async" || mode == "offline" {
		cfg["neptune/mode"] = mode
	}
	if m := s.members[0].meta; m != nil && m.ClientVersion != "" {
		cfg["neptune/client_version"] = m.ClientVersion
	}
	return &event.RunInfo{Name: name, ExternalID: s.id.uuid, CreatedAt: created, Config: cfg}
}

// openSegment opens the segment to read next in the current member.
func (s *n1Stream) openSegment() (bool, error) {
	m := s.members[s.member]
	if s.segIdx < 0 || s.segIdx+1 >= len(s.segs) {
		segs, err := listSegments(m.dir)
		if err != nil {
			return false, err
		}
		s.segs = segs
	}
	var off int64
	switch {
	case s.segIdx >= 0:
		if s.segIdx+1 >= len(s.segs) {
			return false, nil
		}
		s.segIdx++
	default:
		if len(s.segs) == 0 {
			return false, nil
		}
		// Resuming: the record after lastVer is in the last segment
		// starting at or before it (segment N starts with version N).
		s.segIdx = 0
		for i, seg := range s.segs {
			if seg.n <= s.lastVer+1 {
				s.segIdx = i
			}
		}
		if s.hintSeg != 0 && s.segs[s.segIdx].n == s.hintSeg && s.hintOff > 0 && validHint(s.segs[s.segIdx].path, s.hintOff) {
			off = s.hintOff
		}
		s.hintSeg, s.hintOff = 0, 0
	}
	lr, err := openLineReader(s.segs[s.segIdx].path, off, maxLineBytes)
	if err != nil {
		return false, err
	}
	s.lr = lr
	return true, nil
}

// validHint checks that off is the start of a line of the file.
func validHint(path string, off int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off-1); err != nil {
		return false
	}
	return b[0] == '\n'
}

// nextLine returns the next complete record line, moving across segments
// and execution directories.
func (s *n1Stream) nextLine() ([]byte, lineStatus, error) {
	for s.member < len(s.members) {
		if s.lr == nil {
			ok, err := s.openSegment()
			if err != nil {
				return nil, lineNone, err
			}
			if !ok {
				if s.member+1 < len(s.members) {
					s.nextMember()
					continue
				}
				return nil, lineNone, nil
			}
		}
		line, _, st, err := s.lr.next()
		if err != nil {
			return nil, lineNone, err
		}
		switch st {
		case lineOK, lineTooLong:
			return line, st, nil
		}
		// End of the segment for now. A later segment (or execution
		// directory) means this one is finished: a partial last line will
		// never be completed.
		segs, err := listSegments(s.members[s.member].dir)
		if err != nil {
			return nil, lineNone, err
		}
		s.segs = segs
		later := s.segIdx+1 < len(s.segs)
		if !later && s.member+1 >= len(s.members) {
			s.refreshMembers()
		}
		if !later && s.member+1 >= len(s.members) {
			return nil, lineNone, nil
		}
		if p := s.lr.partial(); p > 0 {
			s.warn.Add(s.lr.path, []mapping.Warning{{Pos: s.end, Reason: ReasonCorrupt,
				Detail: fmt.Sprintf("truncated last record (%d bytes) dropped", p)}})
		}
		s.lr.close()
		s.lr = nil
		if !later {
			s.nextMember()
		}
	}
	return nil, lineNone, nil
}

func (s *n1Stream) nextMember() {
	if s.lr != nil {
		s.lr.close()
		s.lr = nil
	}
	s.member++
	s.segIdx = -1
	s.segs = nil
	s.lastVer, s.delivered = 0, 0
}

// refreshMembers picks up execution directories created since Open (a
// resumed run); known ones keep their index.
func (s *n1Stream) refreshMembers() {
	ms, err := n1Members(s.id)
	if err != nil {
		return
	}
	known := map[string]bool{}
	for _, m := range s.members {
		known[m.dir] = true
	}
	for _, m := range ms {
		if !known[m.dir] {
			s.members = append(s.members, m)
		}
	}
}

// Next implements parsers.Stream.
func (s *n1Stream) Next(ctx context.Context, dst []event.Event) (parsers.Chunk, error) {
	if s.closed {
		return parsers.Chunk{}, fmt.Errorf("next %s: %w", s.info.Key, os.ErrClosed)
	}
	s.mapper.SetOutput(dst)
	start := len(dst)
	var ops int
	var nbytes int64
	eof := false
	for ops < s.maxOps && len(s.mapper.Events())-start < s.maxEvents && nbytes < chunkBytes {
		if err := ctx.Err(); err != nil {
			return s.chunk(start, nbytes), err
		}
		line, st, err := s.nextLine()
		if err != nil {
			return s.chunk(start, nbytes), err
		}
		if st == lineNone {
			eof = true
			break
		}
		nbytes += int64(len(line)) + 1
		ops++
		if st == lineTooLong {
			s.warn.Add(s.lr.path, []mapping.Warning{{Pos: s.end, Reason: ReasonCorrupt, Detail: "record longer than 256 MiB skipped"}})
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, err := s.dec.decode(line)
		if err == nil && !rec.hasVersion {
			err = errors.New("record without a version")
		}
		if err != nil {
			s.warn.Add(s.lr.path, []mapping.Warning{{Pos: event.Position{Offset: int64(s.member) + s.offsetBase, Seq: s.lastVer + 1}, Reason: ReasonCorrupt, Detail: err.Error()}})
			continue
		}
		if rec.version <= s.lastVer {
			if rec.version > s.delivered {
				s.warn.Add(s.lr.path, []mapping.Warning{{Pos: event.Position{Offset: int64(s.member) + s.offsetBase, Seq: rec.version}, Reason: ReasonCorrupt,
					Detail: fmt.Sprintf("version %d after version %d (out of order or repeated): record skipped", rec.version, s.lastVer)}})
			}
			continue // already delivered before a restart, or out of order
		}
		pos := event.Position{Offset: int64(s.member) + s.offsetBase, Seq: rec.version}
		if rec.version != s.lastVer+1 && !s.replay {
			s.warn.Add(s.lr.path, []mapping.Warning{{Pos: pos, Reason: ReasonVersionGap,
				Detail: fmt.Sprintf("versions %d..%d are missing (acknowledged and deleted, or lost)", s.lastVer+1, rec.version-1)}})
		}
		s.lastVer = rec.version
		s.apply(rec, pos)
		s.end = pos
	}
	ch := s.chunk(start, nbytes)
	if eof && len(ch.Events) == start && ops == 0 {
		return ch, io.EOF
	}
	return ch, nil
}

func (s *n1Stream) chunk(start int, nbytes int64) parsers.Chunk {
	var seg, off int64
	if s.lr != nil && s.segIdx >= 0 && s.segIdx < len(s.segs) {
		seg, off = s.segs[s.segIdx].n, s.lr.endOffset()
	}
	var mem string
	if s.member < len(s.members) {
		mem = filepath.Base(s.members[s.member].dir)
	}
	return parsers.Chunk{Events: s.mapper.Events(), End: s.end, State: s.state(seg, off, mem), Bytes: nbytes}
}

// apply maps one record.
func (s *n1Stream) apply(rec *n1Record, pos event.Position) {
	m := s.mapper
	mark := len(m.Events())
	// The enqueue time ("at", 1.9+), else the first point's time; an
	// operation with neither happened at the previous one's time.
	m.Begin(pos, recordTime(rec))
	if !m.RunDone() {
		m.Run(s.runInfo)
	}
	op := &rec.op
	if !rec.hasObj || op.typ == nil {
		m.Skip(ReasonCorrupt, "record without an operation")
	} else {
		s.applyOp(op, pos)
	}
	m.End()
	if s.replay && !s.replayUntil.Less(pos) {
		// Already delivered before the state was lost: rebuild only.
		m.Truncate(mark)
		m.TakeWarnings()
	} else {
		s.replay = false
		s.warn.Add(s.lr.path, m.TakeWarnings())
	}
}

func stepOf(t n1Tok) (mapping.Step, error) {
	switch t.kind {
	case tokNone, tokNull:
		return mapping.Step{Kind: mapping.StepSeriesNext}, nil
	case tokNumber:
		micro, err := mapping.ParseMicro(t.raw)
		if err != nil {
			return mapping.Step{}, err
		}
		return mapping.At(micro), nil
	}
	return mapping.Step{}, mapping.ErrStepSyntax
}

func (s *n1Stream) applyOp(op *n1Op, pos event.Position) {
	m := s.mapper
	typ := string(op.typ)
	if !op.hasPath {
		m.Skip(ReasonCorrupt, typ+" without a path")
		return
	}
	path := s.internBytes(op.path)
	if at, ok := s.deleted[path]; ok && typ != "DeleteAttribute" && (opAt{s.member, pos.Seq}).before(at) {
		// A later DeleteAttribute removes it from the run (n1Scan.deleted).
		return
	}
	switch typ {
	case "AssignFloat":
		f, ok := tokFloat(op.value)
		if !ok {
			m.Skip(ReasonBadValue, path+": AssignFloat value is not a number")
			return
		}
		m.Assign(path, f)
	case "AssignInt":
		i, ok := parseInt(op.value.raw)
		if op.value.kind != tokNumber || !ok {
			m.Skip(ReasonBadValue, path+": AssignInt value is not an integer")
			return
		}
		m.Assign(path, i)
	case "AssignBool":
		switch op.value.kind {
		case tokTrue:
			m.Assign(path, true)
		case tokFalse:
			m.Assign(path, false)
		default:
			m.Skip(ReasonBadValue, path+": AssignBool value is not a boolean")
		}
	case "AssignString":
		if op.value.kind != tokString {
			m.Skip(ReasonBadValue, path+": AssignString value is not a string")
			return
		}
		m.Assign(path, string(op.value.raw))
	case "AssignDatetime":
		ms, ok := parseInt(op.value.raw)
		if op.value.kind != tokNumber || !ok {
			m.Skip(ReasonBadValue, path+": AssignDatetime value is not an integer")
			return
		}
		m.Assign(path, mapping.Datetime{UnixNano: ms * 1_000_000})
	case "LogFloats":
		for _, p := range op.points {
			step, err := stepOf(p.step)
			if err != nil {
				m.Skip(ReasonBadStep, path+": "+err.Error())
				continue
			}
			v, ok := tokFloat(p.value)
			if !ok {
				m.Skip(ReasonBadValue, path+": LogFloats value is not a number")
				continue
			}
			m.Float(path, step, tokMillis(p.ts), v)
		}
	case "LogStrings":
		for _, p := range op.points {
			step, err := stepOf(p.step)
			if err != nil {
				m.Skip(ReasonBadStep, path+": "+err.Error())
				continue
			}
			if p.value.kind != tokString {
				m.Skip(ReasonBadValue, path+": LogStrings value is not a string")
				continue
			}
			m.String(path, step, tokMillis(p.ts), string(p.value.raw))
		}
	case "LogImages":
		for i, p := range op.points {
			step, err := stepOf(p.step)
			if err != nil {
				m.Skip(ReasonBadStep, path+": "+err.Error())
				continue
			}
			data, caption := p.imgData, p.imgDesc
			if len(caption) == 0 {
				caption = p.imgName
			}
			if !p.isImgObj {
				data = p.value.raw // legacy: a bare base64 string
			}
			f := mapping.File{Origin: "inline image", Caption: string(caption)}
			if len(data) == 0 {
				m.Skip(ReasonBadValue, path+": image without data (over the client's size limit)")
				continue
			}
			if local, err := s.spoolBase64(pos, i, string(p.imgName), "", data); err != nil {
				m.Skip(ReasonBadValue, path+": "+err.Error())
				continue
			} else {
				f.Local = local
			}
			m.File(path, step, true, tokMillis(p.ts), f)
		}
	case "ClearFloatLog", "ClearStringLog", "ClearImageLog":
		m.ClearSeries(path)
	case "ConfigFloatSeries":
		// Chart hints (min, max, unit): nothing to map.
	case "AddStrings":
		m.SetAdd(path, byteStrings(op.strs))
	case "RemoveStrings":
		m.SetRemove(path, byteStrings(op.strs))
	case "ClearStringSet":
		m.SetClear(path)
	case "DeleteAttribute":
		m.Delete(path)
	case "UploadFile":
		s.uploadFile(path, op)
	case "UploadFileContent":
		if op.fileContent.kind != tokString {
			m.Skip(ReasonBadValue, path+": UploadFileContent without content")
			return
		}
		local, err := s.spoolBase64(pos, 0, "", string(op.ext.raw), op.fileContent.raw)
		if err != nil {
			m.Skip(ReasonBadValue, path+": "+err.Error())
			return
		}
		m.File(path, mapping.Step{}, false, 0, mapping.File{Local: local, Origin: "inline content"})
	case "UploadFileSet":
		s.uploadFileSet(path, op)
	case "DeleteFiles":
		m.Skip(ReasonUnsupported, path+": DeleteFiles (uploaded files cannot be removed)")
	case "AssignArtifact", "TrackFilesToArtifact", "ClearArtifact", "CopyAttribute":
		m.Skip(ReasonNeedsServer, path+": "+typ+" needs a Neptune server")
	default:
		m.Skip(ReasonUnknownOp, path+": "+strconv.Quote(typ))
	}
}

func byteStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func (s *n1Stream) spoolBase64(pos event.Position, i int, name, ext string, data []byte) (string, error) {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(raw, data)
	if err != nil {
		return "", fmt.Errorf("decode inline file: %w", err)
	}
	raw = raw[:n]
	if ext == "" {
		ext = imageExt(raw)
	}
	key := fmt.Sprintf("%s@%d:%d:%d", s.members[s.member].dir, pos.Offset, pos.Seq, i)
	return spool(s.spool, key, name, ext, raw)
}

// uploadFile maps UploadFile: a copy under upload_path/ (tmp_file_name),
// else the producer's absolute file_path.
func (s *n1Stream) uploadFile(path string, op *n1Op) {
	f := mapping.File{}
	if op.tmpFileName.kind == tokString && len(op.tmpFileName.raw) > 0 {
		name := filepath.Base(string(op.tmpFileName.raw))
		local := filepath.Join(s.members[s.member].dir, "upload_path", name)
		f.Origin = local
		if regularFile(local) {
			f.Local = local
		}
	}
	if f.Local == "" && op.filePath.kind == tokString && len(op.filePath.raw) > 0 {
		orig := string(op.filePath.raw)
		f.Origin = orig
		if local := s.pm.apply(orig); regularFile(local) {
			f.Local = local
		}
	}
	if f.Origin == "" {
		f.Origin = "no file path recorded"
	}
	if op.ext.kind == tokString && len(op.ext.raw) > 0 {
		f.Ext = string(op.ext.raw)
	}
	s.mapper.File(path, mapping.Step{}, false, 0, f)
}

// uploadFileSet maps UploadFileSet: every file its globs match here.
func (s *n1Stream) uploadFileSet(path string, op *n1Op) {
	for _, g := range op.globs {
		orig := string(g)
		matches, err := s.glob(s.pm.apply(orig))
		var files []string
		if err == nil {
			for _, p := range matches {
				if regularFile(p) {
					files = append(files, p)
				}
			}
		}
		if len(files) == 0 {
			s.mapper.File(path, mapping.Step{}, false, 0, mapping.File{Origin: orig})
			continue
		}
		for _, p := range files {
			s.mapper.File(path, mapping.Step{}, false, 0, mapping.File{Local: p, Origin: orig, Caption: filepath.Base(p)})
		}
	}
}

// Close implements parsers.Stream; it is idempotent.
func (s *n1Stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.lr != nil {
		err := s.lr.close()
		s.lr = nil
		return err
	}
	return nil
}
