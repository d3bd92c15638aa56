package main

// The walk of the export generator's manifest (neptunetest.ExportManifest)
// in TestImportNeptuneExport: as for the fixtures' manifest.json files
// (neptune_manifest_test.go), every field is judged against the stand-in
// or listed, with the reason, in unjudgedExportFields; a field added to
// the manifest without either fails the test.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// unjudgedExportFields are the manifest fields not judged, with the reason.
var unjudgedExportFields = []struct{ pattern, reason string }{
	{"Runs.[].Rows", "the generator's row count of the whole run; the reader's positions count rows per part, and every row's content is judged by the other fields"},
}

// xloc is where the export walk is: the run and the element being walked.
type xloc struct {
	run  *neptunetest.ExportRun
	key  string // map key (metric, series, attribute)
	elem any    // the struct holding the field
}

type xjudge func(c *xctx, p []string, v any, at xloc)

var exportJudges = map[string]xjudge{}

func init() {
	add := func(fn xjudge, patterns ...string) {
		for _, p := range patterns {
			exportJudges[p] = fn
		}
	}
	add(xDirs, "DataDir", "FilesDir", "ProjectDir")
	add(xPending, "Pending", "TmpFiles")
	add(xRuns, "Runs")
	add(xIdentity, "Runs.[].ProjectID", "Runs.[].RunID", "Runs.[].Prefix", "Runs.[].Parts", "Runs.[].Name", "Runs.[].CreatedAt",
		"Runs.[].Tags", "Runs.[].GroupTags", "Runs.[].Failed", "Runs.[].SysID", "Runs.[].ForkParent", "Runs.[].ForkStepMicro",
		"Runs.[].Multiplier", "Runs.[].FileSeriesIsIndex")
	add(xParam, "Runs.[].Params.*")
	add(xNullParams, "Runs.[].NullParams")
	add(xPoints, "Runs.[].Points", "Runs.[].Metrics")
	add(xMetric, "Runs.[].Metrics.*.Count", "Runs.[].Metrics.*.FirstStepMicro", "Runs.[].Metrics.*.LastStepMicro", "Runs.[].Metrics.*.First",
		"Runs.[].Metrics.*.Last", "Runs.[].Metrics.*.Sum", "Runs.[].Metrics.*.FirstTime", "Runs.[].Metrics.*.LastTime")
	add(xStrings, "Runs.[].Strings", "Runs.[].Strings.*.[].StepMicro", "Runs.[].Strings.*.[].Value")
	add(xConsole, "Runs.[].Console", "Runs.[].Console.[].Path", "Runs.[].Console.[].Text")
	add(xHistograms, "Runs.[].Histograms", "Runs.[].Histograms.*.[].StepMicro", "Runs.[].Histograms.*.[].Edges", "Runs.[].Histograms.*.[].Values")
	add(xFiles, "Runs.[].Files", "Runs.[].Files.[].Attr", "Runs.[].Files.[].Type", "Runs.[].Files.[].StepMicro", "Runs.[].Files.[].Rel",
		"Runs.[].Files.[].Local", "Runs.[].Files.[].Missing")
}

// xctx is what the export judges see.
type xctx struct {
	t    *testing.T
	srv  *mlopfake.Server
	m    *neptunetest.ExportManifest
	rep  agent.Report
	pos  map[string]event.Position // committed, by stream key
	fail func(msg string)          // nil: t.Error
}

func (c *xctx) errorf(p []string, format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf("export manifest %s: %s", strings.Join(p, "."), fmt.Sprintf(format, args...))
	if c.fail != nil {
		c.fail(msg)
		return
	}
	c.t.Error(msg)
}

func (c *xctx) runOf(er *neptunetest.ExportRun) (mlopfake.Run, bool) {
	return runByExternalID(c.srv, er.RunID)
}

func (c *xctx) streamOf(er *neptunetest.ExportRun) (agent.StreamReport, bool) {
	for _, s := range c.rep.Streams {
		if strings.HasSuffix(s.SourceID, "/"+er.Prefix) {
			return s, true
		}
	}
	return agent.StreamReport{}, false
}

