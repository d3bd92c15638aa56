package verify

import (
	"math"
	"strconv"
)

// Rules are what verification does not count as a difference, in the words
// the report and `mlop-agent verify -h` use. Each is implemented where the
// comment next to it points.
var Rules = []string{
	// samePoint; groupReader; compareMetric
	"A metric point is the row the server's deduplicated view keeps for its (metric, step): the raw row with the largest time. " +
		"Rows re-sent after a crash (duplicates in the raw table) are not differences.",
	// groupReader alts
	"When the source itself holds several rows of one (metric, step) at the same largest time with different " +
		"values, the server keeps whichever arrived last, which concurrent batches leave open: any of them is " +
		"accepted. Rows on the server sharing the largest time must all hold values the source allows.",
	// samePoint
	"Values are compared bit for bit, except that every NaN equals every NaN (the read API flags NaN, +Inf and -Inf " +
		"without their payload) and -0 equals 0 (the server's JavaScript writes -0 as 0).",
	// compareStatus
	"Status: with -c (sources a live `run` may still be following), a run the source finishes COMPLETED that the " +
		"server still has RUNNING is reported as a note, not a difference: the agent finishes runs only at the end of a " +
		"backfill, after an idle timeout or on an in-band status. Imports always finish their runs, so there it is a difference.",
	// diffConfig inherited
	"Config keys of a forked run that the server copied from the parent run (it does unless inheritConfig is false) " +
		"are not differences when they equal the parent's.",
	// diffConfig / jsonEqual
	"Config numbers are compared as the server's JavaScript holds them (64-bit floats); an empty config equals none.",
	// compare: not compared
	"Not compared: the run's loggerSettings and systemMetadata (the agent's and the server's own bookkeeping: " +
		"version, host name, source file), createdAt, updatedAt and statusUpdated (the server sets them itself), " +
		"the order of tags, notes.",
	// compareCounts
	"Console lines are counted: fewer on the server than in the source is a difference, more is a note — the " +
		"delivery guarantee allows one batch per run and endpoint to be stored twice after a crash. Files are " +
		"matched by log name, file name, step and size: a missing or unknown one is a difference, one registered " +
		"twice a note.",
	// compareCounts
	"String series and histogram rows are not checked: the read API has no endpoint for them (the report gives their counts).",
	// compareLogNames
	"Registered log names: the read API returns at most 1,000 per run; beyond that, names it did not return are " +
		"noted as not checkable rather than missing.",
}

// samePoint reports whether the server's value matches the source's, per
// Rules.
func samePoint(want, got float64) bool {
	switch {
	case math.IsNaN(want) || math.IsNaN(got):
		return math.IsNaN(want) && math.IsNaN(got)
	case want == 0 && got == 0:
		return true // ±0
	}
	return math.Float64bits(want) == math.Float64bits(got)
}

// formatValue writes a metric value for a report: the shortest decimal
// that reads back as the same float, or NaN, Infinity, -Infinity.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
