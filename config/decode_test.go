package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the complete error line
	}{
		{
			name: "top level",
			src:  "projct: x\n" + minimalSource,
			want: "t.yaml:1: projct: unknown key (did you mean project?)",
		},
		{
			name: "top level dash instead of underscore",
			src:  "state-dir: x\n" + minimalSource,
			want: "t.yaml:1: state-dir: unknown key (did you mean state_dir?)",
		},
		{
			name: "server",
			src:  "server:\n  url_apl: http://x\n" + minimalSource,
			want: "t.yaml:2: server.url_apl: unknown key (did you mean url_api?)",
		},
		{
			name: "third level",
			src:  "server:\n  timeout: 1s\n  retry:\n    max_attempt: 3\n" + minimalSource,
			want: "t.yaml:4: server.retry.max_attempt: unknown key (did you mean max_attempts?)",
		},
		{
			name: "source transposition",
			src: `sources:
  - name: a
    format: jsonl
    paths: [a]
  - name: b
    format: jsonl
    paths: [b]

    step_feild: iter
`,
			want: "t.yaml:9: sources[1].step_feild: unknown key (did you mean step_field?)",
		},
		{
			name: "source nested csv",
			src:  "sources:\n  - name: a\n    format: csv\n    paths: [a]\n    csv:\n      delimeter: ';'\n",
			want: "t.yaml:6: sources[0].csv.delimeter: unknown key (did you mean delimiter?)",
		},
		{
			name: "source nested run, flow style",
			src:  "sources:\n  - {name: a, format: jsonl, paths: [a], run: {nmae: x}}\n",
			want: "t.yaml:2: sources[0].run.nmae: unknown key (did you mean name?)",
		},
		{
			name: "no close match lists the valid keys",
			src:  "log:\n  colour: true\n" + minimalSource,
			want: "t.yaml:2: log.colour: unknown key (valid keys: format, level)",
		},
		{
			name: "case",
			src:  "Project: x\n" + minimalSource,
			want: "t.yaml:1: Project: unknown key (did you mean project?)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fes := parseErrs(t, tc.src, nil)
			if got := strings.TrimSpace(joinStrings(fes)); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
			if !errors.Is(fes[0], ErrUnknownKey) {
				t.Errorf("%v does not wrap ErrUnknownKey", fes[0])
			}
		})
	}
}

// TestDecodeErrorsAllReported checks that decoding does not stop at the
// first problem and that problems are sorted by line.
func TestDecodeErrorsAllReported(t *testing.T) {
	src := `server:
  timout: 1s
  max_in_flight: many
log:
  levle: debug
sources:
  - name: a
    format: jsonl
    paths: a.jsonl
    idle_timeout: 5
    step_multiplier: 1.5
  - name: b
    format: jsonl
    paths: [b]
    name: c
    bogus: 1
`
	fes := parseErrs(t, src, nil)
	want := []string{
		"t.yaml:2: server.timout: unknown key (did you mean timeout?)",
		`t.yaml:3: server.max_in_flight: want an integer, got "many"`,
		"t.yaml:5: log.levle: unknown key (did you mean level?)",
		`t.yaml:9: sources[0].paths: want a list, got "a.jsonl"`,
		`t.yaml:10: sources[0].idle_timeout: invalid duration "5": want Go syntax such as 30s, 500ms or 1m30s`,
		`t.yaml:11: sources[0].step_multiplier: want an integer, got "1.5"`,
		"t.yaml:15: sources[1].name: duplicate key (first at line 12)",
		"t.yaml:16: sources[1].bogus: unknown key (valid keys: csv, exclude, format, idle_timeout, max_names_per_run, name, params, paths, project, run, run_field, step_field, step_multiplier, time_field)",
	}
	got := strings.Split(strings.TrimSpace(joinStrings(fes)), "\n")
	if !slices.Equal(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fe := findErr(t, fes, "sources[1].name"); !errors.Is(fe, ErrDuplicateKey) {
		t.Errorf("duplicate key error %v does not wrap ErrDuplicateKey", fe)
	}
	if fe := findErr(t, fes, "server.max_in_flight"); !errors.Is(fe, ErrType) || fe.Value != "many" {
		t.Errorf("type error %#v: want ErrType with the value", fe)
	}
}

func TestTypeErrors(t *testing.T) {
	tests := []struct {
		name, src, path, want string
	}{
		{"mapping for string", "project: {a: 1}\n", "project", "want a string, got a mapping"},
		{"list for struct", "server: [1]\n", "server", "want a mapping, got a list"},
		{"scalar for struct", "server: fast\n", "server", `want a mapping, got "fast"`},
		{"bool", "server:\n  tls: {insecure_skip_verify: yes}\n", "server.tls.insecure_skip_verify", `want true or false, got "yes"`},
		{"size", "batch: {max_bytes: 1M}\n", "batch.max_bytes", "ambiguous"},
		{"size shape", "batch: {max_bytes: [1]}\n", "batch.max_bytes", "want a size such as 1MiB, got a list"},
		{"int overflow", "server: {max_in_flight: 99999999999999999999}\n", "server.max_in_flight", "want an integer"},
		{"params value", "sources:\n  - {name: a, format: jsonl, paths: [a], params: {x: [1]}}\n", "sources[0].params.x", "want a string, got a list"},
		{"params non-string key", "sources:\n  - {name: a, format: jsonl, paths: [a], params: {1: x}}\n", "sources[0].params.1", "key 1 is not a string"},
		{"list item", "sources:\n  - {name: a, format: jsonl, paths: [a, {b: c}]}\n", "sources[0].paths[1]", "want a string, got a mapping"},
		{"root", "just a string\n", "", `want a mapping, got "just a string"`},
		{"non-scalar key", "? [a]\n: b\n", "", "a key must be a scalar"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fes := parseErrs(t, tc.src+minimalSourceIfMissing(tc.src), nil)
			fe := findErr(t, fes, tc.path)
			if !strings.Contains(fe.Error(), tc.want) || fe.Line == 0 {
				t.Errorf("got %q, want it to contain %q with a line", fe, tc.want)
			}
		})
	}
}

