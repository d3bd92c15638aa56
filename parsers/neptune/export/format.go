package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
)

// FormatName is the name the format is registered under.
const FormatName = "neptune-export"

func init() {
	parsers.RegisterStream(FormatName, New(nil))
}

// Format-specific settings read from parsers.Options.Params.
const (
	// ParamFilesDir is the exporter's --files-path: absolute, or relative
	// to the data directory (the parent of the project directories).
	// Default "../files", the exporter's default layout (exports/data
	// beside exports/files).
	ParamFilesDir = "files_dir"
	// ParamExporter says which exporter wrote the data: "neptune2",
	// "neptune3" or "auto" (default: decided per run, see doc.go).
	ParamExporter = "exporter"
	// ParamTimezone is the IANA time zone of the machine that ran a
	// neptune2 export: neptune-client 1.x hands series timestamps to the
	// exporter as naive local times, which end up in the parquet file as
	// if they were UTC. Default: UTC (no correction). Only runs of the
	// neptune2 variant are corrected.
	ParamTimezone = "timezone"
	// ParamExternalID chooses the runs' external ids: "run_id" (default,
	// the exported run_id, as the neptune-scale reader does) or
	// "project_run_id" ("<project_id>/<run_id>", for exports holding
	// several projects whose run ids collide).
	ParamExternalID = "external_id"
)

// keyPrefix starts every stream key: neptune-export:<project dir>/<run
// file prefix>, both sanitized names the exporter chose (stable and
// unique in one data directory).
const keyPrefix = FormatName + ":"

// Warning reasons (parsers.Warning.Reason), a closed set shared with the
// other Neptune readers.
const (
	ReasonUnknownOp   = mapping.ReasonUnknownOp
	ReasonCorrupt     = mapping.ReasonCorrupt
	ReasonBadStep     = mapping.ReasonBadStep
	ReasonBadValue    = mapping.ReasonBadValue
	ReasonMissingFile = mapping.ReasonMissingFile
	ReasonMissingPart = "missing_part" // a part number is missing between others
)

// ErrCorrupt is wrapped by errors about unreadable part files.
var ErrCorrupt = errors.New("corrupt neptune-exporter data")

// ErrUnknownStream is returned by Open for a key this format did not make
// or a run that is no longer there.
var ErrUnknownStream = errors.New("unknown neptune-export stream")

// Format reads neptune-exporter exports (parquet parts plus the files
// directory). One stream is one exported run. It is safe for concurrent
// use.
type Format struct {
	log *slog.Logger

	mu       sync.Mutex
	projects map[string]projectEntry // by project directory
	metas    map[string]metaEntry    // by part_0 path
	scans    map[string]scanEntry    // by part path
	logged   map[string]bool         // skipped items Discover logged
}

// New returns a Format whose Discover logs what it finds and does not
// import to log; nil logs nothing. The registered instance (nil) serves the
// agent, which calls DiscoverSkipped and logs the items itself, with its
// own logger; tests make their own.
func New(log *slog.Logger) *Format {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Format{log: log, projects: map[string]projectEntry{}, metas: map[string]metaEntry{},
		scans: map[string]scanEntry{}, logged: map[string]bool{}}
}

var _ parsers.StreamFormat = (*Format)(nil)

// Cache bounds: metadata is small and Discover needs it for every run;
// pre-scans are only shared by a fork family.
const (
	maxProjects = 1024
	maxMetas    = 1 << 17
	maxScans    = 1024
)

// projectEntry is the listing of a project directory, valid while the
// directory's modification time is unchanged: the exporter only ever adds
// files by renaming them into place, which changes it.
type projectEntry struct {
	mod     int64
	runs    []*runEntry
	pending []pendingRun
}

// listingSettle is how old a directory's modification time must be before
// its listing is cached, so that file systems with coarse timestamps
// cannot hide a change made in the same tick as the listing.
const listingSettle = 2 * time.Second

type metaEntry struct {
	sig  string
	meta *runMeta
	err  error
}

type scanEntry struct {
	sig  string
	scan partScan
}

// partRef is one part file of a run.
type partRef struct {
	n    int // the number in the name
	path string
	size int64
	mod  int64
}

func (p partRef) sig() string {
	return strconv.FormatInt(p.size, 10) + "@" + strconv.FormatInt(p.mod, 10)
}

// runEntry is one run found in a project directory.
type runEntry struct {
	dir, prefix string
	key         string
	parts       []partRef // by n; parts[0].n == 0
	meta        *runMeta
	metaErr     error
	parent      *runEntry
}

