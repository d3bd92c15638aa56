package watcher

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tailer's property: whatever a writer does to a few files — append,
// rewrite with the same rows plus more, rewrite with other rows, truncate,
// rename out of the glob (rotation), delete, recreate — every line that was
// in a matched file while the tailer could see it arrives exactly once, and
// nothing else arrives. An oracle tracks what each path holds; after every
// operation the test waits until the tailer has delivered everything the
// oracle says is readable (never a sleep), so each operation meets a
// tailer that is caught up, which is when the property must hold.

type tailerOp byte

const (
	opAppend tailerOp = iota
	opAppendPartial
	opRewriteSame // the same rows plus new ones, rewritten in place
	opRewriteOther
	opTruncate
	opRotate
	opDelete
	opRecreate
	nOps
)

var opNames = [...]string{"append", "append-partial", "rewrite-same", "rewrite-other", "truncate", "rotate", "delete", "recreate"}

type oracle struct {
	t       *testing.T
	dir     string
	content map[string][]string // complete lines each path holds now
	partial map[string]string   // an unterminated tail each path holds
	whole   map[string]string   // the line that tail is the start of
	seq     int
	rotated int
	all     []string        // every complete line that was readable, in order
	maybe   map[string]bool // unterminated tails of files that went away: may arrive once, as they are
}

// endPartial records that the file at path, with its unterminated tail,
// stops being followed: reading a rotated or deleted file to its end takes
// the tail as a last line; a truncation drops it.
func (o *oracle) endPartial(path string) {
	if p := o.partial[path]; p != "" {
		o.maybe[p] = true
	}
	o.partial[path], o.whole[path] = "", ""
}

func (o *oracle) line() string {
	o.seq++
	return fmt.Sprintf(`{"n":%d}`, o.seq)
}

func (o *oracle) write(path string, lines []string, partial string, flag int) {
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		o.t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	b.WriteString(partial)
	if _, err := f.WriteString(b.String()); err != nil {
		o.t.Fatal(err)
	}
	f.Close()
}

// apply performs op on file i and records what became readable.
func (o *oracle) apply(op tailerOp, i int, r *rand.Rand) {
	path := filepath.Join(o.dir, fmt.Sprintf("f%d.log", i))
	fresh := func(n int) []string {
		var ls []string
		for range n {
			ls = append(ls, o.line())
		}
		return ls
	}
	switch op {
	case opAppend, opAppendPartial:
		// Complete the held partial line first, as a writer would.
		ls := fresh(1 + r.IntN(5))
		first := o.partial[path]
		if first != "" {
			ls[0] = o.whole[path]
		}
		partial := ""
		if op == opAppendPartial {
			next := o.line()
			// Cut inside the closing brace's line but after the number, so
			// every tail is unique (a tail that arrives alone is judged by
			// its text).
			partial = next[:len(next)-1]
			o.whole[path] = next
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			o.t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString(ls[0][len(first):] + "\n")
		for _, l := range ls[1:] {
			b.WriteString(l + "\n")
		}
		b.WriteString(partial)
		f.WriteString(b.String())
		f.Close()
		o.content[path] = append(o.content[path], ls...)
		o.partial[path] = partial
		o.all = append(o.all, ls...)
	case opRewriteSame:
		if len(o.content[path]) == 0 || o.partial[path] != "" {
			o.apply(opAppend, i, r)
			return
		}
		ls := fresh(1 + r.IntN(3))
		o.content[path] = append(o.content[path], ls...)
		o.write(path, o.content[path], "", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		o.all = append(o.all, ls...)
	case opRewriteOther, opRecreate:
		ls := fresh(1 + r.IntN(6))
		o.endPartial(path)
		if op == opRecreate {
			os.Remove(path)
		}
		o.write(path, ls, "", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		o.content[path], o.partial[path] = ls, ""
		o.all = append(o.all, ls...)
	case opTruncate:
		if _, err := os.Stat(path); err == nil {
			os.Truncate(path, 0)
		}
		o.endPartial(path)
		o.content[path] = nil
	case opRotate:
		if _, err := os.Stat(path); err == nil {
			o.rotated++
			os.Rename(path, filepath.Join(o.dir, fmt.Sprintf("f%d.log.%d", i, o.rotated)))
		}
		o.endPartial(path)
		o.content[path] = nil
	case opDelete:
		os.Remove(path)
		o.endPartial(path)
		o.content[path] = nil
	}
}

func runTailerProperty(t *testing.T, seed uint64, ops int, notify bool) {
	dir := t.TempDir()
	o := &oracle{t: t, dir: dir, content: map[string][]string{}, partial: map[string]string{}, whole: map[string]string{},
		maybe: map[string]bool{}}
	r := rand.New(rand.NewPCG(seed, seed*7+1))
	c, stop := startTailer(t, Options{Source: "s", Include: []string{dir + "/*.log"}, DisableNotify: !notify,
		PollInterval: 10 * time.Millisecond, RewriteGrace: 50 * time.Millisecond}, nil)
	var trace []string
	for n := 0; n < ops; n++ {
		op, i := tailerOp(r.IntN(int(nOps))), r.IntN(3)
		trace = append(trace, fmt.Sprintf("%s f%d", opNames[op], i))
		o.apply(op, i, r)
		if !waitAll(c, o.all, 10*time.Second) {
			t.Fatalf("seed %d: after %v, lines missing or doubled: %s", seed, trace, c.report(o.all))
		}
	}
	// stop reads every file to its end (Finish): an unterminated last line
	// then arrives as it is.
	for _, p := range o.partial {
		if p != "" {
			o.maybe[p] = true
		}
	}
	stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]bool{}
	for _, l := range o.all {
		want[l] = true
	}
	for l, n := range c.lines {
		if o.maybe[l] && n == 1 {
			continue
		}
		if !want[l] || n != 1 {
			t.Errorf("seed %d: line %q delivered %d times (expected: %v) after %v", seed, l, n, want[l], trace)
		}
	}
}

// waitAll waits until every line arrived; it gives up early on a duplicate.
func waitAll(c *collector, lines []string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		done, dup := true, false
		for _, l := range lines {
			switch c.lines[l] {
			case 0:
				done = false
			case 1:
			default:
				dup = true
			}
		}
		c.mu.Unlock()
		if dup {
			return false
		}
		if done {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// report lists the missing and doubled lines.
func (c *collector) report(lines []string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing, doubled []string
	for _, l := range lines {
		switch n := c.lines[l]; {
		case n == 0:
			missing = append(missing, l)
		case n > 1:
			doubled = append(doubled, fmt.Sprintf("%s×%d", l, n))
		}
	}
	return fmt.Sprintf("missing %v, doubled %v", missing, doubled)
}

// TestTailerProperty runs fixed seeds through both the notification and
// the polling paths.
func TestTailerProperty(t *testing.T) {
	for _, notify := range []bool{true, false} {
		for seed := uint64(1); seed <= 8; seed++ {
			t.Run(fmt.Sprintf("notify=%v/seed=%d", notify, seed), func(t *testing.T) {
				runTailerProperty(t, seed, 30, notify)
			})
		}
	}
}

// FuzzTailerProperty explores other sequences (make fuzz).
func FuzzTailerProperty(f *testing.F) {
	f.Add(uint64(42), true)
	f.Add(uint64(7), false)
	f.Fuzz(func(t *testing.T, seed uint64, notify bool) {
		runTailerProperty(t, seed, 20, notify)
	})
}
