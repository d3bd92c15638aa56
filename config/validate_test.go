package config

import (
	"errors"
	"strings"
	"testing"
)

// withSource returns a sources section whose one source has extra keys
// (flow style, on line 2 of the section).
func withSource(extra string) string {
	return "sources:\n  - {name: s, format: jsonl, paths: [m.jsonl], " + extra + "}\n"
}

func TestValidationRules(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		src      string
		env      map[string]string
		path     string
		line     int
		contains string
	}{
		// server
		{"url scheme", "server: {url_api: \"ftp://x\"}\n" + minimalSource, nil, "server.url_api", 1, `"ftp://x": scheme must be http or https`},
		{"url relative", "server: {url_app: \"pluto.example\"}\n" + minimalSource, nil, "server.url_app", 1, "scheme must be http or https"},
		{"url no host", "server: {url_ingest: \"http://\"}\n" + minimalSource, nil, "server.url_ingest", 1, "no host"},
		{"url query", "server: {url_py: \"https://x/?a=1\"}\n" + minimalSource, nil, "server.url_py", 1, "must not have a query or fragment"},
		{"url credentials", "server: {url_api: \"https://u:hunter2@x\"}\n" + minimalSource, nil, "server.url_api", 1, `"https://[REDACTED]@x": must not contain credentials`},
		{"url credentials unparsable", "server: {url_api: \"https://u:hunter2@x:port/\"}\n" + minimalSource, nil, "server.url_api", 1, `https://[REDACTED]@x:port`},
		{"url port", "server: {url_api: \"http://x:99999\"}\n" + minimalSource, nil, "server.url_api", 1, "port must be 1-65535"},
		{"url unparsable", "server: {url_api: \"http://[::1\"}\n" + minimalSource, nil, "server.url_api", 1, "invalid URL"},
		{"url from env", minimalSource, map[string]string{"PLUTO_URL_INGEST": "ingest.example"}, "server.url_ingest", 0, "(set by environment variable PLUTO_URL_INGEST)"},
		{"api key characters", "server: {api_key: \"mlpi_a b\"}\n" + minimalSource, nil, "server.api_key", 1, "contains characters other than"},
		{"timeout zero", "server: {timeout: 0s}\n" + minimalSource, nil, "server.timeout", 1, "must be greater than 0, got 0s"},
		{"timeout never", "server: {timeout: never}\n" + minimalSource, nil, "server.timeout", 1, "never is only allowed for sources[].idle_timeout"},
		{"initial backoff", "server: {retry: {initial_backoff: -1s}}\n" + minimalSource, nil, "server.retry.initial_backoff", 1, "must be greater than 0"},
		{"max backoff below initial", "server: {retry: {initial_backoff: 2s, max_backoff: 1s}}\n" + minimalSource, nil, "server.retry.max_backoff", 1, "1s is less than server.retry.initial_backoff (2s)"},
		{"max attempts", "server: {retry: {max_attempts: -1}}\n" + minimalSource, nil, "server.retry.max_attempts", 1, "must be at least 0"},
		{"ca file missing", "server: {tls: {ca_file: " + dir + "/nope.pem}}\n" + minimalSource, nil, "server.tls.ca_file", 1, "no such file"},
		{"ca file directory", "server: {tls: {ca_file: " + dir + "}}\n" + minimalSource, nil, "server.tls.ca_file", 1, "is a directory"},
		{"max in flight", "server: {max_in_flight: 0}\n" + minimalSource, nil, "server.max_in_flight", 1, "must be at least 1"},
		// top level
		{"state dir", "state_dir: \"\"\n" + minimalSource, nil, "state_dir", 1, "must not be empty"},
		{"shutdown timeout", "shutdown_timeout: -1s\n" + minimalSource, nil, "shutdown_timeout", 1, "must be greater than 0"},
		{"heartbeat low", "heartbeat_interval: 500ms\n" + minimalSource, nil, "heartbeat_interval", 1, "must be between 1s and 2m0s, got 500ms"},
		{"heartbeat high", "heartbeat_interval: 3m\n" + minimalSource, nil, "heartbeat_interval", 1, "must be between 1s and 2m0s, got 3m0s"},
		{"log level", "log: {level: verbose}\n" + minimalSource, nil, "log.level", 1, `"verbose" is not one of debug, info, warn, error`},
		{"log format", "log: {format: xml}\n" + minimalSource, nil, "log.format", 1, `"xml" is not one of text, json`},
		{"listen no port", "http: {listen: \"9464\"}\n" + minimalSource, nil, "http.listen", 1, "want host:port"},
		{"listen bad port", "http: {listen: \"localhost:http2\"}\n" + minimalSource, nil, "http.listen", 1, "port must be a number"},
		{"batch lines", "batch: {max_lines: 0}\n" + minimalSource, nil, "batch.max_lines", 1, "must be at least 1, got 0"},
		{"batch bytes", "batch: {max_bytes: 0}\n" + minimalSource, nil, "batch.max_bytes", 1, "must be at least 1, got 0"},
		{"batch linger", "batch: {linger: -1ms}\n" + minimalSource, nil, "batch.linger", 1, "must be 0 or more"},
		{"buffer bytes", "buffer: {max_bytes: 0}\n" + minimalSource, nil, "buffer.max_bytes", 1, "must be at least 1"},
		{"batch over buffer", "batch: {max_bytes: 2MiB}\nbuffer: {max_bytes: 1MiB}\n" + minimalSource, nil, "batch.max_bytes", 1, "2MiB is larger than buffer.max_bytes (1MiB)"},
		{"line over buffer", "watch: {max_line_bytes: 2MiB}\nbatch: {max_bytes: 1KiB}\nbuffer: {max_bytes: 1MiB}\n" + minimalSource, nil, "watch.max_line_bytes", 1, "2MiB is larger than buffer.max_bytes (1MiB)"},
		{"checkpoint interval", "checkpoint: {interval: 0s}\n" + minimalSource, nil, "checkpoint.interval", 1, "must be greater than 0"},
		{"poll interval", "watch: {poll_interval: 0s}\n" + minimalSource, nil, "watch.poll_interval", 1, "must be greater than 0"},
		{"fingerprint", "watch: {fingerprint_bytes: 8}\n" + minimalSource, nil, "watch.fingerprint_bytes", 1, "must be at least 16, got 8"},
		{"max line bytes", "watch: {max_line_bytes: 0}\n" + minimalSource, nil, "watch.max_line_bytes", 1, "must be at least 1"},
		{"max open files", "watch: {max_open_files: 0}\n" + minimalSource, nil, "watch.max_open_files", 1, "must be at least 1"},
		{"upload root", "uploads: {roots: [\"\"]}\n" + minimalSource, nil, "uploads.roots[0]", 1, "must not be empty"},
		// sources
		{"no sources", "project: x\n", nil, "sources", 0, "at least one source is required"},
		{"empty sources", "sources: []\n", nil, "sources", 1, "at least one source is required"},
		{"name missing", "sources:\n  - {format: jsonl, paths: [a]}\n", nil, "sources[0].name", 2, "required"},
		{"name chars", "sources:\n  - {name: a/b, format: jsonl, paths: [a]}\n", nil, "sources[0].name", 2, `"a/b" may only contain letters, digits, '_', '.' and '-'`},
		{"name duplicate", "sources:\n  - {name: a, format: jsonl, paths: [a]}\n  - {name: a, format: csv, paths: [b]}\n", nil, "sources[1].name", 3, `duplicate source name "a" (also sources[0])`},
		{"format missing", "sources:\n  - {name: a, paths: [a]}\n", nil, "sources[0].format", 2, "required; one of jsonl, csv, neptune"},
		{"format unknown", "sources:\n  - {name: a, format: jsnl, paths: [a]}\n", nil, "sources[0].format", 2, `unknown format "jsnl" (did you mean jsonl?); known formats: jsonl, csv, neptune, neptune-export, tensorboard, lightning, keras, yolo, sb3, sb3-progress, mlflow, hf-trainer`},
		{"paths missing", "sources:\n  - {name: a, format: jsonl}\n", nil, "sources[0].paths", 2, "at least one path pattern is required"},
		{"paths empty list", "sources:\n  - {name: a, format: jsonl, paths: []}\n", nil, "sources[0].paths", 2, "at least one path pattern is required"},
		{"path bracket", "sources:\n  - name: a\n    format: jsonl\n    paths:\n      - ok/*.jsonl\n      - \"bad[/x\"\n", nil, "sources[0].paths[1]", 6, `malformed segment "bad["`},
		{"path double star", "sources:\n  - {name: a, format: jsonl, paths: [\"/a/b**/c\"]}\n", nil, "sources[0].paths[0]", 2, "** must be a whole path segment"},
		{"path empty", "sources:\n  - {name: a, format: jsonl, paths: [\"\"]}\n", nil, "sources[0].paths[0]", 2, "empty pattern"},
		{"exclude", withSource("exclude: [\"[\"]"), nil, "sources[0].exclude[0]", 2, "malformed segment"},
		{"idle timeout", withSource("idle_timeout: -1s"), nil, "sources[0].idle_timeout", 2, "must be 0 (the agent's default), a positive duration, or never"},
		{"step multiplier", withSource("step_multiplier: -10"), nil, "sources[0].step_multiplier", 2, "must be at least 0"},
		{"params key", withSource("params: {\"\": x}"), nil, "sources[0].params", 2, "empty parameter name"},
		{"csv delimiter long", "sources:\n  - {name: a, format: csv, paths: [a], csv: {delimiter: \";;\"}}\n", nil, "sources[0].csv.delimiter", 2, `";;" must be a single character`},
		{"csv delimiter quote", "sources:\n  - {name: a, format: csv, paths: [a], csv: {delimiter: '\"'}}\n", nil, "sources[0].csv.delimiter", 2, "cannot be used"},
		{"csv comment newline", "sources:\n  - {name: a, format: csv, paths: [a], csv: {comment: \"\\n\"}}\n", nil, "sources[0].csv.comment", 2, "cannot be used"},
		{"csv comment equals delimiter", "sources:\n  - {name: a, format: csv, paths: [a], csv: {delimiter: \";\", comment: \";\"}}\n", nil, "sources[0].csv.comment", 2, "must differ from csv.delimiter"},
		{"run name parse", withSource("run: {name: \"{{.Stem\"}"), nil, "sources[0].run.name", 2, "invalid template"},
		{"run name field", withSource("run: {name: \"{{.Stme}}\"}"), nil, "sources[0].run.name", 2, "can't evaluate field Stme"},
		{"run id", withSource("run: {id: \"{{nofunc .Run}}\"}"), nil, "sources[0].run.id", 2, `function "nofunc" not defined`},
		{"run tag", withSource("run: {tags: [ok, \" \"]}"), nil, "sources[0].run.tags[1]", 2, "empty tag"},
		{"run two group tags", withSource("run: {tags: [\"group:a\", b, \"group:c\"]}"), nil, "sources[0].run.tags[2]", 2, "a second group: tag"},
		{"run 51 tags", withSource("run: {tags: [" + strings.Repeat("t,", 50) + "last]}"), nil, "sources[0].run.tags", 2, "51 tags: the server allows at most 50"},
		{"run config files", withSource("run: {config_files: [\"a[\"]}"), nil, "sources[0].run.config_files[0]", 2, "malformed segment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fes := parseErrs(t, tc.src, tc.env)
			if len(fes) != 1 {
				t.Errorf("want exactly one problem, got:\n%s", joinStrings(fes))
			}
			fe := findErr(t, fes, tc.path)
			if fe.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", fe.Line, tc.line, fe)
			}
			if !strings.Contains(fe.Error(), tc.contains) {
				t.Errorf("error %q does not contain %q", fe, tc.contains)
			}
			if !errors.Is(fe, ErrInvalid) && !errors.Is(fe, ErrType) && !errors.Is(fe, ErrUnknownKey) && !strings.Contains(fe.Error(), "stat CA file") {
				t.Errorf("%v wraps no sentinel", fe)
			}
			if strings.Contains(fe.Error(), "hunter2") {
				t.Errorf("password leaked: %v", fe)
			}
		})
	}
}

