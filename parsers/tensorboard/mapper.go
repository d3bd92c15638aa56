package tensorboard

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mlop-ai/mlop-agent/event"
)

// Plugin names (SummaryMetadata.plugin_data.plugin_name) the mapper knows.
const (
	pluginScalars       = "scalars"
	pluginText          = "text"
	pluginHistograms    = "histograms"
	pluginImages        = "images"
	pluginAudio         = "audio"
	pluginPRCurves      = "pr_curves"
	pluginMesh          = "mesh"
	pluginHParams       = "hparams"
	pluginCustomScalars = "custom_scalars"
)

// graphPlugins hold graphs and run metadata (TF2's trace_export, Keras).
var graphPlugins = map[string]bool{"graphs": true, "graph_keras_model": true, "graph_run_metadata": true, "graph_run_metadata_graph": true}

// textSuffix is what tensorboardX and TF1's text op append to a text tag.
const textSuffix = "/text_summary"

// hparamsPrefix starts the tags of the hparams plugin.
const hparamsPrefix = "_hparams_/"

// maxMergedPoints caps the points of one metrics event built from several
// consecutive records at the same step and millisecond.
const maxMergedPoints = 64

// maxInterned bounds the tag cache (a variable: tests lower it).
var maxInterned = 1 << 14

// mapper turns the records of one lane into events. It holds what later
// records depend on (each tag's plugin, remembered from its first
// metadata) and is driven by one goroutine: the stream's.
type mapper struct {
	st    *laneState // meta map lives here, saved with the checkpoint
	lane  *laneInfo
	spool *spooler
	now   func() int64 // unix ms, for events without a usable wall time

	// dry maps without side effects (no spool files); used to rebuild
	// state and to count what a purge hides.
	dry bool
	// hide drops values at steps >= hide when hiding (TensorBoard's
	// purge), counting them in hidden.
	hide   int64
	hiding bool
	hidden int64

	evs    []event.Event
	points []event.Point // arena for the points of evs
	// merge is the index in evs of a metrics event later records may
	// join, or -1. Its points are the arena's tail from mergeStart; its
	// Points field is set when the merge ends (endMerge), not at every
	// join (a pointer write each, with GC barriers).
	merge      int
	mergeStart int
	lastTime   int64
	tags       map[string]*tagInfo
	warn       *warnBuf
	file       string // the file being read, for warnings

	// Scratch reused between records.
	rv      rawEvent
	val     rawValue
	scratch []event.Point
	// scratchTags parallels scratch; recGen and evGen stamp tags (see
	// tagInfo).
	scratchTags   []*tagInfo
	recGen, evGen uint64
	tensor        rawTensor
	hist          histo
	img           image
	nums          []float64
}

func newMapper(st *laneState, lane *laneInfo, sp *spooler, now func() int64, warn *warnBuf) *mapper {
	return &mapper{st: st, lane: lane, spool: sp, now: now, warn: warn, merge: -1, tags: map[string]*tagInfo{}}
}

// reset starts a new chunk's events; the arena is reused (the agent is
// done with the previous chunk's events when it asks for the next).
func (m *mapper) reset(dst []event.Event) {
	m.endMerge()
	m.evs = dst[:0]
	m.points = m.points[:0]
}

// endMerge closes the metrics event records were joining.
func (m *mapper) endMerge() {
	if j := m.merge; j >= 0 && j < len(m.evs) {
		n := len(m.points)
		m.evs[j].Points = m.points[m.mergeStart:n:n]
	}
	m.merge = -1
}

// tagInfo is what the mapper knows of a tag, cached: its name as a shared
// string, and its plugin once its first metadata was seen.
type tagInfo struct {
	name   string
	metric string // the metric name (folding applied), once computed
	plugin string
	known  bool // plugin is from the tag's first metadata (st.Meta)
	blank  bool // the tag is empty or white space
	cached bool // held by the cache: one tagInfo per tag
	// Stamps of the record and the metrics event the tag's point was last
	// put in, to find a tag twice without comparing names.
	inRecord, inEvent uint64
}

// tag returns the cached information of a tag, from st.Meta the first
// time (a restored state).
func (m *mapper) tag(b []byte) *tagInfo {
	if ti, ok := m.tags[string(b)]; ok {
		return ti
	}
	ti := &tagInfo{name: validString(b)}
	ti.blank = strings.TrimSpace(ti.name) == ""
	ti.plugin, ti.known = m.st.Meta[ti.name]
	if len(m.tags) < maxInterned {
		ti.cached = true
		m.tags[ti.name] = ti
	}
	return ti
}

