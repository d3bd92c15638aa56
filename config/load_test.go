package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestURLFallbacks(t *testing.T) {
	allPluto := map[string]string{
		"PLUTO_URL_APP": "https://p-app", "PLUTO_URL_API": "https://p-api",
		"PLUTO_URL_INGEST": "https://p-ingest", "PLUTO_URL_PY": "https://p-py",
	}
	allMlop := map[string]string{
		"MLOP_URL_APP": "https://m-app", "MLOP_URL_API": "https://m-api",
		"MLOP_URL_INGEST": "https://m-ingest", "MLOP_URL_PY": "https://m-py",
	}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		name   string
		server string // YAML under server:
		env    map[string]string
		want   [4]string // app, api, ingest, py
	}{
		{
			name: "defaults",
			want: [4]string{DefaultURLApp, DefaultURLAPI, DefaultURLIngest, DefaultURLPy},
		},
		{
			name: "MLOP_URL_*",
			env:  allMlop,
			want: [4]string{"https://m-app", "https://m-api", "https://m-ingest", "https://m-py"},
		},
		{
			name: "PLUTO_URL_* over MLOP_URL_*",
			env:  merge(allMlop, allPluto),
			want: [4]string{"https://p-app", "https://p-api", "https://p-ingest", "https://p-py"},
		},
		{
			name: "per-URL mix, blank env ignored",
			env:  map[string]string{"PLUTO_URL_API": "https://p-api", "MLOP_URL_API": "https://m-api", "MLOP_URL_INGEST": "https://m-ingest", "PLUTO_URL_INGEST": "  ", "PLUTO_URL_PY": ""},
			want: [4]string{DefaultURLApp, "https://p-api", "https://m-ingest", DefaultURLPy},
		},
		{
			name:   "config over env",
			server: "url_api: https://c-api/\nurl_py: http://c-py:9000\n",
			env:    merge(allMlop, allPluto),
			want:   [4]string{"https://p-app", "https://c-api", "https://p-ingest", "http://c-py:9000"},
		},
		{
			name:   "host derivation",
			server: "host: tracker.internal\n",
			want:   [4]string{"http://tracker.internal:3000", "http://tracker.internal:3001", "http://tracker.internal:3003", "http://tracker.internal:3004"},
		},
		{
			name:   "host over env, explicit URL over host",
			server: "host: 10.0.0.5\nurl_ingest: https://ingest.example\n",
			env:    allPluto,
			want:   [4]string{"http://10.0.0.5:3000", "http://10.0.0.5:3001", "https://ingest.example", "http://10.0.0.5:3004"},
		},
		{
			name:   "host IPv6",
			server: "host: \"::1\"\n",
			want:   [4]string{"http://[::1]:3000", "http://[::1]:3001", "http://[::1]:3003", "http://[::1]:3004"},
		},
		{
			name:   "host IPv6 bracketed",
			server: "host: \"[fe80::1]\"\n",
			want:   [4]string{"http://[fe80::1]:3000", "http://[fe80::1]:3001", "http://[fe80::1]:3003", "http://[fe80::1]:3004"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := minimalSource
			if tc.server != "" {
				src = "server:\n" + indent(tc.server) + src
			}
			c := mustParse(t, src, tc.env)
			got := [4]string{c.Server.URLApp, c.Server.URLAPI, c.Server.URLIngest, c.Server.URLPy}
			if got != tc.want {
				t.Errorf("urls = %q\nwant   %q", got, tc.want)
			}
		})
	}
}

func indent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "")
}

func TestBadHost(t *testing.T) {
	for _, h := range []string{"http://x", "x:3001", "x/y", "[notipv6]", "a b"} {
		fes := parseErrs(t, fmt.Sprintf("server:\n  host: %q\n", h)+minimalSource, nil)
		fe := findErr(t, fes, "server.host")
		if fe.Line != 2 || !errors.Is(fe, ErrInvalid) {
			t.Errorf("host %q: %v", h, fe)
		}
		if len(fes) != 1 {
			t.Errorf("host %q: want only the host error, got:\n%s", h, joinStrings(fes))
		}
	}
}

