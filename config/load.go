package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxKeyFileBytes bounds what is read from server.api_key_file: a key is a
// few dozen bytes, anything much larger is the wrong file.
const maxKeyFileBytes = 64 << 10

// Load reads the config file at path and returns the effective
// configuration, using the process environment. Relative paths in the file
// are resolved against the file's directory. The error joins every problem
// found (see FieldErrors); Warnings lists the rest.
func Load(path string) (*Config, error) {
	return LoadWithEnv(path, os.LookupEnv)
}

// LoadWithEnv is Load with getenv in place of the process environment
// (os.LookupEnv), for tests and for callers that sandbox the environment.
func LoadWithEnv(path string, getenv func(string) (string, bool)) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat config: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve config path %s: %w", path, err)
	}
	return load(data, loadOptions{name: path, file: abs, dir: filepath.Dir(abs), mode: info.Mode(), getenv: getenv})
}

// Parse parses a configuration held in memory; name labels it in messages
// (it may be ""). Relative paths are resolved against the working directory.
func Parse(data []byte, name string) (*Config, error) {
	return ParseWithEnv(data, name, os.LookupEnv)
}

// ParseWithEnv is Parse with getenv in place of the process environment.
func ParseWithEnv(data []byte, name string, getenv func(string) (string, bool)) (*Config, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("get working directory: %w", err)
	}
	return load(data, loadOptions{name: name, dir: wd, getenv: getenv})
}

type loadOptions struct {
	name   string      // for messages
	file   string      // absolute path, "" when parsing bytes
	dir    string      // base of relative paths
	mode   fs.FileMode // of the file; 0 when parsing bytes
	getenv func(string) (string, bool)
}

func load(data []byte, o loadOptions) (*Config, error) {
	root, err := parseDocument(data, o.name)
	if err != nil {
		return nil, err
	}
	c := Default()
	c.name, c.File, c.Dir = o.name, o.file, o.dir
	c.origins = map[string]origin{}
	d := newDecoder(o.name, o.getenv)
	if root != nil {
		d.decode(root, reflect.ValueOf(c).Elem(), "", 0)
	}
	c.lines = d.lines
	// Written in the file itself, not brought in by ${VAR}: the file is then
	// as sensitive as the key.
	inlineKey := strings.TrimSpace(string(c.Server.APIKey)) != "" && len(d.envRefs["server.api_key"]) == 0

	c.resolvePaths()
	errs := d.errs
	errs = append(errs, c.applyEnv(o.getenv, d.envRefs)...)
	c.normalise()
	verrs, warns := c.validate()

	// A key that failed to decode kept its default; checking that default
	// (or anything under it) would only add noise.
	failed := map[string]bool{}
	for _, e := range errs {
		failed[e.Path] = true
	}
	for _, e := range verrs {
		if !underFailed(e.Path, failed) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}

	if inlineKey && o.mode != 0 && o.mode.Perm()&0o044 != 0 && runtime.GOOS != "windows" {
		warns = append(warns, c.fieldErr("server.api_key", nil, fmt.Errorf(
			"the file holds the API key and is readable by group or others (mode %04o); chmod 600 it, or use server.api_key_file or PLUTO_API_KEY", o.mode.Perm())))
	}
	sortErrors(warns)
	for _, w := range warns {
		c.Warnings = append(c.Warnings, w.Error())
	}
	return c, nil
}

// underFailed reports whether path or one of its ancestors is in failed.
func underFailed(path string, failed map[string]bool) bool {
	for p := path; p != ""; p = parentPath(p) {
		if failed[p] {
			return true
		}
	}
	return false
}

// origin records where a value that is not written in the file came from:
// an environment variable, or another key (server.host, api_key_file).
type origin struct {
	env  string // environment variable name
	path string // key path in the file
}

func (o origin) String() string {
	if o.env != "" {
		return "environment variable " + o.env
	}
	return o.path
}

// fieldErr builds a FieldError for path. If the value came from the
// environment the line is dropped and the message says where it came from;
// if it came from another key, that key's line is used.
func (c *Config) fieldErr(path string, value any, err error) *FieldError {
	fe := &FieldError{File: c.name, Path: path, Line: c.LineOf(path), Value: value, Err: err}
	if o, ok := c.origins[path]; ok {
		fe.Line = 0
		if o.path != "" {
			fe.Line = c.LineOf(o.path)
		}
		fe.Err = fmt.Errorf("%w (set by %s)", err, o)
	}
	return fe
}

// joinErrors sorts errs by line (those without a line last) and joins them.
func joinErrors(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	sortErrors(errs)
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

func sortErrors(errs []*FieldError) {
	slices.SortStableFunc(errs, func(a, b *FieldError) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return cmp.Compare(la, lb)
	})
}

// resolvePaths makes relative paths absolute against c.Dir. Exclude
// patterns without a separator match file names and are left alone; run
// config_files are relative to each metric file and are left alone too.
func (c *Config) resolvePaths() {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(c.Dir, p)
	}
	c.StateDir = abs(c.StateDir)
	c.DeadLetter.Path = abs(c.DeadLetter.Path)
	c.Server.APIKeyFile = abs(c.Server.APIKeyFile)
	c.Server.TLS.CAFile = abs(c.Server.TLS.CAFile)
	for i := range c.Uploads.Roots {
		c.Uploads.Roots[i] = abs(c.Uploads.Roots[i])
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		for j := range s.Paths {
			s.Paths[j] = abs(s.Paths[j])
		}
		for j, p := range s.Exclude {
			if strings.ContainsRune(p, '/') || strings.ContainsRune(p, filepath.Separator) {
				s.Exclude[j] = abs(p)
			}
		}
	}
}

