package tensorboard

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A reader for the YAML that PyTorch Lightning writes as hparams.yaml
// (save_hparams_to_yaml: PyYAML's yaml.dump of a dict, block style). The
// YAML library of this module belongs to package config; this is the small
// subset a parser needs, and it refuses what it does not know rather than
// guess:
//
//   - block mappings and sequences (also "- key: value" items), nested by
//     indentation; "---" and "..." document markers; comments;
//   - plain, 'single' and "double" quoted scalars, also over several lines;
//     | and > block scalars; one-line flow collections ([a, b], {a: 1});
//   - YAML 1.1 scalars as PyYAML resolves them: null/~, true/false/yes/no/
//     on/off, integers (0x, 0o, _), floats (1.0e-05, .inf, .nan);
//   - anchors (&a) and aliases (*a);
//   - tags: !!python/name:mod.fn and !!python/module:mod become the string
//     "mod.fn"; !!python/tuple a list; !!python/object..., other tags: the
//     tagged value as it is (the tag is dropped); !!str, !!int, !!float,
//     !!bool, !!null are applied.
//
// Not supported (an error with the line): several documents, complex keys
// ("? "), multi-line flow collections, tabs as indentation.

// maxYAMLBytes bounds what is read; hparams files are small.
const maxYAMLBytes = 4 << 20

var errYAML = errors.New("unsupported or malformed YAML")

type yline struct {
	num    int // 1-based
	indent int
	text   string // without the indentation; never empty
}

type yamlParser struct {
	lines   []yline
	i       int
	anchors map[string]any
	raw     []string // the document's lines, for scalars spanning lines
}

func yamlErr(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", errYAML, line, fmt.Sprintf(format, args...))
}

// parseHParamsYAML decodes an hparams.yaml document into a JSON-compatible
// mapping (non-finite floats become "NaN", "Infinity", "-Infinity").
func parseHParamsYAML(data []byte) (map[string]any, error) {
	if len(data) > maxYAMLBytes {
		return nil, fmt.Errorf("%w: %d bytes is more than an hparams file holds", errYAML, len(data))
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", errYAML)
	}
	p := &yamlParser{anchors: map[string]any{}}
	p.raw = strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for n, l := range p.raw {
		trimmed := strings.TrimLeft(l, " ")
		if strings.HasPrefix(trimmed, "\t") {
			return nil, yamlErr(n+1, "a tab in the indentation")
		}
		content := strings.TrimRight(trimmed, " \t")
		if content == "" || strings.HasPrefix(content, "#") {
			continue
		}
		indent := len(l) - len(trimmed)
		if indent == 0 && (content == "---" || strings.HasPrefix(content, "--- ")) {
			if len(p.lines) > 0 {
				return nil, yamlErr(n+1, "a second document")
			}
			if rest := strings.TrimSpace(content[3:]); rest != "" {
				p.lines = append(p.lines, yline{num: n + 1, indent: 4, text: rest})
			}
			continue
		}
		if indent == 0 && content == "..." {
			break
		}
		p.lines = append(p.lines, yline{num: n + 1, indent: indent, text: content})
	}
	if len(p.lines) == 0 {
		return map[string]any{}, nil
	}
	v, err := p.node(p.lines[0].indent)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.lines) {
		return nil, yamlErr(p.lines[p.i].num, "unexpected content %q", p.lines[p.i].text)
	}
	switch m := v.(type) {
	case map[string]any:
		return m, nil
	case nil:
		return map[string]any{}, nil
	}
	return nil, fmt.Errorf("%w: the document is not a mapping", errYAML)
}

// node parses the block node starting at the current line, whose indent
// must be at least min.
func (p *yamlParser) node(min int) (any, error) {
	if p.i >= len(p.lines) {
		return nil, nil
	}
	l := p.lines[p.i]
	if l.indent < min {
		return nil, nil
	}
	if isSeqItem(l.text) {
		return p.sequence(l.indent)
	}
	if _, _, ok, err := splitKey(l); err != nil {
		return nil, err
	} else if ok {
		return p.mapping(l.indent)
	}
	p.i++
	return p.inline(l, l.text, min)
}

