package mlopfake

import (
	"math"
	"strings"
	"testing"
)

type namedValue struct {
	name  string
	value float64
}

func parseMetric(line string) (time, step uint64, pts []namedValue, err *lineError) {
	var p metricParser
	if err := p.parseLine([]byte(line), false); err != nil {
		return 0, 0, nil, err
	}
	for _, pt := range p.pts {
		pts = append(pts, namedValue{string(p.name(pt)), pt.value})
	}
	return p.time, p.step, pts, nil
}

func sameValue(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

func TestMetricLineRules(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name    string
		line    string
		want    []namedValue // nil with wantErr
		wantErr string       // substring of the error; "" = accepted
	}{
		{"plain line", `{"time": 1795637520632, "step": 1, "data": {"train/loss": 0.5, "train/acc": 1}}`, []namedValue{{"train/loss", 0.5}, {"train/acc", 1}}, ""},
		{"keys in any order", `{"data":{"a":2},"step":3,"time":4}`, []namedValue{{"a", 2}}, ""},
		{"fractional step", `{"time":1,"step":2.5,"data":{"a":1}}`, nil, "floating point `2.5`, expected u64"},
		{"integral float step", `{"time":1,"step":2.0,"data":{"a":1}}`, nil, "floating point `2.0`, expected u64"},
		{"exponent step", `{"time":1,"step":1e2,"data":{"a":1}}`, nil, "floating point `1e2`, expected u64"},
		{"negative step", `{"time":1,"step":-1,"data":{"a":1}}`, nil, "invalid value: integer `-1`, expected u64"},
		{"negative zero time", `{"time":-0,"step":1,"data":{"a":1}}`, nil, "expected u64"},
		{"string step", `{"time":1,"step":"2","data":{"a":1}}`, nil, `invalid type: string "2", expected u64`},
		{"float time", `{"time":1.5,"step":2,"data":{"a":1}}`, nil, "expected u64"},
		{"null time", `{"time":null,"step":2,"data":{"a":1}}`, nil, "invalid type: null, expected u64"},
		{"step beyond u64", `{"time":1,"step":18446744073709551616,"data":{"a":1}}`, nil, "out of range"},
		{"step at u64 max", `{"time":1,"step":18446744073709551615,"data":{"a":1}}`, []namedValue{{"a", 1}}, ""},
		{"missing time", `{"step":1,"data":{"a":1}}`, nil, "missing field `time`"},
		{"missing step", `{"time":1,"data":{"a":1}}`, nil, "missing field `step`"},
		{"missing data", `{"time":1,"step":1}`, nil, "missing field `data`"},
		{"unknown field", `{"time":1,"step":1,"data":{"a":1},"timestamp":5}`, nil, "unknown field `timestamp`"},
		{"duplicate field", `{"time":1,"step":1,"step":2,"data":{"a":1}}`, nil, "duplicate field `step`"},
		{"empty data", `{"time":1,"step":1,"data":{}}`, nil, "'data' field cannot be empty"},
		{"data of nulls only", `{"time":1,"step":1,"data":{"a":null}}`, nil, "'data' field cannot be empty"},
		{"data null", `{"time":1,"step":1,"data":null}`, nil, "invalid type: null, expected a map"},
		{"data array", `{"time":1,"step":1,"data":[1]}`, nil, "invalid type: sequence, expected a map"},
		{"empty metric name", `{"time":1,"step":1,"data":{"":1}}`, nil, "metric name cannot be empty"},
		{"blank metric name", `{"time":1,"step":1,"data":{"  \t":1}}`, nil, "metric name cannot be empty"},
		{"NBSP metric name (Rust trim)", `{"time":1,"step":1,"data":{"\u00a0":1}}`, nil, "metric name cannot be empty"},
		{"null value skipped", `{"time":1,"step":1,"data":{"a":null,"b":2}}`, []namedValue{{"b", 2}}, ""},
		{"string NaN", `{"time":1,"step":1,"data":{"a":"NaN"}}`, []namedValue{{"a", nan}}, ""},
		{"string Infinity", `{"time":1,"step":1,"data":{"a":"Infinity","b":"-Infinity"}}`, []namedValue{{"a", inf}, {"b", -inf}}, ""},
		{"bare NaN/Infinity (Python json.dumps)", `{"time":1,"step":2,"data":{"train/loss":NaN,"grad/norm":Infinity,"m":-Infinity}}`, []namedValue{{"train/loss", nan}, {"grad/norm", inf}, {"m", -inf}}, ""},
		{"bare -NaN", `{"time":1,"step":1,"data":{"a":-NaN}}`, nil, "Failed to parse JSON line"},
		{"bare nan lowercase", `{"time":1,"step":1,"data":{"a":nan}}`, nil, "Failed to parse JSON line"},
		{"boolean value", `{"time":1,"step":1,"data":{"flag":true}}`, nil, "invalid type: boolean `true`"},
		{"other string value", `{"time":1,"step":1,"data":{"a":"0.5"}}`, nil, "unexpected string metric value: '0.5'"},
		{"object value", `{"time":1,"step":1,"data":{"a":{"b":1}}}`, nil, "invalid type: map"},
		{"array value", `{"time":1,"step":1,"data":{"a":[1]}}`, nil, "invalid type: sequence"},
		{"duplicate metric keeps last", `{"time":1,"step":1,"data":{"a":1,"b":5,"a":3}}`, []namedValue{{"a", 3}, {"b", 5}}, ""},
		{"null after value keeps value", `{"time":1,"step":1,"data":{"a":1,"a":null}}`, []namedValue{{"a", 1}}, ""},
		{"escaped name", `{"time":1,"step":1,"data":{"\u0074rain\/loss":1}}`, []namedValue{{"train/loss", 1}}, ""},
		{"NaN inside a name is not sanitized", `{"time":1,"step":1,"data":{"NaN-metric":NaN}}`, []namedValue{{"NaN-metric", nan}}, ""},
		{"exponent value", `{"time":1,"step":1,"data":{"a":1e3,"b":-2.5E-1}}`, []namedValue{{"a", 1000}, {"b", -0.25}}, ""},
		{"long decimal value", `{"time":1,"step":1,"data":{"a":0.30000000000000004}}`, []namedValue{{"a", 0.30000000000000004}}, ""},
		{"value out of f64 range", `{"time":1,"step":1,"data":{"a":1e400}}`, nil, "out of range"},
		{"leading zero", `{"time":01,"step":1,"data":{"a":1}}`, nil, "Failed to parse JSON line"},
		{"trailing characters", `{"time":1,"step":1,"data":{"a":1}} x`, nil, "trailing characters"},
		{"two objects on a line", `{"time":1,"step":1,"data":{"a":1}}{"time":2,"step":2,"data":{"a":1}}`, nil, "trailing characters"},
		{"top-level array", `[{"time":1,"step":1,"data":{"a":1}}]`, nil, "expected '{'"},
		{"lone surrogate in name", `{"time":1,"step":1,"data":{"\ud800":1}}`, nil, "surrogate"},
		{"raw control character in name", "{\"time\":1,\"step\":1,\"data\":{\"a\x01\":1}}", nil, "control character"},
		{"invalid UTF-8", "{\"time\":1,\"step\":1,\"data\":{\"\xff\":1}}", nil, "invalid UTF-8"},
		{"truncated line", `{"time":1,"step":1,"data":{"a":1}`, nil, "Failed to parse JSON line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, got, err := parseMetric(tc.line)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("accepted %s, want error containing %q", tc.line, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q, want it to contain %q", err.Error(), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].name != tc.want[i].name || !sameValue(got[i].value, tc.want[i].value) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestMetricLineErrorCodes(t *testing.T) {
	tests := []struct {
		line     string
		wantCode string
	}{
		{`{"time":1,"step":1.5,"data":{"a":1}}`, "StreamDecodingError (3004 - Processing Error): Failed to parse JSON line (bytes): '{\"time\":1,\"step\":1.5"},
		{`{"time":1,"step":1,"data":{}}`, "InvalidMetricFormat (2005 - Validation Error): 'data' field cannot be empty"},
	}
	for _, tc := range tests {
		_, _, _, err := parseMetric(tc.line)
		if err == nil || !strings.HasPrefix(err.Error(), tc.wantCode) {
			t.Errorf("parse %s: got %v, want prefix %q", tc.line, err, tc.wantCode)
		}
	}
	var p metricParser
	if err := p.parseLine([]byte(`{"time":1}`), true); err == nil || !strings.Contains(err.Error(), "Failed to parse final JSON line") {
		t.Errorf("final line error = %v, want the 'final' wording", err)
	}
}

func TestMetricLineFields(t *testing.T) {
	tm, step, _, err := parseMetric(`{"time":1795637520632,"step":18446744073709551615,"data":{"a":1}}`)
	if err != nil {
		t.Fatal(err)
	}
	if tm != 1795637520632 || step != math.MaxUint64 {
		t.Fatalf("time, step = %d, %d", tm, step)
	}
}

func TestDataLineRules(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		wantErr string
	}{
		{"string series", `{"time": 1795637520726, "data": "warmup", "dataType": "string-series", "logName": "phase", "step": 2}`, ""},
		{"histogram", `{"time":1,"data":"{\"freq\":[1,2]}","dataType":"HISTOGRAM","logName":"hist","step":3}`, ""},
		{"data is a number", `{"time":1,"data":5,"dataType":"t","logName":"l","step":1}`, "invalid type: integer `5`, expected a string"},
		{"data is an object", `{"time":1,"data":{"a":1},"dataType":"t","logName":"l","step":1}`, "expected a string"},
		{"bare NaN data becomes the string NaN", `{"time":1,"data":NaN,"dataType":"t","logName":"l","step":1}`, ""},
		{"blank dataType", `{"time":1,"data":"x","dataType":"  ","logName":"l","step":1}`, "'dataType' field cannot be empty"},
		{"blank logName", `{"time":1,"data":"x","dataType":"t","logName":"","step":1}`, "'logName' field cannot be empty"},
		{"unknown field", `{"time":1,"data":"x","dataType":"t","logName":"l","step":1,"extra":true}`, "unknown field `extra`"},
		{"missing step", `{"time":1,"data":"x","dataType":"t","logName":"l"}`, "missing field `step`"},
		{"float time", `{"time":1.0,"data":"x","dataType":"t","logName":"l","step":1}`, "expected u64"},
	}
	s := &Server{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &stream{}
			_, err := s.storeLine(st, kindData, nil, []byte(tc.line), false)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if len(st.data) != 1 {
					t.Fatalf("stored %d rows, want 1", len(st.data))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
			if len(st.data) != 0 {
				t.Fatalf("stored a rejected line")
			}
		})
	}
}

