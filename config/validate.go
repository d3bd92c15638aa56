package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Validate checks the configuration and returns every problem found, joined
// with errors.Join (see FieldErrors), or nil. Load and Parse already call it;
// call it again after changing a Config in code.
func (c *Config) Validate() error {
	errs, _ := c.validate()
	return joinErrors(errs)
}

// validator collects problems and warnings for one Validate run.
type validator struct {
	c     *Config
	errs  []*FieldError
	warns []*FieldError
}

func (v *validator) fail(path string, value any, err error) {
	v.errs = append(v.errs, v.c.fieldErr(path, value, err))
}

func (v *validator) warn(path string, value any, err error) {
	v.warns = append(v.warns, v.c.fieldErr(path, value, err))
}

// positive requires d > 0 (and not never).
func (v *validator) positive(path string, d Duration) {
	switch {
	case d.IsNever():
		v.fail(path, d, invalidf("never is only allowed for sources[].idle_timeout"))
	case d <= 0:
		v.fail(path, d, invalidf("must be greater than 0, got %s", d))
	}
}

// atLeast requires n >= lo for integer settings.
func (v *validator) atLeast(path string, n, lo int64) {
	if n < lo {
		v.fail(path, n, invalidf("must be at least %d, got %d", lo, n))
	}
}

func (v *validator) size(path string, b ByteSize, lo ByteSize) {
	if b < lo {
		v.fail(path, b, invalidf("must be at least %s, got %s", lo, b))
	}
}

func (c *Config) validate() (errs, warns []*FieldError) {
	v := &validator{c: c}
	v.server()

	if c.Project == "" {
		v.fail("project", c.Project, invalidf("must not be empty"))
	}
	if c.StateDir == "" {
		v.fail("state_dir", c.StateDir, invalidf("must not be empty"))
	}
	v.positive("shutdown_timeout", c.ShutdownTimeout)
	switch h := c.HeartbeatInterval; {
	case h.IsNever() || h < Duration(time.Second) || h > Duration(120*time.Second):
		v.fail("heartbeat_interval", h, invalidf("must be between 1s and 2m0s, got %s", h))
	case h > Duration(30*time.Second):
		v.warn("heartbeat_interval", h, invalidf("%s is longer than 30s; the server may consider a run stale between heartbeats", h))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		v.fail("log.level", c.Log.Level, invalidf("%q is not one of debug, info, warn, error", c.Log.Level))
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		v.fail("log.format", c.Log.Format, invalidf("%q is not one of text, json", c.Log.Format))
	}
	if l := c.HTTP.Listen; l != "" {
		if err := checkListen(l); err != nil {
			v.fail("http.listen", l, err)
		}
	}

	v.atLeast("batch.max_lines", int64(c.Batch.MaxLines), 1)
	v.size("batch.max_bytes", c.Batch.MaxBytes, 1)
	if d := c.Batch.Linger; d.IsNever() || d < 0 {
		v.fail("batch.linger", d, invalidf("must be 0 or more, got %s", d))
	}
	v.size("buffer.max_bytes", c.Buffer.MaxBytes, 1)
	if c.Batch.MaxBytes > c.Buffer.MaxBytes && c.Buffer.MaxBytes > 0 {
		v.fail("batch.max_bytes", c.Batch.MaxBytes, invalidf("%s is larger than buffer.max_bytes (%s): a full batch could never be formed", c.Batch.MaxBytes, c.Buffer.MaxBytes))
	}
	if c.Watch.MaxLineBytes > c.Buffer.MaxBytes && c.Buffer.MaxBytes > 0 {
		v.fail("watch.max_line_bytes", c.Watch.MaxLineBytes, invalidf("%s is larger than buffer.max_bytes (%s): one long line could stall reading", c.Watch.MaxLineBytes, c.Buffer.MaxBytes))
	}
	v.positive("checkpoint.interval", c.Checkpoint.Interval)
	v.positive("watch.poll_interval", c.Watch.PollInterval)
	v.size("watch.fingerprint_bytes", c.Watch.FingerprintBytes, 16)
	v.size("watch.max_line_bytes", c.Watch.MaxLineBytes, 1)
	v.atLeast("watch.max_open_files", int64(c.Watch.MaxOpenFiles), 1)
	for i, r := range c.Uploads.Roots {
		if r == "" {
			v.fail(fmt.Sprintf("uploads.roots[%d]", i), r, invalidf("must not be empty"))
		}
	}

	if len(c.Sources) == 0 {
		v.fail("sources", nil, invalidf("at least one source is required"))
	}
	names := map[string]int{}
	for i := range c.Sources {
		v.source(i, names)
	}
	return v.errs, v.warns
}

