package export

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
)

// Limits of one Next call and of the pieces it works in.
const (
	chunkRows   = 1 << 16 // rows mapped per chunk (memory stays flat for huge runs)
	chunkEvents = 1 << 14
	chunkBytes  = 8 << 20
	batchRows   = 1024 // rows decoded before they are mapped
	maxOpRows   = 1024 // rows mapped as one operation (one metrics event)
)

// wantStream are the columns a stream reads (project_id and run_id are
// the same on every row of a part and come from the metadata).
var wantStream = want(cPath, cType, cStep, cTS, cInt, cFloat, cString, cBool, cDatetime, cSet, cFile, cHistType, cHistEdges, cHistValues)

// stream reads one exported run.
type stream struct {
	info      parsers.StreamInfo
	opts      parsers.Options
	entry     *runEntry
	variant   string
	filesRoot string
	zone      *zoneFix // neptune2 runs with a timezone parameter
	mapper    *mapping.Mapper
	runInfo   *event.RunInfo
	warn      mapping.WarnBuf
	in        interner

	parts []partRef
	pi    int // the part being read, or the next to open
	part  *partFile
	rr    *rowReader
	skip  int64        // rows of parts[pi] already delivered (resume)
	bad   map[int]bool // parts the pre-scan found corrupt (already reported)
	batch []rowData
	// ahead is a row read past the end of a batch (hasAhead), the first
	// of the next operation.
	ahead    rowData
	hasAhead bool
	bpr      float64 // input bytes per row of the open part, for Chunk.Bytes

	end         event.Position
	replay      bool
	replayUntil event.Position
	nbytes      int64
	closed      bool

	// Limits of one Next call (tests lower them).
	maxRows, maxEvents int
}

var (
	_ parsers.Stream = (*stream)(nil)
	_ parsers.Warner = (*stream)(nil)
)

func (f *Format) openStream(info parsers.StreamInfo, e *runEntry, runs []*runEntry, resume event.Position, st *streamState, opts parsers.Options) (parsers.Stream, error) {
	opts = opts.WithDefaults()
	s := &stream{info: info, opts: opts, entry: e, parts: e.parts, bad: map[int]bool{},
		batch: make([]rowData, batchRows+maxOpRows), maxRows: chunkRows, maxEvents: chunkEvents}
	s.warn.OnSkip = opts.OnSkip
	if err := s.params(); err != nil {
		return nil, err
	}
	for i, p := range e.parts {
		if p.n != i && (i == 0 || e.parts[i-1].n != p.n-1) {
			s.warn.One(p.path, event.Position{Offset: int64(p.n)}, ReasonMissingPart,
				fmt.Sprintf("part files before part_%d are missing; their rows are not read", p.n))
		}
	}
	if st == nil {
		var steps mapping.StepScan
		fileSeries, indexed := 0, 0
		for _, p := range e.parts {
			sc := f.scanOf(p)
			if sc.err != nil {
				if isIOError(sc.err) {
					return nil, sc.err
				}
				s.bad[p.n] = true
				s.warn.One(p.path, event.Position{Offset: int64(p.n)}, ReasonCorrupt, sc.err.Error()+"; the part is skipped")
			}
			steps.Merge(sc.steps)
			fileSeries += sc.fileSeries
			indexed += sc.indexed
		}
		if opts.StepMultiplier <= 0 {
			steps.Merge(f.familySteps(e, runs))
		}
		mul := opts.StepMultiplier
		if mul <= 0 {
			mul = steps.Multiplier()
		}
		// A neptune2 export names file-series files by index and puts the
		// index in the step column; without a variant, the files' layout
		// tells.
		idx := fileSeries > 0 && (s.variant == variant2 || (s.variant == "" && indexed == fileSeries))
		s.runInfo = s.buildRunInfo(mul, idx)
		s.mapper = mapping.New(mapping.State{Multiplier: mul, LastTime: s.runInfo.CreatedAt}, mapping.Options{Multiplier: mul})
		if resume != (event.Position{}) {
			// The state is lost: map everything again, keep nothing up to
			// resume.
			s.replay, s.replayUntil = true, resume
		}
	} else {
		if opts.StepMultiplier > 0 && opts.StepMultiplier != st.Map.Multiplier {
			// Changing the multiplier mid-run would misplace every later
			// point.
			s.warn.One(info.Path, resume, ReasonBadStep,
				fmt.Sprintf("step multiplier %d kept from the checkpoint; %d ignored", st.Map.Multiplier, opts.StepMultiplier))
		}
		s.mapper = mapping.New(st.Map, mapping.Options{Multiplier: st.Map.Multiplier})
		for s.pi < len(s.parts) && int64(s.parts[s.pi].n) < resume.Offset {
			s.pi++
		}
		if s.pi < len(s.parts) && int64(s.parts[s.pi].n) == resume.Offset {
			s.skip = resume.Seq
		}
		s.end = resume
	}
	return s, nil
}

