package main

// The manifest walk of TestImportNeptuneFixtures: every key of every
// fixture's manifest.json is either judged against what reached the mlop
// stand-in (a judge below) or listed, with the reason, in unjudgedKeys. A
// key that is neither fails the test, and so does a table entry that no
// manifest uses, so a manifest field nobody checks cannot be missed.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mlop-ai/mlop-agent/agent"
	"github.com/mlop-ai/mlop-agent/internal/mlopfake"
)

// unjudgedKeys are the manifest keys the test does not judge, each with
// the reason. A key listed here covers the keys below it.
var unjudgedKeys = []struct{ pattern, reason string }{
	{"generator.script", "the generating script's name (provenance); only its base name is judged, through auto_written_by_client.source_code/entrypoint"},
	{"generator.args", "the generating script's arguments (provenance)"},
	{"generator.environment", "the generating machine's Python and platform (provenance, not data)"},
	{"generator.generated_at", "when the manifest was written; the data's own times are judged by data_timestamps and the creation windows"},
	{"generator.cwd_at_generation", "the generator's working directory; the paths recorded under it are judged through fixtures_root_at_generation"},
	{"client.source", "where the client code came from (provenance)"},
	{"client.module_path", "where the client code was installed (provenance)"},
	{"client.bravado", "a library the client imports but does not use offline (provenance)"},
	{"client.bravado_core", "a library the client imports but does not use offline (provenance)"},
	{"client.jsonref", "a library the client imports but does not use offline (provenance)"},
	{"client.neptune_api", "the protobuf definitions the client was built with (provenance); the rows they encode are judged everywhere else"},
	{"produced_by", "prose naming the client and mode; judged through client.package, client.version and format"},
	{"series.*.steps", "prose on how the script gave steps; the steps themselves are judged by points/first_step/last_step (float series) and by values/points (string and image series at 0..n-1)"},
	{"files.*.reset", "the UploadFileSet reset flag: with one upload to the set it changes nothing; the set's files are judged by file_globs and matching_files"},
	{"tag_operations_in_order.[].note", "prose: the order within one operation, which the replay of tag_operations_in_order does not depend on"},
	{"metric_points_detail.*.[].completion_ratio", "a preview's completion; mlop has no place for it (previews are dropped here, and a kept preview is an ordinary point, README)"},
	{"kill.signal", "how the writer was stopped; what it left (rows only in the -wal) is judged by IMPORTANT and expected_run_operations_rows_min/max"},
}

// judge checks one manifest key's value against the import.
type judge func(c *jctx, p []string, v any)

// judges maps key patterns ("." between segments, "*" any one key, "[]"
// the elements of a list) to what checks them.
var judges []struct {
	pattern string
	fn      judge
}

func init() {
	add := func(fn judge, patterns ...string) {
		for _, p := range patterns {
			judges = append(judges, struct {
				pattern string
				fn      judge
			}{p, fn})
		}
	}
	add(judgeFixture, "fixture")
	add(judgeFormat, "format")
	add(judgeClientPackage, "client.package")
	add(judgeClientVersion, "client.version")
	add(judgeGeneratorRoot, "generator.fixtures_root_at_generation")
	add(judgeGlob, "dir_glob", "db_glob")
	add(judgeProject, "project")
	add(judgeInit, "init.mode", "init.name", "init.description", "init.tags_at_init", "init.capture_stdout", "init.capture_stderr",
		"init.capture_hardware_metrics", "init.capture_traceback", "init.source_files", "init.git_ref", "init.created_window")
	add(judgeAutoWritten, "auto_written_by_client.sys/name", "auto_written_by_client.sys/description", "auto_written_by_client.sys/failed",
		"auto_written_by_client.source_code/entrypoint", "auto_written_by_client.source_code/files")
	add(judgeAttributesFinal, "attributes_final")
	add(judgeAttribute, "attributes_final.*.type", "attributes_final.*.value", "attributes_final.*.value_ms", "attributes_final.*.iso", "attributes_final.*.op")
	add(judgeDeleted, "deleted_attributes")
	add(judgeNotes, "notes", "notes.nan_atom")
	add(judgeDataTimestamps, "data_timestamps")
	for _, sec := range []string{"series", "metrics", "metrics_excluding_previews", "metrics_guaranteed_prefix"} {
		for _, f := range []string{"count", "points", "first_step", "last_step", "sum_finite", "min_finite", "max_finite",
			"non_finite_count", "first_value", "last_value"} {
			if sec == "series" && (f == "count" || f == "points") {
				continue // series of every type: judgeN1Series
			}
			add(judgeSeriesField, sec+".*."+f)
		}
	}
	add(judgeN1Series, "series.*.count", "series.*.points", "series.*.type", "series.*.values", "series.*.notes",
		"series.*.timestamps", "series.*.attempted", "series.*.expected_after_client_filter")
	add(judgeImagePoint, "series.*.points.[].name", "series.*.points.[].description", "series.*.points.[].size", "series.*.points.[].rgb")
	add(judgeN1File, "files.*.op", "files.*.file_path", "files.*.ext", "files.*.size_bytes", "files.*.sha256", "files.*.copied",
		"files.*.tmp_file_name_pattern", "files.*.file_globs", "files.*.matching_files.*.sha256", "files.*.matching_files.*.size_bytes",
		"files.*.source", "files.*.source_path", "files.*.is_temporary", "files.*.mime_type", "files.*.destination",
		"files.*.destination_pattern", "files.*.temp_file_in_run_dir")
	add(judgeSectionPresence, "files", "string_series", "histograms", "file_series", "metrics", "configs_final", "series")
	add(judgeFileSeries, "file_series.*.count", "file_series.*.points.[].step", "file_series.*.points.[].source",
		"file_series.*.points.[].source_path", "file_series.*.points.[].is_temporary", "file_series.*.points.[].mime_type",
		"file_series.*.points.[].size_bytes", "file_series.*.points.[].sha256", "file_series.*.points.[].destination",
		"file_series.*.points.[].destination_pattern", "file_series.*.points.[].temp_file_in_run_dir")
	add(judgeStringSeries, "string_series.*.count", "string_series.*.points.[].step", "string_series.*.points.[].value")
	add(judgeHistogram, "histograms.*.count", "histograms.*.points.[].step", "histograms.*.points.[].bin_edges",
		"histograms.*.points.[].counts", "histograms.*.points.[].densities")
	add(judgeTags, "tags_final.sys/tags", "tags_final.sys/group_tags")
	add(judgeTagOps, "tag_operations_in_order", "tag_operations_in_order.[].attribute", "tag_operations_in_order.[].op",
		"tag_operations_in_order.[].values")
	add(judgeMetadataRow, "metadata_row.version", "metadata_row.project", "metadata_row.run_id")
	add(judgeCreateRun, "create_run.experiment_name", "create_run.family", "create_run.creation_time", "create_run.creation_time.iso",
		"create_run.creation_time.unix", "create_run.creation_time.seconds", "create_run.creation_time.nanos_approx",
		"create_run.creation_time_window_if_default", "create_run.fork", "create_run.fork.parent_project", "create_run.fork.parent_run_id",
		"create_run.fork.fork_step.decimal", "create_run.fork.fork_step.whole", "create_run.fork.fork_step.micro",
		"create_run.inherit_configs", "create_run.enable_console_log_capture", "create_run.source_tracking")
	add(judgeRows, "expected_run_operations_rows", "expected_rows_rule", "api_calls.*", "expected_run_operations_rows_min",
		"expected_run_operations_rows_max")
	add(judgeConfigValue, "configs_final.*.type", "configs_final.*.value", "configs_final.*.value.iso", "configs_final.*.value.unix",
		"configs_final.*.value.seconds", "configs_final.*.value.nanos_approx")
	add(judgeAssignments, "config_assignments_in_order", "config_assignments_in_order.[].path", "config_assignments_in_order.[].type",
		"config_assignments_in_order.[].value", "config_assignments_in_order.[].value.iso", "config_assignments_in_order.[].value.unix",
		"config_assignments_in_order.[].value.seconds", "config_assignments_in_order.[].value.nanos_approx")
	add(judgeDropped, "dropped_by_client")
	add(judgeMetricDetail, "metric_points_detail.*.[].step", "metric_points_detail.*.[].value", "metric_points_detail.*.[].preview",
		"metric_points_detail.*.[].timestamp")
	add(judgePreviewSemantics, "preview_semantics")
	add(judgeFork, "fork_semantics", "parent_fixture")
	add(judgeUserFiles, "user_files_dir", "temp_files")
	add(judgeKilled, "IMPORTANT", "kill.last_step_confirmed_committed", "kill.note", "metric_formula")
}

// jctx is what the judges of one fixture see.
type jctx struct {
	t         *testing.T
	fixture   string
	root      string // the fixture's copy
	m         manifest
	srv       *mlopfake.Server
	run       mlopfake.Run
	runs      map[string]mlopfake.Run // by fixture
	manifests map[string]manifest     // by fixture
	stream    agent.StreamReport
	rows      int64            // the last sequence id committed (checkpoint)
	changed   []string         // fixture files the import changed
	dropped   bool             // preview points dropped (--previews drop)
	fail      func(msg string) // nil: t.Error
}

func (c *jctx) errorf(p []string, format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf("%s: %s: %s", c.fixture, strings.Join(p, " › "), fmt.Sprintf(format, args...))
	if c.fail != nil {
		c.fail(msg)
		return
	}
	c.t.Error(msg)
}

// parentManifest is the fork parent's manifest (parent_fixture).
func (c *jctx) parentManifest() manifest { return c.manifests[asStr(c.get("parent_fixture"))] }