// walkExport visits every field of the manifest.
func walkExport(c *xctx, used map[string]bool) { walkExportValue(c, reflect.ValueOf(c.m).Elem(), used) }

// walkExportValue visits every field of root, a manifest struct.
func walkExportValue(c *xctx, root reflect.Value, used map[string]bool) {
	var walk func(p []string, v reflect.Value, at xloc)
	visit := func(p []string, v reflect.Value, at xloc) {
		pat := strings.Join(p, ".")
		j, judged := exportJudges[pat]
		unjudged := false
		for _, u := range unjudgedExportFields {
			if u.pattern == pat {
				unjudged, used[pat] = true, true
			}
		}
		if judged && unjudged {
			c.errorf(p, "both judged and unjudged")
		}
		if unjudged {
			return
		}
		// Structs, and non-empty maps and lists of structs, are walked
		// into; anything else is a value that needs a judge.
		deeper := false
		switch v.Kind() {
		case reflect.Struct:
			deeper = true
		case reflect.Pointer:
			deeper = !v.IsNil() && v.Elem().Kind() == reflect.Struct
		case reflect.Map:
			deeper = v.Len() > 0
		case reflect.Slice:
			k := v.Type().Elem().Kind()
			deeper = (k == reflect.Struct || k == reflect.Pointer) && v.Len() > 0
		}
		if judged {
			used[pat] = true
			j(c, p, v.Interface(), at)
		} else if !deeper {
			c.errorf(p, "a manifest field neither judged nor listed in unjudgedExportFields")
		}
		if deeper {
			walk(p, v, at)
		}
	}
	walk = func(p []string, v reflect.Value, at xloc) {
		switch v.Kind() {
		case reflect.Pointer:
			walk(p, v.Elem(), at)
		case reflect.Struct:
			if r, ok := v.Addr().Interface().(*neptunetest.ExportRun); ok {
				at.run = r
			}
			at.elem = v.Addr().Interface()
			for i := 0; i < v.NumField(); i++ {
				visit(append(append([]string(nil), p...), v.Type().Field(i).Name), v.Field(i), at)
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(append(append([]string(nil), p...), "[]"), v.Index(i), at)
			}
		case reflect.Map:
			keys := v.MapKeys()
			sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
			for _, k := range keys {
				at.key = k.String()
				visit(append(append([]string(nil), p...), "*"), v.MapIndex(k), at)
			}
		}
	}
	walk(nil, root, xloc{})
}

// TestExportManifestWalk: a field neither judged nor listed fails the
// walk; a listed one does not.
func TestExportManifestWalk(t *testing.T) {
	m := struct {
		Brand int
		Runs  []struct{ Rows int64 }
	}{Runs: []struct{ Rows int64 }{{Rows: 3}}}
	// Runs is judged (the server's run count, none here); its Rows is
	// listed as unjudged.
	var got []string
	c := &xctx{t: t, srv: startFake(t), m: &neptunetest.ExportManifest{Runs: make([]neptunetest.ExportRun, 0)}, fail: func(msg string) { got = append(got, msg) }}
	used := map[string]bool{}
	walkExportValue(c, reflect.ValueOf(&m).Elem(), used)
	if want := []string{"export manifest Brand: a manifest field neither judged nor listed in unjudgedExportFields"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("walk reported %q, want %q", got, want)
	}
	if !used["Runs.[].Rows"] {
		t.Error("the unjudged Runs.[].Rows was not matched")
	}
}

func xDirs(c *xctx, p []string, v any, _ xloc) {
	dir := v.(string)
	n := 0
	switch p[0] {
	case "DataDir", "ProjectDir":
		for _, s := range c.rep.Streams {
			if !strings.HasPrefix(s.Path, dir+string(filepath.Separator)) || (p[0] == "ProjectDir" && filepath.Dir(s.Path) != dir) {
				c.errorf(p, "stream %s read from %s", s.SourceID, s.Path)
			}
			n++
		}
	case "FilesDir":
		// Every upload is a file of the files directory.
		for _, er := range c.m.Runs {
			r, _ := c.runOf(&er)
			for _, f := range c.srv.Files(r.ID) {
				if !inFilesDir(dir, f.Bytes) {
					c.errorf(p, "run %s uploaded %s, which is not in %s", er.RunID, f.FileName, dir)
				}
				n++
			}
		}
	}
	if n == 0 {
		c.errorf(p, "nothing read from %s", dir)
	}
}

