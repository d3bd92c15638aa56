package neptune

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/scalepb"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/sqlitedb"
)

// run_operations.operation_type values.
const (
	opUpdateSnapshot = 0
	opCreateRun      = 1
)

// scanRows is how many rows one query reads.
const scanRows = 1024

// maxCachedScans bounds the pre-scan cache of a Format.
const maxCachedScans = 64

// errReloadUploads stops a scan at a row whose file is not in the cached
// file_upload_requests: the table is re-read and the row mapped again.
var errReloadUploads = errors.New("reload file upload requests")

// scaleScan is what a pre-scan of one database learns.
type scaleScan struct {
	sig   string
	steps mapping.StepScan
	// maxCommitted is, per series, the highest step of a non-preview
	// point: a preview at or below it has been superseded.
	maxCommitted map[string]int64
	// configs holds the database's final configs (assigned atoms, as
	// config keys and values), for the forks that inherit them.
	configs map[string]any
}

// dbSig identifies the content of a database and its WAL.
func dbSig(path string) string {
	var b []byte
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			b = strconv.AppendInt(b, fi.Size(), 10)
			b = append(b, '@')
			b = strconv.AppendInt(b, fi.ModTime().UnixNano(), 10)
		}
		b = append(b, ';')
	}
	return string(b)
}

var (
	suffixStdout = []byte("/stdout")
	suffixStderr = []byte("/stderr")
)

func isConsoleKey(key []byte, intern func([]byte) string) bool {
	if !bytes.HasSuffix(key, suffixStdout) && !bytes.HasSuffix(key, suffixStderr) {
		return false
	}
	_, ok := mapping.ConsoleStream(intern(key))
	return ok
}

// prescanDB reads every row of a database for its steps and committed
// maxima (cached while the files do not change).
func (f *Format) prescanDB(ctx context.Context, r *sqlitedb.Reader) (scaleScan, error) {
	path := r.Path()
	sig := dbSig(path)
	f.mu.Lock()
	if sc, ok := f.scans[path]; ok && sc.sig == sig {
		f.mu.Unlock()
		return sc, nil
	}
	f.mu.Unlock()
	sc := scaleScan{sig: sig, maxCommitted: map[string]int64{}, configs: map[string]any{}}
	names := map[string]string{}
	intern := func(b []byte) string {
		if s, ok := names[string(b)]; ok {
			return s
		}
		s := string(b)
		names[s] = s
		return s
	}
	var snap scalepb.Snapshot
	var after int64
	for {
		n, err := r.Scan(ctx, after, 1<<16, func(row sqlitedb.Row) error {
			after = row.Seq
			if row.Type != opUpdateSnapshot || scalepb.DecodeSnapshot(row.Op, &snap) != nil {
				return nil
			}
			for i := range snap.Assign {
				e := &snap.Assign[i]
				if v, ok := atomValue(&e.Value); ok && !bytes.HasPrefix(e.Key, []byte("sys/")) {
					if k, cv, ok := mapping.ConfigValue(string(e.Key), v); ok {
						sc.configs[k] = cv
					}
				}
			}
			if !snap.HasStep {
				return nil
			}
			micro, ok := snap.Step.MicroUnits()
			if !ok {
				return nil
			}
			preview := snap.HasPreview && snap.Preview.IsPreview
			counted := false
			for i := range snap.Append {
				key := snap.Append[i].Key
				if isConsoleKey(key, intern) {
					continue
				}
				if !counted {
					sc.steps.Add(micro)
					counted = true
				}
				if !preview {
					k := intern(key)
					if cur, ok := sc.maxCommitted[k]; !ok || micro > cur {
						sc.maxCommitted[k] = micro
					}
				}
			}
			return nil
		})
		if err != nil {
			return sc, err
		}
		if n < 1<<16 {
			break
		}
	}
	f.mu.Lock()
	if len(f.scans) >= maxCachedScans {
		// Only a fork family's reads share results; keep the cache small.
		clear(f.scans)
	}
	f.scans[path] = sc
	f.mu.Unlock()
	return sc, nil
}

// scaleMember is one open database of a run.
type scaleMember struct {
	db      *scaleDB
	r       *sqlitedb.Reader
	uploads map[string]sqlitedb.Upload // by destination
}

