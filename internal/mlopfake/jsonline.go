package mlopfake

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// This file is a strict, allocation-free JSON reader for the three NDJSON line
// shapes the Rust ingest accepts. It mirrors serde's derive with
// #[serde(deny_unknown_fields)] as used in ingest/src/models/*.rs:
//   - unknown field → error, duplicate field → error, missing field → error;
//   - u64 fields accept only non-negative JSON integers (no fraction, no
//     exponent, no quotes);
//   - the metric data map accepts numbers, null (skipped) and the strings
//     "NaN", "Infinity", "-Infinity"; duplicate names keep the last value
//     (a Rust HashMap insert).
// A line that fails is retried once after sanitizeNonFinite, exactly like
// try_parse_with_sanitize in ingest/src/processors/stream.rs, and when that
// also fails the error of the first attempt is reported.

// lineError is a per-line failure. code and kind follow the Rust AppError
// Display "<Code> (<num> - <kind>): <msg>" so 422 bodies read like the real ones.
type lineError struct {
	code string // e.g. "StreamDecodingError"
	num  int    // e.g. 3004
	kind string // e.g. "Processing Error"
	msg  string
}

func (e *lineError) Error() string {
	return fmt.Sprintf("%s (%d - %s): %s", e.code, e.num, e.kind, e.msg)
}

func decodingError(final bool, line []byte, err error) *lineError {
	ctx := ""
	if final {
		ctx = "final "
	}
	preview := []rune(strings.ToValidUTF8(string(line), "\uFFFD"))
	if len(preview) > 100 {
		preview = preview[:100]
	}
	return &lineError{
		code: "StreamDecodingError", num: 3004, kind: "Processing Error",
		msg: fmt.Sprintf("Failed to parse %sJSON line (bytes): '%s': %v", ctx, string(preview), err),
	}
}

func metricFormatError(msg string) *lineError {
	return &lineError{code: "InvalidMetricFormat", num: 2005, kind: "Validation Error", msg: msg}
}

func logFormatError(msg string) *lineError {
	return &lineError{code: "InvalidLogFormat", num: 2006, kind: "Validation Error", msg: msg}
}

// scanner walks one JSON document held in b.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) errf(format string, args ...any) error {
	return fmt.Errorf(format+" at column %d", append(args, s.i+1)...)
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) error {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return nil
	}
	if s.i >= len(s.b) {
		return s.errf("EOF while parsing, expected %q", c)
	}
	return s.errf("expected %q, found %q", c, s.b[s.i])
}

// str parses a JSON string at s.i. Without escapes the result aliases the
// input; with escapes it is decoded into *scratch (appended) and aliases it.
func (s *scanner) str(scratch *[]byte) ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.errf("expected string")
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, nil
		case c == '\\':
			return s.strEscaped(start, scratch)
		case c < 0x20:
			return nil, s.errf("control character (\\u%04x) while parsing a string", c)
		}
		s.i++
	}
	return nil, s.errf("EOF while parsing a string")
}

func (s *scanner) strEscaped(start int, scratch *[]byte) ([]byte, error) {
	out := *scratch
	base := len(out)
	out = append(out, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			*scratch = out
			return out[base:], nil
		case c < 0x20:
			return nil, s.errf("control character (\\u%04x) while parsing a string", c)
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		s.i++
		if s.i >= len(s.b) {
			return nil, s.errf("EOF while parsing a string")
		}
		e := s.b[s.i]
		s.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, err := s.hex4()
			if err != nil {
				return nil, err
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 {
					return nil, s.errf("lone trailing surrogate in hex escape")
				}
				if s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
					return nil, s.errf("lone leading surrogate in hex escape")
				}
				s.i += 2
				r2, err := s.hex4()
				if err != nil {
					return nil, err
				}
				if r2 < 0xDC00 || r2 > 0xDFFF {
					return nil, s.errf("lone leading surrogate in hex escape")
				}
				r = utf16.DecodeRune(r, r2)
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, s.errf("invalid escape")
		}
	}
	return nil, s.errf("EOF while parsing a string")
}

