package tensorboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// FormatName is the name the format is registered under.
const FormatName = "tensorboard"

func init() {
	parsers.RegisterStream(FormatName, New())
}

// Source parameters (parsers.Options.Params).
const (
	// ParamSpoolDir is where images are written so they can be uploaded
	// (the agent sets it under its state directory). Default:
	// <os.TempDir()>/mlop-agent-tensorboard.
	ParamSpoolDir = "spool_dir"
	// ParamFoldScalars ("true"/"false", default true) folds add_scalars
	// sub-directories into their run as metrics <main_tag>/<key>.
	ParamFoldScalars = "fold_scalars"
	// ParamFoldHParams (default true) folds an add_hparams sub-directory
	// into its run: config and metrics.
	ParamFoldHParams = "fold_hparams"
	// ParamHParamsYAML (default true) reads Lightning's hparams.yaml beside
	// the events files as config.
	ParamHParamsYAML = "hparams_yaml"
	// ParamPurge (default true) applies TensorBoard's purge: points hidden
	// by a later SessionLog START are not sent.
	ParamPurge = "purge"
	// ParamCorruptWait (a duration, default 30s) is how long a record that
	// fails its checksum, or an incomplete record in a file that a newer
	// one follows, is read again while following before it is skipped.
	ParamCorruptWait = "corrupt_wait"
)

var knownParams = []string{ParamSpoolDir, ParamFoldScalars, ParamFoldHParams, ParamHParamsYAML, ParamPurge, ParamCorruptWait}

// Warning reasons (parsers.Warning.Reason), a closed set.
const (
	ReasonCorrupt       = "corrupt"          // a record whose checksum fails, or that does not decode
	ReasonTruncated     = "truncated"        // an incomplete last record (a writer killed mid-record)
	ReasonTooLarge      = "too_large"        // a record over the size limit
	ReasonMissingFile   = "missing_file"     // an events file that disappeared before it was read
	ReasonAudio         = "audio"            // audio summaries
	ReasonPRCurves      = "pr_curves"        // PR curves
	ReasonMesh          = "mesh"             // meshes
	ReasonGraph         = "graph"            // graphs, meta graphs, run metadata
	ReasonCustomScalars = "custom_scalars"   // the custom scalars layout
	ReasonUnknownPlugin = "unknown_plugin"   // a plugin this reader does not know
	ReasonUnsupported   = "unsupported"      // a value mlop has no place for (non-scalar tensors, ...)
	ReasonBadValue      = "bad_value"        // a histogram, image or text that does not make sense
	ReasonBadStep       = "bad_step"         // a negative step
	ReasonPurged        = "purged"           // points TensorBoard hides after a restart, not sent
	ReasonPurgeSent     = "purge_after_send" // points a purge hides that were sent before it was seen
	ReasonSpoolFailed   = "spool_failed"     // an image that could not be written to the spool
	ReasonHParamsYAML   = "hparams_yaml"     // an hparams.yaml this reader cannot read
	ReasonOutOfOrder    = "out_of_order"     // a file that appeared after newer ones were read
)

// ErrUnknownStream is returned by Open for a key this format did not make
// (or no longer knows about).
var ErrUnknownStream = errors.New("unknown tensorboard stream")

// Format reads TensorBoard log directories. One stream is one directory
// holding events files (a "lane"); a TensorBoard run is one lane, plus the
// lanes of its folded sub-directories.
type Format struct {
	mu    sync.Mutex
	lanes map[string]*laneInfo // by key: what Discover found, for Open
	dirs  map[string]listing   // directory listings, see listCached

	// Tests lower the limits of one Next call (0: the defaults).
	chunkEvents int
	chunkBytes  int64
}

// New returns a Format. The registered instance serves the agent; tests
// make their own.
func New() *Format { return &Format{lanes: map[string]*laneInfo{}, dirs: map[string]listing{}} }

var _ parsers.StreamFormat = (*Format)(nil)

// Spools implements the agent's spool contract: images are written to
// Params[ParamSpoolDir].
func (f *Format) Spools() bool { return true }

// laneInfo is one directory holding events files, as Discover found it.
type laneInfo struct {
	key   string
	dir   string   // absolute
	files []string // events files (base names), sorted, at discovery
	name  string   // the run name: the path relative to the log directory, slash-separated
	runID string   // the run's external id if the lane is its own run
	// A lane below another one that holds events files may be one of its
	// sub-directories (add_scalars, add_hparams): the stream decides when
	// it reads the first tag.
	parentKey, parentName, parentID string
	sub                             string // path relative to the parent's directory, slash-separated
}

// options are the parsed source parameters.
type options struct {
	spoolDir    string
	foldScalars bool
	foldHParams bool
	hparamsYAML bool
	purge       bool
	corruptWait time.Duration
	follow      bool
	maxRecord   int64
	chunkBytes  int64
	chunkEvents int
	now         func() time.Time
	onSkip      func(string)
	headRecords int
	maxWarnings int
}

