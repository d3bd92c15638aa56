package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// The decoder walks the yaml.Node tree next to the Go value instead of
// calling yaml's struct decoding. That is what makes it strict and precise:
// yaml.v3 loses KnownFields inside custom unmarshalers and reports type
// errors as text, while walking the tree gives every unknown key, duplicate
// key and type error with its key path and line, all at once. Leaf values
// are converted here too; yaml.v3 only parses and resolves scalar tags.

const (
	maxDepth  = 64      // nesting limit: guards against alias cycles
	maxVisits = 1 << 18 // node limit: guards against alias bombs
)

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	secretType          = reflect.TypeFor[Secret]()
	sourceType          = reflect.TypeFor[Source]()
)

type decoder struct {
	file    string
	getenv  func(string) (string, bool)
	lines   map[string]int      // key path -> line, for LineOf
	envRefs map[string][]string // key path -> variables its value referenced
	errs    []*FieldError
	visits  int
}

func newDecoder(file string, getenv func(string) (string, bool)) *decoder {
	return &decoder{
		file:    file,
		getenv:  getenv,
		lines:   map[string]int{},
		envRefs: map[string][]string{},
	}
}

// parseDocument parses data into one YAML document's root node; nil for an
// empty document.
func parseDocument(data []byte, name string) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("parse %s: %w", displayName(name), err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", displayName(name), err)
		}
		return nil, &FieldError{File: name, Line: extra.Line, Err: invalidf("more than one YAML document (remove the --- separator)")}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	return root, nil
}

func displayName(name string) string {
	if name == "" {
		return "config"
	}
	return name
}

func (d *decoder) fail(path string, n *yaml.Node, value any, err error) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &FieldError{File: d.file, Path: path, Line: line, Value: value, Err: err})
}

// decode stores n into v, whose defaults are already in place. A null value
// keeps scalars and structs at their defaults and empties lists and maps.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	n, ok := d.enter(n, path, depth)
	if !ok {
		return
	}
	t := v.Type()
	switch {
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		d.text(n, v, path)
	case t.Kind() == reflect.Struct:
		d.structure(n, v, path, depth)
	case t.Kind() == reflect.Slice:
		d.list(n, v, path, depth)
	case t.Kind() == reflect.Map:
		d.goMap(n, v, path, depth)
	default:
		d.leaf(n, v, path)
	}
}

// enter follows aliases and enforces the size limits.
func (d *decoder) enter(n *yaml.Node, path string, depth int) (*yaml.Node, bool) {
	d.visits++
	switch {
	case d.visits == maxVisits+1:
		d.fail(path, n, nil, invalidf("document too large (more than %d values, counting alias expansions)", maxVisits))
		return nil, false
	case d.visits > maxVisits:
		return nil, false
	case depth > maxDepth:
		d.fail(path, n, nil, invalidf("nested more than %d levels deep (an alias that contains itself?)", maxDepth))
		return nil, false
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n, true
}

// scalar expands the value of a scalar node. null reports a plain empty,
// ~ or null value (after expansion). ok is false when the expansion failed;
// the error is already recorded.
func (d *decoder) scalar(n *yaml.Node, path string, secret bool) (s string, null, ok bool) {
	s, refs, err := expand(n.Value, d.getenv)
	if err != nil {
		if secret && !errors.Is(err, ErrUndefinedVariable) {
			err = invalidf("malformed ${...} reference")
		}
		d.fail(path, n, nil, err)
		return "", false, false
	}
	if len(refs) > 0 {
		d.envRefs[path] = refs
	}
	return s, scalarTag(n, s) == "!!null", true
}

// scalarTag is the YAML tag of scalar n once its text is s: explicit tags
// and quoting win, plain scalars are resolved again because expansion may
// have changed them ("${N:-8}" is an integer).
func scalarTag(n *yaml.Node, s string) string {
	const quoted = yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle
	if n.Style&(yaml.TaggedStyle|quoted) != 0 || s == n.Value {
		return n.ShortTag()
	}
	return (&yaml.Node{Kind: yaml.ScalarNode, Value: s}).ShortTag()
}

// shape names what a non-scalar node is, for type errors.
func shape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a scalar"
	}
}

// want names what a Go type expects, for type errors.
func want(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return "a duration such as 30s"
	case reflect.TypeFor[ByteSize]():
		return "a size such as 1MiB"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	default:
		return "a string"
	}
}

