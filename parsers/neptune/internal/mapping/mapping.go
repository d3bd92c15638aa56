// Package mapping turns normalised Neptune operations into mlop events. It
// is shared by every Neptune reader (the neptune-client 1.x disk queue, the
// neptune-scale SQLite log, and a neptune-exporter parquet reader): a
// reader decodes its storage, calls Begin for each operation, one method
// per attribute change (Float, String, Histogram, File, Assign, Delete,
// the set operations, ...) and End, and collects the events.
//
// The mapper holds the state that later operations depend on (tags, string
// sets, per-series step counters, the console line counter) in a State
// that the reader saves with its checkpoint.
package mapping

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
)

// Warning reasons, a closed set.
const (
	ReasonUnknownOp     = "unknown_op"     // an operation type the reader does not know
	ReasonNeedsServer   = "needs_server"   // CopyAttribute, artifacts: only a Neptune server can resolve them
	ReasonUnsupported   = "unsupported"    // an operation mlop cannot express (DeleteFiles, ...)
	ReasonCorrupt       = "corrupt"        // an undecodable record or row
	ReasonBadStep       = "bad_step"       // a step that cannot be mapped to an mlop step
	ReasonBadValue      = "bad_value"      // a value of the wrong type or shape
	ReasonMissingFile   = "missing_file"   // a file that does not exist on this machine
	ReasonVersionGap    = "version_gap"    // missing operations in a 1.x queue
	ReasonClearedSeries = "cleared_series" // a series was cleared after points were sent
	ReasonDeleted       = "deleted"        // an attribute deleted after its value was sent (mlop cannot remove it)
)

// Warning is an operation, or part of one, that was skipped.
type Warning struct {
	Pos     event.Position
	Reason  string
	Detail  string
	Missing string // parsers.Warning.Missing
}

// StepKind says how a point's step is given.
type StepKind uint8

// The step kinds.
const (
	// StepAt is an explicit step.
	StepAt StepKind = iota
	// StepSeriesNext is neptune-client's "step": null: one past the
	// series' last step, starting at 0.
	StepSeriesNext
	// StepRunNext is an append without a step in neptune-scale: the next
	// whole step after the highest step of the run.
	StepRunNext
)

// Step is a Neptune step.
type Step struct {
	Kind  StepKind
	Micro int64 // StepAt: the step in millionths
}

// At returns an explicit step in millionths.
func At(micro int64) Step { return Step{Kind: StepAt, Micro: micro} }

// File describes a file attribute value.
type File struct {
	Local   string // the file to upload; "" when it is not available here
	Origin  string // where the producer had it, for the missing-file report
	Caption string
	Mime    string
	Ext     string // the extension the producer recorded, when the file name has none
}

// Options configure a Mapper.
type Options struct {
	// Multiplier scales Neptune steps to mlop steps (step*Multiplier must
	// be integral). 0 means 1.
	Multiplier int64
	// TrackSeries keeps every series' last step, which StepSeriesNext
	// needs (neptune-client 1.x). Off, the state stays smaller.
	TrackSeries bool
	// TrackAttributes keeps the kind of every atom and file attribute
	// sent, which Delete needs to know what a deletion takes back
	// (neptune-client 1.x, the only format with DeleteAttribute).
	TrackAttributes bool
}

// State is what a Mapper needs to continue after a restart. It is
// JSON-encoded into the checkpoint.
type State struct {
	Multiplier int64               `json:"mul"`
	RunDone    bool                `json:"run,omitempty"`
	LastTime   int64               `json:"t,omitempty"`
	Line       int64               `json:"line,omitempty"`
	HasMax     bool                `json:"hasmax,omitempty"`
	MaxStep    int64               `json:"max,omitempty"`
	Last       map[string]int64    `json:"last,omitempty"`
	Tags       []string            `json:"tags,omitempty"`
	GroupTags  []string            `json:"gtags,omitempty"`
	Sets       map[string][]string `json:"sets,omitempty"`
	// Live holds, with Options.TrackAttributes, the atom and file
	// attributes whose value was sent, by kind (liveAtom, liveFile,
	// liveMissing).
	Live map[string]int8 `json:"live,omitempty"`
	// Ident is the run's identity as its run event gave it, so a resumed
	// stream can give it again (a restarted agent finds its run by it).
	Ident *Ident `json:"ident,omitempty"`
}

