package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// collector is a Handler that records everything it is given.
type collector struct {
	mu      sync.Mutex
	lines   map[string]int // line content -> times seen
	order   []string
	opened  []StreamInfo
	closed  map[string]string
	lastEnd map[string]int64
	chunks  []Chunk
	skipped []string // base name ":" reason
	// onChunk, if set, runs after each chunk is recorded, on the tailer's
	// goroutine: what a writer does while the tailer is busy.
	onChunk func(*Chunk)
}

func newCollector() *collector {
	return &collector{lines: map[string]int{}, closed: map[string]string{}, lastEnd: map[string]int64{}}
}

func (c *collector) StreamOpened(_ context.Context, info StreamInfo) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opened = append(c.opened, info)
	return nil
}

func (c *collector) StreamChunk(_ context.Context, ch *Chunk) error {
	if c.onChunk != nil {
		defer c.onChunk(ch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range ch.Records {
		s := string(r.Data)
		c.lines[s]++
		c.order = append(c.order, s)
	}
	if ch.End <= c.lastEnd[ch.Key] {
		return fmt.Errorf("offset of %s went from %d to %d", ch.Key, c.lastEnd[ch.Key], ch.End)
	}
	c.lastEnd[ch.Key] = ch.End
	cp := *ch
	cp.Records = nil
	c.chunks = append(c.chunks, cp)
	return nil
}

func (c *collector) StreamClosed(_ context.Context, key, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed[key] = reason
	return nil
}

func (c *collector) FileSkipped(_ context.Context, path, reason string, _ error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.skipped = append(c.skipped, filepath.Base(path)+":"+reason)
	return nil
}

func (c *collector) count(line string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines[line]
}

// waitLines waits until every line has been seen; it fails the test on
// timeout or when a line is seen twice.
func (c *collector) waitLines(t *testing.T, lines []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		missing := 0
		c.mu.Lock()
		for _, l := range lines {
			switch n := c.lines[l]; {
			case n == 0:
				missing++
			case n > 1:
				c.mu.Unlock()
				t.Fatalf("line %q delivered %d times", l, n)
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d lines never arrived", missing, len(lines))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *collector) assertNoDuplicates(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for l, n := range c.lines {
		if n > 1 {
			t.Errorf("line %q delivered %d times", l, n)
		}
	}
}

func startTailer(t *testing.T, opts Options, known []Known) (*collector, func()) {
	t.Helper()
	opts.Follow = true
	if opts.PollInterval == 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if opts.RewriteGrace == 0 {
		opts.RewriteGrace = 300 * time.Millisecond
	}
	tl, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx, known, c) }()
	// stop reads every file to its end (Finish) and waits for Run to
	// return: whatever the tailer would deliver has been delivered, so a
	// test can check that nothing arrived twice without waiting for it.
	stop := func() {
		tl.Finish()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		cancel()
	}
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			cancel()
			<-done
		}
	})
	return c, stop
}

func appendTo(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func lines(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf(`{"src":%q,"i":%d}`, prefix, i))
	}
	return out
}

func joinLines(ls []string) string { return strings.Join(ls, "\n") + "\n" }

