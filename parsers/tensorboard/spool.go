package tensorboard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// spooler writes images found in events files to files the agent uploads.
// A name is derived from where the image was read (lane, file, offset,
// tag, sample), so reading the same record again — after a restart —
// finds the same file instead of writing another. The spool is not cleaned
// up by this package.
type spooler struct {
	dir    string
	failed error // the last write error; the stream stops on it
}

func (s *spooler) write(lane, file string, off int64, tag string, sample int, data []byte) (string, error) {
	h := sha256.New()
	for _, part := range []string{lane, file, strconv.FormatInt(off, 10), tag, strconv.Itoa(sample)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	name := hex.EncodeToString(h.Sum(nil)[:12]) + "." + imageExt(data)
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", fmt.Errorf("spool %s: %w", tag, err)
	}
	p := filepath.Join(s.dir, name)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return p, nil
	}
	tmp, err := os.CreateTemp(s.dir, ".spool-*")
	if err != nil {
		return "", fmt.Errorf("spool %s: %w", tag, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), p)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("spool %s: %w", tag, werr)
	}
	return p, nil
}

// imageExt sniffs the format of encoded image bytes (TensorBoard writes
// PNG; GIF for animations; JPEG from some writers).
func imageExt(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		return "jpg"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "gif"
	case len(data) > 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	case bytes.HasPrefix(data, []byte("BM")):
		return "bmp"
	}
	return "png"
}

// warnBuf collects warnings between two Warnings calls.
type warnBuf struct {
	ws      []parsers.Warning
	dropped int
	max     int
	onSkip  func(string)
	// quiet drops everything (replays that rebuild state).
	quiet bool
}

// add records a warning. Pos is the stream position; Seq is set to the
// record's byte offset in its file so the warning reads file:offset.
func (w *warnBuf) add(file string, pos event.Position, off int64, reason, detail string) {
	if w.quiet {
		return
	}
	if w.onSkip != nil {
		w.onSkip(parsers.SkipOther)
	}
	if len(w.ws) >= w.max {
		w.dropped++
		return
	}
	w.ws = append(w.ws, parsers.Warning{File: file, Pos: event.Position{Offset: pos.Offset, Seq: off}, Reason: reason, Detail: detail})
}

func (w *warnBuf) take() ([]parsers.Warning, int) {
	ws, d := w.ws, w.dropped
	w.ws, w.dropped = nil, 0
	return ws, d
}
