package tensorboard

import (
	"os"
	"strings"
	"testing"
)

// TestExampleConfigParams keeps the tensorboard source in
// config.example.yaml true: its params are accepted, and every parameter a
// user sets is documented there (spool_dir is the agent's).
func TestExampleConfigParams(t *testing.T) {
	b, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	in, inParams := false, false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "  # - name:"):
			in = strings.Contains(line, "tensorboard")
			inParams = false
		case in && strings.HasPrefix(line, "  #   params:"):
			inParams = true
		case in && inParams && strings.HasPrefix(line, "  #     "):
			kv := strings.TrimSpace(strings.TrimPrefix(line, "  #"))
			if i := strings.Index(kv, " #"); i >= 0 {
				kv = kv[:i]
			}
			k, v, ok := strings.Cut(kv, ":")
			if !ok {
				t.Fatalf("params line %q", line)
			}
			params[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
		case in && inParams:
			inParams = false
		}
	}
	if err := CheckParams(params); err != nil {
		t.Errorf("config.example.yaml: %v", err)
	}
	for _, k := range knownParams {
		if _, ok := params[k]; !ok && k != ParamSpoolDir {
			t.Errorf("config.example.yaml does not document the tensorboard parameter %s", k)
		}
	}
}
