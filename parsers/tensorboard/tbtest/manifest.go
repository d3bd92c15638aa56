package tbtest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// View is what arrived for a set of runs, in the terms a fixture's
// manifest.json speaks: the deduplicated metric points (one per name and
// step), the data rows and the files, per run name.
type View map[string]*RunView

// RunView is one run.
type RunView struct {
	Metrics map[string][]Point
	Data    []Data
	Files   []File
}

// Point is one metric point.
type Point struct {
	Step, Time int64
	Value      float64
}

// Data is one string-series or histogram row.
type Data struct {
	Name, Type string
	Step, Time int64
	Text       string
}

// File is one uploaded file.
type File struct {
	Name       string
	Step, Time int64
	Bytes      []byte
}

// notJudged are the manifest keys whose content no test can hold the
// agent to, and why. Every other key is checked; a key in neither place
// fails the test, so a manifest that grows cannot hide a field.
var notJudged = map[string]string{
	"notes":       "prose for people; what it states is checked through the data keys",
	"produced_by": "provenance (the generating script and writer); not data",
}

// CheckManifest holds the runs in v to the manifest at path (the
// tensorboard fixtures' manifest.json format), walking every key.
func CheckManifest(t testing.TB, path string, v View) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// Steps a killed writer may or may not have flushed: allowed on top of
	// the listed ones (and checked exactly when present, below).
	optional := map[string]map[string]map[int64]bool{}
	if val, ok := m["optional_extra_steps"]; ok {
		var opt map[string]map[string][][]json.RawMessage
		if err := json.Unmarshal(val, &opt); err != nil {
			t.Fatalf("optional_extra_steps: %v", err)
		}
		for run, tags := range opt {
			optional[run] = map[string]map[int64]bool{}
			for tag, rows := range tags {
				optional[run][tag] = map[int64]bool{}
				for _, row := range rows {
					step, _, _ := scalarRow(t, row)
					optional[run][tag][step] = true
				}
			}
		}
	}
	for _, key := range sortedKeys(m) {
		val := m[key]
		switch key {
		case "fixture":
			var name string
			json.Unmarshal(val, &name)
			if want := filepath.Base(filepath.Dir(path)); name != want {
				t.Errorf("manifest fixture %q is not its directory %q", name, want)
			}
		case "logdir":
			var dir string
			json.Unmarshal(val, &dir)
			if fi, err := os.Stat(filepath.Join(filepath.Dir(path), dir)); err != nil || !fi.IsDir() {
				t.Errorf("manifest logdir %q: not a directory beside it", dir)
			}
		case "runs":
			var runs map[string]map[string]json.RawMessage
			if err := json.Unmarshal(val, &runs); err != nil {
				t.Fatalf("runs: %v", err)
			}
			if got, want := sortedKeys(v), sortedKeys(runs); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("runs %q, manifest says %q", got, want)
			}
			for _, name := range sortedKeys(runs) {
				rv := v[name]
				if rv == nil {
					continue
				}
				checkRun(t, name, runs[name], rv, optional[name])
			}
		case "optional_extra_steps":
			// Points the writer may or may not have flushed before it was
			// killed: each one is either absent or exact.
			var opt map[string]map[string][][]json.RawMessage
			if err := json.Unmarshal(val, &opt); err != nil {
				t.Fatalf("optional_extra_steps: %v", err)
			}
			for run, tags := range opt {
				for tag, rows := range tags {
					for _, row := range rows {
						step, want, wall := scalarRow(t, row)
						rv := v[run]
						if rv == nil {
							t.Errorf("optional_extra_steps: no run %s", run)
							continue
						}
						for _, p := range rv.Metrics[tag] {
							if p.Step == step {
								checkPoint(t, run+" "+tag+" (optional)", p, step, want, wall)
							}
						}
					}
				}
			}
		default:
			if _, ok := notJudged[key]; !ok {
				t.Errorf("manifest key %q is neither checked nor listed as not judged", key)
			}
		}
	}
}