func (c *jctx) isN1() bool { return c.m["series"] != nil || c.m["init"] != nil }

func (c *jctx) mult() int64 { return multiplierOf(c.run) }

// get walks the manifest.
func (c *jctx) get(keys ...string) any {
	var cur any = map[string]any(c.m)
	for _, k := range keys {
		o, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = o[k]
	}
	return cur
}

func asList(v any) []any { l, _ := v.([]any); return l }

func asObj(v any) map[string]any { o, _ := v.(map[string]any); return o }

func asNum(v any) float64 {
	f, ok := v.(float64)
	if !ok {
		return math.NaN()
	}
	return f
}

func asStr(v any) string { s, _ := v.(string); return s }

func sortedStrings(v any) []string {
	out := []string{}
	for _, x := range asList(v) {
		out = append(out, x.(string))
	}
	sort.Strings(out)
	return out
}

// walkManifest visits every key of c.m. used collects the patterns of
// both tables that matched.
func walkManifest(c *jctx, used map[string]bool) {
	var walk func(p []string, v any)
	walk = func(p []string, v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				visit(c, used, append(append([]string(nil), p...), k), x[k], walk)
			}
		case []any:
			for _, e := range x {
				if o, ok := e.(map[string]any); ok {
					walk(append(append([]string(nil), p...), "[]"), o)
				}
			}
		}
	}
	walk(nil, map[string]any(c.m))
}

func visit(c *jctx, used map[string]bool, p []string, v any, walk func([]string, any)) {
	var js []judge
	var jp []string
	for _, j := range judges {
		if matchKey(j.pattern, p) {
			js, jp = append(js, j.fn), append(jp, j.pattern)
		}
	}
	var up []string
	for _, u := range unjudgedKeys {
		if matchKey(u.pattern, p) {
			up = append(up, u.pattern)
		}
	}
	switch {
	case len(js)+len(up) > 1:
		c.errorf(p, "matched by more than one table entry: judges %v, unjudged %v", jp, up)
		return
	case len(up) == 1:
		used[up[0]] = true
		return // its subtree is not judged either
	case len(js) == 1:
		used[jp[0]] = true
		js[0](c, p, v)
	}
	// Keys below a non-empty object, or inside objects of a list, need
	// their own judges.
	deeper := false
	switch x := v.(type) {
	case map[string]any:
		deeper = len(x) > 0
	case []any:
		for _, e := range x {
			if _, ok := e.(map[string]any); ok {
				deeper = true
			}
		}
	}
	if len(js) == 0 && !deeper {
		c.errorf(p, "a manifest key neither judged nor listed in unjudgedKeys (value %.80v)", v)
	}
	if deeper {
		walk(p, v)
	}
}

func matchKey(pattern string, p []string) bool {
	ps := strings.Split(pattern, ".")
	if len(ps) != len(p) {
		return false
	}
	for i, s := range ps {
		if s != "*" && s != p[i] {
			return false
		}
		if s == "*" && p[i] == "[]" {
			return false
		}
	}
	return true
}

// --- identity and provenance -------------------------------------------

func judgeFixture(c *jctx, p []string, v any) {
	if v != c.fixture {
		c.errorf(p, "%v, but the folder is %s", v, c.fixture)
	}
}

func judgeFormat(c *jctx, p []string, v any) {
	s := asStr(v)
	cfg := c.run.Config
	switch {
	case strings.HasPrefix(s, "N1 "):
		if cfg["neptune/source"] != "neptune-client" || cfg["neptune/container_type"] != "run" {
			c.errorf(p, "run config %v, want a neptune-client run", cfg)
		}
		if strings.Contains(s, "offline mode") && cfg["neptune/mode"] != "offline" {
			c.errorf(p, "neptune/mode %v, want offline", cfg["neptune/mode"])
		}
		if strings.Contains(s, "DIRECT_DIRECTORY") {
			if parts := strings.Split(filepath.Base(c.stream.Path), "__"); len(parts) != 4 {
				c.errorf(p, "read from %s, not a <type>__<uuid>__<pid>__<rand> directory", c.stream.Path)
			}
		}
	case strings.HasPrefix(s, "N3 "):
		if cfg["neptune/source"] != "neptune-scale" {
			c.errorf(p, "neptune/source %v", cfg["neptune/source"])
		}
		m := regexp.MustCompile(`DB version (v\d+)`).FindStringSubmatch(s)
		if m == nil || cfg["neptune/db_version"] != m[1] {
			c.errorf(p, "neptune/db_version %v, want %v", cfg["neptune/db_version"], m)
		}
		if strings.Contains(s, "uncheckpointed WAL") && !fileExists(c, ".neptune/*/run_operations.sqlite3-wal") {
			c.errorf(p, "no -wal file in the fixture")
		}
	default:
		c.errorf(p, "unknown format %q", s)
	}
}

func fileExists(c *jctx, glob string) bool {
	m, _ := filepath.Glob(filepath.Join(c.root, glob))
	return len(m) > 0
}

func judgeClientPackage(c *jctx, p []string, v any) {
	want := map[string]string{"neptune": "neptune-client", "neptune-scale": "neptune-scale"}[asStr(v)]
	if want == "" || c.run.Config["neptune/source"] != want {
		c.errorf(p, "package %v, run config neptune/source %v", v, c.run.Config["neptune/source"])
	}
}

// judgeClientVersion: neptune-client records its version in metadata.json
// (config neptune/client_version); neptune-scale does not, but its version
// decides the database version it writes (neptune-formats.md §2.2.2).
func judgeClientVersion(c *jctx, p []string, v any) {
	s := asStr(v)
	if c.isN1() {
		if c.run.Config["neptune/client_version"] != s {
			c.errorf(p, "config neptune/client_version %v, want %s", c.run.Config["neptune/client_version"], s)
		}
		return
	}
	var major, minor int
	fmt.Sscanf(s, "%d.%d", &major, &minor)
	want := "v5"
	switch {
	case major == 0 && minor < 12:
		want = "v1"
	case major == 0 && minor < 13:
		want = "v2"
	case major == 0 && minor < 16:
		want = "v3"
	case major == 0 && minor < 20:
		want = "v4"
	}
	if c.run.Config["neptune/db_version"] != want {
		c.errorf(p, "client %s writes DB %s; run config neptune/db_version %v", s, want, c.run.Config["neptune/db_version"])
	}
}

// judgeGeneratorRoot: the recorded absolute paths start with the root the
// import's --path-map re-roots (the files are judged by files.*).
func judgeGeneratorRoot(c *jctx, p []string, v any) {
	root := asStr(v) + "/" + c.fixture
	var check func(q []string, x any)
	check = func(q []string, x any) {
		switch y := x.(type) {
		case map[string]any:
			for k, z := range y {
				check(append(q, k), z)
			}
		case []any:
			for _, z := range y {
				check(q, z)
			}
		case string:
			last := q[len(q)-1]
			if (last == "file_path" || last == "source_path" || last == "file_globs") && !strings.HasPrefix(y, root+"/") {
				c.errorf(p, "%s = %s is not under %s", strings.Join(q, "."), y, root)
			}
		}
	}
	check(nil, map[string]any(c.m))
}

func judgeGlob(c *jctx, p []string, v any) {
	pat := filepath.Join(c.root, strings.TrimSuffix(asStr(v), "/"))
	ok, err := filepath.Match(pat, c.stream.Path)
	if err != nil || !ok {
		c.errorf(p, "the run was read from %s, which %s does not match", c.stream.Path, pat)
	}
}

func judgeProject(c *jctx, p []string, v any) {
	if !strings.Contains(asStr(v), "not stored on disk") {
		c.errorf(p, "unexpected %q", v)
	}
	if _, ok := c.run.Config["neptune/project"]; ok || c.run.Project != "nep" {
		c.errorf(p, "project %q (config %v), want the --project given", c.run.Project, c.run.Config["neptune/project"])
	}
}

// --- neptune-client run ------------------------------------------------

func judgeInit(c *jctx, p []string, v any) {
	cfg := c.run.Config
	switch p[1] {
	case "mode":
		if cfg["neptune/mode"] != v {
			c.errorf(p, "neptune/mode %v", cfg["neptune/mode"])
		}
	case "name":
		if c.run.Name != v || cfg["neptune/sys/name"] != v {
			c.errorf(p, "run name %q, neptune/sys/name %v", c.run.Name, cfg["neptune/sys/name"])
		}
	case "description":
		if cfg["neptune/sys/description"] != v {
			c.errorf(p, "neptune/sys/description %v", cfg["neptune/sys/description"])
		}
	case "tags_at_init":
		// Each is a tag unless a later operation removed it.
		removed := map[string]bool{}
		for _, op := range asList(c.get("tag_operations_in_order")) {
			o := asObj(op)
			if strings.Contains(asStr(o["op"]), "Remove") || o["op"] == "REMOVE" {
				for _, t := range asList(o["values"]) {
					removed[t.(string)] = true
				}
			}
		}
		for _, tg := range asList(v) {
			if has(c.run.Tags, tg.(string)) == removed[tg.(string)] {
				c.errorf(p, "tag %v: on the server %v, removed later %v", tg, has(c.run.Tags, tg.(string)), removed[tg.(string)])
			}
		}
	case "capture_stdout", "capture_stderr":
		typ := map[string]string{"capture_stdout": "INFO", "capture_stderr": "ERROR"}[p[1]]
		n := 0
		for _, l := range c.srv.Logs(c.run.ID) {
			if l.LogType == typ {
				n++
			}
		}
		if (n > 0) != v.(bool) {
			c.errorf(p, "%d %s console lines", n, typ)
		}
	case "capture_hardware_metrics":
		n := 0
		for name := range c.srv.Metrics(c.run.ID) {
			if strings.HasPrefix(name, "monitoring/") {
				n++
			}
		}
		if (n > 0) != v.(bool) {
			c.errorf(p, "%d monitoring metrics", n)
		}
	case "capture_traceback":
		n := 0
		for _, d := range c.srv.Data(c.run.ID) {
			if strings.HasSuffix(d.LogName, "/traceback") {
				n++
			}
		}
		if (n > 0) != v.(bool) {
			c.errorf(p, "%d traceback rows", n)
		}
	case "source_files":
		if n := len(filesOf(c, "source_code/files")); n != len(asList(v)) {
			c.errorf(p, "%d source files on the server", n)
		}
	case "git_ref":
		for k := range cfg {
			if strings.HasPrefix(k, "source_code/git") || strings.HasPrefix(k, "source_code/diff") {
				c.errorf(p, "config %s", k)
			}
		}
		if len(filesOf(c, "source_code/diff")) > 0 {
			c.errorf(p, "a source_code/diff file")
		}
	case "created_window":
		c.inWindow(p, asList(v))
	default:
		c.errorf(p, "no judge")
	}
}