func (m *scaleMember) loadUploads(ctx context.Context) error {
	us, err := m.r.Uploads(ctx)
	if err != nil {
		return err
	}
	m.uploads = make(map[string]sqlitedb.Upload, len(us))
	for _, u := range us {
		m.uploads[u.Destination] = u
	}
	return nil
}

// scaleStream reads one neptune-scale run.
type scaleStream struct {
	*common
	f       *Format
	group   *scaleGroup
	members []*scaleMember

	member  int
	lastSeq int64
	end     event.Position
	snap    scalepb.Snapshot
	rowFn   func(sqlitedb.Row) error
	nbytes  int64
	closed  bool

	maxCommitted map[string]int64
	dropPreviews bool
	reloadedAt   int64 // the row the uploads were last re-read for
	edges, freq  []float64
}

func (f *Format) openScale(info parsers.StreamInfo, resume event.Position, st *streamState, opts parsers.Options) (parsers.Stream, error) {
	c, err := newCommon(info, opts)
	if err != nil {
		return nil, err
	}
	groups, err := f.scopeGroups(scopeDir(info.Path))
	if err != nil {
		return nil, err
	}
	g := findGroup(groups, info.Key)
	if g == nil {
		// A database outside a .neptune directory layout.
		groups = f.scaleGroupsOf([]string{info.Path})
		if g = findGroup(groups, info.Key); g == nil {
			return nil, fmt.Errorf("open %s: %w", info.Key, ErrUnknownStream)
		}
	}
	if g.broken {
		return nil, fmt.Errorf("open %s: %w", info.Key, g.members[0].err)
	}
	s := &scaleStream{common: c, f: f, group: g}
	switch p := c.opts.Params[ParamPreviews]; p {
	case "", "keep":
	case "drop":
		s.dropPreviews = true
	default:
		return nil, fmt.Errorf("open %s: %s %q: want keep or drop", info.Key, ParamPreviews, p)
	}
	s.rowFn = s.row
	ctx := context.Background()
	for _, db := range g.members {
		if err := s.addMember(ctx, db); err != nil {
			s.Close()
			return nil, err
		}
	}

	// Pre-scan this run for its steps and superseded previews, and the
	// rest of its fork family for their steps, so that the family shares
	// one multiplier and fork steps are in the parent's units.
	var steps mapping.StepScan
	s.maxCommitted = map[string]int64{}
	for _, m := range s.members {
		sc, err := f.prescanDB(ctx, m.r)
		if err != nil {
			s.Close()
			return nil, err
		}
		steps.Merge(sc.steps)
		for k, v := range sc.maxCommitted {
			k = c.internBytes([]byte(k))
			if cur, ok := s.maxCommitted[k]; !ok || v > cur {
				s.maxCommitted[k] = v
			}
		}
	}
	if st == nil && opts.StepMultiplier <= 0 {
		fam, err := f.familySteps(ctx, groups, g)
		if err != nil {
			s.Close()
			return nil, err
		}
		steps.Merge(fam)
	}

	if st == nil {
		mul := opts.StepMultiplier
		if mul <= 0 {
			mul = steps.Multiplier()
		}
		s.runInfo = s.buildRunInfo(mul)
		inherited, err := f.inheritedConfigs(ctx, groups, g, info.Parent)
		if err != nil {
			s.Close()
			return nil, err
		}
		for k, v := range inherited {
			if _, own := s.runInfo.Config[k]; !own {
				s.runInfo.Config[k] = v
			}
		}
		s.mapper = mapping.New(mapping.State{Multiplier: mul, LastTime: s.runInfo.CreatedAt}, mapping.Options{Multiplier: mul})
		if resume != (event.Position{}) {
			s.replay, s.replayUntil = true, resume
		}
	} else {
		if opts.StepMultiplier > 0 && opts.StepMultiplier != st.Map.Multiplier {
			c.warn.Add(info.Path, []mapping.Warning{{Pos: resume, Reason: ReasonBadStep,
				Detail: fmt.Sprintf("step multiplier %d kept from the checkpoint; %d ignored", st.Map.Multiplier, opts.StepMultiplier)}})
		}
		s.mapper = mapping.New(st.Map, mapping.Options{Multiplier: st.Map.Multiplier})
		names := make([]string, len(s.members))
		for i, m := range s.members {
			names[i] = m.db.path
		}
		s.member = s.resumeMember(resume, st.Mem, names)
		s.lastSeq, s.end = resume.Seq, resume
	}
	return s, nil
}

