package neptune

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

func TestRegistered(t *testing.T) {
	f, ok := parsers.LookupStream("neptune")
	if !ok {
		t.Fatal("format neptune is not registered")
	}
	if _, ok := f.(*Format); !ok {
		t.Errorf("registered %T", f)
	}
}

// TestDiscoverPaths: whatever path inside a run the glob matched, the run
// is one stream with one key.
func TestDiscoverPaths(t *testing.T) {
	fx := copyFixture(t, "n1-a-offline-basic")
	exec, _ := filepath.Glob(filepath.Join(fx.root, ".neptune/offline/run__*"))
	if len(exec) != 1 {
		t.Fatal(exec)
	}
	dbfx := copyFixture(t, "scale-a-training")
	dbs, _ := filepath.Glob(filepath.Join(dbfx.root, ".neptune/*/run_operations.sqlite3"))
	tests := []struct {
		path string
		root string // the fixture the key must match
	}{
		{fx.root, fx.root},
		{filepath.Join(fx.root, ".neptune"), fx.root},
		{filepath.Join(fx.root, ".neptune", "offline"), fx.root},
		{exec[0], fx.root},
		{filepath.Join(exec[0], "data-1.log"), fx.root},
		{filepath.Join(exec[0], "last_put_version"), fx.root},
		{dbfx.root, dbfx.root},
		{filepath.Dir(dbs[0]), dbfx.root},
		{dbs[0], dbfx.root},
	}
	f := New()
	want := map[string]parsers.StreamInfo{
		fx.root:   discoverOne(t, f, fx.root),
		dbfx.root: discoverOne(t, f, dbfx.root),
	}
	for _, tc := range tests {
		got := discoverOne(t, f, tc.path)
		if got != want[tc.root] {
			t.Errorf("Discover(%s) = %+v, want %+v", tc.path, got, want[tc.root])
		}
	}
	if !strings.HasPrefix(want[fx.root].Key, "neptune-n1:") || !strings.HasPrefix(want[dbfx.root].Key, "neptune-scale:") {
		t.Errorf("keys %v", want)
	}
	// Nothing Neptune here: no streams, no error.
	if got, err := f.Discover(filepath.Join(fx.root, "user_files")); err != nil || len(got) != 0 {
		t.Errorf("Discover(user_files) = %v, %v", got, err)
	}
	if _, err := f.Discover(filepath.Join(fx.root, "nope")); err == nil {
		t.Error("Discover of a missing path: no error")
	}
}