// inWindow checks the run's createdAt against an [iso, iso] window.
func (c *jctx) inWindow(p []string, win []any) {
	lo, hi := isoMs(c, p, win[0]), isoMs(c, p, win[1])
	if c.run.ClientCreatedAtMs == nil {
		c.errorf(p, "no createdAt sent")
		return
	}
	if got := int64(*c.run.ClientCreatedAtMs); got < lo || got > hi+1 {
		c.errorf(p, "createdAt %d outside [%d, %d]", got, lo, hi)
	}
}

func isoMs(c *jctx, p []string, v any) int64 {
	tm, err := time.Parse(time.RFC3339Nano, asStr(v))
	if err != nil {
		c.errorf(p, "bad time %v: %v", v, err)
	}
	return tm.UnixMilli()
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func filesOf(c *jctx, logName string) []mlopfake.File {
	var out []mlopfake.File
	for _, f := range c.srv.Files(c.run.ID) {
		if f.LogName == logName {
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Step < out[j].Step })
	return out
}

func judgeAutoWritten(c *jctx, p []string, v any) {
	k := p[1]
	cfg := c.run.Config
	switch k {
	case "sys/name", "sys/description":
		if cfg["neptune/"+k] != v {
			c.errorf(p, "config neptune/%s = %v", k, cfg["neptune/"+k])
		}
	case "sys/failed":
		if cfg["neptune/sys/failed"] != v || (c.run.Status == "FAILED") != v.(bool) {
			c.errorf(p, "config %v, status %s", cfg["neptune/sys/failed"], c.run.Status)
		}
	case "source_code/entrypoint":
		// "relative path of the generator script as seen from the cwd".
		got := asStr(cfg[k])
		if got == "" || filepath.IsAbs(got) || path.Base(got) != path.Base(asStr(c.get("generator", "script"))) {
			c.errorf(p, "config %s = %q, want the relative path of %v", k, got, c.get("generator", "script"))
		}
	case "source_code/files":
		// An UploadFileSet of no globs: nothing to upload, nothing missing.
		if !strings.Contains(asStr(v), "file_globs=[]") {
			c.errorf(p, "unexpected %q", v)
		}
		if n := len(filesOf(c, k)); n != 0 {
			c.errorf(p, "%d files", n)
		}
		if _, ok := cfg["neptune/missing_files/"+k]; ok {
			c.errorf(p, "reported missing")
		}
	}
}

// judgeAttributesFinal: the run's config is exactly the final attributes
// (and what the client wrote by itself), plus bookkeeping under neptune/.
func judgeAttributesFinal(c *jctx, p []string, v any) {
	want := map[string]bool{}
	for k := range asObj(v) {
		want[k] = true
	}
	for k := range asObj(c.get("auto_written_by_client")) {
		if !strings.HasPrefix(k, "sys/") && k != "source_code/files" {
			want[k] = true
		}
	}
	for k := range c.run.Config {
		if !strings.HasPrefix(k, "neptune/") && !want[k] {
			c.errorf(p, "config %s = %v is not an attribute of the Neptune run", k, c.run.Config[k])
		}
	}
	for k := range want {
		if _, ok := c.run.Config[k]; !ok {
			c.errorf(p, "config %s missing", k)
		}
	}
}

func judgeAttribute(c *jctx, p []string, v any) {
	key, field := p[1], p[2]
	spec := asObj(c.get("attributes_final", key))
	got, ok := c.run.Config[key]
	if !ok {
		c.errorf(p, "config %s missing", key)
		return
	}
	switch field {
	case "type":
		if !jsonTypeIs(got, asStr(v)) {
			c.errorf(p, "config %s = %#v is not a %v", key, got, v)
		}
	case "value":
		if !sameValue(got, v) {
			c.errorf(p, "config %s = %#v, want %#v", key, got, v)
		}
	case "value_ms", "iso":
		want := int64(asNum(spec["value_ms"]))
		if field == "iso" {
			want = isoMs(c, p, v)
		}
		tm, err := time.Parse(time.RFC3339Nano, asStr(got))
		if err != nil || tm.UnixMilli() != want {
			c.errorf(p, "config %s = %v, want %d ms", key, got, want)
		}
	case "op":
		op, _, _ := strings.Cut(asStr(v), " ")
		wantType := map[string]string{"AssignFloat": "float", "AssignInt": "int", "AssignString": "string", "AssignBool": "bool",
			"AssignDatetime": "datetime"}[op]
		if wantType != spec["type"] || !jsonTypeIs(got, wantType) {
			c.errorf(p, "op %v for type %v, config %#v", v, spec["type"], got)
		}
		// "(assigned 'X' first)": an overwrite; the first value is gone.
		if m := regexp.MustCompile(`assigned '([^']*)' first`).FindStringSubmatch(asStr(v)); m != nil && got == m[1] {
			c.errorf(p, "config %s kept the first value %q", key, m[1])
		}
	}
}

// jsonTypeIs reports whether a config value (decoded JSON) has the
// Neptune type.
func jsonTypeIs(v any, typ string) bool {
	switch typ {
	case "float", "float64":
		_, ok := v.(float64)
		return ok
	case "int", "int64":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "string":
		_, ok := v.(string)
		return ok
	case "bool":
		_, ok := v.(bool)
		return ok
	case "datetime", "timestamp":
		_, err := time.Parse(time.RFC3339Nano, asStr(v))
		return err == nil
	case "string_set":
		l, ok := v.([]any)
		for _, x := range l {
			if _, s := x.(string); !s {
				return false
			}
		}
		return ok
	}
	return false
}

// sameValue compares a config value with a manifest value (sets sorted).
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case []any:
		return fmt.Sprint(sortedStrings(got)) == fmt.Sprint(sortedStrings(w)) && got != nil
	case float64:
		g, ok := got.(float64)
		return ok && sameFloat(g, w)
	}
	return got == want
}

func judgeDeleted(c *jctx, p []string, v any) {
	for _, d := range asList(v) {
		key, _, _ := strings.Cut(d.(string), " ")
		if val, ok := c.run.Config[key]; ok {
			c.errorf(p, "deleted %s is in the config as %#v", key, val)
		}
	}
}

// judgeNotes: neptune-client skips non-finite float atoms (nothing in the
// queue, nothing in mlop); scale-b's timestamps fall on quarter seconds.
func judgeNotes(c *jctx, p []string, v any) {
	if len(p) == 2 && p[1] == "nan_atom" {
		m := regexp.MustCompile(`run\['([^']+)'\]`).FindStringSubmatch(asStr(v))
		if m == nil {
			c.errorf(p, "cannot read the attribute from %q", v)
			return
		}
		if val, ok := c.run.Config[m[1]]; ok {
			c.errorf(p, "config %s = %v", m[1], val)
		}
		return
	}
	if _, ok := v.(string); !ok {
		return // an object of notes: its keys are judged one by one
	}
	if !strings.Contains(asStr(v), ".0/.25/.5/.75") {
		c.errorf(p, "unexpected note %q", v)
	}
	for name, pts := range c.srv.RawMetrics(c.run.ID) {
		for _, pt := range pts {
			if pt.Time%250 != 0 {
				c.errorf(p, "%s at step %d has time %d, not on a quarter second", name, pt.Step, pt.Time)
			}
		}
	}
}

