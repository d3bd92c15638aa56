package main

// End-to-end tests: the built mlop-agent binary against the mlop stand-in
// (internal/mlopfake — a test double of the real server, started in this
// process on loopback).

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// agentBin is the binary under test (built with -race when the tests are);
// agentBinPlain is built without -race, for memory measurements.
var agentBin, agentBinPlain string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mlop-agent-e2e")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "mlop-agent")
	if bin := os.Getenv("MLOP_AGENT_BIN"); bin != "" {
		// Test another build (a release binary, or an older commit to
		// show that a new test fails there).
		agentBin, agentBinPlain = bin, bin
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	args := []string{"build", "-o", agentBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build mlop-agent:", err)
		os.Exit(1)
	}
	agentBinPlain = agentBin
	if raceEnabled {
		agentBinPlain = filepath.Join(dir, "mlop-agent-plain")
		cmd := exec.Command("go", "build", "-o", agentBinPlain, ".")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build mlop-agent:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func startFake(t *testing.T) *mlopfake.Server {
	t.Helper()
	s, err := mlopfake.Start(mlopfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writeConfig writes an agent config pointing at the stand-in; extra is
// YAML appended at the end (sources).
func writeConfig(t *testing.T, dir string, s *mlopfake.Server, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`server:
  url_api: %s
  url_ingest: %s
  url_py: %s
  api_key: %s
  retry:
    initial_backoff: 20ms
    max_backoff: 200ms
project: e2e
state_dir: %s
heartbeat_interval: 1s
shutdown_timeout: 10s
watch:
  poll_interval: 200ms
%s`, s.APIURL(), s.IngestURL(), s.PyURL(), mlopfake.DefaultKey, filepath.Join(dir, "state"), extra)
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// agentProc is a running mlop-agent.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
	exited chan struct{} // closed when the process has exited
}

// syncBuffer is a bytes.Buffer safe to read while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	return startBinary(t, agentBin, args...)
}

func startBinary(t *testing.T, bin string, args ...string) *agentProc {
	t.Helper()
	return startCmd(t, exec.Command(bin, args...))
}

// startCmd starts a prepared command (its own credentials, environment).
func startCmd(t *testing.T, cmd *exec.Cmd) *agentProc {
	t.Helper()
	p := &agentProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		close(p.exited)
		p.done <- err
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// readyLine is what a following agent logs once every source is watched:
// from then on no write is missed.
const readyLine = "ready: watching every source"

// waitReady waits until the agent says it is ready (never a sleep).
func (p *agentProc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.stderr.String(), readyLine) {
		select {
		case <-p.exited:
			t.Fatalf("agent exited before it was ready:\n%s", p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready after 60s:\n%s", p.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait returns the exit code, failing the test after the timeout.
func (p *agentProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("agent did not exit within %v; output:\n%s", timeout, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// runAgent runs the binary to completion.
func execAgent(t *testing.T, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	p := startAgent(t, args...)
	code := p.wait(t, timeout)
	return code, p.stderr.String()
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func runByName(s *mlopfake.Server, name string) (mlopfake.Run, bool) {
	for _, r := range s.Runs() {
		if r.Name == name {
			return r, true
		}
	}
	return mlopfake.Run{}, false
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func metricCount(s *mlopfake.Server, run, metric string) int {
	r, ok := runByName(s, run)
	if !ok {
		return 0
	}
	return len(s.Metrics(r.ID)[metric])
}

func TestRunFollowsFilesEndToEnd(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "runs")
	os.MkdirAll(data, 0o755)
	cfg := writeConfig(t, dir, srv, fmt.Sprintf(`sources:
  - name: train
    format: jsonl
    paths: ["%s/*.jsonl"]
    run:
      name: "{{.Stem}}"
      tags: [live]
      config: {team: vision}
`, data))
	a := filepath.Join(data, "a.jsonl")
	b := filepath.Join(data, "b.jsonl")
	appendFile(t, a, `{"step": 1, "time": 1700000001, "loss": 1.5}`+"\n")
	p := startAgent(t, "run", "-c", cfg)
	p.waitReady(t)

	// Uneven chunks, a line split across two writes, NaN, a third file
	// created after start.
	appendFile(t, a, `{"step": 2, "time": 1700000002, "loss": 1.25, "_tags": ["warm"]}`+"\n"+`{"step": 3, "ti`)
	appendFile(t, b, `{"time": 1700000101, "acc": 0.5, "_config": {"lr": 0.01}}`+"\n")
	// The split line's second half comes once the first points are in (so
	// the agent has read up to the half line); the watcher's unit test
	// pins the split itself.
	eventually(t, 15*time.Second, "the first points", func() bool { return metricCount(srv, "a", "loss") == 2 && metricCount(srv, "b", "acc") == 1 })
	appendFile(t, a, `me": 1700000003, "loss": NaN}`+"\n")
	appendFile(t, b, `{"time": 1700000102, "acc": 0.75}`+"\n"+`{"time": 1700000103, "acc": 1}`+"\n")
	c := filepath.Join(data, "c.jsonl")
	appendFile(t, c, `{"step": 10, "time": "2023-11-14T22:13:20Z", "val": {"loss": 3}}`+"\n")

	eventually(t, 15*time.Second, "all points", func() bool {
		return metricCount(srv, "a", "loss") == 3 && metricCount(srv, "b", "acc") == 3 && metricCount(srv, "c", "val/loss") == 1
	})
	eventually(t, 10*time.Second, "heartbeats", func() bool {
		r, _ := runByName(srv, "a")
		return r.Heartbeats >= 2
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("run exited %d after SIGTERM:\n%s", code, p.stderr)
	}

	if rej := srv.Rejected(); len(rej) > 0 {
		t.Fatalf("the stand-in rejected requests: %+v", rej)
	}
	var names []string
	for _, r := range srv.Runs() {
		names = append(names, r.Name)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "a,b,c" {
		t.Fatalf("runs = %v, want a,b,c", names)
	}
	ra, _ := runByName(srv, "a")
	la := srv.Metrics(ra.ID)["loss"]
	if la[0].Step != 1 || la[0].Value != 1.5 || la[0].Time != 1700000001000 ||
		la[1].Step != 2 || la[1].Value != 1.25 || la[1].Time != 1700000002000 ||
		la[2].Step != 3 || !math.IsNaN(la[2].Value) || la[2].Time != 1700000003000 {
		t.Errorf("a/loss = %+v", la)
	}
	if strings.Join(ra.Tags, ",") != "live,warm" {
		t.Errorf("a tags = %v, want live,warm", ra.Tags)
	}
	if ra.Config["team"] != "vision" {
		t.Errorf("a config = %v", ra.Config)
	}
	if ra.LogType("loss") != "METRIC" {
		t.Errorf("a log names = %v", ra.LogNames)
	}
	if ra.Status != "RUNNING" {
		t.Errorf("a status after a stop = %s, want RUNNING (run does not finish runs)", ra.Status)
	}
	rb, _ := runByName(srv, "b")
	lb := srv.Metrics(rb.ID)["acc"]
	if lb[0].Step != 1 || lb[1].Step != 2 || lb[2].Step != 3 || lb[2].Value != 1 || lb[0].Time != 1700000101000 {
		t.Errorf("b/acc (auto steps) = %+v", lb)
	}
	if rb.Config["lr"] != 0.01 || rb.Config["team"] != "vision" {
		t.Errorf("b config = %v", rb.Config)
	}
	rc, _ := runByName(srv, "c")
	if lc := srv.Metrics(rc.ID)["val/loss"]; lc[0].Step != 10 || lc[0].Time != 1700000000000 {
		t.Errorf("c/val/loss = %+v", lc)
	}
	if rc.LogType("val/loss") != "METRIC" {
		t.Errorf("c log names = %v", rc.LogNames)
	}

	// backfill over the same files: nothing new to send, the runs finish.
	before := srv.Counters()
	code, out := execAgent(t, 30*time.Second, "backfill", "-c", cfg)
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	if n := srv.Counters().MetricLines - before.MetricLines; n != 0 {
		t.Errorf("backfill after run re-sent %d metric lines", n)
	}
	for _, n := range []string{"a", "b", "c"} {
		if r, _ := runByName(srv, n); r.Status != "COMPLETED" {
			t.Errorf("run %s status = %s, want COMPLETED", n, r.Status)
		}
	}
	// A second backfill sends nothing at all.
	before = srv.Counters()
	if code, out := execAgent(t, 30*time.Second, "backfill", "-c", cfg); code != 0 {
		t.Fatalf("second backfill exited %d:\n%s", code, out)
	}
	if n := srv.Counters().MetricLines - before.MetricLines; n != 0 {
		t.Errorf("second backfill sent %d metric lines", n)
	}
	// Without the state directory: the same runs, no new ones.
	os.RemoveAll(filepath.Join(dir, "state"))
	if code, out := execAgent(t, 30*time.Second, "backfill", "-c", cfg); code != 0 {
		t.Fatalf("fresh-state backfill exited %d:\n%s", code, out)
	}
	if n := len(srv.Runs()); n != 3 {
		t.Errorf("runs after a fresh-state backfill = %d, want 3", n)
	}
	if got := metricCount(srv, "a", "loss"); got != 3 {
		t.Errorf("a/loss after re-send = %d points in the deduplicated view, want 3", got)
	}
	if rej := srv.Rejected(); len(rej) > 0 {
		t.Fatalf("the stand-in rejected requests: %+v", rej)
	}
}

func TestMalformedLines(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	lines := []string{
		`{"step": 1, "loss": 1}`,
		`{"step": 2, "loss": }`,                        // 2: bad JSON
		`[1, 2, 3]`,                                    // 3: not an object
		`{"step": 3, "loss": 3}`,                       // good
		`{"x": "` + strings.Repeat("y", 10<<20) + `"}`, // 5: 10 MB
		`{"step": 4.5, "loss": 4}`,                     // 6: fractional step
		`true`,                                         // 7: a bool
		`{"step": 5, "loss": 5, "ok": true}`,           // good; the bool value is skipped
	}
	appendFile(t, path, strings.Join(lines, "\n")+"\n")
	cfg := writeConfig(t, dir, srv, fmt.Sprintf(`dead_letter:
  path: %s/dead.jsonl
sources:
  - name: s
    format: jsonl
    paths: ["%s"]
`, dir, path))
	code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg)
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	if got := metricCount(srv, "m", "loss"); got != 3 {
		t.Errorf("good lines delivered: %d loss points, want 3", got)
	}
	for _, line := range []int{2, 3, 5, 6, 7} {
		ref := fmt.Sprintf("%s:%d", path, line)
		if n := strings.Count(out, ref+" "); n != 1 {
			t.Errorf("%s reported %d times, want once; output:\n%.2000s", ref, n, out)
		}
	}
	dead, err := os.ReadFile(filepath.Join(dir, "dead.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(dead, []byte("\n")); n != 5 {
		t.Errorf("dead-letter lines = %d, want 5", n)
	}
	// The checkpoint moved past the bad lines: a second backfill neither
	// reports nor dead-letters them again.
	code, out = execAgent(t, 60*time.Second, "backfill", "-c", cfg)
	if code != 0 || strings.Contains(out, "bad record") {
		t.Errorf("second backfill: exit %d, output:\n%.2000s", code, out)
	}
	if dead2, _ := os.ReadFile(filepath.Join(dir, "dead.jsonl")); len(dead2) != len(dead) {
		t.Errorf("second backfill dead-lettered again")
	}
}

// TestShutdown: with the server unreachable, SIGTERM waits at most
// shutdown_timeout and exits 4 (data left for next time); a second signal
// ends the wait at once; the next start delivers everything.
func TestShutdown(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "s.jsonl")
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [\"%s\"]\n", path))
	// shutdown_timeout is 10s in writeConfig.
	for _, second := range []bool{false, true} {
		srv.Down(mlopfake.AllServices...)
		appendFile(t, path, fmt.Sprintf(`{"step": %d, "x": 1}`+"\n", map[bool]int{false: 1, true: 2}[second]))
		p := startAgent(t, "run", "-c", cfg)
		p.waitReady(t)
		start := time.Now()
		p.cmd.Process.Signal(syscall.SIGTERM)
		if second {
			// The second signal while it drains.
			eventually(t, 10*time.Second, "the drain", func() bool {
				return strings.Contains(p.stderr.String(), "stopping: delivering buffered data")
			})
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		code := p.wait(t, 20*time.Second)
		took := time.Since(start)
		if code != exitIncomplete {
			t.Fatalf("exit %d, want %d (incomplete):\n%s", code, exitIncomplete, p.stderr)
		}
		if second && took > 5*time.Second {
			t.Errorf("a second signal took %v to stop the drain", took)
		}
		if !second && (took < 9*time.Second || took > 15*time.Second) {
			t.Errorf("drain with the server down took %v, want about shutdown_timeout (10s)", took)
		}
		if err := srv.Up(mlopfake.AllServices...); err != nil {
			t.Fatal(err)
		}
	}
	code, out := execAgent(t, 30*time.Second, "backfill", "-c", cfg)
	if code != 0 {
		t.Fatalf("backfill after the outage: exit %d\n%s", code, out)
	}
	if got := metricCount(srv, "s", "x"); got != 2 {
		t.Errorf("points after the outage = %d, want 2", got)
	}
}

func TestCheckNamesMisspelledKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte("project: p\nsources:\n  - name: s\n    format: jsonl\n    paths: [\"/tmp/x/*.jsonl\"]\n    step_feild: step\n"), 0o600)
	code, out := execAgent(t, 10*time.Second, "check", "--offline", "-c", cfg)
	if code == 0 {
		t.Fatalf("check accepted a misspelled key:\n%s", out)
	}
	if !strings.Contains(out, "sources[0].step_feild") || !strings.Contains(out, ":6:") || !strings.Contains(out, "step_field") {
		t.Errorf("check output does not name the key, its line and the fix:\n%s", out)
	}
}

func TestCheckOnline(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [\"%s/d/*.jsonl\"]\n", dir))
	code, out := execAgent(t, 20*time.Second, "check", "-c", cfg)
	if code != 0 || !strings.Contains(out, "API key accepted") {
		t.Fatalf("check against a healthy server: exit %d\n%s", code, out)
	}
	srv.RevokeKey(mlopfake.DefaultKey)
	code, out = execAgent(t, 20*time.Second, "check", "-c", cfg)
	if code == 0 || strings.Contains(out, mlopfake.DefaultKey) {
		t.Fatalf("check with a revoked key: exit %d (want non-zero, key never printed)\n%s", code, out)
	}
}

var _ = context.Background
