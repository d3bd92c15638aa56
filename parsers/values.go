package parsers

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Magnitude bounds for telling epoch seconds, milliseconds, microseconds and
// nanoseconds apart: any time after 1973 in one unit is larger than any time
// before 5138 in the next coarser one.
const (
	maxSeconds = 1e11
	maxMillis  = 1e14
	maxMicros  = 1e17
)

// TimeFromNumber converts an epoch timestamp in seconds, milliseconds,
// microseconds or nanoseconds (told apart by magnitude) to unix milliseconds.
func TimeFromNumber(v float64) (int64, error) {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
		return 0, fmt.Errorf("%w: %v", ErrBadTime, v)
	case v < maxSeconds:
		return int64(math.Round(v * 1e3)), nil
	case v < maxMillis:
		return int64(math.Round(v)), nil
	case v < maxMicros:
		return int64(math.Round(v / 1e3)), nil
	case v < math.MaxInt64:
		return int64(v / 1e6), nil
	default:
		return 0, fmt.Errorf("%w: %v", ErrBadTime, v)
	}
}

// timeLayouts are the textual forms accepted besides numbers: RFC 3339 and
// the "YYYY-MM-DD HH:MM:SS[.ffffff]" that Python's str(datetime) writes
// (taken as UTC when it carries no zone).
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// TimeFromString parses an RFC 3339 time, a Python datetime string, or an
// epoch number written as a string, to unix milliseconds.
func TimeFromString(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return TimeFromNumber(f)
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Before(time.Unix(0, 0)) {
				break
			}
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrBadTime, s)
}

// StepFromNumber accepts a step that is a non-negative integer, written as
// an integer or as an integral float (2.0).
func StepFromNumber(v float64) (int64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v != math.Trunc(v) || v >= 1<<63 {
		return 0, fmt.Errorf("%w: %v", ErrBadStep, v)
	}
	return int64(v), nil
}

// MaxStep is the largest step accepted: event steps are int64. (The
// server's column is UInt64; steps beyond 2^63-1 are refused as bad
// records rather than wrapped.)
const MaxStep = math.MaxInt64

// StepFromString parses a step written as text (a JSON number's literal, a
// CSV cell), exactly: 9007199254740993 stays itself instead of rounding to
// a float64's 9007199254740992. Integral decimals ("2.0", "1e3") are
// accepted; fractions, negatives and steps above MaxStep are bad steps.
func StepFromString(s string) (int64, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err == nil && n < 0:
		return 0, fmt.Errorf("%w: %d", ErrBadStep, n)
	case err == nil:
		return n, nil
	case errors.Is(err, strconv.ErrRange):
		if strings.HasPrefix(s, "-") {
			return 0, fmt.Errorf("%w: %s", ErrBadStep, s)
		}
		return 0, fmt.Errorf("%w: %s is above the largest step %d", ErrBadStep, s, int64(MaxStep))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadStep, s)
	}
	if math.Abs(f) < 1<<53 {
		return StepFromNumber(f) // a float64 holds every integer below 2^53 exactly
	}
	// Large: decide on the exact decimal, not on its float64 neighbour.
	r, ok := new(big.Rat).SetString(s)
	if !ok || r.Sign() < 0 || !r.IsInt() {
		return 0, fmt.Errorf("%w: %s", ErrBadStep, s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("%w: %s is above the largest step %d", ErrBadStep, s, int64(MaxStep))
	}
	return r.Num().Int64(), nil
}

// ValidName reports whether a metric or log name is acceptable to the mlop
// ingest, which rejects empty and whitespace-only names.
func ValidName(name string) bool {
	return strings.TrimSpace(name) != ""
}
