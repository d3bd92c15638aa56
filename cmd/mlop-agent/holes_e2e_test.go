package main

// End-to-end tests of the ways to lose data found by trying the agent as an
// operator's worst day would (issue "Holes in the delivery guarantee"):
// each case runs the built binary against the strict stand-in and checks
// every line against what the file held.

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// dedupEquals checks that the deduplicated view of metric m of the run
// holds exactly want (step -> value).
func dedupEquals(t *testing.T, srv *mlopfake.Server, runID int64, m string, want map[uint64]float64) {
	t.Helper()
	got := srv.Metrics(runID)[m]
	if len(got) != len(want) {
		t.Errorf("%s: %d steps in the deduplicated view, want %d", m, len(got), len(want))
	}
	bad := 0
	for _, p := range got {
		w, ok := want[p.Step]
		if !ok || (w != p.Value && !(math.IsNaN(w) && math.IsNaN(p.Value))) {
			if bad++; bad <= 5 {
				t.Errorf("%s step %d = %v, want %v (present %v)", m, p.Step, p.Value, w, ok)
			}
		}
	}
}

// rawOnce checks that every step of metric m was stored exactly once in the
// raw table (no loss and no duplicate).
func rawOnce(t *testing.T, srv *mlopfake.Server, runID int64, m string, steps int) {
	t.Helper()
	seen := map[uint64]int{}
	for _, p := range srv.RawMetrics(runID)[m] {
		seen[p.Step]++
	}
	for s := 1; s <= steps; s++ {
		if seen[uint64(s)] != 1 {
			t.Errorf("%s step %d stored %d times in the raw table, want 1", m, s, seen[uint64(s)])
			return
		}
	}
}

