package verify

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/mlop-ai/mlop-agent/sink/mlop"
)

// compareRun checks one run: found or not, metadata, every metric point,
// console lines and files.
func (v *verifier) compareRun(ctx context.Context, er *ExpectedRun) *RunReport {
	rr := &RunReport{Name: er.Name, Project: er.Project, ExternalID: er.ExternalID, Metrics: []MetricReport{}, Differences: []Difference{}}
	rr.ConsoleLine.Want, rr.Files.Want = er.LogLines, len(er.Files)
	for _, k := range sortedKeys(er.DataRows) {
		if rr.DataRows == nil {
			rr.DataRows = map[string]int64{}
		}
		rr.DataRows[strings.Replace(k, "\x00", " ", 1)] = er.DataRows[k]
	}
	sp, err := sortSpool(er.spool, v.opts.TmpDir, v.opts.ChunkPoints, er.Rows)
	if err != nil {
		rr.Problems = append(rr.Problems, fmt.Sprintf("read the source's points back from disk: %v", err))
		rr.Unchecked = er.Rows
		return rr
	}
	defer sp.close()
	res := v.resolved[er.CaptureID]
	switch {
	case res == nil || res.problem != "":
		problem := "phase 1 did not run"
		if res != nil {
			problem = res.problem
		}
		rr.Problems = append(rr.Problems, "could not look the run up: "+problem)
		v.drain(rr, er, sp, func(mr *MetricReport, g stepGroup) { mr.Unchecked++ })
		return rr
	case res.id == 0:
		v.add(rr, Difference{Kind: KindRunMissing, Detail: fmt.Sprintf("no run with externalId %q in project %q", er.ExternalID, er.Project)}, false)
		v.drain(rr, er, sp, func(mr *MetricReport, g stepGroup) {
			mr.Missing++
			step := g.step
			v.add(rr, Difference{Kind: KindPointMissing, Metric: mr.Name, Step: &step, Want: formatValue(math.Float64frombits(g.bits))}, true)
		})
		return rr
	}
	rr.RunID, rr.FoundBy = res.id, res.how
	d := res.details
	v.compareMeta(ctx, rr, er, d)
	v.compareMetrics(ctx, rr, er, d, sp)
	v.compareCounts(ctx, rr, er, d)
	return rr
}

// add records a difference; point differences are counted by the caller.
func (v *verifier) add(rr *RunReport, d Difference, point bool) {
	d.Run, d.ExternalID, d.RunID = rr.Name, rr.ExternalID, rr.RunID
	if !point {
		rr.Other++
	}
	if v.diffs.keep() {
		rr.Differences = append(rr.Differences, d)
	} else {
		rr.Omitted++
	}
}

// drain walks every expected step of a run that cannot be compared,
// calling each for it, and fills the per-metric tallies.
func (v *verifier) drain(rr *RunReport, er *ExpectedRun, sp *sortedSpool, each func(*MetricReport, stepGroup)) {
	for _, id := range sp.metrics {
		mr := MetricReport{Name: er.Metrics[id], Rows: er.MetricRows[id]}
		src, err := sp.points(id)
		if err != nil {
			rr.Problems = append(rr.Problems, fmt.Sprintf("read the source's points back from disk: %v", err))
			continue
		}
		gr := newGroupReader(src)
		for {
			g, ok := gr.next()
			if !ok {
				break
			}
			mr.Points++
			each(&mr, g)
			v.pointsDone.Add(1)
		}
		if gr.err != nil {
			rr.Problems = append(rr.Problems, fmt.Sprintf("read the source's points back from disk: %v", gr.err))
		}
		src.close()
		rr.Metrics = append(rr.Metrics, mr)
		rr.Points += mr.Points
		rr.Missing += mr.Missing
		rr.Unchecked += mr.Unchecked
	}
}

// metricResult is what one metric's comparison found; compareMetrics
// merges the results of a run's metrics in order.
type metricResult struct {
	mr       MetricReport
	diffs    []Difference
	omitted  int64
	problems []string
}

func (v *verifier) note(res *metricResult, d Difference) {
	if v.diffs.keep() {
		res.diffs = append(res.diffs, d)
	} else {
		res.omitted++
	}
}

