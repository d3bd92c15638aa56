package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a length of time written in Go syntax: "30s", "500ms",
// "1m30s", "2h". A bare number is rejected (except "0") because "30" is
// ambiguous. The word "never" is accepted and decodes to Never; only
// settings documented as accepting it (sources[].idle_timeout) allow it,
// validation rejects it elsewhere.
//
// Convert with time.Duration(d) after checking IsNever.
type Duration time.Duration

// Never is the Duration spelled "never": the behaviour it controls is
// disabled. It is the smallest int64 so that no real duration equals it.
const Never = Duration(math.MinInt64)

// IsNever reports whether d was written as "never".
func (d Duration) IsNever() bool { return d == Never }

// String returns d in Go syntax, or "never".
func (d Duration) String() string {
	if d == Never {
		return "never"
	}
	return time.Duration(d).String()
}

// MarshalText implements encoding.TextMarshaler so that re-serialised
// configs (YAML and JSON) show "30s" rather than nanoseconds.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDuration parses the Duration syntax described on Duration.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "never" {
		return Never, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalidf("invalid duration %q: want Go syntax such as 30s, 500ms or 1m30s", s)
	}
	return Duration(v), nil
}

// ByteSize is an amount of bytes. It is written as a plain integer (1024) or
// a number with a unit: binary KiB, MiB, GiB, TiB (powers of 1024) or decimal
// KB, MB, GB, TB (powers of 1000), and B. Units are case-insensitive, a space
// may separate them from the number, and the number may have a fraction
// ("1.5MiB"); the result is rounded down to whole bytes. The single letters
// K, M, G and T are rejected as ambiguous.
type ByteSize int64

type byteUnit struct {
	name string
	mult int64
}

// byteUnits is ordered for String: binary first so that round powers of two
// print as KiB/MiB, then decimal.
var byteUnits = []byteUnit{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
}

// String returns b with the largest unit that divides it exactly (binary
// preferred), or as a plain number of bytes.
func (b ByteSize) String() string {
	if b <= 0 {
		return strconv.FormatInt(int64(b), 10)
	}
	for _, u := range byteUnits {
		if int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// ParseByteSize parses the ByteSize syntax described on ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	orig := s
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	if num == "" {
		return 0, invalidf("invalid size %q: want a number of bytes such as 1024, 64KiB, 1MiB or 10MB", orig)
	}
	mult := int64(1)
	if unit != "" {
		found := false
		for _, u := range append(byteUnits, byteUnit{"B", 1}) {
			if strings.EqualFold(unit, u.name) {
				mult, found = u.mult, true
				break
			}
		}
		if !found {
			switch strings.ToUpper(unit) {
			case "K", "M", "G", "T":
				u := strings.ToUpper(unit)
				return 0, invalidf("invalid size %q: unit %s is ambiguous, write %siB (powers of 1024) or %sB (powers of 1000)", orig, unit, u, u)
			}
			return 0, invalidf("invalid size %q: unknown unit %q (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", orig, unit)
		}
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, invalidf("invalid size %q: too large", orig)
		}
		return ByteSize(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, invalidf("invalid size %q: malformed number", orig)
	}
	v := math.Floor(f * float64(mult))
	if v >= math.MaxInt64 {
		return 0, invalidf("invalid size %q: too large", orig)
	}
	return ByteSize(v), nil
}

// Secret holds a credential (the API key). Every way of printing it — the
// fmt verbs including %#v, String, JSON, text and YAML marshalling, slog —
// shows "[REDACTED]" (or nothing when it is empty), so a config can be
// logged or dumped without leaking the key. Reveal returns the value for the
// one place that needs it: the Authorization header.
type Secret string

const redacted = "[REDACTED]"

// Reveal returns the secret itself. Never log or format the result.
func (s Secret) Reveal() string { return string(s) }

// String returns "[REDACTED]", or "" when the secret is empty so that an
// unset key stays recognisable.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer with the redacted form.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format implements fmt.Formatter so that every verb, %#v and %x included,
// prints the redacted form.
func (s Secret) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// MarshalText implements encoding.TextMarshaler with the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON implements json.Marshaler with the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// LogValue implements slog.LogValuer with the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
