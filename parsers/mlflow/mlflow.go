// Package mlflow reads an MLflow file store (the mlruns directory that
// mlflow.log_* writes without a tracking server) as a stream format
// registered as "mlflow". Each run is one stream, keyed "mlflow:<run_id>".
//
// Layout: mlruns/<experiment_id>/meta.yaml names the experiment;
// mlruns/<experiment_id>/<run_id>/ holds the run: meta.yaml (run_name,
// run_id, start_time, end_time, status, lifecycle_stage ...), metrics/<name>
// (one "<unix_ms> <value> <step>" line per logged value; a name with '/'
// is a nested directory, and names may hold spaces), params/<name> and
// tags/<name> (the raw value, no newline).
//
// What a run becomes, in this order:
//   - KindRun: Info{Name, ExternalID "mlflow:<run_id>", CreatedAt start_time}.
//     The name is meta.yaml's run_name, else the mlflow.runName tag (older
//     MLflow), else the run id;
//   - KindConfig with what meta.yaml and the experiment say about the run,
//     under mlflow/: run_id, experiment_id, experiment_name, user_id,
//     artifact_uri (the empty ones left out);
//   - KindConfig with the params, under their own names, as strings: MLflow
//     params are strings ("None", "True", "[224, 224, 3]") and guessing types
//     would change what the user logged. Re-sent whole when a param is added
//     (the server deep-merges config, so that is harmless);
//   - the mlflow.* system tags as KindConfig under mlflow/ without the
//     "mlflow." prefix (mlflow.source.git.commit -> mlflow/source.git.commit,
//     mlflow.runName -> mlflow/runName): they are metadata, not labels.
//     Re-sent whole when one changes;
//   - every other tag as a KindTags label "key=value" ("key" alone when the
//     value is empty); a label is sent once; a tag whose value changes
//     sends its new label (the old one is not removed);
//   - KindMetrics: the new lines of every metric file, with their own step
//     and timestamp; points of one step and timestamp (mlflow.log_metrics
//     writes them together) share one event. A line that does not parse, or
//     has a negative step, is skipped and reported through Options.OnSkip
//     (parsers.SkipOther); a "<ms> <value>" line from MLflow before steps
//     existed has step 0;
//   - KindStatus once meta.yaml reaches a terminal status and every metric
//     file has been read to its end: FINISHED -> COMPLETED, FAILED -> FAILED,
//     KILLED -> TERMINATED, with Time = end_time; RUNNING and SCHEDULED send
//     nothing. A run that is reopened and finishes again with another
//     end_time sends its new status.
//
// Following: metric files only grow; each Next reads what was appended
// since the last one, up to MaxChunkBytes (parameter "chunk_bytes"), and
// holds back an incomplete last line. Next returns io.EOF when nothing new was found. The stream's State
// holds the offset of every metric file, what was sent of the params, tags
// and status, and the position counter; Pos.Seq counts the items consumed
// (event groups and skipped lines) and only grows. State is needed to
// resume: opened without it, a stream reads the run again from the start,
// numbering on from the resume position (metrics are deduplicated by the
// server per step; config and tags are re-sent).
//
// Discover accepts an mlruns directory, an experiment directory, a run
// directory, or a meta.yaml file; directories starting with '.' (.trash)
// and runs or experiments whose lifecycle_stage is "deleted" are skipped.
package mlflow

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

func init() {
	parsers.RegisterStream("mlflow", Format{})
}

// MaxChunkBytes bounds the metric bytes one Next reads by default, so a
// large backlog is shipped in several chunks instead of one that holds it
// all. The "chunk_bytes" parameter changes it.
const MaxChunkBytes = 4 << 20

// minRead is the least read from a file with new data, whatever is left of
// the budget: more than any metric line.
const minRead = 4 << 10

// Format is the MLflow file-store stream format.
type Format struct{}

var _ parsers.StreamFormat = Format{}