func findGroup(groups []*scaleGroup, key string) *scaleGroup {
	for _, g := range groups {
		if g.key == key {
			return g
		}
	}
	return nil
}

func (s *scaleStream) addMember(ctx context.Context, db *scaleDB) error {
	r, err := sqlitedb.Open(db.path)
	if err != nil {
		return err
	}
	m := &scaleMember{db: db, r: r}
	if err := m.loadUploads(ctx); err != nil {
		r.Close()
		return err
	}
	s.members = append(s.members, m)
	return nil
}

// familySteps pre-scans the other runs of g's fork family in the same
// scope (ancestors and descendants, transitively) and adds their fork
// steps.
func (f *Format) familySteps(ctx context.Context, groups []*scaleGroup, g *scaleGroup) (mapping.StepScan, error) {
	var steps mapping.StepScan
	in := map[string]bool{g.key: true}
	for changed := true; changed; {
		changed = false
		for _, o := range groups {
			if o.broken {
				continue
			}
			if !in[o.key] && o.parentKey != "" && in[o.parentKey] {
				in[o.key], changed = true, true
			}
			if in[o.key] && o.parentKey != "" && !in[o.parentKey] {
				in[o.parentKey], changed = true, true
			}
		}
	}
	for _, o := range groups {
		if !in[o.key] || o.broken {
			continue
		}
		if run := o.firstRun(); run != nil && run.Fork != nil && run.Fork.HasStep {
			if micro, ok := run.Fork.Step.MicroUnits(); ok {
				steps.Add(micro)
			}
		}
		if o == g {
			continue
		}
		for _, db := range o.members {
			r, err := sqlitedb.Open(db.path)
			if err != nil {
				continue // a broken relative does not stop this run
			}
			sc, err := f.prescanDB(ctx, r)
			r.Close()
			if err == nil {
				steps.Merge(sc.steps)
			}
		}
	}
	return steps, nil
}

// inheritedConfigs returns the configs a fork inherits (Run.inherit_configs)
// from its ancestors: each ancestor's final configs, the nearer ones
// winning. mlop copies the parent's config into a fork when the fork is
// created, which is only what the parent had sent by then; sending the
// inherited configs with the fork makes them complete whatever the
// timing. The fork's own configs follow as usual. An ancestor is looked
// for in the fork's log directory, and the parent also under parentKey
// (StreamInfo.Parent: the agent links a parent found under another path).
func (f *Format) inheritedConfigs(ctx context.Context, groups []*scaleGroup, g *scaleGroup, parentKey string) (map[string]any, error) {
	find := func(key string) *scaleGroup {
		if p := findGroup(groups, key); p != nil {
			return p
		}
		scope, _, ok := strings.Cut(strings.TrimPrefix(key, keyPrefixScale), "#")
		if !ok || !strings.HasPrefix(key, keyPrefixScale) {
			return nil
		}
		other, err := f.scopeGroups(scope)
		if err != nil {
			return nil
		}
		return findGroup(other, key)
	}
	var chain []*scaleGroup // nearest ancestor first
	for cur, seen := g, map[string]bool{g.key: true}; ; {
		run := cur.firstRun()
		if run == nil || run.Fork == nil || !run.HasInherit || !run.InheritConfigs || cur.parentKey == "" {
			break
		}
		p := find(cur.parentKey)
		if p == nil && cur == g && parentKey != "" {
			p = find(parentKey)
		}
		if p == nil || p.broken || seen[p.key] {
			break
		}
		seen[p.key] = true
		chain = append(chain, p)
		cur = p
	}
	out := map[string]any{}
	for i := len(chain) - 1; i >= 0; i-- {
		for _, db := range chain[i].members {
			r, err := sqlitedb.Open(db.path)
			if err != nil {
				return nil, err
			}
			sc, err := f.prescanDB(ctx, r)
			r.Close()
			if err != nil {
				return nil, err
			}
			for k, v := range sc.configs {
				out[k] = v
			}
		}
	}
	return out, nil
}