func TestBackfillReadsEveryFile(t *testing.T) {
	dir := t.TempDir()
	appendTo(t, filepath.Join(dir, "a.jsonl"), joinLines(lines("a", 0, 100)))
	appendTo(t, filepath.Join(dir, "b.jsonl"), joinLines(lines("b", 0, 50))+`{"last":"no newline"}`)
	appendTo(t, filepath.Join(dir, "ignored.txt"), "x\n")
	tl, err := New(Options{Source: "s", Include: []string{dir + "/*.jsonl"}, ChunkBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	if err := tl.Run(context.Background(), nil, c); err != nil {
		t.Fatal(err)
	}
	c.waitLines(t, append(append(lines("a", 0, 100), lines("b", 0, 50)...), `{"last":"no newline"}`))
	if len(c.lines) != 151 {
		t.Errorf("got %d distinct lines, want 151", len(c.lines))
	}
	if len(c.closed) != 2 {
		t.Errorf("closed = %v, want both streams done", c.closed)
	}
	// Lines arrive in file order.
	var aOrder []string
	for _, l := range c.order {
		if strings.Contains(l, `"a"`) {
			aOrder = append(aOrder, l)
		}
	}
	if strings.Join(aOrder, "\n") != strings.Join(lines("a", 0, 100), "\n") {
		t.Error("lines of a.jsonl out of order")
	}
}

func TestFollowPartialLinesAndNewFiles(t *testing.T) {
	for _, notify := range []bool{true, false} {
		t.Run(fmt.Sprintf("notify=%v", notify), func(t *testing.T) {
			dir := t.TempDir()
			a := filepath.Join(dir, "runs", "a", "metrics.jsonl")
			os.MkdirAll(filepath.Dir(a), 0o755)
			appendTo(t, a, joinLines(lines("a", 0, 3)))
			logs := &logBuffer{}
			c, stop := startTailer(t, Options{Source: "s", Include: []string{dir + "/runs/*/metrics.jsonl"}, DisableNotify: !notify,
				Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, nil)
			c.waitLines(t, lines("a", 0, 3))
			// A line split across two writes arrives once, whole.
			appendTo(t, a, `{"src":"a","i":3`)
			logs.waitFor(t, "partial line held until its newline arrives")
			if c.count(`{"src":"a","i":3`) != 0 {
				t.Fatal("partial line delivered")
			}
			appendTo(t, a, "}\n")
			c.waitLines(t, lines("a", 3, 4))
			// A file in a directory created after start.
			b := filepath.Join(dir, "runs", "b", "metrics.jsonl")
			os.MkdirAll(filepath.Dir(b), 0o755)
			appendTo(t, b, joinLines(lines("b", 0, 5)))
			c.waitLines(t, lines("b", 0, 5))
			appendTo(t, a, joinLines(lines("a", 4, 10)))
			c.waitLines(t, lines("a", 4, 10))
			stop()
			c.assertNoDuplicates(t)
		})
	}
}

func TestLongLineIsOneRecord(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	long := strings.Repeat("x", 10<<20)
	appendTo(t, path, `{"before":1}`+"\n"+long+"\n"+`{"after":1}`+"\n")
	tl, _ := New(Options{Source: "s", Include: []string{path}, MaxLineBytes: 1 << 20})
	c := newCollector()
	if err := tl.Run(context.Background(), nil, c); err != nil {
		t.Fatal(err)
	}
	if c.count(`{"before":1}`) != 1 || c.count(`{"after":1}`) != 1 {
		t.Fatalf("good lines around the long one lost: %v", len(c.lines))
	}
	found := false
	for l := range c.lines {
		if strings.HasPrefix(l, "xxx") {
			found = true
			if len(l) != 1<<20+1 {
				t.Errorf("long record carries %d bytes, want the limit+1", len(l))
			}
		}
	}
	if !found {
		t.Error("the long line produced no record")
	}
	if len(c.order) != 3 {
		t.Errorf("got %d records, want 3", len(c.order))
	}
}

// TestResumeKnown checks restart validation: a known stream resumes at its
// offset when its bytes are unchanged, and is read as a new file otherwise.
func TestResumeKnown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	appendTo(t, path, joinLines(lines("a", 0, 10)))

	// First pass: read everything, remember the last chunk as a checkpoint.
	tl, _ := New(Options{Source: "s", Include: []string{path}})
	c := newCollector()
	if err := tl.Run(context.Background(), nil, c); err != nil {
		t.Fatal(err)
	}
	last := c.chunks[len(c.chunks)-1]
	known := Known{Key: last.Key, Path: path, File: last.File,
		Offset: last.End, Line: last.Line}

	appendTo(t, path, joinLines(lines("a", 10, 15)))
	tl, _ = New(Options{Source: "s", Include: []string{path}})
	c = newCollector()
	if err := tl.Run(context.Background(), []Known{known}, c); err != nil {
		t.Fatal(err)
	}
	if len(c.order) != 5 || !c.opened[0].Resumed || c.opened[0].Key != known.Key || c.opened[0].Line != 10 {
		t.Fatalf("resume read %d lines, opened %+v; want 5 new lines of the known stream", len(c.order), c.opened)
	}

	// The same name and first bytes, but the bytes before the offset
	// changed: a new generation from the start.
	content := joinLines(lines("a", 0, 9)) + `{"src":"a","i":"changed"}` + "\n" + joinLines(lines("a", 10, 15))
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tl, _ = New(Options{Source: "s", Include: []string{path}})
	c = newCollector()
	if err := tl.Run(context.Background(), []Known{known}, c); err != nil {
		t.Fatal(err)
	}
	if len(c.order) != 15 || c.opened[0].Resumed {
		t.Fatalf("changed file: read %d lines, resumed=%v; want 15 from a new stream", len(c.order), c.opened[0].Resumed)
	}
	// A file shorter than the offset is new too.
	os.WriteFile(path, []byte(joinLines(lines("a", 0, 2))), 0o644)
	tl, _ = New(Options{Source: "s", Include: []string{path}})
	c = newCollector()
	tl.Run(context.Background(), []Known{known}, c)
	if len(c.order) != 2 || c.opened[0].Resumed {
		t.Fatalf("short file: read %d lines, resumed=%v", len(c.order), c.opened[0].Resumed)
	}
}

// TestResumeRenamedWhileDown: the file was rotated away while the agent
// was stopped; its rest is read from the new name at the old offset.
func TestResumeRenamedWhileDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	appendTo(t, path, joinLines(lines("a", 0, 10)))
	tl, _ := New(Options{Source: "s", Include: []string{dir + "/m.jsonl*"}})
	c := newCollector()
	tl.Run(context.Background(), nil, c)
	last := c.chunks[len(c.chunks)-1]
	known := Known{Key: last.Key, Path: path, File: last.File,
		Offset: last.End, Line: last.Line}
	appendTo(t, path, joinLines(lines("a", 10, 12)))
	os.Rename(path, path+".1")
	appendTo(t, path, joinLines(lines("b", 0, 3)))
	tl, _ = New(Options{Source: "s", Include: []string{dir + "/m.jsonl*"}})
	c = newCollector()
	if err := tl.Run(context.Background(), []Known{known}, c); err != nil {
		t.Fatal(err)
	}
	c.waitLines(t, append(lines("a", 10, 12), lines("b", 0, 3)...))
	if len(c.order) != 5 {
		t.Errorf("read %d lines, want 5: %v", len(c.order), c.order)
	}
}

// writer appends numbered lines to a path at a steady pace until stopped;
// rotate is called between two lines at the given index.
type writer struct {
	t      *testing.T
	path   string
	n      int
	rotate func(path string, written []string)
	at     int
}

func (w *writer) run() []string {
	var all []string
	for i := 0; i < w.n; i++ {
		if i == w.at && w.rotate != nil {
			w.rotate(w.path, all)
		}
		l := fmt.Sprintf(`{"i":%d}`, i)
		appendTo(w.t, w.path, l+"\n")
		all = append(all, l)
		if i%10 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	return all
}

func TestRotation(t *testing.T) {
	tests := []struct {
		name   string
		glob   string // relative to dir
		rotate func(t *testing.T, path string)
	}{
		{"rename and recreate", "m.jsonl", func(t *testing.T, path string) {
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
		}},
		{"rename to a matched name", "m.jsonl*", func(t *testing.T, path string) {
			os.Rename(path, path+".1")
		}},
		{"copytruncate", "m.jsonl", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			os.WriteFile(path+".1", data, 0o644)
			os.Truncate(path, 0)
		}},
		{"delete and recreate", "m.jsonl", nil}, // below: waits for the reader first, deleted data is gone
		{"atomic replace with more", "m.jsonl", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			tmp := path + ".tmp"
			os.WriteFile(tmp, data, 0o644)
			os.Rename(tmp, path)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "m.jsonl")
			appendTo(t, path, `{"i":"first"}`+"\n")
			c, stop := startTailer(t, Options{Source: "s", Include: []string{filepath.Join(dir, tc.glob)}}, nil)
			c.waitLines(t, []string{`{"i":"first"}`})
			w := &writer{t: t, path: path, n: 600, at: 300, rotate: func(p string, written []string) {
				if tc.rotate == nil {
					c.waitLines(t, written) // a deleted file's unread lines are gone with it
					os.Remove(p)
					return
				}
				tc.rotate(t, p)
			}}
			all := w.run()
			c.waitLines(t, all)
			stop()
			c.assertNoDuplicates(t)
		})
	}
}

