package agent

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// What a backfill or import found and did not import, beyond what the
// stream formats report (parsers.Skipped*): it is never silent about
// them.
const (
	// NothingFound: a source's paths match nothing it can read.
	NothingFound = "nothing_found"
	// NothingUsable: a file whose records were all bad.
	NothingUsable = "no_usable_records"
	// NothingInFile: a file with no records at all (header only, empty).
	NothingInFile = "empty"
	// MissingFiles: files the data refers to that are not on this
	// machine (Neptune uploads recorded elsewhere).
	MissingFiles = "missing_files"
)

// accountNothing says, at the end of a backfill or import, once each and
// with the reason: a source that gave no run at all, each file that gave
// nothing, and the files the data refers to that are not here. They go to
// the report's not_imported list; it returns how many of them leave data
// behind or leave a source with nothing, which make the command exit 3.
func (a *Agent) accountNothing() int {
	bySource := map[string][]*streamRT{}
	for _, st := range a.streams.list() {
		bySource[st.source] = append(bySource[st.source], st)
	}
	failed := map[string]bool{}
	for _, f := range a.rep.fails.snapshot() {
		failed[f.Source] = true
	}
	for _, n := range a.rep.notImported.list() {
		failed[n.Source] = true
	}
	serious := 0
	for _, s := range a.srcs {
		streams := bySource[s.cfg.Name]
		sort.Slice(streams, func(i, j int) bool { return streams[i].ls.Path() < streams[j].ls.Path() })
		produced := false
		var nothing []NotImported
		for _, st := range streams {
			if len(st.ls.Runs()) > 0 {
				produced = true
				continue
			}
			if st.ls.Failed() != "" || st.unusable.Load() {
				continue // said already, and counted as failed
			}
			nothing = append(nothing, s.nothingIn(st))
		}
		if len(streams) == 0 && s.discovered.Load() == 0 && !failed[s.cfg.Name] {
			n := NotImported{Source: s.cfg.Name, Reason: NothingFound, Path: strings.Join(s.cfg.Paths, " "),
				Detail: fmt.Sprintf("no %s data matches the source's paths (mlop-agent check lists what they match)", s.cfg.Format)}
			s.log.Warn("found nothing to import", "paths", n.Path, "format", s.cfg.Format,
				"hint", "mlop-agent check lists what the paths match")
			a.rep.notImported.addInput(n)
			serious++
		}
		for _, n := range nothing {
			s.log.Warn("file gave nothing", "path", n.Path, "reason", n.Reason, "detail", n.Detail)
			a.rep.notImported.addInput(n)
			if n.LeftBehind || !produced {
				serious++
			}
		}
		if n, prefix := s.missing.summary(); n > 0 {
			detail := fmt.Sprintf("%d file(s) the data refers to are not on this machine", n)
			hint := ""
			if prefix != "" {
				detail += fmt.Sprintf(", recorded under %s", prefix)
				hint = fmt.Sprintf("if they are elsewhere now, pass --path-map %s=DIR (import) or params.path_map (a configured source)", prefix)
			}
			if prefix == "" {
				detail += " (e.g. " + strings.Join(s.missing.examples(), ", ") + ")"
			}
			s.log.Warn("files not found", "count", n, "recorded_under", prefix, "hint", hint)
			if hint != "" {
				detail += "; " + hint
			}
			a.rep.notImported.addInput(NotImported{Source: s.cfg.Name, Reason: MissingFiles, Path: prefix,
				LeftBehind: true, Detail: detail})
			if !a.opts.AllowMissingFiles {
				serious++
			}
		}
	}
	return serious
}

// nothingIn describes a stream that fed no run.
func (s *sourceRT) nothingIn(st *streamRT) NotImported {
	n := NotImported{Source: s.cfg.Name, Path: st.ls.Path()}
	read, bad := st.read.Load(), st.bad.Load()
	st.mu.Lock()
	var warned []string
	for r, c := range st.warnings {
		warned = append(warned, fmt.Sprintf("%s %d", r, c))
	}
	st.mu.Unlock()
	sort.Strings(warned)
	switch {
	case read > 0 && bad == read:
		n.Reason, n.LeftBehind = NothingUsable, true
		n.Detail = fmt.Sprintf("%d record(s) read, every one bad (see the bad record lines and dead_letter.path)", read)
	case len(warned) > 0:
		n.Reason, n.LeftBehind = NothingUsable, true
		n.Detail = "nothing usable; skipped: " + strings.Join(warned, ", ")
	case read > 0:
		n.Reason = NothingInFile
		n.Detail = fmt.Sprintf("%d record(s) read, none with data (comments, blank lines, a header)", read)
	default:
		n.Reason = NothingInFile
		n.Detail = "no records"
	}
	return n
}

// maxMissingKept bounds the recorded paths kept to suggest a path map.
const maxMissingKept = 1000

// missingFiles counts the files a source's data refers to that are not on
// this machine and keeps the first maxMissingKept absolute paths recorded
// for them: their common directory is the path map to suggest. It owns
// its lock, a leaf.
type missingFiles struct {
	mu       sync.Mutex
	n        int
	recorded []string // absolute
	first    []string // the first few of any kind, for the report
}

func (m *missingFiles) add(recorded string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	if filepath.IsAbs(recorded) && len(m.recorded) < maxMissingKept {
		m.recorded = append(m.recorded, filepath.Clean(recorded))
	}
	if len(m.first) < 3 {
		m.first = append(m.first, recorded)
	}
}

// examples returns the first few recorded paths.
func (m *missingFiles) examples() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.first...)
}

// summary returns how many files are missing and the deepest directory
// holding every absolute path recorded for them ("" when none is
// absolute).
func (m *missingFiles) summary() (int, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.recorded) == 0 {
		return m.n, ""
	}
	prefix := filepath.Dir(m.recorded[0])
	for _, p := range m.recorded[1:] {
		for prefix != "/" && !strings.HasPrefix(p, prefix+"/") {
			prefix = filepath.Dir(prefix)
		}
	}
	return m.n, prefix
}