// setPlugin records a tag's plugin from its first metadata (TensorBoard
// keeps the first).
func (m *mapper) setPlugin(ti *tagInfo, plugin string) {
	if ti.known {
		return
	}
	ti.plugin, ti.known = plugin, true
	m.st.Meta[ti.name] = plugin
}

func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// wallMS converts an Event's wall_time (seconds) to unix milliseconds;
// a missing or unusable time takes the previous event's (or now).
func (m *mapper) wallMS(wall float64) int64 {
	if wall > 0 && wall < 253402300800 && !math.IsNaN(wall) { // before year 10000
		ms := int64(math.Round(wall * 1000))
		m.lastTime = ms
		return ms
	}
	if m.lastTime > 0 {
		return m.lastTime
	}
	return m.now()
}

// hides reports whether the purge hides a value at step.
func (m *mapper) hides(step int64) bool { return m.hiding && step >= m.hide }

// setHide sets the purge threshold (ok false: nothing hidden).
func (m *mapper) setHide(step int64, ok bool) { m.hide, m.hiding = step, ok }

// recordResult is what the stream needs to know about one record.
type recordResult struct {
	start   bool  // a SessionLog START
	step    int64 // its step
	summary bool  // the record held a summary (or other data)
}

// record maps one event record; pos is the position after it. It never
// fails: what it cannot use is reported through the warnings.
func (m *mapper) record(data []byte, pos event.Position, off int64) recordResult {
	ev := &m.rv
	if err := decodeEvent(data, ev); err != nil {
		m.warn.add(m.file, pos, off, ReasonCorrupt, err.Error())
		m.endMerge()
		return recordResult{summary: true}
	}
	var res recordResult
	switch ev.kind {
	case evFileVersion, evNone:
		return res
	case evSessionLog:
		if ev.status == sessionStart {
			res.start, res.step = true, ev.step
		}
		return res
	case evGraph, evMetaGraph, evRunMetadata:
		m.endMerge()
		m.warn.add(m.file, pos, off, ReasonGraph, kindName(ev.kind))
		return recordResult{summary: true}
	case evLogMessage:
		m.endMerge()
		m.warn.add(m.file, pos, off, ReasonUnsupported, "log_message (deprecated)")
		return recordResult{summary: true}
	}
	res.summary = true
	t := m.wallMS(ev.wall)
	if ev.step < 0 {
		m.endMerge()
		m.warn.add(m.file, pos, off, ReasonBadStep, fmt.Sprintf("step %d is negative", ev.step))
		return res
	}
	first := len(m.evs)
	pts, tis := m.scratch[:0], m.scratchTags[:0]
	m.recGen++
	split := false // the record gives more than one metrics event
	var err error
	for rest, ok := ev.summary, true; ; {
		rest, ok, err = nextValue(rest, &m.val)
		if err != nil || !ok {
			break
		}
		ti, val, ok := m.value(&m.val, ev.step, t, pos, off)
		if !ok {
			continue
		}
		if m.hides(ev.step) {
			m.hidden++
			continue
		}
		if m.seenIn(ti, pts, &ti.inRecord, m.recGen) {
			// The same tag twice in one summary: a line of its own.
			m.addMetrics(pts, tis, pos, ev.step, t)
			pts, tis, split = pts[:0], tis[:0], true
			m.recGen++
			ti.inRecord = m.recGen
		}
		pts = append(pts, event.Point{Name: ti.metric, Value: val})
		tis = append(tis, ti)
	}
	if cap(pts) != cap(m.scratch) || cap(tis) != cap(m.scratchTags) {
		m.scratch, m.scratchTags = pts[:0], tis[:0] // grown
	}
	if err != nil {
		m.warn.add(m.file, pos, off, ReasonCorrupt, err.Error())
	}
	if len(pts) == 0 {
		if len(m.evs) > first || err != nil {
			m.endMerge()
		}
		return res
	}
	pure := !split && err == nil && len(m.evs) == first
	if j := m.merge; pure && j >= 0 && j == len(m.evs)-1 && m.evs[j].Step == ev.step && m.evs[j].Time == t && m.canJoin(j, pts, tis) {
		// Join the previous record's metrics at the same step and
		// millisecond: one line instead of one per tag, which is how the
		// tags of one step usually arrive (one event each). Its points are
		// the arena's tail.
		m.points = append(m.points, pts...)
		m.evs[j].Pos = pos
		for _, ti := range tis {
			ti.inEvent = m.evGen
		}
		return res
	}
	m.addMetrics(pts, tis, pos, ev.step, t)
	if pure {
		m.merge, m.mergeStart = len(m.evs)-1, len(m.points)-len(pts)
	}
	return res
}