func TestSymlinkRetarget(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "run-1.data")
	b := filepath.Join(dir, "run-2.data")
	link := filepath.Join(dir, "current.jsonl")
	appendTo(t, a, joinLines(lines("a", 0, 5)))
	appendTo(t, b, joinLines(lines("b", 0, 5)))
	os.Symlink(a, link)
	c, stop := startTailer(t, Options{Source: "s", Include: []string{link}}, nil)
	c.waitLines(t, lines("a", 0, 5))
	appendTo(t, a, joinLines(lines("a", 5, 8)))
	c.waitLines(t, lines("a", 5, 8))
	tmp := link + ".new"
	os.Symlink(b, tmp)
	os.Rename(tmp, link)
	c.waitLines(t, lines("b", 0, 5))
	appendTo(t, b, joinLines(lines("b", 5, 7)))
	c.waitLines(t, lines("b", 5, 7))
	stop()
	c.assertNoDuplicates(t)
}

// TestRewriteInPlace: a logger that rewrites the whole file with the same
// rows plus new ones (truncate, then write) must not cause a re-read.
func TestRewriteInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "metrics.csv")
	rows := []string{"epoch,loss"}
	for i := 0; i < 5; i++ {
		rows = append(rows, fmt.Sprintf("%d,%d", i, i*10))
	}
	os.WriteFile(path, []byte(joinLines(rows)), 0o644)
	logs := &logBuffer{}
	frozen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// The clock does not move: the rewrite's grace period never runs out,
	// however slow the machine.
	c, stop := startTailer(t, Options{Source: "s", Include: []string{path}, Now: func() time.Time { return frozen },
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, nil)
	c.waitLines(t, rows)
	for i := 5; i < 10; i++ {
		rows = append(rows, fmt.Sprintf("%d,%d", i, i*10))
		f, _ := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
		// A slow writer: the tailer sees the empty file before the rows.
		logs.waitFor(t, fmt.Sprintf("file shrank; waiting for a rewrite to finish"))
		logs.reset()
		f.WriteString(joinLines(rows))
		f.Close()
		c.waitLines(t, rows)
	}
	stop()
	c.assertNoDuplicates(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.opened) != 1 {
		keys := []string{}
		for _, o := range c.opened {
			keys = append(keys, o.Key)
		}
		sort.Strings(keys)
		t.Errorf("opened %d streams, want 1: %v", len(c.opened), keys)
	}
}