func minimalSourceIfMissing(src string) string {
	if strings.Contains(src, "sources:") || !strings.HasSuffix(src, "\n") || strings.HasPrefix(src, "just") {
		return ""
	}
	return minimalSource
}

func TestNullKeepsDefaults(t *testing.T) {
	c := mustParse(t, "server:\nlog:\n  level: ~\nbatch:\n  max_bytes:\nuploads:\n  roots: ~\n"+minimalSource, nil)
	d := Default()
	if c.Server.Timeout != d.Server.Timeout || c.Log.Level != "info" || c.Batch.MaxBytes != d.Batch.MaxBytes {
		t.Errorf("null values changed defaults: %+v", c)
	}
	if c.Uploads.Roots != nil {
		t.Errorf("roots = %q, want nil", c.Uploads.Roots)
	}
}

func TestEmptyDocument(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "---\n"} {
		fes := parseErrs(t, src, nil)
		if fe := findErr(t, fes, "sources"); !strings.Contains(fe.Error(), "at least one source") {
			t.Errorf("%q: %v", src, fe)
		}
	}
}

func TestMultipleDocuments(t *testing.T) {
	_, err := ParseWithEnv([]byte(minimalSource+"---\nproject: x\n"), "t.yaml", envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "t.yaml:3: more than one YAML document") {
		t.Errorf("err = %v", err)
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := ParseWithEnv([]byte("server:\n  url_api: [\n"), "t.yaml", envOf(nil))
	if err == nil || !strings.HasPrefix(err.Error(), "parse t.yaml: yaml: line ") {
		t.Errorf("err = %v", err)
	}
}

func TestAliasesAndMerge(t *testing.T) {
	src := `sources:
  - &base
    name: a
    format: jsonl
    paths: [a/*.jsonl]
    run:
      tags: [shared]
  - <<: *base
    name: b
    paths: [b/*.jsonl]
  - <<: [*base]
    name: c
    bogus: 1
`
	fes := parseErrs(t, src, nil)
	want := "t.yaml:13: sources[2].bogus: unknown key"
	if len(fes) != 1 || !strings.HasPrefix(fes[0].Error(), want) {
		t.Fatalf("got:\n%s\nwant one error starting %q", joinStrings(fes), want)
	}

	c := mustParse(t, strings.Replace(src, "    bogus: 1\n", "", 1), nil)
	if got := len(c.Sources); got != 3 {
		t.Fatalf("%d sources", got)
	}
	b := c.Sources[1]
	if b.Name != "b" || b.Format != "jsonl" || !strings.HasSuffix(b.Paths[0], "b/*.jsonl") || !slices.Equal(b.Run.Tags, []string{"shared"}) {
		t.Errorf("merged source = %+v", b)
	}
	if c.Sources[2].Name != "c" || !strings.HasSuffix(c.Sources[2].Paths[0], "a/*.jsonl") {
		t.Errorf("merged from list = %+v", c.Sources[2])
	}
}

func TestAliasCycleAndBomb(t *testing.T) {
	// An anchor that contains itself must not hang or overflow the stack.
	for _, src := range []string{
		"sources: &x\n  - *x\n",
		"sources:\n  - &x {name: a, format: jsonl, paths: [a], run: {config: {a: *x}}}\n",
	} {
		fes := parseErrs(t, src, nil)
		if len(fes) != 1 {
			t.Errorf("%q: want one error, got:\n%s", src, joinStrings(fes))
		}
	}
	bomb := `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
sources:
  - {name: s, format: jsonl, paths: [a], run: {config: {x: *g}}}
`
	_, err := ParseWithEnv([]byte(bomb), "t.yaml", envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "document too large") {
		t.Errorf("alias bomb: err = %v", err)
	}
}

func TestRunConfig(t *testing.T) {
	src := `sources:
  - name: s
    format: jsonl
    paths: [a]
    run:
      config:
        lr: 0.001
        epochs: 10
        name: resnet
        flag: true
        none: null
        date: 2024-01-02
        hex: 0x10
        quoted: "10"
        list: [1, "two", {three: 3}]
        nested: {a: {b: [x]}}
        env: ${MODEL:-small}
        big: 18446744073709551615
`
	c := mustParse(t, src, nil)
	got := c.Sources[0].Run.Config
	want := map[string]any{
		"lr": 0.001, "epochs": 10, "name": "resnet", "flag": true, "none": nil,
		"date": "2024-01-02", "hex": 16, "quoted": "10",
		"list":   []any{1, "two", map[string]any{"three": 3}},
		"nested": map[string]any{"a": map[string]any{"b": []any{"x"}}},
		"env":    "small",
		"big":    uint64(18446744073709551615),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config =\n%#v\nwant\n%#v", got, want)
	}
	if line := c.LineOf("sources[0].run.config.list[2].three"); line != 15 {
		t.Errorf("LineOf nested config = %d, want 15", line)
	}

	bad := `sources:
  - name: s
    format: jsonl
    paths: [a]
    run:
      config:
        1: one
        nested: {true: x, ok: .inf}
        nan: .nan
        tagged: !custom x
        dup: 1
        dup: 2
`
	fes := parseErrs(t, bad, nil)
	wantErrs := []string{
		"t.yaml:7: sources[0].run.config.1: key 1 is not a string (quote it)",
		"t.yaml:8: sources[0].run.config.nested.true: key true is not a string (quote it)",
		"t.yaml:8: sources[0].run.config.nested.ok: .inf is not representable in JSON",
		"t.yaml:9: sources[0].run.config.nan: .nan is not representable in JSON",
		"t.yaml:10: sources[0].run.config.tagged: unsupported tag !custom",
		"t.yaml:12: sources[0].run.config.dup: duplicate key (first at line 11)",
	}
	if gotErrs := strings.Split(strings.TrimSpace(joinStrings(fes)), "\n"); !slices.Equal(gotErrs, wantErrs) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(gotErrs, "\n"), strings.Join(wantErrs, "\n"))
	}
}

