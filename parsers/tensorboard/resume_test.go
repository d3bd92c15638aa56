package tensorboard

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/tensorboard/tbtest"
)

// mixedLane writes a run of two files with every kind of value.
func mixedLane(t *testing.T, dir string) {
	t.Helper()
	text := func(s string) []byte {
		return tbtest.Tensor{DType: tbtest.DTString, Strings: [][]byte{[]byte(s)}}.Marshal()
	}
	img := tbtest.Image{Height: 1, Width: 1, Encoded: []byte("\x89PNG\r\n\x1a\nfake")}
	hp := tbtest.Meta("hparams", tbtest.HParamsStart(map[string]any{"lr": 0.1}))
	var recs [][]byte
	recs = append(recs, tbtest.FileVersion(wall0), tbtest.Summary(wall0, 0, tbtest.MetaOnly("_hparams_/session_start_info", hp)))
	for s := int64(0); s < 20; s++ {
		w := wall0 + float64(s)
		recs = append(recs, tbtest.Scalar(w, s, "a", float32(s)), tbtest.Scalar(w, s, "b", float32(-s)))
		if s%3 == 0 {
			recs = append(recs, tbtest.Summary(w, s, tbtest.Value("note", tbtest.Meta("text", nil), text(fmt.Sprint("n", s)))))
		}
		if s%4 == 0 {
			recs = append(recs, tbtest.Summary(w, s, tbtest.ImageValue("img", img), tbtest.Simple("c", 1)))
		}
		if s%5 == 0 {
			recs = append(recs, tbtest.Summary(w, s, tbtest.HistoValue("h", tbtest.Histo{Min: 0, Max: 1, Num: 2, Limits: []float64{0.5, 1}, Counts: []float64{1, 1}})))
		}
	}
	writeEvents(t, dir, "run/events.out.tfevents.100.h.1.0", recs...)
	var second [][]byte
	second = append(second, tbtest.FileVersion(wall0+100))
	for s := int64(20); s < 30; s++ {
		second = append(second, tbtest.Scalar(wall0+float64(s), s, "a", float32(s)), tbtest.Summary(wall0+float64(s), s, tbtest.Value("note", nil, text("later"))))
	}
	writeEvents(t, dir, "run/events.out.tfevents.200.h.2.0", second...)
}

// flat is an event made comparable: metrics as single points (a merge of
// several records into one event depends on where a chunk ends).
type flat struct {
	kind            event.Kind
	pos             event.Position
	step, time      int64
	name, typ, text string
	path, config    string
	point           string
}