// seenIn reports whether ti's point is among pts: by stamp when every tag
// is cached (one tagInfo per tag), by name otherwise; it stamps ti.
func (m *mapper) seenIn(ti *tagInfo, pts []event.Point, stamp *uint64, gen uint64) bool {
	if !ti.cached {
		return hasPoint(pts, ti.metric)
	}
	seen := *stamp == gen
	*stamp = gen
	return seen
}

// addMetrics appends a metrics event with a copy of pts in the arena; it
// starts a new event stamp for the tags of its points.
func (m *mapper) addMetrics(pts []event.Point, tis []*tagInfo, pos event.Position, step, t int64) {
	m.endMerge()
	m.points = append(m.points, pts...)
	n := len(m.points)
	m.evs = append(m.evs, event.Event{Kind: event.KindMetrics, Pos: pos, Step: step, Time: t, Points: m.points[n-len(pts) : n : n]})
	m.evGen++
	for _, ti := range tis {
		ti.inEvent = m.evGen
	}
}

func kindName(k eventKind) string {
	switch k {
	case evGraph:
		return "graph_def"
	case evMetaGraph:
		return "meta_graph_def"
	case evRunMetadata:
		return "tagged_run_metadata"
	}
	return "event"
}

func hasPoint(pts []event.Point, name string) bool {
	for i := range pts {
		if pts[i].Name == name {
			return true
		}
	}
	return false
}

// canJoin reports whether the points of a record (tis) can join metrics
// event j: not too many, and none of its tags there already.
func (m *mapper) canJoin(j int, pts []event.Point, tis []*tagInfo) bool {
	a := m.points[m.mergeStart:] // the event's points so far
	if len(a)+len(pts) > maxMergedPoints {
		return false
	}
	for i, ti := range tis {
		if !ti.cached {
			if hasPoint(a, pts[i].Name) {
				return false
			}
		} else if ti.inEvent == m.evGen {
			return false
		}
	}
	return true
}

