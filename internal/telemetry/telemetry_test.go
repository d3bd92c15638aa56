package telemetry

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// series gathers tel's registry into "name{k="v",...}" -> value, with
// labels sorted. Histograms give name_count and name_sum entries.
func series(t *testing.T, tel *Telemetry) map[string]float64 {
	t.Helper()
	mfs, err := tel.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := func(suffix string) string {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				sort.Strings(ls)
				return mf.GetName() + suffix + "{" + strings.Join(ls, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key("_sum")] = m.GetHistogram().GetSampleSum()
			case dto.MetricType_UNTYPED:
				out[key("")] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// names returns the series keys of one metric.
func names(all map[string]float64, metric string) []string {
	var out []string
	for k := range all {
		if strings.HasPrefix(k, metric+"{") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func TestMethodsMoveTheirSeries(t *testing.T) {
	tests := []struct {
		name string
		do   func(tel *Telemetry)
		want map[string]float64
	}{
		{"records read", func(tel *Telemetry) {
			tel.RecordsRead("train", 3)
			tel.RecordsRead("train", 4)
			tel.RecordsRead("train", 0)
		},
			map[string]float64{`mlop_agent_records_read_total{source="train"}`: 7}},
		{"record rejected", func(tel *Telemetry) {
			tel.RecordRejected("train", "syntax")
			tel.RecordRejected("train", "syntax")
			tel.RecordRejected("train", "bad_step")
			tel.RecordRejected("train", "no such reason")
		}, map[string]float64{
			`mlop_agent_records_rejected_total{reason="syntax",source="train"}`:   2,
			`mlop_agent_records_rejected_total{reason="bad_step",source="train"}`: 1,
			`mlop_agent_records_rejected_total{reason="other",source="train"}`:    1,
			`mlop_agent_records_rejected_total{reason="too_long",source="train"}`: 0,
		}},
		{"value skipped", func(tel *Telemetry) {
			tel.ValueSkipped("eval", "null")
			tel.ValueSkipped("eval", "weird")
		}, map[string]float64{
			`mlop_agent_values_skipped_total{reason="null",source="eval"}`:  1,
			`mlop_agent_values_skipped_total{reason="other",source="eval"}`: 1,
			`mlop_agent_values_skipped_total{reason="bool",source="eval"}`:  0,
		}},
		{"files gauges", func(tel *Telemetry) {
			tel.FilesWatched("train", 12)
			tel.FilesOpen("train", 5)
			tel.FilesOpen("train", 4)
		}, map[string]float64{
			`mlop_agent_files_watched{source="train"}`: 12,
			`mlop_agent_files_open{source="train"}`:    4,
		}},
		{"lines and points sent", func(tel *Telemetry) {
			tel.LinesSent("metrics", 100)
			tel.LinesSent("logs", 7)
			tel.LinesSent("bogus", 1)
			tel.PointsSent(250)
		}, map[string]float64{
			`mlop_agent_lines_sent_total{endpoint="metrics"}`: 100,
			`mlop_agent_lines_sent_total{endpoint="logs"}`:    7,
			`mlop_agent_lines_sent_total{endpoint="other"}`:   1,
			`mlop_agent_points_sent_total{}`:                  250,
		}},
		{"requests by status", func(tel *Telemetry) {
			tel.Request("metrics", 200, 20*time.Millisecond)
			tel.Request("metrics", 200, 30*time.Millisecond)
			tel.Request("metrics", 503, time.Second)
			tel.Request("metrics", 0, 2*time.Second)
			tel.Request("create_run", 418, time.Millisecond)
			tel.Request("tags", 302, time.Millisecond)
			tel.Request("status", 999, time.Millisecond)
		}, map[string]float64{
			`mlop_agent_requests_total{endpoint="metrics",status="200"}`:    2,
			`mlop_agent_requests_total{endpoint="metrics",status="503"}`:    1,
			`mlop_agent_requests_total{endpoint="metrics",status="error"}`:  1,
			`mlop_agent_requests_total{endpoint="create_run",status="4xx"}`: 1,
			`mlop_agent_requests_total{endpoint="tags",status="3xx"}`:       1,
			`mlop_agent_requests_total{endpoint="status",status="other"}`:   1,
			`mlop_agent_request_duration_seconds_count{endpoint="metrics"}`: 4,
			`mlop_agent_request_duration_seconds_sum{endpoint="metrics"}`:   3.05,
		}},
		{"retries and failures", func(tel *Telemetry) {
			tel.Retry("data", 429)
			tel.Retry("data", -1)
			tel.Failure("data", 422)
		}, map[string]float64{
			`mlop_agent_request_retries_total{endpoint="data",status="429"}`:   1,
			`mlop_agent_request_retries_total{endpoint="data",status="error"}`: 1,
			`mlop_agent_request_failures_total{endpoint="data",status="422"}`:  1,
		}},
		{"batch size", func(tel *Telemetry) {
			tel.BatchSize("metrics", 5000, 1<<20)
			tel.BatchSize("metrics", 10, 1000)
		}, map[string]float64{
			`mlop_agent_batch_lines_count{endpoint="metrics"}`: 2,
			`mlop_agent_batch_lines_sum{endpoint="metrics"}`:   5010,
			`mlop_agent_batch_bytes_count{endpoint="metrics"}`: 2,
			`mlop_agent_batch_bytes_sum{endpoint="metrics"}`:   1<<20 + 1000,
		}},
		{"rejected and dead-lettered", func(tel *Telemetry) {
			tel.LinesRejected("data", 3)
			tel.LinesRejected("tags", 1)
			tel.DeadLettered(4)
		}, map[string]float64{
			`mlop_agent_lines_rejected_total{endpoint="data"}`: 3,
			`mlop_agent_lines_rejected_total{endpoint="tags"}`: 1,
			`mlop_agent_dead_letter_entries_total{}`:           4,
		}},
		{"runs", func(tel *Telemetry) {
			tel.RunsActive(3)
			tel.RunCreated(false)
			tel.RunCreated(false)
			tel.RunCreated(true)
			tel.RunFinished("COMPLETED")
			tel.RunFinished("failed")
			tel.RunFinished("RUNNING")
		}, map[string]float64{
			`mlop_agent_runs_active{}`:                           3,
			`mlop_agent_runs_created_total{resumed="false"}`:     2,
			`mlop_agent_runs_created_total{resumed="true"}`:      1,
			`mlop_agent_runs_finished_total{status="completed"}`: 1,
			`mlop_agent_runs_finished_total{status="failed"}`:    1,
			`mlop_agent_runs_finished_total{status="cancelled"}`: 0,
			`mlop_agent_runs_finished_total{status="other"}`:     1,
		}},
		{"checkpoint", func(tel *Telemetry) {
			tel.CheckpointSaved(t0, 3*time.Millisecond)
			tel.CheckpointFailed()
		}, map[string]float64{
			`mlop_agent_checkpoint_saves_total{}`:                 1,
			`mlop_agent_checkpoint_failures_total{}`:              1,
			`mlop_agent_checkpoint_save_duration_seconds_count{}`: 1,
			`mlop_agent_checkpoint_save_duration_seconds_sum{}`:   0.003,
		}},
		{"buffer", func(tel *Telemetry) {
			tel.BufferLimit(64 << 20)
			tel.BufferBytes(1234)
		}, map[string]float64{
			`mlop_agent_buffer_bytes{}`:       1234,
			`mlop_agent_buffer_limit_bytes{}`: 64 << 20,
		}},
		{"build info", func(tel *Telemetry) {}, map[string]float64{
			`mlop_agent_build_info{version="v1.2.3"}`: 1,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tel := New(Options{Version: "v1.2.3", Now: newClock(t0).Now})
			tc.do(tel)
			got := series(t, tel)
			for k, want := range tc.want {
				g, ok := got[k]
				if !ok {
					t.Errorf("series %s missing; have %v", k, names(got, k[:strings.IndexByte(k, '{')]))
					continue
				}
				if diff := g - want; diff > 1e-9 || diff < -1e-9 {
					t.Errorf("%s = %v, want %v", k, g, want)
				}
			}
		})
	}
}

func TestLazySeriesAppearOnlyWhenUsed(t *testing.T) {
	tel := New(Options{})
	tel.Request("metrics", 200, time.Millisecond)
	got := series(t, tel)
	if n := names(got, "mlop_agent_requests_total"); len(n) != 1 {
		t.Errorf("requests_total series = %v, want only the one used", n)
	}
	if n := names(got, "mlop_agent_request_retries_total"); len(n) != 0 {
		t.Errorf("retries series = %v, want none", n)
	}
}

func TestConfiguredSourcesStartAtZero(t *testing.T) {
	tel := New(Options{Sources: []string{"train", "eval"}})
	got := series(t, tel)
	for _, k := range []string{
		`mlop_agent_records_read_total{source="train"}`,
		`mlop_agent_records_read_total{source="eval"}`,
		`mlop_agent_records_rejected_total{reason="syntax",source="eval"}`,
		`mlop_agent_lag_bytes{source="train"}`,
		`mlop_agent_streams_behind{source="eval"}`,
	} {
		if v, ok := got[k]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0 present", k, v, ok)
		}
	}
}

func TestStatusLabelIsBounded(t *testing.T) {
	tel := New(Options{})
	for code := -5; code < 1000; code++ {
		tel.Request("metrics", code, time.Millisecond)
		tel.Retry("metrics", code)
		tel.Failure("metrics", code)
	}
	got := series(t, tel)
	n := len(names(got, "mlop_agent_requests_total"))
	if n > nStatuses {
		t.Errorf("requests_total has %d series, want at most %d", n, nStatuses)
	}
	for _, k := range names(got, "mlop_agent_requests_total") {
		if !regexp.MustCompile(`status="([0-9]{3}|[1-5]xx|error|other)"`).MatchString(k) {
			t.Errorf("unexpected status label in %s", k)
		}
	}
	if v := got[`mlop_agent_requests_total{endpoint="metrics",status="error"}`]; v != 6 {
		t.Errorf("status error count = %v, want 6 (codes -5..0)", v)
	}
	// Every 4xx code that is not a known code lands on the 4xx class.
	known4xx := 0
	for _, c := range knownCodes {
		if c/100 == 4 {
			known4xx++
		}
	}
	if v, want := got[`mlop_agent_requests_total{endpoint="metrics",status="4xx"}`], float64(100-known4xx); v != want {
		t.Errorf("status 4xx count = %v, want %v", v, want)
	}
	if v := got[`mlop_agent_requests_total{endpoint="metrics",status="422"}`]; v != 1 {
		t.Errorf("status 422 count = %v, want 1", v)
	}
}

func TestSourceLabelIsBounded(t *testing.T) {
	tel := New(Options{})
	for i := 0; i < 3*maxSources; i++ {
		tel.RecordsRead(fmt.Sprintf("src-%d", i), 1)
	}
	got := series(t, tel)
	keys := names(got, "mlop_agent_records_read_total")
	if len(keys) != maxSources {
		t.Errorf("records_read_total has %d series, want %d", len(keys), maxSources)
	}
	other := got[`mlop_agent_records_read_total{source="_other"}`]
	if want := float64(3*maxSources - (maxSources - 1)); other != want {
		t.Errorf("overflow source count = %v, want %v", other, want)
	}
	// A name that overflowed stays on the overflow series; a name that
	// got its own label keeps it.
	tel.RecordsRead(fmt.Sprintf("src-%d", 3*maxSources-1), 1)
	tel.RecordsRead("src-0", 1)
	got = series(t, tel)
	if v := got[`mlop_agent_records_read_total{source="_other"}`]; v != other+1 {
		t.Errorf("overflow after repeat = %v, want %v", v, other+1)
	}
	if v := got[`mlop_agent_records_read_total{source="src-0"}`]; v != 2 {
		t.Errorf("src-0 = %v, want 2", v)
	}
	// The alias map stays bounded too.
	for i := 0; i < 2*maxSourceNames; i++ {
		tel.RecordsRead(fmt.Sprintf("more-%d", i), 1)
	}
	if n := len(*tel.sources.Load()); n > maxSourceNames+1 {
		t.Errorf("source map holds %d names, want at most %d", n, maxSourceNames+1)
	}
}

func TestLagAggregatesPerSource(t *testing.T) {
	tel := New(Options{Sources: []string{"idle"}})
	var lags []Lag
	for i := 0; i < 10000; i++ {
		src := "a"
		if i%2 == 1 {
			src = "b"
		}
		l := Lag{Source: src, Path: fmt.Sprintf("/runs/%d/metrics.jsonl", i)}
		if i%4 < 2 { // 2,500 streams of each source are behind
			l.BytesBehind = 100
			l.SecondsBehind = float64(i) / 100
		}
		lags = append(lags, l)
	}
	calls := 0
	tel.SetLagFunc(func() []Lag { calls++; return lags })
	got := series(t, tel)
	if calls != 1 {
		t.Errorf("lag func called %d times per scrape, want 1", calls)
	}
	for _, m := range []string{"mlop_agent_lag_bytes", "mlop_agent_lag_seconds", "mlop_agent_streams_behind"} {
		if n := names(got, m); len(n) != 3 {
			t.Errorf("%s series = %v, want one per source (a, b, idle)", m, n)
		}
	}
	want := map[string]float64{
		`mlop_agent_lag_bytes{source="a"}`:         2500 * 100,
		`mlop_agent_lag_bytes{source="b"}`:         2500 * 100,
		`mlop_agent_lag_seconds{source="a"}`:       99.96, // i = 9996
		`mlop_agent_lag_seconds{source="b"}`:       99.97, // i = 9997
		`mlop_agent_streams_behind{source="a"}`:    2500,
		`mlop_agent_streams_behind{source="b"}`:    2500,
		`mlop_agent_lag_bytes{source="idle"}`:      0,
		`mlop_agent_lag_seconds{source="idle"}`:    0,
		`mlop_agent_streams_behind{source="idle"}`: 0,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	for k := range got {
		if strings.Contains(k, "/runs/") {
			t.Fatalf("a path leaked into a label: %s", k)
		}
	}

	tel.SetLagFunc(nil)
	if v := series(t, tel)[`mlop_agent_lag_bytes{source="a"}`]; v != 0 {
		t.Errorf("lag after SetLagFunc(nil) = %v, want 0", v)
	}
}

func TestCheckpointAgeGrowsWithTime(t *testing.T) {
	clk := newClock(t0)
	tel := New(Options{Now: clk.Now})
	age := func() float64 { return series(t, tel)["mlop_agent_checkpoint_age_seconds{}"] }

	clk.Advance(7 * time.Second)
	if got := age(); got != 7 {
		t.Errorf("age before any save = %v, want 7 (since start)", got)
	}
	tel.CheckpointSaved(clk.Now(), time.Millisecond)
	if got := age(); got != 0 {
		t.Errorf("age right after a save = %v, want 0", got)
	}
	clk.Advance(5 * time.Second)
	if got := age(); got != 5 {
		t.Errorf("age 5 s after a save = %v, want 5", got)
	}
	tel.CheckpointFailed()
	clk.Advance(10 * time.Second)
	if got := age(); got != 15 {
		t.Errorf("age after a failed save = %v, want 15", got)
	}
	// A save reported late (older than the newest) does not make it younger.
	tel.CheckpointSaved(clk.Now().Add(-time.Minute), time.Millisecond)
	if got := age(); got != 15 {
		t.Errorf("age after a stale save report = %v, want 15", got)
	}
}

func TestNilTelemetryIsANoOp(t *testing.T) {
	var tel *Telemetry
	tel.RecordsRead("s", 1)
	tel.RecordRejected("s", "syntax")
	tel.ValueSkipped("s", "null")
	tel.FilesWatched("s", 1)
	tel.FilesOpen("s", 1)
	tel.LinesSent("metrics", 1)
	tel.PointsSent(1)
	tel.Request("metrics", 200, time.Second)
	tel.Retry("metrics", 500)
	tel.Failure("metrics", 400)
	tel.BatchSize("metrics", 1, 1)
	tel.LinesRejected("metrics", 1)
	tel.DeadLettered(1)
	tel.RunsActive(1)
	tel.RunCreated(true)
	tel.RunFinished("COMPLETED")
	tel.CheckpointSaved(time.Now(), time.Second)
	tel.CheckpointFailed()
	tel.BufferBytes(1)
	tel.BufferLimit(1)
	tel.SetLagFunc(func() []Lag { return nil })
	if h := tel.Handler(); h != nil {
		t.Errorf("nil Telemetry Handler = %v, want nil", h)
	}
	if _, err := tel.Listen("127.0.0.1:0", Hooks{}); err != ErrNoTelemetry {
		t.Errorf("nil Telemetry Listen error = %v, want ErrNoTelemetry", err)
	}
}

// TestNamesAndLint exercises every method, then checks every agent metric
// name follows the house pattern and passes the Prometheus linter.
func TestNamesAndLint(t *testing.T) {
	tel := New(Options{Version: "dev", Sources: []string{"s"}})
	tel.RecordsRead("s", 1)
	tel.RecordRejected("s", "syntax")
	tel.ValueSkipped("s", "null")
	tel.FilesWatched("s", 1)
	tel.FilesOpen("s", 1)
	tel.LinesSent("metrics", 1)
	tel.PointsSent(1)
	tel.Request("metrics", 200, time.Second)
	tel.Retry("metrics", 500)
	tel.Failure("metrics", 400)
	tel.BatchSize("metrics", 1, 1)
	tel.LinesRejected("metrics", 1)
	tel.DeadLettered(1)
	tel.RunsActive(1)
	tel.RunCreated(true)
	tel.RunFinished("COMPLETED")
	tel.CheckpointSaved(time.Now(), time.Second)
	tel.CheckpointFailed()
	tel.BufferBytes(1)
	tel.BufferLimit(1)
	tel.SetLagFunc(func() []Lag { return []Lag{{Source: "s", BytesBehind: 1}} })

	mfs, err := tel.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	pattern := regexp.MustCompile(`^mlop_agent_[a-z]+(_[a-z]+)*$`)
	for _, mf := range mfs {
		n := mf.GetName()
		if !strings.HasPrefix(n, "mlop_agent_") {
			continue
		}
		ours = append(ours, n)
		if !pattern.MatchString(n) {
			t.Errorf("metric name %q does not match %s", n, pattern)
		}
		if isCounter := mf.GetType() == dto.MetricType_COUNTER; isCounter != strings.HasSuffix(n, "_total") {
			t.Errorf("metric %q: counter=%v but _total suffix=%v", n, isCounter, !isCounter)
		}
	}
	if len(ours) != len(metricTable) {
		t.Errorf("agent metrics gathered = %d %v, want the %d of the documented table", len(ours), ours, len(metricTable))
	}
	for _, n := range metricTable {
		if !contains(ours, n) {
			t.Errorf("documented metric %s not gathered", n)
		}
	}
	problems, err := testutil.GatherAndLint(tel.reg, ours...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// metricTable is the list of agent metrics the README documents.
var metricTable = []string{
	"mlop_agent_records_read_total", "mlop_agent_records_rejected_total", "mlop_agent_values_skipped_total",
	"mlop_agent_files_watched", "mlop_agent_files_open",
	"mlop_agent_lines_sent_total", "mlop_agent_points_sent_total", "mlop_agent_requests_total",
	"mlop_agent_request_duration_seconds", "mlop_agent_request_retries_total", "mlop_agent_request_failures_total",
	"mlop_agent_batch_lines", "mlop_agent_batch_bytes", "mlop_agent_lines_rejected_total",
	"mlop_agent_dead_letter_entries_total",
	"mlop_agent_runs_active", "mlop_agent_runs_created_total", "mlop_agent_runs_finished_total",
	"mlop_agent_checkpoint_age_seconds", "mlop_agent_checkpoint_save_duration_seconds",
	"mlop_agent_checkpoint_saves_total", "mlop_agent_checkpoint_failures_total",
	"mlop_agent_buffer_bytes", "mlop_agent_buffer_limit_bytes",
	"mlop_agent_lag_bytes", "mlop_agent_lag_seconds", "mlop_agent_streams_behind",
	"mlop_agent_build_info",
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestConcurrentUse drives every path from many goroutines; -race checks
// the lazy resolution and the copy-on-write source map.
func TestConcurrentUse(t *testing.T) {
	tel := New(Options{})
	tel.SetLagFunc(func() []Lag { return []Lag{{Source: "s0", BytesBehind: 1}} })
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				src := fmt.Sprintf("s%d", i%5)
				tel.RecordsRead(src, 1)
				tel.RecordRejected(src, "syntax")
				tel.Request(endpointNames[i%nEndpoints], 200+i%5, time.Millisecond)
				tel.BatchSize("metrics", i, i)
				tel.CheckpointSaved(time.Unix(int64(i), 0), time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if _, err := tel.reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	got := series(t, tel)
	var total float64
	for _, k := range names(got, "mlop_agent_records_read_total") {
		total += got[k]
	}
	if total != 8*500 {
		t.Errorf("records read total = %v, want %d", total, 8*500)
	}
}