func (e *runEntry) signature() string {
	h := fnv.New64a()
	for _, p := range e.parts {
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", filepath.Base(p.path), p.size, p.mod)
	}
	return fmt.Sprintf("parquet:%016x", h.Sum64())
}

// parsePartName splits "<prefix>_part_<n>.parquet".
func parsePartName(name string) (prefix string, n int, ok bool) {
	base, ok := strings.CutSuffix(name, ".parquet")
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndex(base, "_part_")
	if i <= 0 {
		return "", 0, false
	}
	digits := base[i+len("_part_"):]
	if digits == "" || len(digits) > 9 || strings.TrimLeft(digits, "0123456789") != "" {
		return "", 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return "", 0, false
	}
	return base[:i], n, true
}

// maxDepth bounds how far Discover looks below its path: the data
// directory holds project directories, and one more level allows the
// exports directory holding data/ and files/.
const maxDepth = 2

// Discover lists the exported runs at path: a data directory (holding
// project directories), a directory above it (up to two levels), a
// project directory, or one run's part file. A run is listed only once
// its part_0.parquet exists (the exporter renames part_0 last);
// .parquet.tmp files are unfinished writes.
// What was found and is not imported (DiscoverSkipped) is logged, once
// per item, to the Format's logger.
func (f *Format) Discover(path string) ([]parsers.StreamInfo, error) {
	infos, skipped, err := f.DiscoverSkipped(path)
	for _, sk := range skipped {
		k := sk.Reason + "\x00" + sk.Path
		f.mu.Lock()
		seen := f.logged[k]
		f.logged[k] = true
		f.mu.Unlock()
		if !seen {
			f.log.Warn("neptune export data not imported", "reason", sk.Reason, "type", sk.Kind, "id", sk.ID, "path", sk.Path, "detail", sk.Detail)
		}
	}
	return infos, err
}

var _ parsers.SkipReporter = (*Format)(nil)

// DiscoverSkipped is Discover, plus what was found and is not imported:
// runs without part_0 yet (being exported, or an export that stopped),
// exported models and model versions (export-models' models/ and
// model_versions/ directories: mlop has no model registry), and
// directories that could not be read.
func (f *Format) DiscoverSkipped(path string) ([]parsers.StreamInfo, []parsers.Skipped, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("discover %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("discover %s: %w", path, err)
	}
	only := ""
	var w walked
	if fi.IsDir() {
		if w, err = projectDirs(abs); err != nil {
			return nil, nil, err
		}
	} else {
		prefix, _, ok := parsePartName(filepath.Base(abs))
		if !ok {
			prefix, ok = tmpPrefix(filepath.Base(abs))
		}
		if !ok {
			return nil, nil, nil
		}
		only = prefix
		dir := filepath.Dir(abs)
		if kind := containerKind(dir); kind != "" {
			w.containers = []string{dir}
		} else {
			w.projects = []string{dir}
		}
	}
	var out []parsers.StreamInfo
	skipped := w.unreadable
	for _, dir := range w.projects {
		pe, err := f.projectRuns(dir)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range pe.runs {
			if only != "" && e.prefix != only {
				continue
			}
			si := parsers.StreamInfo{Key: e.key, Path: e.parts[0].path, Signature: e.signature()}
			if e.parent != nil {
				// Also when only this run was asked for: the agent waits
				// for a parent it has discovered, and keeps a family in
				// one shard either way.
				si.Parent = e.parent.key
			}
			out = append(out, si)
		}
		for _, p := range pe.pending {
			if only == "" || p.prefix == only {
				skipped = append(skipped, p.skipped("run"))
			}
		}
	}
	for _, dir := range w.containers {
		pe, err := f.projectRuns(dir)
		if err != nil {
			return nil, nil, err
		}
		kind := containerKind(dir)
		for _, e := range pe.runs {
			if only == "" || e.prefix == only {
				skipped = append(skipped, f.exportedContainer(kind, e))
			}
		}
		for _, p := range pe.pending {
			if only == "" || p.prefix == only {
				skipped = append(skipped, p.skipped(kind))
			}
		}
	}
	sortStreams(out)
	slices.SortFunc(skipped, func(a, b parsers.Skipped) int { return strings.Compare(a.Path, b.Path) })
	return out, skipped, nil
}

