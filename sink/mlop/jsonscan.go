package mlop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unsafe"
)

// jsonScan is a minimal JSON reader over a complete document, for the one
// answer that is too large for encoding/json's reflection (metrics/raw). It
// accepts standard JSON only; values it does not need are skipped with
// their nesting checked.
type jsonScan struct {
	b []byte
	i int
}

func (p *jsonScan) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonScan) errf(format string, args ...any) error {
	return fmt.Errorf("json at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonScan) expect(c byte) error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != c {
		return p.errf("want %q", c)
	}
	p.i++
	return nil
}

// object reads an object, calling fn with each key; fn must consume the
// value.
func (p *jsonScan) object(fn func(key []byte) error) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		key, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return p.errf("unterminated object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.errf("want ',' or '}'")
		}
	}
}

// array reads an array, calling fn for each element; fn must consume it.
func (p *jsonScan) array(fn func() error) error {
	if err := p.expect('['); err != nil {
		return err
	}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return p.errf("unterminated array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.errf("want ',' or ']'")
		}
	}
}

// str reads a string. Without escapes it returns a slice of the input.
func (p *jsonScan) str() ([]byte, error) {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, p.errf("want a string")
	}
	start := p.i + 1
	escaped := false
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '\\':
			escaped = true
			j++
		case c == '"':
			p.i = j + 1
			if !escaped {
				return p.b[start:j], nil
			}
			var s string
			if err := json.Unmarshal(p.b[start-1:j+1], &s); err != nil {
				return nil, p.errf("bad string: %v", err)
			}
			return []byte(s), nil
		case c < 0x20:
			return nil, p.errf("control character in a string")
		}
	}
	return nil, p.errf("unterminated string")
}

// literal reads a number or true/false/null token.
func (p *jsonScan) literal() []byte {
	p.ws()
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E', c >= 'a' && c <= 'z':
			p.i++
		default:
			return p.b[start:p.i]
		}
	}
	return p.b[start:p.i]
}

// scalar reads a string or a literal, reporting which.
func (p *jsonScan) scalar() (tok []byte, quoted bool, err error) {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '"' {
		s, err := p.str()
		return s, true, err
	}
	tok = p.literal()
	if len(tok) == 0 {
		return nil, false, p.errf("want a value")
	}
	return tok, false, nil
}

// view is tok as a string without a copy, for strconv calls that do not
// keep their argument (they copy it into any error they return).
func view(tok []byte) string { return unsafe.String(unsafe.SliceData(tok), len(tok)) }

// digits parses a run of at most 19 decimal digits.
func digits(tok []byte) (uint64, bool) {
	if len(tok) == 0 || len(tok) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range tok {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// uintValue reads an unsigned integer given as a number or a string.
func (p *jsonScan) uintValue() (uint64, error) {
	tok, _, err := p.scalar()
	if err != nil {
		return 0, err
	}
	if v, ok := digits(tok); ok {
		return v, nil
	}
	if bytes.Equal(tok, []byte("null")) {
		return 0, nil
	}
	v, err := strconv.ParseUint(view(tok), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(view(tok), 64)
		if ferr != nil || f < 0 || f != float64(uint64(f)) {
			return 0, p.errf("not an unsigned integer: %q", tok)
		}
		v = uint64(f)
	}
	return v, nil
}

// floatValue reads a number (or a numeric string); null is 0, as the
// server's sanitizer writes it.
func (p *jsonScan) floatValue() (float64, error) {
	tok, _, err := p.scalar()
	if err != nil {
		return 0, err
	}
	if bytes.Equal(tok, []byte("null")) {
		return 0, nil
	}
	v, err := strconv.ParseFloat(view(tok), 64)
	if err != nil {
		return 0, p.errf("not a number: %q", tok)
	}
	return v, nil
}

// timeValue reads a time as ParseServerTime does, or epoch ms as a number.
func (p *jsonScan) timeValue() (int64, error) {
	tok, quoted, err := p.scalar()
	if err != nil {
		return 0, err
	}
	if !quoted {
		v, err := strconv.ParseInt(view(tok), 10, 64)
		if err != nil {
			return 0, p.errf("not a time: %q", tok)
		}
		return v, nil
	}
	if ms, ok := parseCHTime(view(tok)); ok {
		return ms, nil
	}
	return ParseServerTime(string(tok))
}

func (p *jsonScan) boolValue() (bool, error) {
	tok, quoted, err := p.scalar()
	switch {
	case err != nil:
		return false, err
	case !quoted && string(tok) == "true":
		return true, nil
	case !quoted && string(tok) == "false":
		return false, nil
	}
	return false, p.errf("not a boolean: %q", tok)
}

// skip consumes one value of any kind.
func (p *jsonScan) skip() error {
	p.ws()
	if p.i >= len(p.b) {
		return p.errf("want a value")
	}
	switch p.b[p.i] {
	case '{':
		return p.object(func([]byte) error { return p.skip() })
	case '[':
		return p.array(p.skip)
	case '"':
		_, err := p.str()
		return err
	}
	tok := p.literal()
	switch string(tok) {
	case "true", "false", "null":
		return nil
	}
	if _, err := strconv.ParseFloat(view(tok), 64); err != nil {
		return p.errf("bad value %q", tok)
	}
	return nil
}
