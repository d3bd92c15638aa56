package watcher

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sync"

	"github.com/mlop-ai/mlop-agent/event"
)

// markerLen is how many bytes before a checkpointed offset are hashed to
// recognise, on restart, a file whose content changed under the same name
// and first bytes.
const markerLen = 128

// hashHex is the content hash used for fingerprints and markers (FNV-1a
// 128-bit: fast, and collisions between real files are not a concern at
// this length).
func hashHex(b []byte) string {
	h := fnv.New128a()
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// fingerprint hashes the first min(size, n) bytes of f.
func fingerprint(f *os.File, n int) (fp string, length int, err error) {
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", 0, err
	}
	return hashHex(buf[:m]), m, nil
}

// prefixMatches reports whether the first length bytes of f hash to fp.
func prefixMatches(f *os.File, fp string, length int) (bool, error) {
	if length == 0 {
		return false, nil
	}
	buf := make([]byte, length)
	m, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	if m < length {
		return false, nil
	}
	return hashHex(buf) == fp, nil
}

// markerMatches reports whether the length bytes before off hash to marker.
func markerMatches(f *os.File, off int64, marker string, length int) (bool, error) {
	if length == 0 || marker == "" {
		return true, nil
	}
	if off < int64(length) {
		return false, nil
	}
	buf := make([]byte, length)
	m, err := f.ReadAt(buf, off-int64(length))
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	if m < length {
		return false, nil
	}
	return hashHex(buf) == marker, nil
}

// lineReader is the tailer seam: it reads complete lines from one open file
// generation starting at an offset, holding a trailing partial line until
// its newline arrives. Offsets come only from the bytes it consumed, so a
// position always sits on a line boundary. Only the owning tailer
// goroutine touches it.
type lineReader struct {
	f       *os.File
	pos     int64 // file offset of buf[start]
	line    int64 // lines before pos
	buf     []byte
	start   int
	end     int
	maxLine int

	// discard is set while skipping the rest of an over-long line; long
	// holds its first maxLine+1 bytes, which become the record's Data so
	// the parser rejects it with the right reason.
	discard bool
	long    []byte
}

const minReadBuf = 64 << 10

// readBufs recycles read buffers: a file's buffer is returned when the
// file is idle, so thousands of idle files hold none, and a busy file does
// not allocate one per read.
var readBufs = sync.Pool{New: func() any { b := make([]byte, minReadBuf); return &b }}

func newLineReader(f *os.File, offset, line int64, maxLine int) *lineReader {
	return &lineReader{f: f, pos: offset, line: line, maxLine: maxLine}
}

// readPos is the file offset just past the data read so far.
func (r *lineReader) readPos() int64 { return r.pos + int64(r.end-r.start) }

// unchanged reports whether the file still holds what was read from it:
// the markerLen bytes before pos hash to marker, and the buffered partial
// line (if any) is still the file's bytes at pos. It costs one or two small
// preads; a file rewritten in place with other content fails it even when
// it grew past the read position.
func (r *lineReader) unchanged(marker string, markerLen int) (bool, error) {
	if r.f == nil {
		return true, nil
	}
	if r.pos > 0 {
		if ok, err := markerMatches(r.f, r.pos, marker, markerLen); err != nil || !ok {
			return ok, err
		}
	}
	if r.discard || r.end == r.start {
		return true, nil
	}
	held := r.buf[r.start:r.end]
	cur := make([]byte, len(held))
	n, err := r.f.ReadAt(cur, r.pos)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return n == len(held) && bytes.Equal(cur, held), nil
}

// pending reports whether a partial line is buffered.
func (r *lineReader) pending() bool { return r.end > r.start || r.discard }

// release drops the buffer when nothing is pending, so idle files cost no
// memory.
func (r *lineReader) release() {
	if !r.pending() && r.buf != nil {
		if cap(r.buf) == minReadBuf {
			b := r.buf[:minReadBuf]
			readBufs.Put(&b)
		}
		r.buf, r.start, r.end = nil, 0, 0
	}
}

// chunkResult describes what next returned.
type chunkResult struct {
	eof       bool // the read reached the current end of the file
	recs      []event.Record
	end       int64 // offset after the last record
	line      int64
	marker    string
	markerLen int
	consumed  int64
}

