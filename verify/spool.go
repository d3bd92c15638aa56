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

func newPointDecoder(r io.Reader) *pointDecoder {
	return &pointDecoder{r: bufio.NewReaderSize(r, 64<<10)}
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

// sortedPoints yields the points of one spool file ordered by cmpPoint.
type sortedPoints interface {
	next() (point, error) // io.EOF at the end
	close() error
}

// memSorted is a spool that fit in one chunk.
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

// sortSpool opens the spool at path, sorted. Up to chunk points are held
// in memory at once; a larger spool is cut into sorted runs written to
// tmpDir and merged.
func sortSpool(path, tmpDir string, chunk int) (sortedPoints, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &memSorted{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	dec := newPointDecoder(f)
	buf := make([]point, 0, min(chunk, 1<<16))
	var runs []string
	cleanup := func() {
		for _, r := range runs {
			os.Remove(r)
		}
	}
	for {
		p, err := dec.next()
		if err != nil && !errors.Is(err, io.EOF) {
			cleanup()
			return nil, err
		}
		end := errors.Is(err, io.EOF)
		if !end {
			p.seq = uint32(len(buf))
			buf = append(buf, p)
		}
		if len(buf) == chunk || (end && len(runs) > 0 && len(buf) > 0) {
			slices.SortFunc(buf, cmpPoint)
			name, err := writeRun(tmpDir, buf)
			if err != nil {
				cleanup()
				return nil, err
			}
			runs = append(runs, name)
			buf = buf[:0]
		}
		if end {
			break
		}
	}
	if len(runs) == 0 {
		slices.SortFunc(buf, cmpPoint)
		return &memSorted{pts: buf}, nil
	}
	return openMerge(runs)
}

// writeRun writes sorted points to a new temporary file.
func writeRun(dir string, pts []point) (string, error) {
	f, err := os.CreateTemp(dir, "sorted-*.run")
	if err != nil {
		return "", fmt.Errorf("create sort run: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	var enc pointEncoder
	var b []byte
	for _, p := range pts {
		b = enc.append(b[:0], p)
		if _, err := w.Write(b); err != nil {
			f.Close()
			os.Remove(f.Name())
			return "", fmt.Errorf("write sort run: %w", err)
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write sort run: %w", err)
	}
	return f.Name(), nil
}

// mergeRuns merges sorted run files; ties between runs go to the earlier
// run (it holds the earlier arrivals).
type mergeRuns struct {
	files []*os.File
	names []string
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
	if a.metric != b.metric || a.step != b.step || a.time != b.time {
		return cmpPoint(a, b) < 0
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

func openMerge(names []string) (*mergeRuns, error) {
	m := &mergeRuns{names: names}
	for i, n := range names {
		f, err := os.Open(n)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("open sort run: %w", err)
		}
		m.files = append(m.files, f)
		dec := newPointDecoder(f)
		p, err := dec.next()
		if errors.Is(err, io.EOF) {
			continue
		}
		if err != nil {
			m.close()
			return nil, err
		}
		m.h = append(m.h, mergeItem{p: p, run: i, dec: dec})
	}
	heap.Init(&m.h)
	return m, nil
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
	for _, n := range m.names {
		if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	m.files, m.names, m.h = nil, nil, nil
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

// peekMetric reports the metric of the next group.
func (g *groupReader) peekMetric() (uint32, bool) { return g.pending.metric, g.has }

// spoolPath is the spool file of a capture run.
func spoolPath(dir string, captureID int64) string {
	return filepath.Join(dir, fmt.Sprintf("run-%d.spool", captureID))
}