func checkRun(t testing.TB, run string, spec map[string]json.RawMessage, rv *RunView, optional map[string]map[int64]bool) {
	t.Helper()
	for _, kind := range sortedKeys(spec) {
		val := spec[kind]
		switch kind {
		case "scalars":
			var tags map[string][][]json.RawMessage
			if err := json.Unmarshal(val, &tags); err != nil {
				t.Fatalf("%s scalars: %v", run, err)
			}
			for _, tag := range sortedKeys(tags) {
				rows := tags[tag]
				got := map[int64]Point{}
				for _, p := range rv.Metrics[tag] {
					if _, dup := got[p.Step]; dup {
						t.Errorf("%s %s: step %d twice in the deduplicated view", run, tag, p.Step)
					}
					got[p.Step] = p
				}
				listed := map[int64]bool{}
				for _, row := range rows {
					step, want, wall := scalarRow(t, row)
					listed[step] = true
					p, ok := got[step]
					if !ok {
						t.Errorf("%s %s: step %d missing", run, tag, step)
						continue
					}
					checkPoint(t, run+" "+tag, p, step, want, wall)
				}
				for step := range got {
					if !listed[step] && !optional[tag][step] {
						t.Errorf("%s %s: step %d is not in the manifest", run, tag, step)
					}
				}
			}
		case "texts":
			var tags map[string][][]json.RawMessage
			if err := json.Unmarshal(val, &tags); err != nil {
				t.Fatalf("%s texts: %v", run, err)
			}
			for _, tag := range sortedKeys(tags) {
				rows := tags[tag]
				name := strings.TrimSuffix(tag, "/text_summary")
				var got []Data
				for _, d := range rv.Data {
					if d.Name == name && d.Type == "string-series" {
						got = append(got, d)
					}
				}
				if len(got) != len(rows) {
					t.Errorf("%s text %s: %d rows, manifest has %d", run, name, len(got), len(rows))
				}
				for i, row := range rows {
					var step int64
					var text string
					var wall float64
					json.Unmarshal(row[0], &step)
					json.Unmarshal(row[1], &text)
					json.Unmarshal(row[2], &wall)
					if i >= len(got) {
						break
					}
					d := got[i]
					if d.Step != step || d.Text != text || d.Time != ms(wall) {
						t.Errorf("%s text %s row %d: step %d %q time %d, want step %d %q time %d", run, name, i, d.Step, d.Text, d.Time, step, text, ms(wall))
					}
				}
			}
		case "histograms":
			var tags map[string][]struct {
				Max, Min, Num, Sum, Wall float64
				Step                     int64
			}
			if err := json.Unmarshal(val, &tags); err != nil {
				t.Fatalf("%s histograms: %v", run, err)
			}
			for _, tag := range sortedKeys(tags) {
				hs := tags[tag]
				var got []Data
				for _, d := range rv.Data {
					if d.Name == tag && d.Type == "HISTOGRAM" {
						got = append(got, d)
					}
				}
				if len(got) != len(hs) {
					t.Errorf("%s histogram %s: %d rows, manifest has %d", run, tag, len(got), len(hs))
				}
				for i, h := range hs {
					if i >= len(got) {
						break
					}
					checkHistogram(t, fmt.Sprintf("%s histogram %s #%d", run, tag, i), got[i], h.Step, ms(h.Wall), h.Min, h.Max, h.Num, h.Sum)
				}
			}
		case "images":
			var tags map[string][]struct {
				Height, Width int
				Step          int64
				Wall          float64
			}
			if err := json.Unmarshal(val, &tags); err != nil {
				t.Fatalf("%s images: %v", run, err)
			}
			for _, tag := range sortedKeys(tags) {
				ims := tags[tag]
				var got []File
				for _, f := range rv.Files {
					if f.Name == tag {
						got = append(got, f)
					}
				}
				if len(got) != len(ims) {
					t.Errorf("%s image %s: %d files, manifest has %d", run, tag, len(got), len(ims))
				}
				for i, im := range ims {
					if i >= len(got) {
						break
					}
					f := got[i]
					w, h, ok := pngSize(f.Bytes)
					if !ok || w != im.Width || h != im.Height || f.Step != im.Step || f.Time != ms(im.Wall) {
						t.Errorf("%s image %s #%d: png %v %dx%d step %d time %d, want %dx%d step %d time %d",
							run, tag, i, ok, w, h, f.Step, f.Time, im.Width, im.Height, im.Step, ms(im.Wall))
					}
				}
			}
		default:
			t.Errorf("%s: manifest kind %q is neither checked nor listed as not judged", run, kind)
		}
	}
}

