package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// The generated configuration must load with the agent's own loader,
// without warnings, and say exactly what the scenario asked for.
func TestAgentConfigLoads(t *testing.T) {
	dir := t.TempDir()
	// A directory name with characters YAML and ${VAR} expansion care about.
	data := filepath.Join(dir, `odd "dir" $HOME: #x`)
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	glob := filepath.Join(data, "*.jsonl")
	c := agentConfig{
		APIURL: "http://127.0.0.1:1001", IngestURL: "http://127.0.0.1:1003", PyURL: "http://127.0.0.1:1004",
		StateDir: filepath.Join(dir, "state"),
		Sources: []sourceConfig{
			{Name: "bench", Format: "jsonl", Paths: []string{glob}},
			{Name: "other", Format: "jsonl", Paths: []string{filepath.Join(data, "a", "*.jsonl"), filepath.Join(data, "b.jsonl")}},
		},
	}
	path := filepath.Join(dir, "agent.yaml")
	if err := c.write(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	got, err := config.LoadWithEnv(path, noEnv)
	if err != nil {
		t.Fatalf("load the generated config: %v\n%s", err, c.render())
	}
	if len(got.Warnings) > 0 {
		t.Errorf("warnings: %q", got.Warnings)
	}
	for _, kv := range []struct{ name, got, want string }{
		{"url_api", got.Server.URLAPI, c.APIURL},
		{"url_ingest", got.Server.URLIngest, c.IngestURL},
		{"url_py", got.Server.URLPy, c.PyURL},
		{"api_key", got.Server.APIKey.Reveal(), mlopfake.DefaultKey},
		{"project", got.Project, benchProject},
		{"state_dir", got.StateDir, c.StateDir},
	} {
		if kv.got != kv.want {
			t.Errorf("%s = %q, want %q", kv.name, kv.got, kv.want)
		}
	}
	if len(got.Sources) != len(c.Sources) {
		t.Fatalf("%d sources, want %d", len(got.Sources), len(c.Sources))
	}
	for i, s := range c.Sources {
		g := got.Sources[i]
		if g.Name != s.Name || g.Format != s.Format || len(g.Paths) != len(s.Paths) {
			t.Fatalf("source %d = %+v, want %+v", i, g, s)
		}
		for j := range s.Paths {
			if g.Paths[j] != s.Paths[j] {
				t.Errorf("source %d path %d = %q, want %q", i, j, g.Paths[j], s.Paths[j])
			}
		}
	}
	// Defaults stay defaults: the figures are for what users run.
	def := config.Default()
	if got.Batch != def.Batch || got.Watch != def.Watch || got.HeartbeatInterval != def.HeartbeatInterval {
		t.Errorf("batch/watch/heartbeat differ from the defaults: %+v %+v %v", got.Batch, got.Watch, got.HeartbeatInterval)
	}
}