// judgeDataTimestamps: every point, data row and file has a time inside
// the window the script logged in (the series it names as explicit
// excepted: their times are judged by timestamps and metric details).
func judgeDataTimestamps(c *jctx, p []string, v any) {
	s := asStr(v)
	if strings.HasPrefix(s, "explicit") {
		// Listed per point: every metric has its details with times.
		for name := range asObj(c.get("metrics")) {
			for _, d := range asList(c.get("metric_points_detail", name)) {
				if _, ok := asObj(d)["timestamp"].(string); !ok {
					c.errorf(p, "%s: a point without its timestamp", name)
				}
			}
		}
		return
	}
	iso := regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:.]+\+00:00`).FindAllString(s, -1)
	var lo, hi int64
	switch {
	case len(iso) == 2:
		lo, hi = isoMs(c, p, iso[0]), isoMs(c, p, iso[1])+1
	case strings.Contains(s, "wall clock"):
		// No window given: after the run was created, before the
		// manifest was written.
		win := asList(c.get("create_run", "creation_time_window_if_default"))
		lo, hi = isoMs(c, p, win[0]), isoMs(c, p, c.get("generator", "generated_at"))
	default:
		c.errorf(p, "cannot read a window from %q", s)
		return
	}
	except := map[string]bool{}
	if m := regexp.MustCompile(`except ([^ ]+) \(explicit\)`).FindStringSubmatch(s); m != nil {
		except[m[1]] = true
	}
	in := func(what string, t uint64) {
		if int64(t) < lo || int64(t) > hi {
			c.errorf(p, "%s at %d, outside [%d, %d]", what, t, lo, hi)
		}
	}
	n := 0
	for name, pts := range c.srv.RawMetrics(c.run.ID) {
		if except[name] {
			continue
		}
		for _, pt := range pts {
			in(name, pt.Time)
			n++
		}
	}
	for _, d := range c.srv.Data(c.run.ID) {
		in(d.LogName, d.Time)
		n++
	}
	for _, f := range c.srv.Files(c.run.ID) {
		in(f.LogName, f.Time)
		n++
	}
	if n == 0 {
		c.errorf(p, "nothing with a time on the server")
	}
}

// --- series ------------------------------------------------------------

// mpoint is a point as the manifest lists it, in server steps.
type mpoint struct {
	step    uint64
	value   float64
	preview bool
}

// listed returns a float series' points as its section lists them
// (neptune-client: implied steps 0..n-1 for what the client kept), with
// preview flags from metric_points_detail.
func (c *jctx) listed(section, name string) []mpoint {
	spec := asObj(c.get(section, name))
	mult := c.mult()
	var out []mpoint
	if kept, ok := spec["expected_after_client_filter"].([]any); ok {
		for i, v := range kept {
			out = append(out, mpoint{step: uint64(int64(i) * mult), value: manifestValue(v)})
		}
		return out
	}
	detail := asList(c.get("metric_points_detail", name))
	for i, pt := range asList(spec["points"]) {
		pair := asList(pt)
		mp := mpoint{step: decimalStep(c.t, asStr(pair[0]), mult), value: manifestValue(pair[1])}
		if section == "metrics" && i < len(detail) {
			mp.preview = asObj(detail[i])["preview"] == true
		}
		out = append(out, mp)
	}
	return out
}

// expected is what the server should hold of listed points: previews
// dropped (--previews drop), one value per step (the last logged wins).
func (c *jctx) expected(listed []mpoint) ([]mpoint, bool) {
	var out []mpoint
	exact := true
	for _, pt := range listed {
		if pt.preview && c.dropped {
			exact = false
			continue
		}
		if n := len(out); n > 0 && out[n-1].step == pt.step {
			out[n-1], exact = pt, false
			continue
		}
		out = append(out, pt)
	}
	return out, exact
}

// stat computes a manifest statistic of values.
func stat(field string, vals []float64) any {
	var finite []float64
	nonFinite := 0
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			nonFinite++
		} else {
			finite = append(finite, v)
		}
	}
	switch field {
	case "non_finite_count":
		return float64(nonFinite)
	case "sum_finite":
		s := 0.0
		for _, v := range finite {
			s += v
		}
		return s
	case "first_value", "last_value":
		if len(vals) == 0 {
			return nil
		}
		if field == "first_value" {
			return vals[0]
		}
		return vals[len(vals)-1]
	case "min_finite", "max_finite":
		if len(finite) == 0 {
			return nil
		}
		m := finite[0]
		for _, v := range finite {
			if (field == "min_finite" && v < m) || (field == "max_finite" && v > m) {
				m = v
			}
		}
		return m
	}
	return nil
}

func closeTo(a, b any) bool {
	x, ok1 := a.(float64)
	y, ok2 := b.(float64)
	if !ok1 || !ok2 {
		return a == nil && b == nil
	}
	return sameFloat(x, y) || math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y))
}

// judgeSeriesField judges one field of a float series against its listed
// points and, where the server holds exactly those, against the server.
func judgeSeriesField(c *jctx, p []string, v any) {
	section, name, field := p[0], p[1], p[2]
	listed := c.listed(section, name)
	got := c.srv.Metrics(c.run.ID)[name]
	prefix := section == "metrics_guaranteed_prefix"
	if n := int(asNum(c.get(section, name, "count"))); prefix && c.get(section, name, "points") == nil && len(got) >= n {
		// Only statistics listed (the values follow metric_formula,
		// judged there): the server's first count points are judged.
		listed = nil
		for _, pt := range got[:n] {
			listed = append(listed, mpoint{step: pt.Step, value: pt.Value})
		}
	}
	exp, exact := c.expected(listed)
	if prefix && len(got) > len(listed) {
		got = got[:len(listed)]
	}
	switch field {
	case "points":
		if len(got) != len(exp) {
			c.errorf(p, "%d points on the server, want %d", len(got), len(exp))
			return
		}
		for i := range exp {
			if got[i].Step != exp[i].step || !sameFloat(got[i].Value, exp[i].value) {
				c.errorf(p, "point %d: %v@%d, want %v@%d", i, got[i].Value, got[i].Step, exp[i].value, exp[i].step)
				return
			}
		}
	case "count":
		n := int(asNum(v))
		if n != len(listed) {
			c.errorf(p, "count %d, %d points listed", n, len(listed))
		}
		all := len(c.srv.Metrics(c.run.ID)[name])
		switch {
		case prefix && (all < n || all > n+1):
			c.errorf(p, "%d points on the server, want %d or one more", all, n)
		case !prefix && exact && all != n:
			c.errorf(p, "%d points on the server, want %d", all, n)
		case !prefix && !exact && all != len(exp):
			c.errorf(p, "%d points on the server, want %d (previews dropped)", all, len(exp))
		}
	case "first_step", "last_step":
		if v == nil {
			if len(listed) != 0 || len(got) != 0 {
				c.errorf(p, "null, but %d listed, %d on the server", len(listed), len(got))
			}
			return
		}
		want := decimalStep(c.t, asStr(v), c.mult())
		i := 0
		if field == "last_step" {
			i = len(listed) - 1
		}
		if len(listed) == 0 || listed[i].step != want {
			c.errorf(p, "%v, not the listed points' %s", v, field)
		}
		if exact && (len(got) == 0 || got[map[bool]int{true: 0, false: len(got) - 1}[field == "first_step"]].Step != want) {
			c.errorf(p, "server %s differs from %v", field, v)
		}
	default:
		var lv, gv []float64
		for _, pt := range listed {
			lv = append(lv, pt.value)
		}
		for _, pt := range got {
			gv = append(gv, pt.Value)
		}
		if !closeTo(stat(field, lv), v) {
			c.errorf(p, "%v, the listed points give %v", v, stat(field, lv))
		}
		if exact && !closeTo(stat(field, gv), v) {
			c.errorf(p, "%v, the server's points give %v", v, stat(field, gv))
		}
	}
}

// judgeN1Series judges neptune-client series fields that depend on the
// series type.
func judgeN1Series(c *jctx, p []string, v any) {
	name, field := p[1], p[2]
	spec := asObj(c.get("series", name))
	typ := asStr(spec["type"])
	mult := c.mult()
	rows := stringRows(c, name)
	files := filesOf(c, name)
	switch field {
	case "type":
		_, isMetric := c.srv.Metrics(c.run.ID)[name]
		ok := map[string]bool{"float_series": isMetric && len(rows) == 0 && len(files) == 0,
			"string_series": !isMetric && len(rows) > 0 && c.run.LogType(name) == "DATA",
			"image_series":  !isMetric && len(files) > 0 && c.run.LogType(name) == "IMAGE"}[typ]
		if !ok {
			c.errorf(p, "%s is not a %s on the server (metric %v, %d string rows, %d files, type %q)", name, typ, isMetric, len(rows), len(files), c.run.LogType(name))
		}
	case "count", "points":
		if typ == "float_series" {
			judgeSeriesField(c, p, v)
			return
		}
		want := int(asNum(spec["count"]))
		n := len(rows)
		if typ == "image_series" {
			n = len(files)
		}
		if field == "count" && (n != want || want != len(asList(spec["values"]))+len(asList(spec["points"]))) {
			c.errorf(p, "%d on the server, count %d", n, want)
		}
		if field == "points" {
			for i, f := range files {
				if f.Step != uint64(int64(i)*mult) {
					c.errorf(p, "image %d at step %d, want %d", i, f.Step, int64(i)*mult)
				}
			}
		}
	case "values":
		vals := asList(v)
		if len(rows) != len(vals) {
			c.errorf(p, "%d rows, want %d", len(rows), len(vals))
			return
		}
		for i, x := range vals {
			want := truncRunes(x.(string), 1000) // the client keeps 1000 characters
			if rows[i].Data != want || rows[i].Step != uint64(int64(i)*mult) {
				c.errorf(p, "row %d = %.40q@%d, want %.40q@%d", i, rows[i].Data, rows[i].Step, want, int64(i)*mult)
			}
		}
	case "notes":
		// "last value was 1500 chars, client truncates to 1000".
		m := regexp.MustCompile(`(\d+) chars, client truncates to (\d+)`).FindStringSubmatch(asStr(v))
		if m == nil || len(rows) == 0 {
			c.errorf(p, "cannot judge %q", v)
			return
		}
		long, _ := strconv.Atoi(m[1])
		keep, _ := strconv.Atoi(m[2])
		// The manifest lists the value as the client kept it.
		vals := asList(spec["values"])
		last := asStr(vals[len(vals)-1])
		if long <= keep || utf8.RuneCountInString(last) != keep || utf8.RuneCountInString(rows[len(rows)-1].Data) != keep {
			c.errorf(p, "the last value has %d characters listed, %d on the server; want %d of %d", utf8.RuneCountInString(last),
				utf8.RuneCountInString(rows[len(rows)-1].Data), keep, long)
		}
	case "timestamps":
		got := c.srv.Metrics(c.run.ID)[name]
		ts := asList(v)
		if len(got) != len(ts) {
			c.errorf(p, "%d points, %d timestamps", len(got), len(ts))
			return
		}
		for i, x := range ts {
			if want := uint64(asNum(x) * 1000); got[i].Time != want {
				c.errorf(p, "point %d at %d, want %d", i, got[i].Time, want)
			}
		}
	case "attempted", "expected_after_client_filter":
		// The client drops non-finite values; the rest arrive at 0..n-1.
		var want []float64
		for _, x := range asList(v) {
			f := manifestValue(x)
			if s, ok := x.(string); ok {
				f = map[string]float64{"NaN": math.NaN(), "+Inf": math.Inf(1), "-Inf": math.Inf(-1)}[s]
			}
			if field == "expected_after_client_filter" || !(math.IsNaN(f) || math.IsInf(f, 0)) {
				want = append(want, f)
			}
		}
		got := c.srv.Metrics(c.run.ID)[name]
		if len(got) != len(want) {
			c.errorf(p, "%d points on the server, want %v", len(got), want)
			return
		}
		for i := range want {
			if got[i].Value != want[i] || got[i].Step != uint64(int64(i)*mult) {
				c.errorf(p, "point %d = %v@%d, want %v@%d", i, got[i].Value, got[i].Step, want[i], int64(i)*mult)
			}
		}
	}
}

func truncRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// stringRows returns the string-series rows of name, by step.
func stringRows(c *jctx, name string) []mlopfake.DataRow {
	var out []mlopfake.DataRow
	for _, d := range c.srv.Data(c.run.ID) {
		if d.LogName == name && d.DataType == "string-series" {
			out = append(out, d)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Step < out[j].Step })
	return out
}

// judgeImagePoint judges one LogImages point: its file's name, caption,
// size and pixel.
func judgeImagePoint(c *jctx, p []string, v any) {
	name, field := p[1], p[4]
	files := filesOf(c, name)
	var pts []map[string]any
	for _, x := range asList(c.get("series", name, "points")) {
		pts = append(pts, asObj(x))
	}
	for i, pt := range pts {
		if !sameJSON(pt[field], v) {
			continue
		}
		if i >= len(files) {
			c.errorf(p, "image %d missing on the server", i)
			continue
		}
		f := files[i]
		switch field {
		case "name":
			if f.FileName != asStr(v)+".png" {
				c.errorf(p, "image %d uploaded as %s, want %v.png", i, f.FileName, v)
			}
		case "description":
			if f.Caption == nil || *f.Caption != v {
				c.errorf(p, "image %d caption %v, want %v", i, f.Caption, v)
			}
		case "size", "rgb":
			im, err := png.Decode(bytes.NewReader(f.Bytes))
			if err != nil {
				c.errorf(p, "image %d: %v", i, err)
				continue
			}
			l := asList(v)
			if field == "size" && (im.Bounds().Dx() != int(asNum(l[0])) || im.Bounds().Dy() != int(asNum(l[1]))) {
				c.errorf(p, "image %d is %v, want %v", i, im.Bounds(), v)
			}
			r, g, b, _ := im.At(0, 0).RGBA()
			if field == "rgb" && (r>>8 != uint32(asNum(l[0])) || g>>8 != uint32(asNum(l[1])) || b>>8 != uint32(asNum(l[2]))) {
				c.errorf(p, "image %d pixel %d,%d,%d, want %v", i, r>>8, g>>8, b>>8, v)
			}
		}
	}
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// --- files -------------------------------------------------------------

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// localPath re-roots a path recorded by the generator onto the copy.
func (c *jctx) localPath(p string) string {
	root := asStr(c.get("generator", "fixtures_root_at_generation")) + "/" + c.fixture
	return filepath.Join(c.root, strings.TrimPrefix(p, root))
}

// runDirFile finds a file in the run's own directory (upload_path/, or
// the database's directory) whose name matches re, with content sha.
func (c *jctx) runDirFile(re *regexp.Regexp, sum string) (string, bool) {
	dir := filepath.Dir(c.stream.Path)
	if c.isN1() {
		dir = filepath.Join(c.stream.Path, "upload_path")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && re.MatchString(e.Name()) && sha(b) == sum {
			return e.Name(), true
		}
	}
	return "", false
}

var uuidName = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`