// container handles the scalar cases of a struct, list or map target: null
// resets (lists and maps) or keeps (structs); anything else is a type
// error. It reports whether n is the right kind of node to go on with.
func (d *decoder) container(n *yaml.Node, v reflect.Value, path string, kind yaml.Kind) bool {
	if n.Kind == kind {
		return true
	}
	if n.Kind == yaml.ScalarNode {
		s, null, ok := d.scalar(n, path, false)
		if !ok {
			return false
		}
		if null {
			if v.Kind() != reflect.Struct {
				v.Set(reflect.Zero(v.Type()))
			}
			return false
		}
		d.fail(path, n, s, typef("want %s, got %q", want(v.Type()), s))
		return false
	}
	d.fail(path, n, nil, typef("want %s, got %s", want(v.Type()), shape(n)))
	return false
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string, depth int) {
	if !d.container(n, v, path, yaml.MappingNode) {
		return
	}
	fields := fieldsOf(v.Type())
	for _, p := range d.pairs(n, path, false, depth) {
		kp := joinPath(path, p.name)
		i, ok := fields.index[p.name]
		if !ok {
			d.fail(kp, p.key, nil, unknownKey(p.name, fields.names))
			continue
		}
		d.lines[kp] = p.key.Line
		d.decode(p.val, v.Field(i), kp, depth+1)
	}
}

func (d *decoder) list(n *yaml.Node, v reflect.Value, path string, depth int) {
	if !d.container(n, v, path, yaml.SequenceNode) {
		return
	}
	t := v.Type()
	out := reflect.MakeSlice(t, len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := path + "[" + strconv.Itoa(i) + "]"
		d.lines[p] = item.Line
		if t.Elem() == sourceType {
			out.Index(i).Set(reflect.ValueOf(DefaultSource()))
		}
		d.decode(item, out.Index(i), p, depth+1)
	}
	v.Set(out)
}

// goMap decodes a map[string]T; map[string]any gets JSON-compatible values.
func (d *decoder) goMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	if !d.container(n, v, path, yaml.MappingNode) {
		return
	}
	t := v.Type()
	pairs := d.pairs(n, path, true, depth)
	m := reflect.MakeMapWithSize(t, len(pairs))
	for _, p := range pairs {
		kp := path + keySuffix(p.name)
		d.lines[kp] = p.key.Line
		e := reflect.New(t.Elem()).Elem()
		if t.Elem().Kind() == reflect.Interface {
			val, ok := d.anyValue(p.val, kp, depth+1)
			if !ok {
				continue
			}
			if val != nil {
				e.Set(reflect.ValueOf(val))
			}
		} else {
			d.decode(p.val, e, kp, depth+1)
		}
		m.SetMapIndex(reflect.ValueOf(p.name).Convert(t.Key()), e)
	}
	v.Set(m)
}

// text decodes a scalar into an encoding.TextUnmarshaler (Duration,
// ByteSize).
func (d *decoder) text(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, nil, typef("want %s, got %s", want(v.Type()), shape(n)))
		return
	}
	s, null, ok := d.scalar(n, path, false)
	if !ok || null {
		return
	}
	if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
		d.fail(path, n, s, err)
	}
}

// leaf decodes a scalar into a string, bool or integer. Quoting does not
// matter ("8" is a fine integer) so that "${N}" works anywhere.
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	secret := v.Type() == secretType
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, nil, typef("want %s, got %s", want(v.Type()), shape(n)))
		return
	}
	s, null, ok := d.scalar(n, path, secret)
	if !ok || null {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.fail(path, n, s, typef("want true or false, got %q", s))
		}
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			d.fail(path, n, s, typef("want an integer, got %q", s))
			return
		}
		v.SetInt(i)
	default:
		// Only reachable if a field of an unsupported type is added to the
		// schema; TestSchemaTypes keeps that from happening.
		d.fail(path, n, nil, typef("unsupported type %s", v.Type()))
	}
}

