package tensorboard

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers/tensorboard/tbtest"
)

// benchRecords are what a training loop logging ten scalars per step with
// add_scalar writes: one event per tag, the tags of a step in the same
// millisecond.
func benchRecords(steps int) [][]byte {
	tags := make([]string, 10)
	for i := range tags {
		tags[i] = fmt.Sprintf("train/metric_%d", i)
	}
	recs := [][]byte{tbtest.FileVersion(1.7e9)}
	for s := 0; s < steps; s++ {
		for i, tag := range tags {
			recs = append(recs, tbtest.Scalar(1.7e9+float64(s)*0.01, int64(s), tag, float32(s*10+i)))
		}
	}
	return recs
}

// BenchmarkDecodeRecord maps one scalar record (the decoder alone).
func BenchmarkDecodeRecord(b *testing.B) {
	recs := benchRecords(100)[1:]
	st := &laneState{V: stateVersion, Meta: map[string]string{}}
	m := newMapper(st, &laneInfo{key: "k"}, &spooler{}, func() int64 { return 0 }, &warnBuf{max: 10})
	b.ReportAllocs()
	b.SetBytes(int64(len(recs[0])))
	pos := event.Position{Seq: 1}
	for i := 0; i < b.N; i++ {
		if i%4096 == 0 {
			m.reset(m.evs)
		}
		m.record(recs[i%len(recs)], pos, 0)
	}
}

// BenchmarkDecodeTensorRecord maps one TF2-style scalar: a rank-0 float
// tensor with the scalars plugin.
func BenchmarkDecodeTensorRecord(b *testing.B) {
	meta := tbtest.Meta("scalars", nil)
	var recs [][]byte
	for i := 0; i < 100; i++ {
		recs = append(recs, tbtest.Summary(1.7e9, int64(i), tbtest.Value(fmt.Sprintf("epoch_%d", i%10), meta,
			tbtest.Tensor{DType: tbtest.DTFloat, Float: []float32{float32(i)}}.Marshal())))
	}
	st := &laneState{V: stateVersion, Meta: map[string]string{}}
	m := newMapper(st, &laneInfo{key: "k"}, &spooler{}, func() int64 { return 0 }, &warnBuf{max: 10})
	b.ReportAllocs()
	b.SetBytes(int64(len(recs[0])))
	pos := event.Position{Seq: 1}
	for i := 0; i < b.N; i++ {
		if i%4096 == 0 {
			m.reset(m.evs)
		}
		m.record(recs[i%len(recs)], pos, 0)
	}
}

// BenchmarkStream reads a whole events file through Next: framing,
// checksums, decoding and chunking. points/s is the figure to compare with
// the end-to-end target (2 M points/s for the agent).
func BenchmarkStream(b *testing.B) {
	const steps = 20000
	dir := b.TempDir()
	p := filepath.Join(dir, "run", "events.out.tfevents.1.h")
	if err := tbtest.WriteFile(p, benchRecords(steps)...); err != nil {
		b.Fatal(err)
	}
	f := New()
	infos, err := f.Discover(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	points := 0
	var evs []event.Event
	for i := 0; i < b.N; i++ {
		st, err := f.Open(infos[0], event.Position{}, nil, testOptsB(b))
		if err != nil {
			b.Fatal(err)
		}
		for {
			c, err := st.Next(contextBG, evs[:0])
			for _, ev := range c.Events {
				points += len(ev.Points)
			}
			evs = c.Events
			if err != nil {
				break
			}
		}
		st.Close()
	}
	b.ReportMetric(float64(points)/b.Elapsed().Seconds(), "points/s")
}
