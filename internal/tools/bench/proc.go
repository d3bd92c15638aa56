package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The agent's CPU and memory are read from the kernel, never from the agent
// itself: /proc/<pid>/stat (utime, stime in clock ticks) and
// /proc/<pid>/status (VmRSS, VmHWM in KiB), sampled from outside, plus the
// rusage wait4 returns at exit (agentproc.go).

// procSample is one reading of /proc/<pid>.
type procSample struct {
	At     time.Time
	RSSKiB int64 // VmRSS: resident memory now
	HWMKiB int64 // VmHWM: the peak resident memory so far
	Ticks  int64 // utime+stime, in clock ticks (clockTicks per second)
}

// errNoMemory reports a status file without VmRSS/VmHWM: the process is a
// zombie (exited, not yet reaped) or a kernel thread.
var errNoMemory = errors.New("no VmRSS/VmHWM in status")

// parseStat returns utime and stime (fields 14 and 15, in clock ticks) of a
// /proc/<pid>/stat line. The command name (field 2) is parenthesised and may
// itself hold spaces and parentheses, so fields are counted from the last
// ')'.
func parseStat(b []byte) (utime, stime int64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse stat: no ')' after the command name")
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(string(b[i+1:]))
	const utimeAt, stimeAt = 14 - 3, 15 - 3
	if len(f) <= stimeAt {
		return 0, 0, fmt.Errorf("parse stat: %d fields after the command name, want > %d", len(f), stimeAt)
	}
	if utime, err = strconv.ParseInt(f[utimeAt], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("parse stat utime: %w", err)
	}
	if stime, err = strconv.ParseInt(f[stimeAt], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("parse stat stime: %w", err)
	}
	return utime, stime, nil
}

// parseStatus returns VmRSS and VmHWM (KiB) of a /proc/<pid>/status file;
// errNoMemory when either is missing.
func parseStatus(b []byte) (rssKiB, hwmKiB int64, err error) {
	var haveRSS, haveHWM bool
	for line := range bytes.Lines(b) {
		var dst *int64
		var have *bool
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst, have = &rssKiB, &haveRSS
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst, have = &hwmKiB, &haveHWM
		default:
			continue
		}
		f := strings.Fields(string(line[6:]))
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("parse status line %q: want \"<n> kB\"", bytes.TrimSpace(line))
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse status line %q: %w", bytes.TrimSpace(line), err)
		}
		*dst, *have = v, true
	}
	if !haveRSS || !haveHWM {
		return 0, 0, errNoMemory
	}
	return rssKiB, hwmKiB, nil
}

// readProc reads one sample of process pid.
func readProc(pid int) (procSample, error) {
	at := time.Now()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read stat: %w", err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read status: %w", err)
	}
	ut, st, err := parseStat(stat)
	if err != nil {
		return procSample{}, err
	}
	rss, hwm, err := parseStatus(status)
	if err != nil {
		return procSample{}, err
	}
	return procSample{At: at, RSSKiB: rss, HWMKiB: hwm, Ticks: ut + st}, nil
}

// clockTicks is USER_HZ, the unit of utime/stime in /proc: `getconf
// CLK_TCK`, or 100 (what Linux uses on every architecture Go supports)
// when getconf is missing.
var clockTicks = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
})

// cpuPercent is the CPU used between two samples as a percentage of one
// core.
func cpuPercent(a, b procSample) float64 {
	wall := b.At.Sub(a.At).Seconds()
	if wall <= 0 {
		return 0
	}
	return float64(b.Ticks-a.Ticks) / float64(clockTicks()) / wall * 100
}

// sampler reads /proc/<pid> at a fixed interval (denser in the first
// second) until Stop or until the process is gone. Its goroutine is owned by the sampler: Stop ends it and
// waits for it.
type sampler struct {
	pid  int
	stop chan struct{} // closed by Stop
	done chan struct{} // closed when the goroutine returns
	once sync.Once

	mu      sync.Mutex
	samples []procSample // guarded by mu
}

// startSampler samples pid every interval (every denseEvery during the
// first denseFor), starting now.
func startSampler(pid int, every time.Duration) *sampler {
	s := &sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop(every)
	return s
}

// denseFor is how long after the start the sampler reads every
// denseEvery instead of every interval, so that short runs (a 100 K-line
// backfill takes a few hundred ms) still get a peak RSS.
const (
	denseFor   = time.Second
	denseEvery = 10 * time.Millisecond
)

func (s *sampler) loop(every time.Duration) {
	defer close(s.done)
	start := time.Now()
	t := time.NewTicker(min(every, denseEvery))
	defer t.Stop()
	dense := every > denseEvery
	for {
		if dense && time.Since(start) >= denseFor {
			t.Reset(every)
			dense = false
		}
		ps, err := readProc(s.pid)
		if err != nil {
			// Gone, or a zombie waiting to be reaped: nothing more to read.
			return
		}
		s.mu.Lock()
		s.samples = append(s.samples, ps)
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// Stop ends sampling and waits for the goroutine. Idempotent.
func (s *sampler) Stop() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// Samples returns a copy of the samples so far.
func (s *sampler) Samples() []procSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]procSample(nil), s.samples...)
}

// peakRSS is the largest VmRSS and VmHWM among samples taken within
// [from, to]; a zero time leaves that side open.
func peakRSS(samples []procSample, from, to time.Time) (rssKiB, hwmKiB int64) {
	for _, s := range samples {
		if (!from.IsZero() && s.At.Before(from)) || (!to.IsZero() && s.At.After(to)) {
			continue
		}
		rssKiB = max(rssKiB, s.RSSKiB)
		hwmKiB = max(hwmKiB, s.HWMKiB)
	}
	return rssKiB, hwmKiB
}