func (s *scanner) hex4() (rune, error) {
	if s.i+4 > len(s.b) {
		return 0, s.errf("EOF while parsing a string")
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, s.errf("invalid escape")
		}
	}
	s.i += 4
	return r, nil
}

// number scans a JSON number token per RFC 8259.
func (s *scanner) number() (tok []byte, isInt bool, err error) {
	start := s.i
	isInt = true
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
	default:
		return nil, false, s.errf("invalid number")
	}
	if s.peek() == '.' {
		isInt = false
		s.i++
		d := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		if s.i == d {
			return nil, false, s.errf("invalid number")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		isInt = false
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		d := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		if s.i == d {
			return nil, false, s.errf("invalid number")
		}
	}
	return s.b[start:s.i], isInt, nil
}

func (s *scanner) literal(word string) error {
	if s.i+len(word) <= len(s.b) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return nil
	}
	return s.errf("expected value")
}

// unexpected describes the JSON value at s.i for a serde-style "invalid type"
// message, and advances past simple scalars.
func (s *scanner) describe() string {
	switch c := s.peek(); {
	case c == '"':
		var scratch []byte
		v, err := s.str(&scratch)
		if err != nil {
			return "string"
		}
		return fmt.Sprintf("string %q", v)
	case c == 't':
		return "boolean `true`"
	case c == 'f':
		return "boolean `false`"
	case c == 'n':
		return "null"
	case c == '[':
		return "sequence"
	case c == '{':
		return "map"
	case c == '-' || (c >= '0' && c <= '9'):
		tok, isInt, err := s.number()
		if err != nil {
			return "number"
		}
		if isInt {
			return fmt.Sprintf("integer `%s`", tok)
		}
		return fmt.Sprintf("floating point `%s`", tok)
	default:
		return "value"
	}
}

// u64 parses a serde u64: a non-negative JSON integer that fits. Anything
// else, including 2.0, "2", -1 and -0 (simd-json reads -0 as a float), fails.
func (s *scanner) u64() (uint64, error) {
	c := s.peek()
	if c == '-' || (c >= '0' && c <= '9') {
		save := s.i
		tok, isInt, err := s.number()
		if err != nil {
			return 0, err
		}
		if !isInt || tok[0] == '-' {
			s.i = save
			if isInt && !bytes.Equal(tok, []byte("-0")) {
				return 0, s.errf("invalid value: integer `%s`, expected u64", tok)
			}
			return 0, s.errf("invalid type: floating point `%s`, expected u64", tok)
		}
		var v uint64
		for _, d := range tok {
			n := uint64(d - '0')
			if v > (math.MaxUint64-n)/10 {
				return 0, s.errf("number out of range, expected u64")
			}
			v = v*10 + n
		}
		return v, nil
	}
	if c == 0 {
		return 0, s.errf("EOF while parsing a value")
	}
	if c != '"' && c != 't' && c != 'f' && c != 'n' && c != '[' && c != '{' {
		return 0, s.errf("expected value")
	}
	return 0, s.errf("invalid type: %s, expected u64", s.describe())
}

// jsonStr parses a serde String field (only a JSON string is accepted).
func (s *scanner) jsonStr(scratch *[]byte) ([]byte, error) {
	if s.peek() == '"' {
		return s.str(scratch)
	}
	c := s.peek()
	if c == 0 {
		return nil, s.errf("EOF while parsing a value")
	}
	if c != '-' && (c < '0' || c > '9') && c != 't' && c != 'f' && c != 'n' && c != '[' && c != '{' {
		return nil, s.errf("expected value")
	}
	return nil, s.errf("invalid type: %s, expected a string", s.describe())
}

