package csv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// stateVersion is the version of the State encoding; Restore rejects others.
const stateVersion = 1

// savedState is the JSON form of the parser state.
type savedState struct {
	V           int              `json:"v"`
	Header      []string         `json:"header,omitempty"`
	Delim       string           `json:"delim,omitempty"`
	Steps       map[string]int64 `json:"steps,omitempty"`
	Partial     []byte           `json:"partial,omitempty"` // set while a quoted record is open
	PartialLine int64            `json:"partial_line,omitempty"`
	TStart      *float64         `json:"t_start,omitempty"`
}

// State implements parsers.Stateful: the header, the delimiter, the
// auto-step counters, the t_start learnt from a JSON comment, and an
// incomplete quoted record.
func (p *Parser) State() ([]byte, error) {
	s := savedState{V: stateVersion, Header: p.header}
	if p.header != nil {
		s.Delim = string(p.delim)
	}
	if len(p.steps) > 0 {
		s.Steps = p.steps
	}
	if p.inPartial {
		s.Partial = p.partial
		s.PartialLine = p.partialLine
	}
	if p.hasTStart {
		t := p.tStart
		s.TStart = &t
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode csv state: %w", err)
	}
	return b, nil
}

// Restore implements parsers.Stateful. A nil or empty state resets the
// parser to a fresh one, whose next non-comment line is a header: the agent
// calls it (or makes a new parser) for a new generation of a file.
//
// A state that does not decode is an error and leaves the parser fresh.
func (p *Parser) Restore(state []byte) error {
	p.reset()
	if len(state) == 0 {
		return nil
	}
	var s savedState
	dec := json.NewDecoder(bytes.NewReader(state))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("decode csv state: %w", err)
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("decode csv state: %w", err)
	}
	if s.Header != nil {
		p.header = s.Header
		p.delim = s.Delim[0]
		p.deriveRoles()
	}
	for run, n := range s.Steps {
		p.steps[run] = n
		p.runs[run] = run
	}
	if s.Partial != nil {
		p.partial = append(p.partial[:0], s.Partial...)
		p.inPartial = true
		p.partialLine = s.PartialLine
	}
	if s.TStart != nil {
		p.tStart, p.hasTStart = *s.TStart, true
	}
	return nil
}

func (s *savedState) validate() error {
	if s.V != stateVersion {
		return fmt.Errorf("version %d, want %d", s.V, stateVersion)
	}
	if s.Header != nil && (len(s.Header) == 0 || len(s.Delim) != 1) {
		return errors.New("header without a delimiter")
	}
	for run, n := range s.Steps {
		if n < 0 {
			return fmt.Errorf("negative step counter for run %q", run)
		}
	}
	if t := s.TStart; t != nil && (math.IsNaN(*t) || math.IsInf(*t, 0) || *t < 0) {
		return fmt.Errorf("bad t_start %v", *t)
	}
	return nil
}
