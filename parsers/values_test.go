package parsers

import (
	"errors"
	"math"
	"testing"
)

func TestTimeFromNumber(t *testing.T) {
	tests := []struct {
		in   float64
		want int64
	}{
		{1700000000, 1700000000000},
		{1700000000.123, 1700000000123},
		{1700000000123, 1700000000123},
		{1700000000123456, 1700000000123},
		{1700000000123456789, 1700000000123},
		{0, 0},
	}
	for _, tc := range tests {
		got, err := TimeFromNumber(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("TimeFromNumber(%v) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1), 1e30} {
		if _, err := TimeFromNumber(bad); !errors.Is(err, ErrBadTime) {
			t.Errorf("TimeFromNumber(%v) err = %v, want ErrBadTime", bad, err)
		}
	}
}

func TestTimeFromString(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"2023-11-14T22:13:20Z", 1700000000000},
		{"2023-11-14T22:13:20.5+00:00", 1700000000500},
		{"2023-11-14T23:13:20+01:00", 1700000000000},
		{"2020-02-14 21:53:05.788645", 1581717185788},
		{"1700000000", 1700000000000},
	}
	for _, tc := range tests {
		got, err := TimeFromString(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("TimeFromString(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "1969-01-01T00:00:00Z"} {
		if _, err := TimeFromString(bad); !errors.Is(err, ErrBadTime) {
			t.Errorf("TimeFromString(%q) err = %v, want ErrBadTime", bad, err)
		}
	}
}

func TestStep(t *testing.T) {
	for _, ok := range []struct {
		in   float64
		want int64
	}{{0, 0}, {3, 3}, {2.0, 2}, {1e15, 1e15}} {
		got, err := StepFromNumber(ok.in)
		if err != nil || got != ok.want {
			t.Errorf("StepFromNumber(%v) = %d, %v", ok.in, got, err)
		}
	}
	for _, bad := range []float64{-1, 2.5, math.NaN(), math.Inf(1), 1e19} {
		if _, err := StepFromNumber(bad); !errors.Is(err, ErrBadStep) {
			t.Errorf("StepFromNumber(%v) err = %v", bad, err)
		}
	}
	if got, err := StepFromString(" 42 "); err != nil || got != 42 {
		t.Errorf("StepFromString = %d, %v", got, err)
	}
	if got, err := StepFromString("42.0"); err != nil || got != 42 {
		t.Errorf("StepFromString(42.0) = %d, %v", got, err)
	}
	for _, bad := range []string{"-3", "1.5", "x", ""} {
		if _, err := StepFromString(bad); !errors.Is(err, ErrBadStep) {
			t.Errorf("StepFromString(%q) err = %v", bad, err)
		}
	}
}
