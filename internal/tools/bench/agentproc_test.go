package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a fake agent: with BENCH_TEST_HELPER set it
// behaves as the variable says instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("BENCH_TEST_HELPER") {
	case "":
		os.Exit(m.Run())
	case "exit3":
		fmt.Fprintln(os.Stderr, "first line")
		fmt.Fprintln(os.Stderr, "last line")
		os.Exit(3)
	case "term":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		// Touch 32 MiB so the sampled peak RSS has something to show.
		buf := bytes.Repeat([]byte{1}, 32<<20)
		fmt.Println("ready")
		<-ch
		fmt.Println("stopping", buf[len(buf)-1])
		os.Exit(0)
	}
	os.Exit(99)
}

func helper(t *testing.T, mode string) (*agentProc, string) {
	t.Helper()
	t.Setenv("BENCH_TEST_HELPER", mode)
	log := filepath.Join(t.TempDir(), "agent.log")
	p, err := startAgent(context.Background(), os.Args[0], log)
	if err != nil {
		t.Fatal(err)
	}
	return p, log
}

func TestAgentProcExitCode(t *testing.T) {
	p, _ := helper(t, "exit3")
	res := p.Wait()
	if res.ExitCode != 3 || res.WaitErr != nil {
		t.Fatalf("exit code %d, wait error %v; want 3, nil", res.ExitCode, res.WaitErr)
	}
	if res.Wall <= 0 {
		t.Errorf("wall %v, want > 0", res.Wall)
	}
	if got := p.logTail(1); got != "last line" {
		t.Errorf("logTail(1) = %q, want %q", got, "last line")
	}
	if !p.Exited() {
		t.Error("Exited() = false after Wait")
	}
}

func TestAgentProcStop(t *testing.T) {
	p, log := helper(t, "term")
	// Wait for the helper's signal handler, or SIGTERM would kill it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(log)
		if strings.Contains(string(b), "ready") {
			break
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("helper not ready: %q", b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The helper touched 32 MiB before "ready"; wait for a sample to see it.
	for {
		if _, hwm := peakRSS(p.sampler.Samples(), time.Time{}, time.Time{}); hwm >= 32<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sample with VmHWM >= 32 MiB: %+v", p.sampler.Samples())
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := p.Stop(30 * time.Second)
	if res.ExitCode != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0 (log: %q)", res.ExitCode, p.logTail(5))
	}
	if got := p.logTail(1); got != "stopping 1" {
		t.Errorf("log tail %q, want %q", got, "stopping 1")
	}
	if res.MaxRSSKiB < 32<<10 || res.CPU <= 0 {
		t.Errorf("peak RSS %d KiB, CPU %v; want >= 32 MiB and > 0", res.MaxRSSKiB, res.CPU)
	}
	if again := p.Stop(time.Second); again.ExitCode != 0 {
		t.Errorf("second Stop: exit code %d, want the same 0", again.ExitCode)
	}
}

func TestTailLines(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
	} {
		if got := tailLines([]byte(tt.in), tt.n); got != tt.want {
			t.Errorf("tailLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// The paced writer writes whole lines, each parseable, round-robin, and
// counts exactly what it wrote (whatever the rate achieved).
func TestPacedWriterWritesWholeLines(t *testing.T) {
	dir := t.TempDir()
	paths := []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "c.jsonl")}
	pool := newValuePool(1)
	fs, steps, err := createLiveFiles(paths, pool)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(fs)
	w := startPacedWriter(fs, steps, 20_000, pool)
	// Let it write something; the count is checked, not the rate.
	deadline := time.Now().Add(30 * time.Second)
	for sum := 0; sum < 3*3; {
		sum = 0
		for _, p := range paths {
			b, _ := os.ReadFile(p)
			sum += bytes.Count(b, []byte("\n"))
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer wrote nothing in 30 s")
		}
		time.Sleep(time.Millisecond)
	}
	written, err := w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
		for j, l := range lines {
			m := decodeLine(t, l)
			if s := m["step"].(interface{ String() string }).String(); s != fmt.Sprint(j) {
				t.Fatalf("%s line %d: step %s, want %d", p, j+1, s, j)
			}
			if _, err := writeTimeOf(l); err != nil {
				t.Fatalf("%s line %d: %v", p, j+1, err)
			}
		}
		total += int64(len(lines))
		if int64(len(lines)) != steps[i] {
			t.Errorf("%s: %d lines, next step %d", p, len(lines), steps[i])
		}
	}
	if want := int64(len(paths)) + written; total != want {
		t.Errorf("files hold %d lines, want %d (one initial each + %d written)", total, want, written)
	}
	if w2, _ := w.Stop(); w2 != written {
		t.Errorf("second Stop = %d, want %d", w2, written)
	}
}