// patternRe turns a manifest name pattern ("<uuid4>.png",
// "artifacts_inline-<unix ts>-<YYYY-MM-DD_HH.MM.SS.ffffff>.txt in
// upload_path/", ".../UUID.bin") into a regexp for a file name.
func patternRe(s string) *regexp.Regexp {
	s, _, _ = strings.Cut(s, " in ")
	s, _, _ = strings.Cut(s, " (")
	s = path.Base(s)
	q := regexp.QuoteMeta(s)
	for from, to := range map[string]string{
		regexp.QuoteMeta("<uuid4>"): uuidName, "UUID": uuidName,
		regexp.QuoteMeta("<unix ts>"): `[0-9]+(\.[0-9]+)?`, regexp.QuoteMeta("<YYYY-MM-DD_HH.MM.SS.ffffff>"): `[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.[0-9]{6}`,
	} {
		q = strings.ReplaceAll(q, from, to)
	}
	return regexp.MustCompile("^" + q + "$")
}

// checkFile judges one field of a file description (a single file, or a
// point of a file series) against the server's file f.
func checkFile(c *jctx, p []string, spec map[string]any, field string, v any, f mlopfake.File) {
	temp := spec["is_temporary"] == true || spec["copied"] == true
	switch field {
	case "sha256":
		if sha(f.Bytes) != v || !f.Uploaded {
			c.errorf(p, "uploaded %v with sha256 %s", f.Uploaded, sha(f.Bytes))
		}
	case "size_bytes":
		if f.FileSize != uint64(asNum(v)) || len(f.Bytes) != int(asNum(v)) {
			c.errorf(p, "size %d (%d bytes uploaded)", f.FileSize, len(f.Bytes))
		}
	case "file_path", "source_path":
		if v == nil {
			if _, ok := spec["tmp_file_name_pattern"]; !ok {
				c.errorf(p, "no path and no copy")
			}
			return
		}
		b, err := os.ReadFile(c.localPath(asStr(v)))
		if err != nil || !bytes.Equal(b, f.Bytes) {
			c.errorf(p, "the upload is not %s (%v)", v, err)
		}
		if field == "source_path" && !temp && (f.Caption == nil || *f.Caption != path.Base(asStr(v))) {
			c.errorf(p, "caption %v, want the file's name", f.Caption)
		}
	case "ext":
		if f.SentFileType != v || path.Ext(f.FileName) != "."+asStr(v) {
			c.errorf(p, "uploaded as %s (type %s)", f.FileName, f.SentFileType)
		}
	case "op":
		if v == "UploadFile" && f.Step != 0 {
			c.errorf(p, "a single file at step %d", f.Step)
		}
	case "copied", "is_temporary":
		_, inRun := c.runDirFile(regexp.MustCompile(`.`), asStr(spec["sha256"]))
		if inRun != v.(bool) {
			c.errorf(p, "a copy in the run's directory: %v", inRun)
		}
		if v == true && f.Caption != nil && *f.Caption != "" {
			c.errorf(p, "a temporary copy captioned %q", *f.Caption)
		}
	case "tmp_file_name_pattern", "temp_file_in_run_dir":
		name, ok := c.runDirFile(patternRe(asStr(v)), asStr(spec["sha256"]))
		if !ok || (c.isN1() && f.FileName != name) {
			c.errorf(p, "no run-directory file matching %s with the content (uploaded as %s)", patternRe(asStr(v)), f.FileName)
		}
	case "mime_type":
		want := map[string]string{"image/png": "IMAGE", "text/plain": "TEXT", "text/csv": "TEXT", "text/markdown": "TEXT",
			"application/yaml": "TEXT", "application/octet-stream": "ARTIFACT"}[asStr(v)]
		if want == "" || c.run.LogType(f.LogName) != want {
			c.errorf(p, "registered as %q, want %q for %v", c.run.LogType(f.LogName), want, v)
		}
	case "source":
		s := asStr(v)
		fromPath := strings.HasPrefix(s, "path") || strings.HasPrefix(s, "File(path")
		if fromPath == temp || (!strings.HasPrefix(s, "bytes") && !strings.HasPrefix(s, "File(bytes") && !fromPath) {
			c.errorf(p, "source %q, is_temporary %v", s, temp)
		}
	case "destination":
		// The object name Neptune would use; mlop's file name is the
		// same base name.
		if f.FileName != path.Base(asStr(v)) {
			c.errorf(p, "uploaded as %s", f.FileName)
		}
	case "destination_pattern":
		if !patternRe(asStr(v)).MatchString(f.FileName) {
			c.errorf(p, "uploaded as %s, not %s", f.FileName, patternRe(asStr(v)))
		}
	default:
		c.errorf(p, "no judge for file field %s", field)
	}
}