// parseFloat converts a validated JSON number token. strconv copies the input
// into any error it returns (Go ≥ 1.20), so the unsafe view is safe.
func parseFloat(tok []byte) (float64, bool) {
	// Fast path for short plain integers, the commonest case after decimals.
	if len(tok) <= 15 {
		neg := tok[0] == '-'
		digits := tok
		if neg {
			digits = tok[1:]
		}
		var v uint64
		plain := len(digits) > 0
		for _, d := range digits {
			if d < '0' || d > '9' {
				plain = false
				break
			}
			v = v*10 + uint64(d-'0')
		}
		if plain {
			f := float64(v)
			if neg {
				f = -f
			}
			return f, true
		}
	}
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	if err != nil && math.IsInf(f, 0) {
		return 0, false // out of range: simd-json refuses it
	}
	return f, true
}

// sanitizeNonFinite is a port of sanitize_json_non_finite_floats
// (ingest/src/utils.rs): bare NaN / Infinity / -Infinity outside strings
// become the JSON strings "NaN" / "Infinity" / "-Infinity". It appends to dst
// and reports whether anything changed.
func sanitizeNonFinite(dst, in []byte) ([]byte, bool) {
	changed := false
	inString := false
	for i := 0; i < len(in); {
		c := in[i]
		if inString {
			if c == '\\' && i+1 < len(in) {
				dst = append(dst, c, in[i+1])
				i += 2
				continue
			}
			if c == '"' {
				inString = false
			}
			dst = append(dst, c)
			i++
			continue
		}
		switch {
		case c == '"':
			inString = true
		case c == '-' && bytes.HasPrefix(in[i:], []byte("-Infinity")):
			dst = append(dst, `"-Infinity"`...)
			i += 9
			changed = true
			continue
		case c == 'I' && bytes.HasPrefix(in[i:], []byte("Infinity")):
			dst = append(dst, `"Infinity"`...)
			i += 8
			changed = true
			continue
		case c == 'N' && bytes.HasPrefix(in[i:], []byte("NaN")):
			dst = append(dst, `"NaN"`...)
			i += 3
			changed = true
			continue
		}
		dst = append(dst, c)
		i++
	}
	return dst, changed
}

// metricPoint is one parsed (name, value) of a metrics line; the name lives in
// metricParser.names[off:off+n].
type metricPoint struct {
	off, n int
	value  float64
}

// metricParser parses metrics lines. It is reused across the lines of one
// request and owned by the goroutine serving it.
type metricParser struct {
	time, step uint64
	pts        []metricPoint
	names      []byte // decoded metric names
	scratch    []byte // decoded keys and string values
	san        []byte // sanitized copy of the line
	dup        map[string]int
}

func (p *metricParser) name(pt metricPoint) []byte { return p.names[pt.off : pt.off+pt.n] }

// parseLine parses and validates one trimmed, non-empty line.
func (p *metricParser) parseLine(line []byte, final bool) *lineError {
	err := p.parse(line)
	if err != nil {
		san, changed := sanitizeNonFinite(p.san[:0], line)
		p.san = san
		if !changed || p.parse(san) != nil {
			return decodingError(final, line, err)
		}
	}
	if len(p.pts) == 0 {
		return metricFormatError("'data' field cannot be empty")
	}
	for _, pt := range p.pts {
		if isBlank(p.name(pt)) {
			return metricFormatError("metric name cannot be empty")
		}
	}
	return nil
}

// isBlank reports whether b is empty or only Unicode White_Space, like Rust's
// str::trim().is_empty().
func isBlank(b []byte) bool {
	return len(bytes.TrimFunc(b, isRustWhitespace)) == 0
}

