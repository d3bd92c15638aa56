// Package hftrainer reads the Hugging Face Trainer's trainer_state.json as a
// stream format registered as "hf-trainer". The Trainer rewrites the whole
// JSON document at every save; its log_history array only grows during a
// training run, so each Next re-reads the document when its size or
// modification time changed and sends the entries not sent yet.
//
// What the document becomes:
//   - KindRun first: the run is named after its output directory (the
//     parent of checkpoint-N, or the directory holding the file) and its
//     ExternalID is "hf-trainer:" + that directory's absolute path, so every
//     trainer_state.json of one output directory (each checkpoint has one)
//     feeds the same run;
//   - KindConfig with the top-level fields under trainer/ (global_step,
//     max_steps, num_train_epochs, best_metric, best_model_checkpoint,
//     train_batch_size, logging_steps ...), without log_history,
//     stateful_callbacks (transient control flags), the is_*_process_zero
//     flags and null values; sent again whenever a rewrite changed them;
//   - one KindMetrics event per log_history entry at its "step" (or
//     Options.StepField), with every other numeric key as a point (epoch
//     included), points sorted by name, at the read time (entries carry no
//     time). The final summary entry (train_runtime, train_loss, total_flos
//     ...) is an entry like the others: metrics at its step. An entry
//     without a valid step is skipped (parsers.SkipOther);
//   - booleans, nulls, arrays and objects are skipped and reported through
//     Options.OnSkip; so are strings (such as a custom trainer's
//     remaining_time "59h:30m:19s"): they are progress displays, and the
//     same history is repeated in every checkpoint's file, so only kinds the
//     server deduplicates (metrics) or merges (config) are safe to send from
//     each of them.
//
// Rewrites and generations: the state keeps the number of entries consumed
// and a hash of them. When a rewrite no longer starts with the consumed
// entries (a new training run writing to the same directory), that is a new
// run generation: the stream starts again from entry 0 and sends it as a
// new run, Event.Run "gen<N>", Info.Name "<name> (<N>)" and ExternalID
// "hf-trainer:<dir>#<N>", so the old run's points are neither overwritten
// nor mixed with the new ones.
//
// Positions: Pos.Seq counts the items consumed (the run announcement, each
// config change, each log_history entry) across generations, so it only
// grows. A document that is not valid JSON (caught in the middle of a
// rewrite) or missing is not an error: Next returns io.EOF and looks again
// next time. State is needed to resume exactly; opened without it and with
// a resume position, the stream takes the position as counting the run,
// one config and the entries, and skips resume.Seq-2 entries of the
// current document (too few rather than too many: re-sent metrics are
// deduplicated by the server).
//
// Discover accepts a trainer_state.json file or a directory (its own
// trainer_state.json and that of its latest checkpoint-N). A checkpoint's
// file is left out when a later checkpoint of the same directory has one:
// it holds a prefix of the later history.
package hftrainer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
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
	parsers.RegisterStream("hf-trainer", Format{})
}

// FileName is the name the Trainer gives the document.
const FileName = "trainer_state.json"

// MaxEntriesPerChunk bounds the log_history entries one Next sends.
const MaxEntriesPerChunk = 4096

// Format is the trainer_state.json stream format.
type Format struct{}

var _ parsers.StreamFormat = Format{}

// Discover implements parsers.StreamFormat.
func (Format) Discover(path string) ([]parsers.StreamInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", path, err)
	}
	var files []string
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(path, FileName)); err == nil {
			files = append(files, filepath.Join(path, FileName))
		}
		if n, dir := latestCheckpoint(path); n >= 0 {
			files = append(files, filepath.Join(dir, FileName))
		}
	} else if filepath.Base(path) == FileName {
		dir := filepath.Dir(path)
		if n, ok := checkpointNumber(filepath.Base(dir)); ok {
			if latest, _ := latestCheckpoint(filepath.Dir(dir)); latest > n {
				return nil, nil // superseded by a later checkpoint
			}
		}
		files = append(files, path)
	}
	var out []parsers.StreamInfo
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("discover %s: %w", f, err)
		}
		out = append(out, parsers.StreamInfo{Key: "hf-trainer:" + abs, Path: f})
	}
	return out, nil
}