func scalarRow(t testing.TB, row []json.RawMessage) (step int64, v, wall float64) {
	t.Helper()
	if len(row) != 3 {
		t.Fatalf("scalar row %s: want [step, value, wall]", row)
	}
	if err := json.Unmarshal(row[0], &step); err != nil {
		t.Fatalf("step %s: %v", row[0], err)
	}
	var s string
	if json.Unmarshal(row[1], &s) == nil {
		switch s {
		case "NaN":
			v = math.NaN()
		case "Infinity":
			v = math.Inf(1)
		case "-Infinity":
			v = math.Inf(-1)
		default:
			t.Fatalf("value %q", s)
		}
	} else if err := json.Unmarshal(row[1], &v); err != nil {
		t.Fatalf("value %s: %v", row[1], err)
	}
	if err := json.Unmarshal(row[2], &wall); err != nil {
		t.Fatalf("wall %s: %v", row[2], err)
	}
	return step, v, wall
}

// ms is a wall time in seconds as unix milliseconds.
func ms(wall float64) int64 { return int64(math.Round(wall * 1000)) }

func checkPoint(t testing.TB, what string, p Point, step int64, want, wall float64) {
	t.Helper()
	same := p.Value == want && math.Signbit(p.Value) == math.Signbit(want) || (math.IsNaN(p.Value) && math.IsNaN(want))
	if !same || p.Step != step || p.Time != ms(wall) {
		t.Errorf("%s: step %d value %v time %d, want step %d value %v time %d", what, p.Step, p.Value, p.Time, step, want, ms(wall))
	}
}

// checkHistogram holds a HISTOGRAM row to the sample's size, extent and
// sum: the counts add up to num, the edges enclose min and end at max, and
// the sum lies between what the buckets' left and right edges allow.
func checkHistogram(t testing.TB, what string, d Data, step, time int64, min, max, num, sum float64) {
	t.Helper()
	var h struct {
		Freq    []float64
		Bins    []float64
		Shape   string
		Type    string
		V       int
		MaxFreq float64
	}
	if err := json.Unmarshal([]byte(d.Text), &h); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if d.Step != step || d.Time != time {
		t.Errorf("%s: step %d time %d, want %d %d", what, d.Step, d.Time, step, time)
	}
	if h.Shape != "generic" || h.Type != "Histogram" || h.V != 1 || len(h.Bins) != len(h.Freq)+1 || len(h.Freq) == 0 {
		t.Errorf("%s: not a generic histogram: %s", what, d.Text)
		return
	}
	total, lo, hi, mf := 0.0, 0.0, 0.0, 0.0
	for i, f := range h.Freq {
		total += f
		lo += f * h.Bins[i]
		hi += f * h.Bins[i+1]
		mf = math.Max(mf, f)
		if h.Bins[i+1] < h.Bins[i] {
			t.Errorf("%s: edges not increasing at %d", what, i)
		}
	}
	if total != num {
		t.Errorf("%s: counts sum to %v, the sample has %v", what, total, num)
	}
	if h.MaxFreq != mf {
		t.Errorf("%s: maxFreq %v, want %v", what, h.MaxFreq, mf)
	}
	if !(h.Bins[0] <= min && min <= h.Bins[1]) || h.Bins[len(h.Bins)-1] != max {
		t.Errorf("%s: edges %v..%v (first bucket to %v) do not enclose min %v and end at max %v", what, h.Bins[0], h.Bins[len(h.Bins)-1], h.Bins[1], min, max)
	}
	if eps := 1e-9 * math.Max(1, math.Abs(sum)); sum < lo-eps || sum > hi+eps {
		t.Errorf("%s: sum %v outside what the buckets allow, %v..%v", what, sum, lo, hi)
	}
}

// pngSize reads the width and height from a PNG's IHDR chunk.
func pngSize(b []byte) (w, h int, ok bool) {
	if len(b) < 24 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || string(b[12:16]) != "IHDR" {
		return 0, 0, false
	}
	return int(binary.BigEndian.Uint32(b[16:20])), int(binary.BigEndian.Uint32(b[20:24])), true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