func (s *scaleStream) buildRunInfo(mul int64) *event.RunInfo {
	first := s.group.members[0]
	meta := first.meta
	cfg := map[string]any{
		"neptune/source":          "neptune-scale",
		"neptune/project":         meta.Project,
		"neptune/run_id":          meta.RunID,
		"neptune/db_version":      meta.Version,
		"neptune/step_multiplier": mul,
	}
	info := &event.RunInfo{Name: meta.RunID, ExternalID: meta.RunID, Config: cfg}
	var runRow *scaleDB
	for _, m := range s.group.members {
		if m.run != nil {
			runRow = m
			break
		}
	}
	if runRow == nil {
		// Acknowledged rows (the CREATE_RUN among them) were deleted.
		info.CreatedAt = first.firstTime
		return info
	}
	run := runRow.run
	if run.ExperimentID != "" {
		info.Name = run.ExperimentID
		cfg["neptune/experiment_name"] = run.ExperimentID
	}
	if run.HasCreationTime {
		info.CreatedAt = run.CreationTime.UnixMilli()
	} else {
		info.CreatedAt = runRow.firstTime
	}
	if run.HasInherit {
		cfg["neptune/fork/inherit_configs"] = run.InheritConfigs
	}
	if fp := run.Fork; fp != nil && fp.ParentRunID != "" {
		info.ForkParent = fp.ParentRunID
		cfg["neptune/fork/parent_run_id"] = fp.ParentRunID
		// mlop copies the parent's config into a fork, bookkeeping
		// included; a Neptune fork does not inherit group tags, so the
		// fork starts with its own (none until it sets some).
		cfg[mapping.KeyGroupTags] = []string{}
		if fp.HasParentProject {
			cfg["neptune/fork/parent_project"] = fp.ParentProject
		}
		micro, ok := fp.Step.MicroUnits()
		if ok {
			cfg["neptune/fork/step"] = mapping.FormatMicro(micro)
			step, err := mapping.ConvertStep(micro, mul)
			if err != nil {
				// Only with a forced multiplier: fork at the step below.
				step = micro * mul / mapping.MicroPerUnit
				s.warn.Add(first.path, []mapping.Warning{{Reason: ReasonBadStep,
					Detail: fmt.Sprintf("fork step %s: %v; using %d", mapping.FormatMicro(micro), err, step)}})
			}
			info.ForkStep = step
		}
	}
	return info
}

// refreshMembers picks up databases of this run created since Open.
func (s *scaleStream) refreshMembers(ctx context.Context) {
	groups, err := s.f.scopeGroups(s.group.scope)
	if err != nil {
		return
	}
	g := findGroup(groups, s.group.key)
	if g == nil {
		return
	}
	known := map[string]bool{}
	for _, m := range s.members {
		known[m.db.path] = true
	}
	for _, db := range g.members {
		if !known[db.path] {
			if s.addMember(ctx, db) != nil {
				return
			}
		}
	}
}

// Next implements parsers.Stream.
func (s *scaleStream) Next(ctx context.Context, dst []event.Event) (parsers.Chunk, error) {
	if s.closed {
		return parsers.Chunk{}, fmt.Errorf("next %s: %w", s.info.Key, os.ErrClosed)
	}
	s.mapper.SetOutput(dst)
	start := len(dst)
	s.nbytes = 0
	rows := 0
	eof := false
	refreshed := false
	for rows < s.maxOps && len(s.mapper.Events())-start < s.maxEvents && s.nbytes < chunkBytes {
		if err := ctx.Err(); err != nil {
			return s.chunk(), err
		}
		if s.member >= len(s.members) {
			eof = true
			break
		}
		m := s.members[s.member]
		n, err := m.r.Scan(ctx, s.lastSeq, min(scanRows, s.maxOps-rows), s.rowFn)
		rows += n
		if errors.Is(err, errReloadUploads) {
			if err := m.loadUploads(ctx); err != nil {
				return s.chunk(), err
			}
			continue
		}
		if err != nil {
			return s.chunk(), err
		}
		if n > 0 {
			continue
		}
		if s.member+1 < len(s.members) {
			s.member++
			s.lastSeq = 0
			continue
		}
		if !refreshed {
			refreshed = true
			if s.refreshMembers(ctx); s.member+1 < len(s.members) {
				continue
			}
		}
		eof = true
		break
	}
	ch := s.chunk()
	if eof && len(ch.Events) == start && rows == 0 {
		return ch, io.EOF
	}
	return ch, nil
}