func TestAPIKeyFallbacks(t *testing.T) {
	tests := []struct {
		name       string
		yaml       string
		env        map[string]string
		wantKey    string
		wantSource string
	}{
		{"none", "", nil, "", ""},
		{"MLOP_API_TOKEN", "", map[string]string{"MLOP_API_TOKEN": "mlpi_token"}, "mlpi_token", "environment variable MLOP_API_TOKEN"},
		{"MLOP_API_KEY over MLOP_API_TOKEN", "", map[string]string{"MLOP_API_TOKEN": "mlpi_token", "MLOP_API_KEY": "mlpi_mkey"}, "mlpi_mkey", "environment variable MLOP_API_KEY"},
		{"PLUTO_API_KEY first", "", map[string]string{"MLOP_API_TOKEN": "mlpi_token", "MLOP_API_KEY": "mlpi_mkey", "PLUTO_API_KEY": " mlpi_pkey\n"}, "mlpi_pkey", "environment variable PLUTO_API_KEY"},
		{"blank env skipped", "", map[string]string{"PLUTO_API_KEY": " ", "MLOP_API_KEY": "mlpi_mkey"}, "mlpi_mkey", "environment variable MLOP_API_KEY"},
		{"config over env", "server:\n  api_key: mlps_inline\n", map[string]string{"PLUTO_API_KEY": "mlpi_pkey"}, "mlps_inline", "config t.yaml (server.api_key)"},
		{"config via ${VAR}", "server:\n  api_key: ${MY_KEY}\n", map[string]string{"MY_KEY": "mlpi_var", "PLUTO_API_KEY": "mlpi_pkey"}, "mlpi_var", "config t.yaml (server.api_key) from environment variable MY_KEY"},
		{"blank config falls through", "server:\n  api_key: \"  \"\n", map[string]string{"PLUTO_API_KEY": "mlpi_pkey"}, "mlpi_pkey", "environment variable PLUTO_API_KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.yaml+minimalSource, tc.env)
			if got := c.Server.APIKey.Reveal(); got != tc.wantKey {
				t.Errorf("key = %q, want %q", got, tc.wantKey)
			}
			if got := c.Server.APIKeySource(); got != tc.wantSource {
				t.Errorf("APIKeySource() = %q, want %q", got, tc.wantSource)
			}
		})
	}
}

func TestProjectAndLogLevelFallbacks(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		env       map[string]string
		wantProj  string
		wantLevel string
	}{
		{"defaults", "", nil, DefaultProject, "info"},
		{"MLOP_PROJECT", "", map[string]string{"MLOP_PROJECT": "m"}, "m", "info"},
		{"PLUTO_PROJECT first", "", map[string]string{"MLOP_PROJECT": "m", "PLUTO_PROJECT": "p"}, "p", "info"},
		{"config wins", "project: c\n", map[string]string{"PLUTO_PROJECT": "p"}, "c", "info"},
		{"log level from config", "log: {level: WARN}\n", nil, DefaultProject, "warn"},
		{"MLOP_AGENT_LOG_LEVEL overrides config", "log: {level: warn}\n", map[string]string{"MLOP_AGENT_LOG_LEVEL": "debug"}, DefaultProject, "debug"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.yaml+minimalSource, tc.env)
			if c.Project != tc.wantProj || c.Sources[0].Project != tc.wantProj {
				t.Errorf("project = %q, source project = %q, want %q", c.Project, c.Sources[0].Project, tc.wantProj)
			}
			if c.Log.Level != tc.wantLevel {
				t.Errorf("log.level = %q, want %q", c.Log.Level, tc.wantLevel)
			}
		})
	}
	// The per-source project overrides the top-level one.
	c := mustParse(t, "project: top\nsources:\n  - {name: a, format: jsonl, paths: [a], project: own}\n  - {name: b, format: jsonl, paths: [b]}\n", nil)
	if c.Sources[0].Project != "own" || c.Sources[1].Project != "top" {
		t.Errorf("source projects = %q, %q", c.Sources[0].Project, c.Sources[1].Project)
	}
	// A bad level from the environment is reported as coming from there.
	fes := parseErrs(t, minimalSource, map[string]string{"MLOP_AGENT_LOG_LEVEL": "loud"})
	fe := findErr(t, fes, "log.level")
	if fe.Line != 0 || !strings.Contains(fe.Error(), "(set by environment variable MLOP_AGENT_LOG_LEVEL)") {
		t.Errorf("env log level error = %q", fe)
	}
}

func TestAPIKeyFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secrets/key", "  mlps_fromfile\n\n", 0o600)
	writeFile(t, dir, "secrets/empty", " \n", 0o600)
	cfgPath := writeFile(t, dir, "agent.yaml", "server:\n  api_key_file: secrets/key\n"+minimalSource, 0o600)
	env := map[string]string{"PLUTO_API_KEY": "mlpi_env"}

	c, err := LoadWithEnv(cfgPath, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "secrets", "key")
	if c.Server.APIKey.Reveal() != "mlps_fromfile" || c.Server.APIKeyFile != keyPath {
		t.Errorf("key = %q from %q", c.Server.APIKey.Reveal(), c.Server.APIKeyFile)
	}
	if got, want := c.Server.APIKeySource(), "file "+keyPath+" (server.api_key_file)"; got != want {
		t.Errorf("APIKeySource() = %q, want %q", got, want)
	}

	tests := []struct {
		name, server, want string
	}{
		{"both", "api_key: mlpi_x\n  api_key_file: secrets/key\n", "agent.yaml:3: server.api_key_file: set either server.api_key or server.api_key_file, not both"},
		{"missing", "api_key_file: secrets/nope\n", "agent.yaml:2: server.api_key_file: open API key file: open " + filepath.Join(dir, "secrets", "nope") + ": no such file or directory"},
		{"empty", "api_key_file: secrets/empty\n", "agent.yaml:2: server.api_key_file: API key file " + filepath.Join(dir, "secrets", "empty") + " is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, dir, "agent.yaml", "server:\n  "+tc.server+minimalSource, 0o600)
			_, err := LoadWithEnv(p, envOf(env))
			if err == nil {
				t.Fatal("no error")
			}
			got := err.Error()
			if i := strings.Index(got, "agent.yaml:"); i >= 0 {
				got = got[i:] // drop the temp directory prefix of the file name
			}
			if got != tc.want {
				t.Errorf("error = %q\nwant    %q", got, tc.want)
			}
		})
	}
}