func TestManyFilesFewDescriptors(t *testing.T) {
	dir := t.TempDir()
	var all []string
	for i := 0; i < 50; i++ {
		ls := lines(fmt.Sprint(i), 0, 3)
		appendTo(t, filepath.Join(dir, fmt.Sprintf("f%02d.jsonl", i)), joinLines(ls))
		all = append(all, ls...)
	}
	c, stop := startTailer(t, Options{Source: "s", Include: []string{dir + "/*.jsonl"}, MaxOpenFiles: 5}, nil)
	c.waitLines(t, all)
	for i := 0; i < 50; i += 7 {
		ls := lines(fmt.Sprint(i), 3, 5)
		appendTo(t, filepath.Join(dir, fmt.Sprintf("f%02d.jsonl", i)), joinLines(ls))
		all = append(all, ls...)
	}
	c.waitLines(t, all)
	stop()
}

// TestCopyIsItsOwnStream: a copy of a file that still exists under its own
// name is a different file (a second run with the same first lines), not a
// move.
func TestCopyIsItsOwnStream(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.jsonl")
	appendTo(t, a, joinLines(lines("x", 0, 5)))
	tl, _ := New(Options{Source: "s", Include: []string{dir + "/*.jsonl"}})
	c := newCollector()
	tl.Run(context.Background(), nil, c)
	last := c.chunks[len(c.chunks)-1]
	known := Known{Key: last.Key, Path: a, File: last.File,
		Offset: last.End, Line: last.Line, Done: true}
	data, _ := os.ReadFile(a)
	os.WriteFile(filepath.Join(dir, "b.jsonl"), data, 0o644)
	tl, _ = New(Options{Source: "s", Include: []string{dir + "/*.jsonl"}})
	c = newCollector()
	if err := tl.Run(context.Background(), []Known{known}, c); err != nil {
		t.Fatal(err)
	}
	if len(c.order) != 5 {
		t.Errorf("copy: read %d lines, want all 5 of b.jsonl and none of a.jsonl", len(c.order))
	}
}

func TestFinishReadsToTheEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	appendTo(t, path, joinLines(lines("a", 0, 3)))
	tl, err := New(Options{Source: "s", Include: []string{path}, Follow: true, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	done := make(chan error, 1)
	go func() { done <- tl.Run(context.Background(), nil, c) }()
	c.waitLines(t, lines("a", 0, 3))
	// Written just before Finish, the last line without its newline.
	appendTo(t, path, `{"late":1}`+"\n"+`{"unterminated":1}`)
	tl.Finish()
	tl.Finish() // twice is fine
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Finish")
	}
	if c.count(`{"late":1}`) != 1 || c.count(`{"unterminated":1}`) != 1 {
		t.Errorf("final lines not read: %v", c.order)
	}
	if len(c.closed) != 1 {
		t.Errorf("streams not closed: %v", c.closed)
	}
}

// logBuffer collects a tailer's log lines so a test can wait for the
// tailer to say it saw something (never a sleep).
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

func (l *logBuffer) waitFor(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		l.mu.Lock()
		ok := strings.Contains(l.b.String(), what)
		l.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tailer never logged %q", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRewriteWithOtherContent: a file rewritten in place with different
// content (open('w') and write) is read again from its start, whether the
// new content is longer than what was read (so the size alone looks like an
// append), the same size, or written after a visible truncation; every new
// line arrives exactly once.
func TestRewriteWithOtherContent(t *testing.T) {
	type rewrite func(t *testing.T, path string, logs *logBuffer, content string)
	oneWrite := func(t *testing.T, path string, _ *logBuffer, content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	truncateSeenFirst := func(t *testing.T, path string, logs *logBuffer, content string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		logs.waitFor(t, "file shrank; waiting for a rewrite to finish")
		f.WriteString(content)
		f.Close()
	}
	cases := []struct {
		name       string
		before     []string
		after      []string
		write      rewrite
		notifyOnly bool // the visible truncation needs a notice or a poll between the two writes
	}{
		{"small file, longer content in one write", lines("old", 0, 5), lines("new", 0, 300), oneWrite, false},
		{"large file, longer content in one write", lines("old", 0, 100), lines("new", 0, 300), oneWrite, false},
		{"same size, other content", lines("aaa", 0, 50), lines("bbb", 0, 50), oneWrite, false},
		{"truncation seen, then longer content", lines("old", 0, 100), lines("new", 0, 300), truncateSeenFirst, false},
	}
	for _, tc := range cases {
		for _, notify := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/notify=%v", tc.name, notify), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "metrics.jsonl")
				appendTo(t, path, joinLines(tc.before))
				logs := &logBuffer{}
				logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				c, stop := startTailer(t, Options{Source: "s", Include: []string{path}, DisableNotify: !notify,
					RewriteGrace: time.Hour, Logger: logger}, nil)
				c.waitLines(t, tc.before)
				tc.write(t, path, logs, joinLines(tc.after))
				c.waitLines(t, append(append([]string(nil), tc.before...), tc.after...))
				appendTo(t, path, joinLines(lines("more", 0, 3)))
				c.waitLines(t, lines("more", 0, 3))
				stop()
				c.assertNoDuplicates(t)
				c.mu.Lock()
				defer c.mu.Unlock()
				if len(c.opened) != 2 {
					t.Errorf("opened %d streams, want 2 (the rewrite is a new generation)", len(c.opened))
				}
				for _, o := range c.opened[1:] {
					if o.Offset != 0 || o.Resumed {
						t.Errorf("the rewritten file resumed at %d (resumed=%v), want a new stream from 0", o.Offset, o.Resumed)
					}
				}
			})
		}
	}
}