func (s *scaleStream) chunk() parsers.Chunk {
	var mem string
	if s.member < len(s.members) {
		mem = s.members[s.member].db.path
	}
	return parsers.Chunk{Events: s.mapper.Events(), End: s.end, State: s.state(0, 0, mem), Bytes: s.nbytes}
}

// row maps one run_operations row; it runs inside the database scan.
func (s *scaleStream) row(r sqlitedb.Row) error {
	m := s.mapper
	pos := event.Position{Offset: int64(s.member) + s.offsetBase, Seq: r.Seq}
	t := r.Time
	var decodeErr error
	if r.Type == opUpdateSnapshot {
		decodeErr = scalepb.DecodeSnapshot(r.Op, &s.snap)
		if decodeErr == nil {
			if s.reloadedAt != r.Seq && s.missingUpload() {
				s.reloadedAt = r.Seq
				return errReloadUploads
			}
			if s.snap.HasTime {
				t = s.snap.Time.UnixMilli()
			}
		}
	}
	mark := len(m.Events())
	m.Begin(pos, t)
	if !m.RunDone() {
		m.Run(s.runInfo)
	}
	switch {
	case decodeErr != nil:
		m.Skip(ReasonCorrupt, "UpdateRunSnapshot: "+decodeErr.Error())
	case r.Type == opUpdateSnapshot:
		s.applySnapshot(&s.snap, t)
	case r.Type == opCreateRun:
		// The run was described by the first CREATE_RUN (Open); later
		// ones (the run resumed in another process) only need to decode.
		if _, err := scalepb.DecodeRun(r.Op); err != nil {
			m.Skip(ReasonCorrupt, "Run: "+err.Error())
		}
	default:
		m.Skip(ReasonUnknownOp, "operation_type "+strconv.FormatInt(r.Type, 10))
	}
	m.End()
	if s.replay && !s.replayUntil.Less(pos) {
		// Already delivered before the state was lost: rebuild only.
		m.Truncate(mark)
		m.TakeWarnings()
	} else {
		s.replay = false
		s.warn.Add(s.members[s.member].db.path, m.TakeWarnings())
	}
	s.lastSeq, s.end = r.Seq, pos
	s.nbytes += int64(len(r.Op))
	return nil
}

// missingUpload reports whether the snapshot references a file the cached
// upload table does not know.
func (s *scaleStream) missingUpload() bool {
	ups := s.members[s.member].uploads
	for _, list := range [][]scalepb.Entry{s.snap.Assign, s.snap.Append} {
		for i := range list {
			if v := &list[i].Value; v.Kind == scalepb.KindFileRef {
				if _, ok := ups[string(v.File.Path)]; !ok {
					return true
				}
			}
		}
	}
	return false
}

func (s *scaleStream) applySnapshot(snap *scalepb.Snapshot, t int64) {
	m := s.mapper
	for i := range snap.Assign {
		e := &snap.Assign[i]
		s.assign(s.internBytes(e.Key), &e.Value)
	}
	for i := 0; i < len(snap.Modify); {
		path := snap.Modify[i].Path
		var add, remove []string
		for ; i < len(snap.Modify) && bytes.Equal(snap.Modify[i].Path, path); i++ {
			switch snap.Modify[i].Op {
			case scalepb.SetAdd:
				add = append(add, string(snap.Modify[i].Item))
			case scalepb.SetRemove:
				remove = append(remove, string(snap.Modify[i].Item))
			}
		}
		p := s.internBytes(path)
		if len(add) > 0 {
			m.SetAdd(p, add)
		}
		if len(remove) > 0 {
			m.SetRemove(p, remove)
		}
	}
	if len(snap.Append) == 0 {
		return
	}
	step := mapping.Step{Kind: mapping.StepRunNext}
	var micro int64
	if snap.HasStep {
		var ok bool
		if micro, ok = snap.Step.MicroUnits(); !ok {
			m.Skip(ReasonBadStep, fmt.Sprintf("step %d+%d/1e6 is out of range", snap.Step.Whole, snap.Step.Micro))
			return
		}
		step = mapping.At(micro)
	}
	preview := snap.HasPreview && snap.Preview.IsPreview
	for i := range snap.Append {
		e := &snap.Append[i]
		path := s.internBytes(e.Key)
		if preview {
			if s.dropPreviews {
				continue
			}
			if max, ok := s.maxCommitted[path]; ok && snap.HasStep && max >= micro {
				continue // superseded by a committed point
			}
		}
		if !preview && snap.HasStep {
			if cur, ok := s.maxCommitted[path]; !ok || micro > cur {
				s.maxCommitted[path] = micro
			}
		}
		v := &e.Value
		switch v.Kind {
		case scalepb.KindFloat64:
			m.Float(path, step, t, v.Float)
		case scalepb.KindInt64:
			m.Float(path, step, t, float64(v.Int))
		case scalepb.KindString:
			m.String(path, step, t, string(v.Str))
		case scalepb.KindHistogram:
			s.histogram(path, step, t, v.Hist)
		case scalepb.KindFileRef:
			m.File(path, step, true, t, s.resolveFile(&v.File))
		default:
			m.Skip(ReasonBadValue, path+": "+v.Kind.String()+" cannot be a series value")
		}
	}
}

