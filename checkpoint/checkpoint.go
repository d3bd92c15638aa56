// Package checkpoint persists what the agent has delivered: for every stream
// (a file generation, or a Neptune run) the position after the last record
// whose events the server acknowledged, contiguously, with the parser state
// that belongs to that position; and for every run the numeric id the
// server gave it. The state is one versioned JSON file, replaced atomically.
package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/internal/fsutil"
)

// Version is the state file format version. A file with another version is
// refused rather than guessed at.
const Version = 1

// FileName is the state file inside the state directory.
const FileName = "state.json"

const lockName = "lock"

// ErrLocked means another agent holds the state directory.
var ErrLocked = errors.New("state directory is in use by another mlop-agent")

// State is everything the agent persists.
type State struct {
	Version int       `json:"version"`
	SavedAt time.Time `json:"saved_at"`
	Streams []Stream  `json:"streams"`
	Runs    []Run     `json:"runs"`
}

// Stream is the acknowledged progress of one stream.
type Stream struct {
	// Key identifies the stream: "<source>:<fingerprint>" for a file
	// generation, the format's own key for stream formats.
	Key    string `json:"key"`
	Source string `json:"source"`
	Path   string `json:"path"` // last path the stream was seen at
	// RunPath is the path the stream had when it was first seen; run
	// names and ids are derived from it, so a file renamed by rotation
	// keeps feeding the run it started in.
	RunPath string `json:"run_path,omitempty"`

	// File identifies the file generation and the place of Pos in it
	// (line files only): the fingerprint of its first bytes and the marker
	// of the bytes just before Pos.Offset, checked on restart to catch a
	// file whose content changed under the same name and first bytes.
	// Its fields are stored inline (fingerprint, finger_len, marker,
	// marker_len).
	event.FileMark

	// Pos is the position after the last acknowledged record; Line the
	// number of lines up to it.
	Pos  event.Position `json:"pos"`
	Line int64          `json:"line,omitempty"`

	// ParserState is the parser's state after the record at Pos.
	ParserState []byte `json:"parser_state,omitempty"`

	// Sent records, per run, the last non-idempotent event (string series,
	// logs, files) the server acknowledged, which may be ahead of Pos.
	// After a crash such events up to the mark are not sent again.
	Sent map[string]Mark `json:"sent,omitempty"`

	// Signature is the stream format's signature of the data when a
	// backfill completed the stream (Done is then set).
	Signature string `json:"signature,omitempty"`

	// Runs are the runs the stream has fed, so a backfill that finds
	// nothing new still finishes them.
	Runs []RunRef `json:"runs,omitempty"`

	Size     int64     `json:"size,omitempty"`      // file size at the last save, for status
	LastTime int64     `json:"last_time,omitempty"` // time of the newest acknowledged point, unix ms
	Done     bool      `json:"done,omitempty"`      // line files: read to the end and gone; streams: complete at Signature
	Updated  time.Time `json:"updated_at"`
}

// Mark names one event: the position of its record and its index among the
// record's events.
type Mark struct {
	Pos   event.Position `json:"pos"`
	Index int            `json:"index"`
}

// Less orders marks of one stream.
func (m Mark) Less(o Mark) bool {
	if m.Pos != o.Pos {
		return m.Pos.Less(o.Pos)
	}
	return m.Index < o.Index
}

// RunRef names a run by project and external id.
type RunRef struct {
	Project    string `json:"project"`
	ExternalID string `json:"external_id"`
}

// Run maps a run's external id to the server's numeric id.
type Run struct {
	ExternalID string   `json:"external_id"`
	Project    string   `json:"project"`
	Name       string   `json:"name"`
	RunID      int64    `json:"run_id"`
	URL        string   `json:"url,omitempty"`
	Source     string   `json:"source,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Status     string   `json:"status,omitempty"` // the last status the agent set
	CreatedAt  int64    `json:"created_at,omitempty"`
	LastTime   int64    `json:"last_time,omitempty"` // newest acknowledged point, unix ms
}

// Store is the state directory of one agent. It holds an exclusive lock on
// the directory while open.
type Store struct {
	dir  string
	lock *os.File
	// step, when set (tests), is called before each step of a save and can
	// stop it there, as a crash would (fsutil.WriteFileAtomicSteps).
	step func(string) error
}

// Open creates the state directory (mode 0700) if needed and locks it.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	// A save interrupted by a crash leaves its temporary file; the state
	// file itself is the old or the new one, whole. Holding the lock, the
	// leftovers are ours to remove.
	if tmps, err := filepath.Glob(filepath.Join(dir, fsutil.TempPrefix(FileName)+"*")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	return &Store{dir: dir, lock: lf}, nil
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

// Load reads the state; a directory without a state file yields an empty
// state.
func (s *Store) Load() (*State, error) { return Read(s.dir) }

// Save replaces the state file with st, atomically and durably (tools and
// tests; the agent saves an Image, which re-encodes only what changed).
func (s *Store) Save(st *State) error {
	im := NewImage(st, time.Time{})
	im.changed = true
	return s.SaveImage(im, time.Now(), true)
}

// Close releases the lock. It is safe to call twice, and on a nil Store.
func (s *Store) Close() error {
	if s == nil || s.lock == nil {
		return nil
	}
	err := s.lock.Close() // closing the descriptor drops the flock
	s.lock = nil
	return err
}

// Read loads the state of dir without locking it, for tools that inspect a
// running agent's state. The file is replaced atomically, so a reader never
// sees a partial write.
func Read(dir string) (*State, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: Version}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st State
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v); move it aside to start over, which re-sends everything it recorded", path, err)
	}
	if st.Version != Version {
		return nil, fmt.Errorf("%s has version %d, this agent reads version %d", path, st.Version, Version)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v); move it aside to start over, which re-sends everything it recorded", path, err)
	}
	return &st, nil
}

// check refuses values no agent writes: a negative offset or count, a
// stream without a key, a run without an id. Resuming from them would
// re-send or skip data silently.
func (st *State) check() error {
	seen := map[string]bool{}
	for i, s := range st.Streams {
		switch {
		case s.Key == "":
			return fmt.Errorf("streams[%d]: no key", i)
		case seen[s.Key]:
			return fmt.Errorf("streams[%d]: key %q appears twice", i, s.Key)
		case s.Pos.Offset < 0 || s.Pos.Seq < 0:
			return fmt.Errorf("streams[%d] (%s): negative position %+v", i, s.Key, s.Pos)
		case s.Line < 0, s.Size < 0, s.FingerLen < 0, s.MarkerLen < 0:
			return fmt.Errorf("streams[%d] (%s): negative line, size or length", i, s.Key)
		case s.Fingerprint != "" && s.FingerLen == 0, s.Marker != "" && s.MarkerLen == 0:
			return fmt.Errorf("streams[%d] (%s): a hash without its length", i, s.Key)
		}
		seen[s.Key] = true
		for run, m := range s.Sent {
			if m.Pos.Offset < 0 || m.Pos.Seq < 0 || m.Index < 0 {
				return fmt.Errorf("streams[%d] (%s): sent mark of %s is negative", i, s.Key, run)
			}
		}
	}
	for i, r := range st.Runs {
		if r.ExternalID == "" || r.RunID <= 0 {
			return fmt.Errorf("runs[%d]: no external id or run id", i)
		}
	}
	return nil
}