func (p *metricParser) parse(line []byte) error {
	p.pts = p.pts[:0]
	p.names = p.names[:0]
	clear(p.dup)
	if !utf8.Valid(line) {
		return fmt.Errorf("invalid UTF-8")
	}
	s := scanner{b: line}
	s.ws()
	if err := s.expect('{'); err != nil {
		return err
	}
	var haveTime, haveStep, haveData bool
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			s.ws()
			p.scratch = p.scratch[:0]
			key, err := s.str(&p.scratch)
			if err != nil {
				return err
			}
			s.ws()
			if err := s.expect(':'); err != nil {
				return err
			}
			s.ws()
			switch string(key) {
			case "time":
				if haveTime {
					return s.errf("duplicate field `time`")
				}
				haveTime = true
				if p.time, err = s.u64(); err != nil {
					return err
				}
			case "step":
				if haveStep {
					return s.errf("duplicate field `step`")
				}
				haveStep = true
				if p.step, err = s.u64(); err != nil {
					return err
				}
			case "data":
				if haveData {
					return s.errf("duplicate field `data`")
				}
				haveData = true
				if err := p.parseData(&s); err != nil {
					return err
				}
			default:
				return s.errf("unknown field `%s`, expected one of `time`, `step`, `data`", key)
			}
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			if err := s.expect('}'); err != nil {
				return err
			}
			break
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return s.errf("trailing characters")
	}
	switch {
	case !haveTime:
		return fmt.Errorf("missing field `time`")
	case !haveStep:
		return fmt.Errorf("missing field `step`")
	case !haveData:
		return fmt.Errorf("missing field `data`")
	}
	return nil
}

const metricMapExpect = "a map of metric names to float values"
const metricValueExpect = "a number or special float string (NaN, Infinity, -Infinity)"

func (p *metricParser) parseData(s *scanner) error {
	if s.peek() != '{' {
		c := s.peek()
		if c == 0 {
			return s.errf("EOF while parsing a value")
		}
		if c != '"' && c != '-' && (c < '0' || c > '9') && c != 't' && c != 'f' && c != 'n' && c != '[' {
			return s.errf("expected value")
		}
		return s.errf("invalid type: %s, expected %s", s.describe(), metricMapExpect)
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		off := len(p.names)
		if s.peek() != '"' {
			return s.errf("key must be a string")
		}
		// Decode the key straight into the names arena.
		raw, err := s.str(&p.names)
		if err != nil {
			return err
		}
		if len(p.names) == off { // no escapes: raw aliases the line
			p.names = append(p.names, raw...)
		}
		n := len(p.names) - off
		s.ws()
		if err := s.expect(':'); err != nil {
			return err
		}
		s.ws()
		var v float64
		keep := true
		switch c := s.peek(); {
		case c == '-' || (c >= '0' && c <= '9'):
			tok, _, err := s.number()
			if err != nil {
				return err
			}
			f, ok := parseFloat(tok)
			if !ok {
				return s.errf("number out of range")
			}
			v = f
		case c == 'n':
			if err := s.literal("null"); err != nil {
				return err
			}
			keep = false // Option<MetricValue>::None is skipped
		case c == '"':
			p.scratch = p.scratch[:0]
			sv, err := s.str(&p.scratch)
			if err != nil {
				return err
			}
			switch string(sv) {
			case "NaN":
				v = math.NaN()
			case "Infinity":
				v = math.Inf(1)
			case "-Infinity":
				v = math.Inf(-1)
			default:
				return s.errf("unexpected string metric value: '%s'", sv)
			}
		case c == 't' || c == 'f':
			word := "true"
			if c == 'f' {
				word = "false"
			}
			if err := s.literal(word); err != nil {
				return err
			}
			return s.errf("invalid type: boolean `%s`, expected %s", word, metricValueExpect)
		case c == '[':
			return s.errf("invalid type: sequence, expected %s", metricValueExpect)
		case c == '{':
			return s.errf("invalid type: map, expected %s", metricValueExpect)
		case c == 0:
			return s.errf("EOF while parsing a value")
		default:
			return s.errf("expected value")
		}
		if keep {
			p.put(off, n, v)
		} else {
			p.names = p.names[:off]
		}
		s.ws()
		if s.peek() == ',' {
			s.i++
			continue
		}
		return s.expect('}')
	}
}

