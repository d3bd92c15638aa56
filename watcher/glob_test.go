package watcher

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pat  string
		path string
		want bool
	}{
		{"/a/runs/*/metrics.jsonl", "/a/runs/x/metrics.jsonl", true},
		{"/a/runs/*/metrics.jsonl", "/a/runs/x/y/metrics.jsonl", false},
		{"/a/logs/**/*.jsonl", "/a/logs/m.jsonl", true},
		{"/a/logs/**/*.jsonl", "/a/logs/b/c/m.jsonl", true},
		{"/a/logs/**/*.jsonl", "/a/logs/b/c/m.csv", false},
		{"/a/**", "/a/b/c", true},
		{"/a/*.jsonl", "/a/.hidden.jsonl", true},
		{"/a/m.jsonl", "/a/m.jsonl", true},
	}
	for _, tc := range tests {
		m, err := NewMatcher([]string{tc.pat}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Match(tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pat, tc.path, got, tc.want)
		}
	}
	m, _ := NewMatcher([]string{"/a/**/*.jsonl"}, []string{"/a/tmp/**"})
	if m.Match("/a/tmp/x.jsonl") || !m.Match("/a/ok/x.jsonl") {
		t.Error("exclude not applied")
	}
	m, _ = NewMatcher([]string{"/a/**/*.jsonl"}, []string{"*.tmp.jsonl"})
	if m.Match("/a/b/x.tmp.jsonl") || !m.Match("/a/b/x.jsonl") {
		t.Error("file-name exclude not applied")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, bad := range []string{"relative/*.jsonl", "/a/b**/x", "/a/[/x"} {
		if _, err := NewMatcher([]string{bad}, nil); err == nil {
			t.Errorf("NewMatcher(%q): want error", bad)
		}
	}
}

func TestGlob(t *testing.T) {
	root := t.TempDir()
	mk := func(rel string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("runs/a/metrics.jsonl")
	mk("runs/b/metrics.jsonl")
	mk("runs/b/other.jsonl")
	mk("logs/x/y/z.jsonl")
	mk("unrelated/deep/q.jsonl")
	// A directory symlink and a file symlink are followed; the real target
	// of the directory link is not walked twice.
	if err := os.Symlink(filepath.Join(root, "runs/a"), filepath.Join(root, "runs/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "logs/x/y/z.jsonl"), filepath.Join(root, "logs/zlink.jsonl")); err != nil {
		t.Fatal(err)
	}
	m, err := NewMatcher([]string{root + "/runs/*/metrics.jsonl", root + "/logs/**/*.jsonl"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, dirs, err := m.Glob()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		root + "/logs/x/y/z.jsonl",
		root + "/logs/zlink.jsonl",
		root + "/runs/a/metrics.jsonl",
		root + "/runs/b/metrics.jsonl",
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("files = %v\nwant %v", files, want)
	}
	for _, d := range dirs {
		if filepath.Base(d) == "unrelated" || filepath.Base(d) == "deep" {
			t.Errorf("walked a directory that cannot match: %s", d)
		}
	}
}

func TestRootsMissing(t *testing.T) {
	root := t.TempDir()
	m, _ := NewMatcher([]string{root + "/not/yet/*/m.jsonl"}, nil)
	if got := m.Roots(); !reflect.DeepEqual(got, []string{root}) {
		t.Errorf("Roots = %v, want [%s]", got, root)
	}
}

func TestVarying(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		want          []string
		base          bool
	}{
		{"/r/runs/*/metrics.jsonl", "/r/runs/a/metrics.jsonl", []string{"a"}, false},
		{"/r/logs/*.jsonl", "/r/logs/train.jsonl", []string{"train.jsonl"}, true},
		{"/r/logs/**/*.csv", "/r/logs/x/y/m.csv", []string{"x", "y", "m.csv"}, true},
		{"/r/logs/**/metrics.csv", "/r/logs/x/y/metrics.csv", []string{"x", "y"}, false},
		{"/r/logs/**/metrics.csv", "/r/logs/metrics.csv", nil, false},
		{"/r/exp-*/v*/metrics.csv", "/r/exp-1/v2/metrics.csv", []string{"exp-1", "v2"}, false},
		{"/r/a/metrics.jsonl", "/r/a/metrics.jsonl", nil, false},
		{"/r/a/*.jsonl", "/r/b/x.jsonl", nil, false},
	} {
		m, err := NewMatcher([]string{c.pattern}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, base := m.Varying(c.path); !slices.Equal(got, c.want) || base != c.base {
			t.Errorf("Varying(%s, %s) = %q %v, want %q %v", c.pattern, c.path, got, base, c.want, c.base)
		}
	}
}