func inFilesDir(dir string, b []byte) bool {
	found := false
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !found {
			if x, err := os.ReadFile(p); err == nil && bytes.Equal(x, b) {
				found = true
			}
		}
		return nil
	})
	return found
}

// xPending: a run still being exported is not imported, and is listed as
// incomplete in the report.
func xPending(c *xctx, p []string, v any, _ xloc) {
	for _, x := range v.([]string) {
		prefix := x
		if p[0] == "TmpFiles" {
			if _, err := os.Stat(x); err != nil {
				c.errorf(p, "%s: %v", x, err)
			}
			prefix = strings.TrimSuffix(filepath.Base(x), "_part_0.parquet.tmp")
		}
		found := false
		for _, n := range c.rep.NotImported {
			if n.Reason == parsers.SkippedIncomplete && n.ID == prefix && !n.LeftBehind {
				found = true
			}
		}
		if !found {
			c.errorf(p, "%s is not listed as incomplete: %+v", prefix, c.rep.NotImported)
		}
		for _, s := range c.rep.Streams {
			if strings.HasSuffix(s.SourceID, "/"+prefix) {
				c.errorf(p, "%s was imported", prefix)
			}
		}
	}
}

func xRuns(c *xctx, p []string, v any, _ xloc) {
	if n := len(c.srv.Runs()); n != len(c.m.Runs) {
		c.errorf(p, "%d runs on the server, want %d", n, len(c.m.Runs))
	}
}

func xIdentity(c *xctx, p []string, v any, at xloc) {
	er := at.run
	r, ok := c.runOf(er)
	if !ok {
		c.errorf(p, "run %s missing; runs %v", er.RunID, runNames(c.srv))
		return
	}
	cfg := r.Config
	switch p[len(p)-1] {
	case "ProjectID":
		if cfg["neptune/project"] != v {
			c.errorf(p, "config neptune/project %v", cfg["neptune/project"])
		}
	case "RunID":
		if cfg["neptune/run_id"] != v {
			c.errorf(p, "config neptune/run_id %v", cfg["neptune/run_id"])
		}
	case "Prefix", "Parts":
		s, ok := c.streamOf(er)
		if !ok {
			c.errorf(p, "no stream for %s in the report", er.Prefix)
			return
		}
		if p[len(p)-1] == "Parts" {
			parts := v.([]string)
			last := parts[len(parts)-1]
			n, _ := strconv.Atoi(strings.TrimSuffix(last[strings.LastIndex(last, "_part_")+len("_part_"):], ".parquet"))
			if s.Path != parts[0] || c.pos[s.SourceID].Offset != int64(n) || !s.Complete {
				c.errorf(p, "stream %s at %s committed to part %d (complete %v), want %s .. part %d", s.SourceID, s.Path, c.pos[s.SourceID].Offset, s.Complete, parts[0], n)
			}
		}
	case "Name":
		if r.Name != v {
			c.errorf(p, "name %q", r.Name)
		}
	case "CreatedAt":
		if r.ClientCreatedAtMs == nil || int64(*r.ClientCreatedAtMs) != v.(int64) {
			c.errorf(p, "createdAt %v", r.ClientCreatedAtMs)
		}
	case "Tags", "GroupTags":
		want := append(append([]string{}, er.Tags...), er.GroupTags...)
		sort.Strings(want)
		got := append([]string{}, r.Tags...)
		sort.Strings(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			c.errorf(p, "tags %v, want %v", got, want)
		}
		if p[len(p)-1] == "GroupTags" {
			if gt, ok := cfg["neptune/group_tags"].([]any); !ok || fmt.Sprint(sortedStrings(gt)) != fmt.Sprint(er.GroupTags) {
				c.errorf(p, "config neptune/group_tags %#v", cfg["neptune/group_tags"])
			}
		}
	case "Failed":
		if want := map[bool]string{true: "FAILED", false: "COMPLETED"}[v.(bool)]; r.Status != want {
			c.errorf(p, "status %s, want %s", r.Status, want)
		}
	case "SysID":
		if cfg["neptune/sys/id"] != v {
			c.errorf(p, "config neptune/sys/id %v", cfg["neptune/sys/id"])
		}
	case "ForkParent", "ForkStepMicro":
		if er.ForkParent == "" {
			if r.ForkedFromRunID != 0 {
				c.errorf(p, "forked from %d", r.ForkedFromRunID)
			}
			return
		}
		parent, _ := runByExternalID(c.srv, er.ForkParent)
		step := er.ForkStepMicro * multiplierOf(r) / 1_000_000
		if r.ForkedFromRunID != parent.ID || parent.ID == 0 || r.ForkStep == nil || *r.ForkStep != step {
			c.errorf(p, "forked from %d at %v, want %d at %d", r.ForkedFromRunID, r.ForkStep, parent.ID, step)
		}
	case "Multiplier":
		if multiplierOf(r) != v.(int64) {
			c.errorf(p, "multiplier %d", multiplierOf(r))
		}
	case "FileSeriesIsIndex":
		if (cfg["neptune/export/file_series_steps"] == "index") != v.(bool) {
			c.errorf(p, "config neptune/export/file_series_steps %v", cfg["neptune/export/file_series_steps"])
		}
	}
}