// Ident is the part of a run event that names the run.
type Ident struct {
	ExternalID string `json:"id"`
	Name       string `json:"name,omitempty"`
	Project    string `json:"project,omitempty"`
	CreatedAt  int64  `json:"created,omitempty"`
	ForkParent string `json:"fork,omitempty"`
	ForkStep   int64  `json:"fork_step,omitempty"`
}

// Kinds of State.Live.
const (
	liveAtom    int8 = 1 // a config key
	liveFile    int8 = 2 // an uploaded file
	liveMissing int8 = 3 // a file reported missing: a neptune/missing_files/ config key
)

// Attribute paths with a meaning of their own.
const (
	PathName      = "sys/name"
	PathFailed    = "sys/failed"
	PathTags      = "sys/tags"
	PathGroupTags = "sys/group_tags"
)

// Config keys the mapper writes.
const (
	KeyGroupTags    = "neptune/group_tags"
	KeyMissingFiles = "neptune/missing_files/"
	sysPrefix       = "sys/"
	bookPrefix      = "neptune/"
)

// pointsBlock is how many points a fresh backing array holds.
const pointsBlock = 8192

// Mapper maps one run's operations. It is not safe for concurrent use.
type Mapper struct {
	mul        int64
	track      bool
	trackAttrs bool

	runDone  bool
	ident    *Ident // the run's identity, once known
	lastTime int64
	line     int64
	hasMax   bool
	maxStep  int64
	last     map[string]int64
	tags     *orderedSet
	gtags    *orderedSet
	sets     map[string]*orderedSet
	live     map[string]int8 // with trackAttrs

	// The operation being mapped.
	pos        event.Position
	t          int64
	opStart    int // index in out of the operation's first event
	curMetric  int // index in out of the operation's open metrics event, -1 if none
	curStart   int // index in pts of that event's first point
	curConfig  int // index in out of the operation's config event, -1 if none
	tagsBefore []string
	tagsDirty  bool

	out      []event.Event
	pts      []event.Point
	warnings []Warning
}

// New makes a Mapper that continues from st (the zero State starts a run).
func New(st State, opts Options) *Mapper {
	mul := opts.Multiplier
	if mul <= 0 {
		mul = st.Multiplier
	}
	if mul <= 0 {
		mul = 1
	}
	m := &Mapper{
		mul:        mul,
		track:      opts.TrackSeries,
		trackAttrs: opts.TrackAttributes,
		// The run's identity is emitted again after every restart: the
		// agent that reads the resumed stream is a new process, and the
		// run event is how it finds the run (by external id) again.
		runDone:   false,
		ident:     st.Ident,
		lastTime:  st.LastTime,
		line:      st.Line,
		hasMax:    st.HasMax,
		maxStep:   st.MaxStep,
		last:      make(map[string]int64, len(st.Last)),
		tags:      newOrderedSet(st.Tags),
		gtags:     newOrderedSet(st.GroupTags),
		sets:      make(map[string]*orderedSet, len(st.Sets)),
		curMetric: -1,
		curConfig: -1,
	}
	for k, v := range st.Last {
		m.last[k] = v
	}
	for k, v := range st.Sets {
		m.sets[k] = newOrderedSet(v)
	}
	if m.trackAttrs {
		m.live = make(map[string]int8, len(st.Live))
		for k, v := range st.Live {
			m.live[k] = v
		}
	}
	return m
}

// Multiplier returns the step multiplier in use.
func (m *Mapper) Multiplier() int64 { return m.mul }

// RunDone reports whether Run was called (now or before the restart).
func (m *Mapper) RunDone() bool { return m.runDone }

