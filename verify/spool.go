package verify

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// Points of a run live on disk, not in memory: the recorder appends them to
// the run's spool file in arrival order, and the comparison reads them back
// sorted by (metric, step, time, arrival) — in memory when a run is small,
// by an external merge sort of bounded chunks when it is large. Memory is
// flat in the number of points either way.

// point is one metric row as the server would store it. metric is the
// run-local id of its name; seq breaks ties in arrival order within a
// chunk (the server keeps the last row inserted among equal times).
type point struct {
	metric uint32
	seq    uint32
	step   uint64
	time   uint64
	bits   uint64
}

func cmpPoint(a, b point) int {
	switch {
	case a.metric != b.metric:
		return cmpU(uint64(a.metric), uint64(b.metric))
	case a.step != b.step:
		return cmpU(a.step, b.step)
	case a.time != b.time:
		return cmpU(a.time, b.time)
	}
	return cmpU(uint64(a.seq), uint64(b.seq))
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pointEncoder appends points to a byte stream: uvarint metric id, then
// the step and time as zigzag varint deltas from the previous point of the
// same metric, then the value's 8 bytes. About 12 bytes a point for
// ordinary series. Only its owner touches it.
type pointEncoder struct {
	prev []deltaState // by metric id
}

type deltaState struct{ step, time uint64 }

func zz(d uint64) uint64   { return (d << 1) ^ uint64(int64(d)>>63) }
func unzz(v uint64) uint64 { return (v >> 1) ^ -(v & 1) }

func (e *pointEncoder) append(dst []byte, p point) []byte {
	for int(p.metric) >= len(e.prev) {
		e.prev = append(e.prev, deltaState{})
	}
	st := &e.prev[p.metric]
	dst = binary.AppendUvarint(dst, uint64(p.metric))
	dst = binary.AppendUvarint(dst, zz(p.step-st.step))
	dst = binary.AppendUvarint(dst, zz(p.time-st.time))
	dst = binary.LittleEndian.AppendUint64(dst, p.bits)
	st.step, st.time = p.step, p.time
	return dst
}

// pointDecoder reads what a pointEncoder wrote.
type pointDecoder struct {
	r    *bufio.Reader
	prev []deltaState
}

func newPointDecoder(r io.Reader) *pointDecoder { return newPointDecoderSize(r, 64<<10) }

func newPointDecoderSize(r io.Reader, size int) *pointDecoder {
	return &pointDecoder{r: bufio.NewReaderSize(r, size)}
}

// next returns the next point, or io.EOF at a clean end.
func (d *pointDecoder) next() (point, error) {
	m, err := binary.ReadUvarint(d.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return point{}, io.EOF
		}
		return point{}, fmt.Errorf("spool: %w", err)
	}
	if m > math.MaxUint32 {
		return point{}, errors.New("spool: corrupt metric id")
	}
	ds, err1 := binary.ReadUvarint(d.r)
	dt, err2 := binary.ReadUvarint(d.r)
	var b [8]byte
	_, err3 := io.ReadFull(d.r, b[:])
	if err := errors.Join(err1, err2, err3); err != nil {
		return point{}, fmt.Errorf("spool: truncated point: %w", err)
	}
	for int(m) >= len(d.prev) {
		d.prev = append(d.prev, deltaState{})
	}
	st := &d.prev[m]
	st.step += unzz(ds)
	st.time += unzz(dt)
	return point{metric: uint32(m), step: st.step, time: st.time, bits: binary.LittleEndian.Uint64(b[:])}, nil
}

// sortedPoints yields points ordered by cmpPoint.
type sortedPoints interface {
	next() (point, error) // io.EOF at the end
	close() error
}

// memSorted is a sorted slice of points.
type memSorted struct {
	pts []point
	i   int
}

func (m *memSorted) next() (point, error) {
	if m.i >= len(m.pts) {
		return point{}, io.EOF
	}
	m.i++
	return m.pts[m.i-1], nil
}

func (m *memSorted) close() error { m.pts = nil; return nil }

// sortedSpool is a run's spool sorted, readable one metric at a time and
// from several goroutines at once: in memory when it fit in one chunk,
// else as sorted run files with the byte range of each metric recorded.
type sortedSpool struct {
	metrics []uint32          // metric ids that have points, ascending
	mem     []point           // sorted, when in memory
	ranges  map[uint32][2]int // metric -> mem[from:to]
	files   []runFile         // sorted runs, when on disk
}

// runFile is one sorted run on disk: a pointEncoder stream whose metrics
// come one after the other, each starting from a fresh delta state, so a
// metric's byte range decodes on its own.
type runFile struct {
	name     string
	sections map[uint32][2]int64 // metric -> [offset, end)
}