func judgeN1File(c *jctx, p []string, v any) {
	key := p[1]
	spec := asObj(c.get("files", key))
	files := filesOf(c, key)
	if len(p) == 5 { // files.*.matching_files.<name>.<field>
		for _, f := range files {
			if f.Caption != nil && *f.Caption == p[3] {
				checkFile(c, p, spec, p[4], v, f)
				return
			}
		}
		c.errorf(p, "no uploaded file %s", p[3])
		return
	}
	switch p[2] {
	case "file_globs":
		var want []string
		for _, g := range asList(v) {
			m, _ := filepath.Glob(c.localPath(asStr(g)))
			for _, f := range m {
				b, _ := os.ReadFile(f)
				want = append(want, sha(b))
			}
		}
		var got []string
		for _, f := range files {
			got = append(got, sha(f.Bytes))
		}
		sort.Strings(want)
		sort.Strings(got)
		if len(want) == 0 || fmt.Sprint(want) != fmt.Sprint(got) {
			c.errorf(p, "uploaded %d files, the globs match %d", len(got), len(want))
		}
		if len(want) != len(asObj(spec["matching_files"])) {
			c.errorf(p, "the globs match %d files, matching_files lists %d", len(want), len(asObj(spec["matching_files"])))
		}
		return
	case "op":
		if v == "UploadFileSet" {
			if len(files) != len(asObj(spec["matching_files"])) {
				c.errorf(p, "%d files for the set", len(files))
			}
			return
		}
	}
	if len(files) != 1 {
		c.errorf(p, "%d files on the server, want 1", len(files))
		return
	}
	checkFile(c, p, spec, p[2], v, files[0])
}

// judgeSectionPresence: a section's names are exactly what reached the
// server as that kind, so an empty section means none.
func judgeSectionPresence(c *jctx, p []string, v any) {
	want := map[string]bool{}
	for k := range asObj(v) {
		want[k] = true
	}
	got := map[string]bool{}
	switch p[0] {
	case "files", "file_series":
		// Every uploaded file is a file, a point of a file series, or
		// (neptune-client) an image of an image series.
		for k := range asObj(c.get("files")) {
			want[k] = true
		}
		for k := range asObj(c.get("file_series")) {
			want[k] = true
		}
		for k, s := range asObj(c.get("series")) {
			if asObj(s)["type"] == "image_series" {
				want[k] = true
			}
		}
		for _, f := range c.srv.Files(c.run.ID) {
			got[f.LogName] = true
		}
	case "series":
		for k, s := range asObj(v) {
			if asObj(s)["type"] == "image_series" {
				delete(want, k) // judged with the files
			}
		}
		for name := range c.srv.RawMetrics(c.run.ID) {
			got[name] = true
		}
		for _, d := range c.srv.Data(c.run.ID) {
			got[d.LogName] = true
		}
	case "string_series":
		for _, d := range c.srv.Data(c.run.ID) {
			if d.DataType == "string-series" {
				got[d.LogName] = true
			}
		}
	case "histograms":
		for _, d := range c.srv.Data(c.run.ID) {
			if d.DataType == "HISTOGRAM" {
				got[d.LogName] = true
			}
		}
	case "metrics":
		for name := range c.srv.RawMetrics(c.run.ID) {
			got[name] = true
		}
		if c.dropped {
			for name := range want {
				if len(c.srv.Metrics(c.run.ID)[name]) == 0 {
					got[name] = true // only previews, dropped
				}
			}
		}
	case "configs_final":
		for k := range c.run.Config {
			if !strings.HasPrefix(k, "neptune/") {
				got[k] = true
			}
		}
		// A fork with inherit_configs also has its parent's configs (as on
		// a Neptune 3 server: fork_semantics); its own win.
		if asObj(c.get("create_run", "fork")) != nil && c.get("create_run", "inherit_configs") == true {
			for k, pv := range asObj(c.parentManifest()["configs_final"]) {
				if want[k] {
					continue
				}
				want[k] = true
				if pc := asObj(pv); asStr(pc["type"]) != "timestamp" && !sameValue(c.run.Config[k], pc["value"]) {
					c.errorf(p, "inherited %s = %#v, the parent's is %#v", k, c.run.Config[k], pc["value"])
				}
			}
		}
	}
	if fmt.Sprint(sortedKeys(want)) != fmt.Sprint(sortedKeys(got)) {
		c.errorf(p, "the server has %v, the manifest lists %v", sortedKeys(got), sortedKeys(want))
	}
}

func judgeFileSeries(c *jctx, p []string, v any) {
	name := p[1]
	files := filesOf(c, name)
	pts := asList(c.get("file_series", name, "points"))
	if p[2] == "count" {
		if len(files) != int(asNum(v)) || len(pts) != int(asNum(v)) {
			c.errorf(p, "%d files on the server, %d points listed", len(files), len(pts))
		}
		return
	}
	field := p[4]
	for i, pt := range pts {
		spec := asObj(pt)
		if !sameJSON(spec[field], v) || i >= len(files) {
			continue
		}
		if field == "step" {
			if files[i].Step != decimalStep(c.t, asStr(v), c.mult()) {
				c.errorf(p, "file %d at step %d", i, files[i].Step)
			}
			continue
		}
		checkFile(c, p, spec, field, v, files[i])
	}
}

func judgeStringSeries(c *jctx, p []string, v any) {
	name := p[1]
	rows := stringRows(c, name)
	pts := asList(c.get("string_series", name, "points"))
	if p[2] == "count" {
		if len(rows) != int(asNum(v)) || len(pts) != int(asNum(v)) {
			c.errorf(p, "%d rows on the server, %d points listed", len(rows), len(pts))
		}
		return
	}
	for i, pt := range pts {
		spec := asObj(pt)
		if !sameJSON(spec[p[4]], v) || i >= len(rows) {
			continue
		}
		if p[4] == "step" && rows[i].Step != decimalStep(c.t, asStr(v), c.mult()) {
			c.errorf(p, "row %d at step %d", i, rows[i].Step)
		}
		if p[4] == "value" && rows[i].Data != v {
			c.errorf(p, "row %d = %q", i, rows[i].Data)
		}
	}
}

func judgeHistogram(c *jctx, p []string, v any) {
	name := p[1]
	var rows []mlopfake.DataRow
	for _, d := range c.srv.Data(c.run.ID) {
		if d.LogName == name && d.DataType == "HISTOGRAM" {
			rows = append(rows, d)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Step < rows[j].Step })
	pts := asList(c.get("histograms", name, "points"))
	if p[2] == "count" {
		if len(rows) != int(asNum(v)) || len(pts) != int(asNum(v)) {
			c.errorf(p, "%d rows on the server, %d points listed", len(rows), len(pts))
		}
		return
	}
	field := p[4]
	for i, pt := range pts {
		if !sameJSON(asObj(pt)[field], v) || i >= len(rows) {
			continue
		}
		var h struct {
			Freq []float64 `json:"freq"`
			Bins []float64 `json:"bins"`
		}
		if err := json.Unmarshal([]byte(rows[i].Data), &h); err != nil {
			c.errorf(p, "row %d: %v", i, err)
			continue
		}
		var want []float64
		for _, x := range asList(v) {
			want = append(want, asNum(x))
		}
		switch field {
		case "step":
			if rows[i].Step != decimalStep(c.t, asStr(v), c.mult()) {
				c.errorf(p, "row %d at step %d", i, rows[i].Step)
			}
		case "bin_edges":
			if fmt.Sprint(h.Bins) != fmt.Sprint(want) {
				c.errorf(p, "row %d bins %v", i, h.Bins)
			}
		case "counts", "densities":
			// freq holds the counts, or the densities when there are none.
			if fmt.Sprint(h.Freq) != fmt.Sprint(want) {
				c.errorf(p, "row %d freq %v", i, h.Freq)
			}
		}
	}
}

// --- tags --------------------------------------------------------------

func judgeTags(c *jctx, p []string, v any) {
	want := map[string]bool{}
	for _, k := range []string{"sys/tags", "sys/group_tags"} {
		for _, t := range asList(c.get("tags_final", k)) {
			want[t.(string)] = true
		}
	}
	got := map[string]bool{}
	for _, t := range c.run.Tags {
		got[t] = true
	}
	if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
		c.errorf(p, "server tags %v, want %v", sortedKeys(got), sortedKeys(want))
	}
	if p[1] != "sys/group_tags" {
		return
	}
	// Group tags are also kept in config; [] when they were emptied (or,
	// for a fork, which mlop gives its parent's config, never set),
	// absent when they were never set.
	touched := asObj(c.get("create_run", "fork")) != nil
	for _, op := range asList(c.get("tag_operations_in_order")) {
		if asObj(op)["attribute"] == "sys/group_tags" {
			touched = true
		}
	}
	got2, ok := c.run.Config["neptune/group_tags"]
	switch {
	case touched && (!ok || fmt.Sprint(sortedStrings(got2)) != fmt.Sprint(sortedStrings(v)) || got2 == nil):
		c.errorf(p, "config neptune/group_tags = %#v, want %v", got2, sortedStrings(v))
	case !touched && ok:
		c.errorf(p, "config neptune/group_tags = %#v for group tags never set", got2)
	}
}

// judgeTagOps replays the tag operations: the result is tags_final and
// what the server has.
func judgeTagOps(c *jctx, p []string, v any) {
	ops := asList(c.get("tag_operations_in_order"))
	sets := map[string]map[string]bool{"sys/tags": {}, "sys/group_tags": {}}
	for _, op := range ops {
		o := asObj(op)
		set := sets[asStr(o["attribute"])]
		if set == nil {
			c.errorf(p, "unknown attribute %v", o["attribute"])
			return
		}
		for _, x := range asList(o["values"]) {
			switch o["op"] {
			case "AddStrings", "ADD":
				set[x.(string)] = true
			case "RemoveStrings", "REMOVE":
				delete(set, x.(string))
			default:
				c.errorf(p, "unknown op %v", o["op"])
			}
		}
	}
	for attr, set := range sets {
		if fmt.Sprint(sortedKeys(set)) != fmt.Sprint(sortedStrings(c.get("tags_final", attr))) {
			c.errorf(p, "replayed %s %v, tags_final %v", attr, sortedKeys(set), c.get("tags_final", attr))
		}
		for t := range set {
			if !has(c.run.Tags, t) {
				c.errorf(p, "tag %s not on the server", t)
			}
		}
	}
}