// State returns a copy of the state to save after the events produced so
// far. Call it between operations.
func (m *Mapper) State() State {
	st := State{
		Multiplier: m.mul,
		RunDone:    m.runDone,
		Ident:      m.ident,
		LastTime:   m.lastTime,
		Line:       m.line,
		HasMax:     m.hasMax,
		MaxStep:    m.maxStep,
		Tags:       m.tags.sorted(),
		GroupTags:  m.gtags.sorted(),
	}
	if len(m.last) > 0 {
		st.Last = make(map[string]int64, len(m.last))
		for k, v := range m.last {
			st.Last[k] = v
		}
	}
	if len(m.sets) > 0 {
		st.Sets = make(map[string][]string, len(m.sets))
		for k, v := range m.sets {
			st.Sets[k] = v.list()
		}
	}
	if len(m.live) > 0 {
		st.Live = make(map[string]int8, len(m.live))
		for k, v := range m.live {
			st.Live[k] = v
		}
	}
	return st
}

// SetOutput makes the mapper append its events to dst.
func (m *Mapper) SetOutput(dst []event.Event) { m.out = dst }

// Events returns the events appended since SetOutput.
func (m *Mapper) Events() []event.Event { return m.out }

// Truncate drops the events after the first n, for a reader that replays
// operations it already delivered.
func (m *Mapper) Truncate(n int) { m.out = m.out[:n] }

// TakeWarnings returns and forgets the warnings collected so far.
func (m *Mapper) TakeWarnings() []Warning {
	w := m.warnings
	m.warnings = nil
	return w
}

// LastTime returns the time of the latest operation (unix ms).
func (m *Mapper) LastTime() int64 { return m.lastTime }

// Begin starts an operation ending at pos, at time t (unix ms; 0 takes the
// previous operation's time).
func (m *Mapper) Begin(pos event.Position, t int64) {
	if t <= 0 {
		t = m.lastTime
	}
	m.pos, m.t = pos, t
	m.opStart = len(m.out)
	m.curMetric, m.curConfig = -1, -1
	m.tagsDirty = false
}

// Time returns the current operation's time.
func (m *Mapper) Time() int64 { return m.t }

// End finishes the operation.
func (m *Mapper) End() {
	if m.tagsDirty {
		m.flushTags()
	}
	if m.t > m.lastTime {
		m.lastTime = m.t
	}
	m.curMetric, m.curConfig = -1, -1
}

// Skip records a warning for the current operation.
func (m *Mapper) Skip(reason, detail string) {
	m.warnings = append(m.warnings, Warning{Pos: m.pos, Reason: reason, Detail: detail})
}

func (m *Mapper) emit(ev event.Event) *event.Event {
	ev.Pos = m.pos
	if ev.Time == 0 {
		ev.Time = m.t
	}
	m.out = append(m.out, ev)
	return &m.out[len(m.out)-1]
}

// Run emits the run's identity; it must precede the run's other events.
// After a restart (the state restored, the stream's own run info not
// rebuilt) info is nil and the identity saved in the state is emitted:
// without it the restarted agent would not know which run the rest of the
// data belongs to.
func (m *Mapper) Run(info *event.RunInfo) {
	if info == nil {
		if m.ident == nil {
			m.runDone = true // a state from before identities were saved
			return
		}
		id := m.ident
		info = &event.RunInfo{ExternalID: id.ExternalID, Name: id.Name, Project: id.Project, CreatedAt: id.CreatedAt,
			ForkParent: id.ForkParent, ForkStep: id.ForkStep}
	}
	m.ident = &Ident{ExternalID: info.ExternalID, Name: info.Name, Project: info.Project, CreatedAt: info.CreatedAt,
		ForkParent: info.ForkParent, ForkStep: info.ForkStep}
	m.emit(event.Event{Kind: event.KindRun, Info: info, Time: info.CreatedAt})
	m.runDone = true
}

// resolve turns a step into millionths and then an mlop step, keeping the
// per-series and per-run bookkeeping.
func (m *Mapper) resolve(path string, s Step) (int64, bool) {
	micro := s.Micro
	switch s.Kind {
	case StepSeriesNext:
		if last, ok := m.last[path]; ok {
			micro = last + MicroPerUnit
		} else {
			micro = 0
		}
	case StepRunNext:
		if m.hasMax {
			micro = (m.maxStep/MicroPerUnit + 1) * MicroPerUnit
		} else {
			micro = 0
		}
	}
	step, err := ConvertStep(micro, m.mul)
	if err != nil {
		m.Skip(ReasonBadStep, path+" at step "+FormatMicro(micro)+": "+err.Error())
		return 0, false
	}
	if m.track {
		m.last[path] = micro
	}
	if !m.hasMax || micro > m.maxStep {
		m.hasMax, m.maxStep = true, micro
	}
	return step, true
}