// lookupEnv returns the first of names that is set to a non-blank value,
// trimmed, and its name.
func lookupEnv(getenv func(string) (string, bool), names ...string) (value, name string) {
	for _, n := range names {
		if v, ok := getenv(n); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), n
		}
	}
	return "", ""
}

// applyEnv fills what the file left empty from server.host, the
// environment and the pluto defaults, and reads server.api_key_file.
func (c *Config) applyEnv(getenv func(string) (string, bool), envRefs map[string][]string) []*FieldError {
	var errs []*FieldError
	s := &c.Server

	host, hostOK := "", false
	if s.Host != "" {
		var err error
		if host, err = bareHost(s.Host); err != nil {
			errs = append(errs, c.fieldErr("server.host", s.Host, err))
		} else {
			hostOK = true
		}
	}
	for _, u := range []struct {
		f                  *string
		path, port, x, def string
	}{
		{&s.URLApp, "server.url_app", "3000", "APP", DefaultURLApp},
		{&s.URLAPI, "server.url_api", "3001", "API", DefaultURLAPI},
		{&s.URLIngest, "server.url_ingest", "3003", "INGEST", DefaultURLIngest},
		{&s.URLPy, "server.url_py", "3004", "PY", DefaultURLPy},
	} {
		switch v, name := lookupEnv(getenv, "PLUTO_URL_"+u.x, "MLOP_URL_"+u.x); {
		case *u.f != "":
		case hostOK:
			*u.f = "http://" + net.JoinHostPort(host, u.port)
			c.origins[u.path] = origin{path: "server.host"}
		case name != "":
			*u.f = v
			c.origins[u.path] = origin{env: name}
		default:
			*u.f = u.def
		}
	}

	s.APIKey = Secret(strings.TrimSpace(string(s.APIKey)))
	switch {
	case s.APIKey != "" && s.APIKeyFile != "":
		errs = append(errs, c.fieldErr("server.api_key_file", s.APIKeyFile,
			invalidf("set either server.api_key or server.api_key_file, not both")))
	case s.APIKey != "":
		s.apiKeySource = c.describe() + " (server.api_key)"
		if refs := envRefs["server.api_key"]; len(refs) > 0 {
			s.apiKeySource += " from environment variable " + strings.Join(refs, ", ")
		}
	case s.APIKeyFile != "":
		key, err := readKeyFile(s.APIKeyFile)
		if err != nil {
			errs = append(errs, c.fieldErr("server.api_key_file", s.APIKeyFile, err))
			break
		}
		s.APIKey = Secret(key)
		s.apiKeySource = "file " + s.APIKeyFile + " (server.api_key_file)"
		c.origins["server.api_key"] = origin{path: "server.api_key_file"}
	default:
		if v, name := lookupEnv(getenv, "PLUTO_API_KEY", "MLOP_API_KEY", "MLOP_API_TOKEN"); name != "" {
			s.APIKey = Secret(v)
			s.apiKeySource = "environment variable " + name
			c.origins["server.api_key"] = origin{env: name}
		}
	}

	if c.Project == "" {
		if v, name := lookupEnv(getenv, "PLUTO_PROJECT", "MLOP_PROJECT"); name != "" {
			c.Project = v
			c.origins["project"] = origin{env: name}
		} else {
			c.Project = DefaultProject
		}
	}
	if v, name := lookupEnv(getenv, "MLOP_AGENT_LOG_LEVEL"); name != "" {
		c.Log.Level = v
		c.origins["log.level"] = origin{env: name}
	}
	return errs
}

// describe names the configuration for APIKeySource.
func (c *Config) describe() string {
	switch {
	case c.File != "":
		return "config file " + c.File
	case c.name != "":
		return "config " + c.name
	default:
		return "config"
	}
}

// readKeyFile returns the trimmed content of an API key file. Its errors
// name the file, never its content.
func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open API key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read API key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileBytes {
		return "", invalidf("API key file %s is larger than %d bytes; is it the right file?", path, maxKeyFileBytes)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", invalidf("API key file %s is empty", path)
	}
	return key, nil
}

// bareHost checks server.host ("localhost", "10.0.0.5", "::1", "[::1]") and
// returns it without brackets.
func bareHost(h string) (string, error) {
	h = strings.TrimSpace(h)
	if strings.Contains(h, "://") || strings.ContainsAny(h, "/?#@ ") {
		return "", invalidf("host %q must be a bare host name or IP address, without scheme, port or path (set server.url_* for anything else)", h)
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
		if net.ParseIP(h) == nil {
			return "", invalidf("host %q: brackets are only for IPv6 addresses", h)
		}
	}
	if strings.Contains(h, ":") && net.ParseIP(h) == nil {
		return "", invalidf("host %q must not have a port: the ports 3000, 3001, 3003 and 3004 are implied (set server.url_* to use others)", h)
	}
	return h, nil
}

// normalise tidies values whose spelling does not matter and fills the
// per-source defaults that depend on other keys.
func (c *Config) normalise() {
	for _, u := range []*string{&c.Server.URLApp, &c.Server.URLAPI, &c.Server.URLIngest, &c.Server.URLPy} {
		*u = strings.TrimRight(strings.TrimSpace(*u), "/")
	}
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	c.Log.Format = strings.ToLower(strings.TrimSpace(c.Log.Format))
	for i := range c.Sources {
		s := &c.Sources[i]
		s.Format = strings.ToLower(strings.TrimSpace(s.Format))
		if s.Project == "" {
			s.Project = c.Project
		}
	}
}

// MarshalRedacted returns the effective configuration as YAML with the API
// key shown as [REDACTED], for "check --print". Durations and sizes are in
// their written forms, so the output loads again.
func (c *Config) MarshalRedacted() ([]byte, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return b, nil
}
