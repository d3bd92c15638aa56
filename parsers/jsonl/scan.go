package jsonl

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// scanner is a minimal JSON scanner over one line. It exists because the
// generic decoders allocate a map per line; this one walks the object once,
// hands numbers to the caller without allocating, and unescapes strings into
// a reused buffer. It accepts exactly JSON plus the bare NaN, Infinity and
// -Infinity tokens that Python's json.dumps writes.
type scanner struct {
	data []byte
	pos  int
	// scratch holds unescaped strings; a returned string slice aliases it
	// until the next unescape.
	scratch []byte
}

var (
	errUnexpectedEnd = errors.New("unexpected end of line")
	errInvalid       = errors.New("invalid JSON")
	errTrailing      = errors.New("data after the top-level object")
	errDepth         = errors.New("nesting too deep")
)

// maxDepth bounds recursion on hostile input.
const maxDepth = 64

func (s *scanner) reset(data []byte) {
	s.data = data
	s.pos = 0
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		if s.pos >= len(s.data) {
			return errUnexpectedEnd
		}
		return errInvalid
	}
	s.pos++
	return nil
}

// valueKind classifies the next value without consuming it.
type valueKind uint8

const (
	vInvalid valueKind = iota
	vObject
	vArray
	vString
	vNumber
	vBool
	vNull
)

func (s *scanner) kind() valueKind {
	switch c := s.peek(); {
	case c == '{':
		return vObject
	case c == '[':
		return vArray
	case c == '"':
		return vString
	case c == 't' || c == 'f':
		return vBool
	case c == 'n':
		return vNull
	case c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I':
		return vNumber
	default:
		return vInvalid
	}
}

// str reads a string token. The result aliases either the input or the
// scratch buffer and is valid until the next call.
func (s *scanner) str() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			out := s.data[start:s.pos]
			s.pos++
			if !utf8.Valid(out) {
				return s.fixUTF8(out), nil
			}
			return out, nil
		case c == '\\':
			return s.strSlow(start)
		case c < 0x20:
			return nil, errInvalid
		}
		s.pos++
	}
	return nil, errUnexpectedEnd
}

func (s *scanner) fixUTF8(b []byte) []byte {
	s.scratch = s.scratch[:0]
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		s.scratch = utf8.AppendRune(s.scratch, r)
		b = b[size:]
	}
	return s.scratch
}

// strSlow unescapes a string that contains backslashes.
func (s *scanner) strSlow(start int) ([]byte, error) {
	buf := append(s.scratch[:0], s.data[start:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			s.scratch = buf
			if !utf8.Valid(buf) {
				fixed := make([]byte, 0, len(buf))
				for len(buf) > 0 {
					r, size := utf8.DecodeRune(buf)
					fixed = utf8.AppendRune(fixed, r)
					buf = buf[size:]
				}
				s.scratch = fixed
				return fixed, nil
			}
			return buf, nil
		case c < 0x20:
			return nil, errInvalid
		case c != '\\':
			buf = append(buf, c)
			s.pos++
			continue
		}
		s.pos++
		if s.pos >= len(s.data) {
			return nil, errUnexpectedEnd
		}
		e := s.data[s.pos]
		s.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, errInvalid
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
					save := s.pos
					s.pos += 2
					if v, ok := s.hex4(); ok {
						r2 = v
					} else {
						s.pos = save
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
				} else {
					if r2 >= 0 {
						s.pos -= 6 // not a pair: leave the second escape to the loop
					}
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, errInvalid
		}
	}
	return nil, errUnexpectedEnd
}

func (s *scanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
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
	s.pos += 4
	return r, true
}

// literal consumes word if it comes next.
func (s *scanner) literal(word string) bool {
	if len(s.data)-s.pos >= len(word) && string(s.data[s.pos:s.pos+len(word)]) == word {
		s.pos += len(word)
		return true
	}
	return false
}