// TestKeyNeverInErrors runs configurations that fail in every way that
// touches the key and checks the key is in no message, value or warning.
func TestKeyNeverInErrors(t *testing.T) {
	const key = "mlpi_TopSecret42"
	bad := "mlpi_Top Secret\n42"
	dir := t.TempDir()
	writeFile(t, dir, "key", key, 0o600)
	writeFile(t, dir, "badkey", bad, 0o600)
	cases := []struct {
		name string
		src  string
		env  map[string]string
	}{
		{"both set", "server:\n  api_key: " + key + "\n  api_key_file: key\n", nil},
		{"bad chars inline", "server:\n  api_key: " + fmt.Sprintf("%q", bad) + "\n", nil},
		{"bad chars file", "server:\n  api_key_file: badkey\n", nil},
		{"bad chars env", "", map[string]string{"PLUTO_API_KEY": bad}},
		{"key as mapping", "server:\n  api_key: {k: " + key + "}\n", nil},
		{"key as list", "server:\n  api_key: [" + key + "]\n", nil},
		{"malformed ref", "server:\n  api_key: \"${" + key + "-x}\"\n", nil},
		{"typo'd key name", "server:\n  api_kye: " + key + "\n", nil},
		{"with other errors", "server:\n  api_key: " + key + "\n  timeout: x\n", nil},
		{"no prefix warning", "server:\n  api_key: Top_Secret_42\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, dir, "agent.yaml", tc.src+minimalSource, 0o644)
			c, err := LoadWithEnv(p, envOf(tc.env))
			var texts []string
			if err != nil {
				texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
				for _, fe := range FieldErrors(err) {
					texts = append(texts, fmt.Sprintf("%#v %v", fe.Value, fe.Value))
				}
			}
			if c != nil {
				texts = append(texts, c.Warnings...)
				texts = append(texts, fmt.Sprintf("%+v %#v", c, c), c.Server.APIKeySource())
				b, _ := json.Marshal(c)
				texts = append(texts, string(b))
			}
			if err == nil && tc.name != "no prefix warning" {
				t.Fatalf("no error")
			}
			for _, s := range texts {
				for _, secret := range []string{key, "TopSecret42", "Top Secret", "Top_Secret_42"} {
					if strings.Contains(s, secret) {
						t.Errorf("leak of %q in: %s", secret, s)
					}
				}
			}
		})
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "conf/ca.pem", "pem", 0o600)
	writeFile(t, dir, "conf/key", "mlpi_k", 0o600)
	src := `state_dir: state
dead_letter: {path: ../dead/rejected.jsonl}
server:
  api_key_file: key
  tls: {ca_file: ./ca.pem}
uploads:
  roots: [runs, /abs/root]
sources:
  - name: a
    format: jsonl
    paths: ["runs/*/m.jsonl", "/abs/**/x.jsonl", "../up/*.jsonl"]
    exclude: ["*.tmp", "runs/skip/*"]
    run: {config_files: [hparams.yaml]}
`
	p := writeFile(t, dir, "conf/agent.yaml", src, 0o600)
	c, err := LoadWithEnv(p, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "conf")
	if c.File != p || c.Dir != conf {
		t.Errorf("File, Dir = %q, %q", c.File, c.Dir)
	}
	checks := []struct{ name, got, want string }{
		{"state_dir", c.StateDir, filepath.Join(conf, "state")},
		{"dead_letter.path", c.DeadLetter.Path, filepath.Join(dir, "dead", "rejected.jsonl")},
		{"api_key_file", c.Server.APIKeyFile, filepath.Join(conf, "key")},
		{"ca_file", c.Server.TLS.CAFile, filepath.Join(conf, "ca.pem")},
		{"roots[0]", c.Uploads.Roots[0], filepath.Join(conf, "runs")},
		{"roots[1]", c.Uploads.Roots[1], "/abs/root"},
		{"paths[0]", c.Sources[0].Paths[0], filepath.Join(conf, "runs/*/m.jsonl")},
		{"paths[1]", c.Sources[0].Paths[1], "/abs/**/x.jsonl"},
		{"paths[2]", c.Sources[0].Paths[2], filepath.Join(dir, "up/*.jsonl")},
		{"exclude name pattern", c.Sources[0].Exclude[0], "*.tmp"},
		{"exclude path pattern", c.Sources[0].Exclude[1], filepath.Join(conf, "runs/skip/*")},
		{"config_files stay relative", c.Sources[0].Run.ConfigFiles[0], "hparams.yaml"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}

	// Parse resolves against the working directory.
	wd, _ := os.Getwd()
	c2 := mustParse(t, "state_dir: st\n"+minimalSource, nil)
	if c2.StateDir != filepath.Join(wd, "st") || c2.Sources[0].Paths[0] != filepath.Join(wd, "m.jsonl") || c2.File != "" {
		t.Errorf("Parse: state_dir %q, path %q, file %q", c2.StateDir, c2.Sources[0].Paths[0], c2.File)
	}
}

func TestWarnings(t *testing.T) {
	src := `server:
  api_key: nokeyprefix
  tls:
    insecure_skip_verify: true
heartbeat_interval: 1m
sources:
  - name: a
    format: jsonl
    paths: [a]
    csv: {delimiter: ";"}
`
	c := mustParse(t, src, nil)
	want := []string{
		"t.yaml:2: server.api_key: the API key does not start with mlpi_ or mlps_; the server will probably reject it",
		"t.yaml:4: server.tls.insecure_skip_verify: TLS certificate verification is disabled; anyone on the path can read the API key",
		"t.yaml:5: heartbeat_interval: 1m0s is longer than 30s; the server may consider a run stale between heartbeats",
		"t.yaml:10: sources[0].csv: ignored: the source's format is jsonl, not csv",
	}
	if !slices.Equal(c.Warnings, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(c.Warnings, "\n"), strings.Join(want, "\n"))
	}
	if c := mustParse(t, minimalSource, map[string]string{"PLUTO_API_KEY": "mlps_ok"}); len(c.Warnings) != 0 {
		t.Errorf("clean config has warnings: %q", c.Warnings)
	}
}

