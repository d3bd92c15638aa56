package main

// The first hour of a new user (issue 13), through the built binary: every
// command tells the truth, loudly and fast.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/config"
	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/presets"
)

// One list of formats: config validation, the registry, the README's
// formats table and the -h texts of run, backfill and check agree.
func TestFormatsAgree(t *testing.T) {
	names := presets.FormatNames()
	known := config.KnownFormats()
	slices.Sort(known)
	if !slices.Equal(known, names) {
		t.Errorf("config.KnownFormats %v, the registry %v", known, names)
	}
	readme := string(mustRead(t, filepath.Join("..", "..", "README.md")))
	_, section, ok := strings.Cut(readme, "\n## Formats and presets\n")
	if !ok {
		t.Fatal("README: no Formats and presets section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var table []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\|").FindAllStringSubmatch(section, -1) {
		table = append(table, m[1])
	}
	slices.Sort(table)
	if !slices.Equal(table, names) {
		t.Errorf("README formats table %v, the registry %v", table, names)
	}
	want := "Formats: " + strings.Join(names, ", ") + "."
	for _, cmd := range []string{"run", "backfill", "check"} {
		code, out := execAgent(t, 20*time.Second, cmd, "-h")
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%s -h (exit %d) lacks %q:\n%s", cmd, code, want, out)
		}
	}
}

// check accepts every format run accepts (it rejected the presets), and
// backfill builds a source of each.
func TestCheckAcceptsEveryFormat(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("sources:\n")
	for _, f := range presets.FormatNames() {
		fmt.Fprintf(&b, "  - name: src-%s\n    format: %s\n    paths: [\"%s/%s/**\"]\n", f, f, dir, f)
	}
	cfg := writeConfig(t, dir, srv, b.String())
	code, out := execAgent(t, 30*time.Second, "check", "-c", cfg, "--offline")
	if code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("check --offline: exit %d\n%s", code, out)
	}
	code, out = execAgent(t, 60*time.Second, "backfill", "-c", cfg, "--dry-run")
	if code != 3 {
		t.Fatalf("backfill of nothing: exit %d, want 3\n%s", code, out)
	}
	for _, f := range presets.FormatNames() {
		if !strings.Contains(out, fmt.Sprintf(`msg="found nothing to import" source=src-%s `, f)) {
			t.Errorf("backfill did not run source src-%s:\n%s", f, out)
		}
	}
}

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// logTime is the time= of the first log line containing what.
func logTime(t *testing.T, out, what string) time.Time {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, what) {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		return tm
	}
	t.Fatalf("no line with %q:\n%s", what, out)
	return time.Time{}
}

// A server that is down is said at WARN with the real error within two
// seconds (by the agent's own clock), the data waits, the recovery is an
// INFO line, and a clean stop ends with what was delivered and why.
func TestServerDownIsLoud(t *testing.T) {
	dir := t.TempDir()
	api, ingest, py := freeAddr(t), freeAddr(t), freeAddr(t)
	data := filepath.Join(dir, "runs", "a", "metrics.jsonl")
	os.MkdirAll(filepath.Dir(data), 0o755)
	appendFile(t, data, `{"step": 1, "loss": 0.5}`+"\n"+`{"step": 2, "loss": 0.25}`+"\n")
	cfg := fmt.Sprintf(`server:
  url_api: http://%s
  url_ingest: http://%s
  url_py: http://%s
  api_key: %s
  retry:
    initial_backoff: 50ms
    max_backoff: 200ms
project: e2e
state_dir: %s
watch:
  poll_interval: 100ms
sources:
  - name: s
    format: jsonl
    paths: ["%s/runs/*/metrics.jsonl"]
`, api, ingest, py, mlopfake.DefaultKey, filepath.Join(dir, "state"), dir)
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "run", "-c", path)
	eventually(t, 30*time.Second, "the WARN line of a refused connection", func() bool {
		return strings.Contains(p.stderr.String(), `level=WARN msg="server not answering; retrying, data is kept"`)
	})
	out := p.stderr.String()
	warn := logTime(t, out, "server not answering")
	if d := warn.Sub(logTime(t, out, "mlop-agent starting")); d > 2*time.Second {
		t.Errorf("the first failure was logged %v after the start, want under 2s", d)
	}
	if !strings.Contains(out, "connection refused") {
		t.Errorf("the WARN line does not name the real error:\n%s", out)
	}
	srv, err := mlopfake.Start(mlopfake.Options{APIAddr: api, IngestAddr: ingest, PyAddr: py})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	eventually(t, 60*time.Second, "the data after the recovery", func() bool { return metricCount(srv, "a", "loss") == 2 })
	eventually(t, 30*time.Second, "the recovery line", func() bool {
		return strings.Contains(p.stderr.String(), `level=INFO msg="server answering again"`)
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.stderr)
	}
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{`msg="stopped: everything read was delivered"`, `reason="received SIGTERM"`, "points_sent=2", "runs=1"} {
		if !strings.Contains(last, want) {
			t.Errorf("the closing line lacks %s: %s", want, last)
		}
	}
}