func (v *validator) server() {
	s := &v.c.Server
	for _, u := range []struct{ path, val string }{
		{"server.url_app", s.URLApp},
		{"server.url_api", s.URLAPI},
		{"server.url_ingest", s.URLIngest},
		{"server.url_py", s.URLPy},
	} {
		if err := checkURL(u.val); err != nil {
			v.fail(u.path, nil, err)
		}
	}
	if s.APIKey != "" {
		// Never put the key in a message or a FieldError's Value.
		key := s.APIKey.Reveal()
		if strings.IndexFunc(key, func(r rune) bool {
			return !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) >= 0 {
			v.fail("server.api_key", nil, invalidf("the API key contains characters other than A-Z, a-z, 0-9, '.', '_' and '-'"))
		} else if !strings.HasPrefix(key, "mlpi_") && !strings.HasPrefix(key, "mlps_") {
			v.warn("server.api_key", nil, invalidf("the API key does not start with mlpi_ or mlps_; the server will probably reject it"))
		}
	}
	v.positive("server.timeout", s.Timeout)
	v.positive("server.retry.initial_backoff", s.Retry.InitialBackoff)
	v.positive("server.retry.max_backoff", s.Retry.MaxBackoff)
	if s.Retry.MaxBackoff < s.Retry.InitialBackoff && s.Retry.MaxBackoff > 0 {
		v.fail("server.retry.max_backoff", s.Retry.MaxBackoff, invalidf("%s is less than server.retry.initial_backoff (%s)", s.Retry.MaxBackoff, s.Retry.InitialBackoff))
	}
	v.atLeast("server.retry.max_attempts", int64(s.Retry.MaxAttempts), 0)
	if f := s.TLS.CAFile; f != "" {
		if fi, err := os.Stat(f); err != nil {
			v.fail("server.tls.ca_file", f, fmt.Errorf("stat CA file: %w", err))
		} else if fi.IsDir() {
			v.fail("server.tls.ca_file", f, invalidf("%s is a directory, want a PEM file", f))
		}
	}
	if s.TLS.InsecureSkipVerify {
		v.warn("server.tls.insecure_skip_verify", true, invalidf("TLS certificate verification is disabled; anyone on the path can read the API key"))
	}
	v.atLeast("server.max_in_flight", int64(s.MaxInFlight), 1)
}

// checkURL requires an absolute http(s) URL with a host and no query,
// fragment or credentials. Messages show the URL with any password masked.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the whole URL, credentials included.
		msg := strings.ReplaceAll(err.Error(), raw, redactUserinfo(raw))
		return invalidf("invalid URL: %s", msg)
	}
	shown := u.Redacted()
	if u.User != nil {
		shown = redactUserinfo(raw) // Redacted keeps the user name
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return invalidf("%q: scheme must be http or https", shown)
	case u.Host == "" || u.Hostname() == "":
		return invalidf("%q: no host", shown)
	case u.User != nil:
		return invalidf("%q: must not contain credentials (use server.api_key)", shown)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return invalidf("%q: must not have a query or fragment", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalidf("%q: port must be 1-65535", shown)
		}
	}
	return nil
}

// redactUserinfo hides "user:password@" in a URL that may not parse.
func redactUserinfo(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return raw[:i+3] + "[REDACTED]" + rest[at:]
	}
	return raw
}

func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return invalidf("%q: want host:port such as 127.0.0.1:9464 or :9464", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return invalidf("%q: port must be a number 0-65535", addr)
	}
	return nil
}

