package neptune

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/scalepb"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/sqlitedb"
)

// maxWalkDepth bounds the directory walk below a discovered path
// (<root>/.neptune/async/<uuid>/exec-*/ is 4 levels deep).
const maxWalkDepth = 6

const scaleDBName = "run_operations.sqlite3"

// found is what a walk collected.
type found struct {
	n1         []string // execution directories (holding data-*.log)
	dbs        []string // neptune-scale databases
	unreadable []parsers.Skipped
}

// unreadable describes a directory below the discovered path that could
// not be listed: whatever Neptune data it holds is left behind.
func unreadable(dir string, err error) parsers.Skipped {
	return parsers.Skipped{Reason: parsers.SkippedUnreadable, Kind: "directory", Path: dir, LeftBehind: true,
		Detail: fmt.Sprintf("cannot be read (%v); any Neptune data in it is not imported", err)}
}

// walk collects Neptune data at or below path.
func walk(path string) (found, error) {
	var out found
	fi, err := os.Stat(path)
	if err != nil {
		return out, fmt.Errorf("discover %s: %w", path, err)
	}
	if !fi.IsDir() {
		base := filepath.Base(path)
		switch {
		case strings.HasSuffix(base, ".sqlite3"):
			out.dbs = append(out.dbs, path)
		case isQueueFile(base):
			out.n1 = append(out.n1, filepath.Dir(path))
		}
		return out, nil
	}
	err = walkDir(path, 0, &out)
	return out, err
}

func isQueueFile(base string) bool {
	if base == "last_put_version" || base == "last_ack_version" || base == "metadata.json" {
		return true
	}
	_, ok := segmentNumber(base)
	return ok
}

// segmentNumber parses N from data-N.log.
func segmentNumber(base string) (int64, bool) {
	if !strings.HasPrefix(base, "data-") || !strings.HasSuffix(base, ".log") {
		return 0, false
	}
	n, err := strconv.ParseInt(base[len("data-"):len(base)-len(".log")], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// readDir lists a directory while discovering; tests replace it to make
// a directory unreadable whatever the user running them may read.
var readDir = os.ReadDir

func walkDir(dir string, depth int, out *found) error {
	entries, err := readDir(dir)
	if err != nil {
		if depth > 0 && errors.Is(err, fs.ErrPermission) {
			out.unreadable = append(out.unreadable, unreadable(dir, err))
			return nil
		}
		return fmt.Errorf("discover %s: %w", dir, err)
	}
	isExec := false
	for _, e := range entries {
		if e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0 {
			name := e.Name()
			switch {
			case name == scaleDBName:
				out.dbs = append(out.dbs, filepath.Join(dir, name))
			case filepath.Base(dir) == ".neptune" && strings.HasSuffix(name, ".sqlite3"):
				// neptune-scale 0.11 kept the database directly in .neptune/.
				out.dbs = append(out.dbs, filepath.Join(dir, name))
			case name == "last_put_version" || name == "last_ack_version":
				isExec = true
			default:
				if _, ok := segmentNumber(name); ok {
					isExec = true
				}
			}
		}
	}
	if isExec {
		out.n1 = append(out.n1, dir)
		return nil
	}
	if depth >= maxWalkDepth {
		return nil
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		// sync/ holds no metadata of value; upload_path/ is a run's files.
		if name == "sync" || name == "upload_path" || (strings.HasPrefix(name, ".") && name != ".neptune") {
			continue
		}
		if err := walkDir(filepath.Join(dir, name), depth+1, out); err != nil {
			return err
		}
	}
	return nil
}

// n1ID identifies a neptune-client run: its mode directory (async/ or
// offline/) and container uuid.
type n1ID struct {
	modeDir string
	uuid    string
	ctype   string
}

func (id n1ID) key() string { return keyPrefixN1 + id.modeDir + "#" + id.uuid }

// classifyN1 derives the run identity of an execution directory from the
// layout (docs/neptune-formats.md §2.1.1):
//
//	<mode>/<uuid>/exec-*/                    0.9-0.15 (LEGACY) async
//	<mode>/<uuid>/                           LEGACY offline
//	<mode>/<type>__<uuid>/exec-*/            0.16-1.8 async
//	<mode>/<type>__<uuid>/                   0.16-1.8 offline
//	<mode>/<type>__<uuid>__<pid>__<rand>/    1.9+
func classifyN1(execDir string) n1ID {
	runDir := execDir
	if strings.HasPrefix(filepath.Base(execDir), "exec-") {
		runDir = filepath.Dir(execDir)
	}
	id := n1ID{modeDir: filepath.Dir(runDir)}
	id.ctype, id.uuid = splitRunDirName(filepath.Base(runDir))
	return id
}

func splitRunDirName(name string) (ctype, uuid string) {
	parts := strings.Split(name, "__")
	switch len(parts) {
	case 1:
		return "run", name
	case 2, 4, 5:
		return parts[0], parts[1]
	}
	return "run", name
}

// n1Meta is metadata.json (1.9+).
type n1Meta struct {
	Mode             string `json:"mode"`
	ContainerID      string `json:"containerId"`
	ContainerType    string `json:"containerType"`
	StructureVersion int    `json:"structureVersion"`
	ClientVersion    string `json:"neptuneClientVersion"`
	CreatedAt        string `json:"createdAt"`
}

// n1Member is one execution directory of a run.
type n1Member struct {
	dir     string
	meta    *n1Meta
	created int64 // unix ms, the ordering key; 0 if unknown
}

// n1Members lists the execution directories of a run, oldest first.
func n1Members(id n1ID) ([]n1Member, error) {
	entries, err := os.ReadDir(id.modeDir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", id.modeDir, err)
	}
	return n1MembersIn(id, entries, nil), nil
}

// n1MembersIn is n1Members with the mode directory already listed. A run
// directory that cannot be listed is passed to onUnreadable, if not nil.
func n1MembersIn(id n1ID, entries []os.DirEntry, onUnreadable func(dir string, err error)) []n1Member {
	var out []n1Member
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, uuid := splitRunDirName(e.Name()); uuid != id.uuid {
			continue
		}
		runDir := filepath.Join(id.modeDir, e.Name())
		if hasQueue(runDir) {
			out = append(out, newN1Member(runDir))
			continue
		}
		subs, err := readDir(runDir)
		if err != nil {
			if onUnreadable != nil {
				onUnreadable(runDir, err)
			}
			continue
		}
		for _, s := range subs {
			if s.IsDir() && strings.HasPrefix(s.Name(), "exec-") && hasQueue(filepath.Join(runDir, s.Name())) {
				out = append(out, newN1Member(filepath.Join(runDir, s.Name())))
			}
		}
	}
	slices.SortStableFunc(out, func(a, b n1Member) int {
		if a.created != b.created {
			if a.created < b.created {
				return -1
			}
			return 1
		}
		return strings.Compare(a.dir, b.dir)
	})
	return out
}

func hasQueue(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if isQueueFile(e.Name()) && e.Name() != "metadata.json" {
			return true
		}
	}
	return false
}

