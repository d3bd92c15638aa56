package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// sampleEvery is how often /proc/<pid> is read while an agent runs (after
// its first second; see denseFor).
const sampleEvery = 100 * time.Millisecond

// agentProc is one mlop-agent subprocess, timed and sampled from outside.
type agentProc struct {
	cmd     *exec.Cmd
	logPath string // the agent's stderr (and stdout)
	start   time.Time
	sampler *sampler

	done   chan struct{} // closed when the process has been reaped
	result agentResult   // written before done is closed
}

// agentResult is what the OS says about a finished agent.
type agentResult struct {
	Wall     time.Duration // start to reaped exit
	ExitCode int           // -1 when killed by a signal
	WaitErr  error         // from exec.Cmd.Wait, for messages
	CPU      time.Duration // user + system (wait4 rusage)
	// MaxRSSKiB is the peak resident set: the last VmHWM sampled (the
	// kernel's high-water mark of the agent's own memory, up to one
	// sampling interval before it exited).
	MaxRSSKiB int64
	// RusageMaxRSSKiB is ru_maxrss from wait4. It is NOT the agent's peak:
	// Go starts children with vfork (CLONE_VM), and Linux carries the
	// high-water mark of the memory the child ran in before exec — the
	// harness's, strict stand-in included — into the child's maxrss. Kept
	// for comparison only.
	RusageMaxRSSKiB int64
	Samples         []procSample
}

// CPUPercent is the average CPU over the run, in % of one core.
func (r agentResult) CPUPercent() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return r.CPU.Seconds() / r.Wall.Seconds() * 100
}

// startAgent starts bin with args, its output going to logPath. A cancelled
// ctx sends SIGTERM and, 15 s later, SIGKILL.
func startAgent(ctx context.Context, bin, logPath string, args ...string) (*agentProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create agent log: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	p := &agentProc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.sampler = startSampler(cmd.Process.Pid, sampleEvery)
	// The reaper goroutine is owned by p: Wait and Stop wait for it.
	go func() {
		defer close(p.done)
		err := cmd.Wait()
		end := time.Now()
		logf.Close()
		p.sampler.Stop()
		r := agentResult{Wall: end.Sub(p.start), ExitCode: cmd.ProcessState.ExitCode(), Samples: p.sampler.Samples()}
		if err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				r.WaitErr = err
			}
		}
		r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		_, r.MaxRSSKiB = peakRSS(r.Samples, time.Time{}, time.Time{})
		r.RusageMaxRSSKiB, _ = maxRSSKiB(cmd.ProcessState)
		p.result = r
	}()
	return p, nil
}

// Pid is the agent's process id.
func (p *agentProc) Pid() int { return p.cmd.Process.Pid }

// Wait waits for the agent to exit.
func (p *agentProc) Wait() agentResult {
	<-p.done
	return p.result
}

// Exited reports whether the agent has exited (and been reaped).
func (p *agentProc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM (the agent drains and exits 0) and waits; after
// timeout it kills the agent.
func (p *agentProc) Stop(timeout time.Duration) agentResult {
	if p.Exited() {
		return p.result
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.result
}

// logTail returns the last n lines of the agent's log.
func (p *agentProc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.logPath, err)
	}
	return tailLines(b, n)
}

func tailLines(b []byte, n int) string {
	b = bytes.TrimRight(b, "\n")
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hasCommand reports whether the agent binary knows a subcommand: `bin
// name -h` exits 0 for every command it has (and 2 for an unknown one).
func hasCommand(ctx context.Context, bin, name string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, bin, name, "-h").Run() == nil
}

// agentVersion is the output of `bin version`.
func agentVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// buildAgent builds ./cmd/mlop-agent of the module in dir as `make build`
// does (static, trimmed) into out.
func buildAgent(ctx context.Context, dir, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(out), err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./cmd/mlop-agent")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/mlop-agent: %w\n%s", err, b)
	}
	return nil
}