// number reads a JSON number or one of the non-finite tokens.
func (s *scanner) number() (float64, error) {
	s.skipSpace()
	switch {
	case s.literal("NaN"):
		return math.NaN(), nil
	case s.literal("Infinity"):
		return math.Inf(1), nil
	case s.literal("-Infinity"):
		return math.Inf(-1), nil
	}
	tok, err := s.numberToken()
	if err != nil {
		return 0, err
	}
	// ParseFloat does not retain its argument, so viewing the bytes as a
	// string without copying is safe and keeps the hot path allocation free.
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return f, nil // ±Inf or 0 for out-of-range literals, as Python reads them
		}
		return 0, errInvalid
	}
	return f, nil
}

// numberToken consumes a JSON number (not NaN or Infinity) and returns its
// text, which aliases the line, for callers that need it exactly (steps
// above 2^53 do not survive a float64).
func (s *scanner) numberToken() ([]byte, error) {
	s.skipSpace()
	start := s.pos
	if s.pos < len(s.data) && s.data[s.pos] == '-' {
		s.pos++
	}
	// JSON number grammar: int part without leading zeros, optional
	// fraction, optional exponent.
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	intStart := s.pos
	if n := digits(); n == 0 || (n > 1 && s.data[intStart] == '0') {
		return nil, errInvalid
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return nil, errInvalid
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return nil, errInvalid
		}
	}
	return s.data[start:s.pos], nil
}

// atEnd reports whether only white space is left.
func (s *scanner) atEnd() bool {
	s.skipSpace()
	return s.pos >= len(s.data)
}

// skip consumes any value.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return errDepth
	}
	switch s.kind() {
	case vObject:
		s.pos++
		if s.peek() == '}' {
			s.pos++
			return nil
		}
		for {
			if _, err := s.str(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case '}':
				s.pos++
				return nil
			default:
				return s.endErr()
			}
		}
	case vArray:
		s.pos++
		if s.peek() == ']' {
			s.pos++
			return nil
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return nil
			default:
				return s.endErr()
			}
		}
	case vString:
		_, err := s.str()
		return err
	case vNumber:
		_, err := s.number()
		return err
	case vBool:
		if s.literal("true") || s.literal("false") {
			return nil
		}
		return errInvalid
	case vNull:
		if s.literal("null") {
			return nil
		}
		return errInvalid
	default:
		return s.endErr()
	}
}

func (s *scanner) endErr() error {
	if s.pos >= len(s.data) {
		return errUnexpectedEnd
	}
	return errInvalid
}

// any decodes a value into the generic Go form (map[string]any, []any,
// string, float64, bool, nil), for the rare in-band _config objects.
func (s *scanner) any(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	switch s.kind() {
	case vObject:
		s.pos++
		m := map[string]any{}
		if s.peek() == '}' {
			s.pos++
			return m, nil
		}
		for {
			k, err := s.str()
			if err != nil {
				return nil, err
			}
			key := string(k)
			if err := s.expect(':'); err != nil {
				return nil, err
			}
			v, err := s.any(depth + 1)
			if err != nil {
				return nil, err
			}
			m[key] = v
			switch s.peek() {
			case ',':
				s.pos++
			case '}':
				s.pos++
				return m, nil
			default:
				return nil, s.endErr()
			}
		}
	case vArray:
		s.pos++
		a := []any{}
		if s.peek() == ']' {
			s.pos++
			return a, nil
		}
		for {
			v, err := s.any(depth + 1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return a, nil
			default:
				return nil, s.endErr()
			}
		}
	case vString:
		b, err := s.str()
		return string(b), err
	case vNumber:
		return s.number()
	case vBool:
		if s.literal("true") {
			return true, nil
		}
		if s.literal("false") {
			return false, nil
		}
		return nil, errInvalid
	case vNull:
		if s.literal("null") {
			return nil, nil
		}
		return nil, errInvalid
	default:
		return nil, s.endErr()
	}
}