func TestLineOf(t *testing.T) {
	src := `project: p
server:
  retry:
    max_attempts: 3
sources:
  - name: a
    format: jsonl
    paths:
      - one
      - two
    params:
      "with.dot": x
`
	c := mustParse(t, src, nil)
	tests := []struct {
		path string
		want int
	}{
		{"project", 1},
		{"server", 2},
		{"server.retry.max_attempts", 4},
		{"server.retry.max_backoff", 3}, // not in the file: its parent
		{"server.timeout", 2},
		{"sources", 5},
		{"sources[0]", 6},
		{"sources[0].paths", 8},
		{"sources[0].paths[1]", 10},
		{"sources[0].idle_timeout", 6},
		{`sources[0].params["with.dot"]`, 12},
		{"state_dir", 0},
		{"nothing.here", 0},
	}
	for _, tc := range tests {
		if got := c.LineOf(tc.path); got != tc.want {
			t.Errorf("LineOf(%q) = %d, want %d", tc.path, got, tc.want)
		}
	}
	fe := c.FieldError("sources[0].paths", nil, errors.New("no file matches"))
	if got, want := fe.Error(), "t.yaml:8: sources[0].paths: no file matches"; got != want {
		t.Errorf("FieldError = %q, want %q", got, want)
	}
}

func TestSuggest(t *testing.T) {
	valid := []string{"name", "format", "paths", "step_field", "time_field", "run_field", "step_multiplier"}
	tests := []struct{ in, want string }{
		{"nmae", "name"},
		{"fromat", "format"},
		{"path", "paths"},
		{"step_feild", "step_field"},
		{"stepfield", "step_field"},
		{"STEP_FIELD", "step_field"},
		{"step-multiplier", "step_multiplier"},
		{"x", ""},
		{"completely_different", ""},
	}
	for _, tc := range tests {
		if got := suggest(tc.in, valid); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if d := editDistance("ab", "ba"); d != 1 {
		t.Errorf("editDistance(ab, ba) = %d, want 1", d)
	}
	if d := editDistance("", "abc"); d != 3 {
		t.Errorf("editDistance('', abc) = %d, want 3", d)
	}
}
