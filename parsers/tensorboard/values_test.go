package tensorboard

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/tensorboard/tbtest"
)

const wall0 = 1_764_000_000.0

func le(n int, v uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	return b[:n]
}

// TestTensorScalarsEveryDtype writes rank-0 tensors of every numeric dtype
// in each representation TensorFlow uses (the typed repeated field, packed
// and not, and raw tensor_content) and checks each value exactly.
func TestTensorScalarsEveryDtype(t *testing.T) {
	scal := tbtest.Meta("scalars", nil)
	bf := tbtest.Bfloat16(3.140625)
	cases := []struct {
		tag  string
		meta []byte
		tn   tbtest.Tensor
		want float64
	}{
		{"float", scal, tbtest.Tensor{DType: tbtest.DTFloat, Float: []float32{1.1}}, float64(float32(1.1))},
		{"float/unpacked", scal, tbtest.Tensor{DType: tbtest.DTFloat, Float: []float32{-2.5}, Unpacked: true}, -2.5},
		{"double", scal, tbtest.Tensor{DType: tbtest.DTDouble, Double: []float64{math.Pi}}, math.Pi},
		{"double/unpacked", scal, tbtest.Tensor{DType: tbtest.DTDouble, Double: []float64{1e-300}, Unpacked: true}, 1e-300},
		{"int32", scal, tbtest.Tensor{DType: tbtest.DTInt32, Int: []int32{-7}}, -7},
		{"int16", scal, tbtest.Tensor{DType: tbtest.DTInt16, Int: []int32{-300}}, -300},
		{"int8", scal, tbtest.Tensor{DType: tbtest.DTInt8, Int: []int32{-5}}, -5},
		{"uint8", scal, tbtest.Tensor{DType: tbtest.DTUint8, Int: []int32{250}}, 250},
		{"uint16", scal, tbtest.Tensor{DType: tbtest.DTUint16, Int: []int32{65000}}, 65000},
		{"int64", scal, tbtest.Tensor{DType: tbtest.DTInt64, Int64: []int64{1<<50 + 3}}, 1<<50 + 3},
		{"int64/negative", scal, tbtest.Tensor{DType: tbtest.DTInt64, Int64: []int64{-(1 << 40)}, Unpacked: true}, -(1 << 40)},
		{"uint32", scal, tbtest.Tensor{DType: tbtest.DTUint32, Uint32: []uint32{4_000_000_000}}, 4e9},
		{"uint64", scal, tbtest.Tensor{DType: tbtest.DTUint64, Uint64: []uint64{1 << 60}}, 1 << 60},
		{"half", scal, tbtest.Tensor{DType: tbtest.DTHalf, Half: []uint16{0x3555}}, 0.333251953125},
		{"half/subnormal", scal, tbtest.Tensor{DType: tbtest.DTHalf, Half: []uint16{0x0001}}, math.Ldexp(1, -24)},
		{"half/max", scal, tbtest.Tensor{DType: tbtest.DTHalf, Half: []uint16{0x7bff}}, 65504},
		{"half/-inf", scal, tbtest.Tensor{DType: tbtest.DTHalf, Half: []uint16{0xfc00}}, math.Inf(-1)},
		{"half/-0", scal, tbtest.Tensor{DType: tbtest.DTHalf, Half: []uint16{0x8000}}, math.Copysign(0, -1)},
		{"bfloat16", scal, tbtest.Tensor{DType: tbtest.DTBfloat16, Half: []uint16{bf}}, 3.140625},
		{"bool", scal, tbtest.Tensor{DType: tbtest.DTBool, Bool: []bool{true}}, 1},
		{"content/float", scal, tbtest.Tensor{DType: tbtest.DTFloat, Content: le(4, uint64(math.Float32bits(0.1)))}, float64(float32(0.1))},
		{"content/double", scal, tbtest.Tensor{DType: tbtest.DTDouble, Content: le(8, math.Float64bits(-1e308))}, -1e308},
		{"content/int32", scal, tbtest.Tensor{DType: tbtest.DTInt32, Content: le(4, uint64(uint32(0xfffffff6)))}, -10},
		{"content/uint32", scal, tbtest.Tensor{DType: tbtest.DTUint32, Content: le(4, 0xfffffff6)}, 4294967286},
		{"content/int64", scal, tbtest.Tensor{DType: tbtest.DTInt64, Content: le(8, uint64(1<<52+1))}, 1<<52 + 1},
		{"content/uint64", scal, tbtest.Tensor{DType: tbtest.DTUint64, Content: le(8, 1<<63)}, 1 << 63},
		{"content/int16", scal, tbtest.Tensor{DType: tbtest.DTInt16, Content: le(2, 0x8000)}, -32768},
		{"content/uint16", scal, tbtest.Tensor{DType: tbtest.DTUint16, Content: le(2, 0x8000)}, 32768},
		{"content/int8", scal, tbtest.Tensor{DType: tbtest.DTInt8, Content: []byte{0x80}}, -128},
		{"content/uint8", scal, tbtest.Tensor{DType: tbtest.DTUint8, Content: []byte{0x80}}, 128},
		{"content/half", scal, tbtest.Tensor{DType: tbtest.DTHalf, Content: le(2, uint64(tbtest.Half(-1.5)))}, -1.5},
		{"content/bfloat16", scal, tbtest.Tensor{DType: tbtest.DTBfloat16, Content: le(2, uint64(tbtest.Bfloat16(-0.5)))}, -0.5},
		{"content/bool", scal, tbtest.Tensor{DType: tbtest.DTBool, Content: []byte{0}}, 0},
		{"no-plugin", nil, tbtest.Tensor{DType: tbtest.DTFloat, Float: []float32{42}}, 42},
		{"one-element-vector", scal, tbtest.Tensor{DType: tbtest.DTDouble, Dims: []int64{1, 1}, Double: []float64{7}}, 7},
	}
	recs := [][]byte{tbtest.FileVersion(wall0)}
	for i, c := range cases {
		recs = append(recs, tbtest.Summary(wall0+float64(i), int64(i), tbtest.Value(c.tag, c.meta, c.tn.Marshal())))
	}
	// Not scalars: reported, not sent.
	recs = append(recs,
		tbtest.Summary(wall0, 100, tbtest.Value("vector", scal, tbtest.Tensor{DType: tbtest.DTFloat, Dims: []int64{2}, Float: []float32{1, 2}}.Marshal())),
		tbtest.Summary(wall0, 101, tbtest.Value("string", nil, tbtest.Tensor{DType: tbtest.DTString, Strings: [][]byte{[]byte("x")}}.Marshal())),
		tbtest.Summary(wall0, 102, tbtest.Value("complex", scal, tbtest.Tensor{DType: 8}.Marshal())),
	)
	dir := t.TempDir()
	writeEvents(t, dir, "run/events.out.tfevents.1.host", recs...)
	lr := only(t, readLogdir(t, New(), dir, testOpts(t, nil)))
	got := metrics(lr.events)
	for i, c := range cases {
		pts := got[c.tag]
		if len(pts) != 1 {
			t.Errorf("%s: %d points", c.tag, len(pts))
			continue
		}
		p := pts[0]
		if p.v != c.want || math.Signbit(p.v) != math.Signbit(c.want) || p.step != int64(i) || p.time != int64(math.Round((wall0+float64(i))*1000)) {
			t.Errorf("%s: %+v, want value %v step %d", c.tag, p, c.want, i)
		}
	}
	if len(got) != len(cases) {
		t.Errorf("metrics %v", sortedKeys(got))
	}
	if r := reasons(lr.warnings); r[ReasonUnsupported] != 3 || len(r) != 1 {
		t.Errorf("warnings %v: want 3 unsupported", lr.warnings)
	}
}