// TestN1Layouts builds the 0.16-1.8 layout (type__uuid/exec-<ts>-...)
// from the colab queue, with two execution directories of one run: they
// form one stream, read oldest first.
func TestN1Layouts(t *testing.T) {
	fx := copyFixture(t, "n1-async-colab-2021")
	src, _ := filepath.Glob(filepath.Join(fx.root, ".neptune/async/*/exec-*/data-1.log"))
	data, err := os.ReadFile(src[0])
	if err != nil {
		t.Fatal(err)
	}
	const uuid = "6dae98b7-fc4a-4d76-891b-be67e2b3cdc4"
	root := t.TempDir()
	runDir := filepath.Join(root, ".neptune", "async", "run__"+uuid)
	first := filepath.Join(runDir, "exec-1619174334-2021-04-23_12.38.54.066327-77")
	second := filepath.Join(runDir, "exec-1619180000-2021-04-23_14.13.20.000000-78")
	for _, d := range []string{first, second} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(first, "data-1.log"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// The resumed process: its own versions from 1.
	var more []byte
	for v := int64(1); v <= 3; v++ {
		more = neptunetest.AppendN1Record(more, v, 1619180000+float64(v), neptunetest.AppendLogFloats(nil, "train/loss", float64(v), 100+v, 1619180000+float64(v)))
	}
	if err := os.WriteFile(filepath.Join(second, "data-1.log"), more, 0o644); err != nil {
		t.Fatal(err)
	}
	f := New()
	info := discoverOne(t, f, root)
	if info.Path != first || info.Key != keyPrefixN1+filepath.Join(root, ".neptune", "async")+"#"+uuid {
		t.Errorf("info = %+v", info)
	}
	if got := discoverOne(t, f, second); got != info {
		t.Errorf("Discover(second) = %+v", got)
	}
	s, err := f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	evs, end, _ := readAll(t, s)
	s.Close()
	sum := summarize(t, evs)
	if end != (event.Position{Offset: 1, Seq: 3}) {
		t.Errorf("end = %v", end)
	}
	loss := sum.metrics["train/loss"]
	if n := len(loss); n < 4 || loss[n-1].step != 103 || loss[n-3].step != 101 || evs[len(evs)-1].Pos.Offset != 1 {
		t.Errorf("train/loss tail %v", loss[len(loss)-3:])
	}
	if sum.run.Name != "colab-example" || sum.run.CreatedAt != 1619174334000 || sum.run.Config["neptune/container_type"] != "run" {
		t.Errorf("run %+v", sum.run)
	}

	// Resume in the second directory after the first was deleted (a
	// synced process removes its own): positions keep growing.
	s, err = f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	setChunkLimit(t, s, 1)
	var ch parsers.Chunk
	for ch.End != (event.Position{Offset: 1, Seq: 1}) {
		if ch, err = s.Next(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := os.RemoveAll(first); err != nil {
		t.Fatal(err)
	}
	s, err = f.Open(parsers.StreamInfo{Key: info.Key, Path: second}, ch.End, ch.State, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rest := follow(t, s)
	if len(rest) > 0 && rest[0].Kind == event.KindRun {
		rest = rest[1:] // the resumed stream names its run again first
	}
	if len(rest) != 2 || rest[0].Pos != (event.Position{Offset: 1, Seq: 2}) || rest[1].Pos != (event.Position{Offset: 1, Seq: 3}) || rest[1].Step != 103 {
		t.Errorf("after deleting the first directory: %+v", rest)
	}
}

// TestN1LegacyOffline: LEGACY offline runs have their queue directly in
// offline/<uuid>/.
func TestN1LegacyOffline(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, ".neptune", "offline", "0f0f0f0f-1111-4222-8333-444444444444")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := neptunetest.AppendN1Record(nil, 1, 1600000000, neptunetest.AppendAssignString(nil, "sys/name", "old"))
	if err := os.WriteFile(filepath.Join(dir, "data-1.log"), rec, 0o644); err != nil {
		t.Fatal(err)
	}
	f := New()
	info := discoverOne(t, f, root)
	s, err := f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sum := summarize(t, follow(t, s))
	if sum.run.ExternalID != "0f0f0f0f-1111-4222-8333-444444444444" || sum.run.Name != "old" || sum.run.Config["neptune/mode"] != "offline" {
		t.Errorf("run %+v", sum.run)
	}
}

// TestN1Operations covers operation types the fixtures do not: unknown
// and server-only operations, a corrupt record, NaN tokens, step-less
// points after a cleared series, a failed run, string sets, inline
// content.
func TestN1Operations(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, ".neptune", "offline", "run__12345678-1111-4222-8333-444444444444__1__abcdefgh")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		`{"obj": {"type": "LogFloats", "path": ["m"], "values": [{"value": 1.0, "step": null, "ts": 1600000000.5}, {"value": NaN, "step": null, "ts": 1600000001}]}, "version": 1}`,
		`{"obj": {"type": "ClearFloatLog", "path": ["m"]}, "version": 2}`,
		`{"obj": {"type": "LogFloats", "path": ["m"], "values": [{"value": 3, "step": null, "ts": 1600000002}]}, "version": 3}`,
		`{"obj": {"type": "CopyAttribute", "path": ["c"], "container_id": "x", "container_type": "run", "source_path": ["a"], "source_attr_name": "Float"}, "version": 4}`,
		`{"obj": {"type": "FancyNewOp", "path": ["z"]}, "version": 5}`,
		`{"obj": {"type": "AssignFloat", "path": ["x"], "value": `,
		`{"obj": {"type": "AssignFloat", "path": ["inf"], "value": -Infinity}, "version": 7}`,
		`{"obj": {"type": "AddStrings", "path": ["cfg", "set"], "values": ["b", "a"]}, "version": 8}`,
		`{"obj": {"type": "RemoveStrings", "path": ["cfg", "set"], "values": ["b"]}, "version": 9}`,
		`{"obj": {"type": "UploadFileContent", "path": ["notes"], "ext": "txt", "file_content": "aGVsbG8="}, "version": 10}`,
		`{"obj": {"type": "AddStrings", "path": ["sys", "tags"], "values": ["x", "y"]}, "version": 11}`,
		`{"obj": {"type": "ClearStringSet", "path": ["sys", "tags"]}, "version": 12}`,
		`{"obj": {"type": "AssignString", "path": ["uni\u00e9"], "value": "\ud83d\ude80 \"q\""}, "version": 13}`,
		`{"obj": {"type": "LogStrings", "path": ["monitoring", "ab12cd34", "stdout"], "values": [{"value": "hello\n", "step": null, "ts": 1600000003}]}, "version": 14}`,
		`{"obj": {"type": "AssignBool", "path": ["sys", "failed"], "value": true}, "version": 15}`,
	}
	data := []byte(strings.Join(lines, "\n") + "\n")
	if err := os.WriteFile(filepath.Join(dir, "data-1.log"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	f := New()
	info := discoverOne(t, f, root)
	opts := parsers.Options{Params: map[string]string{ParamSpoolDir: t.TempDir()}}.WithDefaults()
	var skips int
	opts.OnSkip = func(string) { skips++ }
	s, err := f.Open(info, event.Position{}, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := follow(t, s)
	sum := summarize(t, evs)
	m := sum.metrics["m"]
	if len(m) != 3 || m[0].step != 0 || m[1].step != 1 || m[2].step != 0 || m[2].value != 3 || m[0].time != 1600000000500 {
		t.Errorf("m = %+v (a cleared series restarts at step 0)", m)
	}
	if want := map[string]any{"inf": "-Infinity", "cfg/set": []string{"a"}, "unié": "🚀 \"q\"", "neptune/sys/failed": true}; !subset(sum.config, want) {
		t.Errorf("config = %#v", sum.config)
	}
	if len(sum.tags) != 0 {
		t.Errorf("tags %v after ClearStringSet", sum.tags)
	}
	if !reflect.DeepEqual(sum.statuses, []string{event.StatusFailed}) {
		t.Errorf("statuses %v", sum.statuses)
	}
	if n := sum.files["notes"]; len(n) != 1 || n[0].Type != "TEXT" {
		t.Errorf("notes = %+v", n)
	} else if b, _ := os.ReadFile(n[0].Path); !bytes.Equal(b, []byte("hello")) {
		t.Errorf("notes content %q", b)
	}
	if len(sum.logs) != 1 || sum.logs[0].Text != "hello" || sum.logs[0].Type != "INFO" || sum.logs[0].Step != 1 {
		t.Errorf("logs %+v", sum.logs)
	}
	ws, _ := s.(Warner).Warnings()
	r := warningsByReason(ws)
	want := map[string]int{ReasonClearedSeries: 1, ReasonNeedsServer: 1, ReasonUnknownOp: 1, ReasonCorrupt: 1, ReasonVersionGap: 1}
	if !reflect.DeepEqual(r, want) || skips != len(ws) {
		t.Errorf("warnings %v (%d skips), want %v", ws, skips, want)
	}
	for _, w := range ws {
		if w.Reason == ReasonCorrupt && w.Pos.Seq != 6 {
			t.Errorf("corrupt record reported at %v, want the version after 5", w.Pos)
		}
	}
}

func subset(got, want map[string]any) bool {
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			return false
		}
	}
	return true
}

// TestScaleCorrupt: a file that is not a database, and a database without
// the tables, are streams of their own that fail to open; rows that do not
// decode are reported and skipped.
func TestScaleCorrupt(t *testing.T) {
	root := t.TempDir()
	nep := filepath.Join(root, ".neptune")
	good := filepath.Join(nep, "p_good_1", "run_operations.sqlite3")
	db, err := neptunetest.CreateScaleDB(good, neptunetest.ScaleOptions{RunID: "good"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1735689600, 0)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.CreateRun("good", at, nil))
	must(db.Raw(0, []byte{0xff, 0xff, 0xff}, at))
	must(db.Raw(7, []byte{}, at))
	must(db.Metrics(0, at, false, neptunetest.Metric{Path: "x", Value: 1}))
	must(db.Close())
	garbage := filepath.Join(nep, "p_bad_2", "run_operations.sqlite3")
	must(os.MkdirAll(filepath.Dir(garbage), 0o755))
	must(os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 100), 0o644))

	f := New()
	infos, err := f.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("Discover = %+v", infos)
	}
	var opened int
	for _, info := range infos {
		s, err := f.Open(info, event.Position{}, nil, parsers.Options{}.WithDefaults())
		if info.Path == garbage {
			if err == nil || !strings.Contains(err.Error(), garbage) {
				t.Errorf("Open(garbage) = %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Open(%s): %v", info.Key, err)
		}
		opened++
		sum := summarize(t, follow(t, s))
		ws, _ := s.(Warner).Warnings()
		s.Close()
		if len(sum.metrics["x"]) != 1 {
			t.Errorf("metrics %v", sum.metrics)
		}
		if r := warningsByReason(ws); r[ReasonCorrupt] != 1 || r[ReasonUnknownOp] != 1 || ws[0].Pos.Seq != 2 || ws[0].File != good {
			t.Errorf("warnings %v", ws)
		}
	}
	if opened != 1 {
		t.Errorf("opened %d good streams", opened)
	}
}