// params reads the format's parameters.
func (s *stream) params() error {
	p := s.opts.Params
	meta := s.entry.meta
	switch v := p[ParamExporter]; v {
	case "", "auto":
		s.variant = meta.variant()
	case variant2, variant3:
		s.variant = v
	default:
		return fmt.Errorf("open %s: %s %q: want neptune2, neptune3 or auto", s.info.Key, ParamExporter, v)
	}
	switch v := p[ParamExternalID]; v {
	case "", "run_id", "project_run_id":
	default:
		return fmt.Errorf("open %s: %s %q: want run_id or project_run_id", s.info.Key, ParamExternalID, v)
	}
	if tz := p[ParamTimezone]; tz != "" && tz != "UTC" && s.variant == variant2 {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return fmt.Errorf("open %s: %s: %w", s.info.Key, ParamTimezone, err)
		}
		s.zone = &zoneFix{loc: loc, hour: math.MinInt64}
	}
	dataDir := filepath.Dir(s.entry.dir)
	files := p[ParamFilesDir]
	if files == "" {
		files = filepath.Join("..", "files")
	}
	if !filepath.IsAbs(files) {
		files = filepath.Join(dataDir, files)
	}
	// The files of a project mirror its data directory's name.
	s.filesRoot = filepath.Join(files, filepath.Base(s.entry.dir))
	return nil
}

// externalID maps a run id to the run's external id.
func (s *stream) externalID(runID string) string {
	if s.opts.Params[ParamExternalID] == "project_run_id" {
		return s.entry.meta.projectID + "/" + runID
	}
	return runID
}

// familySteps pre-scans the other runs of e's fork family (ancestors and
// descendants in the same project directory, transitively) so that the
// family shares one multiplier and fork steps are in the parent's units.
func (f *Format) familySteps(e *runEntry, runs []*runEntry) mapping.StepScan {
	var steps mapping.StepScan
	in := map[*runEntry]bool{e: true}
	for changed := true; changed; {
		changed = false
		for _, o := range runs {
			if o.parent == nil {
				continue
			}
			if in[o.parent] && !in[o] {
				in[o], changed = true, true
			}
			if in[o] && !in[o.parent] {
				in[o.parent], changed = true, true
			}
		}
	}
	for _, o := range runs {
		if !in[o] || o.meta == nil {
			continue
		}
		if o.meta.hasForkStep {
			if micro, err := mapping.MicroFromFloat(o.meta.forkStep); err == nil {
				steps.Add(micro)
			}
		}
		if o == e {
			continue
		}
		for _, p := range o.parts {
			if sc := f.scanOf(p); sc.err == nil {
				steps.Merge(sc.steps)
			}
		}
	}
	return steps
}