// Float appends a float-series point. Points of one operation at the same
// step and time share one metrics event.
func (m *Mapper) Float(path string, s Step, t int64, v float64) {
	step, ok := m.resolve(path, s)
	if !ok {
		return
	}
	if t <= 0 {
		t = m.t
	}
	if m.curMetric >= 0 {
		ev := &m.out[m.curMetric]
		if ev.Step == step && ev.Time == t && m.curStart+len(ev.Points) == len(m.pts) {
			m.addPoint(event.Point{Name: path, Value: v})
			ev.Points = m.pts[m.curStart:len(m.pts):len(m.pts)]
			return
		}
	}
	m.curMetric = -1
	m.addPoint(event.Point{Name: path, Value: v})
	m.curStart = len(m.pts) - 1
	m.emit(event.Event{Kind: event.KindMetrics, Step: step, Time: t, Points: m.pts[m.curStart:len(m.pts):len(m.pts)]})
	m.curMetric = len(m.out) - 1
}

// addPoint appends to the points backing array. Events hold capacity-capped
// sub-slices of it, so it is never rewritten; a full array is replaced, and
// only the open event's points move to the new one.
func (m *Mapper) addPoint(p event.Point) {
	if len(m.pts) == cap(m.pts) {
		keep := 0
		if m.curMetric >= 0 {
			keep = len(m.pts) - m.curStart
		}
		n := make([]event.Point, 0, max(pointsBlock, 2*keep+1))
		n = append(n, m.pts[len(m.pts)-keep:]...)
		m.pts = n
		m.curStart = 0
	}
	m.pts = append(m.pts, p)
}

// ConsoleStream reports whether a string series is captured console
// output, and its mlop log type: monitoring/stdout (0.9 clients),
// monitoring/<hash>/stdout (1.x), runtime/stdout (neptune-scale), and the
// same for stderr.
func ConsoleStream(path string) (string, bool) {
	var stream string
	switch {
	case strings.HasSuffix(path, "/stdout"):
		stream = "INFO"
	case strings.HasSuffix(path, "/stderr"):
		stream = "ERROR"
	default:
		return "", false
	}
	ns := path[:strings.LastIndexByte(path, '/')]
	switch {
	case ns == "runtime" || ns == "monitoring":
		return stream, true
	case strings.HasPrefix(ns, "monitoring/") && !strings.Contains(ns[len("monitoring/"):], "/"):
		return stream, true
	}
	return "", false
}

// String appends a string-series value; console streams become log lines.
func (m *Mapper) String(path string, s Step, t int64, v string) {
	if t <= 0 {
		t = m.t
	}
	if typ, ok := ConsoleStream(path); ok {
		if m.track && s.Kind == StepSeriesNext {
			// Keep the series counter moving, as the server would.
			m.resolve(path, s)
		}
		m.line++
		v = strings.TrimSuffix(v, "\n")
		v = strings.TrimSuffix(v, "\r")
		m.emit(event.Event{Kind: event.KindLog, Step: m.line, Time: t, Type: typ, Text: v})
		return
	}
	step, ok := m.resolve(path, s)
	if !ok {
		return
	}
	m.emit(event.Event{Kind: event.KindData, Step: step, Time: t, Name: path, Type: event.DataStringSeries, Text: v})
}

// Histogram appends a histogram value with real bin edges. freq holds the
// counts, or the densities when the histogram has no counts.
func (m *Mapper) Histogram(path string, s Step, t int64, edges, freq []float64) {
	if len(edges) != len(freq)+1 || len(freq) == 0 {
		m.Skip(ReasonBadValue, path+": histogram with "+strconv.Itoa(len(edges))+" edges and "+strconv.Itoa(len(freq))+" values")
		return
	}
	for _, f := range append(edges[:len(edges):len(edges)], freq...) {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			m.Skip(ReasonBadValue, path+": histogram with a non-finite number")
			return
		}
	}
	step, ok := m.resolve(path, s)
	if !ok {
		return
	}
	if t <= 0 {
		t = m.t
	}
	m.emit(event.Event{Kind: event.KindData, Step: step, Time: t, Name: path, Type: event.DataHistogram, Text: HistogramJSON(edges, freq)})
}

