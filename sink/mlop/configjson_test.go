package mlop

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestConfigJSON(t *testing.T) {
	nan := math.NaN()
	type point struct {
		X float64 `json:"x"`
	}
	tests := []struct {
		name    string
		in      map[string]any
		want    string
		wantErr bool
	}{
		{"scalars, sorted keys", map[string]any{"lr": 0.001, "epochs": 10, "name": "resnet", "ok": true, "none": nil, "big": int64(1) << 60},
			`{"big":1152921504606846976,"epochs":10,"lr":0.001,"name":"resnet","none":null,"ok":true}`, false},
		{"nested kept nested, flat kept flat", map[string]any{"model": map[string]any{"depth": 4}, "parameters/lr": 0.1},
			`{"model":{"depth":4},"parameters/lr":0.1}`, false},
		{"non-finite everywhere", map[string]any{
			"a": nan, "b": math.Inf(1), "c": float32(math.Inf(-1)),
			"list":   []any{1.5, nan, "x"},
			"floats": []float64{1, math.Inf(1)},
			"arr":    [2]float64{nan, 2},
			"m":      map[string]float64{"q": nan},
			"p":      &nan,
			"deep":   map[string]any{"x": []any{map[string]any{"y": math.Inf(-1)}}},
		}, `{"a":"NaN","arr":["NaN",2],"b":"Infinity","c":"-Infinity","deep":{"x":[{"y":"-Infinity"}]},"floats":[1,"Infinity"],"list":[1.5,"NaN","x"],"m":{"q":"NaN"},"p":"NaN"}`, false},
		{"no HTML escaping", map[string]any{"q": "<a & b>"}, `{"q":"<a & b>"}`, false},
		{"marshalers and structs untouched", map[string]any{"when": time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "pt": point{1.5}, "bytes": []byte("hi"), "ints": []int{1, 2}},
			`{"bytes":"aGk=","ints":[1,2],"pt":{"x":1.5},"when":"2024-01-02T03:04:05Z"}`, false},
		{"nil containers", map[string]any{"s": []float64(nil), "m": map[string]any(nil)}, `{"m":null,"s":null}`, false},
		{"NaN inside a struct fails", map[string]any{"pt": point{nan}}, "", true},
		{"channel fails", map[string]any{"c": make(chan int)}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := configJSON(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(got), &obj); err != nil {
				t.Errorf("not a JSON object: %v", err)
			}
		})
	}
}
