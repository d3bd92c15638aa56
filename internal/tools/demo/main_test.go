package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// agentBinary builds cmd/mlop-agent, or returns $MLOP_AGENT_BIN to test
// another build (as cmd/mlop-agent's end-to-end tests do).
func agentBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("MLOP_AGENT_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "mlop-agent")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/mlop-ai/mlop-agent/cmd/mlop-agent")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build mlop-agent: %v\n%s", err, out)
	}
	return bin
}

var runReady = regexp.MustCompile(`msg="run ready" run=(\S+) run_id=(\d+) .*url=(\S+)`)

func TestDemo(t *testing.T) {
	bin := agentBinary(t)
	dir := filepath.Join("..", "..", "..", "testdata", "demo")
	state := filepath.Join(t.TempDir(), "state")
	for pass := 1; pass <= 2; pass++ { // the second run replaces the first one's state
		var out bytes.Buffer
		if err := run(&out, bin, dir, state); err != nil {
			t.Fatalf("pass %d: run: %v\n%s", pass, err, out.String())
		}
		text := out.String()
		ready := runReady.FindAllStringSubmatch(text, -1)
		if len(ready) != 2 {
			t.Fatalf("pass %d: want 2 \"run ready\" log lines, got %d:\n%s", pass, len(ready), text)
		}
		for _, m := range ready {
			name, id, url := m[1], m[2], m[3]
			if !rowHas(text, name, id) {
				t.Errorf("pass %d: no table row for run %s with RUN ID %s (the log's run_id):\n%s", pass, name, id, text)
			}
			if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.Contains(url, "/_standin/app/o/test-org/projects/demo/") {
				t.Errorf("pass %d: run url %q does not point at the stand-in's run page", pass, url)
			}
		}
		for _, bad := range []string{"map[", ":3000"} {
			if strings.Contains(text, bad) {
				t.Errorf("pass %d: output contains %q:\n%s", pass, bad, text)
			}
		}
		for _, want := range []string{`config {"batch_size":128,"dataset":"cifar10","lr":0.01,"model":"resnet18"}`, "0 rejected", "status --state-dir " + state, "make stand-in"} {
			if !strings.Contains(text, want) {
				t.Errorf("pass %d: output lacks %q:\n%s", pass, want, text)
			}
		}
		if _, err := os.Stat(filepath.Join(state, "state.json")); err != nil {
			t.Errorf("pass %d: the agent's state was not kept: %v", pass, err)
		}
	}
}

// rowHas reports whether a table line starts with the run name followed by
// the run id.
func rowHas(text, name, id string) bool {
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == name && f[1] == id {
			return true
		}
	}
	return false
}

func TestDemoKeepsAForeignStateDir(t *testing.T) {
	state := t.TempDir()
	mine := filepath.Join(state, "mine.txt")
	if err := os.WriteFile(mine, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(&out, "/nonexistent/mlop-agent", filepath.Join("..", "..", "..", "testdata", "demo"), state)
	if err == nil || !strings.Contains(err.Error(), "not made by the demo") {
		t.Fatalf("run = %v, want a refusal to replace the directory", err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Fatalf("the demo touched a directory it did not make: %v", err)
	}
}
