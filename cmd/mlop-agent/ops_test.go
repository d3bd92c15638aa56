package main

// Operations: self-metrics, help texts, secrets, status, reload and sidecar
// mode, through the built binary and the mlop stand-in (a test double).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrape returns the samples of /metrics whose name starts with prefix,
// keyed by the whole series (name and labels).
func scrape(t *testing.T, addr, prefix string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

func httpStatus(addr, path string) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSelfMetrics scrapes /metrics while the agent ships, while the server
// is down (lag rises, the agent is not ready) and after it returns (lag back
// to zero).
func TestSelfMetrics(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	addr := freePort(t)
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("http:\n  listen: %s\nsources:\n  - name: s\n    format: jsonl\n    paths: [\"%s\"]\n", addr, path))
	appendFile(t, path, `{"step": 1, "x": 1}`+"\n"+`bad line`+"\n")
	p := startAgent(t, "run", "-c", cfg)
	eventually(t, 15*time.Second, "ready", func() bool { return httpStatus(addr, "/readyz") == 200 })
	if httpStatus(addr, "/healthz") != 200 {
		t.Error("/healthz not 200")
	}
	eventually(t, 15*time.Second, "first points counted", func() bool {
		m := scrape(t, addr, "mlop_agent_")
		return m[`mlop_agent_points_sent_total`] >= 1 && m[`mlop_agent_records_rejected_total{reason="not_object",source="s"}`] == 1 &&
			m[`mlop_agent_records_read_total{source="s"}`] == 2 && m[`mlop_agent_lines_sent_total{endpoint="metrics"}`] >= 1
	})

	srv.Down(mlopfake.AllServices...)
	var b strings.Builder
	for i := 2; i <= 200; i++ {
		fmt.Fprintf(&b, `{"step": %d, "x": %d}`+"\n", i, i)
	}
	appendFile(t, path, b.String())
	eventually(t, 15*time.Second, "lag to rise while the server is down", func() bool {
		m := scrape(t, addr, "mlop_agent_lag")
		return m[`mlop_agent_lag_bytes{source="s"}`] > 0 && m[`mlop_agent_lag_seconds{source="s"}`] > 0
	})
	if m := scrape(t, addr, "mlop_agent_request"); m[`mlop_agent_request_retries_total{endpoint="metrics",status="error"}`] == 0 &&
		m[`mlop_agent_request_retries_total{endpoint="create_run",status="error"}`] == 0 {
		// Retries are only counted once an attempt failed; give it a moment.
		eventually(t, 10*time.Second, "retries counted", func() bool {
			m := scrape(t, addr, "mlop_agent_request_retries_total")
			for _, v := range m {
				if v > 0 {
					return true
				}
			}
			return false
		})
	}
	if err := srv.Up(mlopfake.AllServices...); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "lag back to zero", func() bool {
		m := scrape(t, addr, "mlop_agent_lag")
		return m[`mlop_agent_lag_bytes{source="s"}`] == 0 && m[`mlop_agent_lag_seconds{source="s"}`] == 0 && metricCount(srv, "m", "x") == 200
	})
	m := scrape(t, addr, "mlop_agent_")
	if m[`mlop_agent_checkpoint_age_seconds`] > 5 || m[`mlop_agent_runs_active`] != 1 {
		t.Errorf("checkpoint age %v, runs active %v", m[`mlop_agent_checkpoint_age_seconds`], m[`mlop_agent_runs_active`])
	}
	resp, err := http.Post("http://"+addr+"/flush", "text/plain", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("POST /flush: %v %v", resp, err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr)
	}
}

// TestHelpShowsExamples runs every command's -h.
func TestHelpShowsExamples(t *testing.T) {
	for _, c := range commands {
		args := []string{c.name, "-h"}
		if c.name == "import" {
			args = []string{"import", "neptune", "-h"}
		}
		out, err := exec.Command(agentBin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("%s -h: %v\n%s", c.name, err, out)
		}
		if !strings.Contains(string(out), "Example") || !strings.Contains(string(out), "mlop-agent "+c.name) {
			t.Errorf("%s -h shows no example:\n%s", c.name, out)
		}
	}
	for _, args := range [][]string{{"-h"}, {"import", "-h"}, {"import", "neptune-export", "-h"}} {
		out, _ := exec.Command(agentBin, args...).CombinedOutput()
		if !strings.Contains(string(out), "Example") {
			t.Errorf("%v shows no example:\n%s", args, out)
		}
	}
}