// Discover implements parsers.StreamFormat.
func (Format) Discover(path string) ([]parsers.StreamInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", path, err)
	}
	if !fi.IsDir() {
		if filepath.Base(path) != "meta.yaml" {
			return nil, nil
		}
		path = filepath.Dir(path)
	}
	var out []parsers.StreamInfo
	add := func(runDir string, meta map[string]string) {
		if meta["lifecycle_stage"] == "deleted" {
			return
		}
		out = append(out, parsers.StreamInfo{Key: "mlflow:" + runID(meta), Path: runDir})
	}
	addExperiment := func(expDir string) error {
		entries, err := os.ReadDir(expDir)
		if err != nil {
			return fmt.Errorf("discover %s: %w", expDir, err)
		}
		for _, e := range entries {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			dir := filepath.Join(expDir, e.Name())
			if meta, kind := classify(dir); kind == kindRun {
				add(dir, meta)
			}
		}
		return nil
	}
	switch meta, kind := classify(path); kind {
	case kindRun:
		add(path, meta)
	case kindExperiment:
		if meta["lifecycle_stage"] == "deleted" {
			return nil, nil
		}
		if err := addExperiment(path); err != nil {
			return nil, err
		}
	default:
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("discover %s: %w", path, err)
		}
		for _, e := range entries {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			dir := filepath.Join(path, e.Name())
			if meta, kind := classify(dir); kind == kindExperiment && meta["lifecycle_stage"] != "deleted" {
				if err := addExperiment(dir); err != nil {
					return nil, err
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b parsers.StreamInfo) int { return cmp.Compare(a.Key, b.Key) })
	return out, nil
}

const (
	kindNone = iota
	kindRun
	kindExperiment
)

// classify tells a run directory from an experiment directory by its
// meta.yaml.
func classify(dir string) (map[string]string, int) {
	data, err := os.ReadFile(filepath.Join(dir, "meta.yaml"))
	if err != nil {
		return nil, kindNone
	}
	meta := parseMeta(data)
	switch {
	case runID(meta) != "":
		return meta, kindRun
	case meta["experiment_id"] != "":
		return meta, kindExperiment
	}
	return meta, kindNone
}

func runID(meta map[string]string) string {
	if id := meta["run_id"]; id != "" {
		return id
	}
	return meta["run_uuid"]
}

// Open implements parsers.StreamFormat.
func (Format) Open(info parsers.StreamInfo, resume event.Position, state []byte, opts parsers.Options) (parsers.Stream, error) {
	s := &stream{dir: info.Path, opts: opts.WithDefaults(), chunk: MaxChunkBytes}
	for k, v := range opts.Params {
		switch k {
		case "chunk_bytes":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("mlflow: parameter chunk_bytes: %q is not a positive integer", v)
			}
			s.chunk = n
		default:
			return nil, fmt.Errorf("mlflow: unknown parameter %q", k)
		}
	}
	if len(state) > 0 {
		dec := json.NewDecoder(bytes.NewReader(state))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s.st); err != nil {
			return nil, fmt.Errorf("decode mlflow state for %s: %w", info.Key, err)
		}
		if s.st.V != stateVersion {
			return nil, fmt.Errorf("decode mlflow state for %s: version %d, want %d", info.Key, s.st.V, stateVersion)
		}
	} else {
		s.st = savedState{V: stateVersion, Seq: resume.Seq}
	}
	if s.st.Offsets == nil {
		s.st.Offsets = map[string]int64{}
	}
	return s, nil
}

const stateVersion = 1

// savedState is the JSON form of a stream's state.
type savedState struct {
	V       int              `json:"v"`
	Seq     int64            `json:"seq"`
	RunSent bool             `json:"run_sent,omitempty"`
	Params  string           `json:"params,omitempty"`   // hash of the params last sent
	SysTags string           `json:"sys_tags,omitempty"` // hash of the system tags last sent
	Labels  []string         `json:"labels,omitempty"`   // user tag labels sent, sorted
	Offsets map[string]int64 `json:"offsets,omitempty"`  // metric name -> bytes consumed
	Status  string           `json:"status,omitempty"`   // "<status>@<end_time>" last sent
}

