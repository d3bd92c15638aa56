package mlopfake

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// jsonValue is a small JSON DOM that keeps member order, duplicates and the
// raw number token, for the low-volume bodies checked with serde rules
// (/files). Hot paths use metricParser instead.
type jsonValue struct {
	kind    jvKind
	str     string
	num     []byte
	isInt   bool
	boolean bool
	arr     []*jsonValue
	keys    []string
	vals    []*jsonValue
}

type jvKind int

const (
	jvNull jvKind = iota
	jvBool
	jvNumber
	jvString
	jvArray
	jvObject
)

func parseJSONValue(b []byte) (*jsonValue, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("invalid UTF-8")
	}
	s := scanner{b: b}
	s.ws()
	v, err := s.value(0)
	if err != nil {
		return nil, err
	}
	s.ws()
	if s.i != len(b) {
		return nil, s.errf("trailing characters")
	}
	return v, nil
}

func (s *scanner) value(depth int) (*jsonValue, error) {
	if depth > 128 {
		return nil, s.errf("recursion limit exceeded")
	}
	switch c := s.peek(); {
	case c == '{':
		s.i++
		v := &jsonValue{kind: jvObject}
		s.ws()
		if s.peek() == '}' {
			s.i++
			return v, nil
		}
		for {
			s.ws()
			var scratch []byte
			k, err := s.str(&scratch)
			if err != nil {
				return nil, err
			}
			s.ws()
			if err := s.expect(':'); err != nil {
				return nil, err
			}
			s.ws()
			e, err := s.value(depth + 1)
			if err != nil {
				return nil, err
			}
			v.keys = append(v.keys, string(k))
			v.vals = append(v.vals, e)
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			if err := s.expect('}'); err != nil {
				return nil, err
			}
			return v, nil
		}
	case c == '[':
		s.i++
		v := &jsonValue{kind: jvArray}
		s.ws()
		if s.peek() == ']' {
			s.i++
			return v, nil
		}
		for {
			s.ws()
			e, err := s.value(depth + 1)
			if err != nil {
				return nil, err
			}
			v.arr = append(v.arr, e)
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			if err := s.expect(']'); err != nil {
				return nil, err
			}
			return v, nil
		}
	case c == '"':
		var scratch []byte
		b, err := s.str(&scratch)
		if err != nil {
			return nil, err
		}
		return &jsonValue{kind: jvString, str: string(b)}, nil
	case c == 't':
		return &jsonValue{kind: jvBool, boolean: true}, s.literal("true")
	case c == 'f':
		return &jsonValue{kind: jvBool}, s.literal("false")
	case c == 'n':
		return &jsonValue{kind: jvNull}, s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		tok, isInt, err := s.number()
		if err != nil {
			return nil, err
		}
		return &jsonValue{kind: jvNumber, num: append([]byte(nil), tok...), isInt: isInt}, nil
	case c == 0:
		return nil, s.errf("EOF while parsing a value")
	default:
		return nil, s.errf("expected value")
	}
}

// field returns the member named k; dup reports a repeated key (serde's
// "duplicate field").
func (v *jsonValue) field(k string) (val *jsonValue, ok, dup bool) {
	for i, key := range v.keys {
		if key == k {
			if ok {
				return val, true, true
			}
			val, ok = v.vals[i], true
		}
	}
	return val, ok, false
}

func (v *jsonValue) describe() string {
	switch v.kind {
	case jvNull:
		return "null"
	case jvBool:
		return fmt.Sprintf("boolean `%v`", v.boolean)
	case jvNumber:
		if v.isInt {
			return fmt.Sprintf("integer `%s`", v.num)
		}
		return fmt.Sprintf("floating point `%s`", v.num)
	case jvString:
		return fmt.Sprintf("string %q", v.str)
	case jvArray:
		return "sequence"
	}
	return "map"
}

// uint is serde's u32/u64 from serde_json: integers only, in range.
func (v *jsonValue) uint(bits int) (uint64, error) {
	want := fmt.Sprintf("u%d", bits)
	if v.kind != jvNumber {
		return 0, fmt.Errorf("invalid type: %s, expected %s", v.describe(), want)
	}
	if !v.isInt {
		return 0, fmt.Errorf("invalid type: %s, expected %s", v.describe(), want)
	}
	if v.num[0] == '-' {
		if string(v.num) == "-0" {
			return 0, nil // serde_json reads -0 as the integer 0
		}
		return 0, fmt.Errorf("invalid value: integer `%s`, expected %s", v.num, want)
	}
	var n uint64
	limit := uint64(math.MaxUint64)
	if bits == 32 {
		limit = math.MaxUint32
	}
	for _, d := range v.num {
		x := uint64(d - '0')
		if n > (limit-x)/10 {
			return 0, fmt.Errorf("invalid value: integer `%s`, expected %s", v.num, want)
		}
		n = n*10 + x
	}
	return n, nil
}