// xParam: a parameter is in the config with its type: numbers, strings,
// booleans, string sets as lists ([] when empty, never null), datetimes
// as RFC 3339; sys/* under neptune/.
func xParam(c *xctx, p []string, v any, at xloc) {
	er := at.run
	r, _ := c.runOf(er)
	key := at.key
	if key == "sys/tags" || key == "sys/group_tags" {
		xIdentity(c, append(p[:2:2], "Tags"), nil, at) // tags, not config
		return
	}
	ck := key
	if strings.HasPrefix(key, "sys/") {
		ck = "neptune/" + key
	}
	got, ok := r.Config[ck]
	if !ok {
		c.errorf(p, "run %s: config %s missing", er.RunID, ck)
		return
	}
	switch w := v.(type) {
	case []string:
		l, isList := got.([]any)
		if !isList || fmt.Sprint(sortedStrings(l)) != fmt.Sprint(w) {
			c.errorf(p, "run %s: config %s = %#v, want the list %q", er.RunID, ck, got, w)
		}
	case neptunetest.ExportTime:
		tm, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got))
		if err != nil || tm.UnixMilli() != int64(w) {
			c.errorf(p, "run %s: config %s = %v, want %d", er.RunID, ck, got, w)
		}
	case int64:
		if got != float64(w) {
			c.errorf(p, "run %s: config %s = %v, want %d", er.RunID, ck, got, w)
		}
	case float64:
		if g, isF := got.(float64); !isF || !sameFloat(g, w) {
			c.errorf(p, "run %s: config %s = %#v, want %v", er.RunID, ck, got, w)
		}
	default:
		if got != v {
			c.errorf(p, "run %s: config %s = %#v (%T), want %#v", er.RunID, ck, got, got, v)
		}
	}
}

// xNullParams: another run's parameter, melted in as null, is not this
// run's, unless a fork inherited it from its parent (mlop gives a fork
// its parent's config).
func xNullParams(c *xctx, p []string, v any, at xloc) {
	er := at.run
	r, _ := c.runOf(er)
	for _, k := range v.([]string) {
		got, ok := r.Config[k]
		if !ok {
			continue
		}
		if pv, inherited := ancestorParam(c.m, er, k); !inherited || !sameValue(got, toManifestValue(pv)) {
			c.errorf(p, "run %s: null parameter %s in the config as %#v", er.RunID, k, got)
		}
	}
}

