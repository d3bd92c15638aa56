package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/presets"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/watcher"
)

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "Validate the configuration and print every problem with its key path and line.\n"+
		"Unless --offline, also check that the server answers and accepts the API key\n"+
		"(POST /api/slug). Exits non-zero on any problem.\n\n"+formatsLine(), "mlop-agent check -c agent.yaml --offline", stderr)
	var cf commonFlags
	cf.register(fs)
	offline := fs.Bool("offline", false, "do not contact the server")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cf.config == "" {
		return &usageError{"no configuration file: pass -c FILE (or set MLOP_AGENT_CONFIG)"}
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
		if _, ok := presets.Resolve(s.Format); !ok {
			fmt.Fprintf(stdout, "%s\n", cfg.FieldError(fmt.Sprintf("sources[%d].format", i), s.Format,
				fmt.Errorf("no reader for this format in this build (have: %s)", strings.Join(presets.FormatNames(), ", "))))
			problems++
			continue
		}
		m, err := watcher.NewMatcher(s.Paths, s.Exclude)
		if err != nil {
			fmt.Fprintf(stdout, "%s\n", cfg.FieldError(fmt.Sprintf("sources[%d].paths", i), nil, err))
			problems++
			continue
		}
		files, skipped := checkMatches(s.Format, m)
		for _, sk := range skipped {
			fmt.Fprintf(stdout, "note: source %s: %s matches but is not read: %s\n", s.Name, sk.Path, skipText(sk))
		}
		if len(files) == 0 {
			fmt.Fprintf(stdout, "note: %s\n", cfg.FieldError(fmt.Sprintf("sources[%d].paths", i), nil,
				fmt.Errorf("nothing readable matches yet (run waits for files to appear; backfill would send nothing and exit 3)")))
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
	// One attempt each, with a short timeout: check answers within
	// seconds and names the real cause (a refused connection, an unknown
	// host, a certificate, the key), where the agent itself would retry.
	quick := *cfg
	quick.Server.Retry.MaxAttempts = 1
	quick.Server.Timeout = config.Duration(min(time.Duration(cfg.Server.Timeout), checkTimeout))
	client, err := newClient(&quick, log, nil, nil, nil)
	if err != nil {
		fmt.Fprintf(stdout, "server: %v\n", err)
		return 1
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*checkTimeout)
	defer cancel()
	org, err := client.Login(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "server.url_api %s: login failed: %s\n", cfg.Server.URLAPI, explainFailure(err, cfg.Server.APIKeySource()))
		problems++
	} else {
		fmt.Fprintf(stdout, "server.url_api %s: API key accepted (organization %q; key from %s)\n", cfg.Server.URLAPI, org, cfg.Server.APIKeySource())
	}
	for _, u := range []struct{ key, base, path string }{
		{"server.url_ingest", cfg.Server.URLIngest, "/health"},
		{"server.url_py", cfg.Server.URLPy, "/healthz"},
	} {
		if err := client.Health(ctx, u.base+u.path); err != nil {
			fmt.Fprintf(stdout, "%s %s: %s\n", u.key, u.base, explainFailure(err, ""))
			problems++
		} else {
			fmt.Fprintf(stdout, "%s %s: reachable\n", u.key, u.base)
		}
	}
	return problems
}

// checkTimeout bounds each of check's requests.
const checkTimeout = 4 * time.Second

// explainFailure says in a few words why a request failed, then the error.
func explainFailure(err error, keySource string) string {
	var dns *net.DNSError
	var cert *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hn x509.HostnameError
	switch {
	case errors.Is(err, sink.ErrUnauthorized):
		return fmt.Sprintf("the API key (from %s) was refused: %v", keySource, err)
	case errors.Is(err, sink.ErrRouting):
		return fmt.Sprintf("this is not an mlop API: %v", err)
	case errors.As(err, &dns):
		return fmt.Sprintf("no such host %q: %v", dns.Name, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("connection refused (nothing listens there): %v", err)
	case errors.As(err, &cert), errors.As(err, &uae), errors.As(err, &hn):
		return fmt.Sprintf("TLS certificate not trusted (server.tls.ca_file adds a CA): %v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("no answer within %s (a firewall, or a server that hangs): %v", checkTimeout, err)
	}
	return err.Error()
}

// formatsLine is the "Formats:" paragraph of the -h texts: every name a
// source's format: may take in this build.
func formatsLine() string {
	return "Formats: " + strings.Join(presets.FormatNames(), ", ") + "."
}

// checkMatches lists what a source's globs match as run would read it: a
// line format reads regular files (a directory, FIFO or symlink loop is
// not read, and said so), a stream format (Neptune, TensorBoard, MLflow)
// takes directories too.
func checkMatches(format string, m *watcher.Matcher) (files []string, skipped []watcher.Skipped) {
	reader, _ := presets.Resolve(format)
	if _, ok := parsers.LookupStream(reader); ok {
		files, _ = m.GlobAll()
		return files, nil
	}
	r := m.Scan()
	for _, sk := range r.Skipped {
		if sk.Reason != watcher.SkipUnreadDir {
			skipped = append(skipped, sk)
		}
	}
	return r.Files, skipped
}

// skipText says why a matched path is not read.
func skipText(sk watcher.Skipped) string {
	switch sk.Reason {
	case watcher.SkipDirectory:
		return "a directory"
	case watcher.SkipNotRegular:
		return "not a regular file (a FIFO, socket or device)"
	case watcher.SkipDangling:
		return "a symlink to nothing"
	case watcher.SkipLoop:
		return "a symlink loop"
	}
	if sk.Err != nil {
		return sk.Reason + ": " + sk.Err.Error()
	}
	return sk.Reason
}