// TestKeyNeverPrinted greps every output of commands that used a key.
func TestKeyNeverPrinted(t *testing.T) {
	const key = "mlpi_s3cretK3yThatMustNeverShow"
	srv, err := mlopfake.Start(mlopfake.Options{Keys: []string{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	appendFile(t, path, `{"step": 1, "x": 1}`+"\n"+`{"bad`+"\n")
	cfgText := fmt.Sprintf(`server:
  url_api: %s
  url_ingest: %s
  url_py: %s
  api_key: %s
project: p
state_dir: %s/state
log:
  level: debug
sources:
  - name: s
    format: jsonl
    paths: ["%s"]
`, srv.APIURL(), srv.IngestURL(), srv.PyURL(), key, dir, path)
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte(cfgText), 0o644) // readable by others: a warning, which must not show the key either
	var outputs []string
	for _, args := range [][]string{
		{"check", "-c", cfg},
		{"backfill", "-c", cfg, "--dry-run"},
		{"backfill", "-c", cfg},
		{"status", "-c", cfg},
		{"status", "-c", cfg, "--json"},
		{"verify", "-c", cfg, "--no-progress"},
	} {
		out, _ := exec.Command(agentBin, args...).CombinedOutput()
		outputs = append(outputs, string(out))
	}
	// A refused key: the error names where the key came from, not the key.
	srv.RevokeKey(key)
	appendFile(t, path, `{"step": 2, "x": 2}`+"\n")
	out, _ := exec.Command(agentBin, "backfill", "-c", cfg).CombinedOutput()
	outputs = append(outputs, string(out))
	if !strings.Contains(string(out), "config file") {
		t.Errorf("a refused key does not say where it came from:\n%s", out)
	}
	cmd := exec.Command(agentBin, "import", "neptune", dir, "--project", "p", "--state-dir", filepath.Join(dir, "imp"), "--log-level", "debug")
	cmd.Env = append(os.Environ(), "PLUTO_URL_API="+srv.APIURL(), "PLUTO_URL_INGEST="+srv.IngestURL(), "PLUTO_URL_PY="+srv.PyURL(), "PLUTO_API_KEY="+key)
	out, _ = cmd.CombinedOutput()
	outputs = append(outputs, string(out))
	for i, o := range outputs {
		if strings.Contains(o, key) || strings.Contains(o, key[5:]) {
			t.Errorf("output %d shows the API key:\n%s", i, o)
		}
	}
	state, _ := os.ReadFile(filepath.Join(dir, "state", "state.json"))
	if strings.Contains(string(state), key) {
		t.Error("the state file holds the API key")
	}
}

// TestStatusJSON checks status --json against a real state directory.
func TestStatusJSON(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	appendFile(t, a, `{"step": 1, "time": 1700000000, "x": 1}`+"\n"+`{"step": 2, "time": 1700000005, "x": 2}`+"\n")
	appendFile(t, b, `{"step": 1, "time": 1700000100, "y": 1}`+"\n")
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [\"%s/*.jsonl\"]\n", dir))
	if code, out := execAgent(t, 30*time.Second, "backfill", "-c", cfg); code != 0 {
		t.Fatalf("backfill: %d\n%s", code, out)
	}
	appendFile(t, a, `{"step": 3, "x": 3}`+"\n") // 20 bytes not yet shipped
	out, err := exec.Command(agentBin, "status", "-c", cfg, "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var rows []statusRow
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rows) != 2 {
		t.Fatalf("rows = %d\n%s", len(rows), out)
	}
	ra, _ := runByName(srv, "a")
	r := rows[0]
	if r.Path != a || r.Run != "a" || r.RunID != ra.ID || !strings.Contains(r.URL, "/projects/e2e/") || r.RunStatus != "COMPLETED" ||
		r.Line != 2 || r.BytesBehind != 20 || r.LastPoint.UnixMilli() != 1700000005000 {
		t.Errorf("row a = %+v", r)
	}
	if rows[1].Path != b || rows[1].BytesBehind != 0 || rows[1].Run != "b" {
		t.Errorf("row b = %+v", rows[1])
	}
	// The table form names the same.
	txt, _ := exec.Command(agentBin, "status", "-c", cfg).Output()
	if !strings.Contains(string(txt), a) || !strings.Contains(string(txt), "20 B") {
		t.Errorf("status table:\n%s", txt)
	}
}

// TestReload: SIGHUP with a new source starts shipping it; an invalid config
// is refused and the running one keeps going.
func TestReload(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.csv")
	appendFile(t, a, `{"step": 1, "x": 1}`+"\n")
	appendFile(t, b, "step,y\n1,10\n2,20\n")
	one := fmt.Sprintf("sources:\n  - name: a\n    format: jsonl\n    paths: [\"%s\"]\n", a)
	cfg := writeConfig(t, dir, srv, one)
	p := startAgent(t, "run", "-c", cfg)
	eventually(t, 15*time.Second, "a shipped", func() bool { return metricCount(srv, "a", "x") == 1 })

	// An invalid configuration is refused.
	good, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(good, []byte("bogus_key: 1\n")...), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "the refusal logged", func() bool { return strings.Contains(p.stderr.String(), "reload refused") })
	appendFile(t, a, `{"step": 2, "x": 2}`+"\n")
	eventually(t, 15*time.Second, "a still shipped", func() bool { return metricCount(srv, "a", "x") == 2 })

	// A valid one with a second source.
	two := string(good) + fmt.Sprintf("  - name: b\n    format: csv\n    paths: [\"%s\"]\n", b)
	os.WriteFile(cfg, []byte(two), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 20*time.Second, "b shipped after reload", func() bool { return metricCount(srv, "b", "y") == 2 })
	appendFile(t, a, `{"step": 3, "x": 3}`+"\n")
	eventually(t, 15*time.Second, "a continues", func() bool { return metricCount(srv, "a", "x") == 3 })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr)
	}
	r, _ := runByName(srv, "a")
	if n := len(srv.RawMetrics(r.ID)["x"]); n != 3 {
		t.Errorf("a: %d raw rows after the reload, want 3 (unchanged sources keep their place)", n)
	}
	if len(srv.Runs()) != 2 {
		t.Errorf("runs %v", runNames(srv))
	}
}