// value maps one summary value. It returns ok with the metric name and
// value for a scalar (the caller collects them), and emits every other kind
// itself.
func (m *mapper) value(v *rawValue, step, t int64, pos event.Position, off int64) (metric *tagInfo, val float64, ok bool) {
	tagBytes := v.tag
	if len(tagBytes) == 0 {
		tagBytes = v.nodeName
	}
	var ti *tagInfo
	if len(tagBytes) > 0 {
		ti = m.tag(tagBytes)
	}
	if ti == nil || ti.blank {
		if v.kind != valNone {
			m.warn.add(m.file, pos, off, ReasonBadValue, "a value without a tag")
		}
		return nil, 0, false
	}
	plugin := ti.plugin
	if v.hasMeta {
		pn, content, err := pluginData(v.meta)
		if err != nil {
			m.warn.add(m.file, pos, off, ReasonCorrupt, fmt.Sprintf("tag %q: %v", tagBytes, err))
			return nil, 0, false
		}
		if string(pn) == pluginHParams {
			m.hparams(tagBytes, content, pos, off, t)
			return nil, 0, false
		}
		if !ti.known {
			m.setPlugin(ti, string(pn))
		}
		plugin = ti.plugin
	}
	if plugin == pluginHParams {
		// hparams values carry their data in the metadata, which a later
		// value of the tag no longer has.
		return nil, 0, false
	}
	tag := ti.name
	switch v.kind {
	case valNone:
		// Metadata only (or nothing): no data.
		return nil, 0, false
	case valSimple:
		m.metricName(ti)
		return ti, float64(v.simple), true
	case valHisto:
		m.legacyHistogram(tag, v.body, step, t, pos, off)
		return nil, 0, false
	case valImage:
		m.legacyImage(tag, v.body, step, t, pos, off)
		return nil, 0, false
	case valAudio:
		m.warn.add(m.file, pos, off, ReasonAudio, "tag "+tag)
		return nil, 0, false
	case valOldHisto:
		m.warn.add(m.file, pos, off, ReasonUnsupported, "tag "+tag+": obsolete_old_style_histogram")
		return nil, 0, false
	}
	// A tensor: its plugin says what it is.
	switch {
	case plugin == pluginScalars || plugin == "":
		x, ok := m.scalarTensor(tag, v.body, plugin, pos, off)
		if !ok {
			return nil, 0, false
		}
		m.metricName(ti)
		return ti, x, true
	case plugin == pluginText:
		m.text(tag, v.body, step, t, pos, off)
	case plugin == pluginHistograms:
		m.tensorHistogram(tag, v.body, step, t, pos, off)
	case plugin == pluginImages:
		m.tensorImages(tag, v.body, step, t, pos, off)
	case plugin == pluginAudio:
		m.warn.add(m.file, pos, off, ReasonAudio, "tag "+tag)
	case plugin == pluginPRCurves:
		m.warn.add(m.file, pos, off, ReasonPRCurves, "tag "+tag)
	case plugin == pluginMesh:
		m.warn.add(m.file, pos, off, ReasonMesh, "tag "+tag)
	case plugin == pluginCustomScalars:
		m.warn.add(m.file, pos, off, ReasonCustomScalars, "tag "+tag)
	case graphPlugins[plugin]:
		m.warn.add(m.file, pos, off, ReasonGraph, "tag "+tag+" (plugin "+plugin+")")
	default:
		m.warn.add(m.file, pos, off, ReasonUnknownPlugin, "tag "+tag+" (plugin "+strconv.Quote(plugin)+")")
	}
	return nil, 0, false
}

// metricName applies add_scalars folding: the tag the sub-directory's
// writer uses becomes <main_tag>/<key>; any other tag is prefixed with the
// sub-directory's path so it cannot collide with the run's own.
func (m *mapper) metricName(ti *tagInfo) string {
	if ti.metric != "" {
		return ti.metric
	}
	switch {
	case m.st.Role != roleScalars:
		ti.metric = ti.name
	case ti.name == m.st.FoldTag:
		ti.metric = m.st.FoldName
	default:
		ti.metric = m.lane.sub + "/" + ti.name
	}
	return ti.metric
}

// scalarTensor reads a one-element numeric tensor.
func (m *mapper) scalarTensor(tag string, body []byte, plugin string, pos event.Position, off int64) (float64, bool) {
	t := &m.tensor
	if err := decodeTensor(body, t); err != nil {
		m.warn.add(m.file, pos, off, ReasonCorrupt, fmt.Sprintf("tag %s: %v", tag, err))
		return 0, false
	}
	if t.dtype == dtString {
		m.warn.add(m.file, pos, off, ReasonUnsupported, fmt.Sprintf("tag %s: a string tensor without the text plugin", tag))
		return 0, false
	}
	if n := t.elements(); n != 1 {
		m.warn.add(m.file, pos, off, ReasonUnsupported, fmt.Sprintf("tag %s: a tensor of shape %v, not a scalar", tag, t.dims))
		return 0, false
	}
	var ok bool
	m.nums, ok = t.numbers(m.nums[:0], 1)
	if !ok {
		m.warn.add(m.file, pos, off, ReasonUnsupported, fmt.Sprintf("tag %s: a tensor of dtype %d", tag, t.dtype))
		return 0, false
	}
	if len(m.nums) == 0 {
		m.warn.add(m.file, pos, off, ReasonBadValue, fmt.Sprintf("tag %s: a scalar tensor without a value", tag))
		return 0, false
	}
	return m.nums[0], true
}

// emit appends a non-metric event unless the purge hides its step.
func (m *mapper) emit(ev event.Event) {
	m.endMerge()
	if m.hides(ev.Step) && ev.Kind != event.KindConfig {
		m.hidden++
		return
	}
	m.evs = append(m.evs, ev)
}

