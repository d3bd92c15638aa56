package verify

import (
	"math"
	"testing"
)

func TestParseMetricLine(t *testing.T) {
	tests := []struct {
		line   string
		err    bool
		time   uint64
		step   uint64
		values map[string]float64 // NaN as math.NaN()
	}{
		{line: `{"time":1,"step":2,"data":{"a":1.5,"b/c":-0.25}}`, time: 1, step: 2, values: map[string]float64{"a": 1.5, "b/c": -0.25}},
		{line: ` { "data" : { "x" : "NaN" , "y":"Infinity","z":"-Infinity"} , "step" : 3 , "time" : 4 } `, time: 4, step: 3,
			values: map[string]float64{"x": math.NaN(), "y": math.Inf(1), "z": math.Inf(-1)}},
		{line: `{"time":1,"step":2,"data":{"x":NaN,"y":Infinity,"z":-Infinity}}`, time: 1, step: 2,
			values: map[string]float64{"x": math.NaN(), "y": math.Inf(1), "z": math.Inf(-1)}},
		{line: `{"time":1,"step":2,"data":{"x":null,"y":1e300}}`, time: 1, step: 2, values: map[string]float64{"y": 1e300}},
		{line: `{"time":1,"step":2,"data":{"a\u002fb":1,"q\"":2}}`, time: 1, step: 2, values: map[string]float64{"a/b": 1, `q"`: 2}},
		{line: `{"time":18446744073709551615,"step":0,"data":{"a":0}}`, time: math.MaxUint64, step: 0, values: map[string]float64{"a": 0}},
		{line: `{"time":1,"step":2,"data":{}}`, err: true},
		{line: `{"time":1,"step":2}`, err: true},
		{line: `{"time":1,"data":{"a":1}}`, err: true},
		{line: `{"time":1,"step":-2,"data":{"a":1}}`, err: true},
		{line: `{"time":1,"step":2.5,"data":{"a":1}}`, err: true},
		{line: `{"time":1,"step":2,"data":{"a":true}}`, err: true},
		{line: `{"time":1,"step":2,"data":{"a":"x"}}`, err: true},
		{line: `{"time":1,"step":2,"data":{"a":{"b":1}}}`, err: true},
		{line: `{"time":1,"step":2,"data":{" ":1}}`, err: true},
		{line: `{"time":1,"step":2,"data":{"a":1},"extra":1}`, err: true},
		{line: `{"time":1,"step":2,"data":{"a":1}} x`, err: true},
		{line: `{"time":1,"time":1,"step":2,"data":{"a":1}}`, err: true},
		{line: `[1]`, err: true},
	}
	var ml metricLine
	for _, tc := range tests {
		err := parseMetricLine([]byte(tc.line), &ml)
		if tc.err {
			if err == nil {
				t.Errorf("%s: no error", tc.line)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		if ml.time != tc.time || ml.step != tc.step || len(ml.values) != len(tc.values) {
			t.Errorf("%s: got %d %d %d values", tc.line, ml.time, ml.step, len(ml.values))
			continue
		}
		for _, v := range ml.values {
			want, ok := tc.values[string(v.name)]
			if !ok || !samePoint(want, math.Float64frombits(v.bits)) || math.Signbit(want) != math.Signbit(math.Float64frombits(v.bits)) {
				t.Errorf("%s: %s = %v", tc.line, v.name, math.Float64frombits(v.bits))
			}
		}
	}
}

func FuzzParseMetricLine(f *testing.F) {
	f.Add([]byte(`{"time":1,"step":2,"data":{"a":1.5,"b":"NaN"}}`))
	f.Add([]byte(`{"data":{"\u00e9":null},"step":0,"time":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ml metricLine
		_ = parseMetricLine(b, &ml) // must not panic
	})
}
