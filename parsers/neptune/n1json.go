package neptune

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// The neptune-client 1.x queue holds one JSON object per line, written by
// Python's json.dumps: {"obj": {"type": ..., "path": [...], ...},
// "version": N, "at": T}. encoding/json is too slow for millions of lines
// and rejects the NaN/Infinity tokens Python writes, so this is a small
// hand-written decoder for exactly that envelope. Byte slices in the result
// alias the line or the decoder's scratch buffer, and are valid until the
// next decode.

// errJSON is wrapped by every decoding error.
var errJSON = errors.New("malformed queue record")

func jsonErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errJSON}, args...)...)
}

// tokKind classifies a scalar JSON value.
type tokKind uint8

const (
	tokNone tokKind = iota
	tokNumber
	tokString
	tokTrue
	tokFalse
	tokNull
	tokObject // an object or array that was skipped
)

// n1Tok is one scalar value: a number's text or a string's unescaped bytes.
type n1Tok struct {
	kind tokKind
	raw  []byte
}

// n1Point is one element of "values" in LogFloats/LogStrings/LogImages.
type n1Point struct {
	value    n1Tok
	imgData  []byte // LogImages {"data": ..., "name": ..., "description": ...}
	imgName  []byte
	imgDesc  []byte
	isImgObj bool
	step     n1Tok // number or null (or absent)
	ts       n1Tok
}

// n1Op is the decoded "obj".
type n1Op struct {
	typ         []byte
	path        []byte // segments joined with '/'
	hasPath     bool
	value       n1Tok     // Assign*: "value"
	points      []n1Point // Log*: "values" objects
	strs        [][]byte  // AddStrings/RemoveStrings "values"
	globs       [][]byte  // UploadFileSet "file_globs"
	filePaths   [][]byte  // DeleteFiles "file_paths"
	ext         n1Tok
	filePath    n1Tok
	tmpFileName n1Tok
	fileContent n1Tok
	reset       n1Tok
}

// n1Record is one decoded line.
type n1Record struct {
	version    int64
	hasVersion bool
	at         n1Tok
	hasObj     bool
	op         n1Op
}

// n1Decoder decodes queue lines, reusing its buffers between lines.
type n1Decoder struct {
	b   []byte
	i   int
	buf []byte // unescaped strings and joined paths
	rec n1Record
}

func (d *n1Decoder) reset(line []byte) {
	d.b, d.i = line, 0
	d.buf = d.buf[:0]
	op := &d.rec.op
	points, strs, globs, fps := op.points[:0], op.strs[:0], op.globs[:0], op.filePaths[:0]
	d.rec = n1Record{}
	d.rec.op.points, d.rec.op.strs, d.rec.op.globs, d.rec.op.filePaths = points, strs, globs, fps
}

// decode parses one line into d.rec.
func (d *n1Decoder) decode(line []byte) (*n1Record, error) {
	d.reset(line)
	d.ws()
	if err := d.object(func(key []byte) error {
		switch string(key) {
		case "obj":
			d.rec.hasObj = true
			return d.obj()
		case "version":
			t, err := d.scalar()
			if err != nil {
				return err
			}
			if t.kind != tokNumber {
				return jsonErr("version is not a number")
			}
			v, ok := parseInt(t.raw)
			if !ok {
				return jsonErr("version %q is not an integer", t.raw)
			}
			d.rec.version, d.rec.hasVersion = v, true
			return nil
		case "at":
			t, err := d.scalar()
			d.rec.at = t
			return err
		default:
			return d.skip(0)
		}
	}); err != nil {
		return nil, err
	}
	d.ws()
	if d.i != len(d.b) {
		return nil, jsonErr("trailing data at byte %d", d.i)
	}
	return &d.rec, nil
}

func (d *n1Decoder) obj() error {
	op := &d.rec.op
	return d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "type":
			var t n1Tok
			if t, err = d.scalar(); err == nil {
				if t.kind != tokString {
					return jsonErr("type is not a string")
				}
				op.typ = t.raw
			}
		case "path":
			err = d.path()
		case "value":
			op.value, err = d.scalar()
		case "values":
			err = d.values()
		case "file_globs":
			op.globs, err = d.strings(op.globs)
		case "file_paths":
			op.filePaths, err = d.strings(op.filePaths)
		case "ext":
			op.ext, err = d.scalar()
		case "file_path":
			op.filePath, err = d.scalar()
		case "tmp_file_name":
			op.tmpFileName, err = d.scalar()
		case "file_content":
			op.fileContent, err = d.scalar()
		case "reset":
			op.reset, err = d.scalar()
		default:
			err = d.skip(0)
		}
		return err
	})
}