func (m *mapper) text(tag string, body []byte, step, t int64, pos event.Position, off int64) {
	tn := &m.tensor
	if err := decodeTensor(body, tn); err != nil {
		m.warn.add(m.file, pos, off, ReasonCorrupt, fmt.Sprintf("tag %s: %v", tag, err))
		return
	}
	if tn.dtype != dtString {
		m.warn.add(m.file, pos, off, ReasonBadValue, fmt.Sprintf("tag %s: a text value of dtype %d", tag, tn.dtype))
		return
	}
	var s string
	switch len(tn.dims) {
	case 0, 1:
		parts := make([]string, len(tn.strings))
		for i, b := range tn.strings {
			parts[i] = validString(b)
		}
		s = strings.Join(parts, "\n")
	case 2:
		// A table: rows of cells, as TensorBoard renders them.
		cols := int(tn.dims[1])
		if cols <= 0 || int64(len(tn.strings)) != tn.dims[0]*tn.dims[1] {
			m.warn.add(m.file, pos, off, ReasonBadValue, fmt.Sprintf("tag %s: a text table of shape %v with %d cells", tag, tn.dims, len(tn.strings)))
			return
		}
		var b strings.Builder
		for i, cell := range tn.strings {
			switch {
			case i > 0 && i%cols == 0:
				b.WriteByte('\n')
			case i%cols != 0:
				b.WriteString(" | ")
			}
			b.WriteString(validString(cell))
		}
		s = b.String()
	default:
		m.warn.add(m.file, pos, off, ReasonUnsupported, fmt.Sprintf("tag %s: a text tensor of rank %d", tag, len(tn.dims)))
		return
	}
	m.emit(event.Event{Kind: event.KindData, Pos: pos, Step: step, Time: t, Name: strings.TrimSuffix(tag, textSuffix),
		Type: event.DataStringSeries, Text: s})
}

// legacyHistogram maps a HistogramProto the way TensorBoard migrates it:
// bucket i spans [bucket_limit[i-1], bucket_limit[i]], the first starts at
// min and the last ends at max. An empty bucket that spans nothing (the
// zero-count bucket tensorboardX puts before the first real one, whose
// limit lies below min) is left out.
func (m *mapper) legacyHistogram(tag string, body []byte, step, t int64, pos event.Position, off int64) {
	h := &m.hist
	if err := decodeHisto(body, h); err != nil {
		m.warn.add(m.file, pos, off, ReasonCorrupt, fmt.Sprintf("tag %s: %v", tag, err))
		return
	}
	k := len(h.counts)
	if k == 0 || len(h.limits) != k {
		m.warn.add(m.file, pos, off, ReasonBadValue, fmt.Sprintf("tag %s: a histogram with %d buckets and %d limits", tag, k, len(h.limits)))
		return
	}
	edges := make([]float64, 0, k+1)
	freq := make([]float64, 0, k)
	for i := 0; i < k; i++ {
		left, right := h.min, h.max
		if i > 0 {
			left = h.limits[i-1]
		}
		if i < k-1 {
			right = h.limits[i]
		}
		if h.counts[i] == 0 && right <= left {
			continue
		}
		if len(edges) == 0 {
			edges = append(edges, left)
		}
		edges = append(edges, right)
		freq = append(freq, h.counts[i])
	}
	m.histogram(tag, edges, freq, step, t, pos, off)
}

// tensorHistogram maps a TF2 histograms tensor: k rows of (left, right,
// count).
func (m *mapper) tensorHistogram(tag string, body []byte, step, t int64, pos event.Position, off int64) {
	tn := &m.tensor
	if err := decodeTensor(body, tn); err != nil {
		m.warn.add(m.file, pos, off, ReasonCorrupt, fmt.Sprintf("tag %s: %v", tag, err))
		return
	}
	if len(tn.dims) != 2 || tn.dims[1] != 3 || tn.dims[0] < 0 || tn.dims[0] > 1<<20 {
		m.warn.add(m.file, pos, off, ReasonBadValue, fmt.Sprintf("tag %s: a histogram tensor of shape %v, want k×3", tag, tn.dims))
		return
	}
	k := int(tn.dims[0])
	var ok bool
	m.nums, ok = tn.numbers(m.nums[:0], 3*k)
	if !ok || len(m.nums) != 3*k {
		m.warn.add(m.file, pos, off, ReasonBadValue, fmt.Sprintf("tag %s: a histogram tensor with %d of %d values", tag, len(m.nums), 3*k))
		return
	}
	edges := make([]float64, 0, k+1)
	freq := make([]float64, 0, k)
	for i := 0; i < k; i++ {
		l, r, c := m.nums[3*i], m.nums[3*i+1], m.nums[3*i+2]
		if len(edges) == 0 {
			edges = append(edges, l)
		}
		edges = append(edges, r)
		freq = append(freq, c)
	}
	m.histogram(tag, edges, freq, step, t, pos, off)
}

