package agent

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mlop-ai/mlop-agent/agent/ledger"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/presets"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/watcher"
)

// sourceRT is a configured source at run time. Its fields are set by
// buildSources and not changed afterwards, except the tailer pointer.
type sourceRT struct {
	a           *Agent
	cfg         Source
	preset      *presets.Preset // the preset the format named, if any
	log         *slog.Logger
	namer       *runNamer
	factory     parsers.Factory      // line formats
	stream      parsers.StreamFormat // stream formats
	uploadRoots []string
	// namedByTemplate is set when the user wrote run.name: it then wins
	// over the name a stream format reads from its data.
	namedByTemplate bool

	tailer atomic.Pointer[watcher.Tailer] // for file counts
	short  *shortNames                    // when a run template uses .Short
	// missing are the files the data refers to that are not here.
	missing missingFiles
	// discovered counts the streams a stream format found, before the
	// shard took its part: a shard with none of them found something.
	discovered atomic.Int64
}

// shortName is path's {{.Short}} (shortNames).
func (s *sourceRT) shortName(path string) string {
	if s.short == nil {
		b := filepath.Base(path)
		return strings.TrimSuffix(b, filepath.Ext(b))
	}
	return s.short.name(path)
}

// streamRT is what the agent keeps of one stream besides its ledger
// record: the runs it feeds (only its reader goroutine touches them) and,
// for the report, what its format skipped.
type streamRT struct {
	ls     *ledger.Stream
	source string
	format string

	defaultRun *run
	runs       map[string]*run
	names      []sink.Name // scratch for routing

	// read and bad count the records of a line file and those that could
	// not be used (a file that gave nothing is said so at the end).
	read, bad atomic.Int64
	unusable  atomic.Bool // a line file no record of which can be used (said already)

	mu       sync.Mutex
	warnings map[string]int // what the stream format skipped, by reason
}

// streamTable holds the streamRT of every claimed stream; it owns its lock
// (a leaf).
type streamTable struct {
	mu sync.Mutex
	m  map[*ledger.Stream]*streamRT
}

func (t *streamTable) get(ls *ledger.Stream, source, format string) *streamRT {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[*ledger.Stream]*streamRT{}
	}
	if st, ok := t.m[ls]; ok {
		return st
	}
	st := &streamRT{ls: ls, source: source, format: format}
	t.m[ls] = st
	return st
}

func (t *streamTable) list() []*streamRT {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*streamRT, 0, len(t.m))
	for _, st := range t.m {
		out = append(out, st)
	}
	return out
}

// buildSources resolves formats and templates before anything starts.
func (a *Agent) buildSources() ([]*sourceRT, error) {
	var out []*sourceRT
	for _, s := range a.opts.Sources {
		rt := &sourceRT{a: a, log: a.log.With("source", s.Name), namedByTemplate: s.RunName != ""}
		if p, ok := presets.Lookup(s.Format); ok {
			rt.preset = &p
			s = applyPreset(s, p)
		}
		rt.cfg = s
		var err error
		if rt.namer, err = newRunNamer(s); err != nil {
			return nil, err
		}
		if f, ok := parsers.Lookup(s.Format); ok {
			rt.factory = f
		} else if sf, ok := parsers.LookupStream(s.Format); ok {
			rt.stream = sf
		} else {
			return nil, fmt.Errorf("source %q: unknown format %q (known: %s)", s.Name, s.Format, strings.Join(presets.FormatNames(), ", "))
		}
		if rt.namer.short {
			m, err := watcher.NewMatcher(s.Paths, s.Exclude)
			if err != nil {
				return nil, fmt.Errorf("source %q: %w", s.Name, err)
			}
			name := s.Name
			rt.short = newShortNames(m, func() []string {
				paths := m.Scan().Files
				for _, k := range a.ledger.Known(name) {
					paths = append(paths, k.RunPath)
				}
				return paths
			})
		}
		rt.uploadRoots = a.uploadRoots(s)
		if rt.stream != nil && needsSpool(rt.stream, s.Format) {
			rt.spoolDir()
		}
		out = append(out, rt)
	}
	return out, nil
}

// spoolDir gives a stream format a directory under the state directory for
// the files it finds inline in its data (Neptune's base64 images,
// TensorBoard's images): they are written there and may be uploaded from
// there.
func (s *sourceRT) spoolDir() {
	if s.cfg.Params == nil {
		s.cfg.Params = map[string]string{}
	}
	if s.cfg.Params["spool_dir"] != "" {
		return
	}
	spool := filepath.Join(s.a.opts.StateDir, "spool", s.cfg.Name)
	s.cfg.Params["spool_dir"] = spool
	if err := os.MkdirAll(spool, 0o700); err == nil {
		if real, err := filepath.EvalSymlinks(spool); err == nil {
			spool = real
		}
		s.uploadRoots = append(s.uploadRoots, spool)
	}
}

