package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// benchProject is the project every scenario's runs go to.
const benchProject = "bench"

// agentConfig is what a scenario's agent.yaml sets. Everything else keeps
// the agent's default: the figures are for the configuration users get.
type agentConfig struct {
	APIURL, IngestURL, PyURL string
	StateDir                 string
	Sources                  []sourceConfig
}

// sourceConfig is one entry of sources:.
type sourceConfig struct {
	Name     string
	Format   string
	Paths    []string // absolute globs
	RunField string   // "" = one run per file
}

// yamlString quotes s as a YAML double-quoted scalar. Go's escapes (\", \\,
// \n, \t, \xNN, \uNNNN) are all valid YAML escapes; "$" is doubled because
// the agent expands ${VAR} in values.
func yamlString(s string) string {
	return strconv.Quote(strings.ReplaceAll(s, "$", "$$"))
}

// render returns the configuration as YAML.
func (c agentConfig) render() []byte {
	var b strings.Builder
	b.WriteString("# Written by internal/tools/bench; only what the scenario needs, the rest is default.\n")
	b.WriteString("server:\n")
	fmt.Fprintf(&b, "  url_api: %s\n", yamlString(c.APIURL))
	fmt.Fprintf(&b, "  url_ingest: %s\n", yamlString(c.IngestURL))
	fmt.Fprintf(&b, "  url_py: %s\n", yamlString(c.PyURL))
	fmt.Fprintf(&b, "  api_key: %s\n", yamlString(mlopfake.DefaultKey))
	fmt.Fprintf(&b, "project: %s\n", yamlString(benchProject))
	fmt.Fprintf(&b, "state_dir: %s\n", yamlString(c.StateDir))
	b.WriteString("sources:\n")
	for _, s := range c.Sources {
		fmt.Fprintf(&b, "  - name: %s\n", yamlString(s.Name))
		fmt.Fprintf(&b, "    format: %s\n", yamlString(s.Format))
		b.WriteString("    paths:\n")
		for _, p := range s.Paths {
			fmt.Fprintf(&b, "      - %s\n", yamlString(p))
		}
		if s.RunField != "" {
			fmt.Fprintf(&b, "    run_field: %s\n", yamlString(s.RunField))
		}
	}
	return []byte(b.String())
}

// write saves the configuration at path, readable only by the owner (the
// agent warns about an api_key in a file others can read).
func (c agentConfig) write(path string) error {
	if err := os.WriteFile(path, c.render(), 0o600); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	return nil
}