// TestValidationReportsAll checks that Validate reports every problem at
// once, not just the first.
func TestValidationReportsAll(t *testing.T) {
	src := `server:
  timeout: 0s
  max_in_flight: 0
log: {level: loud, format: xml}
batch: {max_lines: 0}
sources:
  - {name: "a b", format: nope, paths: ["["]}
  - {name: ok, format: jsonl}
`
	fes := parseErrs(t, src, nil)
	want := []string{
		"t.yaml:2: server.timeout: must be greater than 0, got 0s",
		"t.yaml:3: server.max_in_flight: must be at least 1, got 0",
		`t.yaml:4: log.level: "loud" is not one of debug, info, warn, error`,
		`t.yaml:4: log.format: "xml" is not one of text, json`,
		"t.yaml:5: batch.max_lines: must be at least 1, got 0",
		`t.yaml:7: sources[0].name: "a b" may only contain letters, digits, '_', '.' and '-'`,
		`t.yaml:7: sources[0].format: unknown format "nope"; known formats: jsonl, csv, neptune, neptune-export, tensorboard, lightning, keras, yolo, sb3, sb3-progress, mlflow, hf-trainer`,
	}
	got := strings.Split(strings.TrimSpace(joinStrings(fes)), "\n")
	if len(got) != len(want)+2 {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want)+2, strings.Join(got, "\n"))
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("problem %d = %q\nwant        %q", i, got[i], w)
		}
	}
	// The last two: the bad glob on line 7 and the missing paths on line 8.
	if !strings.Contains(got[7], "t.yaml:7: sources[0].paths[0]: pattern") || got[8] != "t.yaml:8: sources[1].paths: at least one path pattern is required" {
		t.Errorf("tail = %q", got[7:])
	}

	// Validate on a Config built in code reports the same way, without lines.
	c := Default()
	c.Batch.MaxLines = 0
	c.Project = "p"
	c.Server.URLApp, c.Server.URLAPI, c.Server.URLIngest, c.Server.URLPy = DefaultURLApp, DefaultURLAPI, DefaultURLIngest, DefaultURLPy
	fes = FieldErrors(c.Validate())
	if len(fes) != 2 || fes[0].Path != "batch.max_lines" || fes[1].Path != "sources" {
		t.Errorf("Validate() = %s", joinStrings(fes))
	}
}