func ancestorParam(m *neptunetest.ExportManifest, er *neptunetest.ExportRun, k string) (any, bool) {
	for cur, n := er, 0; cur.ForkParent != "" && n < 16; n++ {
		var next *neptunetest.ExportRun
		for i := range m.Runs {
			if m.Runs[i].RunID == cur.ForkParent {
				next = &m.Runs[i]
			}
		}
		if next == nil {
			return nil, false
		}
		if v, ok := next.Params[k]; ok {
			return v, true
		}
		cur = next
	}
	return nil, false
}

func toManifestValue(v any) any {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case []string:
		out := []any{}
		for _, s := range x {
			out = append(out, s)
		}
		return out
	}
	return v
}

func xPoints(c *xctx, p []string, v any, at xloc) {
	r, _ := c.runOf(at.run)
	got := c.srv.Metrics(r.ID)
	n := 0
	for _, pts := range got {
		n += len(pts)
	}
	switch p[len(p)-1] {
	case "Points":
		if n != v.(int) {
			c.errorf(p, "run %s: %d points, want %d", at.run.RunID, n, v)
		}
	case "Metrics":
		for name := range got {
			if _, ok := at.run.Metrics[name]; !ok {
				c.errorf(p, "run %s: metric %s is not in the export", at.run.RunID, name)
			}
		}
	}
}

func xMetric(c *xctx, p []string, v any, at xloc) {
	r, _ := c.runOf(at.run)
	pts := c.srv.Metrics(r.ID)[at.key]
	st := at.elem.(*neptunetest.MetricStats)
	if len(pts) != st.Count {
		c.errorf(p, "run %s %s: %d points, want %d", at.run.RunID, at.key, len(pts), st.Count)
		return
	}
	mult := multiplierOf(r)
	f, l := pts[0], pts[len(pts)-1]
	sum := 0.0
	for _, pt := range pts {
		if !math.IsNaN(pt.Value) {
			sum += pt.Value
		}
	}
	ok := true
	switch p[len(p)-1] {
	case "FirstStepMicro":
		ok = int64(f.Step) == st.FirstStepMicro*mult/1_000_000
	case "LastStepMicro":
		ok = int64(l.Step) == st.LastStepMicro*mult/1_000_000
	case "First":
		ok = sameFloat(f.Value, st.First)
	case "Last":
		ok = sameFloat(l.Value, st.Last)
	case "Sum":
		ok = math.Abs(sum-st.Sum) <= 1e-6*math.Max(1, math.Abs(st.Sum))
	case "FirstTime":
		ok = int64(f.Time) == st.FirstTime
	case "LastTime":
		ok = int64(l.Time) == st.LastTime
	}
	if !ok {
		c.errorf(p, "run %s %s: first %+v last %+v sum %v; want %+v", at.run.RunID, at.key, f, l, sum, *st)
	}
}

func (c *xctx) dataRows(er *neptunetest.ExportRun, typ, name string) []mlopfake.DataRow {
	r, _ := c.runOf(er)
	var out []mlopfake.DataRow
	for _, d := range c.srv.Data(r.ID) {
		if d.DataType == typ && (name == "" || d.LogName == name) {
			out = append(out, d)
		}
	}
	return out
}

func xStrings(c *xctx, p []string, v any, at xloc) {
	er := at.run
	if len(p) == 3 {
		n := 0
		for _, vs := range er.Strings {
			n += len(vs)
		}
		if got := len(c.dataRows(er, "string-series", "")); got != n {
			c.errorf(p, "run %s: %d string rows, want %d", er.RunID, got, n)
		}
		return
	}
	r, _ := c.runOf(er)
	sv := at.elem.(*neptunetest.SeriesValue)
	want := uint64(sv.StepMicro * multiplierOf(r) / 1_000_000)
	for _, d := range c.dataRows(er, "string-series", at.key) {
		if d.Step == want && d.Data == sv.Value {
			return
		}
	}
	c.errorf(p, "run %s %s: no row %q at step %d", er.RunID, at.key, sv.Value, want)
}