// needsSpool reports whether a stream format writes files to the spool_dir
// parameter (parsers.Spooler). The Neptune formats predate that interface.
func needsSpool(sf parsers.StreamFormat, format string) bool {
	if sp, ok := sf.(parsers.Spooler); ok {
		return sp.Spools()
	}
	return strings.HasPrefix(format, "neptune")
}

// applyPreset expands a preset format name (lightning, keras, yolo, sb3,
// ...) into the format it uses and the run defaults it brings; what the
// source sets itself wins. The parser options come from p.Apply.
func applyPreset(s Source, p presets.Preset) Source {
	s.Format = p.Format
	if s.RunName == "" {
		s.RunName = p.RunName
	}
	if len(s.ConfigFiles) == 0 {
		s.ConfigFiles = p.ConfigFiles
	}
	return s
}

// uploadRoots returns the resolved directories files may be uploaded from.
func (a *Agent) uploadRoots(s Source) []string {
	roots := a.opts.UploadRoots
	if len(roots) == 0 {
		m, err := watcher.NewMatcher(s.Paths, nil)
		if err == nil {
			roots = m.Roots()
		}
	}
	var out []string
	for _, r := range roots {
		if real, err := filepath.EvalSymlinks(r); err == nil {
			r = real
		}
		out = append(out, filepath.Clean(r))
	}
	return out
}

// parserOptions are the options of one file's parser or one stream.
func (s *sourceRT) parserOptions(path string) parsers.Options {
	a := s.a
	opts := parsers.Options{
		Source: s.cfg.Name, Path: path, StepField: s.cfg.StepField, TimeField: s.cfg.TimeField,
		RunField: s.cfg.RunField, MaxRecordBytes: a.opts.Watch.MaxLineBytes, StepMultiplier: s.cfg.StepMultiplier,
		Params: s.cfg.Params, Now: a.now, Follow: a.opts.Follow,
		OnSkip: func(reason string) {
			a.rep.stats.skip(reason)
			a.rep.tel.ValueSkipped(s.cfg.Name, reason)
		},
		Notice: func(line int64, reason, detail string) {
			a.rep.stats.skip(reason)
			a.rep.tel.ValueSkipped(s.cfg.Name, reason)
			s.log.Warn("input irregularity stepped over; no record lost", "file", fmt.Sprintf("%s:%d", path, line),
				"reason", reason, "detail", detail)
		},
	}
	if s.preset != nil {
		opts = s.preset.Apply(opts)
	}
	return opts.WithDefaults()
}

// readConfigFiles merges the sidecar config files of a metric file, and
// returns a signature of their names, sizes and times.
func (s *sourceRT) readConfigFiles(path string) (map[string]any, string) {
	out := map[string]any{}
	matches := s.configFiles(path)
	sig := filesSignature(matches)
	if s.a.opts.ReadConfigFile == nil {
		return out, sig
	}
	for _, m := range matches {
		doc, err := s.a.opts.ReadConfigFile(m)
		if err != nil {
			s.log.Warn("cannot read config file", "path", m, "error", err)
			continue
		}
		out = deepMerge(out, doc)
	}
	return out, sig
}

// configFiles lists the files run.config_files matches beside path.
func (s *sourceRT) configFiles(path string) []string {
	dir := filepath.Dir(path)
	var all []string
	for _, g := range s.cfg.ConfigFiles {
		matches, _ := filepath.Glob(filepath.Join(dir, g))
		sort.Strings(matches)
		all = append(all, matches...)
	}
	return all
}

// filesSignature summarises names, sizes and modification times.
func filesSignature(paths []string) string {
	h := fnv.New64a()
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%d\n", p, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// refreshConfigFiles re-reads the config files of the runs that have them,
// outside every lock, and queues what changed as config updates.
func (a *Agent) refreshConfigFiles(runs []*run) {
	for _, r := range runs {
		r.mu.Lock()
		cf := r.ctl.cfgFiles
		active := r.active()
		var path, sig string
		if cf != nil {
			path, sig = cf.path, cf.sig
		}
		r.mu.Unlock()
		if cf == nil || !active || filesSignature(cf.src.configFiles(path)) == sig {
			continue
		}
		doc, newSig := cf.src.readConfigFiles(path)
		r.mu.Lock()
		cf.sig = newSig
		var jobs []job
		if len(doc) > 0 {
			cf.src.log.Info("config file changed; updating the run's config", "run", r.name)
			r.ctl.cfgDelta = deepMerge(r.ctl.cfgDelta, doc)
			jobs = a.snd.schedule(r)
		}
		r.mu.Unlock()
		a.snd.jobs.push(jobs...)
	}
}
