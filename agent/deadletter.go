package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mlop-ai/mlop-agent/internal/telemetry"
)

// deadLetter appends records the agent gave up on to a JSON-lines file, so
// nothing rejected is silently lost. A nil *deadLetter discards.
type deadLetter struct {
	tel *telemetry.Telemetry // counts every entry written
	mu  sync.Mutex
	f   *os.File
}

// deadLetterEntry is one line of the dead-letter file.
type deadLetterEntry struct {
	Time   time.Time `json:"time"`
	Source string    `json:"source,omitempty"`
	Path   string    `json:"path,omitempty"`
	Line   int64     `json:"line,omitempty"`
	Run    string    `json:"run,omitempty"`
	Kind   string    `json:"kind,omitempty"`
	Reason string    `json:"reason"`
	Error  string    `json:"error,omitempty"`
	Data   string    `json:"data,omitempty"`
}

func openDeadLetter(path string, tel *telemetry.Telemetry) (*deadLetter, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open dead-letter file: %w", err)
	}
	return &deadLetter{f: f, tel: tel}, nil
}

// maxDeadData caps how much of one record is copied to the file.
const maxDeadData = 64 << 10

func (d *deadLetter) write(e deadLetterEntry) {
	if d == nil {
		return
	}
	if len(e.Data) > maxDeadData {
		e.Data = e.Data[:maxDeadData]
	}
	e.Time = time.Now().UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f != nil {
		if _, err := d.f.Write(b); err == nil {
			d.tel.DeadLettered(1)
		}
	}
}

func (d *deadLetter) close() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}
