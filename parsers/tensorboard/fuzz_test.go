package tensorboard

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/tensorboard/tbtest"
)

// fixtureRecords returns the records of the shared fixtures, as seeds.
func fixtureRecords(tb testing.TB) [][]byte {
	var out [][]byte
	for _, p := range []string{
		"../../testdata/tensorboard/tb-a-basic/logs/resnet-01/events.out.tfevents.1796693825.vm",
		"../../testdata/realworld/tensorboard-lightning/DCBIA-OrthoLab__ShapeAXI/lightning_logs/version_0/events.out.tfevents.1721830887.medusa.ia.unc.edu.2411601.0",
	} {
		rd, err := openRecords(p, 0, 0)
		if err != nil {
			tb.Fatal(err)
		}
		seen := map[byte]bool{}
		for {
			rec, err := rd.next()
			if err != nil || rec.status != recOK {
				break
			}
			// One record per first-payload-byte-and-length class keeps the
			// seed set small and varied.
			k := byte(len(rec.data)) ^ rec.data[len(rec.data)/2]
			if !seen[k] && len(rec.data) <= 2048 { // small seeds minimize fast
				seen[k] = true
				out = append(out, append([]byte(nil), rec.data...))
			}
			rd.skipTo(rec.end())
		}
		rd.Close()
	}
	return out
}

// FuzzRecordReader frames arbitrary bytes as an events file: the reader
// must not panic or loop, offsets only grow and stay in the file, and every
// record it returns has good checksums.
func FuzzRecordReader(f *testing.F) {
	recs := fixtureRecords(f)
	f.Add(tbtest.Records(recs[:3]...))
	f.Add(tbtest.Records(recs[0], recs[1])[:40])
	bad := tbtest.Records(recs[:4]...)
	binary.LittleEndian.PutUint64(bad[len(recs[0])+16:], 99)
	f.Add(bad)
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "events.out.tfevents.fuzz")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rd, err := openRecords(p, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		last := int64(-1)
		for steps := 0; ; steps++ {
			if steps > len(data)+2 {
				t.Fatalf("no progress after %d steps", steps)
			}
			rec, err := rd.next()
			if err != nil {
				t.Fatal(err)
			}
			if rec.off <= last {
				t.Fatalf("offset %d after %d", rec.off, last)
			}
			last = rec.off
			var to int64
			switch rec.status {
			case recOK:
				if maskedCRC(rec.data) != binary.LittleEndian.Uint32(data[rec.off+headerLen+rec.length:]) ||
					maskedCRC(data[rec.off:rec.off+8]) != binary.LittleEndian.Uint32(data[rec.off+8:]) {
					t.Fatal("a record with a bad checksum was returned")
				}
				to = rec.end()
			case recBadData, recTooLarge:
				to = rec.end()
			case recBadLength:
				at, found, err := rd.resync()
				if err != nil {
					t.Fatal(err)
				}
				if !found {
					return
				}
				if at <= rec.off {
					t.Fatalf("resync went back to %d from %d", at, rec.off)
				}
				to = at
			case recEOF, recPartial:
				return
			}
			if to > int64(len(data)) {
				t.Fatalf("skip to %d past the end %d (%v)", to, len(data), rec.status)
			}
			rd.skipTo(to)
		}
	})
}