func (m *mapper) histogram(tag string, edges, freq []float64, step, t int64, pos event.Position, off int64) {
	if len(freq) == 0 {
		m.warn.add(m.file, pos, off, ReasonBadValue, "tag "+tag+": an empty histogram")
		return
	}
	for i, e := range edges {
		if math.IsNaN(e) || math.IsInf(e, 0) || (i > 0 && e < edges[i-1]) {
			m.warn.add(m.file, pos, off, ReasonBadValue, "tag "+tag+": histogram edges that are not finite and increasing")
			return
		}
	}
	for _, f := range freq {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			m.warn.add(m.file, pos, off, ReasonBadValue, "tag "+tag+": a histogram count that is not finite and non-negative")
			return
		}
	}
	m.emit(event.Event{Kind: event.KindData, Pos: pos, Step: step, Time: t, Name: tag, Type: event.DataHistogram,
		Text: histogramJSON(edges, freq)})
}

// histogramJSON renders pluto's generic histogram shape (mlop-api.md
// §2.8), the real bin edges kept: the same object parsers/neptune sends.
func histogramJSON(edges, freq []float64) string {
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

func (m *mapper) legacyImage(tag string, body []byte, step, t int64, pos event.Position, off int64) {
	im := &m.img
	if err := decodeImage(body, im); err != nil {
		m.warn.add(m.file, pos, off, ReasonCorrupt, fmt.Sprintf("tag %s: %v", tag, err))
		return
	}
	if len(im.encoded) == 0 {
		m.warn.add(m.file, pos, off, ReasonBadValue, "tag "+tag+": an image without data")
		return
	}
	m.image(tag, im.encoded, 0, step, t, pos, off)
}

// tensorImages maps a TF2 images tensor: [width, height, image...].
func (m *mapper) tensorImages(tag string, body []byte, step, t int64, pos event.Position, off int64) {
	tn := &m.tensor
	if err := decodeTensor(body, tn); err != nil {
		m.warn.add(m.file, pos, off, ReasonCorrupt, fmt.Sprintf("tag %s: %v", tag, err))
		return
	}
	if tn.dtype != dtString || len(tn.strings) < 2 {
		m.warn.add(m.file, pos, off, ReasonBadValue, fmt.Sprintf("tag %s: an images tensor with %d strings", tag, len(tn.strings)))
		return
	}
	for i, img := range tn.strings[2:] {
		if len(img) == 0 {
			m.warn.add(m.file, pos, off, ReasonBadValue, fmt.Sprintf("tag %s: image %d without data", tag, i))
			continue
		}
		m.image(tag, img, i, step, t, pos, off)
	}
}

func (m *mapper) image(tag string, data []byte, sample int, step, t int64, pos event.Position, off int64) {
	if m.hides(step) {
		m.endMerge()
		m.hidden++
		return
	}
	var path string
	if !m.dry {
		var err error
		path, err = m.spool.write(m.lane.key, m.file, off, tag, sample, data)
		if err != nil {
			m.warn.add(m.file, pos, off, ReasonSpoolFailed, fmt.Sprintf("tag %s: %v", tag, err))
			m.spool.failed = err
			return
		}
	}
	m.emit(event.Event{Kind: event.KindFile, Pos: pos, Step: step, Time: t, Name: tag, Type: "IMAGE", Path: path})
}

// hparams maps the hparams plugin's session_start_info to the run's
// config. The experiment and session_end_info summaries describe the
// search space and the session's status: nothing to send.
func (m *mapper) hparams(tag []byte, content []byte, pos event.Position, off int64, t int64) {
	hp, ok, err := sessionStartHParams(content)
	if err != nil {
		m.warn.add(m.file, pos, off, ReasonCorrupt, fmt.Sprintf("tag %q: %v", tag, err))
		return
	}
	if !ok || len(hp) == 0 {
		return
	}
	m.emit(event.Event{Kind: event.KindConfig, Pos: pos, Time: t, Config: hp})
}