// put records name=value, replacing an earlier value of the same name (Rust
// HashMap::insert semantics) and dropping the duplicate name bytes.
func (p *metricParser) put(off, n int, v float64) {
	name := p.names[off : off+n]
	if len(p.pts) < 32 {
		for i := range p.pts {
			if bytes.Equal(p.name(p.pts[i]), name) {
				p.pts[i].value = v
				p.names = p.names[:off]
				return
			}
		}
	} else {
		if p.dup == nil {
			p.dup = make(map[string]int)
		}
		if len(p.dup) == 0 {
			for i, pt := range p.pts {
				p.dup[string(p.name(pt))] = i
			}
		}
		if i, ok := p.dup[string(name)]; ok {
			p.pts[i].value = v
			p.names = p.names[:off]
			return
		}
		p.dup[string(name)] = len(p.pts)
	}
	p.pts = append(p.pts, metricPoint{off: off, n: n, value: v})
}

// fieldKind is the serde type of a struct field in the data and logs models.
type fieldKind int

const (
	kindU64 fieldKind = iota
	kindString
)

type fieldDef struct {
	name string
	kind fieldKind
}

// structValues holds one parsed data/logs line; index i matches fields[i].
type structValues struct {
	u64s [5]uint64
	strs [5]string
}

var dataFields = []fieldDef{
	{"time", kindU64}, {"data", kindString}, {"step", kindU64},
	{"dataType", kindString}, {"logName", kindString},
}

var logFields = []fieldDef{
	{"time", kindU64}, {"message", kindString}, {"lineNumber", kindU64}, {"logType", kindString},
}

func expectedFields(fields []fieldDef) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = "`" + f.name + "`"
	}
	return strings.Join(names, ", ")
}

// parseStruct parses one line into a deny_unknown_fields struct of u64 and
// String fields, with the same sanitizer fallback as metrics.
func parseStruct(line []byte, fields []fieldDef, final bool) (structValues, *lineError) {
	v, err := parseStructOnce(line, fields)
	if err != nil {
		san, changed := sanitizeNonFinite(nil, line)
		if !changed {
			return v, decodingError(final, line, err)
		}
		v2, err2 := parseStructOnce(san, fields)
		if err2 != nil {
			return v, decodingError(final, line, err)
		}
		v = v2
	}
	return v, nil
}

func parseStructOnce(line []byte, fields []fieldDef) (structValues, error) {
	var v structValues
	if !utf8.Valid(line) {
		return v, fmt.Errorf("invalid UTF-8")
	}
	s := scanner{b: line}
	var seen [5]bool
	var scratch []byte
	s.ws()
	if err := s.expect('{'); err != nil {
		return v, err
	}
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			s.ws()
			scratch = scratch[:0]
			key, err := s.str(&scratch)
			if err != nil {
				return v, err
			}
			idx := -1
			for i, f := range fields {
				if string(key) == f.name {
					idx = i
					break
				}
			}
			if idx < 0 {
				return v, s.errf("unknown field `%s`, expected one of %s", key, expectedFields(fields))
			}
			if seen[idx] {
				return v, s.errf("duplicate field `%s`", fields[idx].name)
			}
			seen[idx] = true
			s.ws()
			if err := s.expect(':'); err != nil {
				return v, err
			}
			s.ws()
			switch fields[idx].kind {
			case kindU64:
				if v.u64s[idx], err = s.u64(); err != nil {
					return v, err
				}
			case kindString:
				var sc []byte
				b, err := s.jsonStr(&sc)
				if err != nil {
					return v, err
				}
				v.strs[idx] = string(b)
			}
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			if err := s.expect('}'); err != nil {
				return v, err
			}
			break
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return v, s.errf("trailing characters")
	}
	for i, f := range fields {
		if !seen[i] {
			return v, fmt.Errorf("missing field `%s`", f.name)
		}
	}
	return v, nil
}

// isRustWhitespace matches Rust's char::is_whitespace (Unicode White_Space),
// which is what str::trim uses.
func isRustWhitespace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// trimLine trims a raw NDJSON line the way stream.rs does: leading spaces and
// tabs, trailing CR, LF, spaces and tabs.
func trimLine(b []byte) []byte {
	start := 0
	for start < len(b) && (b[start] == ' ' || b[start] == '\t') {
		start++
	}
	end := len(b)
	for end > start {
		switch b[end-1] {
		case '\r', '\n', ' ', '\t':
			end--
			continue
		}
		break
	}
	return b[start:end]
}