func TestLogLineRules(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		wantErr string
	}{
		{"stdout line", `{"time": 1795637570270, "message": "epoch 1", "lineNumber": 1, "logType": "INFO"}`, ""},
		{"empty message allowed", `{"time":1,"message":"","lineNumber":2,"logType":"ERROR"}`, ""},
		{"blank logType", `{"time":1,"message":"x","lineNumber":2,"logType":" "}`, "'logType' field cannot be empty"},
		{"negative lineNumber", `{"time":1,"message":"x","lineNumber":-2,"logType":"INFO"}`, "expected u64"},
		{"message null", `{"time":1,"message":null,"lineNumber":2,"logType":"INFO"}`, "invalid type: null, expected a string"},
		{"unknown field", `{"time":1,"message":"x","lineNumber":2,"logType":"INFO","level":"x"}`, "unknown field `level`"},
		{"duplicate field", `{"time":1,"message":"x","message":"y","lineNumber":2,"logType":"INFO"}`, "duplicate field `message`"},
	}
	s := &Server{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &stream{}
			_, err := s.storeLine(st, kindLogs, nil, []byte(tc.line), false)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if len(st.logs) != 1 {
					t.Fatalf("stored %d rows, want 1", len(st.logs))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestSanitizeNonFinite ports the Rust tests of sanitize_json_non_finite_floats.
func TestSanitizeNonFinite(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"data": {"loss": NaN, "acc": 0.95}}`, `{"data": {"loss": "NaN", "acc": 0.95}}`},
		{`{"data": {"grad_norm": Infinity}}`, `{"data": {"grad_norm": "Infinity"}}`},
		{`{"data": {"min_val": -Infinity}}`, `{"data": {"min_val": "-Infinity"}}`},
		{`{"name": "NaN-metric", "desc": "Infinity is bad", "data": {"x": NaN}}`, `{"name": "NaN-metric", "desc": "Infinity is bad", "data": {"x": "NaN"}}`},
		{`{"name": "has \"NaN\" inside", "data": {"x": NaN}}`, `{"name": "has \"NaN\" inside", "data": {"x": "NaN"}}`},
		{`{"time": 123, "step": 1, "data": {"loss": 0.5}}`, `{"time": 123, "step": 1, "data": {"loss": 0.5}}`},
	}
	for _, tc := range tests {
		got, changed := sanitizeNonFinite(nil, []byte(tc.in))
		if string(got) != tc.want {
			t.Errorf("sanitize(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if changed != (tc.in != tc.want) {
			t.Errorf("sanitize(%s) changed = %v", tc.in, changed)
		}
	}
}

func TestTrimLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  {\"a\":1}\r\n", `{"a":1}`},
		{"\t{}\t \n", "{}"},
		{" \r\n", ""},
		{"\r{}", "\r{}"}, // only spaces and tabs are trimmed at the start
		{"", ""},
	}
	for _, tc := range tests {
		if got := string(trimLine([]byte(tc.in))); got != tc.want {
			t.Errorf("trimLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