func (s *stream) buildRunInfo(mul int64, indexed bool) *event.RunInfo {
	meta := s.entry.meta
	runID := meta.runID
	if runID == "" {
		runID = s.entry.prefix // a null run_id column: the file name is all there is
	}
	name := meta.name
	if name == "" {
		name = runID
	}
	cfg := map[string]any{
		"neptune/source":          "neptune-exporter",
		"neptune/project":         meta.projectID,
		"neptune/run_id":          runID,
		"neptune/step_multiplier": mul,
	}
	if s.variant != "" {
		cfg["neptune/export/variant"] = s.variant
	}
	if indexed {
		cfg["neptune/export/file_series_steps"] = "index"
	}
	info := &event.RunInfo{Name: name, ExternalID: s.externalID(runID), Config: cfg}
	if meta.hasCreated {
		info.CreatedAt = meta.created
	}
	if meta.forkParent == "" {
		return info
	}
	parentID := meta.forkParent
	if p := s.entry.parent; p != nil && p.meta != nil && p.meta.runID != "" {
		parentID = p.meta.runID
	}
	info.ForkParent = s.externalID(parentID)
	cfg["neptune/fork/parent_run_id"] = parentID
	// mlop copies the parent's config into a fork, bookkeeping included;
	// a Neptune fork does not inherit group tags, so the fork starts with
	// its own (its sys/group_tags row, if any, follows).
	cfg[mapping.KeyGroupTags] = []string{}
	if !meta.hasForkStep {
		s.warn.One(s.parts[0].path, event.Position{}, ReasonBadStep, "fork without sys/forking/step; forked at step 0")
		return info
	}
	micro, err := mapping.MicroFromFloat(meta.forkStep)
	if err != nil {
		s.warn.One(s.parts[0].path, event.Position{}, ReasonBadStep,
			fmt.Sprintf("fork step %v: %v; forked at step 0", meta.forkStep, err))
		return info
	}
	cfg["neptune/fork/step"] = mapping.FormatMicro(micro)
	step, err := mapping.ConvertStep(micro, mul)
	if err != nil {
		// Only with a forced multiplier: fork at the step below.
		step = int64(float64(micro) * float64(mul) / mapping.MicroPerUnit)
		s.warn.One(s.parts[0].path, event.Position{}, ReasonBadStep,
			fmt.Sprintf("fork step %s: %v; using %d", mapping.FormatMicro(micro), err, step))
	}
	info.ForkStep = step
	return info
}

// Warnings implements parsers.Warner.
func (s *stream) Warnings() ([]parsers.Warning, int) { return s.warn.Warnings() }

// Next implements parsers.Stream.
func (s *stream) Next(ctx context.Context, dst []event.Event) (parsers.Chunk, error) {
	if s.closed {
		return parsers.Chunk{}, fmt.Errorf("next %s: %w", s.info.Key, os.ErrClosed)
	}
	s.mapper.SetOutput(dst)
	start := len(dst)
	s.nbytes = 0
	rows := 0
	eof := false
	for rows < s.maxRows && len(s.mapper.Events())-start < s.maxEvents && s.nbytes < chunkBytes {
		if err := ctx.Err(); err != nil {
			return s.chunk(), err
		}
		n, err := s.fill(min(batchRows, s.maxRows-rows))
		if err != nil {
			return s.chunk(), err
		}
		if n == 0 {
			eof = true
			break
		}
		s.mapBatch(s.batch[:n])
		rows += n
	}
	ch := s.chunk()
	if eof && len(ch.Events) == start && rows == 0 {
		return ch, io.EOF
	}
	return ch, nil
}

func (s *stream) chunk() parsers.Chunk {
	b, err := json.Marshal(streamState{V: stateVersion, Map: s.mapper.State()})
	if err != nil {
		// Only strings, numbers and string lists: cannot fail.
		panic(err)
	}
	return parsers.Chunk{Events: s.mapper.Events(), End: s.end, State: b, Bytes: s.nbytes}
}

// fill decodes up to n rows of the current part into s.batch, and then
// the rest of the last operation; 0 at the end of the run. Only I/O
// errors are returned: a corrupt part is reported and the rest of it
// skipped.
func (s *stream) fill(n int) (int, error) {
	for {
		if s.rr == nil {
			if s.pi >= len(s.parts) {
				return 0, nil
			}
			if err := s.openPart(); err != nil {
				return 0, err
			}
			if s.rr == nil {
				continue
			}
		}
		k := 0
		if s.hasAhead {
			s.batch[0], s.ahead = s.ahead, s.batch[0]
			s.hasAhead = false
			k = 1
		}
		for k < n && s.rr.read(&s.batch[k]) {
			k++
		}
		if k > 0 {
			if k == n {
				k = s.finishOp(k)
			}
			return k, nil
		}
		if err := s.partFailed(); err != nil {
			return 0, err
		}
		s.closePart()
		s.pi++
	}
}

// finishOp reads on until the batch's last operation is complete, keeping
// the first row of the next one for the next batch. Operations therefore
// depend only on the data, never on where a batch or chunk ended, so a
// resumed run maps exactly as one pass does.
func (s *stream) finishOp(k int) int {
	i := 0
	for {
		j := opEnd(s.batch[:k], i)
		if j >= k {
			break
		}
		i = j
	}
	for k-i < maxOpRows && k < len(s.batch) {
		if !s.rr.read(&s.ahead) {
			return k // the part ended (or failed: the next fill reports it)
		}
		s.batch[k], s.ahead = s.ahead, s.batch[k]
		if opEnd(s.batch[:k+1], i) != k+1 {
			// The start of the next operation: keep it for later.
			s.batch[k], s.ahead = s.ahead, s.batch[k]
			s.hasAhead = true
			return k
		}
		k++
	}
	return k
}

