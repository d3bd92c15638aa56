package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// Decoding of /ingest/metrics lines the way the ingest reads them
// (mlop-api.md §2.7): an object with time (u64, epoch ms), step (u64) and
// data (name -> value); a value is a JSON number, null (skipped), one of
// the strings "NaN", "Infinity", "-Infinity", or one of those as a bare
// token (the ingest's sanitizer turns them into the strings). Any other
// key, value or shape is an error: the server would refuse the line.

type metricValue struct {
	name []byte // aliases the body unless the name had escapes
	bits uint64
}

type metricLine struct {
	time, step uint64
	values     []metricValue
}

type lineScan struct {
	b []byte
	i int
}

func (p *lineScan) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *lineScan) errf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *lineScan) expect(c byte) error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != c {
		return p.errf("want %q", c)
	}
	p.i++
	return nil
}

func (p *lineScan) peek() byte {
	p.ws()
	if p.i >= len(p.b) {
		return 0
	}
	return p.b[p.i]
}

func (p *lineScan) str() ([]byte, error) {
	if p.peek() != '"' {
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

func (p *lineScan) token() []byte {
	p.ws()
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':' {
			break
		}
		p.i++
	}
	return p.b[start:p.i]
}

// view is tok as a string without a copy, for strconv calls that do not
// keep their argument.
func view(tok []byte) string { return unsafe.String(unsafe.SliceData(tok), len(tok)) }

func (p *lineScan) u64() (uint64, error) {
	tok := p.token()
	v, err := strconv.ParseUint(view(tok), 10, 64)
	if err != nil {
		return 0, p.errf("want an unsigned integer, got %q", tok)
	}
	return v, nil
}

// parseMetricLine decodes one non-blank line into ml (its values slice is
// reused).
func parseMetricLine(b []byte, ml *metricLine) error {
	p := &lineScan{b: b}
	ml.values = ml.values[:0]
	var haveTime, haveStep, haveData bool
	if err := p.expect('{'); err != nil {
		return err
	}
	if p.peek() == '}' {
		return p.errf("empty object")
	}
	for {
		key, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		switch string(key) {
		case "time":
			if haveTime {
				return p.errf("duplicate field time")
			}
			ml.time, err = p.u64()
			haveTime = true
		case "step":
			if haveStep {
				return p.errf("duplicate field step")
			}
			ml.step, err = p.u64()
			haveStep = true
		case "data":
			if haveData {
				return p.errf("duplicate field data")
			}
			err = p.data(ml)
			haveData = true
		default:
			return p.errf("unknown field %q", key)
		}
		if err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
			continue
		case '}':
			p.i++
		default:
			return p.errf("want ',' or '}'")
		}
		break
	}
	if p.ws(); p.i != len(p.b) {
		return p.errf("trailing data")
	}
	if !haveTime || !haveStep || !haveData {
		return fmt.Errorf("missing time, step or data")
	}
	return nil
}

func (p *lineScan) data(ml *metricLine) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	if p.peek() == '}' {
		return p.errf("data is empty")
	}
	for {
		name, err := p.str()
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(name)) == 0 {
			return p.errf("blank metric name")
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		var v float64
		skip := false
		if p.peek() == '"' {
			s, err := p.str()
			if err != nil {
				return err
			}
			switch string(s) {
			case "NaN":
				v = math.NaN()
			case "Infinity":
				v = math.Inf(1)
			case "-Infinity":
				v = math.Inf(-1)
			default:
				return p.errf("metric %q: string value %q", name, s)
			}
		} else {
			tok := p.token()
			switch string(tok) {
			case "null":
				skip = true
			case "NaN":
				v = math.NaN()
			case "Infinity":
				v = math.Inf(1)
			case "-Infinity":
				v = math.Inf(-1)
			default:
				if len(tok) == 0 || !(tok[0] == '-' || tok[0] >= '0' && tok[0] <= '9') {
					return p.errf("metric %q: value %q is not a number", name, tok)
				}
				f, err := strconv.ParseFloat(view(tok), 64)
				if err != nil {
					return p.errf("metric %q: value %q is not a number", name, tok)
				}
				v = f
			}
		}
		if !skip {
			ml.values = append(ml.values, metricValue{name: name, bits: math.Float64bits(v)})
		}
		switch p.peek() {
		case ',':
			p.i++
			continue
		case '}':
			p.i++
			return nil
		}
		return p.errf("want ',' or '}'")
	}
}