func (v *validator) source(i int, names map[string]int) {
	s := &v.c.Sources[i]
	p := func(key string) string { return fmt.Sprintf("sources[%d].%s", i, key) }

	switch {
	case s.Name == "":
		v.fail(p("name"), s.Name, invalidf("required"))
	case !validName(s.Name):
		v.fail(p("name"), s.Name, invalidf("%q may only contain letters, digits, '_', '.' and '-'", s.Name))
	default:
		if j, dup := names[s.Name]; dup {
			v.fail(p("name"), s.Name, invalidf("duplicate source name %q (also sources[%d])", s.Name, j))
		} else {
			names[s.Name] = i
		}
	}

	switch {
	case s.Format == "":
		v.fail(p("format"), s.Format, invalidf("required; one of %s", strings.Join(knownFormats, ", ")))
	case !slices.Contains(knownFormats, s.Format):
		hint := ""
		if sug := suggest(s.Format, knownFormats); sug != "" {
			hint = " (did you mean " + sug + "?)"
		}
		v.fail(p("format"), s.Format, invalidf("unknown format %q%s; known formats: %s", s.Format, hint, strings.Join(knownFormats, ", ")))
	}

	if len(s.Paths) == 0 {
		v.fail(p("paths"), nil, invalidf("at least one path pattern is required"))
	}
	for j, g := range s.Paths {
		if err := checkGlob(g); err != nil {
			v.fail(fmt.Sprintf("sources[%d].paths[%d]", i, j), g, err)
		}
	}
	for j, g := range s.Exclude {
		if err := checkGlob(g); err != nil {
			v.fail(fmt.Sprintf("sources[%d].exclude[%d]", i, j), g, err)
		}
	}
	if d := s.IdleTimeout; d < 0 && !d.IsNever() {
		v.fail(p("idle_timeout"), d, invalidf("must be 0 (the agent's default), a positive duration, or never; got %s", d))
	}
	v.atLeast(p("step_multiplier"), s.StepMultiplier, 0)
	v.atLeast(p("max_names_per_run"), int64(s.MaxNamesPerRun), 0)
	for k := range s.Params {
		if strings.TrimSpace(k) == "" {
			v.fail(p("params"), k, invalidf("empty parameter name"))
		}
	}

	v.csvChar(p("csv.delimiter"), s.CSV.Delimiter)
	v.csvChar(p("csv.comment"), s.CSV.Comment)
	if s.CSV.Delimiter != "" && s.CSV.Delimiter == s.CSV.Comment {
		v.fail(p("csv.comment"), s.CSV.Comment, invalidf("must differ from csv.delimiter"))
	}
	if s.CSV != DefaultSource().CSV && s.Format != "csv" && s.Format != "" {
		v.warn(p("csv"), nil, invalidf("ignored: the source's format is %s, not csv", s.Format))
	}

	for _, t := range []struct{ key, text string }{{"run.name", s.Run.Name}, {"run.id", s.Run.ID}} {
		key, text := t.key, t.text
		if text == "" {
			continue
		}
		if _, err := ParseRunTemplate(key, text); err != nil {
			v.fail(p(key), text, invalidf("invalid template %q: %v (fields: .Source .Path .Dir .Stem .Run .Short)", text, err))
		}
	}
	groups := 0
	for j, tag := range s.Run.Tags {
		if strings.TrimSpace(tag) == "" {
			v.fail(fmt.Sprintf("sources[%d].run.tags[%d]", i, j), tag, invalidf("empty tag"))
		}
		if strings.HasPrefix(tag, "group:") {
			if groups++; groups == 2 {
				v.fail(fmt.Sprintf("sources[%d].run.tags[%d]", i, j), tag, invalidf("a second group: tag: the server allows one per run"))
			}
		}
	}
	if len(s.Run.Tags) > maxRunTags {
		v.fail(fmt.Sprintf("sources[%d].run.tags", i), "", invalidf("%d tags: the server allows at most %d per run", len(s.Run.Tags), maxRunTags))
	}
	for j, g := range s.Run.ConfigFiles {
		if err := checkGlob(g); err != nil {
			v.fail(fmt.Sprintf("sources[%d].run.config_files[%d]", i, j), g, err)
		}
	}
}

// maxRunTags is the server's limit of tags per run (mlop-api.md §2.5).
const maxRunTags = 50

// csvChar checks a CSV delimiter or comment: empty, or one character that
// encoding/csv accepts.
func (v *validator) csvChar(path, s string) {
	if s == "" {
		return
	}
	r, n := utf8.DecodeRuneInString(s)
	switch {
	case n != len(s):
		v.fail(path, s, invalidf("%q must be a single character", s))
	case r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError:
		v.fail(path, s, invalidf("%q cannot be used (quote, line break or invalid UTF-8)", s))
	}
}

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// checkGlob checks a path pattern: filepath.Match syntax in each
// "/"-separated segment, plus "**" as a whole segment matching any number
// of directories.
func checkGlob(pattern string) error {
	if strings.TrimSpace(pattern) == "" {
		return invalidf("empty pattern")
	}
	for _, seg := range strings.Split(filepath.ToSlash(pattern), "/") {
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return invalidf("pattern %q: ** must be a whole path segment, as in logs/**/*.jsonl", pattern)
		}
		if _, err := filepath.Match(seg, ""); err != nil {
			return invalidf("pattern %q: malformed segment %q (unclosed [ or trailing \\?)", pattern, seg)
		}
	}
	return nil
}