// TestRewriteWithChangedContent: a file rewritten in place with different
// content while `run` follows it is read again from the start, also when
// the new content is longer than what was read (the size alone looks like
// an append). The deduplicated view ends equal to the file.
func TestRewriteWithChangedContent(t *testing.T) {
	t.Run("jsonl", func(t *testing.T) {
		srv := startFake(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "m.jsonl")
		var b strings.Builder
		for s := 1; s <= 100; s++ {
			fmt.Fprintf(&b, `{"step":%d,"loss":%d}`+"\n", s, s)
		}
		os.WriteFile(path, []byte(b.String()), 0o644)
		cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - {name: m, format: jsonl, paths: [%q], run: {name: r}}\n", path))
		p := startAgent(t, "run", "-c", cfg)
		p.waitReady(t)
		eventually(t, 30*time.Second, "the first 100 lines", func() bool { return metricCount(srv, "r", "loss") == 100 })
		// open('w') and 300 different lines in one write.
		b.Reset()
		want := map[uint64]float64{}
		for s := 1; s <= 300; s++ {
			fmt.Fprintf(&b, `{"step":%d,"loss":%d}`+"\n", s, 1000+s)
			want[uint64(s)] = float64(1000 + s)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		r, _ := runByName(srv, "r")
		eventually(t, 30*time.Second, "the rewritten content", func() bool {
			pts := srv.Metrics(r.ID)["loss"]
			return len(pts) == 300 && pts[0].Value == 1001 && pts[50].Value == 1051
		})
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("run exited %d:\n%s", code, p.stderr)
		}
		dedupEquals(t, srv, r.ID, "loss", want)
		if !strings.Contains(p.stderr.String(), "rewritten in place") {
			t.Errorf("the rewrite was not logged:\n%s", p.stderr)
		}
		noRejections(t, srv)
	})

	// PyTorch Lightning's CSVLogger (lightning/fabric/loggers/csv_logs.py,
	// _ExperimentWriter.save): when a key appears for the first time it
	// rewrites metrics.csv with the new header and every row so far, then
	// appends; otherwise it appends. Here val_loss appears at step 200.
	t.Run("lightning header change", func(t *testing.T) {
		srv := startFake(t)
		dir := t.TempDir()
		run := filepath.Join(dir, "lightning_logs", "version_0")
		os.MkdirAll(run, 0o755)
		path := filepath.Join(run, "metrics.csv")
		type row struct {
			step       int
			train, val string
		}
		var rows []row
		keys := []string{"epoch", "step", "train_loss"}
		write := func(rewrite bool, from int) {
			var b strings.Builder
			if rewrite {
				b.WriteString(strings.Join(keys, ",") + "\n")
				from = 0
			}
			for _, r := range rows[from:] {
				cells := []string{fmt.Sprint(r.step / 100), fmt.Sprint(r.step), r.train}
				if len(keys) == 4 {
					cells = append(cells, r.val)
				}
				b.WriteString(strings.Join(cells, ",") + "\n")
			}
			flag := os.O_WRONLY | os.O_CREATE | os.O_APPEND
			if rewrite {
				flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(path, flag, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(b.String())
			f.Close()
		}
		for s := 0; s < 200; s++ {
			rows = append(rows, row{step: s, train: fmt.Sprintf("%.2f", 2-float64(s)/100)})
		}
		write(true, 0)
		cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - {name: l, format: lightning, paths: [%q]}\n",
			filepath.Join(dir, "lightning_logs", "*", "metrics.csv")))
		p := startAgent(t, "run", "-c", cfg)
		p.waitReady(t)
		eventually(t, 30*time.Second, "steps 0-199", func() bool { return metricCount(srv, "version_0", "train_loss") == 200 })
		// val_loss appears: rewrite with the new header, then append.
		keys = append(keys, "val_loss")
		n := len(rows)
		for s := 200; s < 260; s++ {
			rows = append(rows, row{step: s, train: fmt.Sprintf("%.2f", 2-float64(s)/100)})
			if s%10 == 9 {
				rows = append(rows, row{step: s, val: fmt.Sprintf("%.3f", 3-float64(s)/100)})
			}
		}
		rows0 := rows
		rows = rows[:n]
		write(true, 0)
		rows = rows0
		write(false, n)
		r, _ := runByName(srv, "version_0")
		wantTrain, wantVal := map[uint64]float64{}, map[uint64]float64{}
		for _, x := range rows {
			var v float64
			if x.train != "" {
				fmt.Sscan(x.train, &v)
				wantTrain[uint64(x.step)] = v
			}
			if x.val != "" {
				fmt.Sscan(x.val, &v)
				wantVal[uint64(x.step)] = v
			}
		}
		eventually(t, 30*time.Second, "steps 200-259 and val_loss", func() bool {
			m := srv.Metrics(r.ID)
			return len(m["train_loss"]) == 260 && len(m["val_loss"]) == len(wantVal)
		})
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("run exited %d:\n%s", code, p.stderr)
		}
		dedupEquals(t, srv, r.ID, "train_loss", wantTrain)
		dedupEquals(t, srv, r.ID, "val_loss", wantVal)
		if strings.Contains(p.stderr.String(), "bad record") {
			t.Errorf("rows were rejected after the header changed:\n%s", p.stderr)
		}
		noRejections(t, srv)
	})
}

func noRejections(t *testing.T, srv *mlopfake.Server) {
	t.Helper()
	if rej := srv.Rejected(); len(rej) > 0 {
		t.Fatalf("the stand-in rejected requests: %+v", rej)
	}
}

