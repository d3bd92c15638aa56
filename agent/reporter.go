package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/telemetry"
	"github.com/mlop-ai/mlop-agent/sink"
)

// reporter is where everything the agent could not deliver, or chose not
// to, is counted, logged and dead-lettered: bad records, refused rows,
// skipped values, unreadable inputs. It owns the statistics, the
// telemetry hooks, the dead-letter writer and the list of failed inputs;
// each has its own lock.
type reporter struct {
	log   *slog.Logger
	tel   *telemetry.Telemetry // nil-safe
	stats *Stats
	dlq   *deadLetter // nil-safe
	fails failures
	// notImported is what stream formats found and did not import, and
	// what each stream skipped, item by item (for the report).
	notImported notImported

	badMu    sync.Mutex
	badLast  time.Time
	badCount int   // bad records logged in the current second
	badQuiet int64 // bad records not logged in the current second
}

// maxBadLogsPerSecond caps the bad-record lines logged per second.
const maxBadLogsPerSecond = 20

// badRecord counts a record that could not be used, dead-letters it and
// logs it (rate-limited). source names the configured source, path:line
// the record.
func (rp *reporter) badRecord(source, path string, line int64, reason string, err error, data []byte) {
	rp.stats.badRecord(reason)
	rp.tel.RecordRejected(source, reason)
	rp.dlq.write(deadLetterEntry{Source: source, Path: path, Line: line, Reason: reason, Error: err.Error(), Data: string(data)})
	if rp.allowLog() {
		rp.log.Warn("bad record skipped", "source", source, "file", fmt.Sprintf("%s:%d", path, line), "reason", reason, "error", err)
	}
}

// warning counts what a stream format skipped, logs it (rate-limited) and
// dead-letters it.
func (rp *reporter) warning(source, file string, seq int64, reason, detail, where string) {
	rp.stats.badRecord(reason)
	rp.tel.RecordRejected(source, reason) // a format's own reason: "other" in telemetry
	rp.dlq.write(deadLetterEntry{Source: source, Path: file, Line: seq, Reason: reason, Error: detail})
	if rp.allowLog() {
		rp.log.Warn("skipped", "source", source, "at", where)
	}
}

// allowLog applies the per-second cap on bad-record lines.
func (rp *reporter) allowLog() bool {
	rp.badMu.Lock()
	defer rp.badMu.Unlock()
	if now := time.Now(); now.Sub(rp.badLast) >= time.Second {
		if rp.badQuiet > 0 {
			rp.log.Warn("bad records not logged in the last second", "count", rp.badQuiet)
		}
		rp.badLast, rp.badCount, rp.badQuiet = now, 0, 0
	}
	rp.badCount++
	if rp.badCount > maxBadLogsPerSecond {
		rp.badQuiet++
		return false
	}
	return true
}

// refused counts rows the tracker refused for good (or the agent gave up
// on), dead-letters each and logs once.
func (rp *reporter) refused(r *run, ep sink.Endpoint, rows []string, err error, why string) {
	n := max(len(rows), 1)
	rp.stats.reject(n, fmt.Sprintf("run %q: %s: %v", r.name, ep, err))
	rp.tel.LinesRejected(endpointOf(ep), n)
	if st := statusOf(err); st > 0 {
		rp.tel.Failure(endpointOf(ep), st)
	}
	rp.log.Error(why, "run", r.name, "kind", ep.String(), "rows", n, "error", err)
	for _, row := range rows {
		e := deadLetterEntry{Run: r.key, Kind: ep.String(), Reason: "rejected", Error: err.Error(), Data: row}
		if ep == sink.Files {
			e.Path, e.Data = row, ""
		}
		rp.dlq.write(e)
	}
}

// refusedOp counts a control operation the tracker refused for good.
func (rp *reporter) refusedOp(r *run, op string, err error) {
	rp.log.Error("server refused a run update; skipping it", "op", op, "run", r.name, "error", err)
	rp.stats.reject(1, fmt.Sprintf("run %q: %s: %v", r.name, op, err))
	rp.dlq.write(deadLetterEntry{Run: r.key, Kind: op, Reason: "rejected", Error: err.Error()})
}

// unreadable records an input that could not be read at all.
func (rp *reporter) unreadable(source, path string, err error) {
	rp.fails.add(Failure{Source: source, Path: path, Error: err.Error()})
}

// endpointOf names an endpoint for the telemetry labels.
func endpointOf(ep sink.Endpoint) string {
	switch ep {
	case sink.Metrics:
		return telemetry.EndpointMetrics
	case sink.Data:
		return telemetry.EndpointData
	case sink.Logs:
		return telemetry.EndpointLogs
	default:
		return telemetry.EndpointFiles
	}
}

// statusOf extracts the HTTP status of a sink error (0 if none).
func statusOf(err error) int {
	var se *sink.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// failures are inputs that could not be read at all; it owns its lock.
type failures struct {
	mu   sync.Mutex
	list []Failure
}

func (f *failures) add(x Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, have := range f.list {
		if have.Source == x.Source && have.Path == x.Path {
			return
		}
	}
	f.list = append(f.list, x)
}

func (f *failures) snapshot() []Failure {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Failure(nil), f.list...)
}