func newN1Member(dir string) n1Member {
	m := n1Member{dir: dir}
	if b, err := os.ReadFile(filepath.Join(dir, "metadata.json")); err == nil {
		var meta n1Meta
		if json.Unmarshal(b, &meta) == nil {
			m.meta = &meta
			if t, err := time.Parse(time.RFC3339Nano, meta.CreatedAt); err == nil {
				m.created = t.UnixMilli()
			}
		}
	}
	if m.created == 0 {
		m.created = execDirTime(filepath.Base(dir))
	}
	if m.created == 0 {
		m.created = firstRecordTime(dir)
	}
	return m
}

// execDirTime reads the unix timestamp of exec-<unix-ts>-<date>[-<pid>]
// (0.16.18+). The older exec-<k>-<local date> has a counter, not a time.
func execDirTime(name string) int64 {
	rest, ok := strings.CutPrefix(name, "exec-")
	if !ok {
		return 0
	}
	head, _, _ := strings.Cut(rest, "-")
	f, err := strconv.ParseFloat(head, 64)
	if err != nil || f < 1e9 {
		return 0
	}
	return int64(f * 1000)
}

// firstRecordTime returns the time of the first record of a run's first
// segment ("at", else the first point's "ts"), or 0.
func firstRecordTime(dir string) int64 {
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		return 0
	}
	fh, err := os.Open(segs[0].path)
	if err != nil {
		return 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var d n1Decoder
	for i := 0; i < 16 && sc.Scan(); i++ {
		rec, err := d.decode(sc.Bytes())
		if err != nil {
			continue
		}
		if t := recordTime(rec); t > 0 {
			return t
		}
	}
	return 0
}

// segment is one data-N.log file.
type segment struct {
	n    int64
	path string
}

func listSegments(dir string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []segment
	for _, e := range entries {
		if n, ok := segmentNumber(e.Name()); ok && !e.IsDir() {
			out = append(out, segment{n: n, path: filepath.Join(dir, e.Name())})
		}
	}
	slices.SortFunc(out, func(a, b segment) int {
		switch {
		case a.n < b.n:
			return -1
		case a.n > b.n:
			return 1
		}
		return 0
	})
	return out, nil
}

// scaleDB is what is known about one neptune-scale database without
// reading all of it.
type scaleDB struct {
	path      string
	err       error // the database could not be read
	meta      sqlitedb.Metadata
	run       *scalepb.Run // the first row, when it is a CREATE_RUN
	firstTime int64        // the first row's enqueue time
}

// scopeDir is the directory whose databases can form fork families: the
// log directory (.neptune/) that holds the run directories.
func scopeDir(dbPath string) string {
	dir := filepath.Dir(dbPath)
	if filepath.Base(dbPath) == scaleDBName {
		return filepath.Dir(dir)
	}
	return dir
}

