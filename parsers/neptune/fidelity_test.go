package neptune

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/scalepb"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// n1Queue writes an offline neptune-client run whose data-1.log holds the
// given operations (obj JSON), versions 1..n, and returns the root and
// the segment path.
func n1Queue(t *testing.T, ops ...string) (string, string) {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, ".neptune", "offline", "run__0d0d0d0d-1111-4222-8333-444444444444__7__delete00")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "data-1.log")
	appendFile(t, seg, n1Lines(1, ops...))
	return root, seg
}

// n1Lines renders operations as queue lines from version first on, the
// way the client writes them.
func n1Lines(first int64, ops ...string) []byte {
	var b strings.Builder
	for i, op := range ops {
		v := strconv.FormatInt(first+int64(i), 10)
		b.WriteString(`{"obj": ` + op + `, "version": ` + v + `, "at": 1735689600.` + v + "}\n")
	}
	return []byte(b.String())
}

// readStream opens a stream at (resume, state) and reads it to io.EOF in
// chunks of at most ops operations, returning the events, each chunk's
// end and state, and the warnings.
func readStream(t *testing.T, f *Format, info parsers.StreamInfo, resume event.Position, state []byte, opts parsers.Options, ops int) ([]event.Event, []boundary, []Warning) {
	t.Helper()
	s, err := f.Open(info, resume, state, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ops > 0 {
		setChunkLimit(t, s, ops)
	}
	var evs []event.Event
	var bounds []boundary
	for {
		ch, err := s.Next(context.Background(), nil)
		evs = append(evs, ch.Events...)
		if ch.State != nil {
			bounds = append(bounds, boundary{ch.End, ch.State, len(evs)})
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	ws, _ := s.(Warner).Warnings()
	return evs, bounds, ws
}

// deleteOps is a run that assigns, logs and uploads, then deletes some of
// it (neptune-client writes one DeleteAttribute per leaf of `del
// run[...]`), and logs a deleted series again.
var deleteOps = []string{
	`{"type": "AssignString", "path": ["to_delete"], "value": "temporary"}`,                              // 1
	`{"type": "AddStrings", "path": ["cfg", "set"], "values": ["x"]}`,                                    // 2
	`{"type": "LogFloats", "path": ["m"], "values": [{"value": 1.0, "step": null, "ts": 1735689600.1}]}`, // 3
	`{"type": "LogFloats", "path": ["m"], "values": [{"value": 2.0, "step": null, "ts": 1735689600.2}]}`, // 4
	`{"type": "UploadFileContent", "path": ["notes"], "ext": "txt", "file_content": "aGVsbG8="}`,         // 5
	`{"type": "AssignInt", "path": ["kept"], "value": 7}`,                                                // 6
	`{"type": "AssignFloat", "path": ["again"], "value": 1.5}`,                                           // 7
	`{"type": "DeleteAttribute", "path": ["to_delete"]}`,                                                 // 8
	`{"type": "DeleteAttribute", "path": ["cfg", "set"]}`,                                                // 9
	`{"type": "DeleteAttribute", "path": ["m"]}`,                                                         // 10
	`{"type": "DeleteAttribute", "path": ["notes"]}`,                                                     // 11
	`{"type": "DeleteAttribute", "path": ["again"]}`,                                                     // 12
	`{"type": "AssignFloat", "path": ["again"], "value": 2.5}`,                                           // 13
	`{"type": "LogFloats", "path": ["m"], "values": [{"value": 3.0, "step": null, "ts": 1735689600.3}]}`, // 14
	`{"type": "AddStrings", "path": ["cfg", "emptied"], "values": ["y"]}`,                                // 15
	`{"type": "RemoveStrings", "path": ["cfg", "emptied"], "values": ["y"]}`,                             // 16
	`{"type": "ClearStringSet", "path": ["cfg", "cleared"]}`,                                             // 17
}

// checkFinalState checks the events of deleteOps against the run's final
// state: deleted attributes absent (not null), a re-assigned one with its
// new value, the series logged again starting at step 0, the emptied sets
// [] (not null).
func checkFinalState(t *testing.T, evs []event.Event) {
	t.Helper()
	s := summarize(t, evs)
	for _, k := range []string{"to_delete", "cfg/set", "notes"} {
		if v, ok := s.config[k]; ok {
			t.Errorf("deleted %s reached the config as %#v", k, v)
		}
	}
	if len(s.files) != 0 {
		t.Errorf("deleted file uploaded: %v", s.files)
	}
	want := map[string]any{"kept": int64(7), "again": 2.5, "cfg/emptied": []string{}, "cfg/cleared": []string{}}
	if !subset(s.config, want) {
		t.Errorf("config %#v, want %#v in it", s.config, want)
	}
	if m := s.metrics["m"]; len(m) != 1 || m[0].value != 3 || m[0].step != 0 {
		t.Errorf("m = %+v, want only the point logged after the deletion, at step 0", m)
	}
	for _, e := range evs {
		if e.Kind != event.KindConfig {
			continue
		}
		for k, v := range e.Config {
			if v == nil {
				t.Errorf("config event at %v sets %s to null", e.Pos, k)
			}
		}
		b, err := json.Marshal(e.Config)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "null") {
			t.Errorf("config event %s has a null", b)
		}
	}
}

// TestN1DeleteKnownAtOpen: an import sees the whole queue before sending
// anything, so a deleted attribute never reaches the config, deleted
// points and files are never sent, and nothing is reported as skipped:
// the result is the Neptune run's final state.
func TestN1DeleteKnownAtOpen(t *testing.T) {
	root, _ := n1Queue(t, deleteOps...)
	f := New()
	info := discoverOne(t, f, root)
	opts := parsers.Options{Params: map[string]string{ParamSpoolDir: t.TempDir()}}.WithDefaults()
	evs, bounds, ws := readStream(t, f, info, event.Position{}, nil, opts, 0)
	checkFinalState(t, evs)
	if len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}

	// Killed part-way and resumed, with the state and without it (rebuilt
	// by replaying): the same final state, still nothing null.
	_, bounds, _ = readStream(t, f, info, event.Position{}, nil, opts, 3)
	if len(bounds) < 4 {
		t.Fatalf("only %d chunks", len(bounds))
	}
	for _, b := range bounds[:len(bounds)-1] {
		for _, state := range [][]byte{b.state, nil} {
			head, _, _ := readStream(t, f, info, event.Position{}, nil, opts, 0)
			rest, _, ws := readStream(t, f, info, b.end, state, opts, 0)
			rest = resumedRest(t, rest, head, state != nil)
			all := append(append([]event.Event(nil), head[:b.n]...), rest...)
			checkFinalState(t, all)
			if !reflect.DeepEqual(all, head) {
				t.Errorf("resume at %v (state %v): %s", b.end, state != nil, firstDiff(all, head))
			}
			if len(ws) != 0 {
				t.Errorf("resume at %v: warnings %v", b.end, ws)
			}
		}
	}
}

// TestN1DeleteWhileFollowing: deletions written after values were sent (a
// live follow) can only take back what mlop allows: the config keys are
// set to null, the tags removed, and each deletion of something sent is
// reported with reason "deleted" — also when the agent restarted in
// between.
func TestN1DeleteWhileFollowing(t *testing.T) {
	for _, restart := range []bool{false, true} {
		root, seg := n1Queue(t, deleteOps[:7]...)
		appendFile(t, seg, n1Lines(8, `{"type": "AddStrings", "path": ["sys", "tags"], "values": ["t"]}`))
		f := New()
		info := discoverOne(t, f, root)
		opts := parsers.Options{Params: map[string]string{ParamSpoolDir: t.TempDir()}}.WithDefaults()
		s, err := f.Open(info, event.Position{}, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		got := follow(t, s)
		end, state := summarize(t, got).lastPos, []byte(nil)
		if restart {
			ch, _ := s.Next(context.Background(), nil)
			end, state = ch.End, ch.State
			s.Close()
		}
		appendFile(t, seg, n1Lines(9, deleteOps[7:12]...))
		appendFile(t, seg, n1Lines(14, `{"type": "DeleteAttribute", "path": ["sys", "tags"]}`, `{"type": "DeleteAttribute", "path": ["never", "assigned"]}`))
		if restart {
			if s, err = f.Open(info, end, state, opts); err != nil {
				t.Fatal(err)
			}
		}
		more := follow(t, s)
		ws, _ := s.(Warner).Warnings()
		s.Close()

		sum := summarize(t, append(got, more...))
		want := map[string]any{"to_delete": nil, "cfg/set": nil, "again": nil, "kept": int64(7)}
		if !subset(sum.config, want) {
			t.Errorf("restart %v: config %#v, want %#v in it", restart, sum.config, want)
		}
		if _, ok := sum.config["never/assigned"]; ok {
			t.Errorf("restart %v: an attribute never sent was nulled", restart)
		}
		if len(sum.tags) != 0 {
			t.Errorf("restart %v: tags %v after deleting sys/tags", restart, sum.tags)
		}
		var deleted []string
		for _, w := range ws {
			if w.Reason != ReasonDeleted {
				t.Errorf("restart %v: warning %v", restart, w)
				continue
			}
			deleted = append(deleted, strings.SplitN(w.Detail, ":", 2)[0])
		}
		if want := []string{"to_delete", "cfg/set", "m", "notes", "again"}; !reflect.DeepEqual(deleted, want) {
			t.Errorf("restart %v: deletions reported %v, want %v", restart, deleted, want)
		}
	}
}

// TestN1OutOfOrderVersion: a record whose version is not above the
// previous one (a repeated or reordered line) is reported, not skipped in
// silence; a resumed read skips the delivered ones quietly.
func TestN1OutOfOrderVersion(t *testing.T) {
	root, seg := n1Queue(t,
		`{"type": "AssignInt", "path": ["a"], "value": 1}`,
		`{"type": "AssignInt", "path": ["b"], "value": 2}`)
	appendFile(t, seg, n1Lines(2, `{"type": "AssignInt", "path": ["c"], "value": 3}`))
	appendFile(t, seg, n1Lines(3, `{"type": "AssignInt", "path": ["d"], "value": 4}`))
	f := New()
	info := discoverOne(t, f, root)
	opts := parsers.Options{}.WithDefaults()
	evs, bounds, ws := readStream(t, f, info, event.Position{}, nil, opts, 0)
	if s := summarize(t, evs); !subset(s.config, map[string]any{"a": int64(1), "b": int64(2), "d": int64(4)}) || s.config["c"] != nil {
		t.Errorf("config %v", s.config)
	}
	if len(ws) != 1 || ws[0].Reason != ReasonCorrupt || ws[0].Pos.Seq != 2 || !strings.Contains(ws[0].Detail, "out of order") {
		t.Errorf("warnings %v, want the repeated version 2 reported", ws)
	}
	b := bounds[len(bounds)-1]
	if _, _, ws := readStream(t, f, info, b.end, b.state, opts, 0); len(ws) != 0 {
		t.Errorf("resumed at the end: warnings %v", ws)
	}
}

// TestN1EmptySet: a string set emptied by RemoveStrings, or cleared, is
// [] in the config, not null.
func TestN1EmptySet(t *testing.T) {
	root, _ := n1Queue(t,
		`{"type": "AddStrings", "path": ["cfg", "emptied"], "values": ["y"]}`,
		`{"type": "RemoveStrings", "path": ["cfg", "emptied"], "values": ["y"]}`,
		`{"type": "ClearStringSet", "path": ["cfg", "cleared"]}`,
		`{"type": "AddStrings", "path": ["sys", "group_tags"], "values": ["g"]}`,
		`{"type": "RemoveStrings", "path": ["sys", "group_tags"], "values": ["g"]}`)
	f := New()
	evs, _, ws := readStream(t, f, discoverOne(t, f, root), event.Position{}, nil, parsers.Options{}.WithDefaults(), 0)
	checkEmptySets(t, evs, "cfg/emptied", "cfg/cleared", "neptune/group_tags")
	if len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}
}

// checkEmptySets checks that each key's last config value is an empty
// list and encodes as [].
func checkEmptySets(t *testing.T, evs []event.Event, keys ...string) {
	t.Helper()
	last := map[string]any{}
	for _, e := range evs {
		if e.Kind == event.KindConfig {
			for k, v := range e.Config {
				last[k] = v
			}
		}
	}
	for _, k := range keys {
		v, ok := last[k]
		b, _ := json.Marshal(v)
		if !ok || string(b) != "[]" {
			t.Errorf("config %s = %s (present %v), want []", k, b, ok)
		}
	}
}

// TestScaleEmptySet: neptune-scale log_configs({"x": set()}) stores a
// string_set value without members; it is [] in the config.
func TestScaleEmptySet(t *testing.T) {
	root := t.TempDir()
	db, err := neptunetest.CreateScaleDB(filepath.Join(root, ".neptune", "p_empty_1", scaleDBName), neptunetest.ScaleOptions{RunID: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1735689600, 0).UTC()
	if err := db.CreateRun("empty", at, nil); err != nil {
		t.Fatal(err)
	}
	snap := scalepb.Snapshot{HasTime: true, Time: scalepb.Timestamp{Seconds: at.Unix()}, Assign: []scalepb.Entry{
		{Key: []byte("cfg/none"), Value: scalepb.Value{Kind: scalepb.KindStringSet}},
		{Key: []byte("cfg/some"), Value: scalepb.Value{Kind: scalepb.KindStringSet, Strings: [][]byte{[]byte("b"), []byte("a")}}},
	}}
	if err := db.Raw(opUpdateSnapshot, scalepb.AppendSnapshot(nil, &snap), at); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f := New()
	evs, _, ws := readStream(t, f, discoverOne(t, f, root), event.Position{}, nil, parsers.Options{}.WithDefaults(), 0)
	checkEmptySets(t, evs, "cfg/none")
	if s := summarize(t, evs); !reflect.DeepEqual(s.config["cfg/some"], []string{"a", "b"}) {
		t.Errorf("cfg/some = %#v", s.config["cfg/some"])
	}
	if len(ws) != 0 {
		t.Errorf("warnings %v", ws)
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"sample-0":               "sample-0",
		"a b/c":                  "a_b_c",
		"../../etc/passwd":       "etc_passwd",
		"zażółć":                 "za",
		"...":                    "",
		"__":                     "",
		"":                       "",
		"x.tar":                  "x.tar",
		strings.Repeat("n", 150): strings.Repeat("n", 100),
	} {
		if got := sanitizeName(in); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestForkInheritsAcrossPaths: a fork whose parent was found under another
// path (the agent links them: StreamInfo.Parent) inherits the parent's
// final configs all the same; without the link it has only its own.
func TestForkInheritsAcrossPaths(t *testing.T) {
	parent, child := copyFixture(t, "scale-a-training"), copyFixture(t, "scale-c-fork-child")
	f := New()
	pinfo, cinfo := discoverOne(t, f, parent.root), discoverOne(t, f, child.root)
	if cinfo.Parent != "" || cinfo.ParentRunID != "scale-a-train-resnet18" {
		t.Fatalf("child info %+v", cinfo)
	}
	for _, linked := range []bool{true, false} {
		info := cinfo
		if linked {
			info.Parent = pinfo.Key
		}
		evs, _, ws := readStream(t, f, info, event.Position{}, nil, parsers.Options{}.WithDefaults(), 0)
		if len(ws) != 0 {
			t.Errorf("warnings %v", ws)
		}
		cfg := summarize(t, evs).run.Config
		if got := cfg["data/dataset"]; (got == "cifar10") != linked {
			t.Errorf("linked %v: inherited data/dataset = %v", linked, got)
		}
		if got := cfg["parameters/optimizer/lr"]; linked && got != 0.001 {
			t.Errorf("inherited parameters/optimizer/lr = %v (the fork's own 0.0005 follows in its config event)", got)
		}
	}
}