// --- neptune-scale run -------------------------------------------------

func judgeMetadataRow(c *jctx, p []string, v any) {
	cfg := c.run.Config
	switch p[1] {
	case "version":
		if cfg["neptune/db_version"] != v {
			c.errorf(p, "neptune/db_version %v", cfg["neptune/db_version"])
		}
	case "project":
		if cfg["neptune/project"] != v {
			c.errorf(p, "neptune/project %v", cfg["neptune/project"])
		}
	case "run_id":
		if c.run.ExternalID != v || cfg["neptune/run_id"] != v {
			c.errorf(p, "externalId %q, neptune/run_id %v", c.run.ExternalID, cfg["neptune/run_id"])
		}
	}
}

func judgeCreateRun(c *jctx, p []string, v any) {
	cfg := c.run.Config
	created := int64(-1)
	if c.run.ClientCreatedAtMs != nil {
		created = int64(*c.run.ClientCreatedAtMs)
	}
	switch strings.Join(p[1:], ".") {
	case "experiment_name":
		want := v
		if v == nil {
			want = c.get("metadata_row", "run_id")
		}
		if c.run.Name != want {
			c.errorf(p, "run name %q, want %v", c.run.Name, want)
		}
		if got, ok := cfg["neptune/experiment_name"]; (v == nil) == ok || (ok && got != v) {
			c.errorf(p, "config neptune/experiment_name %v", got)
		}
	case "family":
		// The client sets family = run_id, the run's identity.
		if v != c.get("metadata_row", "run_id") || c.run.ExternalID != v {
			c.errorf(p, "family %v, run %s", v, c.run.ExternalID)
		}
	case "creation_time":
		if v == nil {
			if c.get("create_run", "creation_time_window_if_default") == nil {
				c.errorf(p, "neither a creation time nor a window")
			}
			return
		}
		if int64(asNum(asObj(v)["seconds"]))*1000+int64(asNum(asObj(v)["nanos_approx"]))/1e6 != created {
			c.errorf(p, "createdAt %d", created)
		}
	case "creation_time.iso":
		if isoMs(c, p, v) != created {
			c.errorf(p, "createdAt %d", created)
		}
	case "creation_time.unix":
		if int64(math.Round(asNum(v)*1000)) != created {
			c.errorf(p, "createdAt %d", created)
		}
	case "creation_time.seconds":
		if int64(asNum(v)) != created/1000 {
			c.errorf(p, "createdAt %d", created)
		}
	case "creation_time.nanos_approx":
		if int64(asNum(v))/1_000_000 != created%1000 {
			c.errorf(p, "createdAt %d", created)
		}
	case "creation_time_window_if_default":
		if v == nil {
			if c.get("create_run", "creation_time") == nil {
				c.errorf(p, "neither a creation time nor a window")
			}
			return
		}
		c.inWindow(p, asList(v))
	case "fork":
		if v == nil && (c.run.ForkedFromRunID != 0 || cfg["neptune/fork/parent_run_id"] != nil) {
			c.errorf(p, "forked from %d", c.run.ForkedFromRunID)
		}
		if v != nil && c.run.ForkedFromRunID == 0 {
			c.errorf(p, "not forked")
		}
	case "fork.parent_project":
		if cfg["neptune/fork/parent_project"] != v {
			c.errorf(p, "config %v", cfg["neptune/fork/parent_project"])
		}
	case "fork.parent_run_id":
		parent, ok := c.srv.Run(c.run.ForkedFromRunID)
		if !ok || parent.ExternalID != v || cfg["neptune/fork/parent_run_id"] != v {
			c.errorf(p, "forked from %q, config %v", parent.ExternalID, cfg["neptune/fork/parent_run_id"])
		}
	case "fork.fork_step.decimal":
		step := decimalStep(c.t, asStr(v), c.mult())
		if c.run.ForkStep == nil || uint64(*c.run.ForkStep) != step || cfg["neptune/fork/step"] != v {
			c.errorf(p, "forkStep %v, config %v, want %d", c.run.ForkStep, cfg["neptune/fork/step"], step)
		}
	case "fork.fork_step.whole", "fork.fork_step.micro":
		fs := asObj(c.get("create_run", "fork", "fork_step"))
		micro := int64(asNum(fs["whole"]))*1_000_000 + int64(asNum(fs["micro"]))
		if decimalStep(c.t, asStr(fs["decimal"]), 1_000_000) != uint64(micro) || c.run.ForkStep == nil ||
			*c.run.ForkStep != micro*c.mult()/1_000_000 {
			c.errorf(p, "whole/micro %v, forkStep %v", fs, c.run.ForkStep)
		}
	case "inherit_configs":
		if cfg["neptune/fork/inherit_configs"] != v {
			c.errorf(p, "config %v", cfg["neptune/fork/inherit_configs"])
		}
	case "enable_console_log_capture":
		if n := len(c.srv.Logs(c.run.ID)); (n > 0) != v.(bool) {
			c.errorf(p, "%d console lines", n)
		}
	case "source_tracking":
		for k := range cfg {
			if strings.HasPrefix(k, "source_code/") == (v == nil) {
				c.errorf(p, "config %s", k)
			}
		}
	default:
		c.errorf(p, "no judge")
	}
}

// judgeRows: every row the client wrote was read and committed: the
// checkpoint's last sequence id is the row count, which the call counts
// give (1 CREATE_RUN + 1 snapshot per call).
func judgeRows(c *jctx, p []string, v any) {
	rows := c.rows
	switch p[0] {
	case "expected_run_operations_rows":
		if rows != int64(asNum(v)) {
			c.errorf(p, "committed up to row %d, want %v", rows, v)
		}
	case "expected_run_operations_rows_min":
		if rows < int64(asNum(v)) {
			c.errorf(p, "committed up to row %d", rows)
		}
	case "expected_run_operations_rows_max":
		if rows > int64(asNum(v)) {
			c.errorf(p, "committed up to row %d", rows)
		}
	case "expected_rows_rule", "api_calls":
		if !strings.HasPrefix(asStr(c.get("expected_rows_rule")), "1 CREATE_RUN + 1 UPDATE_SNAPSHOT per ") {
			c.errorf(p, "unknown rule %q", c.get("expected_rows_rule"))
		}
		sum := int64(1)
		for _, n := range asObj(c.get("api_calls")) {
			sum += int64(asNum(n))
		}
		if sum != rows || sum != int64(asNum(c.get("expected_run_operations_rows"))) {
			c.errorf(p, "1 + the calls = %d rows; committed %d, manifest %v", sum, rows, c.get("expected_run_operations_rows"))
		}
	}
}

// judgeConfigValue judges configs_final.
func judgeConfigValue(c *jctx, p []string, v any) {
	key := p[1]
	spec := asObj(c.get("configs_final", key))
	got, ok := c.run.Config[key]
	if !ok {
		c.errorf(p, "config %s missing", key)
		return
	}
	judgeConfigField(c, p, asStr(spec["type"]), spec["value"], p[2:], v, got)
}

// judgeConfigField judges a field (type, value, value.iso, ...) of an
// assignment of typ/value against the config value got.
func judgeConfigField(c *jctx, p []string, typ string, value any, field []string, v, got any) {
	f := strings.Join(field, ".")
	switch {
	case f == "type":
		if !jsonTypeIs(got, typ) {
			c.errorf(p, "config %#v is not a %s", got, typ)
		}
	case f == "value" && typ == "timestamp":
		// An object: its fields are judged one by one.
	case f == "value":
		if !sameValue(got, v) {
			c.errorf(p, "config %#v, want %#v", got, v)
		}
	case strings.HasPrefix(f, "value."):
		tm, err := time.Parse(time.RFC3339Nano, asStr(got))
		if err != nil {
			c.errorf(p, "config %v is not a time", got)
			return
		}
		var ok bool
		switch field[1] {
		case "iso":
			ok = isoMs(c, p, v) == tm.UnixMilli()
		case "unix":
			ok = int64(math.Round(asNum(v)*1000)) == tm.UnixMilli()
		case "seconds":
			ok = int64(asNum(v)) == tm.Unix()
		case "nanos_approx":
			ok = int64(asNum(v))/1_000_000 == int64(tm.Nanosecond())/1_000_000
		}
		if !ok {
			c.errorf(p, "config %v, want %v", got, v)
		}
	default:
		c.errorf(p, "no judge")
	}
}

// judgeAssignments replays log_configs in order: the last assignment of
// each path is configs_final and the server's value; earlier ones were
// overwritten.
func judgeAssignments(c *jctx, p []string, v any) {
	list := asList(c.get("config_assignments_in_order"))
	last := map[string]int{}
	for i, a := range list {
		last[asStr(asObj(a)["path"])] = i
	}
	if len(p) == 1 {
		for path, i := range last {
			if !sameJSON(asObj(c.get("configs_final", path)), map[string]any{"type": asObj(list[i])["type"], "value": asObj(list[i])["value"]}) {
				c.errorf(p, "the last assignment of %s is not configs_final", path)
			}
		}
		if len(last) != len(asObj(c.get("configs_final"))) {
			c.errorf(p, "%d paths assigned, %d in configs_final", len(last), len(asObj(c.get("configs_final"))))
		}
		return
	}
	// A field of the elements: judge it in every assignment holding it.
	for i, a := range list {
		o := asObj(a)
		var fv any = o
		for _, k := range p[2:] {
			fv = asObj(fv)[k]
		}
		if !sameJSON(fv, v) {
			continue
		}
		path := asStr(o["path"])
		got, ok := c.run.Config[path]
		if !ok {
			c.errorf(p, "config %s missing", path)
			continue
		}
		if p[2] == "path" {
			continue
		}
		if last[path] != i {
			// Overwritten: the server has the later value.
			if p[2] == "value" && o["type"] != "timestamp" && sameValue(got, v) && !sameJSON(asObj(list[last[path]])["value"], v) {
				c.errorf(p, "config %s kept the overwritten %v", path, v)
			}
			continue
		}
		judgeConfigField(c, p, asStr(o["type"]), o["value"], p[2:], v, got)
	}
}

