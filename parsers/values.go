package parsers

import (
	"fmt"
	"math"
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

// StepFromString parses a step written as text.
func StepFromString(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%w: %d", ErrBadStep, n)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadStep, s)
	}
	return StepFromNumber(f)
}

// ValidName reports whether a metric or log name is acceptable to the mlop
// ingest, which rejects empty and whitespace-only names.
func ValidName(name string) bool {
	return strings.TrimSpace(name) != ""
}
