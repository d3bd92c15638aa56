package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// pattern is one compiled glob: absolute, split into path segments, where a
// "**" segment matches zero or more directories.
type pattern struct {
	raw  string
	segs []string
	name bool // no "/": matches the file name alone (exclude patterns only)
}

// Matcher matches paths against include and exclude globs.
type Matcher struct {
	include []pattern
	exclude []pattern
}

// NewMatcher compiles absolute glob patterns. Each segment uses
// filepath.Match syntax; a segment that is exactly "**" matches any number
// of directories, including none.
func NewMatcher(include, exclude []string) (*Matcher, error) {
	m := &Matcher{}
	for _, raw := range include {
		p, err := compile(raw)
		if err != nil {
			return nil, err
		}
		m.include = append(m.include, p)
	}
	for _, raw := range exclude {
		if !strings.Contains(raw, "/") {
			if _, err := filepath.Match(raw, ""); err != nil {
				return nil, fmt.Errorf("glob %q: %w", raw, err)
			}
			m.exclude = append(m.exclude, pattern{raw: raw, name: true})
			continue
		}
		p, err := compile(raw)
		if err != nil {
			return nil, err
		}
		m.exclude = append(m.exclude, p)
	}
	return m, nil
}

func compile(raw string) (pattern, error) {
	if !filepath.IsAbs(raw) {
		return pattern{}, fmt.Errorf("glob %q: not an absolute path", raw)
	}
	clean := filepath.Clean(raw)
	segs := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	for _, s := range segs {
		if s == "**" {
			continue
		}
		if strings.Contains(s, "**") {
			return pattern{}, fmt.Errorf("glob %q: ** must be a whole path segment", raw)
		}
		if _, err := filepath.Match(s, ""); err != nil {
			return pattern{}, fmt.Errorf("glob %q: %w", raw, err)
		}
	}
	return pattern{raw: clean, segs: segs}, nil
}

// fileKind names a non-regular file type.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

func splitPath(path string) []string {
	return strings.Split(strings.TrimPrefix(filepath.Clean(path), "/"), "/")
}

// Match reports whether path matches an include pattern and no exclude
// pattern.
func (m *Matcher) Match(path string) bool {
	segs := splitPath(path)
	ok := false
	for _, p := range m.include {
		if matchSegs(p.segs, segs) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, p := range m.exclude {
		if p.name {
			if ok, _ := filepath.Match(p.raw, segs[len(segs)-1]); ok {
				return false
			}
			continue
		}
		if matchSegs(p.segs, segs) {
			return false
		}
	}
	return true
}

func matchSegs(pat, path []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(path); i++ {
				if matchSegs(rest, path[i:]) {
					return true
				}
			}
			return false
		}
		if len(path) == 0 {
			return false
		}
		if ok, _ := filepath.Match(pat[0], path[0]); !ok {
			return false
		}
		pat, path = pat[1:], path[1:]
	}
	return len(path) == 0
}

// Varying returns the segments of path that the first include pattern it
// matches does not spell out: the path with the pattern's literal leading
// and trailing segments removed (runs/*/metrics.jsonl and
// runs/a/metrics.jsonl: [a]; logs/**/*.csv and logs/x/y/m.csv: [x y m.csv]).
// nil when no pattern matches or every segment is literal. base says
// whether the last segment returned is the file name.
func (m *Matcher) Varying(path string) (varying []string, base bool) {
	segs := splitPath(path)
	for _, p := range m.include {
		if !matchSegs(p.segs, segs) {
			continue
		}
		lo, hi := 0, len(segs)
		for lo < len(p.segs) && lo < hi && literal(p.segs[lo]) {
			lo++
		}
		for n := len(p.segs) - 1; n >= lo && hi > lo && literal(p.segs[n]); n-- {
			hi--
		}
		if lo >= hi {
			return nil, false
		}
		return segs[lo:hi], hi == len(segs)
	}
	return nil, false
}