// anyValue converts n into a JSON-compatible value: nil, bool, int (or
// int64/uint64), float64, string, []any, map[string]any. Timestamps stay
// text; non-string keys and NaN/Inf are errors.
func (d *decoder) anyValue(n *yaml.Node, path string, depth int) (any, bool) {
	n, ok := d.enter(n, path, depth)
	if !ok {
		return nil, false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		s, null, ok := d.scalar(n, path, false)
		if !ok {
			return nil, false
		}
		if null {
			return nil, true
		}
		switch tag := scalarTag(n, s); tag {
		case "!!str", "!!timestamp", "!!binary":
			return s, true
		case "!!bool", "!!int", "!!float":
			var out any
			if err := (&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s}).Decode(&out); err != nil {
				d.fail(path, n, s, typef("cannot decode %q as %s", s, tag))
				return nil, false
			}
			if f, isFloat := out.(float64); isFloat && (math.IsNaN(f) || math.IsInf(f, 0)) {
				d.fail(path, n, s, invalidf("%s is not representable in JSON", s))
				return nil, false
			}
			return out, true
		default:
			d.fail(path, n, s, typef("unsupported tag %s", tag))
			return nil, false
		}
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		good := true
		for i, item := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			d.lines[p] = item.Line
			v, ok := d.anyValue(item, p, depth+1)
			good = good && ok
			out = append(out, v)
		}
		return out, good
	case yaml.MappingNode:
		pairs := d.pairs(n, path, true, depth)
		out := make(map[string]any, len(pairs))
		good := true
		for _, p := range pairs {
			kp := path + keySuffix(p.name)
			d.lines[kp] = p.key.Line
			v, ok := d.anyValue(p.val, kp, depth+1)
			good = good && ok
			out[p.name] = v
		}
		return out, good
	}
	d.fail(path, n, nil, typef("unsupported YAML node"))
	return nil, false
}

type pair struct {
	key, val *yaml.Node
	name     string
}

// pairs returns the entries of mapping n with YAML merge keys (<<) applied:
// the mapping's own keys win, then the merged mappings in order. Duplicate
// keys and non-scalar keys are errors; with stringKeys, so are keys that
// are not strings (1:, true:), because the result must be JSON-compatible.
func (d *decoder) pairs(n *yaml.Node, path string, stringKeys bool, depth int) []pair {
	var out []pair
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		for k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k, nil, typef("a key must be a scalar, got %s", shape(k)))
			continue
		}
		tag := k.ShortTag()
		if tag == "!!merge" {
			merges = append(merges, val)
			continue
		}
		kp := path + keySuffix(k.Value)
		if stringKeys && tag != "!!str" {
			d.fail(kp, k, k.Value, typef("key %s is not a string (quote it)", k.Value))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(kp, k, nil, fmt.Errorf("%w (first at line %d)", ErrDuplicateKey, first.Line))
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{key: k, val: val, name: k.Value})
	}
	for _, m := range merges {
		m, ok := d.enter(m, path, depth+1)
		if !ok {
			continue
		}
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, src := range srcs {
			src, ok := d.enter(src, path, depth+1)
			if !ok {
				continue
			}
			if src.Kind != yaml.MappingNode {
				d.fail(path, src, nil, typef("<< must merge a mapping or a list of mappings, got %s", shape(src)))
				continue
			}
			for _, p := range d.pairs(src, path, stringKeys, depth+1) {
				if _, dup := seen[p.name]; !dup {
					seen[p.name] = p.key
					out = append(out, p)
				}
			}
		}
	}
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// keySuffix renders a map key as part of a path: ".lr", or `["a.b"]` when the
// key has characters that would make the path ambiguous.
func keySuffix(k string) string {
	plain := k != ""
	for i := 0; i < len(k) && plain; i++ {
		c := k[i]
		plain = c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if plain {
		return "." + k
	}
	return "[" + strconv.Quote(k) + "]"
}

// structFields maps the yaml tags of a struct to field indexes.
type structFields struct {
	index map[string]int
	names []string // sorted, for suggestions
}

var fieldCache sync.Map // reflect.Type -> *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{index: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	slices.Sort(f.names)
	fieldCache.Store(t, f)
	return f
}

// unknownKey builds the error for key, suggesting the closest valid key.
func unknownKey(key string, valid []string) error {
	if s := suggest(key, valid); s != "" {
		return &sentinelError{sentinel: ErrUnknownKey, msg: "unknown key (did you mean " + s + "?)"}
	}
	return &sentinelError{sentinel: ErrUnknownKey, msg: "unknown key (valid keys: " + strings.Join(valid, ", ") + ")"}
}

// suggest returns the candidate closest to s by edit distance (with
// transpositions, ignoring case and -/_), if it is close enough to be a
// plausible typo.
func suggest(s string, candidates []string) string {
	norm := func(x string) string { return strings.ReplaceAll(strings.ToLower(x), "-", "_") }
	ns := norm(s)
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if dist := editDistance(ns, norm(c)); dist < bestD {
			best, bestD = c, dist
		}
	}
	limit := max(1, min(3, len(s)/3))
	if bestD <= limit {
		return best
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and adjacent transpositions each cost 1.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