func flatten(evs []event.Event) []flat {
	var out []flat
	for _, ev := range evs {
		switch ev.Kind {
		case event.KindRun:
			continue
		case event.KindMetrics:
			for _, p := range ev.Points {
				out = append(out, flat{kind: ev.Kind, step: ev.Step, time: ev.Time, point: fmt.Sprintf("%s=%v", p.Name, p.Value)})
			}
		default:
			out = append(out, flat{kind: ev.Kind, pos: ev.Pos, step: ev.Step, time: ev.Time, name: ev.Name, typ: ev.Type,
				text: ev.Text, path: ev.Path, config: fmt.Sprint(ev.Config)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].kind != out[j].kind {
			return out[i].kind < out[j].kind
		}
		if out[i].kind == event.KindMetrics {
			return out[i].step < out[j].step || out[i].step == out[j].step && out[i].point < out[j].point
		}
		return false
	})
	return out
}

// TestResumeAfterEveryChunk stops after each chunk and opens the lane again
// at the chunk's end with its state: what both reads give together is what
// one read gives — every value exactly once, non-metric events at the same
// positions (the agent's marks against re-sending rely on it).
func TestResumeAfterEveryChunk(t *testing.T) {
	dir := t.TempDir()
	mixedLane(t, dir)
	for _, limit := range []struct {
		events int
		bytes  int64
	}{{1, 0}, {3, 0}, {0, 150}} {
		t.Run(fmt.Sprintf("events=%d,bytes=%d", limit.events, limit.bytes), func(t *testing.T) {
			f := New()
			f.chunkEvents, f.chunkBytes = limit.events, limit.bytes
			infos, _ := f.Discover(dir)
			opts := testOpts(t, nil)
			whole := readLane(t, f, infos[0], event.Position{}, nil, opts)
			want := flatten(whole.events)
			// The chunk boundaries of one read.
			st, err := f.Open(infos[0], event.Position{}, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			type cut struct {
				end    event.Position
				state  []byte
				before []event.Event
			}
			var cuts []cut
			var sofar []event.Event
			for {
				c, err := st.Next(contextBG, nil)
				sofar = append(sofar, copyEvents(c.Events)...)
				if c.State != nil {
					cuts = append(cuts, cut{c.End, c.State, append([]event.Event(nil), sofar...)})
				}
				if err != nil {
					break
				}
			}
			st.Close()
			if len(cuts) < 5 {
				t.Fatalf("only %d chunks", len(cuts))
			}
			for i, c := range cuts {
				rest := readLane(t, f, infos[0], c.end, c.state, opts)
				if len(rest.events) == 0 || rest.events[0].Kind != event.KindRun || rest.events[0].Info.Name != "run" {
					t.Fatalf("cut %d: a resumed read does not start with the run event", i)
				}
				for _, ev := range rest.events[1:] {
					if ev.Pos.Less(c.end) || ev.Pos == c.end && ev.Kind != event.KindConfig {
						t.Fatalf("cut %d at %+v: event at %+v", i, c.end, ev.Pos)
					}
				}
				got := flatten(append(c.before, rest.events...))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("cut %d at %+v: %d values, want %d", i, c.end, len(got), len(want))
				}
			}
		})
	}
}

func corruptCopy(t *testing.T, recs [][]byte, bad int, how string) []byte {
	t.Helper()
	all := tbtest.Records(recs...)
	off := 0
	for i := 0; i < bad; i++ {
		off += 16 + len(recs[i])
	}
	switch how {
	case "data":
		all[off+12+2] ^= 1
	case "length":
		binary.LittleEndian.PutUint64(all[off:], 12345)
	}
	return all
}

func TestChecksumFailures(t *testing.T) {
	recs := [][]byte{tbtest.FileVersion(wall0)}
	for s := int64(0); s < 6; s++ {
		recs = append(recs, tbtest.Scalar(wall0, s, "x", float32(s)))
	}
	for _, how := range []string{"data", "length"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "r", "events.out.tfevents.1.h")
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, corruptCopy(t, recs, 3, how), 0o644)
			badOff := int64(0)
			for _, r := range recs[:3] {
				badOff += int64(16 + len(r))
			}

			// Import: skipped at once, reported with file:offset, the good
			// records after it read.
			lr := only(t, readLogdir(t, New(), dir, testOpts(t, nil)))
			steps := []int64{}
			for _, pt := range metrics(lr.events)["x"] {
				steps = append(steps, pt.step)
			}
			if fmt.Sprint(steps) != "[0 1 3 4 5]" {
				t.Errorf("steps %v, want all but 2", steps)
			}
			if len(lr.warnings) != 1 || lr.warnings[0].Reason != ReasonCorrupt || lr.warnings[0].File != p || lr.warnings[0].Pos.Seq != badOff ||
				!strings.Contains(lr.warnings[0].String(), fmt.Sprintf("%s:%d: corrupt", p, badOff)) {
				t.Errorf("warnings %v, want corrupt at %s:%d", lr.warnings, p, badOff)
			}

			// Following: read again until corrupt_wait has passed (a writer
			// may still be completing it), then skipped.
			clk := newClock()
			f := New()
			infos, _ := f.Discover(dir)
			opts := testOpts(t, map[string]string{ParamCorruptWait: "10s"})
			opts.Follow, opts.Now = true, clk.Now
			st, _ := f.Open(infos[0], event.Position{}, nil, opts)
			defer st.Close()
			evs, ws, end := drain(t, st)
			if n := len(metrics(evs)["x"]); n != 2 || len(ws) != 0 || end.Seq != badOff {
				t.Fatalf("before the wait: %d points, warnings %v, end %+v", n, ws, end)
			}
			clk.Add(9 * time.Second)
			if evs, ws, end = drain(t, st); len(evs) != 0 || len(ws) != 0 || end.Seq != badOff {
				t.Fatalf("within the wait: %d events, warnings %v, end %+v", len(evs), ws, end)
			}
			clk.Add(2 * time.Second)
			evs, ws, _ = drain(t, st)
			if n := len(metrics(evs)["x"]); n != 3 || len(ws) != 1 || ws[0].Reason != ReasonCorrupt {
				t.Fatalf("after the wait: %d points, warnings %v", n, ws)
			}

			// A writer that completes the record during the wait: no skip.
			os.WriteFile(p, corruptCopy(t, recs, 3, how), 0o644)
			st2, _ := f.Open(infos[0], event.Position{}, nil, opts)
			defer st2.Close()
			drain(t, st2)
			os.WriteFile(p, tbtest.Records(recs...), 0o644)
			evs, ws, _ = drain(t, st2)
			if n := len(metrics(evs)["x"]); n != 4 || len(ws) != 0 {
				t.Fatalf("repaired: %d points, warnings %v", n, ws)
			}
		})
	}
}