// compareMetrics compares every metric the source has, and then the
// metrics only the server has, several at a time (v.slots bounds the reads
// in flight over all runs).
func (v *verifier) compareMetrics(ctx context.Context, rr *RunReport, er *ExpectedRun, d *mlop.RunDetails, sp *sortedSpool) {
	type task struct {
		name string
		id   int // -1: only on the server
	}
	var tasks []task
	for _, id := range sp.metrics {
		tasks = append(tasks, task{er.Metrics[id], int(id)})
	}
	expected := map[string]bool{}
	for _, n := range er.Metrics {
		expected[n] = true
	}
	onServer := map[string]bool{}
	for _, ln := range d.LogNames {
		if ln.LogType == mlop.LogTypeMetric && !expected[ln.LogName] {
			onServer[ln.LogName] = true
		}
	}
	names, err := v.api.MetricNames(ctx, er.Project, []int64{rr.RunID})
	if err != nil {
		rr.Problems = append(rr.Problems, v.problemOf("list the run's metric names (to find metrics only the server has)", err))
	}
	for _, n := range names {
		if !expected[n] {
			onServer[n] = true
		}
	}
	if len(names) >= mlop.MetricNamesCap {
		rr.Notes = append(rr.Notes, fmt.Sprintf("the server lists at most %d metric names per request; metrics beyond them that only the server has may not be found", mlop.MetricNamesCap))
	}
	for _, n := range sortedKeys(onServer) {
		tasks = append(tasks, task{n, -1})
	}

	results := make([]metricResult, len(tasks))
	var wg sync.WaitGroup
	for i, t := range tasks {
		select {
		case v.slots <- struct{}{}:
		case <-ctx.Done():
			results[i].problems = []string{ctx.Err().Error()}
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-v.slots; wg.Done() }()
			results[i] = v.compareMetric(ctx, rr.RunID, er, t.name, t.id, sp)
		}()
	}
	wg.Wait()
	for _, res := range results {
		mr := res.mr
		if mr.OnlyOnSrv && mr.Server == 0 && mr.Error == "" {
			continue // registered, never written: compareLogNames has it
		}
		for _, d := range res.diffs {
			d.Run, d.ExternalID, d.RunID = rr.Name, rr.ExternalID, rr.RunID
			rr.Differences = append(rr.Differences, d)
		}
		rr.Omitted += res.omitted
		rr.Problems = append(rr.Problems, res.problems...)
		rr.Metrics = append(rr.Metrics, mr)
		rr.Points += mr.Points
		rr.Missing += mr.Missing
		rr.Different += mr.Different
		rr.Extra += mr.Extra
		rr.Unchecked += mr.Unchecked
	}
}

// matches reports whether a server value is one the source allows for
// the step.
func matches(g stepGroup, got float64) bool {
	if samePoint(math.Float64frombits(g.bits), got) {
		return true
	}
	for _, b := range g.alts {
		if samePoint(math.Float64frombits(b), got) {
			return true
		}
	}
	return false
}