// next returns complete lines until maxBytes have been consumed or the data
// available now runs out. With final set, an unterminated last line at the
// end of the file is returned as a line (backfill of a finished file). The
// records' Data alias the reader's buffer until the next call.
func (r *lineReader) next(dst []event.Record, maxBytes int, final bool) (chunkResult, error) {
	res := chunkResult{recs: dst[:0], end: r.pos, line: r.line}
	if cap(r.buf) == 0 {
		r.buf = *readBufs.Get().(*[]byte)
	}
	// Compact so the unread partial line starts the buffer.
	if r.start > 0 {
		n := copy(r.buf, r.buf[r.start:r.end])
		r.start, r.end = 0, n
	}
	startPos := r.pos
	eof := false
	for !eof && int(r.pos-startPos) < maxBytes {
		if r.end == len(r.buf) {
			if r.start > 0 {
				break // buffer holds records the caller has not seen yet
			}
			if r.discard || r.end > r.maxLine {
				r.enterDiscard()
			} else {
				nb := make([]byte, min(2*len(r.buf), r.maxLine+2))
				copy(nb, r.buf[:r.end])
				r.buf = nb
			}
		}
		n, err := r.f.ReadAt(r.buf[r.end:], r.readPos())
		if n == 0 && err == nil {
			err = io.EOF
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return res, fmt.Errorf("read %s: %w", r.f.Name(), err)
		}
		eof = errors.Is(err, io.EOF)
		r.end += n
		r.scan(&res)
	}
	if final && eof && r.end > r.start && !r.discard {
		// The file ends without a newline; in a backfill nothing will
		// complete it, so the remainder is the last line.
		data := bytes.TrimSuffix(r.buf[r.start:r.end], []byte{'\r'})
		r.pos += int64(r.end - r.start)
		r.line++
		res.recs = append(res.recs, event.Record{Line: r.line, Pos: event.Position{Offset: r.pos}, Data: data})
		r.start = r.end
	}
	if final && eof && r.discard {
		r.pos += int64(r.end - r.start)
		r.start = r.end
		r.line++
		res.recs = append(res.recs, event.Record{Line: r.line, Pos: event.Position{Offset: r.pos}, Data: r.long})
		r.discard, r.long = false, nil
	}
	res.end, res.line = r.pos, r.line
	res.eof = eof
	res.consumed = r.pos - startPos
	if res.consumed > 0 {
		// The consumed bytes still sit in the buffer right before start
		// (except when a discard dropped them; then there is no marker).
		l := int(min(res.consumed, markerLen))
		if r.start >= l {
			res.marker, res.markerLen = hashHex(r.buf[r.start-l:r.start]), l
		}
	}
	return res, nil
}

// scan cuts complete lines out of buf[start:end].
func (r *lineReader) scan(res *chunkResult) {
	for {
		i := bytes.IndexByte(r.buf[r.start:r.end], '\n')
		if i < 0 {
			if r.discard {
				r.pos += int64(r.end - r.start)
				r.start = r.end
			}
			return
		}
		lineEnd := r.start + i
		r.pos += int64(i + 1)
		r.line++
		if r.discard {
			res.recs = append(res.recs, event.Record{Line: r.line, Pos: event.Position{Offset: r.pos}, Data: r.long})
			r.discard, r.long = false, nil
		} else {
			data := r.buf[r.start:lineEnd]
			if len(data) > 0 && data[len(data)-1] == '\r' {
				data = data[:len(data)-1]
			}
			res.recs = append(res.recs, event.Record{Line: r.line, Pos: event.Position{Offset: r.pos}, Data: data})
		}
		r.start = lineEnd + 1
	}
}

// enterDiscard starts skipping an over-long line: it keeps its first
// maxLine+1 bytes and frees the buffer for the rest.
func (r *lineReader) enterDiscard() {
	if !r.discard {
		r.long = append([]byte(nil), r.buf[r.start:min(r.end, r.start+r.maxLine+1)]...)
		r.discard = true
	}
	r.pos += int64(r.end - r.start)
	r.start, r.end = 0, 0
}
