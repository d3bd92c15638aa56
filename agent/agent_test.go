package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/checkpoint"
	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/sink"
	"github.com/mlop-ai/mlop-agent/sink/mlop"

	_ "github.com/mlop-ai/mlop-agent/parsers/jsonl"
)

// These tests run the agent in-process against the mlop stand-in
// (internal/mlopfake, a test double of the real server) over loopback.

func startFake(t *testing.T) *mlopfake.Server {
	t.Helper()
	s, err := mlopfake.Start(mlopfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newClient(t *testing.T, s *mlopfake.Server) *mlop.Sink {
	t.Helper()
	c, err := mlop.New(mlop.Options{APIURL: s.APIURL(), IngestURL: s.IngestURL(), PyURL: s.PyURL(),
		APIKey: mlopfake.DefaultKey, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return mlop.NewSink(c)
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

func runBackfill(t *testing.T, opts Options, c sink.Sink) (*Agent, error) {
	t.Helper()
	opts.Logger = testLogger(t)
	a, err := New(opts, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return a, a.Run(ctx)
}

func findRun(t *testing.T, s *mlopfake.Server, name string) mlopfake.Run {
	t.Helper()
	for _, r := range s.Runs() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no run named %q; runs: %v", name, runNames(s))
	return mlopfake.Run{}
}

func runNames(s *mlopfake.Server) []string {
	var out []string
	for _, r := range s.Runs() {
		out = append(out, r.Name)
	}
	return out
}

func TestBackfillJSONL(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	var b strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, `{"step": %d, "time": %d, "loss": %g, "acc": {"top1": %d}, "phase": "p%d"}`+"\n", i, 1700000000+i, 1.0/float64(i), i, i%2)
	}
	b.WriteString(`{"step": 21, "loss": NaN, "_tags": ["late"], "_config": {"lr": 0.1}}` + "\n")
	write(t, filepath.Join(dir, "alpha.jsonl"), b.String())
	write(t, filepath.Join(dir, "beta.jsonl"), `{"m": 1}`+"\n"+`{"m": 2}`+"\n")
	opts := Options{
		Project: "proj", StateDir: filepath.Join(dir, "state"),
		Sources: []Source{{Name: "train", Format: "jsonl", Paths: []string{dir + "/*.jsonl"},
			Tags: []string{"yaml-tag"}, Config: map[string]any{"team": "vision"}}},
	}
	a, err := runBackfill(t, opts, newClient(t, srv))
	if err != nil {
		t.Fatalf("backfill: %v (%s)", err, a.Stats().Summary())
	}
	if rej := srv.Rejected(); len(rej) > 0 {
		t.Fatalf("the stand-in rejected requests: %+v", rej)
	}
	r := findRun(t, srv, "alpha")
	if r.Status != "COMPLETED" {
		t.Errorf("status = %s, want COMPLETED", r.Status)
	}
	m := srv.Metrics(r.ID)
	if got := len(m["loss"]); got != 21 {
		t.Errorf("loss points = %d, want 21", got)
	}
	if got := len(m["acc/top1"]); got != 20 {
		t.Errorf("acc/top1 points = %d, want 20", got)
	}
	last := m["loss"][len(m["loss"])-1]
	if last.Step != 21 || !math.IsNaN(last.Value) {
		t.Errorf("last loss point = %+v, want NaN at step 21", last)
	}
	if first := m["loss"][0]; first.Step != 1 || first.Value != 1 || first.Time != 1700000001000 {
		t.Errorf("first loss point = %+v", first)
	}
	if got := len(srv.Data(r.ID)); got != 20 {
		t.Errorf("string series rows = %d, want 20", got)
	}
	if r.Config["team"] != "vision" || r.Config["lr"] != 0.1 {
		t.Errorf("config = %v", r.Config)
	}
	if strings.Join(r.Tags, ",") != "yaml-tag,late" {
		t.Errorf("tags = %v", r.Tags)
	}
	if r.LogType("loss") != "METRIC" || r.LogType("phase") != "DATA" {
		t.Errorf("log names = %v", r.LogNames)
	}
	beta := findRun(t, srv, "beta")
	if got := srv.Metrics(beta.ID)["m"]; len(got) != 2 || got[0].Step != 1 || got[1].Step != 2 {
		t.Errorf("beta auto steps: %+v", got)
	}

	// A second backfill over unchanged files sends nothing.
	before := srv.Counters()
	a, err = runBackfill(t, opts, newClient(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	after := srv.Counters()
	if after.MetricLines != before.MetricLines {
		t.Errorf("second backfill sent %d metric lines", after.MetricLines-before.MetricLines)
	}
	// Without the state directory, the same runs are found again.
	os.RemoveAll(opts.StateDir)
	nRuns := len(srv.Runs())
	if _, err = runBackfill(t, opts, newClient(t, srv)); err != nil {
		t.Fatal(err)
	}
	if len(srv.Runs()) != nRuns {
		t.Errorf("runs after a fresh-state backfill = %d, want %d", len(srv.Runs()), nRuns)
	}
	if got := len(srv.Metrics(r.ID)["loss"]); got != 21 {
		t.Errorf("deduplicated loss points after re-send = %d, want 21", got)
	}
}

// A run the checkpoint knows but this process never touches keeps its
// entry through later saves, and a run the process touches is written
// once, not twice.
func TestCheckpointKeepsUnseenRuns(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a", "alpha.jsonl"), `{"step": 1, "loss": 1}`+"\n")
	write(t, filepath.Join(dir, "b", "beta.jsonl"), `{"step": 1, "loss": 2}`+"\n")
	state := filepath.Join(dir, "state")
	opts := func(glob string) Options {
		return Options{Project: "proj", StateDir: state,
			Sources: []Source{{Name: "train", Format: "jsonl", Paths: []string{glob}}}}
	}
	if a, err := runBackfill(t, opts(dir+"/*/*.jsonl"), newClient(t, srv)); err != nil {
		t.Fatalf("backfill: %v (%s)", err, a.Stats().Summary())
	}
	// The second pass sees only alpha, which has grown.
	write(t, filepath.Join(dir, "a", "alpha.jsonl"), `{"step": 2, "loss": 0.5}`+"\n")
	if a, err := runBackfill(t, opts(dir+"/a/*.jsonl"), newClient(t, srv)); err != nil {
		t.Fatalf("backfill: %v (%s)", err, a.Stats().Summary())
	}
	st, err := checkpoint.Read(state)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range st.Runs {
		count[r.Name]++
	}
	if count["alpha"] != 1 || count["beta"] != 1 || len(st.Runs) != 2 {
		t.Errorf("checkpoint runs by name = %v, want alpha and beta once each", count)
	}
	if got := len(srv.Metrics(findRun(t, srv, "alpha").ID)["loss"]); got != 2 {
		t.Errorf("alpha loss points = %d, want 2", got)
	}
}

// A _status line without a time of its own does not move the run's last
// data time: the run is finished at its last point's time.
func TestStatusLineKeepsLastPointTime(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.jsonl"), `{"step": 1, "time": 1700000000, "loss": 1}`+"\n"+
		`{"step": 2, "time": 1700000060, "loss": 0.5}`+"\n"+`{"_status": "completed"}`+"\n")
	opts := Options{Project: "p", StateDir: filepath.Join(dir, "state"),
		Sources: []Source{{Name: "s", Format: "jsonl", Paths: []string{dir + "/*.jsonl"}}}}
	if _, err := runBackfill(t, opts, newClient(t, srv)); err != nil {
		t.Fatal(err)
	}
	r := findRun(t, srv, "a")
	if r.Status != "COMPLETED" || r.ClientStatusUpdatedMs == nil || *r.ClientStatusUpdatedMs != 1700000060000 {
		t.Errorf("status %s at %v, want COMPLETED at the last point, 1700000060000", r.Status, r.ClientStatusUpdatedMs)
	}
}
