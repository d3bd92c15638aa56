package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// A scenario writes runs through a client. It runs twice: against the
// stand-in (the "migration") and against a Recorder (the expectation), so
// the two see the same requests — as the agent's two runs over one source
// would send them.
type scenario func(ctx context.Context, c *mlop.Client) error

func client(t testing.TB, opts mlop.Options) *mlop.Client {
	t.Helper()
	opts.Timeout, opts.InitialBackoff, opts.MaxBackoff, opts.MaxAttempts = 10*time.Second, time.Millisecond, 10*time.Millisecond, 3
	c, err := mlop.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func migrate(t testing.TB, srv *mlopfake.Server, sc scenario) {
	t.Helper()
	c := client(t, mlop.Options{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(), APIKey: mlopfake.DefaultKey, Project: "proj"})
	if err := sc(context.Background(), c); err != nil {
		t.Fatalf("migration: %v", err)
	}
	if rej := srv.Rejected(); len(rej) > 0 {
		t.Fatalf("the stand-in rejected %+v", rej)
	}
}

func capture(t testing.TB, sc scenario) *Capture {
	t.Helper()
	rec := NewRecorder(t.TempDir())
	c := client(t, mlop.Options{APIURL: CaptureAPIURL, IngestURL: CaptureIngestURL, PyURL: CapturePyURL, APIKey: "mlpi_capture",
		Project: "proj", Transport: rec})
	if err := sc(context.Background(), c); err != nil {
		t.Fatalf("capture: %v", err)
	}
	cp, err := rec.Finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	return cp
}

func check(t *testing.T, srv *mlopfake.Server, cp *Capture, opts Options) (*Report, error) {
	t.Helper()
	c := client(t, mlop.Options{APIURL: srv.APIURL(), IngestURL: srv.IngestURL(), PyURL: srv.PyURL(), APIKey: mlopfake.DefaultKey, ReadOnly: true})
	before := len(srv.Requests())
	rep, err := Run(context.Background(), c, cp, opts)
	for _, r := range srv.Requests()[before:] {
		if r.Method != http.MethodGet || r.Service != mlopfake.ServiceAPI {
			t.Errorf("verification sent %s %s to %s", r.Method, r.Path, r.Service)
		}
	}
	return rep, err
}

func metricBody(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

func line(time int64, step int, kv ...any) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"time":%d,"step":%d,"data":{`, time, step)
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", kv[i])
		switch v := kv[i+1].(type) {
		case float64:
			switch {
			case math.IsNaN(v):
				b.WriteString(`"NaN"`)
			case math.IsInf(v, 1):
				b.WriteString(`"Infinity"`)
			case math.IsInf(v, -1):
				b.WriteString(`"-Infinity"`)
			default:
				fmt.Fprint(&b, v)
			}
		default:
			fmt.Fprint(&b, v)
		}
	}
	b.WriteString("}}")
	return b.String()
}

// richRun is a run with everything verification looks at, a fork of it,
// and a third run.
func richRun(ctx context.Context, c *mlop.Client) error {
	a, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "alpha", ExternalID: "ext-alpha", Tags: []string{"t1", "t2"},
		Config: map[string]any{"lr": 0.1, "nested": map[string]any{"x": 1, "y": []any{"a", 2}}}, CreatedAt: 1700000000000})
	if err != nil {
		return err
	}
	steps := []string{
		line(1700000000001, 1, "train/loss", 1.5, "acc", 0.25),
		line(1700000000002, 2, "train/loss", math.NaN(), "acc", math.Inf(1)),
		line(1700000000003, 3, "train/loss", 0.125, "acc", math.Inf(-1)),
		line(1700000000004, 4, "train/loss", math.Copysign(0, -1)),
		line(1700000000005, 5, "train/loss", 1e-300, "acc", 1),
		line(1700000000006, 6, "train/loss", 123456789.125),
	}
	for _, b := range [][]byte{metricBody(steps[:3]...), metricBody(steps[3:]...), metricBody(steps[1:3]...)} { // the last: a re-send
		if err := c.SendMetrics(ctx, a.ID, "proj", b, 0); err != nil {
			return err
		}
	}
	for _, reg := range []struct {
		typ   string
		names []string
	}{{mlop.LogTypeMetric, []string{"train/loss", "acc"}}, {mlop.LogTypeData, []string{"phase"}}, {mlop.LogTypeFile, []string{"files/notes"}}} {
		if err := c.AddLogNames(ctx, a.ID, reg.typ, reg.names); err != nil {
			return err
		}
	}
	if err := c.UpdateConfig(ctx, a.ID, map[string]any{"nested": map[string]any{"z": "deep"}, "when": "2024-01-02"}); err != nil {
		return err
	}
	if err := c.UpdateTags(ctx, a.ID, []string{"t1", "t2", "t3"}); err != nil {
		return err
	}
	var logs []byte
	for i := 1; i <= 3; i++ {
		logs = mlop.AppendLogLine(logs, 1700000000000, fmt.Sprintf("line %d", i), int64(i), "INFO")
	}
	if err := c.SendLogs(ctx, a.ID, "proj", logs, 3); err != nil {
		return err
	}
	var data []byte
	data = mlop.AppendDataLine(data, 1700000000000, 1, "string-series", "phase", "warmup")
	if err := c.SendData(ctx, a.ID, "proj", data, 1); err != nil {
		return err
	}
	urls, err := c.RequestUploads(ctx, a.ID, "proj", []mlop.FileMeta{{FileName: "n.txt", FileType: "txt", FileSize: 5, LogName: "files/notes", Step: 1, Time: 1}})
	if err != nil {
		return err
	}
	if err := c.PutFile(ctx, urls["files/notes"]["n.txt"], strings.NewReader("hello"), 5, "text/plain"); err != nil {
		return err
	}
	if err := c.UpdateStatus(ctx, a.ID, event.StatusCompleted, 1700000000006); err != nil {
		return err
	}

	b, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "alpha-fork", ExternalID: "ext-fork", ForkRunID: a.ID, ForkStep: 5,
		Config: map[string]any{"own": true}})
	if err != nil {
		return err
	}
	if err := c.SendMetrics(ctx, b.ID, "proj", metricBody(line(1700000000010, 6, "train/loss", 0.5)), 1); err != nil {
		return err
	}
	if err := c.AddLogNames(ctx, b.ID, mlop.LogTypeMetric, []string{"train/loss"}); err != nil {
		return err
	}
	if err := c.UpdateStatus(ctx, b.ID, event.StatusFailed, 0); err != nil {
		return err
	}

	g, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "gamma", ExternalID: "ext-gamma"})
	if err != nil {
		return err
	}
	if err := c.SendMetrics(ctx, g.ID, "proj", metricBody(line(5, 1, "m", 1), line(6, 2, "m", 2)), 2); err != nil {
		return err
	}
	return c.UpdateStatus(ctx, g.ID, event.StatusCompleted, 0)
}

func runID(t *testing.T, srv *mlopfake.Server, name string) int64 {
	t.Helper()
	for _, r := range srv.Runs() {
		if r.Name == name {
			return r.ID
		}
	}
	t.Fatalf("no run %q", name)
	return 0
}

func kinds(rep *Report) []string {
	var out []string
	for _, d := range rep.Differences {
		s := d.Kind + " " + d.Run
		if d.Metric != "" {
			s += " " + d.Metric
		}
		if d.Step != nil {
			s += fmt.Sprintf("@%d", *d.Step)
		}
		if d.Key != "" {
			s += " " + d.Key
		}
		if d.Want != "" || d.Got != "" {
			s += " want=" + d.Want + " got=" + d.Got
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestVerifyClean(t *testing.T) {
	srv := startFake(t)
	migrate(t, srv, richRun)
	cp := capture(t, richRun)
	rep, err := check(t, srv, cp, Options{})
	if err != nil {
		t.Fatalf("%v\n%s\n%v", err, rep.Summary(), kinds(rep))
	}
	if !rep.Complete || rep.Runs != 3 || rep.Metrics != 4 || rep.Points != 13 {
		t.Fatalf("report %s", rep.Summary())
	}
	if got := rep.Summary(); got != "verified 3 runs, 4 metrics, 13 points: 0 missing, 0 different, 0 extra" {
		t.Errorf("summary %q", got)
	}
	alpha := rep.RunReports[0]
	if alpha.RunID != runID(t, srv, "alpha") || alpha.ConsoleLine.Got != 3 || alpha.Files.Got != 1 || alpha.FoundBy != "list by name" {
		t.Errorf("alpha %+v", alpha)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "1 string-series and histogram row in 1 run was not checked") {
		t.Errorf("notes %q", rep.Notes)
	}
	// The metric with a re-send: 6 steps, 8 rows sent, 8 rows stored.
	for _, mr := range alpha.Metrics {
		if mr.Name == "train/loss" && (mr.Points != 6 || mr.Rows != 8 || mr.Server != 8) {
			t.Errorf("train/loss %+v", mr)
		}
	}
	// With the state directory's ids: found without listing.
	ids := map[string]int64{}
	for _, r := range srv.Runs() {
		ids["proj\x00"+r.ExternalID] = r.ID
	}
	before := len(srv.Requests())
	rep, err = check(t, srv, cp, Options{RunMap: ids, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range srv.Requests()[before:] {
		if r.Path == "/api/runs/list" {
			t.Errorf("listed runs although the state directory knew them")
		}
	}
	if rep.RunReports[0].FoundBy != "state directory" {
		t.Errorf("found by %q", rep.RunReports[0].FoundBy)
	}
	// A stale state directory (ids of other runs) falls back to a search.
	ids["proj\x00ext-alpha"] = runID(t, srv, "gamma")
	if rep, err = check(t, srv, cp, Options{RunMap: ids}); err != nil || rep.RunReports[0].RunID != runID(t, srv, "alpha") {
		t.Fatalf("stale run map: %v %v", err, rep.RunReports[0])
	}
}

func startFake(t testing.TB) *mlopfake.Server {
	t.Helper()
	srv, err := mlopfake.Start(mlopfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestVerifyNamesEachAlteration damages the stored data on purpose and
// expects every change named.
func TestVerifyNamesEachAlteration(t *testing.T) {
	srv := startFake(t)
	migrate(t, srv, richRun)
	cp := capture(t, richRun)
	a, fork, g := runID(t, srv, "alpha"), runID(t, srv, "alpha-fork"), runID(t, srv, "gamma")
	must := func(n int, err error) {
		t.Helper()
		if err != nil || n == 0 {
			t.Fatalf("alter: %d %v", n, err)
		}
	}
	must(srv.DropMetricSteps(a, "train/loss", 3, 5))                                   // points dropped
	must(srv.SetMetricValue(a, "train/loss", 6, 123456789.0))                          // a value changed
	must(srv.SetMetricValue(a, "train/loss", 2, 7))                                    // a NaN turned into a number
	must(srv.SetMetricValue(a, "acc", 2, math.Inf(-1)))                                // +Inf turned into -Inf
	must(1, srv.AddMetricRow(a, "acc", mlopfake.Point{Step: 9, Time: 1, Value: 3}))    // a step the source lacks
	must(1, srv.AddMetricRow(a, "acc", mlopfake.Point{Step: 1, Time: 1, Value: 0.25})) // an older duplicate: no difference
	must(1, srv.RemoveTag(a, "t2"))                                                    // a tag removed
	must(1, srv.SetConfigValue(a, "lr", 0.2, false))                                   // a config value changed
	must(1, srv.SetConfigValue(a, "when", nil, true))                                  // a config key removed
	must(1, srv.RemoveLogName(a, "acc"))                                               // a log name unregistered
	must(1, srv.SetConfigValue(fork, "lr", 0.3, false))                                // an inherited key that no longer matches the parent
	must(srv.DropMetricSteps(g, "m", 1, 2))                                            // every point of a metric
	rep, err := check(t, srv, cp, Options{})
	if !errors.Is(err, ErrMismatch) || rep.Complete {
		t.Fatalf("err %v complete %v", err, rep.Complete)
	}
	want := []string{
		`config-different alpha config lr want=0.1 got=0.2`,
		`config-extra alpha-fork config lr want= got=0.3`,
		`config-missing alpha config when want="2024-01-02" got=`,
		`log-name-missing alpha acc want=METRIC got=`,
		`point-different alpha acc@2 want=Infinity got=-Infinity`,
		`point-different alpha train/loss@2 want=NaN got=7`,
		`point-different alpha train/loss@6 want=1.23456789125e+08 got=1.23456789e+08`,
		`point-extra alpha acc@9 want= got=3`,
		`point-missing alpha train/loss@3 want=0.125 got=`,
		`point-missing alpha train/loss@5 want=1e-300 got=`,
		`point-missing gamma m@1 want=1 got=`,
		`point-missing gamma m@2 want=2 got=`,
		`tag-missing alpha t2`,
	}
	if got := kinds(rep); !slices.Equal(got, want) {
		t.Fatalf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep.Missing != 4 || rep.Different != 3 || rep.Extra != 1 || rep.Other != 5 {
		t.Errorf("counts: %s", rep.Summary())
	}
	var sb strings.Builder
	rep.Write(&sb, 3)
	if !strings.Contains(sb.String(), "... and 10 more differences") || !strings.HasSuffix(sb.String(),
		"verified 3 runs, 4 metrics, 13 points: 4 missing, 3 different, 1 extra; 5 other differences\n") {
		t.Errorf("printed:\n%s", sb.String())
	}
}

// TestVerifyRunMissing: a source run the server does not have.
func TestVerifyRunMissing(t *testing.T) {
	srv := startFake(t)
	migrate(t, srv, func(ctx context.Context, c *mlop.Client) error {
		_, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "other", ExternalID: "x"})
		return err
	})
	cp := capture(t, richRun)
	rep, err := check(t, srv, cp, Options{})
	if !errors.Is(err, ErrMismatch) {
		t.Fatal(err)
	}
	if rep.Missing != 13 || rep.Other != 3 || rep.RunReports[0].Differences[0].Kind != KindRunMissing {
		t.Fatalf("%s %v", rep.Summary(), kinds(rep)[:3])
	}
}

// TestVerifyStatusRules: a run left RUNNING is a note for live sources and
// a difference for imports; another status is always a difference, with
// who set it.
func TestVerifyStatusRules(t *testing.T) {
	srv := startFake(t)
	source := func(ctx context.Context, c *mlop.Client) error {
		r, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "s", ExternalID: "s"})
		if err != nil {
			return err
		}
		return c.UpdateStatus(ctx, r.ID, event.StatusCompleted, 0)
	}
	migrate(t, srv, func(ctx context.Context, c *mlop.Client) error {
		_, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "s", ExternalID: "s"}) // never finished
		return err
	})
	cp := capture(t, source)
	if rep, err := check(t, srv, cp, Options{Live: true}); err != nil || len(rep.RunReports[0].Notes) != 1 {
		t.Fatalf("live: %v %+v", err, rep.RunReports[0])
	}
	rep, err := check(t, srv, cp, Options{})
	if !errors.Is(err, ErrMismatch) || fmt.Sprint(kinds(rep)) != "[status s want=COMPLETED got=RUNNING]" {
		t.Fatalf("import: %v %v", err, kinds(rep))
	}
	srv.ReapStaleRuns(time.Now().Add(time.Hour))
	rep, _ = check(t, srv, cp, Options{Live: true})
	if d := rep.Differences; len(d) != 1 || d[0].Got != "FAILED" || !strings.Contains(d[0].Detail, "stale-monitor") {
		t.Fatalf("reaped: %+v", d)
	}
}

// TestVerifyPaging: a metric of more rows than a page, some re-sent
// across a page boundary, checked page by page (pages of 1,000 rows here;
// the end-to-end test of the binary uses the real 50,000).
func TestVerifyPaging(t *testing.T) {
	srv := startFake(t)
	const n, page = 6000, 1000
	big := func(ctx context.Context, c *mlop.Client) error {
		r, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "big", ExternalID: "big"})
		if err != nil {
			return err
		}
		var body []byte
		for s := 1; s <= n; s++ {
			body = append(body, line(int64(1700000000000+s), s, "loss", float64(s)/7)...)
			body = append(body, '\n')
			if len(body) > 900<<10 || s == n {
				if err := c.SendMetrics(ctx, r.ID, "proj", body, 0); err != nil {
					return err
				}
				body = body[:0]
			}
		}
		// A re-send of the rows around the first page boundary.
		for s := page - 10; s <= page+10; s++ {
			body = append(body, line(int64(1700000000000+s), s, "loss", float64(s)/7)...)
			body = append(body, '\n')
		}
		return c.SendMetrics(ctx, r.ID, "proj", body, 0)
	}
	migrate(t, srv, big)
	cp := capture(t, big)
	rep, err := check(t, srv, cp, Options{ChunkPoints: 700, PageRows: page})
	if err != nil {
		t.Fatalf("%v %v", err, kinds(rep))
	}
	if rep.Points != n || rep.RunReports[0].Metrics[0].Server != n+21 {
		t.Fatalf("%s %+v", rep.Summary(), rep.RunReports[0].Metrics)
	}
	pages := 0
	for _, r := range srv.Requests() {
		if r.Path == "/api/runs/metrics/raw" {
			pages++
		}
	}
	if pages != 7 {
		t.Errorf("%d metrics/raw requests, want 7", pages)
	}
	id := runID(t, srv, "big")
	srv.DropMetricSteps(id, "loss", page)
	rep, _ = check(t, srv, cp, Options{PageRows: page})
	if fmt.Sprint(kinds(rep)) != "[point-missing big loss@1000 want=142.85714285714286 got=]" {
		t.Errorf("%v", kinds(rep))
	}
}

// TestVerifyReadFailures: what cannot be read is "not checked", never a
// match; a refused key stops the verification.
func TestVerifyReadFailures(t *testing.T) {
	srv := startFake(t)
	migrate(t, srv, richRun)
	cp := capture(t, richRun)
	srv.SetFaults(mlopfake.Faults{FailRate: 1, Services: []mlopfake.Service{mlopfake.ServiceAPI}})
	rep, err := check(t, srv, cp, Options{})
	if !errors.Is(err, ErrMismatch) || rep.Problems == 0 || rep.Unchecked != 13 || rep.Complete {
		t.Fatalf("%v %s", err, rep.Summary())
	}
	srv.SetFaults(mlopfake.Faults{})
	srv.RevokeKey(mlopfake.DefaultKey)
	_, err = check(t, srv, cp, Options{})
	if err == nil || errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "refused the API key") {
		t.Fatalf("revoked key: %v", err)
	}
}

// TestRecorderAnswers: the recorder answers like the server for what the
// agent sends, and keeps it.
func TestRecorderAnswers(t *testing.T) {
	cp := capture(t, func(ctx context.Context, c *mlop.Client) error {
		if slug, err := c.Login(ctx); err != nil || slug == "" {
			return fmt.Errorf("login %q %v", slug, err)
		}
		r, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "r", ExternalID: "e", Tags: []string{"a"}, Config: map[string]any{"k": 1}})
		if err != nil {
			return err
		}
		again, err := c.CreateRun(ctx, mlop.CreateRun{RunName: "r", ExternalID: "e", Tags: []string{"ignored"}, Config: map[string]any{"j": 2}})
		if err != nil || again.ID != r.ID || !again.Resumed {
			return fmt.Errorf("resume by externalId: %+v %v", again, err)
		}
		if st, err := c.Trigger(ctx, r.ID); err != nil || st != "RUNNING" {
			return fmt.Errorf("trigger %q %v", st, err)
		}
		if _, err := c.Step(ctx, r.ID, "proj"); err != nil {
			return err
		}
		if err := c.UpdateStatus(ctx, r.ID, event.StatusFailed, 0); err != nil {
			return err
		}
		if err := c.UpdateStatus(ctx, r.ID, event.StatusCompleted, 0); err != nil { // lower severity: ignored
			return err
		}
		// Like the ingest: accepted, filed where no run of the UI shows it.
		if err := c.SendMetrics(ctx, 999, "proj", metricBody(line(1, 1, "m", 1)), 1); err != nil {
			return err
		}
		return c.SendMetrics(ctx, r.ID, "other-project", metricBody(line(1, 1, "m", 1)), 1)
	})
	if len(cp.Runs) != 1 {
		t.Fatalf("runs %+v", cp.Runs)
	}
	r := cp.Runs[0]
	if fmt.Sprint(r.Tags) != "[a]" || fmt.Sprint(r.Config) != "map[j:2 k:1]" || r.Status != "FAILED" || r.Rows != 0 {
		t.Errorf("run %+v", r)
	}
	if len(cp.Issues) != 2 || !strings.Contains(cp.Issues[1], `belongs to project "proj"`) {
		t.Errorf("issues %q", cp.Issues)
	}
}

// TestVerifyServerTies: rows on the server that share the newest time of a
// step must all hold the source's value; an identical re-send is fine, a
// conflicting one is a difference because the view may show either.
func TestVerifyServerTies(t *testing.T) {
	srv := startFake(t)
	migrate(t, srv, richRun)
	cp := capture(t, richRun)
	g := runID(t, srv, "gamma")
	if err := srv.AddMetricRow(g, "m", mlopfake.Point{Step: 1, Time: 5, Value: 1}); err != nil { // identical
		t.Fatal(err)
	}
	if rep, err := check(t, srv, cp, Options{}); err != nil {
		t.Fatalf("identical re-send: %v %v", err, kinds(rep))
	}
	if err := srv.AddMetricRow(g, "m", mlopfake.Point{Step: 2, Time: 6, Value: 9}); err != nil { // same time, other value
		t.Fatal(err)
	}
	rep, err := check(t, srv, cp, Options{})
	if !errors.Is(err, ErrMismatch) || len(rep.Differences) != 1 || !strings.Contains(rep.Differences[0].Detail, "not determined") ||
		rep.Differences[0].Got != "9" {
		t.Fatalf("conflicting tie: %v %+v", err, rep.Differences)
	}
}