func TestIncompleteTail(t *testing.T) {
	recs := [][]byte{tbtest.FileVersion(wall0), tbtest.Scalar(wall0, 0, "x", 0), tbtest.Scalar(wall0, 1, "x", 1)}
	all := tbtest.Records(recs...)
	dir := t.TempDir()
	p := filepath.Join(dir, "r", "events.out.tfevents.1.h")
	os.MkdirAll(filepath.Dir(p), 0o755)
	cut := len(all) - 7 // mid-payload of the last record
	os.WriteFile(p, all[:cut], 0o644)

	// Import: reported as a truncated tail (not an error), the position
	// stays before it.
	lr := only(t, readLogdir(t, New(), dir, testOpts(t, nil)))
	if n := len(metrics(lr.events)["x"]); n != 1 || len(lr.warnings) != 1 || lr.warnings[0].Reason != ReasonTruncated {
		t.Fatalf("import: %d points, warnings %v", n, lr.warnings)
	}
	if lr.end.Seq != int64(16+len(recs[0])+16+len(recs[1])) {
		t.Fatalf("import ended at %+v", lr.end)
	}

	// Following: held without a warning, then completed.
	clk := newClock()
	f := New()
	infos, _ := f.Discover(dir)
	opts := testOpts(t, nil)
	opts.Follow, opts.Now = true, clk.Now
	st, _ := f.Open(infos[0], event.Position{}, nil, opts)
	defer st.Close()
	if evs, ws, _ := drain(t, st); len(metrics(evs)["x"]) != 1 || len(ws) != 0 {
		t.Fatalf("follow: %v %v", evs, ws)
	}
	clk.Add(time.Hour) // the newest file may stay incomplete for ever
	if evs, ws, _ := drain(t, st); len(evs) != 0 || len(ws) != 0 {
		t.Fatalf("follow, later: %v %v", evs, ws)
	}
	appendBytes(t, p, all[cut:])
	if evs, _, _ := drain(t, st); len(metrics(evs)["x"]) != 1 {
		t.Fatalf("completed record: %v", evs)
	}

	// A writer killed mid-record, then a new file: the tail is given up
	// once it has not changed for corrupt_wait.
	appendBytes(t, p, tbtest.Frame(tbtest.Scalar(wall0, 2, "x", 2))[:10])
	drain(t, st)
	writeEvents(t, dir, "r/events.out.tfevents.2.h", tbtest.FileVersion(wall0), tbtest.Scalar(wall0, 3, "x", 3))
	if evs, ws, _ := drain(t, st); len(evs) != 0 || len(ws) != 0 {
		t.Fatalf("new file, tail not given up yet: %v %v", evs, ws)
	}
	clk.Add(31 * time.Second)
	evs, ws, end := drain(t, st)
	if pts := metrics(evs)["x"]; len(pts) != 1 || pts[0].step != 3 || len(ws) != 1 || ws[0].Reason != ReasonTruncated || end.Offset != 1 {
		t.Fatalf("tail given up: %v %v %+v", pts, ws, end)
	}
}

