package agent

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mlop-ai/mlop-agent/sink"
)

// Stats counts what the agent did. It is safe for concurrent use.
type Stats struct {
	RecordsRead   atomic.Int64
	RecordsBad    atomic.Int64
	ValuesSkipped atomic.Int64
	PointsSent    atomic.Int64
	LinesSent     [sink.NumEndpoints]atomic.Int64
	Requests      atomic.Int64
	LinesRejected atomic.Int64
	RunsCreated   atomic.Int64
	RunsResumed   atomic.Int64
	RunsFinished  atomic.Int64
	// StreamsSkipped counts streams imported completely before and
	// unchanged since; StreamsFailed those that stopped on an error.
	StreamsSkipped atomic.Int64
	StreamsFailed  atomic.Int64

	// FilesSkipped counts matched paths that were not read (a directory,
	// a FIFO, a binary or unreadable file), by reason in skippedFiles.
	FilesSkipped atomic.Int64

	mu           sync.Mutex
	skippedFiles map[string]int64 // by reason
	bad          map[string]int64 // by reason
	skipped      map[string]int64 // by reason
	rejected     []string         // first permanent rejections, for the summary
}

const maxRejectedKept = 20

func (s *Stats) badRecord(reason string) {
	s.RecordsBad.Add(1)
	s.mu.Lock()
	if s.bad == nil {
		s.bad = map[string]int64{}
	}
	s.bad[reason]++
	s.mu.Unlock()
}

func (s *Stats) skip(reason string) {
	s.ValuesSkipped.Add(1)
	s.mu.Lock()
	if s.skipped == nil {
		s.skipped = map[string]int64{}
	}
	s.skipped[reason]++
	s.mu.Unlock()
}

func (s *Stats) fileSkipped(reason string) {
	s.FilesSkipped.Add(1)
	s.mu.Lock()
	if s.skippedFiles == nil {
		s.skippedFiles = map[string]int64{}
	}
	s.skippedFiles[reason]++
	s.mu.Unlock()
}

func (s *Stats) reject(lines int, what string) {
	s.LinesRejected.Add(int64(lines))
	s.mu.Lock()
	if len(s.rejected) < maxRejectedKept {
		s.rejected = append(s.rejected, what)
	}
	s.mu.Unlock()
}

// BadByReason returns the bad-record counts by reason.
func (s *Stats) BadByReason() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{}
	for k, v := range s.bad {
		out[k] = v
	}
	return out
}

// Rejected returns descriptions of the first permanent rejections.
func (s *Stats) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

// Summary is a one-paragraph account for the end of a backfill.
func (s *Stats) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "records read %d, bad %d", s.RecordsRead.Load(), s.RecordsBad.Load())
	if bad := s.BadByReason(); len(bad) > 0 {
		var parts []string
		for k, v := range bad {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(parts)
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "; points sent %d; lines sent: metrics %d, data %d, logs %d, files %d; runs created %d, resumed %d, finished %d",
		s.PointsSent.Load(), s.LinesSent[sink.Metrics].Load(), s.LinesSent[sink.Data].Load(), s.LinesSent[sink.Logs].Load(),
		s.LinesSent[sink.Files].Load(), s.RunsCreated.Load(), s.RunsResumed.Load(), s.RunsFinished.Load())
	if n := s.StreamsSkipped.Load(); n > 0 {
		fmt.Fprintf(&b, "; %d stream(s) already complete, skipped", n)
	}
	if n := s.FilesSkipped.Load(); n > 0 {
		s.mu.Lock()
		var parts []string
		for k, v := range s.skippedFiles {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		s.mu.Unlock()
		sort.Strings(parts)
		fmt.Fprintf(&b, "; %d matched file(s) NOT READ (%s)", n, strings.Join(parts, ", "))
	}
	if n := s.StreamsFailed.Load(); n > 0 {
		fmt.Fprintf(&b, "; %d stream(s) FAILED", n)
	}
	if n := s.LinesRejected.Load(); n > 0 {
		fmt.Fprintf(&b, "; REJECTED by the server: %d lines", n)
	}
	return b.String()
}