// compareMetric merges the source's steps of one metric (id; -1 when the
// source has none) with the server's rows, page by page.
func (v *verifier) compareMetric(ctx context.Context, runID int64, er *ExpectedRun, name string, id int, sp *sortedSpool) metricResult {
	res := metricResult{mr: MetricReport{Name: name, OnlyOnSrv: id < 0}}
	mr := &res.mr
	next := func() (stepGroup, bool) { return stepGroup{}, false }
	if id >= 0 {
		mr.Rows = er.MetricRows[id]
		src, err := sp.points(uint32(id))
		if err != nil {
			res.problems = append(res.problems, fmt.Sprintf("read the source's points of %q back from disk: %v", name, err))
			return res
		}
		defer src.close()
		gr := newGroupReader(src)
		next = gr.next
		defer func() {
			if gr.err != nil {
				res.problems = append(res.problems, fmt.Sprintf("read the source's points of %q back from disk: %v", name, gr.err))
			}
		}()
	}
	cur, have := next()
	missing := func(g stepGroup) {
		mr.Points++
		mr.Missing++
		v.pointsDone.Add(1)
		step := g.step
		v.note(&res, Difference{Kind: KindPointMissing, Metric: name, Step: &step, Want: formatValue(math.Float64frombits(g.bits))})
	}
	err := v.api.MetricRows(ctx, runID, er.Project, name, 0, v.opts.PageRows, func(rows []mlop.MetricRow) error {
		mr.Server += int64(len(rows))
		for i := 0; i < len(rows); {
			j := i + 1
			for j < len(rows) && rows[j].Step == rows[i].Step {
				j++
			}
			// The deduplicated view keeps the row with the largest time;
			// rows come sorted by time within a step.
			win := rows[j-1]
			step := win.Step
			for have && cur.step < step {
				missing(cur)
				cur, have = next()
			}
			if have && cur.step == step {
				mr.Points++
				v.pointsDone.Add(1)
				if len(cur.alts) > 0 {
					mr.Ambiguous++
				}
				// The rows sharing the largest time: the deduplicated view
				// keeps one of them. The point matches when every one of
				// them is a value the source allows.
				all, some, newest := true, false, 0
				for k := i; k < j; k++ {
					if rows[k].Time != win.Time {
						continue
					}
					newest++
					if matches(cur, rows[k].Value) {
						some = true
					} else {
						all, win = false, rows[k]
					}
				}
				if !all {
					mr.Different++
					dd := Difference{Kind: KindPointDifferent, Metric: name, Step: &step,
						Want: formatValue(math.Float64frombits(cur.bits)), Got: formatValue(win.Value)}
					switch {
					case some:
						dd.Detail = fmt.Sprintf("the server holds %d rows at the newest time, not all with this value: which one it shows is not determined", newest)
					case j-i > 1:
						dd.Detail = fmt.Sprintf("%d rows on the server at this step, the newest shown", j-i)
					}
					v.note(&res, dd)
				}
				cur, have = next()
			} else {
				mr.Extra++
				v.note(&res, Difference{Kind: KindPointExtra, Metric: name, Step: &step, Got: formatValue(win.Value)})
			}
			i = j
		}
		return ctx.Err()
	})
	if err != nil {
		mr.Error = err.Error()
		res.problems = append(res.problems, v.problemOf(fmt.Sprintf("read metric %q", name), err))
		for have {
			mr.Points++
			mr.Unchecked++
			v.pointsDone.Add(1)
			cur, have = next()
		}
	} else {
		for have {
			missing(cur)
			cur, have = next()
		}
	}
	return res
}

// compareMeta checks name, status, tags, config, fork link and log names.
func (v *verifier) compareMeta(ctx context.Context, rr *RunReport, er *ExpectedRun, d *mlop.RunDetails) {
	if d.Name != er.Name {
		v.add(rr, Difference{Kind: KindName, Want: er.Name, Got: d.Name}, false)
	}
	v.compareStatus(ctx, rr, er, d)

	want, got := map[string]bool{}, map[string]bool{}
	for _, t := range er.Tags {
		want[t] = true
	}
	for _, t := range d.Tags {
		got[t] = true
	}
	for _, t := range sortedKeys(want) {
		if !got[t] {
			v.add(rr, Difference{Kind: KindTagMissing, Key: t}, false)
		}
	}
	for _, t := range sortedKeys(got) {
		if !want[t] {
			v.add(rr, Difference{Kind: KindTagExtra, Key: t}, false)
		}
	}

	// The fork link, and the parent's config the server copied: as the
	// source has it or as the server has it now.
	var parentCfg []any
	wantParent := int64(0)
	if er.ForkParent != 0 {
		if pe := v.cap.run(er.ForkParent); pe != nil && len(pe.Config) > 0 {
			parentCfg = append(parentCfg, pe.Config)
		}
		p := v.resolved[er.ForkParent]
		switch {
		case p == nil || p.id == 0 || p.problem != "":
			rr.Problems = append(rr.Problems, "the fork's parent run was not found on the server, so the fork link was not checked")
		default:
			wantParent = p.id
			parentCfg = append(parentCfg, p.details.Config)
		}
	}
	gotParent, gotStep := int64(0), int64(0)
	if d.ForkedFromRunID != nil {
		gotParent = *d.ForkedFromRunID
	}
	if d.ForkStep != nil {
		gotStep = *d.ForkStep
	}
	if er.ForkParent == 0 && gotParent != 0 {
		v.add(rr, Difference{Kind: KindFork, Want: "not a fork", Got: fmt.Sprintf("fork of run %d at step %d", gotParent, gotStep)}, false)
	} else if wantParent != 0 && (gotParent != wantParent || gotStep != er.ForkStep) {
		g := "not a fork"
		if gotParent != 0 {
			g = fmt.Sprintf("fork of run %d at step %d", gotParent, gotStep)
		}
		v.add(rr, Difference{Kind: KindFork, Want: fmt.Sprintf("fork of run %d at step %d", wantParent, er.ForkStep), Got: g}, false)
	}

	var wantCfg any
	if len(er.Config) > 0 {
		wantCfg = er.Config
	}
	v.diffConfig(rr, nil, wantCfg, d.Config, parentCfg)
	v.compareLogNames(rr, er, d)
}

