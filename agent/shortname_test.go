package agent

import (
	"reflect"
	"slices"
	"testing"

	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/watcher"
)

func TestShortNames(t *testing.T) {
	for _, c := range []struct {
		name  string
		globs []string
		files []string
		want  []string // the names of files, in order
	}{
		{"one directory each", []string{"/r/runs/*/metrics.jsonl"},
			[]string{"/r/runs/a/metrics.jsonl", "/r/runs/b/metrics.jsonl"}, []string{"a", "b"}},
		{"a lone file is named by its directory", []string{"/r/runs/*/metrics.jsonl"},
			[]string{"/r/runs/a/metrics.jsonl"}, []string{"a"}},
		{"file names vary", []string{"/r/logs/*.jsonl"},
			[]string{"/r/logs/train.jsonl", "/r/logs/eval.jsonl"}, []string{"train", "eval"}},
		{"deeper when the last part repeats", []string{"/r/exp/**/metrics.csv"},
			[]string{"/r/exp/x/version_0/metrics.csv", "/r/exp/y/version_0/metrics.csv", "/r/exp/y/version_1/metrics.csv"},
			[]string{"x/version_0", "y/version_0", "version_1"}},
		{"spelt out in full", []string{"/r/a/metrics.jsonl"},
			[]string{"/r/a/metrics.jsonl"}, []string{"metrics"}},
		{"the same file under two globs", []string{"/r/*/m.jsonl", "/r/a/*.jsonl"},
			[]string{"/r/a/m.jsonl", "/r/b/m.jsonl"}, []string{"a", "b"}},
		{"a file name of an extension only", []string{"/r/*"},
			[]string{"/r/.jsonl"}, []string{".jsonl"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := watcher.NewMatcher(c.globs, nil)
			if err != nil {
				t.Fatal(err)
			}
			walks := 0
			n := newShortNames(m, func() []string { walks++; return c.files })
			var got []string
			for _, f := range c.files {
				got = append(got, n.name(f))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("names %q, want %q", got, c.want)
			}
			if walks != 1 {
				t.Errorf("%d walks for files the first walk found, want 1", walks)
			}
		})
	}
}

// A name once given stays while the agent runs, even when a later file
// would make it ambiguous; the new file gets a longer one.
func TestShortNamesStable(t *testing.T) {
	m, err := watcher.NewMatcher([]string{"/r/**/metrics.jsonl"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"/r/p/a/metrics.jsonl"}
	n := newShortNames(m, func() []string { return files })
	if got := n.name(files[0]); got != "a" {
		t.Fatalf("first name %q, want a", got)
	}
	files = append(files, "/r/q/a/metrics.jsonl")
	if got := n.name(files[1]); got != "q/a" {
		t.Errorf("second name %q, want q/a", got)
	}
	if got := n.name(files[0]); got != "a" {
		t.Errorf("first name changed to %q", got)
	}
}

// The templates the agent executes see the fields config validation
// checks them against.
func TestNameDataMatchesConfig(t *testing.T) {
	fields := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			out = append(out, rt.Field(i).Name)
		}
		slices.Sort(out)
		return out
	}
	if a, c := fields(nameData{}), fields(config.RunTemplateData{}); !slices.Equal(a, c) {
		t.Errorf("agent template fields %v, config's %v", a, c)
	}
}
