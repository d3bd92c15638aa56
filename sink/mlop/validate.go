package mlop

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/sink"
)

// The ingest parses every line into a strict model (mlop-api.md §2.7–2.9):
// unknown fields are denied, time/step/lineNumber are u64, metric data must
// be non-empty with non-blank names, dataType/logName/logType must be
// non-blank. A line it rejects fails the whole request with 422 after the
// lines before it were stored, so the agent validates every event before it
// encodes it and routes the rejects to its bad-record path instead.
//
// "Blank" means empty after trimming Unicode white space, which is what the
// server's Rust str::trim does.

// invalidError is a client-side validation failure. It matches
// sink.ErrInvalid; it is only built on the (rare) error path.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return sink.ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }

// ValidateMetric checks a KindMetrics event against the ingest's rules:
// non-negative time and step, at least one point, no blank point name. Every
// float value is acceptable (non-finite ones are sent as strings). The error
// matches sink.ErrInvalid.
func ValidateMetric(ev *event.Event) error {
	if ev == nil || ev.Kind != event.KindMetrics {
		return invalidf("metrics event: wrong kind %v", kindOf(ev))
	}
	if ev.Time < 0 {
		return invalidf("metrics event: time %d is negative", ev.Time)
	}
	if ev.Step < 0 {
		return invalidf("metrics event: step %d is negative", ev.Step)
	}
	if len(ev.Points) == 0 {
		return invalidf("metrics event: no points")
	}
	for i := range ev.Points {
		if blank(ev.Points[i].Name) {
			return invalidf("metrics event: point %d has a blank name", i)
		}
	}
	return nil
}

// ValidateData checks a KindData event: non-negative time and step, non-blank
// data type (ev.Type) and log name (ev.Name). The payload (ev.Text) may be any
// string. The error matches sink.ErrInvalid.
func ValidateData(ev *event.Event) error {
	if ev == nil || ev.Kind != event.KindData {
		return invalidf("data event: wrong kind %v", kindOf(ev))
	}
	if ev.Time < 0 {
		return invalidf("data event %q: time %d is negative", ev.Name, ev.Time)
	}
	if ev.Step < 0 {
		return invalidf("data event %q: step %d is negative", ev.Name, ev.Step)
	}
	if blank(ev.Type) {
		return invalidf("data event %q: blank data type", ev.Name)
	}
	if blank(ev.Name) {
		return invalidf("data event: blank log name")
	}
	return nil
}

// ValidateLog checks a KindLog event: non-negative time and line number
// (ev.Step), non-blank log type (ev.Type). The message (ev.Text) may be empty.
// The error matches sink.ErrInvalid.
func ValidateLog(ev *event.Event) error {
	if ev == nil || ev.Kind != event.KindLog {
		return invalidf("log event: wrong kind %v", kindOf(ev))
	}
	if ev.Time < 0 {
		return invalidf("log event: time %d is negative", ev.Time)
	}
	if ev.Step < 0 {
		return invalidf("log event: line number %d is negative", ev.Step)
	}
	if blank(ev.Type) {
		return invalidf("log event: blank log type")
	}
	return nil
}

func kindOf(ev *event.Event) string {
	if ev == nil {
		return "nil"
	}
	return ev.Kind.String()
}

// HistogramJSON encodes a histogram with bin edges (len(counts)+1 of them,
// strictly increasing, finite) and counts (finite, non-negative; densities are
// fine) as the JSON object pluto stores as a HISTOGRAM data value
// (mlop-api.md §2.8, pluto/data.py):
//
//	uniform edges: {"freq":[...],"maxFreq":N,"bins":{"min":a,"max":b,"num":n},"shape":"uniform","type":"Histogram","v":1}
//	other edges:   {"freq":[...],"maxFreq":N,"bins":[e0,e1,...],"shape":"generic","type":"Histogram","v":1}
//
// Edges count as uniform when every bin width is within 1e-6 (relative to the
// whole range) of the mean width; float edges computed as min+i*w rarely match
// exactly. The pluto SDK itself always sends "uniform" and loses real edges;
// the generic shape keeps them. The error matches sink.ErrInvalid.
func HistogramJSON(edges, counts []float64) (string, error) {
	if len(counts) == 0 {
		return "", invalidf("histogram: no bins")
	}
	if len(edges) != len(counts)+1 {
		return "", invalidf("histogram: %d edges for %d bins, want %d", len(edges), len(counts), len(counts)+1)
	}
	for i, e := range edges {
		if math.IsNaN(e) || math.IsInf(e, 0) {
			return "", invalidf("histogram: edge %d is %v", i, e)
		}
		if i > 0 && !(e > edges[i-1]) {
			return "", invalidf("histogram: edges are not increasing at %d (%v after %v)", i, e, edges[i-1])
		}
	}
	maxFreq := 0.0
	for i, c := range counts {
		if math.IsNaN(c) || math.IsInf(c, 0) || c < 0 {
			return "", invalidf("histogram: count %d is %v", i, c)
		}
		maxFreq = max(maxFreq, c)
	}

	lo, hi := edges[0], edges[len(edges)-1]
	uniform := true
	width := (hi - lo) / float64(len(counts))
	tol := 1e-6 * (hi - lo)
	for i := 1; i < len(edges); i++ {
		if math.Abs((edges[i]-edges[i-1])-width) > tol {
			uniform = false
			break
		}
	}

	b := make([]byte, 0, 64+24*(len(counts)+len(edges)))
	b = append(b, `{"freq":[`...)
	for i, c := range counts {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFloat(b, c)
	}
	b = append(b, `],"maxFreq":`...)
	b = appendFloat(b, maxFreq)
	if uniform {
		b = append(b, `,"bins":{"min":`...)
		b = appendFloat(b, lo)
		b = append(b, `,"max":`...)
		b = appendFloat(b, hi)
		b = append(b, `,"num":`...)
		b = strconv.AppendInt(b, int64(len(counts)), 10)
		b = append(b, `},"shape":"uniform"`...)
	} else {
		b = append(b, `,"bins":[`...)
		for i, e := range edges {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendFloat(b, e)
		}
		b = append(b, `],"shape":"generic"`...)
	}
	b = append(b, `,"type":"Histogram","v":1}`...)
	return string(b), nil
}
