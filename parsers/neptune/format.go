package neptune

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
)

// FormatName is the name the format is registered under.
const FormatName = "neptune"

func init() {
	parsers.RegisterStream(FormatName, New())
}

// Format-specific settings read from parsers.Options.Params.
const (
	// ParamPathMap re-roots absolute paths recorded by the producing
	// machine: "from=to" rules separated by ';' or newlines, e.g.
	// "/home/alice/exp=/data/exp". Applied to neptune-client file paths
	// and globs and to neptune-scale upload source paths.
	ParamPathMap = "path_map"
	// ParamSpoolDir is where inline file content (neptune-client
	// LogImages, UploadFileContent) is written so it can be uploaded.
	// Default: <os.TempDir()>/mlop-agent-neptune.
	ParamSpoolDir = "spool_dir"
	// ParamPreviews decides the fate of neptune-scale preview points that
	// no committed point supersedes: "keep" (default) sends them as
	// ordinary points, "drop" drops every preview point. Superseded
	// previews are always dropped.
	ParamPreviews = "previews"
)

// Stream keys start with these prefixes.
const (
	keyPrefixN1    = "neptune-n1:"
	keyPrefixScale = "neptune-scale:"
)

// Warning reasons (Warning.Reason), a closed set.
const (
	ReasonUnknownOp     = mapping.ReasonUnknownOp
	ReasonNeedsServer   = mapping.ReasonNeedsServer
	ReasonUnsupported   = mapping.ReasonUnsupported
	ReasonCorrupt       = mapping.ReasonCorrupt
	ReasonBadStep       = mapping.ReasonBadStep
	ReasonBadValue      = mapping.ReasonBadValue
	ReasonMissingFile   = mapping.ReasonMissingFile
	ReasonVersionGap    = mapping.ReasonVersionGap
	ReasonClearedSeries = mapping.ReasonClearedSeries
	ReasonDeleted       = mapping.ReasonDeleted
)

// Warning is an operation (or part of one) that could not be mapped and
// was skipped: the agent logs it as "file:seq: reason: detail" and counts
// it by Reason.
type Warning = parsers.Warning

// Warner is implemented by every stream of this format. Warnings returns
// the warnings collected since the previous call and forgets them; at most
// mapping.MaxWarnings are kept between calls, the rest are counted in Dropped.
type Warner = parsers.Warner

// ErrCorrupt is wrapped by errors about unreadable Neptune data.
var ErrCorrupt = errors.New("corrupt neptune data")

// ErrUnknownStream is returned by Open for a key this format did not make.
var ErrUnknownStream = errors.New("unknown neptune stream")

// Format reads Neptune offline data: neptune-client 1.x disk queues (all
// three directory layouts) and neptune-scale run_operations.sqlite3
// databases. One stream is one Neptune run.
type Format struct {
	mu    sync.Mutex
	dbs   map[string]*scaleDB  // by database path: metadata and first CREATE_RUN
	scans map[string]scaleScan // by database path: pre-scan results
}

// New returns a Format. The registered instance serves the agent; tests
// make their own.
func New() *Format {
	return &Format{dbs: map[string]*scaleDB{}, scans: map[string]scaleScan{}}
}

var _ parsers.StreamFormat = (*Format)(nil)

// streamState is what Chunk.State holds.
type streamState struct {
	V   int           `json:"v"`
	Map mapping.State `json:"m"`
	// neptune-client: where the next line starts, a hint that saves
	// re-reading the segment on resume (verified before use).
	Seg int64 `json:"seg,omitempty"`
	Off int64 `json:"off,omitempty"`
	// Mem names the execution directory or database being read, so a
	// resume finds it even if an earlier one was deleted meanwhile (a
	// synced neptune-client process removes its own directory).
	Mem string `json:"mem,omitempty"`
}

const stateVersion = 1

func decodeState(b []byte) (*streamState, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var st streamState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode neptune state: %w", err)
	}
	if st.V != stateVersion {
		return nil, fmt.Errorf("decode neptune state: unknown version %d", st.V)
	}
	return &st, nil
}

// common holds what both stream kinds need.
type common struct {
	info    parsers.StreamInfo
	opts    parsers.Options
	pm      pathMap
	spool   string
	warn    mapping.WarnBuf
	intern  map[string]string
	mapper  *mapping.Mapper
	runInfo *event.RunInfo

	// replayUntil: with no saved state, operations up to this position
	// are mapped again to rebuild the state, and their events dropped.
	replayUntil event.Position
	replay      bool

	// Limits of one Next call (tests lower them).
	maxOps, maxEvents int

	// offsetBase is added to member indexes to make Position.Offset:
	// non-zero only when members before the resume point disappeared.
	offsetBase int64
}

// resumeMember locates the member to resume in: by name when the state
// has one (members before it may have been deleted), else by index.
// It returns the index and sets offsetBase so positions keep growing.
func (c *common) resumeMember(resume event.Position, name string, names []string) int {
	idx := int(resume.Offset)
	if name != "" && (idx >= len(names) || names[idx] != name) {
		for i, n := range names {
			if n == name {
				c.offsetBase = resume.Offset - int64(i)
				return i
			}
		}
	}
	if idx > len(names) {
		idx = len(names)
	}
	return idx
}

