package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/watcher"
)

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "Validate the configuration and print every problem with its key path and line.\n"+
		"Unless --offline, also check that the server answers and accepts the API key\n"+
		"(POST /api/slug). Exits non-zero on any problem.", "mlop-agent check -c agent.yaml --offline", stderr)
	var cf commonFlags
	cf.register(fs)
	offline := fs.Bool("offline", false, "do not contact the server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cf.config == "" {
		return &usageError{"no configuration file: pass -c FILE"}
	}
	cfg, err := config.Load(cf.config)
	if err != nil {
		fmt.Fprintf(stdout, "%s: %s\n", cf.config, formatConfigError(err))
		return fmt.Errorf("%w: the configuration has problems", errConfig)
	}
	problems := 0
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	for i, s := range cfg.Sources {
		if _, ok := parsers.Lookup(s.Format); !ok {
			if _, ok := parsers.LookupStream(s.Format); !ok {
				fmt.Fprintf(stdout, "%s\n", cfg.FieldError(fmt.Sprintf("sources[%d].format", i), s.Format,
					fmt.Errorf("no reader for this format in this build (have: %s)", strings.Join(parsers.Formats(), ", "))))
				problems++
				continue
			}
		}
		m, err := watcher.NewMatcher(s.Paths, s.Exclude)
		if err != nil {
			fmt.Fprintf(stdout, "%s\n", cfg.FieldError(fmt.Sprintf("sources[%d].paths", i), nil, err))
			problems++
			continue
		}
		files, _ := m.GlobAll()
		if len(files) == 0 {
			fmt.Fprintf(stdout, "note: %s\n", cfg.FieldError(fmt.Sprintf("sources[%d].paths", i), nil,
				fmt.Errorf("nothing matches yet (run waits for files to appear; backfill would send nothing)")))
		} else {
			fmt.Fprintf(stdout, "source %s: %d path(s) match\n", s.Name, len(files))
		}
	}
	if !*offline {
		problems += checkServer(ctx, cfg, stdout)
	}
	if problems > 0 {
		return fmt.Errorf("%w: %d problem(s)", errConfig, problems)
	}
	fmt.Fprintf(stdout, "configuration OK\n")
	return nil
}

// checkServer verifies the three base URLs answer and the key is accepted.
func checkServer(ctx context.Context, cfg *config.Config, stdout io.Writer) int {
	problems := 0
	if err := cfg.Server.RequireAPIKey(); err != nil {
		fmt.Fprintf(stdout, "%v\n", err)
		return 1
	}
	log := discardLogger()
	client, err := newClient(cfg, log, nil, nil)
	if err != nil {
		fmt.Fprintf(stdout, "server: %v\n", err)
		return 1
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	org, err := client.Login(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "server.url_api %s: login failed: %v (key from %s)\n", cfg.Server.URLAPI, err, cfg.Server.APIKeySource())
		problems++
	} else {
		fmt.Fprintf(stdout, "server.url_api %s: API key accepted (organization %q; key from %s)\n", cfg.Server.URLAPI, org, cfg.Server.APIKeySource())
	}
	for _, u := range []struct{ key, base, path string }{
		{"server.url_ingest", cfg.Server.URLIngest, "/health"},
		{"server.url_py", cfg.Server.URLPy, "/healthz"},
	} {
		if err := client.Health(ctx, u.base+u.path); err != nil {
			fmt.Fprintf(stdout, "%s %s: %v\n", u.key, u.base, err)
			problems++
		} else {
			fmt.Fprintf(stdout, "%s %s: reachable\n", u.key, u.base)
		}
	}
	return problems
}

var _ = http.MethodGet