// TestBadTagsAreBadRecords: a _tags line beyond the server's limits (51
// tags, a second group: tag) is a bad record named by file:line; the tags
// that fit are kept, the run is created and every metric arrives.
func TestBadTagsAreBadRecords(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	var b strings.Builder
	line := 0
	metrics := func(from int) {
		for s := from; s < from+10; s++ {
			fmt.Fprintf(&b, `{"step":%d,"loss":%d}`+"\n", s, s)
			line++
		}
	}
	metrics(1)
	b.WriteString(`{"_tags": ["group:a", "x", "group:b"]}` + "\n")
	line++
	groupLine := line
	metrics(11)
	var many []string
	for i := 0; i < 51; i++ {
		many = append(many, fmt.Sprintf("%q", fmt.Sprintf("t%02d", i)))
	}
	b.WriteString(`{"_tags": [` + strings.Join(many, ",") + "]}\n")
	line++
	manyLine := line
	metrics(21)
	os.WriteFile(path, []byte(b.String()), 0o644)
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - {name: m, format: jsonl, paths: [%q], run: {name: r}}\n", path))
	code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg)
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	r, ok := runByName(srv, "r")
	if !ok {
		t.Fatalf("the run was not created:\n%s", out)
	}
	if n := metricCount(srv, "r", "loss"); n != 30 {
		t.Errorf("%d of 30 metric lines arrived", n)
	}
	wantTags := []string{"group:a", "x"}
	for i := 0; i < 48; i++ {
		wantTags = append(wantTags, fmt.Sprintf("t%02d", i))
	}
	if strings.Join(r.Tags, ",") != strings.Join(wantTags, ",") {
		t.Errorf("tags = %v\nwant %v", r.Tags, wantTags)
	}
	if r.Status != "COMPLETED" {
		t.Errorf("status = %s", r.Status)
	}
	for _, l := range []int{groupLine, manyLine} {
		if !strings.Contains(out, fmt.Sprintf("%s:%d", path, l)) {
			t.Errorf("no bad record reported at %s:%d:\n%s", path, l, out)
		}
	}
	if !strings.Contains(out, "bad_tags 2") || strings.Contains(out, "REJECTED") {
		t.Errorf("summary should count 2 bad_tags records and no rejection:\n%s", out)
	}
	noRejections(t, srv)
}

