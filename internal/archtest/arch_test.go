// Package archtest keeps the layout rules of docs/style.md true: imports
// point down, siblings do not import each other, and each third-party
// library is used by one package only.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/mlop-ai/mlop-agent"

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// top is the first path element inside the module: "watcher" for
// watcher/..., "parsers" for parsers/csv.
func top(path string) string { return strings.SplitN(rel(path), "/", 2)[0] }

func TestImportRules(t *testing.T) {
	// Third-party modules and the package trees allowed to use each: one,
	// except protobuf's wire decoding, which the parsers of protobuf formats
	// share.
	confined := map[string][]string{
		"github.com/fsnotify/fsnotify":            {"watcher"},
		"gopkg.in/yaml.v3":                        {"config"},
		"github.com/hashicorp/go-retryablehttp":   {"sink/mlop"},
		"modernc.org/sqlite":                      {"parsers/neptune"},
		"google.golang.org/protobuf":              {"parsers/neptune", "parsers/tensorboard"},
		"github.com/parquet-go/parquet-go":        {"parsers/neptune"},
		"github.com/prometheus/client_golang":     {"internal/telemetry"},
		"github.com/prometheus/client_golang/exp": {"internal/telemetry"},
	}
	siblings := map[string]bool{"watcher": true, "parsers": true, "sink": true, "checkpoint": true}
	for _, p := range listPackages(t) {
		me := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module) {
				them := rel(imp)
				switch {
				case top(p.ImportPath) == "event" || top(p.ImportPath) == "config":
					t.Errorf("%s imports %s: event and config import nothing from the module", me, them)
				case siblings[top(p.ImportPath)] && siblings[top(imp)] && top(p.ImportPath) != top(imp):
					t.Errorf("%s imports its sibling %s", me, them)
				case top(imp) == "agent" && top(p.ImportPath) != "cmd" && top(p.ImportPath) != "agent" && !strings.HasPrefix(me, "internal/tools"):
					t.Errorf("%s imports agent: only cmd sees the agent", me)
				case top(imp) == "cmd":
					t.Errorf("%s imports %s", me, them)
				case them == "internal/mlopfake" && top(p.ImportPath) != "cmd" && !strings.HasPrefix(me, "internal/"):
					t.Errorf("%s imports the test double internal/mlopfake", me)
				case top(p.ImportPath) == "agent" && strings.HasPrefix(them, "sink/"):
					// The agent speaks to trackers through sink.Sink only:
					// no wire types, encoders or clients of one above sink/.
					t.Errorf("%s imports %s: the agent sees trackers only through the sink.Sink seam", me, them)
				}
				continue
			}
			for lib, owners := range confined {
				if imp != lib && !strings.HasPrefix(imp, lib+"/") {
					continue
				}
				allowed := false
				for _, owner := range owners {
					allowed = allowed || me == owner || strings.HasPrefix(me, owner+"/")
				}
				if !allowed {
					t.Errorf("%s imports %s, which only %s may use", me, imp, strings.Join(owners, " and "))
				}
			}
		}
	}
}