func (s *scaleStream) assign(path string, v *scalepb.Value) {
	m := s.mapper
	if a, ok := atomValue(v); ok {
		m.Assign(path, a)
		return
	}
	switch v.Kind {
	case scalepb.KindFileRef:
		m.File(path, mapping.Step{}, false, 0, s.resolveFile(&v.File))
	default:
		m.Skip(ReasonBadValue, path+": "+v.Kind.String()+" cannot be assigned")
	}
}

// atomValue is an assigned atom's value for mapping.Mapper.Assign; ok is
// false for a file or a kind that cannot be assigned.
func atomValue(v *scalepb.Value) (any, bool) {
	switch v.Kind {
	case scalepb.KindFloat64:
		return v.Float, true
	case scalepb.KindInt64:
		return v.Int, true
	case scalepb.KindBool:
		return v.Bool, true
	case scalepb.KindString:
		return string(v.Str), true
	case scalepb.KindTimestamp:
		return mapping.Datetime{UnixNano: v.Time.Seconds*1e9 + int64(v.Time.Nanos)}, true
	case scalepb.KindStringSet:
		items := make([]string, len(v.Strings))
		for i, b := range v.Strings {
			items[i] = string(b)
		}
		return items, true
	}
	return nil, false
}

func (s *scaleStream) histogram(path string, step mapping.Step, t int64, h *scalepb.Histogram) {
	if h == nil {
		s.mapper.Skip(ReasonBadValue, path+": empty histogram")
		return
	}
	s.freq = s.freq[:0]
	switch {
	case h.HasCounts:
		for _, c := range h.Counts {
			s.freq = append(s.freq, float64(c))
		}
	case h.HasDensities:
		// No counts: the densities are the frequencies (docs: doc.go).
		s.freq = append(s.freq, h.Densities...)
	}
	s.mapper.Histogram(path, step, t, h.Edges, s.freq)
}

// resolveFile finds the local file of a FileRef through
// file_upload_requests: the recorded source path (re-rooted by path_map),
// or, for the client's temporary copies, the file of that name in the run
// directory.
func (s *scaleStream) resolveFile(ref *scalepb.FileRef) mapping.File {
	member := s.members[s.member]
	f := mapping.File{Mime: string(ref.MimeType)}
	u, ok := member.uploads[string(ref.Path)]
	if !ok {
		f.Origin = "upload destination " + string(ref.Path) + " (no file_upload_requests row)"
		return f
	}
	f.Origin = u.SourcePath
	if f.Mime == "" {
		f.Mime = u.MimeType
	}
	if p := s.pm.apply(u.SourcePath); regularFile(p) {
		f.Local = p
	} else if u.Temporary {
		if p := filepath.Join(filepath.Dir(member.db.path), filepath.Base(u.SourcePath)); regularFile(p) {
			f.Local = p
		}
	}
	if !u.Temporary {
		f.Caption = filepath.Base(u.SourcePath)
	}
	return f
}

// Close implements parsers.Stream; it is idempotent.
func (s *scaleStream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	for _, m := range s.members {
		if cerr := m.r.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