// HistogramJSON renders the generic histogram shape of pluto's
// Histogram (mlop-api.md §2.8), keeping the real bin edges.
func HistogramJSON(edges, freq []float64) string {
	b := make([]byte, 0, 32+24*(len(edges)+len(freq)))
	b = append(b, `{"freq":[`...)
	maxFreq := 0.0
	for i, f := range freq {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, f, 'g', -1, 64)
		if i == 0 || f > maxFreq {
			maxFreq = f
		}
	}
	b = append(b, `],"bins":[`...)
	for i, e := range edges {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, e, 'g', -1, 64)
	}
	b = append(b, `],"shape":"generic","type":"Histogram","v":1,"maxFreq":`...)
	b = strconv.AppendFloat(b, maxFreq, 'g', -1, 64)
	b = append(b, '}')
	return string(b)
}

// File emits a file to upload; series files carry their step, a single
// file step 0. A file that is not available is reported and recorded in
// the config under neptune/missing_files/<path>[/<step>].
func (m *Mapper) File(path string, s Step, series bool, t int64, f File) {
	var step int64
	if series {
		var ok bool
		if step, ok = m.resolve(path, s); !ok {
			return
		}
	}
	if t <= 0 {
		t = m.t
	}
	if f.Local == "" {
		key := KeyMissingFiles + path
		if series {
			key += "/" + strconv.FormatInt(step, 10)
		} else {
			m.noteLive(path, liveMissing)
		}
		m.warnings = append(m.warnings, Warning{Pos: m.pos, Reason: ReasonMissingFile, Detail: path + ": " + f.Origin, Missing: f.Origin})
		m.config(key, f.Origin)
		return
	}
	if !series {
		m.noteLive(path, liveFile)
	}
	name := f.Local
	if f.Ext != "" {
		name = "file." + f.Ext
	}
	m.emit(event.Event{Kind: event.KindFile, Step: step, Time: t, Name: path, Path: f.Local, Text: f.Caption, Type: FileType(f.Mime, name)})
}

// config adds a key to the operation's config event.
func (m *Mapper) config(key string, v any) {
	if m.curConfig < 0 {
		m.emit(event.Event{Kind: event.KindConfig, Config: make(map[string]any, 1)})
		m.curConfig = len(m.out) - 1
	}
	m.out[m.curConfig].Config[key] = v
}

// configKey maps an attribute path to its config key: sys/* bookkeeping
// goes under neptune/, everything else keeps its path.
func configKey(path string) string {
	if strings.HasPrefix(path, sysPrefix) {
		return bookPrefix + path
	}
	return path
}

// Datetime is an atom value holding an instant.
type Datetime struct{ UnixNano int64 }

// Assign sets an atom: float64, int64, bool, string, Datetime or []string
// (a string set). Non-finite floats become the strings "NaN", "Infinity"
// and "-Infinity" (JSON has no such numbers). sys/failed = true also
// emits a FAILED status; a string set on sys/tags or sys/group_tags
// replaces the tags.
func (m *Mapper) Assign(path string, v any) {
	if x, ok := v.([]string); ok {
		m.SetAssign(path, x)
		return
	}
	key, v, ok := ConfigValue(path, v)
	if !ok {
		m.Skip(ReasonBadValue, path+": unsupported atom type")
		return
	}
	m.config(key, v)
	m.noteLive(path, liveAtom)
	if path == PathFailed {
		if b, ok := v.(bool); ok && b {
			m.emit(event.Event{Kind: event.KindStatus, Status: event.StatusFailed})
		}
	}
}