// TestSidecarExit: --exit-when-done finishes when the watched process
// exits, or when the sentinel file appears.
func TestSidecarExit(t *testing.T) {
	for _, mode := range []string{"pid", "sentinel"} {
		t.Run(mode, func(t *testing.T) {
			srv := startFake(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "metrics.jsonl")
			cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [\"%s\"]\n", path))
			trainer := exec.Command("sleep", "60")
			if err := trainer.Start(); err != nil {
				t.Fatal(err)
			}
			defer trainer.Process.Kill()
			args := []string{"run", "-c", cfg, "--exit-when-done"}
			sentinel := filepath.Join(dir, ".done")
			if mode == "pid" {
				args = append(args, "--pid", strconv.Itoa(trainer.Process.Pid))
			} else {
				args = append(args, "--sentinel", sentinel)
			}
			p := startAgent(t, args...)
			appendFile(t, path, `{"step": 1, "loss": 1}`+"\n")
			eventually(t, 15*time.Second, "first point", func() bool { return metricCount(srv, "metrics", "loss") == 1 })
			// The last lines, one without its newline, just before the end.
			appendFile(t, path, `{"step": 2, "loss": 0.5}`+"\n"+`{"step": 3, "loss": 0.25}`)
			if mode == "pid" {
				trainer.Process.Kill()
				trainer.Wait()
			} else {
				os.WriteFile(sentinel, nil, 0o644)
			}
			if code := p.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d\n%s", code, p.stderr)
			}
			r, _ := runByName(srv, "metrics")
			if got := metricCount(srv, "metrics", "loss"); got != 3 || r.Status != "COMPLETED" {
				t.Errorf("points %d, status %s; want 3 and COMPLETED\n%s", got, r.Status, p.stderr)
			}
		})
	}
}

// TestDryRun: --dry-run prints the requests, sends nothing, moves no
// checkpoint.
func TestDryRun(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	appendFile(t, path, `{"step": 1, "loss": 0.5, "phase": "warm", "_tags": ["t1"]}`+"\n")
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [\"%s\"]\n", path))
	cmd := exec.Command(agentBin, "backfill", "-c", cfg, "--dry-run")
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	out := string(stdout)
	for _, want := range []string{`"request":"POST /api/runs/create"`, `"request":"POST /ingest/metrics"`,
		`{"time":`, `"loss":0.5`, `"request":"POST /ingest/data"`, `"request":"POST /api/runs/tags/update"`,
		`"request":"POST /api/runs/status/update"`} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %s:\n%s", want, out)
		}
	}
	if c := srv.Counters(); c.Requests != 0 || len(srv.Runs()) != 0 {
		t.Errorf("dry run reached the server: %+v", c)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "state.json")); err == nil {
		t.Error("dry run wrote a checkpoint")
	}
	// A real backfill afterwards sends everything.
	if code, out := execAgent(t, 30*time.Second, "backfill", "-c", cfg); code != 0 || metricCount(srv, "m", "loss") != 1 {
		t.Errorf("backfill after the dry run: %d\n%s", code, out)
	}
}
