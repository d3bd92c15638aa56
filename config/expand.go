package config

import (
	"fmt"
	"strings"
)

// maxExpandDepth bounds nested defaults (${A:-${B:-${C}}}).
const maxExpandDepth = 8

// expand replaces ${VAR} and ${VAR:-default} in s with values from getenv
// and turns $$ into $. A default is used when VAR is unset or empty (as in
// the shell) and is itself expanded; values from the environment are not.
// Any other $ is kept as it is, so "$HOME" and "a$" stay literal. It returns
// the names of the variables it looked up.
//
// Errors never quote s: it may be a secret.
func expand(s string, getenv func(string) (string, bool)) (string, []string, error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var refs []string
	out, err := expandDepth(s, getenv, &refs, 0)
	return out, refs, err
}

func expandDepth(s string, getenv func(string) (string, bool), refs *[]string, depth int) (string, error) {
	if depth > maxExpandDepth {
		return "", invalidf("defaults nested more than %d deep", maxExpandDepth)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
			continue
		case '{':
		default:
			b.WriteByte(c)
			i++
			continue
		}
		end := closingBrace(s, i+2)
		if end < 0 {
			return "", invalidf("unterminated ${ in value (write $$ for a literal dollar)")
		}
		inner := s[i+2 : end]
		name, def, hasDef := strings.Cut(inner, ":-")
		if !validVarName(name) {
			return "", invalidf("invalid variable reference ${%s}: want ${NAME} or ${NAME:-default} with NAME made of letters, digits and _", truncate(name, 40))
		}
		*refs = append(*refs, name)
		v, ok := getenv(name)
		switch {
		case ok && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			d, err := expandDepth(def, getenv, refs, depth+1)
			if err != nil {
				return "", err
			}
			b.WriteString(d)
		default:
			return "", fmt.Errorf("%w %s (write ${%s:-} to allow it to be empty)", ErrUndefinedVariable, name, name)
		}
		i = end + 1
	}
	return b.String(), nil
}

// closingBrace returns the index of the } closing a ${ whose body starts at
// start, skipping nested ${...} and $$, or -1.
func closingBrace(s string, start int) int {
	depth := 1
	for j := start; j < len(s); j++ {
		switch {
		case s[j] == '$' && j+1 < len(s) && s[j+1] == '$':
			j++
		case s[j] == '$' && j+1 < len(s) && s[j+1] == '{':
			depth++
			j++
		case s[j] == '}':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
