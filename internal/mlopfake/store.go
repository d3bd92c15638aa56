package mlopfake

import (
	"encoding/binary"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Point is one stored metric row of a series: the ClickHouse columns step,
// time (epoch ms as sent) and value.
type Point struct {
	Step  uint64  `json:"step"`
	Time  uint64  `json:"time"`
	Value float64 `json:"value"`
}

// DataRow is one stored /ingest/data line (mlop_data is not deduplicated).
type DataRow struct {
	Time     uint64 `json:"time"`
	Step     uint64 `json:"step"`
	DataType string `json:"dataType"`
	LogName  string `json:"logName"`
	LogGroup string `json:"logGroup"`
	Data     string `json:"data"`
}

// LogRow is one stored /ingest/logs line (mlop_logs is not deduplicated).
type LogRow struct {
	Time       uint64 `json:"time"`
	Message    string `json:"message"`
	LineNumber uint64 `json:"lineNumber"`
	LogType    string `json:"logType"`
}

// File is one mlop_files row, written when the presigned URL is requested,
// plus what the S3 listener received for its object key.
type File struct {
	FileName     string    `json:"fileName"`
	LogName      string    `json:"logName"`
	LogGroup     string    `json:"logGroup"`
	FileType     string    `json:"fileType"`     // as the real ingest stores it: FileType::extension(), "" for custom types
	SentFileType string    `json:"sentFileType"` // the fileType the client sent
	FileSize     uint64    `json:"fileSize"`
	Step         uint64    `json:"step"`
	Time         uint64    `json:"time"`
	SampleIndex  uint32    `json:"sampleIndex"`
	Caption      *string   `json:"caption,omitempty"`
	Annotations  *string   `json:"annotations,omitempty"`
	Key          string    `json:"key"` // S3 object key {tenant}/{project}/{runId}/{logName}/{fileName}
	URL          string    `json:"url"` // the presigned PUT URL handed out
	RequestedAt  time.Time `json:"requestedAt"`
	Uploaded     bool      `json:"uploaded"`
	ContentType  string    `json:"contentType,omitempty"` // of the last PUT
	Bytes        []byte    `json:"-"`
}

// streamKey is what the ingest stores rows under: the key's tenant plus the
// X-Project-Name and X-Run-Id headers, taken on trust (the real ingest does
// not check that the run exists or belongs to that project).
type streamKey struct {
	org     string
	project string
	runID   uint64
}

// stream holds every row written under one streamKey. Its mutex guards all
// fields; streams are created once and never removed.
type stream struct {
	mu        sync.Mutex
	key       streamKey
	series    map[string]*series
	order     []*series // first-seen order of metric names
	rawPoints int
	maxStep   uint64
	maxTime   uint64 // client time (epoch ms) of the newest metric row
	hasMetric bool
	data      []DataRow
	logs      []LogRow
	files     []*File
}

// series is one metric (stream, logName). Points are kept in insertion order,
// delta-encoded into byte chunks so a 10-20 M point load stays small:
// zigzag-varint step delta, zigzag-varint time delta, 8 bytes of value, about
// 10-11 bytes a point. The deduplicated view is derived on demand.
type series struct {
	name       string
	chunks     [][]byte
	bases      []chunkBase // per chunk: where decoding it starts
	n          int
	prevStep   uint64
	prevTime   uint64
	increasing bool // steps strictly increasing so far: raw == dedup view

	// runs index the series as maximal stretches of arrival order that are
	// ordered by (step, time) — a batch, typically — so the read API can
	// merge the few that overlap a step range instead of sorting them all.
	runs []seriesRun
}

// seriesRun is one ordered stretch of a series: where it starts, the
// decoder state before its first point, and its step range.
type seriesRun struct {
	chunk, off         int
	prevStep, prevTime uint64
	minStep, maxStep   uint64
	n                  int
}

// chunkBase is the decoder state before a chunk's first point, and that
// point's step, so a range read can start at the chunk holding its first
// step instead of at the beginning.
type chunkBase struct {
	prevStep, prevTime uint64
	firstStep          uint64
}

const (
	maxPointBytes = 2*binary.MaxVarintLen64 + 8
	minChunk      = 256
	maxChunk      = 64 << 10
)

func newSeries(name string) *series {
	return &series{name: name, increasing: true}
}

func zigzag(v uint64) uint64   { return (v << 1) ^ uint64(int64(v)>>63) }
func unzigzag(v uint64) uint64 { return (v >> 1) ^ -(v & 1) }

func (s *series) add(step, t uint64, v float64) {
	if s.n > 0 && step <= s.prevStep {
		s.increasing = false
	}
	var c []byte
	if k := len(s.chunks); k > 0 {
		c = s.chunks[k-1]
	}
	if cap(c)-len(c) < maxPointBytes {
		size := minChunk
		if c != nil {
			size = min(2*cap(c), maxChunk)
		}
		c = make([]byte, 0, size)
		s.chunks = append(s.chunks, c)
		s.bases = append(s.bases, chunkBase{prevStep: s.prevStep, prevTime: s.prevTime, firstStep: step})
	}
	if s.n == 0 || step < s.prevStep || step == s.prevStep && t < s.prevTime {
		s.runs = append(s.runs, seriesRun{chunk: len(s.chunks) - 1, off: len(c), prevStep: s.prevStep, prevTime: s.prevTime, minStep: step})
	}
	r := &s.runs[len(s.runs)-1]
	r.maxStep = step
	r.n++
	c = binary.AppendUvarint(c, zigzag(step-s.prevStep))
	c = binary.AppendUvarint(c, zigzag(t-s.prevTime))
	c = binary.LittleEndian.AppendUint64(c, math.Float64bits(v))
	s.chunks[len(s.chunks)-1] = c
	s.prevStep, s.prevTime = step, t
	s.n++
}

// runCursor reads one run's points in order.
type runCursor struct {
	s          *series
	chunk, off int
	step, time uint64
	left       int
	cur        Point
	idx        int // the run's index: arrival order breaks ties
}

func (c *runCursor) next() bool {
	if c.left == 0 {
		return false
	}
	ch := c.s.chunks[c.chunk]
	if c.off >= len(ch) {
		c.chunk, c.off = c.chunk+1, 0
		ch = c.s.chunks[c.chunk]
	}
	ds, n := binary.Uvarint(ch[c.off:])
	c.off += n
	dt, n := binary.Uvarint(ch[c.off:])
	c.off += n
	bits := binary.LittleEndian.Uint64(ch[c.off:])
	c.off += 8
	c.step += unzigzag(ds)
	c.time += unzigzag(dt)
	c.left--
	c.cur = Point{Step: c.step, Time: c.time, Value: math.Float64frombits(bits)}
	return true
}

// each calls fn for every raw point in insertion order.
func (s *series) each(fn func(Point)) {
	s.eachFrom(0, func(p Point) bool { fn(p); return true })
}

// eachFrom calls fn for every raw point in insertion order from chunk k on,
// until fn returns false.
func (s *series) eachFrom(k int, fn func(Point) bool) {
	if k >= len(s.chunks) {
		return
	}
	step, t := s.bases[k].prevStep, s.bases[k].prevTime
	for _, c := range s.chunks[k:] {
		for i := 0; i < len(c); {
			ds, n := binary.Uvarint(c[i:])
			i += n
			dt, n := binary.Uvarint(c[i:])
			i += n
			bits := binary.LittleEndian.Uint64(c[i:])
			i += 8
			step += unzigzag(ds)
			t += unzigzag(dt)
			if !fn(Point{Step: step, Time: t, Value: math.Float64frombits(bits)}) {
				return
			}
		}
	}
}

// rangeRows returns the raw rows with stepMin <= step <= stepMax ordered
// by step, then time, then arrival (the read API's ORDER BY step, time),
// at most limit of them, and whether more rows matched.
func (s *series) rangeRows(stepMin, stepMax uint64, limit int) (rows []Point, more bool) {
	if stepMin > stepMax || s.n == 0 {
		return nil, false
	}
	rows = make([]Point, 0, min(limit, s.n, 1<<16))
	if s.increasing {
		// Arrival order is step order: start at the last chunk whose first
		// step is <= stepMin.
		k := sort.Search(len(s.bases), func(i int) bool { return s.bases[i].firstStep > stepMin }) - 1
		s.eachFrom(max(k, 0), func(p Point) bool {
			switch {
			case p.Step < stepMin:
				return true
			case p.Step > stepMax:
				return false
			case len(rows) == limit:
				more = true
				return false
			}
			rows = append(rows, p)
			return true
		})
		return rows, more
	}
	// Merge the ordered runs that overlap the range; ties in (step, time)
	// go to the earlier run, the earlier arrival.
	var h []*runCursor
	for i, r := range s.runs {
		if r.maxStep < stepMin || r.minStep > stepMax {
			continue
		}
		c := &runCursor{s: s, chunk: r.chunk, off: r.off, step: r.prevStep, time: r.prevTime, left: r.n, idx: i}
		for c.next() && c.cur.Step < stepMin {
		}
		// Either at the first point >= stepMin, or past the run's end with
		// the last point below it.
		if c.cur.Step >= stepMin && c.cur.Step <= stepMax {
			h = append(h, c)
		}
	}
	less := func(a, b *runCursor) bool {
		if a.cur.Step != b.cur.Step {
			return a.cur.Step < b.cur.Step
		}
		if a.cur.Time != b.cur.Time {
			return a.cur.Time < b.cur.Time
		}
		return a.idx < b.idx
	}
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			if r := l + 1; r < len(h) && less(h[r], h[l]) {
				l = r
			}
			if !less(h[l], h[i]) {
				return
			}
			h[i], h[l] = h[l], h[i]
			i = l
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	for len(h) > 0 {
		if len(rows) == limit {
			return rows, true
		}
		c := h[0]
		rows = append(rows, c.cur)
		if c.next() && c.cur.Step <= stepMax {
			down(0)
			continue
		}
		h[0] = h[len(h)-1]
		h = h[:len(h)-1]
		if len(h) > 0 {
			down(0)
		}
	}
	return rows, false
}

// replace rebuilds the series from points in arrival order (test-only
// alterations).
func (s *series) replace(points []Point) {
	*s = *newSeries(s.name)
	for _, p := range points {
		s.add(p.Step, p.Time, p.Value)
	}
}

func (s *series) raw() []Point {
	out := make([]Point, 0, s.n)
	s.each(func(p Point) { out = append(out, p) })
	return out
}

// dedup applies ReplacingMergeTree(time) semantics to raw points in insertion
// order: one row per step, the one with the largest time; among equal times
// the last inserted wins. The result is sorted by step.
func dedup(raw []Point, increasing bool) []Point {
	if increasing {
		return raw
	}
	type rec struct {
		Point
		seq int
	}
	recs := make([]rec, len(raw))
	for i, p := range raw {
		recs[i] = rec{p, i}
	}
	slices.SortFunc(recs, func(a, b rec) int {
		switch {
		case a.Step != b.Step:
			return cmpU64(a.Step, b.Step)
		case a.Time != b.Time:
			return cmpU64(a.Time, b.Time)
		}
		return a.seq - b.seq
	})
	out := raw[:0]
	for i, r := range recs {
		if i+1 < len(recs) && recs[i+1].Step == r.Step {
			continue
		}
		out = append(out, r.Point)
	}
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// dedupCount is len(dedup(raw)) without keeping the points.
func (s *series) dedupCount() int {
	if s.increasing {
		return s.n
	}
	steps := make([]uint64, 0, s.n)
	s.each(func(p Point) { steps = append(steps, p.Step) })
	slices.Sort(steps)
	return len(slices.Compact(steps))
}

// addMetricLine stores the points of one parsed line. The caller holds st.mu.
func (st *stream) addMetricLine(p *metricParser) {
	for _, pt := range p.pts {
		name := p.name(pt)
		ser := st.series[string(name)]
		if ser == nil {
			ser = newSeries(string(name))
			if st.series == nil {
				st.series = make(map[string]*series)
			}
			st.series[ser.name] = ser
			st.order = append(st.order, ser)
		}
		ser.add(p.step, p.time, pt.value)
	}
	st.rawPoints += len(p.pts)
	if !st.hasMetric || p.step > st.maxStep {
		st.maxStep = p.step
	}
	st.maxTime = max(st.maxTime, p.time)
	st.hasMetric = true
}

// streams is the ingest-side storage: every row keyed by streamKey.
type streams struct {
	mu sync.RWMutex
	m  map[streamKey]*stream
}

func (ss *streams) get(k streamKey) *stream {
	ss.mu.RLock()
	st := ss.m[k]
	ss.mu.RUnlock()
	if st != nil {
		return st
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if st = ss.m[k]; st == nil {
		if ss.m == nil {
			ss.m = make(map[streamKey]*stream)
		}
		st = &stream{key: k}
		ss.m[k] = st
	}
	return st
}

func (ss *streams) lookup(k streamKey) *stream {
	ss.mu.RLock()
	defer ss.mu.RUnlock()
	return ss.m[k]
}

func (ss *streams) all() []*stream {
	ss.mu.RLock()
	defer ss.mu.RUnlock()
	out := make([]*stream, 0, len(ss.m))
	for _, st := range ss.m {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *stream) int {
		switch {
		case a.key.org != b.key.org:
			return compareStrings(a.key.org, b.key.org)
		case a.key.project != b.key.project:
			return compareStrings(a.key.project, b.key.project)
		}
		return cmpU64(a.key.runID, b.key.runID)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// logGroupOf is log_group_from_log_name: everything before the last '/'.
func logGroupOf(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[:i]
		}
	}
	return ""
}
