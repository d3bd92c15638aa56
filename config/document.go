package config

import (
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// ReadDocument decodes a YAML or JSON file holding one mapping — a
// training run's sidecar config (hparams.yaml, args.json, opt.yaml) — into
// JSON-compatible values: string keys, timestamps as RFC 3339 text. An
// empty file is an empty mapping.
func ReadDocument(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := jsonCompatible(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decode %s: the document is not a mapping", path)
	}
	return m, nil
}

// jsonCompatible converts what yaml.v3 produces into JSON-encodable values.
func jsonCompatible(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = jsonCompatible(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = jsonCompatible(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = jsonCompatible(x)
		}
		return out
	case time.Time:
		return t.Format(time.RFC3339Nano)
	default:
		return v
	}
}