// path decodes ["a", "b"] into "a/b" in the scratch buffer.
func (d *n1Decoder) path() error {
	op := &d.rec.op
	if d.i >= len(d.b) || d.b[d.i] != '[' {
		return jsonErr("path is not an array")
	}
	d.i++
	d.ws()
	// Strings are unescaped into d.buf too, so build the path in a
	// separate region at the end and slice it afterwards.
	var segs [][]byte
	var local [8][]byte
	segs = local[:0]
	for first := true; ; first = false {
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == ']' {
			d.i++
			break
		}
		if !first {
			if d.i >= len(d.b) || d.b[d.i] != ',' {
				return jsonErr("bad path array")
			}
			d.i++
			d.ws()
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		segs = append(segs, s)
	}
	start := len(d.buf)
	for i, s := range segs {
		if i > 0 {
			d.buf = append(d.buf, '/')
		}
		d.buf = append(d.buf, s...)
	}
	op.path = d.buf[start:len(d.buf):len(d.buf)]
	op.hasPath = true
	return nil
}

// values decodes the "values" array: objects (series points) or strings
// (string set items).
func (d *n1Decoder) values() error {
	op := &d.rec.op
	return d.array(func() error {
		if d.i < len(d.b) && d.b[d.i] == '{' {
			var p n1Point
			err := d.object(func(key []byte) error {
				var err error
				switch string(key) {
				case "value":
					if d.i < len(d.b) && d.b[d.i] == '{' {
						p.isImgObj = true
						return d.object(func(k []byte) error {
							t, err := d.scalar()
							if err != nil {
								return err
							}
							if t.kind != tokString {
								return nil
							}
							switch string(k) {
							case "data":
								p.imgData = t.raw
							case "name":
								p.imgName = t.raw
							case "description":
								p.imgDesc = t.raw
							}
							return nil
						})
					}
					p.value, err = d.scalar()
				case "step":
					p.step, err = d.scalar()
				case "ts":
					p.ts, err = d.scalar()
				default:
					err = d.skip(0)
				}
				return err
			})
			if err != nil {
				return err
			}
			op.points = append(op.points, p)
			return nil
		}
		t, err := d.scalar()
		if err != nil {
			return err
		}
		if t.kind != tokString {
			return jsonErr("values holds a non-string scalar")
		}
		op.strs = append(op.strs, t.raw)
		return nil
	})
}

func (d *n1Decoder) strings(dst [][]byte) ([][]byte, error) {
	err := d.array(func() error {
		t, err := d.scalar()
		if err != nil {
			return err
		}
		if t.kind == tokString {
			dst = append(dst, t.raw)
		}
		return nil
	})
	return dst, err
}

func (d *n1Decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// object walks {"key": value, ...}; fn must consume the value.
func (d *n1Decoder) object(fn func(key []byte) error) error {
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return jsonErr("expected an object at byte %d", d.i)
	}
	d.i++
	for first := true; ; first = false {
		d.ws()
		if d.i >= len(d.b) {
			return jsonErr("unterminated object")
		}
		if d.b[d.i] == '}' {
			d.i++
			return nil
		}
		if !first {
			if d.b[d.i] != ',' {
				return jsonErr("expected ',' at byte %d", d.i)
			}
			d.i++
			d.ws()
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return jsonErr("expected ':' at byte %d", d.i)
		}
		d.i++
		d.ws()
		if err := fn(key); err != nil {
			return err
		}
	}
}

// array walks [value, ...]; fn must consume one value.
func (d *n1Decoder) array(fn func() error) error {
	if d.i >= len(d.b) || d.b[d.i] != '[' {
		return jsonErr("expected an array at byte %d", d.i)
	}
	d.i++
	for first := true; ; first = false {
		d.ws()
		if d.i >= len(d.b) {
			return jsonErr("unterminated array")
		}
		if d.b[d.i] == ']' {
			d.i++
			return nil
		}
		if !first {
			if d.b[d.i] != ',' {
				return jsonErr("expected ',' at byte %d", d.i)
			}
			d.i++
			d.ws()
		}
		if err := fn(); err != nil {
			return err
		}
	}
}

const maxDepth = 64

// skip consumes any value.
func (d *n1Decoder) skip(depth int) error {
	if depth > maxDepth {
		return jsonErr("nesting too deep")
	}
	if d.i >= len(d.b) {
		return jsonErr("missing value")
	}
	switch d.b[d.i] {
	case '{':
		return d.object(func([]byte) error { return d.skip(depth + 1) })
	case '[':
		return d.array(func() error { return d.skip(depth + 1) })
	}
	_, err := d.scalar()
	return err
}

// scalar reads a string, number, literal, or skips a container (tokObject).
func (d *n1Decoder) scalar() (n1Tok, error) {
	if d.i >= len(d.b) {
		return n1Tok{}, jsonErr("missing value")
	}
	switch c := d.b[d.i]; {
	case c == '"':
		s, err := d.str()
		return n1Tok{kind: tokString, raw: s}, err
	case c == '{' || c == '[':
		return n1Tok{kind: tokObject}, d.skip(1)
	case c == 't':
		return n1Tok{kind: tokTrue}, d.lit("true")
	case c == 'f':
		return n1Tok{kind: tokFalse}, d.lit("false")
	case c == 'n':
		return n1Tok{kind: tokNull}, d.lit("null")
	case c == 'N':
		start := d.i
		return n1Tok{kind: tokNumber, raw: d.b[start : start+3]}, d.lit("NaN")
	case c == 'I':
		start := d.i
		return n1Tok{kind: tokNumber, raw: d.b[start : start+min(8, len(d.b)-start)]}, d.lit("Infinity")
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
		if c == '-' && d.i+1 < len(d.b) && d.b[d.i+1] == 'I' {
			d.i++
			err := d.lit("Infinity")
			return n1Tok{kind: tokNumber, raw: d.b[start:d.i]}, err
		}
		d.i++
		for d.i < len(d.b) {
			c := d.b[d.i]
			if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
				d.i++
				continue
			}
			break
		}
		return n1Tok{kind: tokNumber, raw: d.b[start:d.i]}, nil
	default:
		return n1Tok{}, jsonErr("unexpected %q at byte %d", c, d.i)
	}
}