// ConfigValue returns the config key and value an atom assignment
// becomes (as Assign sends it): sys/* under neptune/, non-finite floats as
// the strings "NaN", "Infinity" and "-Infinity", a Datetime as RFC 3339
// (UTC), a string set sorted ([] when empty). ok is false for a value of
// another type.
func ConfigValue(path string, v any) (key string, out any, ok bool) {
	switch x := v.(type) {
	case float64:
		switch {
		case math.IsNaN(x):
			v = "NaN"
		case math.IsInf(x, 1):
			v = "Infinity"
		case math.IsInf(x, -1):
			v = "-Infinity"
		}
	case Datetime:
		v = time.Unix(0, x.UnixNano).UTC().Format(time.RFC3339Nano)
	case []string:
		v = newOrderedSet(x).list()
	case int64, bool, string, nil:
	default:
		return "", nil, false
	}
	return configKey(path), v, true
}

// noteLive records that an attribute's value was sent (TrackAttributes).
func (m *Mapper) noteLive(path string, kind int8) {
	if m.trackAttrs {
		m.live[path] = kind
	}
}

// Delete removes an attribute (neptune-client DeleteAttribute). A reader
// that knows the run's final state leaves out what a later deletion
// removes, so Delete only has to take back what was already sent: the tag
// sets lose their tags (mlop tags can be removed); a config key (an atom,
// a string set, a missing-file record) is set to null, the most a config
// update can do, and reported (ReasonDeleted); series points and uploaded
// files stay in mlop, and that is reported too. Step-less points of a
// series logged again after the deletion start at 0. An attribute nothing
// was sent for needs nothing.
func (m *Mapper) Delete(path string) {
	switch path {
	case PathTags, PathGroupTags:
		m.SetClear(path)
		return
	}
	if _, ok := m.sets[path]; ok {
		delete(m.sets, path)
		m.config(configKey(path), nil)
		m.Skip(ReasonDeleted, path+": deleted after its value was sent; the config key is set to null (mlop cannot remove it)")
	}
	if _, ok := m.last[path]; ok {
		delete(m.last, path)
		m.Skip(ReasonDeleted, path+": series deleted after its points were sent; they stay in mlop")
	}
	switch m.live[path] {
	case liveAtom:
		m.config(configKey(path), nil)
		m.Skip(ReasonDeleted, path+": deleted after its value was sent; the config key is set to null (mlop cannot remove it)")
	case liveFile:
		m.Skip(ReasonDeleted, path+": file deleted after it was uploaded; it stays in mlop")
	case liveMissing:
		m.config(KeyMissingFiles+path, nil)
	}
	delete(m.live, path)
}

// ClearSeries empties a series. mlop cannot delete points, so the points
// already sent stay; step-less points start again at 0 and replace them
// step by step.
func (m *Mapper) ClearSeries(path string) {
	if _, had := m.last[path]; had {
		m.Skip(ReasonClearedSeries, path+": earlier points stay in mlop")
		delete(m.last, path)
	}
}

func (m *Mapper) set(path string) *orderedSet {
	switch path {
	case PathTags:
		return m.tags
	case PathGroupTags:
		return m.gtags
	}
	s, ok := m.sets[path]
	if !ok {
		s = newOrderedSet(nil)
		m.sets[path] = s
	}
	return s
}

func (m *Mapper) beforeSetChange(path string) {
	if (path == PathTags || path == PathGroupTags) && !m.tagsDirty {
		m.tagsBefore = m.union()
		m.tagsDirty = true
	}
}

func (m *Mapper) afterSetChange(path string) {
	switch path {
	case PathTags:
	case PathGroupTags:
		m.config(KeyGroupTags, m.gtags.list())
	default:
		m.config(configKey(path), m.sets[path].list())
	}
}

// SetAdd adds items to a string set.
func (m *Mapper) SetAdd(path string, items []string) {
	m.beforeSetChange(path)
	s := m.set(path)
	for _, it := range items {
		s.add(it)
	}
	m.afterSetChange(path)
}

// SetRemove removes items from a string set.
func (m *Mapper) SetRemove(path string, items []string) {
	m.beforeSetChange(path)
	s := m.set(path)
	for _, it := range items {
		s.remove(it)
	}
	m.afterSetChange(path)
}

// SetClear empties a string set.
func (m *Mapper) SetClear(path string) {
	m.beforeSetChange(path)
	m.set(path).clear()
	m.afterSetChange(path)
}