func isSeqItem(s string) bool { return s == "-" || strings.HasPrefix(s, "- ") }

func (p *yamlParser) sequence(indent int) (any, error) {
	out := []any{}
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if l.indent != indent || !isSeqItem(l.text) {
			if l.indent > indent {
				return nil, yamlErr(l.num, "bad indentation")
			}
			break
		}
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		if rest == "" {
			p.i++
			v, err := p.node(indent + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		// The item's content is a node at the column after "- ".
		col := indent + (len(l.text) - len(rest))
		p.lines[p.i] = yline{num: l.num, indent: col, text: rest}
		v, err := p.node(col)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (p *yamlParser) mapping(indent int) (any, error) {
	out := map[string]any{}
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if l.indent < indent {
			break
		}
		if l.indent > indent {
			return nil, yamlErr(l.num, "bad indentation")
		}
		if isSeqItem(l.text) {
			break
		}
		key, rest, ok, err := splitKey(l)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, yamlErr(l.num, "expected \"key: value\", found %q", l.text)
		}
		if _, dup := out[key]; dup {
			return nil, yamlErr(l.num, "duplicate key %q", key)
		}
		p.i++
		var v any
		if rest == "" {
			// The value is the block below: deeper, or a sequence at
			// the same indentation (PyYAML's "key:\n- a").
			if p.i < len(p.lines) && (p.lines[p.i].indent > indent || (p.lines[p.i].indent == indent && isSeqItem(p.lines[p.i].text))) {
				next := p.lines[p.i].indent
				if next == indent {
					v, err = p.sequence(indent)
				} else {
					v, err = p.node(next)
				}
				if err != nil {
					return nil, err
				}
			}
		} else if v, err = p.inline(l, rest, indent+1); err != nil {
			return nil, err
		}
		out[key] = v
	}
	return out, nil
}

// splitKey recognises "key: rest" (rest may be empty).
func splitKey(l yline) (key, rest string, ok bool, err error) {
	s := l.text
	if strings.HasPrefix(s, "? ") || s == "?" {
		return "", "", false, yamlErr(l.num, "complex keys are not supported")
	}
	if s[0] == '"' || s[0] == '\'' {
		k, n, err := quotedOneLine(s, l.num)
		if err != nil {
			return "", "", false, nil
		}
		after := s[n:]
		if after != ":" && !strings.HasPrefix(after, ": ") {
			return "", "", false, nil
		}
		return k, strings.TrimSpace(after[1:]), true, nil
	}
	if s[0] == '[' || s[0] == '{' || s[0] == '&' || s[0] == '*' || s[0] == '!' || s[0] == '|' || s[0] == '>' {
		return "", "", false, nil
	}
	i := strings.Index(s, ": ")
	if strings.HasSuffix(s, ":") && (i < 0 || i == len(s)-1) {
		i = len(s) - 1
	}
	if i <= 0 {
		return "", "", false, nil
	}
	if j := strings.Index(s, " #"); j >= 0 && j < i {
		return "", "", false, nil
	}
	return strings.TrimRight(s[:i], " "), strings.TrimSpace(s[i+1:]), true, nil
}

// inline parses a value that starts on line l (text s) and may continue on
// the following lines indented at least min.
func (p *yamlParser) inline(l yline, s string, min int) (any, error) {
	var anchor string
	if strings.HasPrefix(s, "&") {
		name, rest, _ := strings.Cut(s[1:], " ")
		anchor, s = name, strings.TrimSpace(rest)
	}
	var tag string
	if strings.HasPrefix(s, "!") {
		t, rest, _ := strings.Cut(s, " ")
		tag, s = t, strings.TrimSpace(rest)
	}
	var v any
	var err error
	switch {
	case s == "" && p.i < len(p.lines) && p.lines[p.i].indent == min-1 && isSeqItem(p.lines[p.i].text):
		// "key: !!python/tuple" and the items at the key's indentation.
		v, err = p.sequence(min - 1)
	case s == "":
		v, err = p.node(min)
	case strings.HasPrefix(s, "*"):
		a, ok := p.anchors[s[1:]]
		if !ok {
			return nil, yamlErr(l.num, "unknown alias %s", s)
		}
		v = a
	case s[0] == '|' || s[0] == '>':
		v, err = p.blockScalar(l, s, min)
	case s[0] == '\'' || s[0] == '"':
		var str string
		str, err = p.quoted(l, s)
		v = str
	case s[0] == '[' || s[0] == '{':
		fp := flowParser{s: s, line: l.num, p: p}
		v, err = fp.value()
		if err == nil {
			fp.skipSpace()
			if fp.i < len(fp.s) && !strings.HasPrefix(fp.s[fp.i:], "#") {
				err = yamlErr(l.num, "text after a flow collection")
			}
		}
	default:
		text := stripComment(s)
		// A plain scalar may continue on more-indented lines.
		for p.i < len(p.lines) && p.lines[p.i].indent >= min && p.lines[p.i].indent > 0 && !isSeqItem(p.lines[p.i].text) {
			if _, _, isKey, _ := splitKey(p.lines[p.i]); isKey {
				break
			}
			text += " " + stripComment(p.lines[p.i].text)
			p.i++
		}
		if tag == "" || tag == "!!float" || tag == "!!int" || tag == "!!bool" || tag == "!!null" {
			v = resolvePlain(text)
		} else {
			v = text
		}
	}
	if err != nil {
		return nil, err
	}
	v, err = applyTag(tag, v, l.num)
	if err != nil {
		return nil, err
	}
	if anchor != "" {
		p.anchors[anchor] = v
	}
	return v, nil
}

func stripComment(s string) string {
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func applyTag(tag string, v any, line int) (any, error) {
	switch {
	case tag == "":
		return v, nil
	case strings.HasPrefix(tag, "!!python/name:"), strings.HasPrefix(tag, "!!python/module:"):
		_, name, _ := strings.Cut(tag, ":")
		return name, nil
	case tag == "!!str":
		switch x := v.(type) {
		case string:
			return x, nil
		case nil:
			return "", nil
		}
		return fmt.Sprint(v), nil
	case tag == "!!int", tag == "!!float":
		switch x := v.(type) {
		case string:
			if f, ok := yamlFloat(x); ok {
				return jsonNumber(f), nil
			}
			return nil, yamlErr(line, "%s %q is not a number", tag, x)
		case int64:
			if tag == "!!float" {
				return float64(x), nil
			}
		case float64:
			if tag == "!!int" && x == math.Trunc(x) && math.Abs(x) < 1<<63 {
				return int64(x), nil
			}
		}
		return v, nil
	case tag == "!!bool", tag == "!!null", tag == "!!python/tuple", tag == "!!seq", tag == "!!map",
		tag == "!!python/list", tag == "!!python/dict":
		return v, nil
	case strings.HasPrefix(tag, "!"):
		// !!python/object:..., custom tags: the value as it is.
		return v, nil
	}
	return nil, yamlErr(line, "tag %q", tag)
}

// resolvePlain applies YAML 1.1's implicit types, as PyYAML reads them.
func resolvePlain(s string) any {
	switch s {
	case "", "~", "null", "Null", "NULL":
		return nil
	case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON":
		return true
	case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF":
		return false
	}
	if i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64); err == nil && looksNumeric(s) {
		return i
	}
	if f, ok := yamlFloat(s); ok && (strings.Contains(s, ".")) {
		// YAML 1.1 floats have a dot (PyYAML reads 1e5 as a string).
		return jsonNumber(f)
	}
	return s
}

func looksNumeric(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && (s[0] >= '0' && s[0] <= '9')
}

func yamlFloat(s string) (float64, bool) {
	switch strings.ToLower(s) {
	case ".inf", "+.inf":
		return math.Inf(1), true
	case "-.inf":
		return math.Inf(-1), true
	case ".nan":
		return math.NaN(), true
	}
	t := strings.ReplaceAll(s, "_", "")
	if !looksNumeric(t) && !strings.HasPrefix(strings.TrimLeft(t, "+-"), ".") {
		return 0, false
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		if i, err := strconv.ParseInt(t, 0, 64); err == nil {
			return float64(i), true
		}
		return 0, false
	}
	return f, true
}

// quoted parses a quoted scalar starting in s on line l, continuing over
// the raw lines that follow when it is not closed on this one.
func (p *yamlParser) quoted(l yline, s string) (string, error) {
	if v, n, err := quotedOneLine(s, l.num); err == nil {
		if rest := strings.TrimSpace(s[n:]); rest != "" && !strings.HasPrefix(rest, "#") {
			return "", yamlErr(l.num, "text after a quoted scalar")
		}
		return v, nil
	}
	// Multi-line: join the raw lines up to the closing quote, folding line
	// breaks as YAML does (one break: a space; n breaks: n-1 newlines).
	var b strings.Builder
	b.WriteString(s)
	line := l.num
	for {
		if line >= len(p.raw) {
			return "", yamlErr(l.num, "unterminated quoted scalar")
		}
		next := strings.TrimSpace(p.raw[line])
		line++
		if next == "" {
			b.WriteString("\n")
			continue
		}
		str := b.String()
		if !strings.HasSuffix(str, "\n") {
			if strings.HasSuffix(str, "\\") && s[0] == '"' {
				b.Reset()
				b.WriteString(str[:len(str)-1])
			} else {
				b.WriteString(" ")
			}
		}
		b.WriteString(next)
		if v, n, err := quotedOneLine(b.String(), l.num); err == nil {
			if rest := strings.TrimSpace(b.String()[n:]); rest != "" && !strings.HasPrefix(rest, "#") {
				return "", yamlErr(line, "text after a quoted scalar")
			}
			// Skip the parsed lines that were consumed.
			for p.i < len(p.lines) && p.lines[p.i].num <= line {
				p.i++
			}
			return v, nil
		}
	}
}

// quotedOneLine parses a quoted scalar at the start of s; n is the length
// consumed (including the quotes).
func quotedOneLine(s string, line int) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case q == '\'' && c == '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), i + 1, nil
		case q == '"' && c == '"':
			return b.String(), i + 1, nil
		case q == '"' && c == '\\':
			if i+1 >= len(s) {
				return "", 0, yamlErr(line, "unterminated escape")
			}
			i++
			r, n, err := unescape(s[i:], line)
			if err != nil {
				return "", 0, err
			}
			b.WriteString(r)
			i += n - 1
		case c == '\n' && q == '\'':
			b.WriteByte('\n')
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, yamlErr(line, "unterminated quoted scalar")
}