// stream reads one run directory. Only the goroutine calling Next uses it.
type stream struct {
	dir   string
	opts  parsers.Options
	chunk int64 // metric bytes read per Next at most
	st    savedState
	buf   []byte

	// params and tags as last read, with the fingerprint of their files'
	// names, sizes and modification times: unchanged files are not read
	// again.
	params, tags valueCache
}

// valueCache holds the values of a params or tags directory.
type valueCache struct {
	fingerprint string
	values      map[string]string
}

// Close implements parsers.Stream; the stream holds no open files between
// calls, so there is nothing to release.
func (s *stream) Close() error { return nil }

// Next implements parsers.Stream.
func (s *stream) Next(ctx context.Context, dst []event.Event) (parsers.Chunk, error) {
	if err := ctx.Err(); err != nil {
		return parsers.Chunk{}, err
	}
	startSeq := s.st.Seq
	data, err := os.ReadFile(filepath.Join(s.dir, "meta.yaml"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return parsers.Chunk{Events: dst, End: s.pos()}, io.EOF
		}
		return parsers.Chunk{Events: dst}, fmt.Errorf("read %s: %w", filepath.Join(s.dir, "meta.yaml"), err)
	}
	meta := parseMeta(data)
	id := runID(meta)
	if id == "" {
		// meta.yaml caught in the middle of a rewrite: try again later.
		return parsers.Chunk{Events: dst, End: s.pos()}, io.EOF
	}

	tags, err := s.tags.read(filepath.Join(s.dir, "tags"))
	if err != nil {
		return parsers.Chunk{Events: dst}, err
	}
	if !s.st.RunSent {
		dst = s.runEvents(dst, meta, id, tags)
		s.st.RunSent = true
	}
	params, err := s.params.read(filepath.Join(s.dir, "params"))
	if err != nil {
		return parsers.Chunk{Events: dst}, err
	}
	if len(params) > 0 {
		if h := hashValues(params); h != s.st.Params {
			cfg := make(map[string]any, len(params))
			for k, v := range params {
				cfg[k] = v
			}
			dst = append(dst, event.Event{Kind: event.KindConfig, Pos: s.next(), Config: cfg})
			s.st.Params = h
		}
	}
	dst = s.tagEvents(dst, tags)

	dst, nbytes, drained, err := s.metricEvents(ctx, dst)
	if err != nil {
		return parsers.Chunk{Events: dst}, err
	}
	if drained {
		dst = s.statusEvent(dst, meta)
	}
	if s.st.Seq == startSeq {
		return parsers.Chunk{Events: dst, End: s.pos()}, io.EOF
	}
	st, err := json.Marshal(s.st)
	if err != nil {
		return parsers.Chunk{Events: dst}, fmt.Errorf("encode mlflow state: %w", err)
	}
	return parsers.Chunk{Events: dst, End: s.pos(), State: st, Bytes: nbytes}, nil
}

func (s *stream) pos() event.Position { return event.Position{Seq: s.st.Seq} }

// next takes the position of the next item.
func (s *stream) next() event.Position {
	s.st.Seq++
	return s.pos()
}

// runEvents makes the KindRun event and the config from meta.yaml.
func (s *stream) runEvents(dst []event.Event, meta map[string]string, id string, tags map[string]string) []event.Event {
	name := meta["run_name"]
	if name == "" {
		name = tags["mlflow.runName"]
	}
	if name == "" {
		name = id
	}
	info := &event.RunInfo{Name: name, ExternalID: "mlflow:" + id}
	if ms, err := strconv.ParseInt(meta["start_time"], 10, 64); err == nil && ms > 0 {
		info.CreatedAt = ms
	}
	pos := s.next()
	dst = append(dst, event.Event{Kind: event.KindRun, Pos: pos, Info: info})

	cfg := map[string]any{"mlflow/run_id": id}
	for _, k := range []string{"experiment_id", "user_id", "artifact_uri"} {
		if v := meta[k]; v != "" {
			cfg["mlflow/"+k] = v
		}
	}
	if data, err := os.ReadFile(filepath.Join(filepath.Dir(s.dir), "meta.yaml")); err == nil {
		if v := parseMeta(data)["name"]; v != "" {
			cfg["mlflow/experiment_name"] = v
		}
	}
	return append(dst, event.Event{Kind: event.KindConfig, Pos: pos, Config: cfg})
}