// SetAssign replaces a string set.
func (m *Mapper) SetAssign(path string, items []string) {
	m.beforeSetChange(path)
	s := m.set(path)
	s.clear()
	for _, it := range items {
		s.add(it)
	}
	m.afterSetChange(path)
}

// union is the run's mlop tags: tags and group tags together, in the
// order they were added.
func (m *Mapper) union() []string {
	out := make([]string, 0, len(m.tags.items)+len(m.gtags.items))
	seen := make(map[string]bool, cap(out))
	for _, s := range []*orderedSet{m.tags, m.gtags} {
		for _, t := range s.items {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	return out
}

// flushTags emits one tags event with what the operation changed.
func (m *Mapper) flushTags() {
	m.tagsDirty = false
	after := m.union()
	before := make(map[string]bool, len(m.tagsBefore))
	for _, t := range m.tagsBefore {
		before[t] = true
	}
	now := make(map[string]bool, len(after))
	var add, remove []string
	for _, t := range after {
		now[t] = true
		if !before[t] {
			add = append(add, t)
		}
	}
	for _, t := range m.tagsBefore {
		if !now[t] {
			remove = append(remove, t)
		}
	}
	if len(add) == 0 && len(remove) == 0 {
		return
	}
	m.emit(event.Event{Kind: event.KindTags, Tags: add, Untags: remove})
}

// FileType chooses the mlop log type of a file from its MIME type, then
// its extension: IMAGE, AUDIO, VIDEO, TEXT, otherwise ARTIFACT.
func FileType(mime, name string) string {
	mime = strings.ToLower(mime)
	if i := strings.IndexByte(mime, ';'); i >= 0 {
		mime = strings.TrimSpace(mime[:i])
	}
	switch {
	case strings.HasPrefix(mime, "image/"):
		return "IMAGE"
	case strings.HasPrefix(mime, "audio/"):
		return "AUDIO"
	case strings.HasPrefix(mime, "video/"):
		return "VIDEO"
	case strings.HasPrefix(mime, "text/"):
		return "TEXT"
	}
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 && !strings.ContainsAny(name[i:], "/\\") {
		ext = strings.ToLower(name[i+1:])
	}
	switch ext {
	case "png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "svg", "ico":
		return "IMAGE"
	case "wav", "mp3", "flac", "ogg", "m4a", "aac", "opus":
		return "AUDIO"
	case "mp4", "webm", "mov", "avi", "mkv", "m4v":
		return "VIDEO"
	case "txt", "md", "log", "csv", "tsv", "json", "jsonl", "yaml", "yml", "toml", "ini", "cfg", "conf",
		"py", "sh", "patch", "diff", "xml", "html", "htm", "rst", "tex":
		return "TEXT"
	}
	switch mime {
	case "application/json", "application/yaml", "application/x-yaml", "application/xml", "application/patch",
		"application/x-patch", "application/toml":
		return "TEXT"
	}
	return "ARTIFACT"
}

// orderedSet is a string set that remembers insertion order.
type orderedSet struct {
	items []string
	index map[string]int
}

func newOrderedSet(items []string) *orderedSet {
	s := &orderedSet{index: make(map[string]int, len(items))}
	for _, it := range items {
		s.add(it)
	}
	return s
}

func (s *orderedSet) add(it string) {
	if _, ok := s.index[it]; ok {
		return
	}
	s.index[it] = len(s.items)
	s.items = append(s.items, it)
}

func (s *orderedSet) remove(it string) {
	i, ok := s.index[it]
	if !ok {
		return
	}
	delete(s.index, it)
	s.items = append(s.items[:i], s.items[i+1:]...)
	for j := i; j < len(s.items); j++ {
		s.index[s.items[j]] = j
	}
}

func (s *orderedSet) clear() {
	s.items = s.items[:0]
	clear(s.index)
}

// list is the set's items, sorted; an empty set is an empty list, never
// nil: a config value [] (the set exists, empty) is not null (it does
// not).
func (s *orderedSet) list() []string {
	out := make([]string, len(s.items))
	copy(out, s.items)
	sort.Strings(out)
	return out
}

func (s *orderedSet) sorted() []string {
	if len(s.items) == 0 {
		return nil
	}
	out := append([]string(nil), s.items...)
	sort.Strings(out)
	return out
}