// TestSkippedPathsAreReported: every matched path that is not read — a
// directory, a FIFO, a dangling symlink, a symlink loop, a binary file — is
// reported once with its reason, in a backfill and while following (where
// rescans do not repeat it); text with NUL padding is read, not skipped.
func TestSkippedPathsAreReported(t *testing.T) {
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		appendTo(t, filepath.Join(dir, "a.jsonl"), joinLines(lines("a", 0, 3)))
		appendTo(t, filepath.Join(dir, "padded.jsonl"), "\x00\x00\x00\x00"+joinLines(lines("p", 0, 2)))
		if err := os.Mkdir(filepath.Join(dir, "dir.jsonl"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(dir, "fifo.jsonl"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling.jsonl"))
		os.Symlink(filepath.Join(dir, "loop2.jsonl"), filepath.Join(dir, "loop1.jsonl"))
		os.Symlink(filepath.Join(dir, "loop1.jsonl"), filepath.Join(dir, "loop2.jsonl"))
		png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 64)...)
		os.WriteFile(filepath.Join(dir, "image.jsonl"), png, 0o644)
		os.WriteFile(filepath.Join(dir, "noise.jsonl"), []byte("\x01\x02\x03\x04\x05\x06\x07\x08garbage\x0e\x0f\x10\x11\x12\x13"), 0o644)
		return dir
	}
	// The padding reaches the parser with its line; the parser steps over it.
	padded := append([]string{"\x00\x00\x00\x00" + lines("p", 0, 1)[0]}, lines("p", 1, 2)...)
	want := []string{"dangling.jsonl:dangling_symlink", "dir.jsonl:directory", "fifo.jsonl:not_regular",
		"image.jsonl:binary", "loop1.jsonl:symlink_loop", "loop2.jsonl:symlink_loop", "noise.jsonl:binary"}
	check := func(t *testing.T, c *collector) {
		t.Helper()
		c.mu.Lock()
		got := append([]string(nil), c.skipped...)
		c.mu.Unlock()
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("skipped:\n got %v\nwant %v", got, want)
		}
	}
	t.Run("backfill", func(t *testing.T) {
		dir := setup(t)
		tl, err := New(Options{Source: "s", Include: []string{dir + "/*.jsonl"}})
		if err != nil {
			t.Fatal(err)
		}
		c := newCollector()
		if err := tl.Run(context.Background(), nil, c); err != nil {
			t.Fatal(err)
		}
		c.waitLines(t, append(lines("a", 0, 3), padded...))
		check(t, c)
	})
	t.Run("follow", func(t *testing.T) {
		dir := setup(t)
		c, stop := startTailer(t, Options{Source: "s", Include: []string{dir + "/*.jsonl"}, PollInterval: 10 * time.Millisecond,
			DisableNotify: true}, nil)
		c.waitLines(t, append(lines("a", 0, 3), padded...))
		// Many rescans later, each path was still reported once.
		appendTo(t, filepath.Join(dir, "a.jsonl"), joinLines(lines("a", 3, 4)))
		c.waitLines(t, lines("a", 0, 4))
		for i := 0; i < 3; i++ {
			appendTo(t, filepath.Join(dir, "a.jsonl"), joinLines(lines("b", i, i+1)))
			c.waitLines(t, lines("b", i, i+1))
		}
		stop()
		check(t, c)
	})
}

