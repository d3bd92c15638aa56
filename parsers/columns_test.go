package parsers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestHeaderSummary(t *testing.T) {
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("c%d", i)
	}
	long := strings.Repeat("é", 30) // 60 bytes
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"none", nil, "no columns"},
		{"all fit", []string{"step", "loss", "acc"}, "step, loss, acc"},
		{"empty name", []string{"step", "", "a"}, `step, "", a`},
		{"at most eight names", many[:9], "c0, c1, c2, c3, c4, c5, c6, c7, ... 9 columns"},
		{"hundreds", many, "c0, c1, c2, c3, c4, c5, c6, c7, ... 300 columns"},
		{"a long name is cut on a rune boundary", []string{long}, strings.Repeat("é", 20) + "…"},
		{
			"about 100 bytes of names",
			[]string{strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)},
			strings.Repeat("a", 40) + ", " + strings.Repeat("b", 40) + ", ... 3 columns",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := HeaderSummary(tc.in); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestColumnError(t *testing.T) {
	tests := []struct {
		err    *ColumnError
		msg    string
		reason string
	}{
		{
			&ColumnError{Role: "step", Column: "time/total_timesteps", Header: []string{"epoch", "loss"}},
			`step column "time/total_timesteps" not in the header (have: epoch, loss); no row of the file is read`,
			"bad_step",
		},
		{
			&ColumnError{Role: "step", Column: "Step", Header: []string{"step", "loss"}},
			`step column "Step" not in the header (have: step, loss); did you mean "step"?; no row of the file is read`,
			"bad_step",
		},
		{
			&ColumnError{Role: "run", Column: "seed", Header: []string{"step"}},
			`run column "seed" not in the header (have: step); no row of the file is read`,
			"bad_run",
		},
	}
	for _, tc := range tests {
		err := error(&RecordError{Line: 1, Err: tc.err})
		if got := tc.err.Error(); got != tc.msg {
			t.Errorf("message:\ngot  %s\nwant %s", got, tc.msg)
		}
		if !errors.Is(err, ErrUnusable) || Reason(err) != tc.reason {
			t.Errorf("%v: ErrUnusable %v, reason %s, want %s", err, errors.Is(err, ErrUnusable), Reason(err), tc.reason)
		}
	}
}
