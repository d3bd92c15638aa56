package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestReadDocument(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          map[string]any
		wantErr       bool
	}{
		{"yaml", "lr: 0.1\nmodel:\n  depth: 4\n  act: relu\nflags: [a, b]\nnone: null\n1: one\n",
			map[string]any{"lr": 0.1, "model": map[string]any{"depth": 4, "act": "relu"}, "flags": []any{"a", "b"}, "none": nil, "1": "one"}, false},
		{"json", `{"lr": 0.001, "nested": {"x": [1, 2]}}`, map[string]any{"lr": 0.001, "nested": map[string]any{"x": []any{1, 2}}}, false},
		{"empty mapping", "{}", map[string]any{}, false},
		{"empty file", "", map[string]any{}, false},
		{"time", "when: 2024-01-02T03:04:05Z\n", map[string]any{"when": "2024-01-02T03:04:05Z"}, false},
		{"list", "- a\n- b\n", nil, true},
		{"garbage", "a: [\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".yaml")
			os.WriteFile(p, []byte(tc.content), 0o644)
			got, err := ReadDocument(p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}