// TestRoutingFaultsLoseNothing: an ingress answering HTML 404s during a
// rollout, and a redirect, are retried: no point and no string row is lost
// or doubled, and the agent says loudly what it met. A URL that is not an
// mlop API at all (404 or a redirect at login) stops the agent with that
// message.
func TestRoutingFaultsLoseNothing(t *testing.T) {
	checkOnce := func(t *testing.T, srv *mlopfake.Server, runName string, steps int) {
		t.Helper()
		r, _ := runByName(srv, runName)
		rawOnce(t, srv, r.ID, "loss", steps)
		phases := map[string]int{}
		for _, d := range srv.Data(r.ID) {
			phases[d.Data]++
		}
		for s := 1; s <= steps; s++ {
			if n := phases[fmt.Sprintf("p%d", s)]; n != 1 {
				t.Errorf("string row p%d stored %d times, want 1", s, n)
			}
		}
		noRejections(t, srv)
	}
	played := func(srv *mlopfake.Server) (n404, nRedirect int) {
		for _, q := range srv.Requests() {
			switch q.Fault {
			case "routing-404":
				n404++
			case "redirect":
				nRedirect++
			}
		}
		return
	}
	lines := func(from, to int) string {
		var b strings.Builder
		for s := from; s <= to; s++ {
			fmt.Fprintf(&b, `{"step":%d,"loss":%d,"phase":"p%d","_tags":["t%d"]}`+"\n", s, s, s, (s-1)/10)
		}
		return b.String()
	}

	t.Run("backfill through ingest 404s", func(t *testing.T) {
		srv := startFake(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "m.jsonl")
		os.WriteFile(path, []byte(lines(1, 50)), 0o644)
		cfg := writeConfig(t, dir, srv, fmt.Sprintf("batch: {max_lines: 10}\nsources:\n  - {name: m, format: jsonl, paths: [%q], run: {name: r}}\n", path))
		srv.InjectRouting(mlopfake.ServiceIngest, 3, mlopfake.RoutingHTML404)
		code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg)
		if code != 0 {
			t.Fatalf("backfill exited %d:\n%s", code, out)
		}
		checkOnce(t, srv, "r", 50)
		if n, _ := played(srv); n != 3 {
			t.Errorf("%d routing faults played, want 3", n)
		}
		for _, want := range []string{"404 that is not the mlop server's answer (text/html: <html>", "server answering again"} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not say %q:\n%s", want, out)
			}
		}
	})

	t.Run("run through redirects and 404s", func(t *testing.T) {
		srv := startFake(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "m.jsonl")
		os.WriteFile(path, []byte(lines(1, 10)), 0o644)
		cfg := writeConfig(t, dir, srv, fmt.Sprintf("batch: {max_lines: 10}\nsources:\n  - {name: m, format: jsonl, paths: [%q], run: {name: r}}\n", path))
		p := startAgent(t, "run", "-c", cfg)
		p.waitReady(t)
		eventually(t, 30*time.Second, "the first lines", func() bool { return metricCount(srv, "r", "loss") == 10 })
		// Now that the key is checked, the API redirects (tag updates)
		// and the ingest answers 404 pages for a while.
		srv.InjectRouting(mlopfake.ServiceAPI, 2, mlopfake.RoutingRedirect)
		srv.InjectRouting(mlopfake.ServiceIngest, 2, mlopfake.RoutingHTML404)
		appendFile(t, path, lines(11, 40))
		deadline := time.Now().Add(30 * time.Second)
		for {
			n404, nRedir := played(srv)
			if metricCount(srv, "r", "loss") == 40 && n404 == 2 && nRedir == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of 40 lines, %d 404s and %d redirects played:\n%s", metricCount(srv, "r", "loss"), n404, nRedir, p.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("run exited %d:\n%s", code, p.stderr)
		}
		checkOnce(t, srv, "r", 40)
		r, _ := runByName(srv, "r")
		if strings.Join(r.Tags, ",") != "t0,t1,t2,t3" {
			t.Errorf("tags = %v, want t0,t1,t2,t3", r.Tags)
		}
		if out := p.stderr.String(); !strings.Contains(out, "redirect to http://login.example.invalid/sso?[REDACTED] refused") {
			t.Errorf("the refused redirect is not reported:\n%s", out)
		}
	})

	for _, tc := range []struct {
		name  string
		fault mlopfake.RoutingFault
		url   func(*mlopfake.Server) string
	}{
		{"url_api is another service", 0, func(s *mlopfake.Server) string { return s.IngestURL() }},
		{"url_api redirects", mlopfake.RoutingRedirect, func(s *mlopfake.Server) string { return s.APIURL() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "m.jsonl")
			os.WriteFile(path, []byte(lines(1, 3)), 0o644)
			cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - {name: m, format: jsonl, paths: [%q]}\n", path))
			bad := strings.Replace(string(mustRead(t, cfg)), "url_api: "+srv.APIURL(), "url_api: "+tc.url(srv), 1)
			os.WriteFile(cfg, []byte(bad), 0o600)
			if tc.fault != 0 {
				srv.InjectRouting(mlopfake.ServiceAPI, 1000, tc.fault)
			}
			start := time.Now()
			code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg)
			if code != 1 || !strings.Contains(out, "is not an mlop API") {
				t.Errorf("exit %d, want 1 with 'is not an mlop API':\n%s", code, out)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v to give up", d)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPaddingBOMAndBigSteps: a zero-filled region before a line (a crash
// leaves one), a UTF-8 BOM, and integer steps above 2^53 all arrive; the
// padding is reported once with file:line.
func TestPaddingBOMAndBigSteps(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	data := "\xef\xbb\xbf" + `{"step":1,"a":1}` + "\n" + "\x00\x00\x00\x00" + `{"step":2,"a":2}` + "\n" +
		`{"step":9007199254740992,"a":3}` + "\n" + `{"step":9007199254740993,"a":4}` + "\n"
	os.WriteFile(path, []byte(data), 0o644)
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - {name: m, format: jsonl, paths: [%q], run: {name: r}}\n", path))
	code, out := execAgent(t, 60*time.Second, "backfill", "-c", cfg)
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	r, _ := runByName(srv, "r")
	dedupEquals(t, srv, r.ID, "a", map[uint64]float64{1: 1, 2: 2, 9007199254740992: 3, 9007199254740993: 4})
	if n := strings.Count(out, "nul_padding"); n != 1 || !strings.Contains(out, path+":2") {
		t.Errorf("the padding should be reported once at %s:2 (%d mentions):\n%s", path, n, out)
	}
	if strings.Contains(out, "bad record") {
		t.Errorf("a line was rejected:\n%s", out)
	}
	noRejections(t, srv)
}

// TestUnreadableFileFailsBackfill: a matched file the agent cannot open
// makes a backfill end with exit 3 and name the file; the readable files
// are delivered. The agent runs as an unprivileged user (CI runs as root,
// which could read the file anyway), so the condition is real everywhere.
func TestUnreadableFileFailsBackfill(t *testing.T) {
	srv := startFake(t)
	dir, err := os.MkdirTemp("", "mlop-agent-unreadable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data := filepath.Join(dir, "runs")
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "ok.jsonl"), []byte(`{"step":1,"a":1}`+"\n"), 0o644)
	locked := filepath.Join(data, "locked.jsonl")
	os.WriteFile(locked, []byte(`{"step":1,"a":1}`+"\n"), 0o000)
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - {name: m, format: jsonl, paths: [%q]}\n", filepath.Join(data, "*.jsonl")))
	bin := filepath.Join(dir, "mlop-agent")
	copyFile(t, agentBin, bin, 0o755)
	cmd := exec.Command(bin, "backfill", "-c", cfg)
	if os.Geteuid() == 0 {
		// Everything the agent needs belongs to nobody, but the locked file.
		const nobody = 65534
		filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
			if p != locked {
				os.Chown(p, nobody, nobody)
			}
			return nil
		})
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
	p := startCmd(t, cmd)
	code := p.wait(t, 60*time.Second)
	out := p.stderr.String()
	if code != 3 {
		t.Fatalf("backfill exited %d, want 3:\n%s", code, out)
	}
	if !regexp.MustCompile(`(?s)file not read.*`+regexp.QuoteMeta(locked)+`.*unreadable`).MatchString(out) ||
		!strings.Contains(out, "NOT READ (unreadable 1)") {
		t.Errorf("the unreadable file is not named in the output:\n%s", out)
	}
	if n := metricCount(srv, "ok", "a"); n != 1 {
		t.Errorf("the readable file delivered %d points, want 1", n)
	}
	noRejections(t, srv)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b := mustRead(t, from)
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestRunsFinishedOnce: at the end of a backfill of many runs each run is
// finished with exactly one status request, and the summary says so.
func TestRunsFinishedOnce(t *testing.T) {
	srv := startFake(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "runs")
	os.MkdirAll(data, 0o755)
	const runs = 300
	for i := 0; i < runs; i++ {
		os.WriteFile(filepath.Join(data, fmt.Sprintf("r%03d.jsonl", i)), []byte(`{"step":1,"a":1}`+"\n"), 0o644)
	}
	cfg := writeConfig(t, dir, srv, fmt.Sprintf("sources:\n  - {name: m, format: jsonl, paths: [%q]}\n", filepath.Join(data, "*.jsonl")))
	code, out := execAgent(t, 120*time.Second, "backfill", "-c", cfg)
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	status := 0
	for _, q := range srv.Requests() {
		if q.Path == "/api/runs/status/update" {
			status++
		}
	}
	if status != runs {
		t.Errorf("%d status requests for %d runs", status, runs)
	}
	if !strings.Contains(out, fmt.Sprintf("finished %d", runs)) {
		t.Errorf("summary does not say 'finished %d':\n%s", runs, out)
	}
	noRejections(t, srv)
}
