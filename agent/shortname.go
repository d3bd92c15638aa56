package agent

import (
	"path/filepath"
	"strings"
	"sync"

	"github.com/mlop-ai/mlop-agent/watcher"
)

// shortNames gives each file of a source the shortest trailing part of its
// path that tells it apart from the source's other files: the default run
// name, {{.Short}}. Only the parts of the path the source's globs leave
// open count (runs/*/metrics.jsonl: the directory), so runs/a/metrics.jsonl
// and runs/b/metrics.jsonl are a and b, and a lone runs/a/metrics.jsonl is
// a as well; a file name that varies loses its extension (logs/*.jsonl:
// train). A path the globs spell out in full is named by its stem.
//
// The files compared are those the globs match when a name is first asked
// for (looked for again when a new path is asked about) and those of the
// source's checkpoint; a name once given does not change while the agent
// runs. It owns its lock, a leaf; the walk runs outside it.
type shortNames struct {
	m *watcher.Matcher
	// paths lists the files to compare: what the globs match now (a walk)
	// and the checkpoint's paths of the source.
	paths func() []string

	mu    sync.Mutex
	parts map[string][]string    // path -> the parts that vary
	tails map[int]map[string]int // k -> last k parts joined -> how many paths
	given map[string]string      // path -> the name given
}

func newShortNames(m *watcher.Matcher, paths func() []string) *shortNames {
	return &shortNames{m: m, paths: paths, parts: map[string][]string{}, given: map[string]string{}}
}

// name returns path's short name.
func (n *shortNames) name(path string) string {
	n.mu.Lock()
	if s, ok := n.given[path]; ok {
		n.mu.Unlock()
		return s
	}
	_, have := n.parts[path]
	n.mu.Unlock()
	var paths []string
	if !have {
		paths = n.paths() // outside the lock: a walk of the globs
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.given[path]; ok {
		return s
	}
	n.addLocked(append(paths, path))
	s := n.shortestLocked(path)
	n.given[path] = s
	return s
}

// addLocked adds paths to those compared.
func (n *shortNames) addLocked(paths []string) {
	added := false
	for _, p := range paths {
		if _, ok := n.parts[p]; ok {
			continue
		}
		n.parts[p] = n.varying(p)
		added = true
	}
	if added {
		n.tails = nil
	}
}

// varying is the parts of p the globs leave open, a varying file name
// without its extension; the stem when the globs spell p out.
func (n *shortNames) varying(p string) []string {
	v, base := n.m.Varying(p)
	if len(v) == 0 {
		b := filepath.Base(p)
		return []string{strings.TrimSuffix(b, filepath.Ext(b))}
	}
	v = append([]string(nil), v...)
	if base {
		last := v[len(v)-1]
		if stem := strings.TrimSuffix(last, filepath.Ext(last)); stem != "" {
			v[len(v)-1] = stem
		}
	}
	return v
}

// shortestLocked is the fewest trailing parts of path's that no other
// path shares; all of them when none is unique.
func (n *shortNames) shortestLocked(path string) string {
	v := n.parts[path]
	for k := 1; k < len(v); k++ {
		if n.tailCountLocked(k)[tail(v, k)] == 1 {
			return tail(v, k)
		}
	}
	return tail(v, len(v))
}

// tailCountLocked counts, over every path compared, the paths whose last k
// parts join to each string.
func (n *shortNames) tailCountLocked(k int) map[string]int {
	if n.tails == nil {
		n.tails = map[int]map[string]int{}
	}
	if c, ok := n.tails[k]; ok {
		return c
	}
	c := make(map[string]int, len(n.parts))
	for _, v := range n.parts {
		c[tail(v, k)]++
	}
	n.tails[k] = c
	return c
}

// tail joins the last k of v with "/".
func tail(v []string, k int) string {
	if k > len(v) {
		k = len(v)
	}
	return strings.Join(v[len(v)-k:], "/")
}
