package mlop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/sink"
)

// standin starts the mlop stand-in (a test double of the server) and a
// client of it.
func standin(t *testing.T, readOnly bool) (*mlopfake.Server, *Client) {
	t.Helper()
	srv, err := mlopfake.Start(mlopfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c := newTestClient(t, Options{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(),
		APIKey: mlopfake.DefaultKey, Project: "p", Timeout: 5 * time.Second, InitialBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond, MaxAttempts: 3, ReadOnly: readOnly})
	return srv, c
}

func TestReadOnlyClientSendsNothingElse(t *testing.T) {
	srv, c := standin(t, true)
	ctx := context.Background()
	calls := map[string]error{
		"login":  func() error { _, err := c.Login(ctx); return err }(),
		"create": func() error { _, err := c.CreateRun(ctx, CreateRun{RunName: "r"}); return err }(),
		"status": c.UpdateStatus(ctx, 1, "COMPLETED", 0),
		"tags":   c.UpdateTags(ctx, 1, []string{"a"}),
		"config": c.UpdateConfig(ctx, 1, map[string]any{"a": 1}),
		"metric": c.SendMetrics(ctx, 1, "p", []byte("{}\n"), 1),
		"put":    c.PutFile(ctx, srv.S3URL()+"/x", strings.NewReader("x"), 1, "text/plain"),
	}
	for name, err := range calls {
		if !errors.Is(err, sink.ErrInvalid) || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s: %v, want a read-only refusal", name, err)
		}
	}
	if _, err := c.ValidateKey(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range srv.Requests() {
		if r.Method != http.MethodGet {
			t.Errorf("the server saw %s %s", r.Method, r.Path)
		}
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("%d requests, want the one GET", n)
	}
}

func TestValidateKeyAndDetails(t *testing.T) {
	srv, c := standin(t, true)
	ctx := context.Background()
	ki, err := c.ValidateKey(ctx)
	if err != nil || ki.OrganizationSlug != "test-org" || ki.UserID == "" || ki.OrganizationID == "" {
		t.Fatalf("validate: %+v %v", ki, err)
	}
	bad := newTestClient(t, Options{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(), APIKey: "mlpi_nope", MaxAttempts: 1})
	if _, err := bad.ValidateKey(ctx); !errors.Is(err, sink.ErrUnauthorized) {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := c.RunDetails(ctx, 424242); !errors.Is(err, sink.ErrNotFound) {
		t.Fatalf("unknown run: %v", err)
	}
	// A run written by a normal client, read back by the read-only one.
	w := newTestClient(t, Options{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(), APIKey: mlopfake.DefaultKey, Project: "p"})
	run, err := w.CreateRun(ctx, CreateRun{RunName: "alpha", ExternalID: "ext-1", Tags: []string{"t1"}, Config: map[string]any{"lr": 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddLogNames(ctx, run.ID, LogTypeMetric, []string{"train/loss"}); err != nil {
		t.Fatal(err)
	}
	d, err := c.RunDetails(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "alpha" || d.ExternalID == nil || *d.ExternalID != "ext-1" || fmt.Sprint(d.Tags) != "[t1]" ||
		fmt.Sprint(d.Config) != "map[lr:0.5]" || d.ProjectName != "p" || len(d.LogNames) != 1 || d.LogNames[0].LogGroup != "train" {
		t.Fatalf("details %+v", d)
	}
	l, err := c.ListRuns(ctx, RunListQuery{Project: "p", Search: "alph"})
	if err != nil || l.Total != 1 || len(l.Runs) != 1 || l.Runs[0].ID != run.ID {
		t.Fatalf("list: %+v %v", l, err)
	}
	h, err := c.StatusHistory(ctx, run.ID)
	if err != nil || len(h) != 1 || h[0].ToStatus != "RUNNING" || h[0].FromStatus != nil {
		t.Fatalf("history %+v %v", h, err)
	}
}

// TestMetricRowsPaging reads a series with duplicates through small pages:
// every row arrives once, whole steps only, in order, and the duplicates
// that straddle a page boundary are read again rather than cut.
func TestMetricRowsPaging(t *testing.T) {
	srv, c := standin(t, true)
	ctx := context.Background()
	w := newTestClient(t, Options{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(), APIKey: mlopfake.DefaultKey, Project: "p"})
	run, err := w.CreateRun(ctx, CreateRun{RunName: "r"})
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	const steps = 5000
	want := 0
	for s := 1; s <= steps; s++ {
		v := float64(s)
		if s%1000 == 0 {
			v = math.NaN()
		}
		body = fmt.Appendf(body, `{"time":%d,"step":%d,"data":{"m":%s}}`+"\n", 1700000000000+s, s, num(v))
		want++
		if s%7 == 0 { // a re-send: the same step again, later
			body = fmt.Appendf(body, `{"time":%d,"step":%d,"data":{"m":%d}}`+"\n", 1800000000000+s, s, -s)
			want++
		}
	}
	if err := w.SendMetrics(ctx, run.ID, "p", body, 0); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{97, 1000, MaxRawMetricsLimit} {
		var got []MetricRow
		pages := 0
		err := c.MetricRows(ctx, run.ID, "p", "m", 0, limit, func(rows []MetricRow) error {
			pages++
			if len(rows) > 0 && len(got) > 0 && rows[0].Step == got[len(got)-1].Step {
				t.Errorf("limit %d: step %d split across pages", limit, rows[0].Step)
			}
			got = append(got, rows...)
			return nil
		})
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		if len(got) != want {
			t.Fatalf("limit %d: %d rows, want %d", limit, len(got), want)
		}
		for i := 1; i < len(got); i++ {
			a, b := got[i-1], got[i]
			if b.Step < a.Step || (b.Step == a.Step && b.Time < a.Time) {
				t.Fatalf("limit %d: rows out of order at %d: %+v %+v", limit, i, a, b)
			}
		}
		if limit == 97 && pages < 50 {
			t.Errorf("limit 97: only %d pages", pages)
		}
		if v := got[len(got)-1]; v.Step != steps || !math.IsNaN(v.Value) || v.Time != 1700000000000+steps {
			t.Errorf("last row %+v", v)
		}
	}
	// From a step on.
	n := 0
	if err := c.MetricRows(ctx, run.ID, "p", "m", 4990, 0, func(rows []MetricRow) error { n += len(rows); return nil }); err != nil || n != 13 { // steps 4990..5000 and the re-sends of 4991 and 4998
		t.Errorf("from 4990: %d rows, %v", n, err)
	}
	// An error from fn ends the reading.
	stop := errors.New("stop")
	calls := 0
	if err := c.MetricRows(ctx, run.ID, "p", "m", 0, 100, func([]MetricRow) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("fn error: %v after %d calls", err, calls)
	}
}

func num(v float64) string {
	if math.IsNaN(v) {
		return `"NaN"`
	}
	return fmt.Sprint(v)
}

func TestMetricRowsStepTooDense(t *testing.T) {
	srv, c := standin(t, true)
	ctx := context.Background()
	w := newTestClient(t, Options{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(), APIKey: mlopfake.DefaultKey, Project: "p"})
	run, _ := w.CreateRun(ctx, CreateRun{RunName: "r"})
	var body []byte
	for i := 0; i < 20; i++ {
		body = fmt.Appendf(body, `{"time":%d,"step":3,"data":{"m":1}}`+"\n", i)
	}
	w.SendMetrics(ctx, run.ID, "p", body, 0)
	err := c.MetricRows(ctx, run.ID, "p", "m", 0, 10, func([]MetricRow) error { return nil })
	if !errors.Is(err, ErrStepTooDense) {
		t.Fatalf("got %v", err)
	}
}

// TestRawMetricsShapes decodes the field types the server may use and
// refuses what paging cannot trust.
func TestRawMetricsShapes(t *testing.T) {
	var body atomic.Value
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.Method != http.MethodGet || r.URL.Path != "/A/api/runs/metrics/raw" {
			w.WriteHeader(404)
			return
		}
		io.WriteString(w, body.Load().(string))
	})
	c := newTestClient(t, testOptions(f.srv.URL))
	ctx := context.Background()
	q := RawMetricsQuery{RunID: 5, Project: "p", LogName: "a/b"}
	body.Store(`{"truncated":true,"extra":{"x":[1,{"y":null}]},"rows":[
		{"logGroup":"a","step":"1","time":"2023-11-14 22:13:20.5","value":1.25,"nonFiniteFlags":0},
		{"step":2,"time":1700000000123,"value":0,"nonFiniteFlags":1,"unknown":"\"q\""},
		{"nonFiniteFlags":"2","value":null,"step":3,"time":"2023-11-14T22:13:20.001Z"},
		{"step":4,"time":"2023-11-14 22:13:20","value":-2e-8,"nonFiniteFlags":4},
		{"step":5,"time":"2023-11-14 22:13:20.999","value":-1.5e300}]}`)
	rows, trunc, err := c.RawMetrics(ctx, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !trunc || len(rows) != 5 {
		t.Fatalf("rows %v truncated %v", rows, trunc)
	}
	if r := rows[0]; r.Step != 1 || r.Time != 1700000000500 || r.Value != 1.25 {
		t.Errorf("row 0 %+v", r)
	}
	if r := rows[1]; r.Step != 2 || r.Time != 1700000000123 || !math.IsNaN(r.Value) {
		t.Errorf("row 1 %+v", r)
	}
	if r := rows[2]; r.Time != 1700000000001 || !math.IsInf(r.Value, 1) {
		t.Errorf("row 2 %+v", r)
	}
	if r := rows[3]; r.Time != 1700000000000 || !math.IsInf(r.Value, -1) {
		t.Errorf("row 3 %+v", r)
	}
	if r := rows[4]; r.Value != -1.5e300 {
		t.Errorf("row 4 %+v", r)
	}
	got := f.requests()[0]
	if got.RawQuery != "limit=50000&logName=a%2Fb&projectName=p&runId=5" || got.Header.Get("Authorization") != "Bearer "+testKey {
		t.Errorf("request %s %v", got.RawQuery, got.Header)
	}
	for _, bad := range []string{
		`{"rows":[]}`, `{"truncated":false}`, `{"rows":[{"step":"x"}],"truncated":false}`, `{"rows":[{"step":-1}],"truncated":false}`,
		`{"rows":[],"truncated":"yes"}`, `{"rows":[],"truncated":false} x`, `{"rows":[{"time":"yesterday"}],"truncated":false}`,
		`{"rows":[,],"truncated":false}`, `[]`,
	} {
		body.Store(bad)
		if _, _, err := c.RawMetrics(ctx, q, nil); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	// A truncated page must carry rows to page on.
	body.Store(`{"rows":[],"truncated":true}`)
	if err := c.MetricRows(ctx, 5, "p", "a/b", 0, 0, func([]MetricRow) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "truncated page without rows") {
		t.Errorf("empty truncated page: %v", err)
	}
	// Rows that go back in step make paging unsound.
	body.Store(`{"rows":[{"step":5,"time":1},{"step":4,"time":1}],"truncated":false}`)
	if err := c.MetricRows(ctx, 5, "p", "a/b", 0, 0, func([]MetricRow) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "did not order rows by step") {
		t.Errorf("unordered page: %v", err)
	}
}

// TestReadRetries: GETs are retried like every call.
func TestReadRetries(t *testing.T) {
	f := newFake(t, replies(`{"valid":true,"organization":{"id":"o","slug":"s"},"user":{"id":"u"}}`, 503, 429, 200))
	c := newTestClient(t, testOptions(f.srv.URL))
	if ki, err := c.ValidateKey(context.Background()); err != nil || ki.OrganizationSlug != "s" {
		t.Fatalf("%+v %v", ki, err)
	}
	if n := len(f.requests()); n != 3 {
		t.Fatalf("%d attempts", n)
	}
}

// TestCustomTransport: Options.Transport carries every request.
func TestCustomTransport(t *testing.T) {
	var seen []string
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.Method+" "+r.URL.Path)
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"organization":{"slug":"x"}}`)), Request: r}, nil
	})
	c := newTestClient(t, Options{APIURL: "http://capture.invalid", IngestURL: "http://capture.invalid", PyURL: "http://capture.invalid",
		APIKey: "mlpi_capture", Transport: rt})
	if slug, err := c.Login(context.Background()); err != nil || slug != "x" {
		t.Fatalf("%q %v", slug, err)
	}
	if fmt.Sprint(seen) != "[POST /api/slug]" {
		t.Fatalf("seen %v", seen)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestParseServerTime(t *testing.T) {
	for in, want := range map[string]int64{
		"1970-01-01 00:00:00":      0,
		"2023-11-14 22:13:20.5":    1700000000500,
		"2023-11-14 22:13:20.123":  1700000000123,
		"2023-11-14 22:13:20.1239": 1700000000123,
		"2000-02-29 12:00:00.000":  951825600000,
		"2023-11-14T22:13:20.001Z": 1700000000001,
		"1700000000123":            1700000000123,
	} {
		if got, err := ParseServerTime(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "2023-13-01 00:00:00", "2023-11-14 22:13:20.", "2023-11-14 22:13:20.x", "yesterday"} {
		if _, err := ParseServerTime(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
