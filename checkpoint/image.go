package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/fsutil"
)

// Image is the state file as the agent keeps it in memory between saves:
// every stream and run entry, each with its encoding. Put marks an entry
// changed; Save encodes only the changed entries and writes the whole file
// atomically. With 10,000 idle files a save costs the entries that moved
// plus one write, and nothing is written when nothing changed.
//
// The on-disk format is this package's alone: the agent hands it values
// (Stream, Run), never bytes. An Image is used by one goroutine at a time
// (the agent's checkpoint saver); it has no lock of its own.
type Image struct {
	streams entries
	runs    entries
	changed bool
}

// entries are encoded values by key, with the keys kept sorted so the file
// is stable from save to save.
type entries struct {
	keys []string
	m    map[string]*entry
}

type entry struct {
	val   any
	enc   []byte // nil: not encoded since the last change
	since time.Time
}

func (e *entries) put(key string, v any) {
	if e.m == nil {
		e.m = map[string]*entry{}
	}
	if x, ok := e.m[key]; ok {
		x.val, x.enc = v, nil
		return
	}
	e.m[key] = &entry{val: v}
	i, _ := slices.BinarySearch(e.keys, key)
	e.keys = slices.Insert(e.keys, i, key)
}

func (e *entries) drop(key string) bool {
	if _, ok := e.m[key]; !ok {
		return false
	}
	delete(e.m, key)
	if i, ok := slices.BinarySearch(e.keys, key); ok {
		e.keys = slices.Delete(e.keys, i, i+1)
	}
	return true
}

func (e *entries) write(b *bytes.Buffer) error {
	for i, k := range e.keys {
		x := e.m[k]
		if x.enc == nil {
			enc, err := json.Marshal(x.val)
			if err != nil {
				return fmt.Errorf("encode %s: %w", k, err)
			}
			x.enc = enc
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(x.enc)
	}
	return nil
}

func (e *entries) size() int {
	n := 0
	for _, x := range e.m {
		n += len(x.enc) + 1
	}
	return n
}

// NewImage starts an image from a loaded state. Streams that were done
// before dropDoneBefore (finished files kept so a rotated copy is
// recognised) are left out.
func NewImage(st *State, dropDoneBefore time.Time) *Image {
	im := &Image{}
	if st == nil {
		return im
	}
	for _, s := range st.Streams {
		if s.Done && s.Updated.Before(dropDoneBefore) {
			im.changed = true
			continue
		}
		im.streams.put(s.Key, s)
	}
	for _, r := range st.Runs {
		im.runs.put(runKey(r), r)
	}
	return im
}

func runKey(r Run) string { return r.Project + "\x00" + r.ExternalID }

// PutStream sets a stream's entry.
func (im *Image) PutStream(s Stream) {
	im.streams.put(s.Key, s)
	im.changed = true
}

// PutRun sets a run's entry.
func (im *Image) PutRun(r Run) {
	im.runs.put(runKey(r), r)
	im.changed = true
}

// Stream returns a stream's entry.
func (im *Image) Stream(key string) (Stream, bool) {
	x, ok := im.streams.m[key]
	if !ok {
		return Stream{}, false
	}
	return x.val.(Stream), true
}

// Changed reports whether anything was put since the last successful save.
func (im *Image) Changed() bool { return im.changed }

// Len returns the number of stream and run entries.
func (im *Image) Len() (streams, runs int) { return len(im.streams.keys), len(im.runs.keys) }

// Encode returns the state file's bytes, encoding the entries that changed.
func (im *Image) Encode(now time.Time) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(64 + im.streams.size() + im.runs.size())
	fmt.Fprintf(&b, `{"version":%d,"saved_at":%q,"streams":[`, Version, now.UTC().Format(time.RFC3339Nano))
	if err := im.streams.write(&b); err != nil {
		return nil, err
	}
	b.WriteString(`],"runs":[`)
	if err := im.runs.write(&b); err != nil {
		return nil, err
	}
	b.WriteString("]}")
	return b.Bytes(), nil
}

// SaveImage writes the image to the state file atomically and durably,
// when something changed (or force is set: the last save failed).
func (s *Store) SaveImage(im *Image, now time.Time, force bool) error {
	if !im.changed && !force {
		return nil
	}
	data, err := im.Encode(now)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomicSteps(filepath.Join(s.dir, FileName), data, 0o600, s.step); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	im.changed = false
	return nil
}
