package mlop

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
)

// jsonString is what encoding/json writes for s without HTML escaping: the
// reference appendString must match byte for byte.
func jsonString(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatalf("encode %q: %v", s, err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestAppendMetricLine(t *testing.T) {
	tests := []struct {
		name   string
		time   int64
		step   int64
		points []event.Point
		want   string
	}{
		{"observed shape", 1795637520632, 1,
			[]event.Point{{Name: "train/loss", Value: 0.5}, {Name: "train/acc", Value: 1}},
			`{"time":1795637520632,"step":1,"data":{"train/loss":0.5,"train/acc":1}}` + "\n"},
		{"non-finite as strings", 1795637520726, 2,
			[]event.Point{{Name: "train/loss", Value: math.NaN()}, {Name: "grad/norm", Value: math.Inf(1)}, {Name: "min", Value: math.Inf(-1)}},
			`{"time":1795637520726,"step":2,"data":{"train/loss":"NaN","grad/norm":"Infinity","min":"-Infinity"}}` + "\n"},
		{"number formats", 0, 0,
			[]event.Point{{Name: "a", Value: 1e6}, {Name: "b", Value: 207892480}, {Name: "c", Value: 1e21}, {Name: "d", Value: 1e-7}, {Name: "e", Value: math.Copysign(0, -1)}, {Name: "f", Value: 0.1}, {Name: "g", Value: 1.5e-6}, {Name: "h", Value: -123.456}},
			`{"time":0,"step":0,"data":{"a":1000000,"b":207892480,"c":1e+21,"d":1e-7,"e":-0,"f":0.1,"g":0.0000015,"h":-123.456}}` + "\n"},
		{"max values", math.MaxInt64, math.MaxInt64,
			[]event.Point{{Name: "x", Value: math.MaxFloat64}, {Name: "y", Value: math.SmallestNonzeroFloat64}},
			`{"time":9223372036854775807,"step":9223372036854775807,"data":{"x":1.7976931348623157e+308,"y":5e-324}}` + "\n"},
		{"escaped names", 1, 2,
			[]event.Point{{Name: `a"b\c`, Value: 1}, {Name: "line\nbreak\ttab", Value: 2}, {Name: "ctl\x01\x1f\b\f\r", Value: 3}, {Name: "ünï/日本/🎉", Value: 4}, {Name: "sep\u2028\u2029", Value: 5}, {Name: "bad\xffutf8\xc3", Value: 6}, {Name: "<html>&", Value: 7}},
			`{"time":1,"step":2,"data":{"a\"b\\c":1,"line\nbreak\ttab":2,"ctl\u0001\u001f\b\f\r":3,"ünï/日本/🎉":4,"sep\u2028\u2029":5,"bad\ufffdutf8\ufffd":6,"<html>&":7}}` + "\n"},
		{"no points", 5, 6, nil, `{"time":5,"step":6,"data":{}}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("previous\n")
			got := string(AppendMetricLine(prefix, tt.time, tt.step, tt.points))
			if want := "previous\n" + tt.want; got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if !json.Valid([]byte(tt.want)) {
				t.Errorf("want is not valid JSON: %s", tt.want)
			}
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		"", "plain", `"`, `\`, "\x00", "\x7f", "\u007f\u0080", "a\u2028b", "\u2029",
		"\xed\xa0\x80", // a UTF-16 surrogate encoded in UTF-8: invalid
		"\xf4\x90\x80\x80", "\xc0\xaf", "trunc\xe6\x97", "mixed \"q\" \\ \n é 😀 \xfe",
		strings.Repeat("long/metric/name_", 20),
	}
	for b := 0; b < 256; b++ {
		inputs = append(inputs, string([]byte{'x', byte(b), 'y'}))
	}
	for _, in := range inputs {
		got := string(appendString(nil, in))
		if want := jsonString(t, in); got != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	values := []float64{0, 1, -1, 0.5, 1e6, 1e20, 1e21, 1e-6, 1e-7, 9.999999e-7, 123456789012345678,
		math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, math.Pi, 1.0 / 3, 2e-308}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		values = append(values, math.Float64frombits(r.Uint64()))
		// Integral values take a fast path; cover its range and edges.
		values = append(values, float64(r.Int64N(1<<54)-1<<53), math.Trunc(r.NormFloat64()*1e6))
	}
	for _, v := range []float64{1 << 53, 1<<53 - 1, -(1 << 53), 1<<53 + 2, 1e15, 1e16, 9007199254740993} {
		values = append(values, v, -v)
	}
	for _, v := range values {
		got := string(appendFloat(nil, v))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if got != `"NaN"` && got != `"Infinity"` && got != `"-Infinity"` {
				t.Errorf("appendFloat(%v) = %s", v, got)
			}
			continue
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("appendFloat(%v) = %s, want %s", v, got, want)
		}
	}
}

func TestAppendDataLine(t *testing.T) {
	hist := `{"freq":[1,2,3],"maxFreq":3,"bins":{"min":0,"max":3,"num":3},"shape":"uniform","type":"Histogram","v":1}`
	got := string(AppendDataLine(nil, 1795637520911, 3, event.DataHistogram, "hist", hist))
	want := `{"time":1795637520911,"step":3,"dataType":"HISTOGRAM","logName":"hist","data":"{\"freq\":[1,2,3],\"maxFreq\":3,\"bins\":{\"min\":0,\"max\":3,\"num\":3},\"shape\":\"uniform\",\"type\":\"Histogram\",\"v\":1}"}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// The server model: time u64, data String, step u64, dataType, logName; no other field.
	var line struct {
		Time     uint64 `json:"time"`
		Step     uint64 `json:"step"`
		DataType string `json:"dataType"`
		LogName  string `json:"logName"`
		Data     string `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(got))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&line); err != nil {
		t.Fatal(err)
	}
	if line.Data != hist || line.Time != 1795637520911 || line.Step != 3 || line.DataType != "HISTOGRAM" || line.LogName != "hist" {
		t.Errorf("decoded %+v", line)
	}
}