// TestSimpleValues covers float32 simple_value widening, the special
// values, the largest steps and wall time rounding.
func TestSimpleValues(t *testing.T) {
	tiny := math.Float32frombits(1)
	vals := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), tiny, math.MaxFloat32, float32(math.Copysign(0, -1)), 0.1}
	recs := [][]byte{tbtest.FileVersion(wall0)}
	for i, v := range vals {
		recs = append(recs, tbtest.Scalar(wall0+float64(i)+0.0004, int64(i), "v", v))
	}
	recs = append(recs, tbtest.Scalar(wall0+0.0006, 1_000_000_000_007, "v", 42.5), tbtest.Scalar(wall0, math.MaxInt64, "big", 1))
	dir := t.TempDir()
	writeEvents(t, dir, "r/events.out.tfevents.1.h", recs...)
	pts := metrics(only(t, readLogdir(t, New(), dir, testOpts(t, nil))).events)
	for i, v := range vals {
		p := pts["v"][i]
		w := float64(v)
		if !(p.v == w && math.Signbit(p.v) == math.Signbit(w) || math.IsNaN(p.v) && math.IsNaN(w)) {
			t.Errorf("value %d: %v, want %v", i, p.v, w)
		}
		if p.time != int64(wall0*1000)+int64(i)*1000 {
			t.Errorf("value %d: time %d", i, p.time)
		}
	}
	if p := pts["v"][len(vals)]; p.step != 1_000_000_000_007 || p.v != 42.5 || p.time != int64(wall0*1000)+1 {
		t.Errorf("10^12+7: %+v", p)
	}
	if p := pts["big"][0]; p.step != math.MaxInt64 {
		t.Errorf("max step: %+v", p)
	}
}