func TestFilesOfARun(t *testing.T) {
	dir := t.TempDir()
	writeEvents(t, dir, "r/events.out.tfevents.100.h", tbtest.FileVersion(wall0), tbtest.Scalar(wall0, 1, "x", 1))
	// What is not an events file for TensorBoard.
	writeEvents(t, dir, "r/events.out.tfevents.100.h.profile-empty", tbtest.FileVersion(wall0), tbtest.Scalar(wall0, 9, "x", 9))
	writeEvents(t, dir, "r/events.out.tfevents.100.h.sagemaker-uploaded", tbtest.Scalar(wall0, 9, "x", 9))
	writeEvents(t, dir, "r/.events.out.tfevents.100.h.Xyz12", tbtest.Scalar(wall0, 9, "x", 9))
	writeEvents(t, dir, "profile-only/events.out.tfevents.1.h.profile-empty", tbtest.FileVersion(wall0))
	f := New()
	opts := testOpts(t, nil)
	opts.Follow = true
	infos, err := f.Discover(dir)
	if err != nil || len(infos) != 1 {
		t.Fatalf("lanes %v %v", infos, err)
	}
	st, _ := f.Open(infos[0], event.Position{}, nil, opts)
	defer st.Close()
	evs, _, _ := drain(t, st)
	if pts := metrics(evs)["x"]; len(pts) != 1 {
		t.Fatalf("points %v", pts)
	}
	// A new file (a resumed writer) is picked up, also a .v2 one; an older
	// name appearing late is read too, and reported.
	writeEvents(t, dir, "r/events.out.tfevents.200.h.1.v2", tbtest.FileVersion(wall0), tbtest.Scalar(wall0, 2, "x", 2))
	evs, ws, end := drain(t, st)
	if pts := metrics(evs)["x"]; len(pts) != 1 || pts[0].step != 2 || len(ws) != 0 || end.Offset != 1 {
		t.Fatalf("second file: %v %v %+v", pts, ws, end)
	}
	writeEvents(t, dir, "r/events.out.tfevents.150.h", tbtest.FileVersion(wall0), tbtest.Scalar(wall0, 3, "x", 3))
	evs, ws, end = drain(t, st)
	if pts := metrics(evs)["x"]; len(pts) != 1 || pts[0].step != 3 || reasons(ws)[ReasonOutOfOrder] != 1 || end.Offset != 2 {
		t.Fatalf("late older file: %v %v %+v", pts, ws, end)
	}
	// A listed file that disappears before it is read is reported.
	writeEvents(t, dir, "r/events.out.tfevents.300.h", tbtest.FileVersion(wall0), tbtest.Scalar(wall0, 4, "x", 4))
	writeEvents(t, dir, "r/events.out.tfevents.400.h", tbtest.FileVersion(wall0), tbtest.Scalar(wall0, 5, "x", 5))
	s := st.(*stream)
	s.refreshFiles()
	os.Remove(filepath.Join(dir, "r", "events.out.tfevents.300.h"))
	evs, ws, _ = drain(t, st)
	if pts := metrics(evs)["x"]; len(pts) != 1 || pts[0].step != 5 || reasons(ws)[ReasonMissingFile] != 1 {
		t.Fatalf("missing file: %v %v", pts, ws)
	}
}