func parseOptions(opts parsers.Options) (options, error) {
	opts = opts.WithDefaults()
	o := options{foldScalars: true, foldHParams: true, hparamsYAML: true, purge: true, corruptWait: 30 * time.Second,
		follow: opts.Follow, maxRecord: defaultMaxRecord, chunkBytes: defaultChunkBytes, chunkEvents: defaultChunkEvents,
		now: opts.Now, onSkip: opts.OnSkip, headRecords: maxHeadRecords, maxWarnings: maxWarnings}
	var unknown []string
	for k, v := range opts.Params {
		var err error
		switch k {
		case ParamSpoolDir:
			o.spoolDir = v
		case ParamFoldScalars:
			o.foldScalars, err = strconv.ParseBool(v)
		case ParamFoldHParams:
			o.foldHParams, err = strconv.ParseBool(v)
		case ParamHParamsYAML:
			o.hparamsYAML, err = strconv.ParseBool(v)
		case ParamPurge:
			o.purge, err = strconv.ParseBool(v)
		case ParamCorruptWait:
			o.corruptWait, err = time.ParseDuration(v)
			if err == nil && o.corruptWait < 0 {
				err = errors.New("negative")
			}
		default:
			unknown = append(unknown, k)
		}
		if err != nil {
			return o, fmt.Errorf("tensorboard parameter %s=%q: %v", k, v, err)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return o, fmt.Errorf("unknown tensorboard parameter %s (known: %s)", strings.Join(unknown, ", "), strings.Join(knownParams, ", "))
	}
	if o.spoolDir == "" {
		o.spoolDir = filepath.Join(os.TempDir(), "mlop-agent-tensorboard")
	}
	return o, nil
}

// Chunk limits: a Next call returns after about this much input or this
// many events, so the agent's per-stream window (4 batches of 1 MiB by
// default) holds several chunks and a commit never waits long.
const (
	defaultChunkBytes  = 512 << 10
	defaultChunkEvents = 8192
	maxHeadRecords     = 8    // records of a file's head searched for a purge marker
	maxWarnings        = 1000 // warnings kept between two Warnings calls
)

// Lane roles: what a directory's data is to mlop.
const (
	roleUndecided = ""         // a sub-directory before its first tag
	roleRun       = "run"      // its own run
	roleScalars   = "scalars"  // an add_scalars sub-directory folded into its parent run
	roleHParams   = "hparams"  // an add_hparams sub-directory folded into its parent run
	roleUnfolded  = "unfolded" // internal: a sub-directory that is its own run
)

// laneState is Chunk.State, JSON.
type laneState struct {
	V int `json:"v"`
	// Files lists the lane's events files in reading order; the position's
	// Offset indexes it. Files found later are appended.
	Files []string `json:"files"`
	// Meta is each tag's plugin, from its first metadata (TensorBoard keeps
	// the first; TensorFlow writes it only on a tag's first event).
	Meta map[string]string `json:"meta,omitempty"`
	// Role is what the lane turned out to be; FoldTag and FoldName name
	// add_scalars' tag and the metric it becomes.
	Role     string `json:"role,omitempty"`
	FoldTag  string `json:"fold_tag,omitempty"`
	FoldName string `json:"fold_name,omitempty"`
	// Purges are the SessionLog START markers seen so far.
	Purges []purgeMark `json:"purges,omitempty"`
	// Hidden counts the points of the current file the purge hid so far.
	Hidden int64 `json:"hidden,omitempty"`
	// YAML is the signature of the hparams.yaml last sent.
	YAML string `json:"yaml,omitempty"`
}

// purgeMark is a SessionLog START: TensorBoard hides the points before it
// at steps >= Step.
type purgeMark struct {
	At   event.Position `json:"at"`   // where the START record ends
	Step int64          `json:"step"` // its step
	// Seen is the stream position when the marker became known; points
	// read before it were already sent.
	Seen event.Position `json:"seen"`
}

const stateVersion = 1

func decodeState(b []byte) (*laneState, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var st laneState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode tensorboard state: %w", err)
	}
	if st.V != stateVersion {
		return nil, fmt.Errorf("decode tensorboard state: unknown version %d", st.V)
	}
	if st.Meta == nil {
		st.Meta = map[string]string{}
	}
	return &st, nil
}

func (st *laneState) encode() []byte {
	b, err := json.Marshal(st)
	if err != nil {
		// Strings, numbers and maps of strings: cannot fail.
		panic(err)
	}
	return b
}

// Open starts reading one lane after resume, with the state saved with it.
func (f *Format) Open(info parsers.StreamInfo, resume event.Position, state []byte, opts parsers.Options) (parsers.Stream, error) {
	f.mu.Lock()
	ln := f.lanes[info.Key]
	f.mu.Unlock()
	if ln == nil {
		return nil, fmt.Errorf("open %s: %w", info.Key, ErrUnknownStream)
	}
	o, err := parseOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", info.Key, err)
	}
	if f.chunkEvents > 0 {
		o.chunkEvents = f.chunkEvents
	}
	if f.chunkBytes > 0 {
		o.chunkBytes = f.chunkBytes
	}
	return openStream(ln, resume, state, o)
}

// CheckParams reports the first problem with a source's parameters for
// this format (an unknown key, a value that does not parse), so a command
// can refuse them before it starts.
func CheckParams(params map[string]string) error {
	_, err := parseOptions(parsers.Options{Params: params})
	return err
}
