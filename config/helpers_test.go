package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// envOf returns a getenv over m only: tests never see the real environment.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// minimalSource is the smallest valid sources section.
const minimalSource = "sources:\n  - {name: s, format: jsonl, paths: [m.jsonl]}\n"

// mustParse parses src with env and fails the test on error.
func mustParse(t testing.TB, src string, env map[string]string) *Config {
	t.Helper()
	c, err := ParseWithEnv([]byte(src), "t.yaml", envOf(env))
	if err != nil {
		t.Fatalf("ParseWithEnv:\n%s\nerror: %v", src, err)
	}
	return c
}

// parseErrs parses src, which must fail, and returns its problems.
func parseErrs(t testing.TB, src string, env map[string]string) []*FieldError {
	t.Helper()
	c, err := ParseWithEnv([]byte(src), "t.yaml", envOf(env))
	if err == nil {
		t.Fatalf("ParseWithEnv succeeded, want an error; source:\n%s\nconfig: %+v", src, c)
	}
	if c != nil {
		t.Errorf("ParseWithEnv returned a config with an error")
	}
	fes := FieldErrors(err)
	if len(fes) == 0 {
		t.Fatalf("error has no FieldErrors: %v", err)
	}
	return fes
}

// findErr returns the problem at path, failing the test when there is none.
func findErr(t testing.TB, fes []*FieldError, path string) *FieldError {
	t.Helper()
	for _, fe := range fes {
		if fe.Path == path {
			return fe
		}
	}
	t.Fatalf("no error at %s; got:\n%s", path, joinStrings(fes))
	return nil
}

func joinStrings(fes []*FieldError) string {
	var b strings.Builder
	for _, fe := range fes {
		b.WriteString(fe.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

// writeFile writes content to dir/name with mode and returns the path.
func writeFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is subject to the umask.
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFieldErrorFormat(t *testing.T) {
	base := errors.New("bad")
	tests := []struct {
		fe   FieldError
		want string
	}{
		{FieldError{File: "a.yaml", Line: 3, Path: "x.y", Err: base}, "a.yaml:3: x.y: bad"},
		{FieldError{File: "a.yaml", Path: "x.y", Err: base}, "a.yaml: x.y: bad"},
		{FieldError{Line: 3, Path: "x.y", Err: base}, "line 3: x.y: bad"},
		{FieldError{Path: "x.y", Err: base}, "x.y: bad"},
		{FieldError{File: "a.yaml", Line: 2, Err: base}, "a.yaml:2: bad"},
	}
	for _, tc := range tests {
		if got := tc.fe.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(&tc.fe, base) {
			t.Errorf("%q does not unwrap to its Err", tc.want)
		}
	}
	joined := errors.Join(&tests[0].fe, errors.New("other"), &tests[1].fe)
	if got := len(FieldErrors(joined)); got != 2 {
		t.Errorf("FieldErrors found %d, want 2", got)
	}
}
