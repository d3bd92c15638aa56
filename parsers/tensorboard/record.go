package tensorboard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// TFRecord framing (tensorflow/core/lib/io/record_writer.cc):
//
//	uint64 length (little-endian)
//	uint32 masked CRC32C of the 8 length bytes
//	byte   data[length]
//	uint32 masked CRC32C of data
//
// mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8, CRC32C = Castagnoli.

const (
	headerLen = 12
	footerLen = 4
	maskDelta = 0xa282ead8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is the checksum TFRecord stores.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + maskDelta
}

// recStatus is what the reader found at its offset.
type recStatus uint8

const (
	recOK        recStatus = iota // a complete record with good checksums
	recEOF                        // nothing after the offset (a clean end, for now)
	recPartial                    // a record has begun but is not complete yet
	recBadLength                  // the length's checksum fails: the frame is lost
	recBadData                    // the data's checksum fails; its length is known
	recTooLarge                   // longer than the limit; its length is known
)

func (s recStatus) String() string {
	switch s {
	case recOK:
		return "ok"
	case recEOF:
		return "eof"
	case recPartial:
		return "partial"
	case recBadLength:
		return "bad length checksum"
	case recBadData:
		return "bad data checksum"
	case recTooLarge:
		return "too large"
	}
	return "unknown"
}

// Default sizes: the read buffer, and the largest record read into memory
// (TensorFlow itself refuses protos over 2 GiB; graphs are the big ones and
// are skipped without being read).
const (
	defaultBufSize   = 256 << 10
	defaultMaxRecord = 64 << 20
	peekLen          = 64 // bytes of a large record read to see what it is
)

// recordReader reads TFRecords from one file at increasing offsets. It
// never holds more than its buffer (plus one record up to maxRecord, after
// which the buffer shrinks back), and it never skips bytes it was not told
// to: an incomplete record is reported as recPartial and read again, from
// the file, on the next call.
type recordReader struct {
	f         *os.File
	path      string
	buf       []byte // buf[:n] holds the file's bytes from bufOff
	n         int
	bufOff    int64
	off       int64 // offset of the next record
	maxRecord int64
}

func openRecords(path string, off int64, maxRecord int64) (*recordReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if maxRecord <= 0 {
		maxRecord = defaultMaxRecord
	}
	return &recordReader{f: f, path: path, buf: make([]byte, defaultBufSize), bufOff: off, off: off, maxRecord: maxRecord}, nil
}

