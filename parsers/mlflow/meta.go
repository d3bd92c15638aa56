package mlflow

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// parseMeta reads the flat YAML of an MLflow meta.yaml: top-level
// "key: value" lines with plain, single-quoted or double-quoted scalars.
// Null values (null, ~, empty) leave the key out. Nested mappings, block
// sequences and flow collections ([] for tags) are ignored: the file store
// writes none that matter here. A plain or quoted scalar that PyYAML folded
// onto indented continuation lines is joined with single spaces, as YAML
// folds it. This reader exists because the yaml library belongs to the
// config package.
func parseMeta(data []byte) map[string]string {
	out := map[string]string{}
	var (
		key  string   // the key whose scalar may continue on the next line
		cont []string // its lines so far
	)
	flush := func() {
		if key == "" {
			return
		}
		if v, ok := scalar(strings.Join(cont, " ")); ok {
			out[key] = v
		}
		key, cont = "", nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(strings.TrimLeft(line, " "), "#") {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			// A continuation of the previous scalar, or the content of a
			// nested block, which is ignored.
			if key != "" {
				cont = append(cont, strings.TrimSpace(line))
			}
			continue
		}
		flush()
		if strings.HasPrefix(line, "- ") || line == "-" || strings.HasPrefix(line, "---") || strings.HasPrefix(line, "...") {
			continue
		}
		k, v, ok := cutKey(line)
		if !ok {
			continue
		}
		if v == "" {
			// A nested block follows, or a null: either way no scalar.
			continue
		}
		key, cont = k, []string{v}
	}
	flush()
	return out
}

// cutKey splits "key: value" at the first ": " (or a trailing ':') outside
// quotes of a quoted key.
func cutKey(line string) (key, value string, ok bool) {
	if line[0] == '\'' || line[0] == '"' {
		end := strings.IndexByte(line[1:], line[0])
		if end < 0 {
			return "", "", false
		}
		k, ok := scalar(line[:end+2])
		rest := line[end+2:]
		if !ok || !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		return k, strings.TrimSpace(rest[1:]), true
	}
	i := strings.Index(line, ": ")
	if i < 0 {
		if strings.HasSuffix(line, ":") {
			return line[:len(line)-1], "", true
		}
		return "", "", false
	}
	return line[:i], strings.TrimSpace(line[i+2:]), true
}

// scalar decodes one YAML scalar; ok is false for a null or a flow
// collection.
func scalar(v string) (string, bool) {
	v = strings.TrimSpace(v)
	switch {
	case v == "" || v == "null" || v == "~" || v == "Null" || v == "NULL":
		return "", false
	case v[0] == '\'':
		v = strings.TrimSuffix(v[1:], "'")
		return strings.ReplaceAll(v, "''", "'"), true
	case v[0] == '"':
		if s, err := strconv.Unquote(v); err == nil {
			return s, true
		}
		return strings.TrimSuffix(v[1:], `"`), true
	case v[0] == '[' || v[0] == '{':
		return "", false
	}
	// A comment after a plain scalar.
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	return v, true
}