// compareStatus applies the status rule of Rules.
func (v *verifier) compareStatus(ctx context.Context, rr *RunReport, er *ExpectedRun, d *mlop.RunDetails) {
	if d.Status == er.Status {
		return
	}
	if v.opts.Live && er.Status == "COMPLETED" && d.Status == "RUNNING" {
		rr.Notes = append(rr.Notes, "still RUNNING on the server; a live agent finishes it after its idle timeout or an in-band status")
		return
	}
	diff := Difference{Kind: KindStatus, Want: er.Status, Got: d.Status}
	if hist, err := v.api.StatusHistory(ctx, rr.RunID); err == nil && len(hist) > 0 {
		last := hist[len(hist)-1]
		diff.Detail = fmt.Sprintf("set to %s by %s at %s", last.ToStatus, last.Source, last.CreatedAt)
	}
	v.add(rr, diff, false)
}

// compareLogNames compares registered log names and their types.
func (v *verifier) compareLogNames(rr *RunReport, er *ExpectedRun, d *mlop.RunDetails) {
	got := map[string]string{}
	for _, ln := range d.LogNames {
		got[ln.LogName] = ln.LogType
	}
	capped := len(d.LogNames) >= mlop.DetailsLogNamesCap
	unchecked := 0
	for _, n := range sortedKeys(er.LogNames) {
		gt, ok := got[n]
		switch {
		case !ok && capped:
			unchecked++
		case !ok:
			v.add(rr, Difference{Kind: KindLogNameMissing, Key: n, Want: er.LogNames[n]}, false)
		case gt != er.LogNames[n]:
			v.add(rr, Difference{Kind: KindLogType, Key: n, Want: er.LogNames[n], Got: gt}, false)
		}
	}
	for _, n := range sortedKeys(got) {
		if _, ok := er.LogNames[n]; !ok {
			v.add(rr, Difference{Kind: KindLogNameExtra, Key: n, Got: got[n]}, false)
		}
	}
	if unchecked > 0 {
		rr.Notes = append(rr.Notes, fmt.Sprintf("%d registered log names not checkable: the read API returns at most %d per run", unchecked, mlop.DetailsLogNamesCap))
	}
}