// containerKind tells the directories export-models writes
// (<project>/models/ and <project>/model_versions/): "model",
// "model_version", or "" for any other directory.
func containerKind(dir string) string {
	switch filepath.Base(dir) {
	case "models":
		return "model"
	case "model_versions":
		return "model_version"
	}
	return ""
}

// tmpPrefix splits "<prefix>_part_<n>.parquet.tmp", an unfinished part.
func tmpPrefix(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, ".tmp")
	if !ok {
		return "", false
	}
	prefix, _, ok := parsePartName(base)
	return prefix, ok
}

// pendingRun is a run of a project directory without its part_0.parquet:
// its part files, finished or not.
type pendingRun struct {
	dir, prefix string
	files       []string
}

func (p pendingRun) skipped(kind string) parsers.Skipped {
	return parsers.Skipped{Reason: parsers.SkippedIncomplete, Kind: kind, ID: p.prefix,
		Path: filepath.Join(p.dir, p.prefix+"_part_0.parquet"),
		Detail: fmt.Sprintf("no %s_part_0.parquet yet (%d part file(s) so far): still being exported, or the export stopped; an import after the export finishes reads it",
			p.prefix, len(p.files))}
}

// exportedContainer describes a model or model version exported by
// export-models, with its attributes and series counted from its parts.
func (f *Format) exportedContainer(kind string, e *runEntry) parsers.Skipped {
	sk := parsers.Skipped{Reason: parsers.SkippedContainer, Kind: kind, ID: e.prefix, Path: e.parts[0].path, LeftBehind: true}
	if e.meta != nil && e.meta.runID != "" {
		sk.ID = e.meta.runID
	}
	attrs, series, err := countAttributes(e.parts)
	sk.Attributes, sk.Series = attrs, series
	sk.Detail = fmt.Sprintf("an exported Neptune %s (%d attributes, %d series): mlop has no model registry, so it is not imported", kind, attrs, series)
	if err != nil {
		sk.Detail += fmt.Sprintf("; its parts could not be read to the end: %v", err)
	}
	return sk
}

// countAttributes counts the distinct attribute paths of a run's parts:
// those with a value (parameters, files, file sets, artifacts) and series.
func countAttributes(parts []partRef) (attrs, series int64, err error) {
	kinds := map[string]bool{} // path -> is a series
	for _, p := range parts {
		pf, err := openPart(p.path)
		if err != nil {
			return attrs, series, err
		}
		r, err := newRowReader(pf, &interner{}, want(cPath, cType))
		if err != nil {
			pf.close()
			return attrs, series, err
		}
		var rd rowData
		for r.read(&rd) {
			switch {
			case rd.path == "":
			case rd.typ == tFloatSeries || rd.typ == tStringSeries || rd.typ == tHistogramSeries || rd.typ == tFileSeries:
				kinds[rd.path] = true
			case rd.typ != tUnknown && rd.typ != tNull:
				if _, ok := kinds[rd.path]; !ok {
					kinds[rd.path] = false
				}
			}
		}
		rerr := r.err
		r.close()
		pf.close()
		if rerr != nil {
			return attrs, series, classify(pf, rerr)
		}
	}
	for _, s := range kinds {
		if s {
			series++
		} else {
			attrs++
		}
	}
	return attrs, series, nil
}

// readDir lists a directory while discovering; tests replace it to make a
// directory unreadable whatever the user running them may read.
var readDir = os.ReadDir

// walked is what projectDirs found.
type walked struct {
	projects   []string // directories holding runs' part files
	containers []string // export-models' models/ and model_versions/ directories
	unreadable []parsers.Skipped
}