func TestStateErrors(t *testing.T) {
	if st, err := decodeState([]byte(`{"v":99}`)); err == nil || st != nil {
		t.Errorf("decodeState(v99) = %v, %v", st, err)
	}
	if st, err := decodeState([]byte(`{`)); err == nil || st != nil {
		t.Errorf("decodeState(garbage) = %v, %v", st, err)
	}
	// A state this version cannot read is rebuilt by replaying.
	fx := copyFixture(t, "scale-c-fork-child")
	f := New()
	info := discoverOne(t, f, fx.root)
	s, err := f.Open(info, event.Position{Seq: 200}, []byte("garbage"), parsers.Options{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := follow(t, s)
	if len(evs) == 0 || evs[0].Pos.Seq != 201 {
		t.Errorf("first event %+v, want the row after 200", evs)
	}
}

func TestPathMap(t *testing.T) {
	pm, err := parsePathMap("/a/b=/x; /a/b/c=/y\n/q=/r")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"/a/b/f":     "/x/f",
		"/a/b/c/f":   "/y/f",
		"/a/bc/f":    "/a/bc/f",
		"/q":         "/r",
		"/elsewhere": "/elsewhere",
	}
	for in, want := range tests {
		if got := pm.apply(in); got != want {
			t.Errorf("apply(%s) = %s, want %s", in, got, want)
		}
	}
	if _, err := parsePathMap("nonsense"); err == nil {
		t.Error("parsePathMap(nonsense): no error")
	}
	if _, err := New().Open(parsers.StreamInfo{Key: keyPrefixN1 + "x#y", Path: "/x/y"}, event.Position{}, nil,
		parsers.Options{Params: map[string]string{ParamPathMap: "bad"}}); err == nil {
		t.Error("Open with a bad path_map: no error")
	}
	fx := copyFixture(t, "scale-d-series-files-preview")
	f := New()
	_, err = f.Open(discoverOne(t, f, fx.root), event.Position{}, nil, parsers.Options{Params: map[string]string{ParamPreviews: "maybe"}})
	if err == nil || !strings.Contains(err.Error(), "maybe") {
		t.Errorf("Open with previews=maybe: %v", err)
	}
}