func unescape(s string, line int) (string, int, error) {
	simple := map[byte]string{'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t", 'n': "\n", 'v': "\v", 'f': "\f",
		'r': "\r", 'e': "\x1b", ' ': " ", '"': "\"", '/': "/", '\\': "\\", 'N': "\u0085", '_': "\u00a0", 'L': "\u2028", 'P': "\u2029"}
	if r, ok := simple[s[0]]; ok {
		return r, 1, nil
	}
	width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[0]]
	if width == 0 || len(s) < 1+width {
		return "", 0, yamlErr(line, "bad escape \\%c", s[0])
	}
	v, err := strconv.ParseUint(s[1:1+width], 16, 32)
	if err != nil {
		return "", 0, yamlErr(line, "bad escape \\%s", s[:1+width])
	}
	return string(rune(v)), 1 + width, nil
}

// blockScalar parses | and > scalars from the raw lines below l.
func (p *yamlParser) blockScalar(l yline, head string, min int) (string, error) {
	literal := head[0] == '|'
	chomp := byte(0)
	indent := 0
	for _, c := range stripComment(head[1:]) {
		switch {
		case c == '-' || c == '+':
			chomp = byte(c)
		case c >= '1' && c <= '9':
			indent = int(c - '0')
		default:
			return "", yamlErr(l.num, "bad block scalar header %q", head)
		}
	}
	var lines []string
	line := l.num // index of the next raw line
	for ; line < len(p.raw); line++ {
		raw := p.raw[line]
		t := strings.TrimLeft(raw, " ")
		if t == "" {
			lines = append(lines, "")
			continue
		}
		ind := len(raw) - len(t)
		if indent == 0 {
			if ind < min {
				break
			}
			indent = ind
		}
		if ind < indent {
			break
		}
		lines = append(lines, raw[indent:])
	}
	for p.i < len(p.lines) && p.lines[p.i].num <= line {
		p.i++
	}
	// Trailing empty lines belong to chomping.
	end := len(lines)
	for end > 0 && lines[end-1] == "" {
		end--
	}
	trail := lines[end:]
	body := lines[:end]
	var b strings.Builder
	if literal {
		b.WriteString(strings.Join(body, "\n"))
	} else {
		// Folding: a single line break becomes a space; a break followed
		// by n empty lines, n newlines; more-indented lines keep theirs.
		empty, prevIndented := 0, false
		for i, s := range body {
			if s == "" {
				empty++
				continue
			}
			indented := strings.HasPrefix(s, " ")
			switch {
			case i == 0:
			case empty > 0:
				b.WriteString(strings.Repeat("\n", empty))
			case indented || prevIndented:
				b.WriteByte('\n')
			default:
				b.WriteByte(' ')
			}
			empty, prevIndented = 0, indented
			b.WriteString(s)
		}
	}
	out := b.String()
	switch chomp {
	case '-':
	case '+':
		out += "\n" + strings.Repeat("\n", len(trail))
	default:
		if len(body) > 0 {
			out += "\n"
		}
	}
	return out, nil
}