func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	fv := tbtest.FileVersion(wall0)
	writeEvents(t, dir, "a/lightning_logs/version_0/events.out.tfevents.1713773043.hostA.1.0", fv, tbtest.Scalar(wall0, 0, "x", 1))
	writeEvents(t, dir, "b/lightning_logs/version_0/events.out.tfevents.1721830887.hostB.2.0", fv, tbtest.Scalar(wall0, 0, "x", 1))
	f := New()
	ids := func(path string) []string {
		infos, err := f.Discover(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, in := range infos {
			out = append(out, in.Key+" "+in.RunID)
		}
		sort.Strings(out)
		return out
	}
	a := ids(filepath.Join(dir, "a", "lightning_logs"))
	b := ids(filepath.Join(dir, "b", "lightning_logs"))
	if len(a) != 1 || len(b) != 1 || a[0] == b[0] {
		t.Fatalf("two version_0 runs: %v %v", a, b)
	}
	if want := "tensorboard:version_0/events.out.tfevents.1713773043.hostA.1.0"; a[0] != want+" "+want {
		t.Errorf("key and id %q, want %q", a[0], want)
	}
	// The run directory itself, one of its files (what a glob matches)
	// and a copy elsewhere: the same stream and run.
	same := [][]string{
		ids(filepath.Join(dir, "a", "lightning_logs", "version_0")),
		ids(filepath.Join(dir, "a", "lightning_logs", "version_0", "events.out.tfevents.1713773043.hostA.1.0")),
	}
	elsewhere := filepath.Join(t.TempDir(), "copy")
	copyDir(t, filepath.Join(dir, "a"), elsewhere)
	same = append(same, ids(filepath.Join(elsewhere, "lightning_logs")))
	for i, s := range same {
		if !reflect.DeepEqual(s, a) {
			t.Errorf("variant %d: %v, want %v", i, s, a)
		}
	}
	// A log directory above: the name is the path below it.
	all := ids(dir)
	if len(all) != 2 || !strings.HasPrefix(all[0], "tensorboard:a/lightning_logs/version_0/") {
		t.Errorf("from the top: %v", all)
	}
	// Sub-directories, by file: named by the run they belong to.
	writeEvents(t, dir, "a/lightning_logs/version_0/loss_train/events.out.tfevents.1713773044.hostA.1.1", fv, tbtest.Scalar(wall0, 0, "loss", 1))
	sub := ids(filepath.Join(dir, "a", "lightning_logs", "version_0", "loss_train", "events.out.tfevents.1713773044.hostA.1.1"))
	infos, _ := f.Discover(filepath.Join(dir, "a", "lightning_logs", "version_0", "loss_train", "events.out.tfevents.1713773044.hostA.1.1"))
	if len(sub) != 1 || !strings.HasPrefix(sub[0], "tensorboard:version_0/loss_train/") || infos[0].Parent != strings.Fields(a[0])[0] || infos[0].RunID != "" {
		t.Errorf("sub-directory by file: %v %+v", sub, infos)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParams(t *testing.T) {
	for _, bad := range []map[string]string{{"fold_scalar": "false"}, {ParamPurge: "maybe"}, {ParamCorruptWait: "-1s"}, {ParamCorruptWait: "soon"}} {
		if err := CheckParams(bad); err == nil {
			t.Errorf("CheckParams(%v) accepted", bad)
		}
	}
	if err := CheckParams(map[string]string{ParamFoldScalars: "false", ParamCorruptWait: "1m", ParamSpoolDir: "/x"}); err != nil {
		t.Errorf("CheckParams: %v", err)
	}
	dir := t.TempDir()
	writeEvents(t, dir, "r/events.out.tfevents.1.h", tbtest.FileVersion(wall0))
	f := New()
	infos, _ := f.Discover(dir)
	if _, err := f.Open(infos[0], event.Position{}, nil, parsers.Options{Params: map[string]string{"bogus": "1"}}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("Open with an unknown parameter: %v", err)
	}
	if _, err := New().Open(infos[0], event.Position{}, nil, parsers.Options{}); err == nil {
		t.Error("Open of a key the format did not discover")
	}
	if !bytes.Contains([]byte(fmt.Sprint(knownParams)), []byte(ParamHParamsYAML)) {
		t.Error("knownParams")
	}
}

// TestFoldedLaneResumes: a folded sub-directory opened again with its
// state (its role decided) attaches to its parent's run again first.
func TestFoldedLaneResumes(t *testing.T) {
	dir := t.TempDir()
	fv := tbtest.FileVersion(wall0)
	writeEvents(t, dir, "r/events.out.tfevents.1.h", fv, tbtest.Scalar(wall0, 1, "loss", 1))
	writeEvents(t, dir, "r/loss_val/events.out.tfevents.2.h", fv, tbtest.Scalar(wall0, 1, "loss", 2), tbtest.Scalar(wall0, 2, "loss", 3))
	f := New()
	infos, _ := f.Discover(dir)
	var sub parsers.StreamInfo
	for _, in := range infos {
		if in.Parent != "" {
			sub = in
		}
	}
	f.chunkEvents = 2
	first := readFirstChunks(t, f, sub, 1)
	if len(first.events) != 2 || first.events[0].Kind != event.KindRun || first.events[0].Info.Name != "" ||
		first.events[0].Info.ExternalID != sub.Parent {
		t.Fatalf("first chunk %+v", first.events)
	}
	f.chunkEvents = 1
	st, _ := f.Open(sub, first.end, first.state, testOpts(t, nil))
	defer st.Close()
	evs, _, _ := drain(t, st)
	if len(evs) != 2 || evs[0].Kind != event.KindRun || evs[0].Info.ExternalID != sub.Parent || evs[0].Info.Name != "" ||
		evs[1].Points[0].Name != "loss/val" || evs[1].Step != 2 {
		t.Fatalf("resumed: %+v", evs)
	}
}

// TestBadRecordInAGrowingFile: a checksum failure in a file the writer
// keeps appending to is skipped after corrupt_wait all the same.
func TestBadRecordInAGrowingFile(t *testing.T) {
	recs := [][]byte{tbtest.FileVersion(wall0), tbtest.Scalar(wall0, 0, "x", 0), tbtest.Scalar(wall0, 1, "x", 1)}
	dir := t.TempDir()
	p := filepath.Join(dir, "r", "events.out.tfevents.1.h")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, corruptCopy(t, recs, 1, "data"), 0o644)
	clk := newClock()
	f := New()
	infos, _ := f.Discover(dir)
	opts := testOpts(t, nil)
	opts.Follow, opts.Now = true, clk.Now
	st, _ := f.Open(infos[0], event.Position{}, nil, opts)
	defer st.Close()
	for s := int64(2); s < 10; s++ {
		appendBytes(t, p, tbtest.Frame(tbtest.Scalar(wall0, s, "x", float32(s))))
		if evs, ws, _ := drain(t, st); len(metrics(evs)["x"]) != 0 || len(ws) != 0 {
			t.Fatalf("held record: %v %v", evs, ws)
		}
		clk.Add(4 * time.Second)
	}
	evs, ws, _ := drain(t, st)
	if n := len(metrics(evs)["x"]); n != 9 || len(ws) != 1 || ws[0].Reason != ReasonCorrupt {
		t.Fatalf("after the wait: %d points, %v", n, ws)
	}
}