func (d *n1Decoder) lit(word string) error {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return jsonErr("bad literal at byte %d", d.i)
	}
	d.i += len(word)
	return nil
}

// str reads a string at d.i. Without escapes it aliases the line;
// otherwise it is unescaped into d.buf.
func (d *n1Decoder) str() ([]byte, error) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, jsonErr("expected a string at byte %d", d.i)
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch d.b[j] {
		case '"':
			d.i = j + 1
			return d.b[start:j:j], nil
		case '\\':
			return d.strSlow(start, j)
		}
	}
	return nil, jsonErr("unterminated string")
}

func (d *n1Decoder) strSlow(start, j int) ([]byte, error) {
	out := len(d.buf)
	d.buf = append(d.buf, d.b[start:j]...)
	for j < len(d.b) {
		c := d.b[j]
		switch {
		case c == '"':
			d.i = j + 1
			return d.buf[out:len(d.buf):len(d.buf)], nil
		case c != '\\':
			d.buf = append(d.buf, c)
			j++
			continue
		}
		if j+1 >= len(d.b) {
			return nil, jsonErr("unterminated escape")
		}
		e := d.b[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			d.buf = append(d.buf, e)
		case 'b':
			d.buf = append(d.buf, '\b')
		case 'f':
			d.buf = append(d.buf, '\f')
		case 'n':
			d.buf = append(d.buf, '\n')
		case 'r':
			d.buf = append(d.buf, '\r')
		case 't':
			d.buf = append(d.buf, '\t')
		case 'u':
			r, ok := hex4(d.b, j)
			if !ok {
				return nil, jsonErr("bad \\u escape")
			}
			j += 4
			if utf16.IsSurrogate(r) {
				// Python writes astral characters as a surrogate pair.
				if r2, ok := hex4(d.b, j+2); ok && j+1 < len(d.b) && d.b[j] == '\\' && d.b[j+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						j += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			d.buf = utf8.AppendRune(d.buf, r)
		default:
			return nil, jsonErr("bad escape \\%c", e)
		}
	}
	return nil, jsonErr("unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// parseInt parses a decimal integer token (an integral float such as
// "3.0" is accepted too).
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := false
	i := 0
	if b[0] == '-' {
		neg, i = true, 1
	}
	if i == len(b) {
		return 0, false
	}
	var v int64
	for ; i < len(b); i++ {
		c := b[i]
		if c == '.' {
			// Only zeros may follow.
			for _, z := range b[i+1:] {
				if z != '0' {
					return 0, false
				}
			}
			break
		}
		if c < '0' || c > '9' || v > (1<<63-1-9)/10 {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}