func newCommon(info parsers.StreamInfo, opts parsers.Options) (*common, error) {
	opts = opts.WithDefaults()
	pm, err := parsePathMap(opts.Params[ParamPathMap])
	if err != nil {
		return nil, err
	}
	sp := opts.Params[ParamSpoolDir]
	if sp == "" {
		sp = filepath.Join(os.TempDir(), "mlop-agent-neptune")
	}
	c := &common{info: info, opts: opts, pm: pm, spool: sp, intern: map[string]string{}, maxOps: chunkOps, maxEvents: chunkEvents}
	c.warn.OnSkip = opts.OnSkip
	return c, nil
}

// internBytes returns a string equal to b, shared by every use, so metric
// names are not allocated per point.
func (c *common) internBytes(b []byte) string {
	if s, ok := c.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	c.intern[s] = s
	return s
}

// Warnings implements Warner.
func (c *common) Warnings() ([]Warning, int) { return c.warn.Warnings() }

// state encodes the chunk state.
func (c *common) state(seg, off int64, mem string) []byte {
	b, err := json.Marshal(streamState{V: stateVersion, Map: c.mapper.State(), Seg: seg, Off: off, Mem: mem})
	if err != nil {
		// Only maps of strings and numbers: cannot fail.
		panic(err)
	}
	return b
}

// Discover lists the Neptune runs at path: a directory holding (at any
// depth up to 6) .neptune/ data, a .neptune directory, a run or execution
// directory, a queue file, or a database file.
func (f *Format) Discover(path string) ([]parsers.StreamInfo, error) {
	infos, _, err := f.DiscoverSkipped(path)
	return infos, err
}

var _ parsers.SkipReporter = (*Format)(nil)

// DiscoverSkipped is Discover, plus what was found and is not imported:
// neptune-client model, model_version and project containers (mlop has
// no model registry), with what they hold, and directories that could
// not be read.
func (f *Format) DiscoverSkipped(path string) ([]parsers.StreamInfo, []parsers.Skipped, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("discover %s: %w", path, err)
	}
	found, err := walk(abs)
	if err != nil {
		return nil, nil, err
	}
	var out []parsers.StreamInfo
	skipped := found.unreadable
	noteUnreadable := func(dir string, err error) { skipped = append(skipped, unreadable(dir, err)) }
	seenN1 := map[string]bool{}
	listings := map[string][]os.DirEntry{} // each mode directory is listed once
	for _, dir := range found.n1 {
		id := classifyN1(dir)
		key := id.key()
		if seenN1[key] {
			continue
		}
		seenN1[key] = true
		entries, ok := listings[id.modeDir]
		if !ok {
			if entries, err = os.ReadDir(id.modeDir); err != nil {
				return nil, nil, fmt.Errorf("discover %s: %w", id.modeDir, err)
			}
			listings[id.modeDir] = entries
		}
		members := n1MembersIn(id, entries, noteUnreadable)
		if len(members) == 0 {
			continue
		}
		if id.ctype != "run" {
			// Model registry and project containers are not mlop runs.
			skipped = append(skipped, containerSkipped(id, members))
			continue
		}
		out = append(out, parsers.StreamInfo{Key: key, Path: members[0].dir, RunID: id.uuid})
	}
	groups := f.scaleGroupsOf(found.dbs)
	for _, g := range groups {
		info := parsers.StreamInfo{Key: g.key, Path: g.members[0].path, RunID: g.runID}
		if run := g.firstRun(); run != nil && run.Fork != nil {
			info.ParentRunID = run.Fork.ParentRunID
		}
		out = append(out, info)
	}
	// Link forks to parents found under the same path.
	byKey := map[string]*scaleGroup{}
	for _, g := range groups {
		byKey[g.key] = g
	}
	for i := range out {
		g := byKey[out[i].Key]
		if g == nil || g.parentKey == "" {
			continue
		}
		if _, ok := byKey[g.parentKey]; ok {
			out[i].Parent = g.parentKey
		}
	}
	sortStreams(out)
	slices.SortFunc(skipped, func(a, b parsers.Skipped) int { return strings.Compare(a.Path, b.Path) })
	return out, skipped, nil
}

// sortStreams orders parents before children, then by key.
func sortStreams(s []parsers.StreamInfo) {
	depth := map[string]int{}
	parent := map[string]string{}
	for _, si := range s {
		parent[si.Key] = si.Parent
	}
	var d func(k string, n int) int
	d = func(k string, n int) int {
		if n > len(s) {
			return n
		}
		if v, ok := depth[k]; ok {
			return v
		}
		p := parent[k]
		if p == "" {
			return 0
		}
		return d(p, n+1) + 1
	}
	for _, si := range s {
		depth[si.Key] = d(si.Key, 0)
	}
	slices.SortFunc(s, func(a, b parsers.StreamInfo) int {
		if depth[a.Key] != depth[b.Key] {
			return depth[a.Key] - depth[b.Key]
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// Open starts reading one run after resume, with the state saved with it.
func (f *Format) Open(info parsers.StreamInfo, resume event.Position, state []byte, opts parsers.Options) (parsers.Stream, error) {
	st, err := decodeState(state)
	if err != nil {
		// A state this version cannot read: rebuild it by replaying.
		st = nil
	}
	if st != nil && !st.Map.RunDone {
		// Saved before the first operation: nothing was delivered, so
		// start afresh (the run event is still to be sent).
		st = nil
	}
	switch {
	case strings.HasPrefix(info.Key, keyPrefixN1):
		return f.openN1(info, resume, st, opts)
	case strings.HasPrefix(info.Key, keyPrefixScale):
		return f.openScale(info, resume, st, opts)
	}
	return nil, fmt.Errorf("open %s: %w", info.Key, ErrUnknownStream)
}