// checkpointNumber parses the N of a checkpoint-N directory name.
func checkpointNumber(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, "checkpoint-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && n >= 0
}

// latestCheckpoint finds the checkpoint-N directory with the largest N that
// holds a trainer_state.json; -1 if none.
func latestCheckpoint(dir string) (int64, string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return -1, ""
	}
	best, bestDir := int64(-1), ""
	for _, e := range entries {
		n, ok := checkpointNumber(e.Name())
		if !ok || !e.IsDir() || n <= best {
			continue
		}
		d := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(d, FileName)); err == nil {
			best, bestDir = n, d
		}
	}
	return best, bestDir
}

// runDir is the output directory a trainer_state.json belongs to.
func runDir(path string) string {
	dir := filepath.Dir(path)
	if _, ok := checkpointNumber(filepath.Base(dir)); ok {
		return filepath.Dir(dir)
	}
	return dir
}

// Open implements parsers.StreamFormat.
func (Format) Open(info parsers.StreamInfo, resume event.Position, state []byte, opts parsers.Options) (parsers.Stream, error) {
	opts = opts.WithDefaults()
	if len(opts.Params) > 0 {
		for k := range opts.Params {
			return nil, fmt.Errorf("hf-trainer: unknown parameter %q", k)
		}
	}
	dir, err := filepath.Abs(runDir(info.Path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", info.Path, err)
	}
	s := &stream{path: info.Path, dir: dir, opts: opts, stepField: opts.StepField}
	if s.stepField == "" {
		s.stepField = "step"
	}
	if len(state) > 0 {
		dec := json.NewDecoder(bytes.NewReader(state))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s.st); err != nil {
			return nil, fmt.Errorf("decode hf-trainer state for %s: %w", info.Key, err)
		}
		if s.st.V != stateVersion || s.st.N < 0 || s.st.Gen < 0 {
			return nil, fmt.Errorf("decode hf-trainer state for %s: version %d, want %d", info.Key, s.st.V, stateVersion)
		}
	} else if resume.Seq > 0 {
		// Without state, take the resume position as the run, one config
		// and the entries: a config re-sent after a rewrite makes this
		// skip too few entries, never too many, and metrics are
		// deduplicated by the server.
		s.st = savedState{V: stateVersion, Seq: resume.Seq, RunSent: true}
		s.skip = max(0, resume.Seq-2)
	} else {
		s.st = savedState{V: stateVersion}
	}
	return s, nil
}

const stateVersion = 1

// savedState is the JSON form of a stream's state.
type savedState struct {
	V       int    `json:"v"`
	Seq     int64  `json:"seq"`                // items consumed, across generations
	Gen     int    `json:"gen,omitempty"`      // run generation, from 0
	N       int    `json:"n,omitempty"`        // log_history entries consumed in this generation
	Prefix  string `json:"prefix,omitempty"`   // hash of those entries
	RunSent bool   `json:"run_sent,omitempty"` // this generation's KindRun was sent
	Config  string `json:"config,omitempty"`   // hash of the config last sent
}

// stream follows one trainer_state.json. Only the goroutine calling Next
// uses it.
type stream struct {
	path      string
	dir       string // the output directory, absolute
	opts      parsers.Options
	stepField string
	st        savedState
	skip      int64 // entries to skip without sending: a resume without state

	// The document as last parsed, and the size and time it had: an
	// unchanged file is not read again.
	size    int64
	mtime   int64
	entries []json.RawMessage
	top     map[string]json.RawMessage
	checked bool // the consumed prefix of entries was verified against st.Prefix
}