// tagEvents sends the system tags as config and new user tags as labels.
func (s *stream) tagEvents(dst []event.Event, tags map[string]string) []event.Event {
	sys := map[string]string{}
	var labels []string
	for k, v := range tags {
		if rest, ok := strings.CutPrefix(k, "mlflow."); ok {
			sys[rest] = v
			continue
		}
		label := k
		if v != "" {
			label = k + "=" + v
		}
		if _, found := slices.BinarySearch(s.st.Labels, label); !found {
			labels = append(labels, label)
		}
	}
	if len(sys) > 0 {
		if h := hashValues(sys); h != s.st.SysTags {
			cfg := make(map[string]any, len(sys))
			for k, v := range sys {
				cfg["mlflow/"+k] = v
			}
			dst = append(dst, event.Event{Kind: event.KindConfig, Pos: s.next(), Config: cfg})
			s.st.SysTags = h
		}
	}
	if len(labels) > 0 {
		slices.Sort(labels)
		dst = append(dst, event.Event{Kind: event.KindTags, Pos: s.next(), Tags: labels})
		s.st.Labels = append(s.st.Labels, labels...)
		slices.Sort(s.st.Labels)
	}
	return dst
}

// statusEvent sends a terminal status not sent yet.
func (s *stream) statusEvent(dst []event.Event, meta map[string]string) []event.Event {
	var status string
	switch meta["status"] {
	case "3", "FINISHED":
		status = event.StatusCompleted
	case "4", "FAILED":
		status = event.StatusFailed
	case "5", "KILLED":
		status = event.StatusTerminated
	default:
		return dst
	}
	key := status + "@" + meta["end_time"]
	if key == s.st.Status {
		return dst
	}
	e := event.Event{Kind: event.KindStatus, Pos: s.next(), Status: status}
	if ms, err := strconv.ParseInt(meta["end_time"], 10, 64); err == nil && ms > 0 {
		e.Time = ms
	}
	s.st.Status = key
	return append(dst, e)
}

// point is one parsed metric line.
type point struct {
	name       string
	time, step int64
	value      float64
}