// TestMetadataOnlyOnFirstOccurrence: TensorFlow writes a tag's plugin
// metadata on its first value only; later values are mapped by the
// remembered plugin, also after a restart (the state holds it) and when the
// state is lost (it is rebuilt by reading again).
func TestMetadataOnlyOnFirstOccurrence(t *testing.T) {
	text := func(s string) []byte {
		return tbtest.Tensor{DType: tbtest.DTString, Strings: [][]byte{[]byte(s)}}.Marshal()
	}
	hist := tbtest.Tensor{DType: tbtest.DTDouble, Dims: []int64{2, 3}, Double: []float64{0, 1, 3, 1, 2, 5}}.Marshal()
	scalar := func(v float32) []byte { return tbtest.Tensor{DType: tbtest.DTFloat, Float: []float32{v}}.Marshal() }
	recs := [][]byte{tbtest.FileVersion(wall0),
		tbtest.Summary(wall0, 0, tbtest.Value("note", tbtest.Meta("text", nil), text("first")),
			tbtest.Value("acc", tbtest.Meta("scalars", nil), scalar(0.5)),
			tbtest.Value("w", tbtest.Meta("histograms", nil), hist)),
	}
	for s := int64(1); s <= 3; s++ {
		recs = append(recs, tbtest.Summary(wall0+float64(s), s, tbtest.Value("note", nil, text("later")),
			tbtest.Value("acc", nil, scalar(float32(s))), tbtest.Value("w", nil, hist)))
	}
	dir := t.TempDir()
	writeEvents(t, dir, "r/events.out.tfevents.1.h", recs...)
	f := New()
	f.chunkEvents = 1
	infos, _ := f.Discover(dir)
	whole := readLane(t, f, infos[0], event.Position{}, nil, testOpts(t, nil))
	check := func(what string, evs []event.Event, from int64) {
		t.Helper()
		var notes, hists []event.Event
		for _, ev := range evs {
			switch {
			case ev.Kind == event.KindData && ev.Type == event.DataStringSeries:
				notes = append(notes, ev)
			case ev.Kind == event.KindData && ev.Type == event.DataHistogram:
				hists = append(hists, ev)
			}
		}
		n := int(4 - from)
		if len(notes) != n || len(hists) != n || len(metrics(evs)["acc"]) != n {
			t.Fatalf("%s: %d texts, %d histograms, %d acc points, want %d each", what, len(notes), len(hists), len(metrics(evs)["acc"]), n)
		}
		for _, h := range hists {
			if h.Text != `{"freq":[3,5],"bins":[0,1,2],"shape":"generic","type":"Histogram","v":1,"maxFreq":5}` {
				t.Errorf("%s: histogram %s", what, h.Text)
			}
		}
	}
	check("one pass", whole.events, 0)

	// Resume after the first summary, with the state, and without it.
	first := readFirstChunks(t, f, infos[0], 2)
	check("resumed with state", readLane(t, f, infos[0], first.end, first.state, testOpts(t, nil)).events, 1)
	check("resumed, state lost", readLane(t, f, infos[0], first.end, nil, testOpts(t, nil)).events, 1)
}