// judgeDropped: nothing the client was documented to drop, and nothing
// dropped on the way: the import skipped nothing of this run.
func judgeDropped(c *jctx, p []string, v any) {
	if len(asList(v)) != 0 {
		c.errorf(p, "a judge for listed drops is needed: %v", v)
	}
	if len(c.stream.Warnings) != 0 || len(c.stream.Items) != 0 {
		c.errorf(p, "the import skipped %v: %+v", c.stream.Warnings, c.stream.Items)
	}
}

// judgeMetricDetail judges one field of the per-point details: committed
// points (and previews, were they kept) are on the server at their step
// with their value and time; a dropped preview left no trace of its own.
func judgeMetricDetail(c *jctx, p []string, v any) {
	name, field := p[1], p[3]
	got := map[uint64]mlopfake.Point{}
	for _, pt := range c.srv.Metrics(c.run.ID)[name] {
		got[pt.Step] = pt
	}
	for _, d := range asList(c.get("metric_points_detail", name)) {
		o := asObj(d)
		if !sameJSON(o[field], v) {
			continue
		}
		step := decimalStep(c.t, asStr(o["step"]), c.mult())
		pt, ok := got[step]
		preview := o["preview"] == true
		switch {
		case preview && c.dropped:
			if ok && pt.Value == asNum(o["value"]) && !committedAt(c, name, o["step"], o["value"]) {
				c.errorf(p, "a dropped preview %v@%v is on the server", o["value"], o["step"])
			}
		case !ok:
			c.errorf(p, "no point at step %v", o["step"])
		case field == "value" || field == "step" || field == "preview":
			if !sameFloat(pt.Value, asNum(o["value"])) {
				c.errorf(p, "%v at step %v, want %v", pt.Value, o["step"], o["value"])
			}
		case field == "timestamp":
			if int64(pt.Time) != isoMs(c, p, v) {
				c.errorf(p, "step %v at %d, want %v", o["step"], pt.Time, v)
			}
		}
	}
}

func committedAt(c *jctx, name string, step, value any) bool {
	for _, d := range asList(c.get("metric_points_detail", name)) {
		o := asObj(d)
		if o["preview"] != true && o["step"] == step && o["value"] == value {
			return true
		}
	}
	return false
}

// judgePreviewSemantics: the server holds, per step, exactly the
// committed points; steps with previews only are absent (dropped).
func judgePreviewSemantics(c *jctx, p []string, v any) {
	for name := range asObj(c.get("metric_points_detail")) {
		want := map[uint64]float64{}
		for _, d := range asList(c.get("metric_points_detail", name)) {
			if o := asObj(d); o["preview"] != true {
				want[decimalStep(c.t, asStr(o["step"]), c.mult())] = asNum(o["value"])
			}
		}
		got := c.srv.Metrics(c.run.ID)[name]
		if len(got) != len(want) {
			c.errorf(p, "%s: %d points, %d committed", name, len(got), len(want))
		}
		for _, pt := range got {
			if w, ok := want[pt.Step]; !ok || w != pt.Value {
				c.errorf(p, "%s: %v@%d is not a committed point", name, pt.Value, pt.Step)
			}
		}
	}
}

// judgeFork: the child holds only its own points (after the fork step),
// links to its parent, and shares its experiment name.
func judgeFork(c *jctx, p []string, v any) {
	parent, ok := c.runs[asStr(c.get("parent_fixture"))]
	if !ok || c.run.ForkedFromRunID != parent.ID {
		c.errorf(p, "forked from %d, the parent fixture's run is %d", c.run.ForkedFromRunID, parent.ID)
		return
	}
	if p[0] != "fork_semantics" {
		return
	}
	fork := decimalStep(c.t, asStr(c.get("create_run", "fork", "fork_step", "decimal")), c.mult())
	for name, pts := range c.srv.Metrics(c.run.ID) {
		for _, pt := range pts {
			if pt.Step <= fork {
				c.errorf(p, "%s has an inherited point at step %d", name, pt.Step)
			}
		}
	}
	if strings.Contains(asStr(v), "inherit_configs=True") && c.run.Config["neptune/fork/inherit_configs"] != true {
		c.errorf(p, "inherit_configs not recorded")
	}
	if strings.Contains(asStr(v), "Same experiment_name") && parent.Name != c.run.Name {
		c.errorf(p, "names %q and %q", parent.Name, c.run.Name)
	}
}

// judgeUserFiles: path sources are read from the re-rooted user_files/,
// byte sources from the client's copies in the run directory.
func judgeUserFiles(c *jctx, p []string, v any) {
	var specs []map[string]any
	for _, f := range asObj(c.get("files")) {
		specs = append(specs, asObj(f))
	}
	for _, fs := range asObj(c.get("file_series")) {
		for _, pt := range asList(asObj(fs)["points"]) {
			specs = append(specs, asObj(pt))
		}
	}
	n := 0
	for _, s := range specs {
		switch {
		case p[0] == "user_files_dir" && s["is_temporary"] == false:
			local := c.localPath(asStr(s["source_path"]))
			b, err := os.ReadFile(local)
			if filepath.Base(filepath.Dir(local)) != strings.TrimSuffix(strings.Fields(asStr(v))[0], "/") || err != nil || sha(b) != s["sha256"] {
				c.errorf(p, "%s is not a copy in %v", local, v)
			}
			n++
		case p[0] == "temp_files" && s["is_temporary"] == true:
			if _, ok := c.runDirFile(regexp.MustCompile("^"+uuidName+`\.[a-z]+$`), asStr(s["sha256"])); !ok {
				c.errorf(p, "no <uuid4><ext> copy of %v in the run directory", s["sha256"])
			}
			n++
		}
	}
	if n == 0 {
		c.errorf(p, "no file it describes")
	}
}

// judgeKilled judges the killed writer's fixture.
func judgeKilled(c *jctx, p []string, v any) {
	ms := c.srv.Metrics(c.run.ID)
	switch strings.Join(p, ".") {
	case "IMPORTANT":
		// Rows only in the -wal, read without touching the files, the
		// CREATE_RUN among them.
		if len(c.changed) > 0 {
			c.errorf(p, "the import changed %v", c.changed)
		}
		if c.run.Name != c.get("create_run", "experiment_name") {
			c.errorf(p, "name %q: the CREATE_RUN row was not read", c.run.Name)
		}
	case "kill.last_step_confirmed_committed":
		last := uint64(asNum(v))
		b, err := os.ReadFile(filepath.Join(c.root, "progress.txt"))
		lines := strings.Fields(string(b))
		if err != nil || len(lines) == 0 || lines[len(lines)-1] != strconv.FormatUint(last, 10) {
			c.errorf(p, "progress.txt ends %v", lines[max(0, len(lines)-1):])
		}
		for name, pts := range ms {
			for s := uint64(0); s <= last; s++ {
				if int(s) >= len(pts) || pts[s].Step != s {
					c.errorf(p, "%s lacks step %d", name, s)
					break
				}
			}
		}
	case "kill.note":
		// "Steps 0..N must be present; step N+1 may also be present ...
		// Nothing beyond that."
		last := uint64(asNum(c.get("kill", "last_step_confirmed_committed")))
		if !strings.Contains(asStr(v), "Nothing beyond that") {
			c.errorf(p, "unexpected note")
		}
		for name, pts := range ms {
			if len(pts) > 0 && pts[len(pts)-1].Step > last+1 {
				c.errorf(p, "%s reaches step %d", name, pts[len(pts)-1].Step)
			}
		}
	case "metric_formula":
		// train/loss = 1/(step+1), train/step_echo = float(step).
		for _, pt := range ms["train/loss"] {
			if pt.Value != 1/(float64(pt.Step)+1) {
				c.errorf(p, "train/loss %v at %d", pt.Value, pt.Step)
			}
		}
		for _, pt := range ms["train/step_echo"] {
			if pt.Value != float64(pt.Step) {
				c.errorf(p, "train/step_echo %v at %d", pt.Value, pt.Step)
			}
		}
		if len(ms["train/loss"]) == 0 || len(ms["train/step_echo"]) == 0 {
			c.errorf(p, "series missing")
		}
	}
}

// TestManifestWalk: the walk fails on a key that is neither judged nor
// listed, also below a judged object, and passes over listed ones.
func TestManifestWalk(t *testing.T) {
	m := manifest{"fixture": "f", "brand_new": 1.0, "generator": map[string]any{"args": []any{"x"}, "environment": map[string]any{"python": "3"}},
		"notes": map[string]any{"a_new_note": "x"}}
	var got []string
	c := &jctx{t: t, fixture: "f", m: m, fail: func(msg string) { got = append(got, msg) }}
	used := map[string]bool{}
	walkManifest(c, used)
	want := []string{"f: brand_new: a manifest key neither judged nor listed in unjudgedKeys (value 1)",
		"f: notes › a_new_note: a manifest key neither judged nor listed in unjudgedKeys (value x)"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("walk reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, k := range []string{"fixture", "generator.args", "generator.environment", "notes"} {
		if !used[k] {
			t.Errorf("%s not matched", k)
		}
	}
}