// TestFileModeWarning: on Windows, which has no Unix permission bits, the
// warning is never given.
func TestFileModeWarning(t *testing.T) {
	unixPerms := runtime.GOOS != "windows"
	dir := t.TempDir()
	tests := []struct {
		name string
		src  string
		mode os.FileMode
		want bool
	}{
		{"inline key, world readable", "server:\n  api_key: mlpi_x\n", 0o644, true},
		{"inline key, group readable", "server:\n  api_key: mlpi_x\n", 0o640, true},
		{"inline key, private", "server:\n  api_key: mlpi_x\n", 0o600, false},
		{"key via ${VAR}", "server:\n  api_key: ${K}\n", 0o644, false},
		{"no key in file", "", 0o644, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, dir, "agent.yaml", tc.src+minimalSource, tc.mode)
			c, err := LoadWithEnv(p, envOf(map[string]string{"K": "mlpi_y", "PLUTO_API_KEY": "mlpi_z"}))
			if err != nil {
				t.Fatal(err)
			}
			got := slices.ContainsFunc(c.Warnings, func(w string) bool { return strings.Contains(w, "readable by group or others") })
			if want := tc.want && unixPerms; got != want {
				t.Errorf("mode warning = %v, want %v; warnings %q", got, want, c.Warnings)
			}
			if got && !strings.Contains(c.Warnings[0], fmt.Sprintf("(mode %04o)", tc.mode)) {
				t.Errorf("warning does not show the mode: %q", c.Warnings[0])
			}
		})
	}
	// Parse has no file, so no mode to check.
	if c := mustParse(t, "server:\n  api_key: mlpi_x\n"+minimalSource, nil); len(c.Warnings) != 0 {
		t.Errorf("Parse warnings = %q", c.Warnings)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := LoadWithEnv(filepath.Join(t.TempDir(), "nope.yaml"), envOf(nil))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want ErrNotExist", err)
	}
}

// TestMarshalRedactedRoundTrip checks that the printed effective config
// loads back to the same configuration.
func TestMarshalRedactedRoundTrip(t *testing.T) {
	src := `server:
  host: tracker
  retry: {max_attempts: 5}
batch: {max_bytes: 10MB, linger: 0s}
watch: {fingerprint_bytes: 1500}
sources:
  - name: a
    format: neptune
    paths: [a/**]
    idle_timeout: never
    step_multiplier: 1000
    params: {k: v}
    csv: {comment: ""}
    run:
      tags: [x, y]
      config: {lr: 0.1, layers: [1, 2], opt: {name: adam}}
`
	c := mustParse(t, src, nil)
	out, err := c.MarshalRedacted()
	if err != nil {
		t.Fatal(err)
	}
	c2 := mustParse(t, string(out), nil)
	out2, err := c2.MarshalRedacted()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Errorf("round trip differs:\n%s\nthen:\n%s", out, out2)
	}
	s := c2.Sources[0]
	if !s.IdleTimeout.IsNever() || s.StepMultiplier != 1000 || s.CSV.Comment != "" || c2.Batch.MaxBytes != 10_000_000 ||
		c2.Watch.FingerprintBytes != 1500 || c2.Server.URLAPI != "http://tracker:3001" ||
		!reflect.DeepEqual(s.Run.Config, c.Sources[0].Run.Config) {
		t.Errorf("reloaded config = %+v", c2)
	}
	if !strings.Contains(string(out), "idle_timeout: never") || !strings.Contains(string(out), "max_bytes: 10MB") {
		t.Errorf("durations/sizes not in written form:\n%s", out)
	}
}

func TestUploadRoots(t *testing.T) {
	c := mustParse(t, `sources:
  - {name: a, format: jsonl, paths: ["/r/runs/*/m.jsonl", "/r/logs/**/*.jsonl", "/r/plain/file.jsonl"]}
  - {name: b, format: jsonl, paths: ["/r/runs/x[0-9]/m.jsonl", "/*.jsonl"]}
`, nil)
	want := []string{"/", "/r/logs", "/r/plain", "/r/runs"}
	if got := c.UploadRoots(); !slices.Equal(got, want) {
		t.Errorf("UploadRoots() = %q, want %q", got, want)
	}
	c.Uploads.Roots = []string{"/only"}
	if got := c.UploadRoots(); !slices.Equal(got, []string{"/only"}) {
		t.Errorf("UploadRoots() with roots = %q", got)
	}
}

func TestRequireAPIKey(t *testing.T) {
	c := mustParse(t, minimalSource, nil)
	err := c.Server.RequireAPIKey()
	if !errors.Is(err, ErrNoAPIKey) || !strings.Contains(err.Error(), "PLUTO_API_KEY") {
		t.Errorf("RequireAPIKey() = %v", err)
	}
	c = mustParse(t, minimalSource, map[string]string{"PLUTO_API_KEY": "mlpi_x"})
	if err := c.Server.RequireAPIKey(); err != nil {
		t.Errorf("RequireAPIKey() with a key = %v", err)
	}
}
