package verify

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func writeSpool(t *testing.T, path string, pts []point) {
	t.Helper()
	var enc pointEncoder
	var b []byte
	for _, p := range pts {
		b = enc.append(b, p)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, sp *sortedSpool) []point {
	t.Helper()
	var out []point
	for _, m := range sp.metrics {
		src, err := sp.points(m)
		if err != nil {
			t.Fatal(err)
		}
		for {
			p, err := src.next()
			if err != nil {
				break
			}
			p.seq = 0
			out = append(out, p)
		}
		src.close()
	}
	return out
}

// TestSortSpool: the external merge (tiny chunks, many runs on disk) and
// the in-memory sort give the same order, ties kept in arrival order.
func TestSortSpool(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var noise []point
	for i := range 5000 {
		p := point{metric: uint32(r.IntN(5)), step: uint64(r.IntN(300)), time: uint64(r.IntN(3)), bits: uint64(i)}
		if r.IntN(10) == 0 {
			p.step = math.MaxUint64 - uint64(r.IntN(3)) // large steps, negative deltas
		}
		noise = append(noise, p)
	}
	// What the agent sends: batches of lines in step order that arrive out
	// of order, some re-sent (ties), several metrics per line.
	var batches []point
	order := r.Perm(40)
	for _, bi := range order {
		for s := bi * 50; s < bi*50+50; s++ {
			for m := range 3 {
				batches = append(batches, point{metric: uint32(m), step: uint64(s), time: uint64(s / 7), bits: uint64(len(batches))})
			}
		}
		if bi%5 == 0 { // a re-send of the same batch
			for s := bi * 50; s < bi*50+50; s++ {
				batches = append(batches, point{metric: 1, step: uint64(s), time: uint64(s / 7), bits: uint64(len(batches))})
			}
		}
	}
	for name, pts := range map[string][]point{"noise": noise, "batches": batches} {
		t.Run(name, func(t *testing.T) { testSortSpool(t, pts) })
	}
}

func testSortSpool(t *testing.T, pts []point) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.spool")
	writeSpool(t, path, pts)

	want := slices.Clone(pts)
	for i := range want {
		want[i].seq = uint32(i)
	}
	slices.SortStableFunc(want, func(a, b point) int {
		// Ties in (metric, step, time) stay in arrival order.
		c := cmpPoint(point{metric: a.metric, step: a.step, time: a.time}, point{metric: b.metric, step: b.step, time: b.time})
		return c
	})
	for i := range want {
		want[i].seq = 0
	}
	for _, chunk := range []int{7, 100, len(pts) - 1, len(pts), 1 << 20} {
		sp, err := sortSpool(path, dir, chunk, int64(len(pts)))
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, sp)
		if err := sp.close(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("chunk %d: order differs (%d points vs %d)", chunk, len(got), len(want))
		}
	}
	// Every sort run was removed.
	left, _ := filepath.Glob(filepath.Join(dir, "sorted-*"))
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	// No spool: no points.
	sp, err := sortSpool(filepath.Join(dir, "none"), dir, 10, 0)
	if err != nil || len(readAll(t, sp)) != 0 {
		t.Fatalf("missing spool: %v", err)
	}
	// A truncated spool is an error, not a short read.
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-3], 0o600)
	sp, err = sortSpool(path, dir, 1<<20, 0)
	if err == nil {
		t.Fatal("truncated spool: no error")
	}
}

func TestGroupReader(t *testing.T) {
	bits := func(f float64) uint64 { return math.Float64bits(f) }
	pts := []point{
		{metric: 0, step: 1, time: 5, bits: bits(1)},
		{metric: 0, step: 1, time: 9, bits: bits(2)}, // later time wins
		{metric: 0, step: 1, time: 7, bits: bits(3)},
		{metric: 0, step: 2, time: 5, bits: bits(4)},
		{metric: 0, step: 2, time: 5, bits: bits(5)}, // same time: both candidates, the later arrival first
		{metric: 0, step: 2, time: 5, bits: bits(4)},
		{metric: 1, step: 2, time: 1, bits: bits(6)},
	}
	for i := range pts {
		pts[i].seq = uint32(i)
	}
	slices.SortFunc(pts, cmpPoint)
	g := newGroupReader(&memSorted{pts: pts})
	var got []stepGroup
	for {
		sg, ok := g.next()
		if !ok {
			break
		}
		got = append(got, sg)
	}
	if len(got) != 3 {
		t.Fatalf("groups %+v", got)
	}
	if got[0].bits != bits(2) || got[0].rows != 3 || got[0].alts != nil {
		t.Errorf("step 1: %+v", got[0])
	}
	if !matches(got[1], 4) || !matches(got[1], 5) || matches(got[1], 6) || got[1].rows != 3 {
		t.Errorf("step 2: %+v", got[1])
	}
	if got[2].metric != 1 || got[2].bits != bits(6) {
		t.Errorf("metric 1: %+v", got[2])
	}
}

func TestSamePoint(t *testing.T) {
	nan2 := math.Float64frombits(0x7ff8000000000001)
	for _, tc := range []struct {
		a, b float64
		want bool
	}{
		{1, 1, true}, {1, math.Nextafter(1, 2), false}, {math.NaN(), nan2, true}, {math.NaN(), 0, false},
		{0, math.NaN(), false}, {math.Copysign(0, -1), 0, true}, {math.Inf(1), math.Inf(1), true},
		{math.Inf(1), math.Inf(-1), false}, {math.Inf(1), math.MaxFloat64, false},
	} {
		if got := samePoint(tc.a, tc.b); got != tc.want {
			t.Errorf("samePoint(%v, %v) = %v", tc.a, tc.b, got)
		}
	}
}