// opEnd returns the end (exclusive) of the operation starting at rows[i]:
// consecutive float-series points at the same step and time (a neptune3
// export lists a step's metrics together), or consecutive parameters, up
// to maxOpRows; any other row on its own.
func opEnd(rows []rowData, i int) int {
	r := &rows[i]
	j := i + 1
	switch {
	case r.typ == tFloatSeries && r.hasStep && r.stepErr == nil:
		for j < len(rows) && j-i < maxOpRows && sameStepTime(r, &rows[j]) {
			j++
		}
	case r.typ.atom():
		for j < len(rows) && j-i < maxOpRows && rows[j].typ.atom() {
			j++
		}
	}
	return j
}

// partFailed reports a read error of the open part: an I/O error is
// returned, corruption becomes a warning.
func (s *stream) partFailed() error {
	if s.rr.err == nil {
		return nil
	}
	err := classify(s.part, s.rr.err)
	if isIOError(err) {
		return err
	}
	p := s.parts[s.pi]
	s.warn.One(p.path, event.Position{Offset: int64(p.n), Seq: s.rr.row + 1}, ReasonCorrupt,
		fmt.Sprintf("%v; the rest of part_%d is skipped", err, p.n))
	return nil
}

func (s *stream) openPart() error {
	p := s.parts[s.pi]
	skip := s.skip
	s.skip = 0
	if s.bad[p.n] {
		s.pi++
		return nil
	}
	pf, err := openPart(p.path)
	if err != nil {
		if isIOError(err) {
			s.skip = skip
			return err
		}
		s.warn.One(p.path, event.Position{Offset: int64(p.n)}, ReasonCorrupt, err.Error()+"; the part is skipped")
		s.pi++
		return nil
	}
	rr, err := newRowReader(pf, &s.in, wantStream)
	if err != nil {
		pf.close()
		s.warn.One(p.path, event.Position{Offset: int64(p.n)}, ReasonCorrupt, err.Error()+"; the part is skipped")
		s.pi++
		return nil
	}
	s.part, s.rr = pf, rr
	s.bpr = float64(pf.size) / float64(max(pf.rows, 1))
	if skip > 0 {
		left := rr.skipGroups(skip)
		for ; left > 0 && rr.read(&s.batch[0]); left-- {
		}
		if rr.err != nil {
			if err := s.partFailed(); err != nil {
				s.closePart()
				s.skip = skip
				return err
			}
			s.closePart()
			s.pi++
		}
	}
	return nil
}

func (s *stream) closePart() {
	s.hasAhead = false
	if s.rr != nil {
		s.rr.close()
		s.rr = nil
	}
	if s.part != nil {
		s.part.close()
		s.part = nil
	}
}

// mapBatch maps decoded rows, operation by operation (see opEnd): a
// float-series operation becomes one metrics event, a parameter one one
// config event.
func (s *stream) mapBatch(rows []rowData) {
	for i := 0; i < len(rows); {
		j := opEnd(rows, i)
		s.op(rows[i:j])
		i = j
	}
	s.nbytes += int64(float64(len(rows)) * s.bpr)
}

func sameStepTime(a, b *rowData) bool {
	return b.typ == tFloatSeries && b.hasStep && b.stepErr == nil && b.step == a.step && b.hasTS == a.hasTS && b.ts == a.ts
}

// op maps rows as one operation; its events carry the last row's position.
func (s *stream) op(rows []rowData) {
	m := s.mapper
	pn := int64(s.parts[s.pi].n)
	pos := event.Position{Offset: pn, Seq: rows[len(rows)-1].row + 1}
	var t int64
	if rows[0].hasTS {
		t = s.time(rows[0].ts)
	}
	mark := len(m.Events())
	m.Begin(pos, t)
	if !m.RunDone() {
		m.Run(s.runInfo)
	}
	for i := range rows {
		s.row(&rows[i])
	}
	m.End()
	if s.replay && !s.replayUntil.Less(pos) {
		// Already delivered before the state was lost: rebuild only.
		m.Truncate(mark)
		m.TakeWarnings()
	} else {
		s.replay = false
		s.warn.Add(s.parts[s.pi].path, m.TakeWarnings())
	}
	s.end = pos
}

