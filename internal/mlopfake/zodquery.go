package mlopfake

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// A small model of the zod query schemas of the read routes in
// web/server/routes/runs-openapi.ts. Hono hands the validator
// c.req.queries(): a key given once is a string, a key given twice an array.
// zod strips unknown keys. z.coerce.number() is JavaScript's Number() of the
// value — so a missing required number fails as "received nan", while an
// empty string is 0 — and .default(d) applies before the coercion, only when
// the key is absent.

type qkind int

const (
	qString qkind = iota // z.string()
	qNumber              // z.coerce.number()
	qEnum                // z.enum([...])
)

type qfield struct {
	name     string
	kind     qkind
	optional bool
	def      *float64 // .default(d) of a number
	integer  bool     // .int()
	min, max *float64 // .min() / .max() of a number
	enum     []string
}

func f64(v float64) *float64 { return &v }

// queryArgs are the validated values: string, float64, or absent.
type queryArgs map[string]any

func (q queryArgs) str(k string) (string, bool) {
	v, ok := q[k].(string)
	return v, ok
}

func (q queryArgs) num(k string) (float64, bool) {
	v, ok := q[k].(float64)
	return v, ok
}

// zodQuery validates the query string against fields.
func zodQuery(vals url.Values, fields []qfield) (queryArgs, []zodIssue) {
	out := queryArgs{}
	var issues []zodIssue
	for _, f := range fields {
		raw, present := vals[f.name]
		path := []any{f.name}
		var v any
		switch {
		case !present:
			v = nil
		case len(raw) == 1:
			v = raw[0]
		default:
			arr := make([]any, len(raw))
			for i, r := range raw {
				arr[i] = r
			}
			v = arr
		}
		switch f.kind {
		case qString:
			switch sv := v.(type) {
			case string:
				out[f.name] = sv
			case nil:
				if !f.optional {
					issues = append(issues, typeIssue(path, "string", "undefined"))
				}
			default:
				issues = append(issues, typeIssue(path, "string", "array"))
			}
		case qEnum:
			switch sv := v.(type) {
			case string:
				ok := false
				for _, e := range f.enum {
					ok = ok || e == sv
				}
				if !ok {
					issues = append(issues, zodIssue{Code: "invalid_enum_value", Received: sv, Options: f.enum, Path: path,
						Message: fmt.Sprintf("Invalid enum value. Expected %s, received '%s'", enumList(f.enum), sv)})
					continue
				}
				out[f.name] = sv
			case nil:
				if !f.optional {
					issues = append(issues, typeIssue(path, enumList(f.enum), "undefined"))
				}
			default:
				issues = append(issues, typeIssue(path, enumList(f.enum), "array"))
			}
		case qNumber:
			var n float64
			switch sv := v.(type) {
			case nil:
				if f.def != nil {
					n = *f.def
				} else if f.optional {
					continue
				} else {
					n = math.NaN() // Number(undefined)
				}
			case string:
				n = jsNumber(sv)
			default:
				// Number(["1","2"]) is NaN; Number(["5"]) cannot happen
				// (a single value is a string).
				n = math.NaN()
			}
			if math.IsNaN(n) {
				issues = append(issues, zodIssue{Code: "invalid_type", Expected: "number", Received: "nan", Path: path,
					Message: "Expected number, received nan"})
				continue
			}
			bad := false
			if f.integer && n != math.Trunc(n) {
				issues = append(issues, zodIssue{Code: "invalid_type", Expected: "integer", Received: "float", Path: path,
					Message: "Expected integer, received float"})
				bad = true
			}
			if f.min != nil && n < *f.min {
				issues = append(issues, zodIssue{Code: "too_small", Minimum: ptr(int(*f.min)), Type: "number", Inclusive: ptr(true), Exact: ptr(false), Path: path,
					Message: fmt.Sprintf("Number must be greater than or equal to %s", jsNum(*f.min))})
				bad = true
			}
			if f.max != nil && n > *f.max {
				issues = append(issues, zodIssue{Code: "too_big", Maximum: ptr(int(*f.max)), Type: "number", Inclusive: ptr(true), Exact: ptr(false), Path: path,
					Message: fmt.Sprintf("Number must be less than or equal to %s", jsNum(*f.max))})
				bad = true
			}
			if !bad {
				out[f.name] = n
			}
		}
	}
	return out, issues
}

func jsNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

var jsDecimal = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

// jsNumber is JavaScript's Number(string): white space trimmed, "" is 0,
// Infinity with an optional sign, 0x/0o/0b integers without a sign, decimal
// literals; anything else is NaN.
func jsNumber(s string) float64 {
	s = strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '\ufeff' })
	switch s {
	case "":
		return 0
	case "Infinity", "+Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			n, err := strconv.ParseUint(s[2:], base, 64)
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		}
	}
	if !jsDecimal.MatchString(s) {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !strings.Contains(err.Error(), "range") {
		return math.NaN()
	}
	return f
}

// ilike is Postgres' ILIKE: case-insensitive, '%' any run, '_' one
// character, '\' escapes the next character.
func ilike(s, pattern string) bool {
	return ilikeRunes([]rune(strings.ToLower(s)), []rune(strings.ToLower(pattern)))
}

func ilikeRunes(s, p []rune) bool {
	for len(p) > 0 {
		switch p[0] {
		case '%':
			for len(p) > 0 && p[0] == '%' {
				p = p[1:]
			}
			if len(p) == 0 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if ilikeRunes(s[i:], p) {
					return true
				}
			}
			return false
		case '_':
			if len(s) == 0 {
				return false
			}
			s, p = s[1:], p[1:]
		default:
			c := p[0]
			if c == '\\' && len(p) > 1 {
				c, p = p[1], p[1:]
			}
			if len(s) == 0 || s[0] != c {
				return false
			}
			s, p = s[1:], p[1:]
		}
	}
	return len(s) == 0
}
