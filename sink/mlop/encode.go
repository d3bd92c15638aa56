package mlop

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/mlop-ai/mlop-agent/event"
)

// The NDJSON line encoders below build the bodies of /ingest/metrics,
// /ingest/data and /ingest/logs. They are on the agent's hot path (millions of
// points per second), so they append to a caller-owned buffer and allocate
// nothing but the buffer's growth. Their output is byte-for-byte what
// encoding/json (with SetEscapeHTML(false)) would produce for the same
// strings and finite numbers; the tests hold them to that.
//
// Non-finite floats have no JSON form. They are written as the strings "NaN",
// "Infinity" and "-Infinity", which the current ingest parses into real
// NaN/±Inf. (It also accepts the bare tokens, but only since it gained a
// sanitizer; the legacy ingest rejects both forms, see mlop-api.md §2.7.)

// AppendMetricLine appends one /ingest/metrics line,
//
//	{"time":T,"step":S,"data":{"name":value,...}}\n
//
// in the order of points. Validate the event with ValidateMetric first: this
// function does not check anything. Duplicate names are written as given;
// the server keeps one of them.
func AppendMetricLine(dst []byte, timeMS, step int64, points []event.Point) []byte {
	dst = append(dst, `{"time":`...)
	dst = strconv.AppendInt(dst, timeMS, 10)
	dst = append(dst, `,"step":`...)
	dst = strconv.AppendInt(dst, step, 10)
	dst = append(dst, `,"data":{`...)
	for i := range points {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, points[i].Name)
		dst = append(dst, ':')
		dst = appendFloat(dst, points[i].Value)
	}
	return append(dst, "}}\n"...)
}

// AppendDataLine appends one /ingest/data line,
//
//	{"time":T,"step":S,"dataType":"...","logName":"...","data":"..."}\n
//
// data is opaque to the server: the raw value of a string series, or a JSON
// document (HistogramJSON) encoded as a string.
func AppendDataLine(dst []byte, timeMS, step int64, dataType, logName, data string) []byte {
	dst = append(dst, `{"time":`...)
	dst = strconv.AppendInt(dst, timeMS, 10)
	dst = append(dst, `,"step":`...)
	dst = strconv.AppendInt(dst, step, 10)
	dst = append(dst, `,"dataType":`...)
	dst = appendString(dst, dataType)
	dst = append(dst, `,"logName":`...)
	dst = appendString(dst, logName)
	dst = append(dst, `,"data":`...)
	dst = appendString(dst, data)
	return append(dst, "}\n"...)
}

// AppendLogLine appends one /ingest/logs line,
//
//	{"time":T,"message":"...","lineNumber":N,"logType":"INFO"}\n
func AppendLogLine(dst []byte, timeMS int64, message string, lineNumber int64, logType string) []byte {
	dst = append(dst, `{"time":`...)
	dst = strconv.AppendInt(dst, timeMS, 10)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, message)
	dst = append(dst, `,"lineNumber":`...)
	dst = strconv.AppendInt(dst, lineNumber, 10)
	dst = append(dst, `,"logType":`...)
	dst = appendString(dst, logType)
	return append(dst, "}\n"...)
}

// appendFloat appends v as a JSON number the way encoding/json formats a
// float64 (plain decimal for 1e-6 <= |v| < 1e21, exponent form outside, the
// shortest representation that round-trips), or as one of the strings "NaN",
// "Infinity", "-Infinity".
func appendFloat(dst []byte, v float64) []byte {
	switch {
	case v != v: // NaN
		return append(dst, `"NaN"`...)
	case v > math.MaxFloat64:
		return append(dst, `"Infinity"`...)
	case v < -math.MaxFloat64:
		return append(dst, `"-Infinity"`...)
	}
	abs := math.Abs(v)
	if abs < 1<<53 && v != 0 && v == math.Trunc(v) {
		// Integral values (counters, byte counts, epochs) are common and
		// exact below 2^53; AppendInt writes the same digits as the
		// shortest 'f' format, three times faster.
		return strconv.AppendInt(dst, int64(v), 10)
	}
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, v, format, -1, 64)
	if format == 'e' {
		// encoding/json writes e-7, not e-07.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// safeASCII[b] is true for the ASCII bytes that go into a JSON string as they
// are: everything printable except '"' and '\\'.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendString appends s as a quoted JSON string, escaping exactly as
// encoding/json does without HTML escaping: '"', '\\', control characters
// (\b \f \n \r \t short forms, \u00XX otherwise), U+2028 and U+2029. Each
// byte of invalid UTF-8 becomes U+FFFD, so the output is always valid UTF-8.
// Runs of safe bytes are copied in one append.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if safeASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid in JSON but not in JavaScript source;
		// encoding/json escapes them, and so do we, to stay identical.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