func xConsole(c *xctx, p []string, v any, at xloc) {
	er := at.run
	r, _ := c.runOf(er)
	logs := c.srv.Logs(r.ID)
	if len(p) == 3 {
		if len(logs) != len(er.Console) {
			c.errorf(p, "run %s: %d console lines, want %d", er.RunID, len(logs), len(er.Console))
		}
		return
	}
	line := at.elem.(*neptunetest.ConsoleLine)
	typ := map[bool]string{true: "ERROR", false: "INFO"}[strings.HasSuffix(line.Path, "/stderr")]
	for _, l := range logs {
		if l.Message == strings.TrimSuffix(line.Text, "\n") && l.LogType == typ {
			return
		}
	}
	c.errorf(p, "run %s: no %s line %q", er.RunID, typ, line.Text)
}

func xHistograms(c *xctx, p []string, v any, at xloc) {
	er := at.run
	if len(p) == 3 {
		n := 0
		for _, hs := range er.Histograms {
			n += len(hs)
		}
		if got := len(c.dataRows(er, "HISTOGRAM", "")); got != n {
			c.errorf(p, "run %s: %d histograms, want %d", er.RunID, got, n)
		}
		return
	}
	r, _ := c.runOf(er)
	h := at.elem.(*neptunetest.HistogramValue)
	want := uint64(h.StepMicro * multiplierOf(r) / 1_000_000)
	for _, d := range c.dataRows(er, "HISTOGRAM", at.key) {
		var got struct{ Freq, Bins []float64 }
		if json.Unmarshal([]byte(d.Data), &got) == nil && d.Step == want &&
			fmt.Sprint(got.Bins) == fmt.Sprint(h.Edges) && fmt.Sprint(got.Freq) == fmt.Sprint(h.Values) {
			return
		}
	}
	c.errorf(p, "run %s %s: no histogram %v/%v at step %d", er.RunID, at.key, h.Edges, h.Values, want)
}

// xFiles: every file that exists was uploaded from the files directory
// under its attribute, at its step; a missing one is reported, item by
// item, and recorded in the config.
func xFiles(c *xctx, p []string, v any, at xloc) {
	er := at.run
	r, _ := c.runOf(er)
	files := c.srv.Files(r.ID)
	if len(p) == 3 {
		n := 0
		for _, f := range er.Files {
			if !f.Missing {
				n++
			}
		}
		if len(files) != n {
			c.errorf(p, "run %s: %d files on the server, want %d", er.RunID, len(files), n)
		}
		return
	}
	ef := at.elem.(*neptunetest.ExportFile)
	mult := multiplierOf(r)
	step := uint64(0)
	if ef.Type == "file_series" {
		step = uint64(ef.StepMicro * mult / 1_000_000)
	}
	if ef.Missing {
		key := "neptune/missing_files/" + ef.Attr
		if ef.Type == "file_series" {
			key += "/" + strconv.FormatUint(step, 10)
		}
		s, _ := c.streamOf(er)
		item := false
		for _, it := range s.Items {
			if it.Reason == "missing_file" && strings.Contains(it.Detail, ef.Attr) && strings.Contains(it.Detail, ef.Rel) {
				item = true
			}
		}
		if !strings.Contains(fmt.Sprint(r.Config[key]), ef.Rel) || !item {
			c.errorf(p, "run %s: missing %s: config %s = %v; report items %+v", er.RunID, ef.Rel, key, r.Config[key], s.Items)
		}
		return
	}
	local, err := os.ReadFile(ef.Local)
	if err != nil {
		c.errorf(p, "%v", err)
		return
	}
	if p[len(p)-1] == "Rel" && !strings.HasSuffix(filepath.ToSlash(ef.Local), ef.Rel) && ef.Type != "file_set" {
		c.errorf(p, "%s is not at %s", ef.Local, ef.Rel)
	}
	for _, f := range files {
		if f.LogName == ef.Attr && f.Step == step && bytes.Equal(f.Bytes, local) && f.Uploaded {
			if ef.Type == "artifact" && r.LogType(f.LogName) != "ARTIFACT" && r.LogType(f.LogName) != "TEXT" {
				c.errorf(p, "artifact registered as %s", r.LogType(f.LogName))
			}
			return
		}
	}
	c.errorf(p, "run %s: no upload of %s (%s) at step %d", er.RunID, ef.Attr, ef.Type, step)
}
