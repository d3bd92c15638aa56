package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := envOf(map[string]string{"A": "alpha", "EMPTY": "", "B": "${A}", "DOLLAR": "$$"})
	tests := []struct {
		in       string
		want     string
		wantRefs []string
		wantErr  error
		errText  string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha", wantRefs: []string{"A"}},
		{in: "x-${A}-y", want: "x-alpha-y", wantRefs: []string{"A"}},
		{in: "${A}${A}", want: "alphaalpha", wantRefs: []string{"A", "A"}},
		{in: "${UNSET:-dflt}", want: "dflt", wantRefs: []string{"UNSET"}},
		{in: "${EMPTY:-dflt}", want: "dflt", wantRefs: []string{"EMPTY"}},       // :- also covers empty, as in the shell
		{in: "${EMPTY}", want: "", wantRefs: []string{"EMPTY"}},                 // set but empty is not an error
		{in: "${A:-dflt}", want: "alpha", wantRefs: []string{"A"}},              // set wins
		{in: "${UNSET:-}", want: "", wantRefs: []string{"UNSET"}},               // explicit empty default
		{in: "${UNSET:-a:-b}", want: "a:-b", wantRefs: []string{"UNSET"}},       // only the first :- splits
		{in: "${UNSET:-${A}}", want: "alpha", wantRefs: []string{"UNSET", "A"}}, // defaults are expanded
		{in: "${UNSET:-${NOPE:-deep}}", want: "deep", wantRefs: []string{"UNSET", "NOPE"}},
		{in: "${B}", want: "${A}", wantRefs: []string{"B"}},         // values are not expanded again
		{in: "${DOLLAR}", want: "$$", wantRefs: []string{"DOLLAR"}}, // nor unescaped
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "a$$b$$$${A}", want: "a$b$${A}"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "cost: 5$", want: "cost: 5$"}, // a lone $ stays
		{in: "$HOME and $", want: "$HOME and $"},
		{in: "${UNSET:-a}b}", want: "ab}", wantRefs: []string{"UNSET"}},
		{in: "${UNSET:-x$$y}", want: "x$y", wantRefs: []string{"UNSET"}},
		{in: "${UNSET}", wantErr: ErrUndefinedVariable, errText: "UNSET"},
		{in: "${UNSET:-${ALSO_UNSET}}", wantErr: ErrUndefinedVariable, errText: "ALSO_UNSET"},
		{in: "${A", wantErr: ErrInvalid, errText: "unterminated"},
		{in: "${}", wantErr: ErrInvalid, errText: "invalid variable reference"},
		{in: "${1A}", wantErr: ErrInvalid, errText: "invalid variable reference"},
		{in: "${A-b}", wantErr: ErrInvalid, errText: "invalid variable reference"},
		{in: "${A B}", wantErr: ErrInvalid, errText: "invalid variable reference"},
		{in: strings.Repeat("${U:-", 12) + "x" + strings.Repeat("}", 12), wantErr: ErrInvalid, errText: "nested"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, refs, err := expand(tc.in, env)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("expand(%q) error = %v, want %v containing %q", tc.in, err, tc.wantErr, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("expand(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !slices.Equal(refs, tc.wantRefs) {
				t.Errorf("expand(%q) refs = %q, want %q", tc.in, refs, tc.wantRefs)
			}
		})
	}
}

// TestExpandInConfig checks expansion through the whole loader: typed values,
// line numbers of errors, comments and keys left alone.
func TestExpandInConfig(t *testing.T) {
	env := map[string]string{
		"ATTEMPTS": "7",
		"PROJ":     "vision",
		"INSECURE": "true",
		"BUF":      "32MiB",
		"PATHS":    "[x, y]",
	}
	src := `# ${NOT_EXPANDED_IN_COMMENT} is fine here
server:
  retry:
    max_attempts: ${ATTEMPTS}      # ${ALSO_IN_A_COMMENT}
    max_backoff: ${BACKOFF:-45s}
  tls:
    insecure_skip_verify: ${INSECURE}
project: "${PROJ}-$${literal}"
buffer:
  max_bytes: ${BUF}
sources:
  - name: s
    format: jsonl
    paths: ["/data/${PATHS}"]
    params: {price: "5$$", raw: "$x"}
`
	c := mustParse(t, src, env)
	if got := c.Server.Retry.MaxAttempts; got != 7 {
		t.Errorf("max_attempts = %d, want 7", got)
	}
	if got := c.Server.Retry.MaxBackoff.String(); got != "45s" {
		t.Errorf("max_backoff = %s, want 45s", got)
	}
	if !c.Server.TLS.InsecureSkipVerify {
		t.Error("insecure_skip_verify not set from ${INSECURE}")
	}
	if got := c.Project; got != "vision-${literal}" {
		t.Errorf("project = %q", got)
	}
	if got := c.Buffer.MaxBytes; got != 32<<20 {
		t.Errorf("buffer.max_bytes = %v", got)
	}
	// A variable cannot inject YAML structure: the list text stays a string.
	if got := c.Sources[0].Paths; len(got) != 1 || got[0] != "/data/[x, y]" {
		t.Errorf("paths = %q", got)
	}
	if got := c.Sources[0].Params; got["price"] != "5$" || got["raw"] != "$x" {
		t.Errorf("params = %q", got)
	}
}

func TestExpandEmptyKeepsDefault(t *testing.T) {
	c := mustParse(t, "state_dir: ${STATE:-}\nserver:\n  timeout: ${T:-}\n"+minimalSource, nil)
	if !strings.HasSuffix(c.StateDir, ".mlop-agent") {
		t.Errorf("state_dir = %q, want the default", c.StateDir)
	}
	if c.Server.Timeout.String() != "30s" {
		t.Errorf("timeout = %s, want the default", c.Server.Timeout)
	}
	fes := parseErrs(t, "state_dir: \"${STATE:-}\"\n"+minimalSource, nil)
	if fe := findErr(t, fes, "state_dir"); fe.Line != 1 {
		t.Errorf("quoted empty state_dir: %v", fe)
	}
}

func TestUndefinedVariable(t *testing.T) {
	src := `# ${IN_COMMENT}
server:
  api_key: ${PLUTO_KEY}
project: x
sources:
  - name: s    # ${ANOTHER}
    format: jsonl
    paths: [m.jsonl]
    run: {name: "{{.Stem}}-${SUFFIX}"}
`
	fes := parseErrs(t, src, nil)
	want := []string{
		"t.yaml:3: server.api_key: undefined environment variable PLUTO_KEY (write ${PLUTO_KEY:-} to allow it to be empty)",
		"t.yaml:9: sources[0].run.name: undefined environment variable SUFFIX (write ${SUFFIX:-} to allow it to be empty)",
	}
	if got := strings.Split(strings.TrimSpace(joinStrings(fes)), "\n"); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, fe := range fes {
		if !errors.Is(fe, ErrUndefinedVariable) {
			t.Errorf("%v does not wrap ErrUndefinedVariable", fe)
		}
	}
}