// time corrects a series timestamp of a neptune2 run for the exporting
// machine's time zone (ParamTimezone).
func (s *stream) time(ms int64) int64 {
	if s.zone == nil {
		return ms
	}
	return s.zone.fix(ms)
}

// skipNull counts a row without a value: the neptune3 exporter melts a
// runs table, so every run has a null row for each parameter of the other
// runs exported with it.
func (s *stream) skipNull() { s.opts.OnSkip(parsers.SkipNull) }

// row maps one row inside an operation.
func (s *stream) row(r *rowData) {
	m := s.mapper
	if r.path == "" && r.typ != tNull {
		m.Skip(ReasonCorrupt, "row "+strconv.FormatInt(r.row, 10)+" without an attribute_path")
		return
	}
	switch r.typ {
	case tFloat:
		if !r.hasFloat {
			s.skipNull()
			return
		}
		m.Assign(r.path, r.f)
	case tInt:
		if !r.hasInt {
			s.skipNull()
			return
		}
		m.Assign(r.path, r.i)
	case tString:
		if !r.hasStr {
			s.skipNull()
			return
		}
		m.Assign(r.path, string(r.str))
	case tBool:
		if !r.hasBool {
			s.skipNull()
			return
		}
		m.Assign(r.path, r.b)
	case tDatetime:
		if !r.hasDT {
			s.skipNull()
			return
		}
		m.Assign(r.path, mapping.Datetime{UnixNano: r.dt * 1_000_000})
	case tStringSet:
		if !r.hasSet {
			s.skipNull()
			return
		}
		m.Assign(r.path, r.set)
	case tFloatSeries:
		step, ok := s.step(r)
		if !ok {
			return
		}
		v := r.f
		if !r.hasFloat {
			// pandas writes NaN as null; the row exists because it has a
			// time, so the point was NaN.
			v = math.NaN()
		}
		m.Float(r.path, step, s.seriesTime(r), v)
	case tStringSeries:
		step, ok := s.step(r)
		if !ok {
			return
		}
		if !r.hasStr {
			s.skipNull()
			return
		}
		m.String(r.path, step, s.seriesTime(r), string(r.str))
	case tHistogramSeries:
		step, ok := s.step(r)
		if !ok {
			return
		}
		if !r.hasHist {
			s.skipNull()
			return
		}
		m.Histogram(r.path, step, s.seriesTime(r), r.edges, r.vals)
	case tFile, tArtifact:
		s.file(r, false)
	case tFileSeries:
		s.file(r, true)
	case tFileSet:
		s.fileSet(r)
	case tNull:
		m.Skip(ReasonCorrupt, "row "+strconv.FormatInt(r.row, 10)+" without an attribute_type")
	default:
		m.Skip(ReasonUnknownOp, r.path+": attribute type "+strconv.Quote(r.typName))
	}
}

// step returns a series row's step, or reports why it has none.
func (s *stream) step(r *rowData) (mapping.Step, bool) {
	switch {
	case !r.hasStep:
		s.mapper.Skip(ReasonBadStep, r.path+": a series point without a step")
		return mapping.Step{}, false
	case r.stepErr != nil:
		s.mapper.Skip(ReasonBadStep, r.path+": "+r.stepErr.Error())
		return mapping.Step{}, false
	}
	return mapping.At(r.step), true
}

func (s *stream) seriesTime(r *rowData) int64 {
	if !r.hasTS {
		return 0
	}
	return s.time(r.ts)
}

// Close implements parsers.Stream; it is idempotent.
func (s *stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.rr != nil {
		s.rr.close()
		s.rr = nil
	}
	if s.part != nil {
		err = s.part.close()
		s.part = nil
	}
	return err
}

// zoneFix turns wall-clock milliseconds of a zone, stored as if they were
// UTC, back into instants. The offset is cached per wall-clock hour.
type zoneFix struct {
	loc  *time.Location
	hour int64
	off  int64
}

func (z *zoneFix) fix(wall int64) int64 {
	h := wall / 3_600_000
	if wall < 0 && wall%3_600_000 != 0 {
		h--
	}
	if h != z.hour {
		t := time.UnixMilli(h * 3_600_000).UTC()
		local := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, z.loc)
		z.hour, z.off = h, h*3_600_000-local.UnixMilli()
	}
	return wall - z.off
}
