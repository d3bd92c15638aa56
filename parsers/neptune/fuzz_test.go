package neptune

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/scalepb"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/sqlitedb"
)

// badSpool is a spool directory that cannot be created, so fuzzed inline
// files are reported instead of written.
const badSpool = "/dev/null/spool"

func fuzzCommon(t testing.TB) *common {
	c, err := newCommon(parsers.StreamInfo{Key: "fuzz"}, parsers.Options{Params: map[string]string{ParamSpoolDir: badSpool}})
	if err != nil {
		t.Fatal(err)
	}
	c.mapper = mapping.New(mapping.State{Multiplier: 1}, mapping.Options{Multiplier: 1, TrackSeries: true})
	c.runInfo = &event.RunInfo{Name: "fuzz"}
	return c
}

// checkEvents verifies what every mapped operation must satisfy.
func checkEvents(t *testing.T, evs []event.Event, pos event.Position) {
	for _, e := range evs {
		if e.Pos != pos {
			t.Fatalf("event %+v has position %v, want %v", e, e.Pos, pos)
		}
		if e.Kind == event.KindConfig {
			if _, err := json.Marshal(e.Config); err != nil {
				t.Fatalf("config %#v does not encode: %v", e.Config, err)
			}
		}
		if e.Kind == event.KindMetrics && len(e.Points) == 0 {
			t.Fatalf("metrics event without points")
		}
		if e.Step < 0 {
			t.Fatalf("negative step %d", e.Step)
		}
	}
}

// FuzzN1Line decodes one neptune-client queue line and maps it. The
// decoder must not panic, must agree with encoding/json on the envelope
// of valid JSON, and what it maps must be well formed.
func FuzzN1Line(f *testing.F) {
	for _, name := range []string{"n1-a-offline-basic", "n1-async-colab-2021"} {
		fx := copyFixture(f, name)
		logs, _ := filepath.Glob(filepath.Join(fx.root, ".neptune/*/*/data-*.log"))
		more, _ := filepath.Glob(filepath.Join(fx.root, ".neptune/*/*/*/data-*.log"))
		for _, p := range append(logs, more...) {
			fh, err := os.Open(p)
			if err != nil {
				f.Fatal(err)
			}
			sc := bufio.NewScanner(fh)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				f.Add(append([]byte(nil), sc.Bytes()...))
			}
			fh.Close()
		}
	}
	for _, s := range []string{
		`{"obj": {"type": "AssignFloat", "path": ["a"], "value": NaN}, "version": 1}`,
		`{"obj": {"type": "LogFloats", "path": ["a"], "values": [{"value": -Infinity, "step": 1e-7, "ts": 1}]}, "version": 2}`,
		`{"obj": {"type": "AssignString", "path": ["\ud83d\ude80", "\u00e9"], "value": "\ud800"}, "version": 3}`,
		`{"version": 4, "obj": {"path": ["x"], "type": "DeleteAttribute"}, "extra": [1, {"a": [null]}]}`,
		`{"obj": {"type": "UploadFileSet", "path": ["s"], "file_globs": ["/x/*"], "reset": "True"}, "version": 5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var d n1Decoder
		rec, err := d.decode(line)
		if err != nil {
			if !errors.Is(err, errJSON) {
				t.Fatalf("error %v does not wrap errJSON", err)
			}
			return
		}
		// Differential check of the envelope against encoding/json (maps,
		// whose keys match exactly, as the queue's do).
		if utf8.Valid(line) && json.Valid(line) {
			var env map[string]json.RawMessage
			var obj map[string]json.RawMessage
			var typ string
			var path []string
			var version int64
			if json.Unmarshal(line, &env) == nil && json.Unmarshal(env["obj"], &obj) == nil &&
				json.Unmarshal(obj["type"], &typ) == nil && json.Unmarshal(obj["path"], &path) == nil && rec.op.hasPath {
				if typ != string(rec.op.typ) || strings.Join(path, "/") != string(rec.op.path) {
					t.Fatalf("decoded type %q path %q; encoding/json: %q %q", rec.op.typ, rec.op.path, typ, path)
				}
			}
			if env != nil && json.Unmarshal(env["version"], &version) == nil && rec.hasVersion && version != rec.version {
				t.Fatalf("version %d; encoding/json %d", rec.version, version)
			}
		}
		c := fuzzCommon(t)
		s := &n1Stream{common: c, members: []n1Member{{dir: "/nonexistent"}}, lr: &lineReader{path: "fuzz"},
			glob: func(string) ([]string, error) { return nil, nil }}
		pos := event.Position{Seq: max(1, rec.version)}
		c.mapper.SetOutput(nil)
		s.apply(rec, pos)
		checkEvents(t, c.mapper.Events(), pos)
	})
}

// FuzzScaleOperation decodes one run_operations blob as a Run or an
// UpdateRunSnapshot and maps snapshots. Decoding must not panic, a decoded
// message must re-encode to itself, and what it maps must be well formed.
func FuzzScaleOperation(f *testing.F) {
	for _, name := range []string{"scale-a-training", "scale-b-fractional-steps", "scale-c-fork-child", "scale-d-series-files-preview", "scale-h-killed-offline-wal"} {
		fx := copyFixture(f, name)
		dbs, _ := filepath.Glob(filepath.Join(fx.root, ".neptune/*/run_operations.sqlite3"))
		for _, p := range dbs {
			r, err := sqlitedb.Open(p)
			if err != nil {
				f.Fatal(err)
			}
			_, err = r.Scan(context.Background(), 0, 1<<20, func(row sqlitedb.Row) error {
				f.Add(byte(row.Type), append([]byte(nil), row.Op...))
				return nil
			})
			r.Close()
			if err != nil {
				f.Fatal(err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, typ byte, b []byte) {
		if typ%2 == 1 {
			run, err := scalepb.DecodeRun(b)
			if err != nil {
				if !errors.Is(err, scalepb.ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				return
			}
			enc := scalepb.AppendRun(nil, &run)
			run2, err := scalepb.DecodeRun(enc)
			if err != nil || !bytes.Equal(scalepb.AppendRun(nil, &run2), enc) {
				t.Fatalf("Run does not round-trip: %+v vs %+v (%v)", run, run2, err)
			}
			return
		}
		var snap scalepb.Snapshot
		if err := scalepb.DecodeSnapshot(b, &snap); err != nil {
			if !errors.Is(err, scalepb.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		enc := scalepb.AppendSnapshot(nil, &snap)
		var snap2 scalepb.Snapshot
		if err := scalepb.DecodeSnapshot(enc, &snap2); err != nil || !bytes.Equal(scalepb.AppendSnapshot(nil, &snap2), enc) {
			t.Fatalf("snapshot does not round-trip (%v)", err)
		}
		c := fuzzCommon(t)
		s := &scaleStream{common: c, maxCommitted: map[string]int64{},
			members: []*scaleMember{{db: &scaleDB{path: "/nonexistent/run_operations.sqlite3"}, uploads: map[string]sqlitedb.Upload{}}}}
		pos := event.Position{Seq: 1}
		c.mapper.SetOutput(nil)
		c.mapper.Begin(pos, 1)
		s.applySnapshot(&snap, 1)
		c.mapper.End()
		checkEvents(t, c.mapper.Events(), pos)
	})
}