func TestAppendLogLine(t *testing.T) {
	got := string(AppendLogLine(nil, 1795637570270, "epoch 1: loss=\"0.5\"\tok", 1, "INFO"))
	want := `{"time":1795637570270,"message":"epoch 1: loss=\"0.5\"\tok","lineNumber":1,"logType":"INFO"}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var line struct {
		Time       uint64 `json:"time"`
		Message    string `json:"message"`
		LineNumber uint64 `json:"lineNumber"`
		LogType    string `json:"logType"`
	}
	dec := json.NewDecoder(strings.NewReader(got))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&line); err != nil {
		t.Fatal(err)
	}
	if line.Message != "epoch 1: loss=\"0.5\"\tok" || line.LineNumber != 1 || line.LogType != "INFO" {
		t.Errorf("decoded %+v", line)
	}
}

// Validation and encoding must not allocate once dst has room: they run per
// event.
func TestAppendLinesDoNotAllocate(t *testing.T) {
	points := benchPoints()
	dst := make([]byte, 0, 64<<10)
	ev := &event.Event{Kind: event.KindMetrics, Time: 1795637520632, Step: 12345, Points: points}
	allocs := testing.AllocsPerRun(100, func() {
		if err := ValidateMetric(ev); err != nil {
			t.Fatal(err)
		}
		dst = AppendMetricLine(dst[:0], 1795637520632, 12345, points)
		dst = AppendDataLine(dst, 1795637520632, 12345, "string-series", "phase", "warm\"up\n")
		dst = AppendLogLine(dst, 1795637520632, "a log line with ünïcode and \t tabs", 7, "INFO")
	})
	if allocs != 0 {
		t.Errorf("allocations per run = %v, want 0", allocs)
	}
}

func benchPoints() []event.Point {
	return []event.Point{
		{Name: "train/loss", Value: 0.123456789}, {Name: "train/acc", Value: 0.987}, {Name: "train/lr", Value: 3e-4},
		{Name: "grad/norm", Value: 12.5}, {Name: "sys/memory.used", Value: 207892480}, {Name: "val/loss", Value: math.NaN()},
		{Name: "epoch", Value: 3}, {Name: "throughput/samples_per_sec", Value: 1532.25}, {Name: "weird \"name\"", Value: 1}, {Name: "loss/ünï", Value: -0.5},
	}
}

// BenchmarkAppendMetricLine measures one 10-point line; with a reused buffer
// it must report 0 allocs/op.
func BenchmarkAppendMetricLine(b *testing.B) {
	points := benchPoints()
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		dst = AppendMetricLine(dst[:0], 1795637520632, int64(n), points)
		n++
	}
	b.SetBytes(int64(len(dst)))
	b.ReportMetric(float64(len(points)), "points/op")
}

func BenchmarkAppendDataLine(b *testing.B) {
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendDataLine(dst[:0], 1795637520632, 42, "string-series", "phase", "warmup and some text")
	}
}

func BenchmarkAppendLogLine(b *testing.B) {
	dst := make([]byte, 0, 4096)
	msg := "Epoch 3/10 - loss: 0.1234 - acc: 0.9876 - val_loss: 0.2345 - 12ms/step"
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendLogLine(dst[:0], 1795637520632, msg, 42, "INFO")
	}
}

// FuzzAppendMetricLine decodes the encoder's output with encoding/json and
// compares it with the input: the line must be one valid JSON object with
// exactly time, step and data; names must read back as encoding/json reads
// back its own encoding of them (invalid UTF-8 becomes U+FFFD), and values
// must round-trip bit for bit (non-finite ones as their strings).
func FuzzAppendMetricLine(f *testing.F) {
	f.Add(int64(1795637520632), int64(1), "train/loss", 0.5, "train/acc", 1.0)
	f.Add(int64(0), int64(0), "a\"b\\c\n", math.NaN(), "é\xff", math.Inf(-1))
	f.Add(int64(math.MaxInt64), int64(7), "\u2028", 1e21, "\x00", math.Copysign(0, -1))
	f.Fuzz(func(t *testing.T, timeMS, step int64, name1 string, v1 float64, name2 string, v2 float64) {
		if timeMS < 0 || step < 0 {
			return // ValidateMetric refuses these before encoding
		}
		points := []event.Point{{Name: name1, Value: v1}, {Name: name2, Value: v2}}
		line := AppendMetricLine(nil, timeMS, step, points)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("line has an inner or no trailing newline: %q", line)
		}
		if !json.Valid(line) {
			t.Fatalf("invalid JSON: %q", line)
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		dec.DisallowUnknownFields()
		var top struct {
			Time uint64          `json:"time"`
			Step uint64          `json:"step"`
			Data json.RawMessage `json:"data"`
		}
		if err := dec.Decode(&top); err != nil {
			t.Fatalf("decode %q: %v", line, err)
		}
		if top.Time != uint64(timeMS) || top.Step != uint64(step) {
			t.Fatalf("time/step = %d/%d, want %d/%d", top.Time, top.Step, timeMS, step)
		}
		// Walk the data object in order; a map would merge equal names.
		td := json.NewDecoder(bytes.NewReader(top.Data))
		if tok, err := td.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("data does not start with {: %v %v", tok, err)
		}
		for i, p := range points {
			tok, err := td.Token()
			if err != nil {
				t.Fatalf("point %d name: %v", i, err)
			}
			var wantName string
			if err := json.Unmarshal([]byte(jsonString(t, p.Name)), &wantName); err != nil {
				t.Fatal(err)
			}
			if tok != wantName {
				t.Fatalf("point %d name = %q, want %q", i, tok, wantName)
			}
			tok, err = td.Token()
			if err != nil {
				t.Fatalf("point %d value: %v", i, err)
			}
			switch {
			case math.IsNaN(p.Value):
				if tok != "NaN" {
					t.Fatalf("NaN encoded as %v", tok)
				}
			case math.IsInf(p.Value, 1):
				if tok != "Infinity" {
					t.Fatalf("+Inf encoded as %v", tok)
				}
			case math.IsInf(p.Value, -1):
				if tok != "-Infinity" {
					t.Fatalf("-Inf encoded as %v", tok)
				}
			default:
				got, ok := tok.(float64)
				if !ok || math.Float64bits(got) != math.Float64bits(p.Value) {
					t.Fatalf("value %v decoded as %v (%T)", p.Value, tok, tok)
				}
			}
		}
		if tok, err := td.Token(); err != nil || tok != json.Delim('}') {
			t.Fatalf("data does not end with }: %v %v", tok, err)
		}
		for _, p := range points {
			if got, want := string(appendString(nil, p.Name)), jsonString(t, p.Name); got != want {
				t.Fatalf("appendString(%q) = %s, encoding/json = %s", p.Name, got, want)
			}
		}
	})
}

// FuzzAppendLogLine checks the log line the same way for any message.
func FuzzAppendLogLine(f *testing.F) {
	f.Add(int64(1), "hello", int64(2), "INFO")
	f.Add(int64(0), "\x1b[31mred\x1b[0m \xff", int64(0), "ERROR")
	f.Fuzz(func(t *testing.T, timeMS int64, message string, lineNumber int64, logType string) {
		if timeMS < 0 || lineNumber < 0 {
			return
		}
		line := AppendLogLine(nil, timeMS, message, lineNumber, logType)
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var got struct {
			Time       uint64 `json:"time"`
			Message    string `json:"message"`
			LineNumber uint64 `json:"lineNumber"`
			LogType    string `json:"logType"`
		}
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("decode %q: %v", line, err)
		}
		var wantMsg, wantType string
		_ = json.Unmarshal([]byte(jsonString(t, message)), &wantMsg)
		_ = json.Unmarshal([]byte(jsonString(t, logType)), &wantType)
		if got.Time != uint64(timeMS) || got.Message != wantMsg || got.LineNumber != uint64(lineNumber) || got.LogType != wantType {
			t.Fatalf("decoded %+v from %q", got, line)
		}
	})
}

func TestValidate(t *testing.T) {
	ok := []event.Point{{Name: "loss", Value: 1}}
	tests := []struct {
		name    string
		fn      func(*event.Event) error
		ev      *event.Event
		wantErr bool
	}{
		{"metric ok", ValidateMetric, &event.Event{Kind: event.KindMetrics, Time: 1, Step: 0, Points: ok}, false},
		{"metric nan ok", ValidateMetric, &event.Event{Kind: event.KindMetrics, Points: []event.Point{{Name: "x", Value: math.NaN()}}}, false},
		{"metric nil", ValidateMetric, nil, true},
		{"metric wrong kind", ValidateMetric, &event.Event{Kind: event.KindLog, Points: ok}, true},
		{"metric negative time", ValidateMetric, &event.Event{Kind: event.KindMetrics, Time: -1, Points: ok}, true},
		{"metric negative step", ValidateMetric, &event.Event{Kind: event.KindMetrics, Step: -1, Points: ok}, true},
		{"metric no points", ValidateMetric, &event.Event{Kind: event.KindMetrics}, true},
		{"metric empty name", ValidateMetric, &event.Event{Kind: event.KindMetrics, Points: []event.Point{{Name: "a", Value: 1}, {Name: "", Value: 2}}}, true},
		{"metric blank name", ValidateMetric, &event.Event{Kind: event.KindMetrics, Points: []event.Point{{Name: " \t\u00a0\u3000", Value: 2}}}, true},
		{"data ok", ValidateData, &event.Event{Kind: event.KindData, Name: "phase", Type: event.DataStringSeries, Text: ""}, false},
		{"data blank type", ValidateData, &event.Event{Kind: event.KindData, Name: "phase", Type: " "}, true},
		{"data blank name", ValidateData, &event.Event{Kind: event.KindData, Name: "\n", Type: "HISTOGRAM"}, true},
		{"data negative step", ValidateData, &event.Event{Kind: event.KindData, Name: "a", Type: "HISTOGRAM", Step: -3}, true},
		{"data negative time", ValidateData, &event.Event{Kind: event.KindData, Name: "a", Type: "HISTOGRAM", Time: -3}, true},
		{"data wrong kind", ValidateData, &event.Event{Kind: event.KindMetrics, Name: "a", Type: "HISTOGRAM"}, true},
		{"log ok, empty message", ValidateLog, &event.Event{Kind: event.KindLog, Type: "INFO"}, false},
		{"log blank type", ValidateLog, &event.Event{Kind: event.KindLog, Type: ""}, true},
		{"log negative line", ValidateLog, &event.Event{Kind: event.KindLog, Type: "INFO", Step: -1}, true},
		{"log negative time", ValidateLog, &event.Event{Kind: event.KindLog, Type: "INFO", Time: -1}, true},
		{"log nil", ValidateLog, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fn(tt.ev)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, sink.ErrInvalid) {
				t.Errorf("err %v does not match sink.ErrInvalid", err)
			}
		})
	}
}

func TestHistogramJSON(t *testing.T) {
	tests := []struct {
		name    string
		edges   []float64
		counts  []float64
		want    string
		wantErr bool
	}{
		{"uniform", []float64{0, 1, 2, 3}, []float64{1, 2, 3},
			`{"freq":[1,2,3],"maxFreq":3,"bins":{"min":0,"max":3,"num":3},"shape":"uniform","type":"Histogram","v":1}`, false},
		{"uniform with float error", []float64{0, 0.1, 0.2, 0.30000000000000004}, []float64{5, 0, 2},
			`{"freq":[5,0,2],"maxFreq":5,"bins":{"min":0,"max":0.30000000000000004,"num":3},"shape":"uniform","type":"Histogram","v":1}`, false},
		{"generic", []float64{0, 1, 10, 100}, []float64{4, 2.5, 1},
			`{"freq":[4,2.5,1],"maxFreq":4,"bins":[0,1,10,100],"shape":"generic","type":"Histogram","v":1}`, false},
		{"single bin", []float64{-1, 1}, []float64{7},
			`{"freq":[7],"maxFreq":7,"bins":{"min":-1,"max":1,"num":1},"shape":"uniform","type":"Histogram","v":1}`, false},
		{"no bins", []float64{0}, nil, "", true},
		{"edge count mismatch", []float64{0, 1}, []float64{1, 2}, "", true},
		{"decreasing edges", []float64{0, 2, 1}, []float64{1, 2}, "", true},
		{"equal edges", []float64{0, 0, 1}, []float64{1, 2}, "", true},
		{"nan edge", []float64{0, math.NaN()}, []float64{1}, "", true},
		{"inf edge", []float64{math.Inf(-1), 0}, []float64{1}, "", true},
		{"negative count", []float64{0, 1}, []float64{-1}, "", true},
		{"nan count", []float64{0, 1}, []float64{math.NaN()}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HistogramJSON(tt.edges, tt.counts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, sink.ErrInvalid) {
					t.Errorf("err %v does not match sink.ErrInvalid", err)
				}
				return
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(got), &v); err != nil {
				t.Errorf("not JSON: %v", err)
			}
		})
	}
}