// Close implements parsers.Stream; no file stays open between calls.
func (s *stream) Close() error { return nil }

// Next implements parsers.Stream.
func (s *stream) Next(ctx context.Context, dst []event.Event) (parsers.Chunk, error) {
	if err := ctx.Err(); err != nil {
		return parsers.Chunk{}, err
	}
	eof := parsers.Chunk{Events: dst, End: s.pos()}
	fi, err := os.Stat(s.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return eof, io.EOF
		}
		return eof, fmt.Errorf("stat %s: %w", s.path, err)
	}
	var nbytes int64
	if s.entries == nil || fi.Size() != s.size || fi.ModTime().UnixNano() != s.mtime {
		data, err := os.ReadFile(s.path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return eof, io.EOF
			}
			return eof, fmt.Errorf("read %s: %w", s.path, err)
		}
		var top map[string]json.RawMessage
		var entries []json.RawMessage
		if json.Unmarshal(data, &top) != nil || json.Unmarshal(top["log_history"], &entries) != nil {
			// Caught in the middle of a rewrite: look again next time.
			return eof, io.EOF
		}
		if entries == nil {
			entries = []json.RawMessage{}
		}
		s.size, s.mtime = fi.Size(), fi.ModTime().UnixNano()
		s.entries, s.top, s.checked = entries, top, false
		nbytes = int64(len(data))
	}

	startSeq := s.st.Seq
	if !s.checked {
		s.checkPrefix()
		s.checked = true
	}
	if !s.st.RunSent {
		dst = append(dst, s.runEvent())
		s.st.RunSent = true
	}
	if cfg, h := s.config(); h != s.st.Config {
		s.st.Seq++
		dst = append(dst, event.Event{Kind: event.KindConfig, Run: s.runLabel(), Pos: s.pos(), Config: cfg})
		s.st.Config = h
	}
	dst, err = s.entryEvents(ctx, dst)
	if err != nil {
		return parsers.Chunk{Events: dst}, err
	}
	if s.st.Seq == startSeq {
		return parsers.Chunk{Events: dst, End: s.pos()}, io.EOF
	}
	st, err := json.Marshal(s.st)
	if err != nil {
		return parsers.Chunk{Events: dst}, fmt.Errorf("encode hf-trainer state: %w", err)
	}
	return parsers.Chunk{Events: dst, End: s.pos(), State: st, Bytes: nbytes}, nil
}

func (s *stream) pos() event.Position { return event.Position{Seq: s.st.Seq} }

// checkPrefix compares the consumed entries with the document's; a
// document that no longer starts with them begins a new generation.
func (s *stream) checkPrefix() {
	if s.skip > 0 {
		// A resume without state: trust the document for what was sent.
		n := int(min(s.skip, int64(len(s.entries))))
		s.st.N, s.st.Prefix, s.st.RunSent = n, hashEntries(nil, s.entries[:n]), true
		s.skip = 0
		return
	}
	if s.st.N == 0 {
		return
	}
	if s.st.N <= len(s.entries) && hashEntries(nil, s.entries[:s.st.N]) == s.st.Prefix {
		return
	}
	s.st.Gen++
	s.st.N, s.st.Prefix, s.st.RunSent, s.st.Config = 0, "", false, ""
}