// metricEvents reads the new complete lines of every metric file, up to
// s.chunk bytes. drained says every file was read to its end.
func (s *stream) metricEvents(ctx context.Context, dst []event.Event) (_ []event.Event, nbytes int64, drained bool, err error) {
	root := filepath.Join(s.dir, "metrics")
	files, err := listFiles(root)
	if err != nil {
		return dst, 0, false, err
	}
	var pts []point
	drained = true
	budget := s.chunk
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return dst, nbytes, false, err
		}
		name := f.name
		off := s.st.Offsets[name]
		if f.size < off {
			// The file shrank: it was replaced, read it again.
			off = 0
		}
		if f.size == off {
			continue
		}
		if budget <= 0 {
			drained = false
			break
		}
		// At least minRead bytes, so a line never outgrows a small budget.
		n := min(f.size-off, max(budget, minRead))
		if n < f.size-off {
			drained = false
		}
		if int64(cap(s.buf)) < n {
			s.buf = make([]byte, n)
		}
		buf := s.buf[:n]
		got, err := readAt(filepath.Join(root, filepath.FromSlash(name)), buf, off)
		if err != nil {
			return dst, nbytes, false, err
		}
		buf = buf[:got]
		end := bytes.LastIndexByte(buf, '\n')
		if end < 0 {
			continue // an incomplete line: held until its newline arrives
		}
		consumed := buf[:end+1]
		for len(consumed) > 0 {
			i := bytes.IndexByte(consumed, '\n')
			line := consumed[:i]
			consumed = consumed[i+1:]
			if p, ok := parseLine(line); ok {
				p.name = name
				pts = append(pts, p)
			} else if len(bytes.TrimSpace(line)) > 0 {
				s.opts.OnSkip(parsers.SkipOther)
				s.st.Seq++ // a consumed item without an event
			}
		}
		s.st.Offsets[name] = off + int64(end+1)
		nbytes += int64(end + 1)
		budget -= int64(end + 1)
	}
	if cap(s.buf) > 256<<10 {
		s.buf = nil // do not keep a backlog-sized buffer for the life of the run
	}
	// Group the points of one step and time into one event; the stable sort
	// keeps the files' name order inside a group.
	slices.SortStableFunc(pts, func(a, b point) int {
		if c := cmp.Compare(a.step, b.step); c != 0 {
			return c
		}
		return cmp.Compare(a.time, b.time)
	})
	for i := 0; i < len(pts); {
		j := i + 1
		for j < len(pts) && pts[j].step == pts[i].step && pts[j].time == pts[i].time {
			j++
		}
		ev := event.Event{Kind: event.KindMetrics, Pos: s.next(), Step: pts[i].step, Time: pts[i].time, Points: make([]event.Point, 0, j-i)}
		for _, p := range pts[i:j] {
			ev.Points = append(ev.Points, event.Point{Name: p.name, Value: p.value})
		}
		dst = append(dst, ev)
		i = j
	}
	return dst, nbytes, drained, nil
}

// parseLine parses "<unix_ms> <value> <step>" or the older "<unix_ms> <value>".
func parseLine(line []byte) (point, bool) {
	f := strings.Fields(string(line))
	if len(f) != 2 && len(f) != 3 {
		return point{}, false
	}
	ts, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || ts < 0 {
		return point{}, false
	}
	v, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		var ne *strconv.NumError
		if !errors.As(err, &ne) || ne.Err != strconv.ErrRange {
			return point{}, false
		}
	}
	var step int64
	if len(f) == 3 {
		if step, err = strconv.ParseInt(f[2], 10, 64); err != nil || step < 0 {
			return point{}, false
		}
	}
	return point{time: ts, step: step, value: v}, true
}

func readAt(path string, buf []byte, off int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("read %s: %w", path, err)
	}
	return n, nil
}

// file is a regular file under a metrics, params or tags directory.
type file struct {
	name  string // relative path with '/' separators: the metric, param or tag name
	size  int64
	mtime int64 // unix nanoseconds
}

// listFiles lists the regular files under root, sorted by name; a missing
// root is empty.
func listFiles(root string) ([]file, error) {
	var out []file
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		out = append(out, file{name: filepath.ToSlash(rel), size: info.Size(), mtime: info.ModTime().UnixNano()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	slices.SortFunc(out, func(a, b file) int { return cmp.Compare(a.name, b.name) })
	return out, nil
}

// read returns the values of every file under a params or tags directory,
// reading the files only when the listing changed.
func (c *valueCache) read(root string) (map[string]string, error) {
	files, err := listFiles(root)
	if err != nil {
		return nil, err
	}
	var fp strings.Builder
	for _, f := range files {
		fmt.Fprintf(&fp, "%s\x00%d\x00%d\x00", f.name, f.size, f.mtime)
	}
	if c.values != nil && fp.String() == c.fingerprint {
		return c.values, nil
	}
	out := make(map[string]string, len(files))
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f.name)))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read %s: %w", f.name, err)
		}
		out[f.name] = string(b)
	}
	c.fingerprint, c.values = fp.String(), out
	return out, nil
}

// hashValues fingerprints a set of names and values.
func hashValues(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(m[k]), m[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