// check against a closed port, an unknown host or with a wrong key fails
// within seconds and names the cause.
func TestCheckFailsFastNamingTheCause(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	closed := "http://" + freeAddr(t)
	for _, c := range []struct {
		name, url, key, want string
	}{
		{"closed port", closed, mlopfake.DefaultKey, "connection refused"},
		{"unknown host", "http://no-such-host.invalid:8080", mlopfake.DefaultKey, "no such host"},
		{"wrong key", srv.APIURL(), "mlpi_wrongkey", "the API key (from config file " + filepath.Join(dir, "agent.yaml") + " (server.api_key)) was refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := c.url
			ingest, py := url, url
			if c.name == "wrong key" {
				ingest, py = srv.IngestURL(), srv.PyURL()
			}
			cfg := fmt.Sprintf("server:\n  url_api: %s\n  url_ingest: %s\n  url_py: %s\n  api_key: %s\nproject: p\nstate_dir: %s\nsources:\n  - name: s\n    format: jsonl\n    paths: [\"%s/*.jsonl\"]\n",
				url, ingest, py, c.key, filepath.Join(dir, "state"), dir)
			path := filepath.Join(dir, "agent.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			code, out := execAgent(t, 30*time.Second, "check", "-c", path)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("check took %v, want under 5s", d)
			}
			if code != 2 || !strings.Contains(out, c.want) {
				t.Errorf("exit %d, want 2 and %q:\n%s", code, c.want, out)
			}
			if strings.Contains(out, c.key) {
				t.Errorf("the key is printed:\n%s", out)
			}
		})
	}
}

// Usage errors exit 2 with one line and a hint, never the whole usage.
func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--bogus"}, {"check", "--bogus"}, {"import", "neptune", "--bogus"}, {"run", "-c"},
		{"backfill", "extra"}, {"import", "neptune"}, {"nosuchcommand"},
	} {
		code, out := execAgent(t, 20*time.Second, args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 2 || len(lines) != 2 || !strings.HasPrefix(lines[1], "Run 'mlop-agent ") || strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, want 2 with an error line and a hint:\n%s", args, code, out)
		}
	}
	code, out := execAgent(t, 20*time.Second, "run", "-h")
	if code != 0 || !strings.Contains(out, "  -c, --config FILE\n") || !strings.Contains(out, "  --dry-run\n") {
		t.Errorf("run -h: exit %d, flags not as the README writes them:\n%s", code, out)
	}
}

// With no run.name, runs/<name>/metrics.jsonl gives runs named <name>;
// the external id is the one earlier versions gave.
func TestDefaultRunNames(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	for _, n := range []string{"resnet-a", "resnet-b"} {
		p := filepath.Join(dir, "runs", n, "metrics.jsonl")
		os.MkdirAll(filepath.Dir(p), 0o755)
		appendFile(t, p, `{"step": 1, "loss": 1}`+"\n")
	}
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: train\n    format: jsonl\n    paths: [\"%s/runs/*/metrics.jsonl\"]\n", dir))
	if code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg); code != 0 {
		t.Fatalf("backfill: exit %d\n%s", code, out)
	}
	got := runNames(srv)
	slices.Sort(got)
	if !slices.Equal(got, []string{"resnet-a", "resnet-b"}) {
		t.Errorf("run names %v, want [resnet-a resnet-b]", got)
	}
	for _, r := range srv.Runs() {
		want := "mlop-agent:train:" + filepath.Join(dir, "runs", r.Name, "metrics.jsonl")
		if r.ExternalID != want {
			t.Errorf("run %s: external id %q, want %q", r.Name, r.ExternalID, want)
		}
	}
}