// points returns the sorted points of one metric.
func (s *sortedSpool) points(metric uint32) (sortedPoints, error) {
	if s.files == nil {
		r := s.ranges[metric]
		return &memSorted{pts: s.mem[r[0]:r[1]]}, nil
	}
	m := &mergeRuns{}
	// 256 KiB of read buffers per metric being read, however many sorted
	// runs the spool was cut into.
	bufSize := max(4<<10, (256<<10)/len(s.files))
	for i, rf := range s.files {
		sec, ok := rf.sections[metric]
		if !ok {
			continue
		}
		f, err := os.Open(rf.name)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("open sort run: %w", err)
		}
		m.files = append(m.files, f)
		dec := newPointDecoderSize(io.NewSectionReader(f, sec[0], sec[1]-sec[0]), bufSize)
		p, err := dec.next()
		if errors.Is(err, io.EOF) {
			continue
		}
		if err != nil {
			m.close()
			return nil, err
		}
		p.metric = metric
		m.h = append(m.h, mergeItem{p: p, run: i, dec: dec})
	}
	heap.Init(&m.h)
	return m, nil
}

// close removes the run files.
func (s *sortedSpool) close() error {
	var errs []error
	for _, rf := range s.files {
		if err := os.Remove(rf.name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	s.files, s.mem = nil, nil
	return errors.Join(errs...)
}

// sortSpool sorts the spool at path (of about n points). Up to chunk
// points are held in memory at once; a larger spool is cut into sorted
// runs written to tmpDir.
func sortSpool(path, tmpDir string, chunk int, n int64) (*sortedSpool, error) {
	out := &sortedSpool{ranges: map[uint32][2]int{}}
	f, err := os.Open(path)
	if path == "" || errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	dec := newPointDecoder(f)
	buf := make([]point, 0, min(int64(chunk), max(n, 1)))
	var scratch []point
	seen := map[uint32]bool{}
	fail := func(err error) (*sortedSpool, error) {
		out.close()
		return nil, err
	}
	for {
		p, err := dec.next()
		if err != nil && !errors.Is(err, io.EOF) {
			return fail(err)
		}
		end := errors.Is(err, io.EOF)
		if !end {
			p.seq = uint32(len(buf))
			buf = append(buf, p)
			if !seen[p.metric] {
				seen[p.metric] = true
				out.metrics = append(out.metrics, p.metric)
			}
		}
		if len(buf) == chunk || (end && len(out.files) > 0 && len(buf) > 0) {
			buf, scratch = sortChunk(buf, scratch)
			rf, err := writeRun(tmpDir, buf)
			if err != nil {
				return fail(err)
			}
			out.files = append(out.files, rf)
			buf = buf[:0]
		}
		if end {
			break
		}
	}
	slices.Sort(out.metrics)
	if out.files == nil {
		out.mem, _ = sortChunk(buf, scratch)
		for i := 0; i < len(out.mem); {
			j := i
			for j < len(out.mem) && out.mem[j].metric == out.mem[i].metric {
				j++
			}
			out.ranges[out.mem[i].metric] = [2]int{i, j}
			i = j
		}
	}
	return out, nil
}

// sortChunk sorts pts by cmpPoint using scratch (grown to len(pts)) and
// returns the sorted slice (which may be either buffer's memory) and the
// other buffer. Points arrive grouped in batches, each in step order, so
// after a stable counting sort by metric each metric is a few ascending
// runs: those are merged, which costs a fraction of a comparison sort.
func sortChunk(pts, scratch []point) (sorted, spare []point) {
	if cap(scratch) < len(pts) {
		scratch = make([]point, len(pts))
	}
	scratch = scratch[:len(pts)]
	var counts []int
	for _, p := range pts {
		for int(p.metric) >= len(counts) {
			counts = append(counts, 0)
		}
		counts[p.metric]++
	}
	starts := make([]int, len(counts)+1)
	for m, c := range counts {
		starts[m+1] = starts[m] + c
	}
	next := slices.Clone(starts[:len(counts)])
	for _, p := range pts {
		scratch[next[p.metric]] = p
		next[p.metric]++
	}
	// scratch: grouped by metric, arrival order within. Each metric's
	// segment goes back to pts sorted.
	for m := range counts {
		sortSegment(scratch[starts[m]:starts[m+1]], pts[starts[m]:starts[m+1]])
	}
	return pts, scratch
}

// lessST orders points of one metric by (step, time); arrival breaks ties.
func lessST(a, b point) bool {
	if a.step != b.step {
		return a.step < b.step
	}
	return a.time < b.time
}

// sortSegment writes the points of one metric, src in arrival order, to
// dst sorted by (step, time, arrival).
func sortSegment(src, dst []point) {
	// Ascending runs; a new run starts where the order goes back.
	var bounds []int
	for i := 1; i < len(src); i++ {
		if lessST(src[i], src[i-1]) {
			bounds = append(bounds, i)
			if len(bounds) > 64 {
				break
			}
		}
	}
	switch {
	case len(bounds) == 0:
		copy(dst, src)
		return
	case len(bounds) > 64:
		// Not batches but noise: a comparison sort.
		copy(dst, src)
		slices.SortFunc(dst, cmpPoint)
		return
	}
	// k-way merge of the runs; ties go to the earlier run (the earlier
	// arrival).
	type cursor struct{ i, end int }
	var h []cursor
	start := 0
	for _, b := range append(bounds, len(src)) {
		h = append(h, cursor{start, b})
		start = b
	}
	less := func(a, b cursor) bool {
		pa, pb := src[a.i], src[b.i]
		if pa.step != pb.step || pa.time != pb.time {
			return lessST(pa, pb)
		}
		return a.i < b.i
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
	for o := range dst {
		dst[o] = src[h[0].i]
		h[0].i++
		if h[0].i == h[0].end {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		if len(h) > 0 {
			down(0)
		}
	}
}

// writeRun writes sorted points to a new temporary file, recording where
// each metric's points are.
func writeRun(dir string, pts []point) (runFile, error) {
	f, err := os.CreateTemp(dir, "sorted-*.run")
	if err != nil {
		return runFile{}, fmt.Errorf("create sort run: %w", err)
	}
	rf := runFile{name: f.Name(), sections: map[uint32][2]int64{}}
	w := bufio.NewWriterSize(f, 256<<10)
	var enc pointEncoder
	var b []byte
	var off int64
	for i, p := range pts {
		if i == 0 || p.metric != pts[i-1].metric {
			if i > 0 {
				m := pts[i-1].metric
				rf.sections[m] = [2]int64{rf.sections[m][0], off}
			}
			rf.sections[p.metric] = [2]int64{off, off}
			enc = pointEncoder{} // each metric decodes from a fresh state
		}
		b = enc.append(b[:0], point{step: p.step, time: p.time, bits: p.bits})
		if _, err := w.Write(b); err != nil {
			f.Close()
			os.Remove(f.Name())
			return runFile{}, fmt.Errorf("write sort run: %w", err)
		}
		off += int64(len(b))
	}
	if len(pts) > 0 {
		m := pts[len(pts)-1].metric
		rf.sections[m] = [2]int64{rf.sections[m][0], off}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		os.Remove(f.Name())
		return runFile{}, fmt.Errorf("write sort run: %w", err)
	}
	return rf, nil
}

// mergeRuns merges the sections of one metric in several run files; ties
// go to the earlier run (it holds the earlier arrivals).
type mergeRuns struct {
	files []*os.File
	h     mergeHeap
}

type mergeItem struct {
	p   point
	run int
	dec *pointDecoder
}

type mergeHeap []mergeItem

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	a, b := h[i].p, h[j].p
	if a.step != b.step || a.time != b.time {
		return lessST(a, b)
	}
	return h[i].run < h[j].run
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeItem)) }
func (h *mergeHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (m *mergeRuns) next() (point, error) {
	if len(m.h) == 0 {
		return point{}, io.EOF
	}
	top := &m.h[0]
	out := top.p
	p, err := top.dec.next()
	switch {
	case errors.Is(err, io.EOF):
		heap.Pop(&m.h)
	case err != nil:
		return point{}, err
	default:
		p.metric = out.metric
		top.p = p
		heap.Fix(&m.h, 0)
	}
	return out, nil
}

func (m *mergeRuns) close() error {
	var errs []error
	for _, f := range m.files {
		errs = append(errs, f.Close())
	}
	m.files, m.h = nil, nil
	return errors.Join(errs...)
}

// stepGroup is the source's view of one (metric, step): the value of the
// row with the largest time — the one the server's deduplicated view keeps
// — and, when several rows share that time with different values (the
// server keeps whichever it inserted last, which concurrent batches make
// unpredictable), the other candidates.
type stepGroup struct {
	metric uint32
	step   uint64
	time   uint64
	bits   uint64
	alts   []uint64 // other values at the same largest time; usually nil
	rows   int      // source rows at this step (re-sends, repeated lines)
}

// groupReader turns sorted points into step groups.
type groupReader struct {
	src     sortedPoints
	pending point
	has     bool
	err     error
}

func newGroupReader(src sortedPoints) *groupReader {
	g := &groupReader{src: src}
	g.advance()
	return g
}

func (g *groupReader) advance() {
	p, err := g.src.next()
	switch {
	case errors.Is(err, io.EOF):
		g.has = false
	case err != nil:
		g.has, g.err = false, err
	default:
		g.pending, g.has = p, true
	}
}

// next returns the next group; ok is false at the end (check g.err).
func (g *groupReader) next() (stepGroup, bool) {
	if !g.has {
		return stepGroup{}, false
	}
	first := g.pending
	sg := stepGroup{metric: first.metric, step: first.step, time: first.time, bits: first.bits, rows: 1}
	g.advance()
	for g.has && g.pending.metric == first.metric && g.pending.step == first.step {
		p := g.pending
		sg.rows++
		if p.time > sg.time {
			sg.time, sg.bits, sg.alts = p.time, p.bits, nil
		} else if p.bits != sg.bits && !slices.Contains(sg.alts, sg.bits) {
			// Same time (sorted by time, so not smaller): the later
			// arrival is the likely winner, the other stays a candidate.
			sg.alts = append(sg.alts, sg.bits)
			sg.bits = p.bits
		}
		g.advance()
	}
	return sg, true
}

// spoolPath is the spool file of a capture run.
func spoolPath(dir string, captureID int64) string {
	return filepath.Join(dir, fmt.Sprintf("run-%d.spool", captureID))
}