// TestSymlinkToEmptyFileByNotification: writes to the target of a matched
// symlink are noticed at once (notifications name the target, not the
// link), also while the target was still empty when the tailer started and
// after the link is pointed at a new empty file. No rescan runs here (the
// poll interval is an hour), so only the notifications can deliver.
func TestSymlinkToEmptyFileByNotification(t *testing.T) {
	dir := t.TempDir()
	targets := filepath.Join(dir, "targets") // outside the glob's directory
	os.MkdirAll(targets, 0o755)
	a, b := filepath.Join(targets, "gen1.data"), filepath.Join(targets, "gen2.data")
	os.WriteFile(a, nil, 0o644)
	link := filepath.Join(dir, "m.jsonl")
	os.Symlink(a, link)
	watching := make(chan struct{})
	c, stop := startTailer(t, Options{Source: "s", Include: []string{link}, PollInterval: time.Hour,
		OnWatching: func() { close(watching) }}, nil)
	<-watching
	appendTo(t, a, joinLines(lines("a", 0, 3)))
	c.waitLines(t, lines("a", 0, 3))
	os.WriteFile(b, nil, 0o644)
	os.Symlink(b, link+".new")
	os.Rename(link+".new", link)
	appendTo(t, b, joinLines(lines("b", 0, 3)))
	c.waitLines(t, lines("b", 0, 3))
	stop()
	c.assertNoDuplicates(t)
}

// A file rewritten with other, longer content between two reads (while
// the tailer hands over a chunk, before it reads on) is read again from
// its start: the next read never hands over the new content's bytes from
// the old offset (b3 twice, or half a line).
func TestRewriteBetweenReads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.log")
	appendTo(t, path, "a1\na2\n")
	tl, err := New(Options{Source: "s", Include: []string{path}, Follow: true, DisableNotify: true,
		PollInterval: time.Hour, RewriteGrace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	var once sync.Once
	c.onChunk = func(ch *Chunk) {
		once.Do(func() {
			if err := os.WriteFile(path, []byte("b1\nb2\nb3\n"), 0o644); err != nil {
				t.Error(err)
			}
		})
	}
	done := make(chan error, 1)
	go func() { done <- tl.Run(context.Background(), nil, c) }()
	c.waitLines(t, []string{"a1", "a2"})
	// Finish reads every file to its end: whatever the rewrite made is
	// delivered by the time Run returns.
	tl.Finish()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if got := strings.Join(c.order, " "); got != "a1 a2 b1 b2 b3" {
		t.Errorf("lines %q, want a1 a2 b1 b2 b3", got)
	}
}

// copytruncate while the tailer is behind, the file growing back past the
// read position before it looks: the unread lines are taken from the copy,
// then the file is read from its start.
func TestCopytruncateGrownBackBetweenReads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.log")
	appendTo(t, path, "a1\na2\n")
	tl, err := New(Options{Source: "s", Include: []string{path}, Follow: true, DisableNotify: true,
		PollInterval: time.Hour, RewriteGrace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	var once sync.Once
	c.onChunk = func(ch *Chunk) {
		once.Do(func() {
			appendTo(t, path, "a3\n") // not read yet
			data, err := os.ReadFile(path)
			if err != nil {
				t.Error(err)
			}
			os.WriteFile(path+".1", data, 0o644)
			os.Truncate(path, 0)
			appendTo(t, path, "b1\nb2\nb3\nb4\n")
		})
	}
	done := make(chan error, 1)
	go func() { done <- tl.Run(context.Background(), nil, c) }()
	c.waitLines(t, []string{"a1", "a2"})
	tl.Finish()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if got := strings.Join(c.order, " "); got != "a1 a2 a3 b1 b2 b3 b4" {
		t.Errorf("lines %q, want a1 a2 a3 b1 b2 b3 b4", got)
	}
}