// dirTimeNS reads the time_ns suffix of <proj>_<run_id>_<time_ns>.
func dirTimeNS(dbPath string) int64 {
	name := filepath.Base(filepath.Dir(dbPath))
	if filepath.Base(dbPath) != scaleDBName {
		name = strings.TrimSuffix(filepath.Base(dbPath), ".sqlite3")
	}
	i := strings.LastIndexByte(name, '_')
	if i < 0 {
		return 0
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// scaleDBInfo returns the (cached) summary of a database. The metadata
// row and the CREATE_RUN row never change once written.
func (f *Format) scaleDBInfo(path string) *scaleDB {
	f.mu.Lock()
	// An empty database (a writer that has not committed yet) is read
	// again next time: its first row is what matters.
	if db, ok := f.dbs[path]; ok && db.err == nil && db.firstTime != 0 {
		f.mu.Unlock()
		return db
	}
	f.mu.Unlock()
	db := &scaleDB{path: path}
	db.err = readScaleDB(db)
	f.mu.Lock()
	f.dbs[path] = db
	f.mu.Unlock()
	return db
}

func readScaleDB(db *scaleDB) error {
	r, err := sqlitedb.Open(db.path)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx := context.Background()
	if db.meta, err = r.Metadata(ctx); err != nil {
		return err
	}
	_, err = r.Scan(ctx, 0, 1, func(row sqlitedb.Row) error {
		db.firstTime = row.Time
		if row.Type == opCreateRun {
			run, err := scalepb.DecodeRun(row.Op)
			if err != nil {
				return fmt.Errorf("%w: %s:%d: %v", ErrCorrupt, db.path, row.Seq, err)
			}
			db.run = &run
		}
		return nil
	})
	return err
}

// scaleGroup is one neptune-scale run: the databases sharing a scope,
// project and run id.
type scaleGroup struct {
	key       string
	scope     string
	project   string
	runID     string
	members   []*scaleDB
	parentKey string // the fork parent's group key, or ""
	broken    bool   // a database that could not be read (one member)
}

func scaleKey(scope, project, runID string) string {
	return keyPrefixScale + scope + "#" + project + "/" + runID
}

// scaleGroupsOf groups databases into runs, ordered by key.
func (f *Format) scaleGroupsOf(paths []string) []*scaleGroup {
	byKey := map[string]*scaleGroup{}
	var out []*scaleGroup
	for _, p := range paths {
		db := f.scaleDBInfo(p)
		if db.err != nil {
			// A database that cannot be read is a stream of its own, so
			// that only it fails to open.
			g := &scaleGroup{key: keyPrefixScale + p, scope: scopeDir(p), members: []*scaleDB{db}, broken: true}
			if _, dup := byKey[g.key]; !dup {
				byKey[g.key] = g
				out = append(out, g)
			}
			continue
		}
		key := scaleKey(scopeDir(p), db.meta.Project, db.meta.RunID)
		g, ok := byKey[key]
		if !ok {
			g = &scaleGroup{key: key, scope: scopeDir(p), project: db.meta.Project, runID: db.meta.RunID}
			byKey[key] = g
			out = append(out, g)
		}
		if !slices.ContainsFunc(g.members, func(m *scaleDB) bool { return m.path == p }) {
			g.members = append(g.members, db)
		}
	}
	for _, g := range out {
		sortMembers(g.members)
		if g.broken {
			continue
		}
		if run := g.firstRun(); run != nil && run.Fork != nil && run.Fork.ParentRunID != "" {
			proj := g.project
			if run.Fork.HasParentProject && run.Fork.ParentProject != "" {
				proj = run.Fork.ParentProject
			}
			g.parentKey = scaleKey(g.scope, proj, run.Fork.ParentRunID)
		}
	}
	slices.SortFunc(out, func(a, b *scaleGroup) int { return strings.Compare(a.key, b.key) })
	return out
}

// firstRun is the run's CREATE_RUN: the first database's that has one.
func (g *scaleGroup) firstRun() *scalepb.Run {
	for _, m := range g.members {
		if m.run != nil {
			return m.run
		}
	}
	return nil
}

func sortMembers(ms []*scaleDB) {
	slices.SortStableFunc(ms, func(a, b *scaleDB) int {
		ka, kb := a.firstTime, b.firstTime
		if ka == 0 || kb == 0 {
			ka, kb = dirTimeNS(a.path)/1e6, dirTimeNS(b.path)/1e6
		}
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return strings.Compare(a.path, b.path)
	})
}

// scopeGroups lists the runs of a scope directory.
func (f *Format) scopeGroups(scope string) ([]*scaleGroup, error) {
	var paths []string
	entries, err := os.ReadDir(scope)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", scope, err)
	}
	for _, e := range entries {
		p := filepath.Join(scope, e.Name())
		switch {
		case e.IsDir():
			if fi, err := os.Stat(filepath.Join(p, scaleDBName)); err == nil && fi.Mode().IsRegular() {
				paths = append(paths, filepath.Join(p, scaleDBName))
			}
		case strings.HasSuffix(e.Name(), ".sqlite3") && filepath.Base(scope) == ".neptune":
			paths = append(paths, p)
		}
	}
	return f.scaleGroupsOf(paths), nil
}