// compareCounts compares console lines and files.
func (v *verifier) compareCounts(ctx context.Context, rr *RunReport, er *ExpectedRun, d *mlop.RunDetails) {
	page, err := v.api.Logs(ctx, rr.RunID, er.Project, 1, 0)
	if err != nil {
		rr.Problems = append(rr.Problems, v.problemOf("count the console lines", err))
	} else {
		rr.ConsoleLine.Got = int64(page.Total)
		switch got, want := int64(page.Total), er.LogLines; {
		case got < want:
			v.add(rr, Difference{Kind: KindConsoleMissing, Want: fmt.Sprint(want), Got: fmt.Sprint(got),
				Detail: fmt.Sprintf("%d console lines missing", want-got)}, false)
		case got > want:
			rr.Notes = append(rr.Notes, fmt.Sprintf("%d console lines more on the server than in the source (a re-send after a crash stores at most one batch twice)", got-want))
		}
	}

	type fkey struct {
		logName, fileName string
		step, size        int64
	}
	want := map[fkey]int{}
	logNames := map[string]bool{}
	for _, f := range er.Files {
		want[fkey{f.LogName, f.FileName, f.Step, f.Size}]++
		logNames[f.LogName] = true
	}
	rows, err := v.api.Files(ctx, rr.RunID, er.Project, "")
	if err != nil {
		rr.Problems = append(rr.Problems, v.problemOf("list the files", err))
		return
	}
	if len(rows) >= mlop.FilesCap {
		// One request shows at most 1000; ask per log name.
		rows = nil
		for _, ln := range sortedKeys(logNames) {
			part, err := v.api.Files(ctx, rr.RunID, er.Project, ln)
			if err != nil {
				rr.Problems = append(rr.Problems, v.problemOf(fmt.Sprintf("list the files of %q", ln), err))
				return
			}
			if len(part) >= mlop.FilesCap {
				rr.Problems = append(rr.Problems, fmt.Sprintf("more than %d files under %q: the read API shows only the first %d", mlop.FilesCap, ln, mlop.FilesCap))
				return
			}
			rows = append(rows, part...)
		}
		rr.Notes = append(rr.Notes, fmt.Sprintf("the run has more than %d files; only those under the source's log names were read", mlop.FilesCap))
	}
	rr.Files.Got = len(rows)
	got := map[fkey]int{}
	for _, f := range rows {
		got[fkey{f.LogName, f.FileName, f.Step, f.FileSize}]++
	}
	keys := func(m map[fkey]int) []fkey {
		out := make([]fkey, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.SortFunc(out, func(a, b fkey) int {
			if c := strings.Compare(a.logName, b.logName); c != 0 {
				return c
			}
			if c := strings.Compare(a.fileName, b.fileName); c != 0 {
				return c
			}
			return cmp.Compare(a.step, b.step)
		})
		return out
	}
	dups := 0
	for _, k := range keys(want) {
		if n := want[k] - got[k]; n > 0 {
			v.add(rr, Difference{Kind: KindFileMissing, Key: k.logName + "/" + k.fileName,
				Want: fmt.Sprintf("step %d, %d bytes", k.step, k.size), Detail: plural(n, "copy", "copies")}, false)
		} else if n < 0 {
			dups -= n
		}
	}
	for _, k := range keys(got) {
		if want[k] == 0 {
			v.add(rr, Difference{Kind: KindFileExtra, Key: k.logName + "/" + k.fileName,
				Got: fmt.Sprintf("step %d, %d bytes", k.step, k.size)}, false)
		}
	}
	if dups > 0 {
		rr.Notes = append(rr.Notes, fmt.Sprintf("%d files registered more than once on the server (a re-send after a crash)", dups))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// diffConfig compares config values at path; inherited holds the fork
// parent's configs at the same path (none when not a fork).
func (v *verifier) diffConfig(rr *RunReport, path []string, want, got any, inherited []any) {
	wm, wok := want.(map[string]any)
	gm, gok := got.(map[string]any)
	// {} and none are the same to the server (an empty config is stored
	// as null).
	if path == nil && want == nil {
		wm, wok = map[string]any{}, true
	}
	if path == nil && got == nil {
		gm, gok = map[string]any{}, true
	}
	if wok && gok {
		sub := func(k string) []any {
			var out []any
			for _, in := range inherited {
				if m, ok := in.(map[string]any); ok {
					if iv, ok := m[k]; ok {
						out = append(out, iv)
					}
				}
			}
			return out
		}
		for _, k := range sortedKeys(wm) {
			p := append(slices.Clone(path), k)
			gv, ok := gm[k]
			if !ok {
				v.add(rr, Difference{Kind: KindConfigMissing, Key: configPath(p), Want: jsonText(wm[k])}, false)
				continue
			}
			v.diffConfig(rr, p, wm[k], gv, sub(k))
		}
		for _, k := range sortedKeys(gm) {
			if _, ok := wm[k]; ok {
				continue
			}
			if slices.ContainsFunc(sub(k), func(iv any) bool { return jsonEqual(iv, gm[k]) }) {
				continue // copied from the fork's parent by the server
			}
			v.add(rr, Difference{Kind: KindConfigExtra, Key: configPath(append(slices.Clone(path), k)), Got: jsonText(gm[k])}, false)
		}
		return
	}
	if !jsonEqual(want, got) {
		d := Difference{Kind: KindConfigDiff, Key: configPath(path), Want: jsonText(want), Got: jsonText(got)}
		if len(path) == 1 && path[0] == "neptune/step_multiplier" {
			d.Detail = "the steps were scaled differently: pass --step-multiplier with the value the import used"
		}
		if path == nil {
			d.Key = "config"
		}
		v.add(rr, d, false)
	}
}

// configPath writes a key path: keys joined with ".", each quoted when it
// holds a dot, a quote or white space.
func configPath(p []string) string {
	parts := make([]string, len(p))
	for i, k := range p {
		if k == "" || strings.ContainsAny(k, ". \t\"") {
			k = fmt.Sprintf("%q", k)
		}
		parts[i] = k
	}
	return "config " + strings.Join(parts, ".")
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// jsonEqual compares decoded JSON values (numbers as float64).
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	}
	return a == b
}