// literal reports whether a pattern segment matches only itself.
func literal(seg string) bool { return seg != "**" && !strings.ContainsAny(seg, `*?[\`) }

// mayContain reports whether a pattern could match something below dir.
func mayContain(pat, dir []string) bool {
	for len(dir) > 0 {
		if len(pat) == 0 {
			return false
		}
		if pat[0] == "**" {
			return true
		}
		if ok, _ := filepath.Match(pat[0], dir[0]); !ok {
			return false
		}
		pat, dir = pat[1:], dir[1:]
	}
	return len(pat) > 0
}

// MayContain reports whether any file below dir could match.
func (m *Matcher) MayContain(dir string) bool {
	segs := splitPath(dir)
	if dir == "/" {
		segs = nil
	}
	for _, p := range m.include {
		if mayContain(p.segs, segs) {
			return true
		}
	}
	return false
}

// Roots returns the deepest existing directories that hold every possible
// match: the literal prefix of each pattern, walked up to the nearest
// directory that exists.
func (m *Matcher) Roots() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range m.include {
		var lit []string
		for _, s := range p.segs[:len(p.segs)-1] {
			if strings.ContainsAny(s, `*?[\`) {
				break
			}
			lit = append(lit, s)
		}
		root := "/" + strings.Join(lit, "/")
		for {
			if fi, err := os.Stat(root); err == nil && fi.IsDir() {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				break
			}
			root = parent
		}
		if !seen[root] {
			seen[root] = true
			out = append(out, root)
		}
	}
	sort.Strings(out)
	return out
}

// Glob walks the roots and returns every matching regular file and every
// directory visited, sorted. Symbolic links are followed, to files and to
// directories (a directory reached twice through links is walked once), and
// paths are reported as the patterns see them, not resolved. Unreadable
// directories are skipped; the error lists them.
func (m *Matcher) Glob() (files, dirs []string, err error) {
	r := m.Scan()
	return r.Files, r.Dirs, r.Err
}

// Skipped is a path the globs match that cannot be read as a file, and why
// (a Skip* reason).
type Skipped struct {
	Path   string
	Reason string
	Err    error
}

// Reasons a matched path is not read. Each is reported once per path.
const (
	SkipDirectory  = "directory"        // a file glob matched a directory
	SkipNotRegular = "not_regular"      // a FIFO, socket or device
	SkipDangling   = "dangling_symlink" // a symlink to nothing
	SkipLoop       = "symlink_loop"     // a symlink cycle
	SkipUnreadable = "unreadable"       // permission denied, I/O error
	SkipBinary     = "binary"           // not text: a line format cannot read it
	SkipUnreadDir  = "unreadable_dir"   // a directory the globs must search cannot be listed
)

// ScanResult is what one walk of the globs found.
type ScanResult struct {
	Files   []string  // regular files that match, sorted
	Dirs    []string  // directories searched (to watch), sorted
	Skipped []Skipped // matching paths that are not regular files, and directories that could not be listed
	Err     error     // every error met on the way, joined
}

// Scan walks the globs once: the regular files that match, the directories
// searched, and what matched but cannot be read as a file.
func (m *Matcher) Scan() ScanResult {
	w := walker{m: m, seenReal: map[string]bool{}}
	for _, root := range m.Roots() {
		w.walk(root, true)
	}
	sort.Strings(w.files)
	sort.Strings(w.dirs)
	sort.Slice(w.skipped, func(i, j int) bool { return w.skipped[i].Path < w.skipped[j].Path })
	return ScanResult{Files: w.files, Dirs: w.dirs, Skipped: w.skipped, Err: errors.Join(w.errs...)}
}

// GlobAll returns every matching path, directories included (a .neptune
// directory, a run directory), sorted. A matching directory is not searched
// further.
func (m *Matcher) GlobAll() ([]string, error) {
	w := walker{m: m, seenReal: map[string]bool{}, matchDirs: true}
	for _, root := range m.Roots() {
		if m.Match(root) {
			w.files = append(w.files, root)
			continue
		}
		w.walk(root, true)
	}
	sort.Strings(w.files)
	return w.files, errors.Join(w.errs...)
}

type walker struct {
	m         *Matcher
	matchDirs bool
	seenReal  map[string]bool
	files     []string
	dirs      []string
	skipped   []Skipped
	errs      []error
}

func (w *walker) walk(dir string, isRoot bool) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		if !isRoot {
			w.errs = append(w.errs, err)
		}
		return
	}
	if w.seenReal[real] {
		return
	}
	w.seenReal[real] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			w.errs = append(w.errs, err)
			w.skipped = append(w.skipped, Skipped{Path: dir, Reason: SkipUnreadDir, Err: err})
		}
		return
	}
	w.dirs = append(w.dirs, dir)
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		typ := e.Type()
		if typ&fs.ModeSymlink != 0 {
			fi, err := os.Stat(path)
			if err != nil {
				if w.m.Match(path) {
					reason := SkipDangling
					if errors.Is(err, syscall.ELOOP) {
						reason = SkipLoop
					}
					w.skipped = append(w.skipped, Skipped{Path: path, Reason: reason, Err: err})
				}
				continue
			}
			typ = fi.Mode().Type()
		}
		switch {
		case typ.IsDir():
			if w.matchDirs && w.m.Match(path) {
				w.files = append(w.files, path)
				continue
			}
			if w.m.MayContain(path) {
				w.walk(path, false)
			} else if !w.matchDirs && w.m.Match(path) {
				w.skipped = append(w.skipped, Skipped{Path: path, Reason: SkipDirectory,
					Err: errors.New("a directory, not a file (end the glob with /*.jsonl or similar)")})
			}
		case typ.IsRegular():
			if w.m.Match(path) {
				w.files = append(w.files, path)
			}
		default:
			if w.m.Match(path) {
				w.skipped = append(w.skipped, Skipped{Path: path, Reason: SkipNotRegular,
					Err: fmt.Errorf("not a regular file but a %s", fileKind(typ))})
			}
		}
	}
}