func (r *recordReader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// have makes sure k bytes from r.off are buffered, reading the file as
// needed. It returns false when the file does not hold them (yet).
func (r *recordReader) have(k int) (bool, error) {
	start := int(r.off - r.bufOff)
	if start < 0 || start > r.n {
		// The offset moved past what is buffered (a skip).
		r.n, r.bufOff, start = 0, r.off, 0
	}
	if start+k <= r.n {
		return true, nil
	}
	// Move what is left to the front, growing the buffer for a large
	// record.
	if k > len(r.buf) {
		nb := make([]byte, k)
		r.n = copy(nb, r.buf[start:r.n])
		r.buf = nb
	} else if start > 0 {
		r.n = copy(r.buf, r.buf[start:r.n])
	}
	r.bufOff = r.off
	for r.n < k {
		m, err := r.f.ReadAt(r.buf[r.n:], r.bufOff+int64(r.n))
		r.n += m
		if errors.Is(err, io.EOF) {
			return r.n >= k, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", r.path, err)
		}
		if m == 0 {
			return false, nil
		}
	}
	return true, nil
}

// forget drops buffered bytes from r.off on, so they are read from the
// file again (a writer may still be completing them), and gives a grown
// buffer back.
func (r *recordReader) forget() {
	if start := int(r.off - r.bufOff); start >= 0 && start < r.n {
		r.n = start
	}
	if len(r.buf) > defaultBufSize && int(r.off-r.bufOff) >= r.n {
		r.buf, r.n, r.bufOff = make([]byte, defaultBufSize), 0, r.off
	}
}

// shrink gives a buffer grown for one large record back once it is
// consumed.
func (r *recordReader) shrink() {
	if len(r.buf) > defaultBufSize && int(r.off-r.bufOff) >= r.n {
		r.buf, r.n, r.bufOff = make([]byte, defaultBufSize), 0, r.off
	}
}

// record is what next found.
type record struct {
	status recStatus
	off    int64  // where the record starts
	length int64  // data length, when known
	data   []byte // recOK: the data, valid until the next call
	// kind: for a large record, what its first bytes say it is (0 when
	// not known).
	kind eventKind
}

// end is the offset after the whole frame (statuses with a known length).
func (rec *record) end() int64 { return rec.off + headerLen + rec.length + footerLen }

// next reads the record at r.off without moving past it: the caller
// advances with skipTo once it has used it.
func (r *recordReader) next() (record, error) {
	rec := record{off: r.off}
	ok, err := r.have(headerLen)
	if err != nil {
		return rec, err
	}
	start := int(r.off - r.bufOff)
	if !ok {
		if r.n > start {
			rec.status = recPartial
		} else {
			rec.status = recEOF
		}
		r.forget()
		return rec, nil
	}
	hdr := r.buf[start : start+headerLen]
	if maskedCRC(hdr[:8]) != binary.LittleEndian.Uint32(hdr[8:12]) {
		rec.status = recBadLength
		r.forget()
		return rec, nil
	}
	length := binary.LittleEndian.Uint64(hdr[:8])
	if length > 1<<40 {
		// A checksummed length this large is not from a writer.
		rec.status = recBadLength
		r.forget()
		return rec, nil
	}
	rec.length = int64(length)
	if rec.length > int64(len(r.buf))-headerLen-footerLen {
		// Larger than the buffer: see what it is before reading it all.
		rec.kind = r.peekKind()
		if rec.kind == evGraph || rec.kind == evMetaGraph || rec.kind == evRunMetadata || rec.length > r.maxRecord {
			if fi, err := r.f.Stat(); err == nil && fi.Size() < rec.end() {
				rec.status = recPartial
			} else {
				rec.status = recTooLarge
			}
			r.forget()
			return rec, nil
		}
	}
	total := headerLen + int(rec.length) + footerLen
	if ok, err = r.have(total); err != nil {
		return rec, err
	} else if !ok {
		rec.status = recPartial
		r.forget()
		return rec, nil
	}
	start = int(r.off - r.bufOff)
	data := r.buf[start+headerLen : start+headerLen+int(rec.length)]
	if maskedCRC(data) != binary.LittleEndian.Uint32(r.buf[start+headerLen+int(rec.length):]) {
		rec.status = recBadData
		r.forget()
		return rec, nil
	}
	rec.status, rec.data = recOK, data
	return rec, nil
}

// peekKind reads the first bytes of the record at r.off (its header is
// valid) and returns the Event kind they show, or evNone.
func (r *recordReader) peekKind() eventKind {
	var b [headerLen + peekLen]byte
	n, _ := r.f.ReadAt(b[:], r.off)
	if n <= headerLen {
		return evNone
	}
	msg := b[headerLen:n]
	for len(msg) > 0 {
		num, typ, m := protowire.ConsumeTag(msg)
		if m < 0 {
			return evNone
		}
		msg = msg[m:]
		if num >= 3 && num <= 9 {
			switch num {
			case 3:
				return evFileVersion
			case 4:
				return evGraph
			case 5:
				return evSummary
			case 6:
				return evLogMessage
			case 7:
				return evSessionLog
			case 8:
				return evRunMetadata
			case 9:
				return evMetaGraph
			}
		}
		m = protowire.ConsumeFieldValue(num, typ, msg)
		if m < 0 {
			return evNone
		}
		msg = msg[m:]
	}
	return evNone
}

// skipTo moves the offset forward.
func (r *recordReader) skipTo(off int64) {
	if off > r.off {
		r.off = off
	}
	r.shrink()
}

// resync looks for the next offset after r.off where a frame with a good
// length checksum starts whose data checksum also holds (or whose data is
// not complete yet). It returns found=false when the file holds no such
// frame before its end (the bytes there may be the start of one still
// being written). It does not move the offset.
func (r *recordReader) resync() (at int64, found bool, err error) {
	base := r.off
	defer func() { r.off = base; r.forget() }()
	for p := base + 1; ; p++ {
		r.off = p
		ok, err := r.have(headerLen)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			return 0, false, nil
		}
		s := int(p - r.bufOff)
		hdr := r.buf[s : s+headerLen]
		if maskedCRC(hdr[:8]) != binary.LittleEndian.Uint32(hdr[8:12]) {
			continue
		}
		length := binary.LittleEndian.Uint64(hdr[:8])
		if int64(length) > r.maxRecord || length > 1<<40 {
			continue
		}
		total := headerLen + int(length) + footerLen
		ok, err = r.have(total)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			// A plausible frame that is not complete yet.
			return p, true, nil
		}
		s = int(p - r.bufOff)
		data := r.buf[s+headerLen : s+headerLen+int(length)]
		if maskedCRC(data) == binary.LittleEndian.Uint32(r.buf[s+headerLen+int(length):]) {
			return p, true, nil
		}
	}
}

// size is the file's current size.
func (r *recordReader) size() (int64, error) {
	fi, err := r.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", r.path, err)
	}
	return fi.Size(), nil
}