// FuzzDecodeEvent maps arbitrary bytes as one Event record: no panic, and
// what comes out is well formed.
func FuzzDecodeEvent(f *testing.F) {
	for _, r := range fixtureRecords(f) {
		f.Add(r)
	}
	f.Add(tbtest.Summary(1, 2, tbtest.HistoValue("w", tbtest.Histo{Min: -1, Max: 2, Num: 3, Sum: 1, Limits: []float64{-2, 0, 3}, Counts: []float64{0, 1, 2}})))
	f.Add(tbtest.Summary(1, 2, tbtest.ImageValue("im", tbtest.Image{Height: 1, Width: 1, Encoded: []byte("\x89PNG\r\n\x1a\n")})))
	f.Add(tbtest.Summary(1, 2, tbtest.Value("t", tbtest.Meta("text", nil), tbtest.Tensor{DType: tbtest.DTString, Dims: []int64{2, 2}, Strings: [][]byte{{'a'}, {'b'}, {'c'}, {'d'}}}.Marshal())))
	f.Add(tbtest.Summary(1, 2, tbtest.Value("h", tbtest.Meta("histograms", nil), tbtest.Tensor{DType: tbtest.DTFloat, Dims: []int64{1, 3}, Float: []float32{0, 1, 2}}.Marshal())))
	f.Add(tbtest.Summary(1, 2, tbtest.MetaOnly("_hparams_/session_start_info", tbtest.Meta("hparams", tbtest.HParamsStart(map[string]any{"a": []any{map[string]any{"b": 1.0}}})))))
	f.Add(tbtest.Summary(1, 2, tbtest.Value("i", tbtest.Meta("images", nil), tbtest.Tensor{DType: tbtest.DTString, Dims: []int64{3}, Strings: [][]byte{{'1'}, {'1'}, {'x'}}}.Marshal())))
	f.Add(tbtest.Start(1, 5))
	f.Fuzz(func(t *testing.T, data []byte) {
		st := &laneState{V: stateVersion, Meta: map[string]string{}}
		w := &warnBuf{max: 100}
		m := newMapper(st, &laneInfo{key: "k"}, &spooler{}, func() int64 { return 1 }, w)
		m.dry = true
		pos := event.Position{Offset: 1, Seq: 7}
		m.reset(nil)
		m.record(data, pos, 3)
		for _, ev := range m.evs {
			if ev.Pos != pos || ev.Step < 0 || ev.Time < 0 {
				t.Fatalf("event %+v", ev)
			}
			switch ev.Kind {
			case event.KindMetrics:
				if len(ev.Points) == 0 {
					t.Fatal("metrics without points")
				}
				for _, p := range ev.Points {
					if p.Name == "" {
						t.Fatal("a point without a name")
					}
				}
			case event.KindData:
				if ev.Name == "" {
					t.Fatal("data without a name")
				}
				if ev.Type == event.DataHistogram && !json.Valid([]byte(ev.Text)) {
					t.Fatalf("histogram %q is not JSON", ev.Text)
				}
			case event.KindConfig:
				if _, err := json.Marshal(ev.Config); err != nil {
					t.Fatalf("config does not encode: %v", err)
				}
			case event.KindFile:
				if ev.Name == "" {
					t.Fatal("file without a name")
				}
			default:
				t.Fatalf("unexpected event kind %v", ev.Kind)
			}
		}
		for _, x := range w.ws {
			if x.Pos.Seq != 3 || x.Reason == "" {
				t.Fatalf("warning %+v", x)
			}
		}
	})
}

// FuzzStream reads an arbitrary events file as a lane, to its end: no
// panic, positions only grow, and every warning points into the file.
func FuzzStream(f *testing.F) {
	recs := fixtureRecords(f)
	f.Add(tbtest.Records(recs...), uint8(3))
	f.Add(append(tbtest.Records(recs[:5]...), 1, 2, 3), uint8(1))
	f.Add(tbtest.Records(tbtest.FileVersion(1), tbtest.Start(1, 0), tbtest.Scalar(1, 1, "x", 1)), uint8(2))
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		dir := filepath.Join(root, "r")
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o755)
		// Up to two files of the lane.
		cut := len(data) * int(split%4) / 4
		os.WriteFile(filepath.Join(dir, "events.out.tfevents.1.h"), data[:cut], 0o644)
		if cut < len(data) {
			os.WriteFile(filepath.Join(dir, "events.out.tfevents.2.h"), data[cut:], 0o644)
		}
		fm := New()
		fm.chunkEvents = 1 + int(split)%7
		infos, err := fm.Discover(root)
		if err != nil || len(infos) != 1 {
			t.Fatalf("discover: %v %v", infos, err)
		}
		st, err := fm.Open(infos[0], event.Position{}, nil, parsers.Options{Params: map[string]string{ParamSpoolDir: "/dev/null/spool"}})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var last event.Position
		for i := 0; ; i++ {
			if i > len(data)+10 {
				t.Fatal("Next never reached io.EOF")
			}
			c, err := st.Next(contextBG, nil)
			if c.End.Less(last) {
				t.Fatalf("position went back: %+v after %+v", c.End, last)
			}
			last = c.End
			for _, ev := range c.Events {
				if ev.Kind != event.KindRun && ev.Kind != event.KindConfig && c.End.Less(ev.Pos) {
					t.Fatalf("event at %+v after the chunk's end %+v", ev.Pos, c.End)
				}
			}
			ws, _ := st.(parsers.Warner).Warnings()
			for _, w := range ws {
				if w.Pos.Seq < 0 || w.Pos.Seq > int64(len(data)) {
					t.Fatalf("warning offset %d outside the data: %v", w.Pos.Seq, w)
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				// Only the spool may fail (it cannot be created here).
				if !strings.Contains(err.Error(), "spool") {
					t.Fatalf("Next: %v", err)
				}
				return
			}
		}
	})
}

// FuzzHParamsYAML: no panic; what is accepted encodes as JSON.
func FuzzHParamsYAML(f *testing.F) {
	for _, s := range []string{"a: 1\nb:\n- x\n- y: 2\n", "m:\n  n: 'q''r'\n  o: \"\\u00e9\"\n", "x: &a [1, {b: 2}]\ny: *a\n",
		"l: |\n  a\n  b\nf: >-\n  c\n", "t: !!python/tuple\n- 1\n", "k: !!python/name:a.b ''\n", "---\na: .nan\n..."} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseHParamsYAML(data)
		if err != nil {
			if !errors.Is(err, errYAML) {
				t.Fatalf("error without errYAML: %v", err)
			}
			return
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("result does not encode: %v", err)
		}
	})
}