// projectDirs finds the directories holding part files at or below root.
func projectDirs(root string) (walked, error) {
	var out walked
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		entries, err := readDir(dir)
		if err != nil {
			if dir != root && errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			if dir != root && errors.Is(err, fs.ErrPermission) {
				out.unreadable = append(out.unreadable, parsers.Skipped{Reason: parsers.SkippedUnreadable, Kind: "directory", Path: dir, LeftBehind: true,
					Detail: fmt.Sprintf("cannot be read (%v); any export data in it is not imported", err)})
				return nil
			}
			return fmt.Errorf("discover %s: %w", dir, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			_, _, part := parsePartName(e.Name())
			_, tmp := tmpPrefix(e.Name())
			if !part && !tmp {
				continue
			}
			if containerKind(dir) != "" {
				out.containers = append(out.containers, dir)
				return nil
			}
			out.projects = append(out.projects, dir)
			// export-models may share the data path: its models/ and
			// model_versions/ sit beside the runs' parts.
			for _, c := range entries {
				if c.IsDir() && containerKind(c.Name()) != "" {
					if err := walk(filepath.Join(dir, c.Name()), depth+1); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if depth >= maxDepth {
			return nil
		}
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				if err := walk(filepath.Join(dir, e.Name()), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, 0); err != nil {
		return walked{}, err
	}
	return out, nil
}

// projectRuns lists the complete runs of one project directory with their
// metadata, fork parents resolved within the directory, and the runs
// without part_0. The result is shared: callers must not modify it.
func (f *Format) projectRuns(dir string) (projectEntry, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return projectEntry{}, fmt.Errorf("discover %s: %w", dir, err)
	}
	mod := fi.ModTime().UnixNano()
	f.mu.Lock()
	if c, ok := f.projects[dir]; ok && c.mod == mod {
		f.mu.Unlock()
		return c, nil
	}
	f.mu.Unlock()
	pe, err := f.listProject(dir)
	if err != nil {
		return projectEntry{}, err
	}
	pe.mod = mod
	settled := time.Since(fi.ModTime()) > listingSettle
	for _, e := range pe.runs {
		if e.metaErr != nil && isIOError(e.metaErr) {
			settled = false // try again next time
		}
	}
	if settled {
		f.mu.Lock()
		if len(f.projects) >= maxProjects {
			clear(f.projects)
		}
		f.projects[dir] = pe
		f.mu.Unlock()
	}
	return pe, nil
}

// listProject reads a project directory.
func (f *Format) listProject(dir string) (projectEntry, error) {
	entries, err := readDir(dir)
	if err != nil {
		return projectEntry{}, fmt.Errorf("discover %s: %w", dir, err)
	}
	byPrefix := map[string]*runEntry{}
	var order []string
	tmps := map[string][]string{} // unfinished parts by prefix
	for _, de := range entries {
		if de.IsDir() {
			continue
		}
		prefix, n, ok := parsePartName(de.Name())
		if !ok {
			if prefix, ok := tmpPrefix(de.Name()); ok {
				if tmps[prefix] == nil && byPrefix[prefix] == nil {
					order = append(order, prefix)
				}
				tmps[prefix] = append(tmps[prefix], filepath.Join(dir, de.Name()))
			}
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		e := byPrefix[prefix]
		if e == nil {
			e = &runEntry{dir: dir, prefix: prefix, key: keyPrefix + filepath.Base(dir) + "/" + prefix}
			byPrefix[prefix] = e
			if tmps[prefix] == nil {
				order = append(order, prefix)
			}
		}
		e.parts = append(e.parts, partRef{n: n, path: filepath.Join(dir, de.Name()), size: info.Size(), mod: info.ModTime().UnixNano()})
	}
	var pe projectEntry
	for _, prefix := range order {
		e := byPrefix[prefix]
		if e != nil {
			slices.SortFunc(e.parts, func(a, b partRef) int { return a.n - b.n })
		}
		if e == nil || e.parts[0].n != 0 {
			// Being exported (or the export stopped): part_0 is renamed
			// into place last.
			p := pendingRun{dir: dir, prefix: prefix, files: tmps[prefix]}
			if e != nil {
				for _, part := range e.parts {
					p.files = append(p.files, part.path)
				}
			}
			pe.pending = append(pe.pending, p)
			delete(byPrefix, prefix)
			continue
		}
		e.meta, e.metaErr = f.metaOf(e.parts[0])
		pe.runs = append(pe.runs, e)
	}
	linkParents(pe.runs)
	return pe, nil
}

// linkParents resolves sys/forking/parent to a run of the same directory:
// by run_id (what the exporter's own loader assumes), else by custom run
// id or sys/id.
func linkParents(runs []*runEntry) {
	find := func(v string, self *runEntry, by func(*runMeta) string) *runEntry {
		for _, o := range runs {
			if o != self && o.meta != nil && by(o.meta) == v {
				return o
			}
		}
		return nil
	}
	for _, e := range runs {
		if e.meta == nil || e.meta.forkParent == "" {
			continue
		}
		v := e.meta.forkParent
		for _, by := range []func(*runMeta) string{
			func(m *runMeta) string { return m.runID },
			func(m *runMeta) string { return m.customID },
			func(m *runMeta) string { return m.sysID },
		} {
			if p := find(v, e, by); p != nil {
				e.parent = p
				break
			}
		}
	}
	// Break cycles (a corrupt export): a run whose ancestry returns to
	// itself loses its link.
	for _, e := range runs {
		seen := map[*runEntry]bool{e: true}
		for p := e.parent; p != nil; p = p.parent {
			if seen[p] {
				e.parent = nil
				break
			}
			seen[p] = true
		}
	}
}

// sortStreams orders parents before children, then by key.
func sortStreams(s []parsers.StreamInfo) {
	parent := map[string]string{}
	for _, si := range s {
		parent[si.Key] = si.Parent
	}
	depth := func(k string) int {
		d := 0
		for p := parent[k]; p != "" && d <= len(s); p = parent[p] {
			d++
		}
		return d
	}
	slices.SortStableFunc(s, func(a, b parsers.StreamInfo) int {
		if da, db := depth(a.Key), depth(b.Key); da != db {
			return da - db
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// metaOf returns the metadata of a run from its part_0, cached while the
// file is unchanged.
func (f *Format) metaOf(p partRef) (*runMeta, error) {
	sig := p.sig()
	f.mu.Lock()
	if e, ok := f.metas[p.path]; ok && e.sig == sig {
		f.mu.Unlock()
		return e.meta, e.err
	}
	f.mu.Unlock()
	m, err := readMeta(p.path)
	if err != nil && isIOError(err) {
		// Not cached: the next call tries again.
		return nil, err
	}
	f.mu.Lock()
	if len(f.metas) >= maxMetas {
		clear(f.metas)
	}
	f.metas[p.path] = metaEntry{sig: sig, meta: m, err: err}
	f.mu.Unlock()
	return m, err
}

// scanOf returns the pre-scan of one part, cached while it is unchanged.
func (f *Format) scanOf(p partRef) partScan {
	sig := p.sig()
	f.mu.Lock()
	if e, ok := f.scans[p.path]; ok && e.sig == sig {
		f.mu.Unlock()
		return e.scan
	}
	f.mu.Unlock()
	sc := prescanPart(p.path)
	if sc.err != nil && isIOError(sc.err) {
		return sc
	}
	f.mu.Lock()
	if len(f.scans) >= maxScans {
		clear(f.scans)
	}
	f.scans[p.path] = scanEntry{sig: sig, scan: sc}
	f.mu.Unlock()
	return sc
}

// ioError marks errors that are the machine's, not the file's.
type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

func isIOError(err error) bool {
	var e *ioError
	return errors.As(err, &e)
}

// streamState is what Chunk.State holds.
type streamState struct {
	V   int           `json:"v"`
	Map mapping.State `json:"m"`
}

const stateVersion = 1

func decodeState(b []byte) (*streamState, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var st streamState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode neptune-export state: %w", err)
	}
	if st.V != stateVersion {
		return nil, fmt.Errorf("decode neptune-export state: unknown version %d", st.V)
	}
	return &st, nil
}

// Open starts reading one run after resume, with the state saved with it.
func (f *Format) Open(info parsers.StreamInfo, resume event.Position, state []byte, opts parsers.Options) (parsers.Stream, error) {
	if !strings.HasPrefix(info.Key, keyPrefix) {
		return nil, fmt.Errorf("open %s: %w", info.Key, ErrUnknownStream)
	}
	dir := filepath.Dir(info.Path)
	prefix, n, ok := parsePartName(filepath.Base(info.Path))
	if !ok || n != 0 {
		return nil, fmt.Errorf("open %s: %s is not a part_0 file: %w", info.Key, info.Path, ErrUnknownStream)
	}
	if kind := containerKind(dir); kind != "" {
		// DiscoverSkipped lists exported models as skipped, never as
		// streams.
		return nil, fmt.Errorf("open %s: an exported %s is not a run: %w", info.Key, kind, ErrUnknownStream)
	}
	pe, err := f.projectRuns(dir)
	if err != nil {
		return nil, err
	}
	runs := pe.runs
	var e *runEntry
	for _, r := range runs {
		if r.prefix == prefix {
			e = r
		}
	}
	if e == nil {
		return nil, fmt.Errorf("open %s: %w", info.Key, ErrUnknownStream)
	}
	if e.metaErr != nil {
		return nil, fmt.Errorf("open %s: %w", info.Key, e.metaErr)
	}
	st, err := decodeState(state)
	if err != nil {
		st = nil // unreadable: rebuilt by replaying
	}
	if st != nil && !st.Map.RunDone {
		st = nil // saved before the first event: start afresh
	}
	return f.openStream(info, e, runs, resume, st, opts)
}
