package parsers

import (
	"errors"
	"slices"
	"testing"
)

// Every reason Reason gives is in the one table.
func TestReasonsInTable(t *testing.T) {
	for _, err := range []error{ErrTooLong, ErrNotObject, ErrBadStep, ErrBadTime, ErrBadValue, ErrBadRunName, ErrSyntax, errors.New("x")} {
		if r := Reason(err); !slices.Contains(BadReasons, r) {
			t.Errorf("Reason(%v) = %q, not in BadReasons", err, r)
		}
	}
}