// hashEntries hashes entries, compacted so that indentation does not count,
// continuing h when it is not nil.
func hashEntries(h hash.Hash, entries []json.RawMessage) string {
	if h == nil {
		h = sha256.New()
	}
	var buf bytes.Buffer
	for _, e := range entries {
		buf.Reset()
		if json.Compact(&buf, e) != nil {
			buf.Write(e)
		}
		fmt.Fprintf(h, "%d:", buf.Len())
		h.Write(buf.Bytes())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// runLabel is Event.Run: "" for the first generation.
func (s *stream) runLabel() string {
	if s.st.Gen == 0 {
		return ""
	}
	return fmt.Sprintf("gen%d", s.st.Gen+1)
}

func (s *stream) runEvent() event.Event {
	s.st.Seq++
	info := &event.RunInfo{Name: filepath.Base(s.dir), ExternalID: "hf-trainer:" + s.dir}
	if s.st.Gen > 0 {
		info.Name = fmt.Sprintf("%s (%d)", info.Name, s.st.Gen+1)
		info.ExternalID = fmt.Sprintf("%s#%d", info.ExternalID, s.st.Gen+1)
	}
	return event.Event{Kind: event.KindRun, Run: s.runLabel(), Pos: s.pos(), Info: info}
}

// configSkip are the top-level fields that are not config.
var configSkip = map[string]bool{
	"log_history":           true,
	"stateful_callbacks":    true,
	"is_local_process_zero": true,
	"is_world_process_zero": true,
}

// config returns the trainer/ config and its hash.
func (s *stream) config() (map[string]any, string) {
	keys := make([]string, 0, len(s.top))
	for k := range s.top {
		if !configSkip[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	cfg := map[string]any{}
	h := sha256.New()
	for _, k := range keys {
		var v any
		if json.Unmarshal(s.top[k], &v) != nil || v == nil {
			continue
		}
		cfg["trainer/"+k] = v
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(s.top[k]), s.top[k])
	}
	if len(cfg) == 0 {
		return nil, s.st.Config
	}
	return cfg, hex.EncodeToString(h.Sum(nil)[:16])
}

// entryEvents sends the log_history entries not consumed yet, up to
// MaxEntriesPerChunk.
func (s *stream) entryEvents(ctx context.Context, dst []event.Event) ([]event.Event, error) {
	end := min(len(s.entries), s.st.N+MaxEntriesPerChunk)
	if end <= s.st.N {
		return dst, nil
	}
	now := s.opts.Now().UnixMilli()
	run := s.runLabel()
	for i := s.st.N; i < end; i++ {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return dst, err
			}
		}
		s.st.Seq++
		if ev, ok := s.entryEvent(s.entries[i]); ok {
			ev.Run, ev.Pos, ev.Time = run, s.pos(), now
			dst = append(dst, ev)
		}
	}
	// The prefix hash covers every consumed entry.
	s.st.N, s.st.Prefix = end, hashEntries(nil, s.entries[:end])
	return dst, nil
}

// entryEvent turns one log_history entry into a metrics event.
func (s *stream) entryEvent(raw json.RawMessage) (event.Event, bool) {
	var entry map[string]any
	if err := json.Unmarshal(raw, &entry); err != nil {
		s.opts.OnSkip(parsers.SkipOther)
		return event.Event{}, false
	}
	sv, ok := entry[s.stepField].(float64)
	if !ok {
		s.opts.OnSkip(parsers.SkipOther)
		return event.Event{}, false
	}
	step, err := parsers.StepFromNumber(sv)
	if err != nil {
		s.opts.OnSkip(parsers.SkipOther)
		return event.Event{}, false
	}
	pts := make([]event.Point, 0, len(entry)-1)
	for k, v := range entry {
		if k == s.stepField {
			continue
		}
		switch v := v.(type) {
		case float64:
			if parsers.ValidName(k) {
				pts = append(pts, event.Point{Name: k, Value: v})
			}
		case bool:
			s.opts.OnSkip(parsers.SkipBool)
		case nil:
			s.opts.OnSkip(parsers.SkipNull)
		case string:
			s.opts.OnSkip(parsers.SkipString)
		case []any:
			s.opts.OnSkip(parsers.SkipArray)
		default:
			s.opts.OnSkip(parsers.SkipOther)
		}
	}
	if len(pts) == 0 {
		return event.Event{}, false
	}
	slices.SortFunc(pts, func(a, b event.Point) int { return cmp.Compare(a.Name, b.Name) })
	return event.Event{Kind: event.KindMetrics, Step: step, Points: pts}, true
}
