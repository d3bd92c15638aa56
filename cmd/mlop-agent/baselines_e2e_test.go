package main

// OpenAI baselines' progress.csv through the binary and the mlop stand-in
// (a test double) with format: sb3-progress (issue 13, point 3): the files
// in testdata/realworld/openai-baselines-progress (see their NOTICE files)
// have no time/total_timesteps column. What the server must hold is read
// off the files themselves here, with encoding/csv.

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// baselinesFixture is one copied progress.csv, read with encoding/csv.
type baselinesFixture struct {
	path   string
	header []string
	rows   [][]string
}

// baselinesFixtures finds every progress.csv below dir.
func baselinesFixtures(t *testing.T, dir string) []baselinesFixture {
	t.Helper()
	var out []baselinesFixture
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "progress.csv" {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, baselinesFixture{path: p, header: recs[0], rows: recs[1:]})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// baselinesStep names the column each fixture's step is in ("": none, the
// rows are numbered from 1), by the fixture directory below
// openai-baselines-progress (testdata/realworld/MANIFEST.md rows 20-23).
var baselinesStep = map[string]string{
	"gail-ppo":                "",      // no counter column at all
	"her-042920":              "epoch", // baselines her
	"her-050309":              "epoch",
	"improved-diffusion-2000": "step", // a fork of the baselines logger
}

// baselinesRun is one backfill of copied baselines fixtures.
type baselinesRun struct {
	srv       *mlopfake.Server
	dir, root string // the test's directory; the copy of openai-baselines-progress in it
	code      int
	out       string
	cfg       string // the configuration written
}

// backfillBaselines copies the baselines fixtures and backfills the
// progress.csv files below the given directories of the copy with one
// sb3-progress source (extra: more YAML keys of the source), dead-lettering
// to dir/dead.jsonl.
func backfillBaselines(t *testing.T, extra string, under ...string) baselinesRun {
	t.Helper()
	b := baselinesRun{srv: startFake(t), dir: t.TempDir()}
	b.root = copyTree(t, "openai-baselines-progress", b.dir)
	var paths []string
	for _, u := range under {
		paths = append(paths, strconv.Quote(filepath.Join(b.root, u, "progress.csv")))
	}
	cfg := writeConfig(t, b.dir, b.srv, fmt.Sprintf("dead_letter:\n  path: %s\nsources:\n  - name: baselines\n"+
		"    format: sb3-progress\n    paths: [%s]\n%s", filepath.Join(b.dir, "dead.jsonl"), strings.Join(paths, ", "), extra))
	b.code, b.out = execAgent(t, 120*time.Second, "backfill", "-c", cfg)
	b.cfg = cfg
	return b
}

// summaryCounts reads "records read N, bad M" off a backfill's summary.
func summaryCounts(out string) (read, bad int, ok bool) {
	m := regexp.MustCompile(`records read (\d+), bad (\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, 0, false
	}
	read, _ = strconv.Atoi(m[1])
	bad, _ = strconv.Atoi(m[2])
	return read, bad, true
}

// TestBaselinesProgressEndToEnd backfills the four baselines files with
// format: sb3-progress: one run per file, every numeric cell a point at
// its row's step, nothing bad, exit 0.
func TestBaselinesProgressEndToEnd(t *testing.T) {
	b := backfillBaselines(t, "", "**")
	srv, dir, root, code, out := b.srv, b.dir, b.root, b.code, b.out
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	noRejections(t, srv)

	files := baselinesFixtures(t, root)
	if len(files) != len(baselinesStep) {
		t.Fatalf("%d progress.csv files below %s, want the %d of baselinesStep", len(files), root, len(baselinesStep))
	}
	lines := 0
	for _, f := range files {
		lines += 1 + len(f.rows)
	}
	if read, bad, ok := summaryCounts(out); !ok || read != lines || bad != 0 {
		t.Errorf("summary: records read %d, bad %d; want %d, 0:\n%s", read, bad, lines, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "dead.jsonl")); len(b) > 0 {
		t.Errorf("records were dead-lettered:\n%.2000s", b)
	}
	if runs := srv.Runs(); len(runs) != len(files) {
		t.Errorf("%d runs %q, want one per file (%d)", len(runs), runNames(srv), len(files))
	}

	for _, f := range files {
		rel, _ := filepath.Rel(root, f.path)
		fixture := strings.Split(rel, string(filepath.Separator))[0]
		t.Run(fixture, func(t *testing.T) {
			stepName, ok := baselinesStep[fixture]
			if !ok {
				t.Fatalf("no step column known for fixture %s", fixture)
			}
			stepCol := slices.Index(f.header, stepName)
			if stepName != "" && stepCol < 0 {
				t.Fatalf("%s has no column %q: %q", rel, stepName, f.header)
			}
			// want: metric -> "step=value" for every numeric cell.
			want := map[string][]string{}
			for i, row := range f.rows {
				step := uint64(i + 1)
				if stepCol >= 0 {
					v, err := strconv.ParseFloat(row[stepCol], 64)
					if err != nil {
						t.Fatalf("%s row %d: step %q: %v", rel, i+2, row[stepCol], err)
					}
					step = uint64(v)
				}
				for j, c := range row {
					if v, err := strconv.ParseFloat(c, 64); err == nil && j != stepCol {
						want[f.header[j]] = append(want[f.header[j]], fmt.Sprintf("%d=%v", step, v))
					}
				}
			}
			run := filepath.Base(filepath.Dir(f.path)) // the preset's {{.Dir}}
			r, ok := runByName(srv, run)
			if !ok {
				t.Fatalf("no run %q; runs %q", run, runNames(srv))
			}
			got := map[string][]string{}
			for name, pts := range srv.RawMetrics(r.ID) {
				for _, p := range pts {
					got[name] = append(got[name], fmt.Sprintf("%d=%v", p.Step, p.Value))
				}
			}
			cells := 0
			for name, w := range want {
				cells += len(w)
				g := got[name]
				slices.Sort(g)
				slices.Sort(w)
				if !slices.Equal(g, w) {
					t.Errorf("%s: %d points, want %d (one per numeric cell)\ngot  %.300q\nwant %.300q", name, len(g), len(w), g, w)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("metric %q is not a data column of %s (the step column %q must not be one)", name, rel, stepName)
				}
			}
			if cells == 0 {
				t.Errorf("%s has no numeric cell", rel)
			}
		})
	}
}

// deadEntry is the part of a dead-letter line these tests read.
type deadEntry struct {
	Path, Reason, Error string
	Line                int64
}

// TestCSVMissingStepFieldOnce: an explicit step_field that the header does
// not have is one error per file, at its header, naming the column looked
// for and the header's columns — not one bad record per row — and no row
// of the file is sent.
func TestCSVMissingStepFieldOnce(t *testing.T) {
	b := backfillBaselines(t, "    step_field: time/total_timesteps\n", "gail-ppo/**", "her-042920/**")
	srv, dir, root, code, out := b.srv, b.dir, b.root, b.code, b.out
	// A file not read (parsers.ErrUnusable): exit 3.
	if code != 3 {
		t.Fatalf("backfill exited %d, want 3:\n%s", code, out)
	}
	noRejections(t, srv)
	if runs := srv.Runs(); len(runs) != 0 {
		t.Errorf("runs %q were created from files whose step column is missing", runNames(srv))
	}

	var dead []deadEntry
	f, err := os.Open(filepath.Join(dir, "dead.jsonl"))
	if err != nil {
		t.Fatalf("no dead letter: %v\n%s", err, out)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var e deadEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		dead = append(dead, e)
	}

	files := baselinesFixtures(t, root)
	var matched []baselinesFixture
	for _, f := range files {
		if strings.Contains(f.path, "gail-ppo") || strings.Contains(f.path, "her-042920") {
			matched = append(matched, f)
		}
	}
	if len(matched) != 2 || len(dead) != len(matched) {
		t.Fatalf("%d dead-letter entries %+v for %d files, want one per file:\n%s", len(dead), dead, len(matched), out)
	}
	for _, fx := range matched {
		i := slices.IndexFunc(dead, func(e deadEntry) bool { return e.Path == fx.path })
		if i < 0 {
			t.Errorf("no error for %s: %+v", fx.path, dead)
			continue
		}
		e := dead[i]
		h := fx.header
		wantStart := fmt.Sprintf(`line 1: step column "time/total_timesteps" not in the header (have: %s, %s, `, h[0], h[1])
		if e.Line != 1 || e.Reason != "unusable" || !strings.HasPrefix(e.Error, wantStart) ||
			!strings.Contains(e.Error, fmt.Sprintf("... %d columns)", len(h))) {
			t.Errorf("%s: %+v\nwant line 1, bad_step, %q... %d columns)", fx.path, e, wantStart, len(h))
		}
		// The log names the file once, at the header, as not read.
		if n := strings.Count(out, `msg="file not read" source=baselines file=`+fx.path+":1 reason=unusable"); n != 1 {
			t.Errorf("%s named %d times in the log, want once:\n%.3000s", fx.path, n, out)
		}
	}
	if !strings.Contains(out, fmt.Sprintf("%d matched file(s) NOT READ (unusable %d)", len(matched), len(matched))) {
		t.Errorf("summary does not count the files not read:\n%s", out)
	}
	// Nothing of them was marked read: with the step_field corrected (the
	// preset's own), the next backfill reads them whole.
	os.WriteFile(b.cfg, []byte(strings.Replace(string(mustRead(t, b.cfg)), "    step_field: time/total_timesteps\n", "", 1)), 0o600)
	if code, out := execAgent(t, 120*time.Second, "backfill", "-c", b.cfg); code != 0 {
		t.Fatalf("backfill with the configuration corrected: exit %d\n%s", code, out)
	}
	for _, fx := range matched {
		run := filepath.Base(filepath.Dir(fx.path))
		want := 0
		for _, row := range fx.rows {
			if _, err := strconv.ParseFloat(row[0], 64); err == nil {
				want++
			}
		}
		if got := metricCount(srv, run, fx.header[0]); want == 0 || got != want {
			t.Errorf("%s: run %s has %d %s points after the corrected backfill, want %d (runs %v)", fx.path, run, got, fx.header[0], want, runNames(srv))
		}
	}
}
