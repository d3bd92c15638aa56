package mlopfake

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestDedupSemantics(t *testing.T) {
	tests := []struct {
		name string
		raw  []Point
		want []Point
	}{
		{
			name: "increasing steps untouched",
			raw:  []Point{{1, 10, 1}, {2, 11, 2}, {3, 12, 3}},
			want: []Point{{1, 10, 1}, {2, 11, 2}, {3, 12, 3}},
		},
		{
			name: "largest time wins even if sent first",
			raw:  []Point{{1, 20, 1}, {1, 10, 2}},
			want: []Point{{1, 20, 1}},
		},
		{
			name: "later larger time replaces",
			raw:  []Point{{1, 10, 1}, {2, 10, 5}, {1, 30, 9}},
			want: []Point{{1, 30, 9}, {2, 10, 5}},
		},
		{
			name: "equal time: last inserted wins",
			raw:  []Point{{4, 10, 1}, {4, 10, 2}, {4, 10, 3}},
			want: []Point{{4, 10, 3}},
		},
		{
			name: "out of order steps come back sorted",
			raw:  []Point{{5, 1, 5}, {3, 1, 3}, {4, 1, 4}},
			want: []Point{{3, 1, 3}, {4, 1, 4}, {5, 1, 5}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ser := newSeries("m")
			for _, p := range tc.raw {
				ser.add(p.Step, p.Time, p.Value)
			}
			if got := ser.raw(); !slices.Equal(got, tc.raw) {
				t.Fatalf("raw = %v, want %v (duplicates kept, arrival order)", got, tc.raw)
			}
			got := dedup(ser.raw(), ser.increasing)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("dedup = %v, want %v", got, tc.want)
			}
			if n := ser.dedupCount(); n != len(tc.want) {
				t.Fatalf("dedupCount = %d, want %d", n, len(tc.want))
			}
		})
	}
}

func TestDedupOverHTTP(t *testing.T) {
	s := startServer(t, Options{})
	id := runIDOf(t, createRun(t, s, map[string]any{"runName": "r", "projectName": "p"}))
	rid := fmt.Sprint(id)
	body := `{"time":100,"step":1,"data":{"loss":1.0}}
{"time":100,"step":2,"data":{"loss":2.0}}
`
	for range 2 { // an at-least-once resend
		if r := postIngest(t, s, "/ingest/metrics", rid, "p", body); r.status != http.StatusOK {
			t.Fatalf("ingest: %d %s", r.status, r.body)
		}
	}
	// A later correction of step 1 with a larger time wins; an older one loses.
	postIngest(t, s, "/ingest/metrics", rid, "p", `{"time":200,"step":1,"data":{"loss":9.0}}`+"\n"+`{"time":50,"step":2,"data":{"loss":7.0}}`)

	if got, want := s.RawMetricCount(id), 6; got != want {
		t.Fatalf("RawMetricCount = %d, want %d", got, want)
	}
	want := []Point{{1, 200, 9}, {2, 100, 2}}
	if got := s.Metrics(id)["loss"]; !slices.Equal(got, want) {
		t.Fatalf("Metrics = %v, want %v", got, want)
	}
	if got := len(s.RawMetrics(id)["loss"]); got != 6 {
		t.Fatalf("raw rows = %d, want 6", got)
	}
	sum := s.Summary()
	if mc := sum.Runs[0].Metrics["loss"]; mc.Raw != 6 || mc.Dedup != 2 {
		t.Fatalf("summary counts = %+v, want raw 6 dedup 2", mc)
	}
}

func TestSeriesEncodingRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ser := newSeries("x")
	var want []Point
	for i := range 20000 {
		p := Point{Step: uint64(i), Time: 1_700_000_000_000 + uint64(i)*7, Value: rng.NormFloat64()}
		switch i % 97 {
		case 3:
			p.Step = math.MaxUint64 // huge jumps both ways
		case 4:
			p.Step = 0
			p.Time = 0
		case 5:
			p.Value = math.NaN()
		case 6:
			p.Value = math.Inf(-1)
		}
		want = append(want, p)
		ser.add(p.Step, p.Time, p.Value)
	}
	got := ser.raw()
	if len(got) != len(want) {
		t.Fatalf("decoded %d points, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Step != want[i].Step || got[i].Time != want[i].Time || math.Float64bits(got[i].Value) != math.Float64bits(want[i].Value) {
			t.Fatalf("point %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if ser.increasing {
		t.Fatal("series with decreasing steps marked increasing")
	}
}

// TestStoreMemoryPerPoint keeps a 10-20 M point load within a few hundred MB:
// typical points (step +1, time +~100 ms, random value) must cost < 16 bytes.
func TestStoreMemoryPerPoint(t *testing.T) {
	const points = 1_000_000
	const names = 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	st := &stream{}
	p := &metricParser{}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range points / names {
		p.pts, p.names = p.pts[:0], p.names[:0]
		p.step, p.time = uint64(i), 1_795_637_520_632+uint64(i)*97
		for n := range names {
			off := len(p.names)
			p.names = fmt.Appendf(p.names, "train/metric_%d", n)
			p.pts = append(p.pts, metricPoint{off: off, n: len(p.names) - off, value: rng.Float64()})
		}
		st.addMetricLine(p)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perPoint := float64(after.HeapAlloc-before.HeapAlloc) / points
	t.Logf("%.1f heap bytes per stored point", perPoint)
	if perPoint > 16 {
		t.Fatalf("%.1f bytes per point, want <= 16", perPoint)
	}
	if st.rawPoints != points || len(st.series) != names {
		t.Fatalf("stored %d points in %d series", st.rawPoints, len(st.series))
	}
	runtime.KeepAlive(st)
}

func TestLogGroupOf(t *testing.T) {
	tests := map[string]string{"a/b/c": "a/b", "loss": "", "": "", "sys/cpu.percentage.0": "sys"}
	for in, want := range tests {
		if got := logGroupOf(in); got != want {
			t.Errorf("logGroupOf(%q) = %q, want %q", in, got, want)
		}
	}
	if !strings.HasPrefix(standinNote, "mlopfake") {
		t.Fatal("inspection note must name the test double")
	}
}

// TestRangeRowsMatchesSort: the merge of ordered runs gives what sorting
// the raw rows by (step, time, arrival) gives, for any range and limit.
func TestRangeRowsMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 50 {
		ser := newSeries("m")
		var raw []Point
		// Batches in step order arriving shuffled, re-sends, stray points.
		nb := 1 + r.IntN(12)
		for _, b := range r.Perm(nb) {
			for s := b * 20; s < b*20+1+r.IntN(25); s++ {
				p := Point{Step: uint64(s), Time: uint64(s / 3), Value: float64(len(raw))}
				if r.IntN(15) == 0 {
					p.Step = uint64(r.IntN(nb * 20))
				}
				raw = append(raw, p)
				ser.add(p.Step, p.Time, p.Value)
				if r.IntN(10) == 0 {
					raw = append(raw, p)
					ser.add(p.Step, p.Time, p.Value+0.5)
					raw[len(raw)-1].Value += 0.5
				}
			}
		}
		want := slices.Clone(raw)
		slices.SortStableFunc(want, func(a, b Point) int {
			if a.Step != b.Step {
				return cmpU64(a.Step, b.Step)
			}
			return cmpU64(a.Time, b.Time)
		})
		for range 20 {
			lo, hi := uint64(r.IntN(nb*20+5)), uint64(r.IntN(nb*20+5))
			limit := 1 + r.IntN(len(raw)+3)
			var exp []Point
			for _, p := range want {
				if p.Step >= lo && p.Step <= hi {
					exp = append(exp, p)
				}
			}
			more := len(exp) > limit
			if more {
				exp = exp[:limit]
			}
			got, gotMore := ser.rangeRows(lo, hi, limit)
			if !slices.Equal(got, exp) || gotMore != more {
				t.Fatalf("trial %d, steps %d..%d limit %d:\ngot  %v %v\nwant %v %v", trial, lo, hi, limit, got, gotMore, exp, more)
			}
		}
	}
}
