package parsers

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrUnusable marks a record error after which no record of the file can
// be used, because the file does not fit the source's configuration (a
// configured step or run column its header lacks). A parser returns it once
// per file, at the record where it found out (the header), and from then on
// drops the file's records without an error: the file is one failure, not
// one bad record per line. It is wrapped together with the reason that
// Reason counts (ErrBadStep, ErrBadRunName).
var ErrUnusable = errors.New("no record of the file can be used")

// ColumnError reports a configured column that a file's header does not
// have. It wraps ErrUnusable and the reason of its role.
type ColumnError struct {
	Role   string   // what the column was for: "step" or "run"
	Column string   // the configured name
	Header []string // the file's columns
}

func (e *ColumnError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s column %q not in the header (have: %s)", e.Role, e.Column, HeaderSummary(e.Header))
	for _, h := range e.Header {
		if h != e.Column && strings.EqualFold(strings.TrimSpace(h), strings.TrimSpace(e.Column)) {
			fmt.Fprintf(&b, "; did you mean %q?", h)
			break
		}
	}
	b.WriteString("; no row of the file is read")
	return b.String()
}

// Unwrap makes errors.Is see ErrUnusable and the role's reason.
func (e *ColumnError) Unwrap() []error {
	switch e.Role {
	case "step":
		return []error{ErrBadStep, ErrUnusable}
	case "run":
		return []error{ErrBadRunName, ErrUnusable}
	}
	return []error{ErrUnusable}
}

// Limits of HeaderSummary: a message line stays readable with a header of
// hundreds of columns or of very long names.
const (
	summaryNames   = 8  // names shown at most
	summaryBytes   = 96 // bytes of names shown at most (the first name always)
	summaryNameLen = 40 // longer names are cut, with "…"
)

// HeaderSummary renders column names for a message: the names separated by
// ", ", cut after a few of them or about 100 bytes with "... N columns"
// saying how many there are in all. An empty name shows as "".
func HeaderSummary(names []string) string {
	if len(names) == 0 {
		return "no columns"
	}
	var b strings.Builder
	shown := 0
	for i, n := range names {
		if n == "" {
			n = `""`
		}
		if len(n) > summaryNameLen {
			cut := summaryNameLen
			for cut > 0 && !utf8.RuneStart(n[cut]) {
				cut--
			}
			n = n[:cut] + "…"
		}
		if i > 0 && (i >= summaryNames || b.Len()+len(n) > summaryBytes) {
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n)
		shown++
	}
	if shown < len(names) {
		fmt.Fprintf(&b, ", ... %d columns", len(names))
	}
	return b.String()
}