// Nothing is silent: an import of a directory with no Neptune data, a
// source whose every line is bad, files the data refers to that are not
// here, and paths a glob matches that are no files each end with exit 3
// and say why, once per file.
func TestSilentNothingExits3(t *testing.T) {
	srv := startFake(t)
	t.Run("import of no Neptune data", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello\n"), 0o644)
		code, out := execImport(t, srv, "neptune", dir, "--project", "p", "--state-dir", filepath.Join(dir, "st"), "--no-progress")
		if code != 3 || !strings.Contains(out, `msg="found nothing to import"`) || !strings.Contains(out, "no neptune data matches") {
			t.Errorf("exit %d, want 3 and the reason:\n%s", code, out)
		}
	})
	t.Run("every line bad", func(t *testing.T) {
		dir := t.TempDir()
		appendFile(t, filepath.Join(dir, "a.jsonl"), "[1]\n[2]\nnot json\n")
		cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [\"%s/*.jsonl\"]\n", dir))
		code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg)
		if code != 3 || strings.Count(out, `msg="file gave nothing"`) != 1 || !strings.Contains(out, "reason=no_usable_records") ||
			!strings.Contains(out, "3 record(s) read, every one bad") {
			t.Errorf("exit %d, want 3 and one line for the file:\n%s", code, out)
		}
	})
	t.Run("missing upload files", func(t *testing.T) {
		dir := t.TempDir()
		src := copyNeptuneFixture(t, "n1-async-colab-2021", dir)
		code, out := execImport(t, srv, "neptune", src, "--project", "p", "--state-dir", filepath.Join(dir, "st"), "--no-progress")
		prefix := "/home/jakub/Projects/examples/integrations/colab"
		if code != 3 || !strings.Contains(out, "--path-map "+prefix+"=DIR") {
			t.Errorf("exit %d, want 3 and a --path-map hint for %s:\n%s", code, prefix, out)
		}
		// Re-rooted where the file is now, the import is complete.
		there := filepath.Join(dir, "colab")
		os.MkdirAll(there, 0o755)
		os.WriteFile(filepath.Join(there, "file.txt"), []byte("sample\n"), 0o644)
		code, out = execImport(t, srv, "neptune", src, "--project", "p", "--state-dir", filepath.Join(dir, "st2"), "--no-progress",
			"--path-map", prefix+"="+there)
		if code != 0 {
			t.Errorf("with --path-map: exit %d\n%s", code, out)
		}
	})
	t.Run("matched paths that are not files", func(t *testing.T) {
		dir := t.TempDir()
		d := filepath.Join(dir, "d")
		os.MkdirAll(filepath.Join(d, "sub.jsonl"), 0o755)
		appendFile(t, filepath.Join(d, "good.jsonl"), `{"step": 1, "x": 1}`+"\n")
		if err := syscall.Mkfifo(filepath.Join(d, "pipe.jsonl"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Symlink(filepath.Join(d, "loop2.jsonl"), filepath.Join(d, "loop1.jsonl"))
		os.Symlink(filepath.Join(d, "loop1.jsonl"), filepath.Join(d, "loop2.jsonl"))
		png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 64)...)
		os.WriteFile(filepath.Join(d, "plot.jsonl"), png, 0o644)
		cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [\"%s/*.jsonl\"]\n", d))
		code, out := execAgent(t, 30*time.Second, "check", "-c", cfg, "--offline")
		for _, w := range []string{"sub.jsonl matches but is not read: a directory", "pipe.jsonl matches but is not read: not a regular file",
			"loop1.jsonl matches but is not read: a symlink loop", "source s: 2 path(s) match"} {
			if !strings.Contains(out, w) {
				t.Errorf("check lacks %q (exit %d):\n%s", w, code, out)
			}
		}
		code, out = execAgent(t, 60*time.Second, "backfill", "-c", cfg)
		if code != 3 {
			t.Errorf("backfill: exit %d, want 3\n%s", code, out)
		}
		for _, f := range []string{"sub.jsonl", "pipe.jsonl", "loop1.jsonl", "loop2.jsonl", "plot.jsonl"} {
			if n := strings.Count(out, `msg="file not read" source=s path=`+filepath.Join(d, f)+" "); n != 1 {
				t.Errorf("%s: %d lines, want 1:\n%s", f, n, out)
			}
		}
		if strings.Contains(out, "not an object") || !strings.Contains(out, "reason=binary") {
			t.Errorf("the PNG was not recognised as binary:\n%s", out)
		}
		if metricCount(srv, "good", "x") != 1 {
			t.Errorf("the good file's point did not arrive")
		}
	})
}

// copyNeptuneFixture copies testdata/neptune/<name> into dir and returns
// its .neptune directory.
func copyNeptuneFixture(t *testing.T, name, dir string) string {
	t.Helper()
	dst := filepath.Join(dir, name)
	copyDirTree(t, filepath.Join("..", "..", "testdata", "neptune", name), dst)
	return filepath.Join(dst, ".neptune")
}

// A SIGTERM at any moment after main begins, even before the agent has
// read its configuration, is a clean stop (exit 0, or 4 with data
// unsent), never a death by the signal. (Before main, while the Go runtime
// starts, no program can catch it.)
func TestSIGTERMRightAfterStart(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: s\n    format: jsonl\n    paths: [\"%s/*.jsonl\"]\n", dir))
	for i := 0; i < 10; i++ {
		started := filepath.Join(dir, fmt.Sprint("started-", i))
		cmd := exec.Command(agentBin, "run", "-c", cfg)
		cmd.Env = append(os.Environ(), "MLOP_AGENT_TEST_STARTED="+started)
		p := startCmd(t, cmd)
		eventually(t, 30*time.Second, "main to begin", func() bool { _, err := os.Stat(started); return err == nil })
		p.cmd.Process.Signal(syscall.SIGTERM)
		code := p.wait(t, 30*time.Second)
		if code != 0 && code != 4 {
			t.Fatalf("try %d: exit %d (%v), want 0 or 4:\n%s", i, code, p.cmd.ProcessState, p.stderr)
		}
	}
}

// The README names every bad-record reason of the one table.
func TestReasonsDocumented(t *testing.T) {
	readme := string(mustRead(t, filepath.Join("..", "..", "README.md")))
	_, sec, _ := strings.Cut(readme, "mlop_agent_records_rejected_total{reason}")
	sec, _, _ = strings.Cut(sec, "\n* ")
	for _, r := range parsers.BadReasons {
		if !strings.Contains(sec, "`"+r+"`") {
			t.Errorf("README's records_rejected reasons lack %s", r)
		}
	}
}