// readFirstChunks opens a lane and reads n chunks, returning where they
// ended and the state saved with them.
func readFirstChunks(t *testing.T, f *Format, in parsers.StreamInfo, n int) *laneRead {
	t.Helper()
	st, err := f.Open(in, event.Position{}, nil, testOpts(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lr := &laneRead{info: in}
	for i := 0; i < n; i++ {
		c, err := st.Next(context.Background(), nil)
		if err != nil && !isEOF(err) {
			t.Fatalf("chunk %d: %v", i, err)
		}
		lr.events = append(lr.events, copyEvents(c.Events)...)
		lr.end, lr.state = c.End, c.State
	}
	return lr
}

func TestTextHistogramsImages(t *testing.T) {
	png := func(w, h int) []byte {
		b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
		b = binary.BigEndian.AppendUint32(b, uint32(w))
		b = binary.BigEndian.AppendUint32(b, uint32(h))
		return append(b, 8, 2, 0, 0, 0, 1, 2, 3, 4)
	}
	str := func(dims []int64, ss ...string) []byte {
		t := tbtest.Tensor{DType: tbtest.DTString, Dims: dims}
		for _, s := range ss {
			t.Strings = append(t.Strings, []byte(s))
		}
		return t.Marshal()
	}
	textMeta := tbtest.Meta("text", nil)
	recs := [][]byte{tbtest.FileVersion(wall0),
		tbtest.Summary(wall0, 1, tbtest.Value("notes/text_summary", textMeta, str([]int64{1}, "tensorboardX"))),
		tbtest.Summary(wall0, 2, tbtest.Value("rank0", textMeta, str(nil, "plain"))),
		tbtest.Summary(wall0, 3, tbtest.Value("lines", textMeta, str([]int64{2}, "a", "b"))),
		tbtest.Summary(wall0, 4, tbtest.Value("table", textMeta, str([]int64{2, 2}, "k", "v", "lr", "0.1"))),
		tbtest.Summary(wall0, 5, tbtest.Value("invalid-utf8", textMeta, str(nil, "a\xffb"))),
		// TF2 histograms: k×3 (left, right, count), as doubles and as float32
		// tensor_content.
		tbtest.Summary(wall0, 6, tbtest.Value("h2", tbtest.Meta("histograms", nil),
			tbtest.Tensor{DType: tbtest.DTDouble, Dims: []int64{3, 3}, Double: []float64{-1, 0, 2, 0, 0.5, 3, 0.5, 4, 1}}.Marshal())),
		tbtest.Summary(wall0, 7, tbtest.Value("h2f", tbtest.Meta("histograms", nil),
			tbtest.Tensor{DType: tbtest.DTFloat, Dims: []int64{1, 3}, Content: append(append(le(4, uint64(math.Float32bits(1))), le(4, uint64(math.Float32bits(2)))...), le(4, uint64(math.Float32bits(10)))...)}.Marshal())),
		// TF1 / tensorboardX HistogramProto: an empty left bucket below min,
		// the last limit above max.
		tbtest.Summary(wall0, 8, tbtest.HistoValue("h1", tbtest.Histo{Min: -0.9, Max: 1.9, Num: 6, Sum: 3,
			Limits: []float64{-1.1, -0.5, 1, 2.2}, Counts: []float64{0, 1, 3, 2}})),
		// TF2 images: [width, height, png...]; TF1 image.
		tbtest.Summary(wall0, 9, tbtest.Value("imgs", tbtest.Meta("images", nil), str([]int64{4}, "3", "2", string(png(3, 2)), string(png(3, 2))+"x"))),
		tbtest.Summary(wall0, 10, tbtest.ImageValue("img1", tbtest.Image{Height: 5, Width: 7, Colorspace: 3, Encoded: png(7, 5)})),
	}
	dir := t.TempDir()
	writeEvents(t, dir, "r/events.out.tfevents.1.h", recs...)
	opts := testOpts(t, nil)
	lr := only(t, readLogdir(t, New(), dir, opts))
	texts := map[string]string{}
	hists := map[string]string{}
	for _, ev := range ofKind(lr.events, event.KindData) {
		if ev.Type == event.DataStringSeries {
			texts[ev.Name] = ev.Text
		} else {
			hists[ev.Name] = ev.Text
		}
	}
	wantTexts := map[string]string{"notes": "tensorboardX", "rank0": "plain", "lines": "a\nb", "table": "k | v\nlr | 0.1", "invalid-utf8": "a\uFFFDb"}
	if !reflect.DeepEqual(texts, wantTexts) {
		t.Errorf("texts %q, want %q", texts, wantTexts)
	}
	wantHists := map[string]string{
		"h2":  `{"freq":[2,3,1],"bins":[-1,0,0.5,4],"shape":"generic","type":"Histogram","v":1,"maxFreq":3}`,
		"h2f": `{"freq":[10],"bins":[1,2],"shape":"generic","type":"Histogram","v":1,"maxFreq":10}`,
		"h1":  `{"freq":[1,3,2],"bins":[-1.1,-0.5,1,1.9],"shape":"generic","type":"Histogram","v":1,"maxFreq":3}`,
	}
	if !reflect.DeepEqual(hists, wantHists) {
		t.Errorf("histograms\n got %q\nwant %q", hists, wantHists)
	}
	files := ofKind(lr.events, event.KindFile)
	if len(files) != 3 {
		t.Fatalf("%d files, want 3", len(files))
	}
	wantFiles := []struct {
		name string
		step int64
		data []byte
	}{{"imgs", 9, png(3, 2)}, {"imgs", 9, append(png(3, 2), 'x')}, {"img1", 10, png(7, 5)}}
	seen := map[string]bool{}
	for i, f := range files {
		b, err := os.ReadFile(f.Path)
		if err != nil || f.Name != wantFiles[i].name || f.Step != wantFiles[i].step || f.Type != "IMAGE" ||
			string(b) != string(wantFiles[i].data) || !strings.HasSuffix(f.Path, ".png") || seen[f.Path] {
			t.Errorf("file %d: %+v (%v)", i, f, err)
		}
		seen[f.Path] = true
	}
	if len(lr.warnings) != 0 {
		t.Errorf("warnings: %v", lr.warnings)
	}
	// Reading again names the same spool files (no second copy).
	again := only(t, readLogdir(t, New(), dir, opts))
	if p := ofKind(again.events, event.KindFile)[0].Path; p != files[0].Path {
		t.Errorf("second read spooled %s, first %s", p, files[0].Path)
	}
}

// TestSkippedKindsAreCounted: what mlop has no place for is reported by
// kind, never dropped silently.
func TestSkippedKindsAreCounted(t *testing.T) {
	f32 := tbtest.Tensor{DType: tbtest.DTFloat, Dims: []int64{3}, Float: []float32{1, 2, 3}}.Marshal()
	layout := tbtest.Tensor{DType: tbtest.DTString, Strings: [][]byte{[]byte("layout")}}.Marshal()
	oldHisto := append([]byte{0x0a, 1, 'o'}, 0x1a, 2, 1, 2) // tag "o", obsolete_old_style_histogram
	recs := [][]byte{tbtest.FileVersion(wall0),
		tbtest.Summary(wall0, 1, tbtest.AudioValue("speech", []byte("RIFF"))),
		tbtest.Summary(wall0, 1, tbtest.Value("tts", tbtest.Meta("audio", nil), f32)),
		tbtest.Summary(wall0, 1, tbtest.Value("pr", tbtest.Meta("pr_curves", nil), f32)),
		tbtest.Summary(wall0, 1, tbtest.Value("pr", nil, f32)), // remembered plugin
		tbtest.Summary(wall0, 1, tbtest.Value("cloud", tbtest.Meta("mesh", nil), f32)),
		tbtest.Graph(wall0, 100),
		tbtest.RunMetadata(wall0, 1, "step1"),
		tbtest.Summary(wall0, 1, tbtest.Value("keras", tbtest.Meta("graph_keras_model", nil), layout)),
		tbtest.Summary(wall0, 1, tbtest.Value("custom_scalars__config__", tbtest.Meta("custom_scalars", nil), layout)),
		tbtest.Summary(wall0, 1, tbtest.Value("emb", tbtest.Meta("projector", nil), f32)),
		tbtest.Summary(wall0, 1, oldHisto),
		tbtest.Summary(wall0, -3, tbtest.Simple("neg", 1)),
		tbtest.Scalar(wall0, 2, "kept", 1),
	}
	dir := t.TempDir()
	writeEvents(t, dir, "r/events.out.tfevents.1.h", recs...)
	opts := testOpts(t, nil)
	skips := 0
	opts.OnSkip = func(string) { skips++ }
	lr := only(t, readLogdir(t, New(), dir, opts))
	want := map[string]int{ReasonAudio: 2, ReasonPRCurves: 2, ReasonMesh: 1, ReasonGraph: 3, ReasonCustomScalars: 1,
		ReasonUnknownPlugin: 1, ReasonUnsupported: 1, ReasonBadStep: 1}
	if got := reasons(lr.warnings); !reflect.DeepEqual(got, want) {
		t.Errorf("reasons %v, want %v", got, want)
	}
	if skips != len(lr.warnings) {
		t.Errorf("OnSkip called %d times for %d warnings", skips, len(lr.warnings))
	}
	for _, w := range lr.warnings {
		if w.File == "" || w.Pos.Seq <= 0 || !strings.Contains(w.String(), w.File+":") {
			t.Errorf("warning without file:offset: %v", w)
		}
	}
	if m := metrics(lr.events); len(m) != 1 || len(m["kept"]) != 1 {
		t.Errorf("metrics %v", m)
	}
}

func TestHParamsInTheEventsFile(t *testing.T) {
	hp := map[string]any{"lr": 0.001, "optimizer": "adam", "batch": 32.0, "amp": true, "none": nil,
		"nested": map[string]any{"a": 1.0, "b": []any{"x", 2.0}}, "inf": math.Inf(1)}
	meta := func(content []byte) []byte { return tbtest.Meta("hparams", content) }
	recs := [][]byte{tbtest.FileVersion(wall0),
		tbtest.Summary(wall0, 0, tbtest.MetaOnly("_hparams_/experiment", meta(tbtest.HParamsExperiment("hp_metric")))),
		tbtest.Summary(wall0, 0, tbtest.MetaOnly("_hparams_/session_start_info", meta(tbtest.HParamsStart(hp)))),
		tbtest.Summary(wall0, 0, tbtest.MetaOnly("_hparams_/session_end_info", meta(tbtest.HParamsEnd()))),
		tbtest.Scalar(wall0, 0, "hp_metric", -1),
	}
	dir := t.TempDir()
	writeEvents(t, dir, "version_0/events.out.tfevents.1.h.1.0", recs...)
	lr := only(t, readLogdir(t, New(), dir, testOpts(t, nil)))
	want := map[string]any{"lr": 0.001, "optimizer": "adam", "batch": 32.0, "amp": true, "none": nil,
		"nested": map[string]any{"a": 1.0, "b": []any{"x", 2.0}}, "inf": "Infinity"}
	if got := mergeConfig(lr.events); !reflect.DeepEqual(got, want) {
		t.Errorf("config %v, want %v", got, want)
	}
	if b, err := json.Marshal(mergeConfig(lr.events)); err != nil {
		t.Errorf("config is not JSON: %v (%s)", err, b)
	}
	if m := metrics(lr.events); len(m["hp_metric"]) != 1 || m["hp_metric"][0].v != -1 {
		t.Errorf("metrics %v", m)
	}
	if len(lr.warnings) != 0 {
		t.Errorf("warnings %v", lr.warnings)
	}
}

// TestMetricLines: the tags of one step, one event each at the same
// millisecond, share a metrics event; a tag twice never does (the server
// would see a JSON object with a key twice). Also with the tag cache full.
func TestMetricLines(t *testing.T) {
	recs := [][]byte{tbtest.FileVersion(wall0),
		tbtest.Scalar(wall0, 1, "a", 1), tbtest.Scalar(wall0, 1, "b", 2), tbtest.Scalar(wall0, 1, "a", 3), // a again: a new line
		tbtest.Scalar(wall0+0.001, 1, "c", 4), // another millisecond
		tbtest.Scalar(wall0+0.001, 2, "c", 5), // another step
		tbtest.Summary(wall0, 3, tbtest.Simple("x", 1), tbtest.Simple("y", 2), tbtest.Simple("x", 3)), // x twice in one summary
		tbtest.Scalar(wall0, 3, "z", 6),
	}
	dir := t.TempDir()
	writeEvents(t, dir, "r/events.out.tfevents.1.h", recs...)
	want := "[a=1 b=2] [a=3] [c=4] [c=5] [x=1 y=2] [x=3] [z=6]"
	for _, limit := range []int{1 << 14, 1} {
		old := maxInterned
		maxInterned = limit
		lr := only(t, readLogdir(t, New(), dir, testOpts(t, nil)))
		maxInterned = old
		var lines []string
		for _, ev := range ofKind(lr.events, event.KindMetrics) {
			var pts []string
			for _, p := range ev.Points {
				pts = append(pts, fmt.Sprintf("%s=%v", p.Name, p.Value))
			}
			lines = append(lines, "["+strings.Join(pts, " ")+"]")
		}
		if got := strings.Join(lines, " "); got != want {
			t.Errorf("cache of %d: lines %s, want %s", limit, got, want)
		}
	}
}