// flowParser reads a one-line flow collection.
type flowParser struct {
	s     string
	i     int
	line  int
	p     *yamlParser
	depth int
}

func (f *flowParser) skipSpace() {
	for f.i < len(f.s) && f.s[f.i] == ' ' {
		f.i++
	}
}

func (f *flowParser) value() (any, error) {
	f.skipSpace()
	if f.i >= len(f.s) {
		return nil, yamlErr(f.line, "a flow collection continues on the next line")
	}
	if f.depth > maxValueDepth {
		return nil, yamlErr(f.line, "nested deeper than %d", maxValueDepth)
	}
	switch c := f.s[f.i]; c {
	case '[':
		f.i++
		f.depth++
		out := []any{}
		for {
			f.skipSpace()
			if f.i < len(f.s) && f.s[f.i] == ']' {
				f.i++
				f.depth--
				return out, nil
			}
			v, err := f.value()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			if err := f.sep(']'); err != nil {
				return nil, err
			}
		}
	case '{':
		f.i++
		f.depth++
		out := map[string]any{}
		for {
			f.skipSpace()
			if f.i < len(f.s) && f.s[f.i] == '}' {
				f.i++
				f.depth--
				return out, nil
			}
			k, err := f.value()
			if err != nil {
				return nil, err
			}
			f.skipSpace()
			if f.i >= len(f.s) || f.s[f.i] != ':' {
				return nil, yamlErr(f.line, "expected ':' in a flow mapping")
			}
			f.i++
			v, err := f.value()
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = v
			if err := f.sep('}'); err != nil {
				return nil, err
			}
		}
	case '\'', '"':
		v, n, err := quotedOneLine(f.s[f.i:], f.line)
		if err != nil {
			return nil, err
		}
		f.i += n
		return v, nil
	case '*':
		j := f.i + 1
		for j < len(f.s) && !strings.ContainsRune(" ,]}", rune(f.s[j])) {
			j++
		}
		a, ok := f.p.anchors[f.s[f.i+1:j]]
		if !ok {
			return nil, yamlErr(f.line, "unknown alias %s", f.s[f.i:j])
		}
		f.i = j
		return a, nil
	}
	j := f.i
	for j < len(f.s) && !strings.ContainsRune(",]}", rune(f.s[j])) && !(f.s[j] == ':' && (j+1 == len(f.s) || f.s[j+1] == ' ')) {
		j++
	}
	v := resolvePlain(strings.TrimSpace(f.s[f.i:j]))
	f.i = j
	return v, nil
}

func (f *flowParser) sep(closer byte) error {
	f.skipSpace()
	if f.i < len(f.s) && f.s[f.i] == ',' {
		f.i++
		return nil
	}
	if f.i < len(f.s) && f.s[f.i] == closer {
		return nil
	}
	return yamlErr(f.line, "expected ',' or '%c' in a flow collection", closer)
}
