package main

// Delivery under crashes, outages and rotation, through the built binary
// and the mlop stand-in (internal/mlopfake, a test double). The short
// versions run in `make test`; MLOP_AGENT_CHAOS=1 (`make chaos`) runs the
// long ones.

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

func chaosLong() bool { return os.Getenv("MLOP_AGENT_CHAOS") != "" }

// workload describes generated metric files: each line has metricsPerLine
// metrics whose values encode (file, step, metric), and every stringEvery-th
// line a string-series value.
type workload struct {
	files          int
	lines          int
	metricsPerLine int
	stringEvery    int
}

func (w workload) value(file, step, m int) float64 {
	return float64(file*1_000_000_000 + step*100 + m)
}

func (w workload) line(file, step int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"step": %d, "time": %d`, step, 1_700_000_000_000+int64(step))
	for m := 0; m < w.metricsPerLine; m++ {
		fmt.Fprintf(&b, `, "m%d": %s`, m, strconv.FormatFloat(w.value(file, step, m), 'f', -1, 64))
	}
	if w.stringEvery > 0 && step%w.stringEvery == 0 {
		fmt.Fprintf(&b, `, "note": "f%d-s%d"`, file, step)
	}
	b.WriteString("}\n")
	return b.String()
}

func (w workload) fileName(dir string, f int) string {
	return filepath.Join(dir, fmt.Sprintf("run%02d.jsonl", f))
}

// write creates the files with every line.
func (w workload) write(t *testing.T, dir string) {
	t.Helper()
	for f := 0; f < w.files; f++ {
		fh, err := os.Create(w.fileName(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		bw := bufio.NewWriter(fh)
		for s := 1; s <= w.lines; s++ {
			bw.WriteString(w.line(f, s))
		}
		bw.Flush()
		fh.Close()
	}
}

// deliveryReport is what the stand-in holds compared with the workload.
type deliveryReport struct {
	points, raw, missing, wrong int
	strings, stringRows         int
	missingStrings              int
}

// check compares the stand-in's runs with the workload, up to lines
// written per file (nil: w.lines for all).
func (w workload) check(t *testing.T, srv *mlopfake.Server, written []int) deliveryReport {
	t.Helper()
	var rep deliveryReport
	for f := 0; f < w.files; f++ {
		n := w.lines
		if written != nil {
			n = written[f]
		}
		name := fmt.Sprintf("run%02d", f)
		r, ok := runByName(srv, name)
		if !ok {
			t.Errorf("run %s missing", name)
			rep.missing += n * w.metricsPerLine
			continue
		}
		dedup := srv.Metrics(r.ID)
		for m := 0; m < w.metricsPerLine; m++ {
			pts := dedup[fmt.Sprintf("m%d", m)]
			byStep := map[uint64]float64{}
			for _, p := range pts {
				byStep[p.Step] = p.Value
			}
			for s := 1; s <= n; s++ {
				v, ok := byStep[uint64(s)]
				switch {
				case !ok:
					rep.missing++
				case v != w.value(f, s, m):
					rep.wrong++
				}
			}
			if len(pts) != n {
				t.Errorf("run %s m%d: %d points in the deduplicated view, want %d", name, m, len(pts), n)
			}
			rep.points += len(pts)
		}
		rep.raw += srv.RawMetricCount(r.ID)
		want := map[string]bool{}
		if w.stringEvery > 0 {
			for s := w.stringEvery; s <= n; s += w.stringEvery {
				want[fmt.Sprintf("f%d-s%d", f, s)] = true
			}
		}
		got := map[string]int{}
		for _, d := range srv.Data(r.ID) {
			got[d.Data]++
			rep.stringRows++
		}
		for v := range want {
			if got[v] == 0 {
				rep.missingStrings++
			}
		}
		rep.strings += len(want)
	}
	return rep
}

func chaosConfig(t *testing.T, dir string, srv *mlopfake.Server, extra string) string {
	return writeConfig(t, dir, srv, fmt.Sprintf(`batch:
  max_lines: 250
checkpoint:
  interval: 200ms
%ssources:
  - name: chaos
    format: jsonl
    paths: ["%s/data/*.jsonl"]
    idle_timeout: never
`, extra, dir))
}

// TestCrashBackfill SIGKILLs a backfill at random moments, restarting it each
// time, and checks the server ends with every point exactly once in the
// deduplicated view and a bounded number of re-sent rows.
func TestCrashBackfill(t *testing.T) {
	w := workload{files: 4, lines: 6250, metricsPerLine: 8, stringEvery: 50} // 200,000 points
	kills := 20
	if chaosLong() {
		w.lines, kills = 25000, 60 // 800,000 points
	}
	srv := startFake(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	w.write(t, filepath.Join(dir, "data"))
	cfg := chaosConfig(t, dir, srv, "")
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	killed := 0
	for i := 0; i < kills; i++ {
		p := startAgent(t, "backfill", "-c", cfg)
		time.Sleep(time.Duration(30+rng.Intn(400)) * time.Millisecond)
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Signal(syscall.SIGKILL)
		}
		code := p.wait(t, 30*time.Second)
		if code == -1 {
			killed++
		} else if code != 0 {
			t.Fatalf("backfill %d exited %d:\n%s", i, code, p.stderr)
		}
	}
	code, out := execAgent(t, 120*time.Second, "backfill", "-c", cfg)
	if code != 0 {
		t.Fatalf("final backfill exited %d:\n%s", code, out)
	}
	rep := w.check(t, srv, nil)
	total := w.files * w.lines * w.metricsPerLine
	dupRows := rep.raw - rep.points
	dupStrings := rep.stringRows - rep.strings
	t.Logf("kills %d (of %d starts); points %d/%d; raw rows %d (re-sent %d); string rows %d for %d values (duplicates %d)",
		killed, kills, rep.points, total, rep.raw, dupRows, rep.stringRows, rep.strings, dupStrings)
	if rep.missing > 0 || rep.wrong > 0 || rep.missingStrings > 0 {
		t.Fatalf("lost: %d points missing, %d wrong, %d strings missing", rep.missing, rep.wrong, rep.missingStrings)
	}
	if rep.points != total {
		t.Fatalf("deduplicated points = %d, want %d", rep.points, total)
	}
	// docs/design.md §2: a crash re-sends at most the batches in flight plus
	// the stream windows; non-metric rows at most one batch per run and
	// endpoint.
	const batchLines = 250
	perKillPoints := w.files * 8 * batchLines * w.metricsPerLine
	if dupRows > killed*perKillPoints {
		t.Errorf("re-sent %d metric rows over %d kills, bound %d", dupRows, killed, killed*perKillPoints)
	}
	if dupStrings > killed*w.files*batchLines {
		t.Errorf("duplicated %d string rows over %d kills, bound %d (one batch per run per kill)", dupStrings, killed, killed*w.files*batchLines)
	}
}

// appender writes workload lines to its files at a steady pace.
type appender struct {
	w       workload
	dir     string
	mu      sync.Mutex
	written []int
	stop    chan struct{}
	done    chan struct{}
}

func startAppender(t *testing.T, w workload, dir string, perTick int, tick time.Duration) *appender {
	a := &appender{w: w, dir: dir, written: make([]int, w.files), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-tk.C:
			}
			full := true
			for f := 0; f < w.files; f++ {
				a.mu.Lock()
				from := a.written[f]
				a.mu.Unlock()
				to := min(from+perTick, w.lines)
				if to > from {
					full = false
					var b strings.Builder
					for s := from + 1; s <= to; s++ {
						b.WriteString(w.line(f, s))
					}
					appendFile(t, w.fileName(dir, f), b.String())
					a.mu.Lock()
					a.written[f] = to
					a.mu.Unlock()
				}
			}
			if full {
				return
			}
		}
	}()
	return a
}

func (a *appender) finish() []int {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.written...)
}

// TestCrashRun SIGKILLs `run` at random moments while a writer keeps
// appending, restarting it each time.
func TestCrashRun(t *testing.T) {
	w := workload{files: 4, lines: 3000, metricsPerLine: 8, stringEvery: 25}
	kills := 10
	if chaosLong() {
		w.lines, kills = 20000, 40
	}
	srv := startFake(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	cfg := chaosConfig(t, dir, srv, "")
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	app := startAppender(t, w, data, 40, 20*time.Millisecond)
	killed := 0
	for i := 0; i < kills; i++ {
		p := startAgent(t, "run", "-c", cfg)
		time.Sleep(time.Duration(100+rng.Intn(500)) * time.Millisecond)
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(t, 30*time.Second)
		killed++
	}
	written := app.finish()
	p := startAgent(t, "run", "-c", cfg)
	p.waitReady(t)
	want := 0
	for _, n := range written {
		want += n * w.metricsPerLine
	}
	eventually(t, 120*time.Second, "every written point", func() bool {
		got := 0
		for f := 0; f < w.files; f++ {
			if r, ok := runByName(srv, fmt.Sprintf("run%02d", f)); ok {
				for _, pts := range srv.Metrics(r.ID) {
					got += len(pts)
				}
			}
		}
		return got >= want
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("run exited %d after SIGTERM:\n%s", code, p.stderr)
	}
	rep := w.check(t, srv, written)
	t.Logf("kills %d; points %d/%d; raw rows %d (re-sent %d); string rows %d for %d values",
		killed, rep.points, want, rep.raw, rep.raw-rep.points, rep.stringRows, rep.strings)
	if rep.missing > 0 || rep.wrong > 0 || rep.missingStrings > 0 {
		t.Fatalf("lost: %d points missing, %d wrong, %d strings missing", rep.missing, rep.wrong, rep.missingStrings)
	}
	if dup := rep.stringRows - rep.strings; dup > killed*w.files*250 {
		t.Errorf("duplicated %d string rows over %d kills", dup, killed)
	}
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

// TestOutage runs `run` against a server failing a third of requests (500,
// 503, 429 with Retry-After), storing some and answering 500 anyway, and
// refusing connections for a window, while a writer keeps appending: nothing
// is lost, nothing is duplicated in the deduplicated view, the agent never
// exits, and its memory stays bounded.
func TestOutage(t *testing.T) {
	w := workload{files: 3, lines: 3000, metricsPerLine: 5, stringEvery: 20}
	outage := 3 * time.Second
	if chaosLong() {
		w.lines, outage = 40000, 30*time.Second
	}
	const rssBoundKiB = 100 << 10 // 100 MiB with buffer.max_bytes 8 MiB
	srv := startFake(t)
	if err := srv.SetFaults(mlopfake.Faults{FailRate: 0.33, AcceptThenFailRate: 0.1, Seed: time.Now().UnixNano()}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	cfg := chaosConfig(t, dir, srv, "buffer:\n  max_bytes: 8MiB\n")
	app := startAppender(t, w, data, 25, 20*time.Millisecond)
	p := startBinary(t, agentBinPlain, "run", "-c", cfg)

	var maxRSS int
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r := rssKiB(p.cmd.Process.Pid); r > maxRSS {
				maxRSS = r
			}
			select {
			case <-stopSample:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	time.Sleep(time.Second)
	srv.DownFor(outage, mlopfake.AllServices...)
	// A file that first appears while the server is down: its run is
	// created when the server returns.
	late := filepath.Join(data, "late.jsonl")
	var lb strings.Builder
	for s := 1; s <= 100; s++ {
		fmt.Fprintf(&lb, `{"step": %d, "x": %d}`+"\n", s, s)
	}
	appendFile(t, late, lb.String())
	time.Sleep(outage)
	written := app.finish()
	want := 0
	for _, n := range written {
		want += n * w.metricsPerLine
	}
	eventually(t, 180*time.Second, "every written point despite the faults", func() bool {
		if p.cmd.ProcessState != nil {
			t.Fatalf("the agent exited during the outage:\n%s", p.stderr)
		}
		got := 0
		for f := 0; f < w.files; f++ {
			if r, ok := runByName(srv, fmt.Sprintf("run%02d", f)); ok {
				for _, pts := range srv.Metrics(r.ID) {
					got += len(pts)
				}
			}
		}
		return got >= want && metricCount(srv, "late", "x") == 100
	})
	close(stopSample)
	<-sampled
	srv.SetFaults(mlopfake.Faults{})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("run exited %d after SIGTERM:\n%s", code, p.stderr)
	}
	rep := w.check(t, srv, written)
	c := srv.Counters()
	t.Logf("points %d/%d; raw rows %d; injected failures %d, accepted-then-500 %d; outage %v; peak RSS %d MiB",
		rep.points, want, rep.raw, c.InjectedFail, c.InjectedAcceptThenFail, outage, maxRSS>>10)
	if rep.missing > 0 || rep.wrong > 0 || rep.missingStrings > 0 {
		t.Fatalf("lost: %d points missing, %d wrong, %d strings missing", rep.missing, rep.wrong, rep.missingStrings)
	}
	if maxRSS > rssBoundKiB {
		t.Errorf("peak RSS %d MiB, bound %d MiB", maxRSS>>10, rssBoundKiB>>20)
	}
	if c.InjectedFail == 0 || c.InjectedAcceptThenFail == 0 {
		t.Errorf("faults were not exercised: %+v", c)
	}
}

// TestRotation runs the binary while a writer appends to one file and
// rotates it mid-way, in each of the ways tools rotate files: every line
// arrives exactly once (checked on the raw rows, not the deduplicated
// view).
func TestRotation(t *testing.T) {
	n := 600
	if chaosLong() {
		n = 20000
	}
	type rotator func(t *testing.T, path string, caughtUp func())
	cases := []struct {
		name   string
		glob   string
		rotate rotator
	}{
		{"rename", "m.jsonl", func(t *testing.T, path string, _ func()) { os.Rename(path, path+".1") }},
		{"rename to a matched name", "m.jsonl*", func(t *testing.T, path string, _ func()) { os.Rename(path, path+".1") }},
		{"copytruncate", "m.jsonl", func(t *testing.T, path string, _ func()) {
			data, _ := os.ReadFile(path)
			os.WriteFile(path+".1", data, 0o644)
			os.Truncate(path, 0)
		}},
		{"truncate", "m.jsonl", func(t *testing.T, path string, caughtUp func()) {
			caughtUp() // bytes written and not yet read are gone with a plain truncation
			os.Truncate(path, 0)
		}},
		{"delete and recreate", "m.jsonl", func(t *testing.T, path string, caughtUp func()) {
			caughtUp()
			os.Remove(path)
		}},
		{"atomic replace", "m.jsonl", func(t *testing.T, path string, _ func()) {
			data, _ := os.ReadFile(path)
			os.WriteFile(path+".tmp", data, 0o644)
			os.Rename(path+".tmp", path)
		}},
		{"symlink", "m.jsonl", nil}, // handled below
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t)
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			os.MkdirAll(data, 0o755)
			path := filepath.Join(data, "m.jsonl")
			target := path
			if tc.rotate == nil {
				// The watched path is a symlink; rotation points it at a new file.
				target = filepath.Join(data, "gen1.data")
				os.WriteFile(target, nil, 0o644)
				os.Symlink(target, path)
			}
			cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - name: r\n    format: jsonl\n    paths: [\"%s/%s\"]\n    run:\n      name: rot\n", data, tc.glob))
			p := startAgent(t, "run", "-c", cfg)
			// The first lines must be seen before the rotation moves them
			// out of the glob: wait until the agent watches.
			p.waitReady(t)
			caughtUp := func(upto int) func() {
				return func() {
					eventually(t, 20*time.Second, "the agent to catch up", func() bool { return metricCount(srv, "rot", "v") >= upto })
				}
			}
			for i := 1; i <= n; i++ {
				if i == n/2 {
					if tc.rotate == nil {
						next := filepath.Join(data, "gen2.data")
						os.WriteFile(next, nil, 0o644)
						os.Symlink(next, path+".new")
						os.Rename(path+".new", path)
						target = next
					} else {
						tc.rotate(t, target, caughtUp(i-1))
					}
				}
				appendFile(t, target, fmt.Sprintf(`{"step": %d, "v": %d}`+"\n", i, i))
				if i%20 == 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
			eventually(t, 30*time.Second, "every line", func() bool { return metricCount(srv, "rot", "v") >= n })
			// A clean stop delivers everything read before it exits, so a
			// duplicate, if any, is in the raw rows once it has exited.
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.stderr)
			}
			r, _ := runByName(srv, "rot")
			raw := srv.RawMetrics(r.ID)["v"]
			seen := map[uint64]int{}
			for _, pt := range raw {
				seen[pt.Step]++
				if pt.Value != float64(pt.Step) {
					t.Fatalf("step %d has value %v", pt.Step, pt.Value)
				}
			}
			for i := 1; i <= n; i++ {
				if seen[uint64(i)] != 1 {
					t.Errorf("line %d arrived %d times", i, seen[uint64(i)])
				}
			}
			if len(srv.Runs()) != 1 {
				t.Errorf("runs = %v, want the one run", runNames(srv))
			}
		})
	}
}

func runNames(s *mlopfake.Server) []string {
	var out []string
	for _, r := range s.Runs() {
		out = append(out, r.Name)
	}
	return out
}
