// Package jsonl parses JSON Lines metric files: one JSON object per line,
// numeric leaves become metric points (nested objects flatten with "/"),
// strings become string-series points, and the in-band keys _tags, _config
// and _status carry run events.
package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

func init() { parsers.Register("jsonl", New) }

// DefaultStepField is the step field when the source names none.
const DefaultStepField = "step"

// defaultTimeFields are tried in order when the source names no time field.
var defaultTimeFields = []string{"time", "timestamp", "_timestamp", "ts"}

// minAutoTime is the smallest value an auto-detected time field may hold to
// be taken as an epoch timestamp (2001-09-09 in seconds). Training logs often
// have a "time" key holding seconds per iteration; such a small value is a
// metric, not a timestamp. A field named explicitly by time_field is always
// a timestamp.
const minAutoTime = 1e9

// maxInterned bounds the name intern table so files with unbounded key
// cardinality cannot grow the process's memory without limit.
const maxInterned = 1 << 16

// maxStringValue is the longest string value sent as a string-series point;
// longer ones are skipped, as the pluto SDK does.
const maxStringValue = 200

// In-band run keys.
const (
	keyTags   = "_tags"
	keyConfig = "_config"
	keyStatus = "_status"
)

// Parser is the JSONL parser of one file. Only the goroutine reading that
// file uses it.
type Parser struct {
	opts       parsers.Options
	stepField  string
	timeFields []string
	explicitTm bool

	sc      scanner
	prefix  []byte
	points  []event.Point
	strs    []strPoint
	tags    []string
	config  map[string]any
	status  string
	runName string

	// last holds the last step used per run, for lines without a step.
	last map[string]int64
	// padded is set once NUL padding was reported for this file.
	padded bool
}

var utf8BOM = []byte("\xef\xbb\xbf")

type strPoint struct{ name, value string }

var (
	_ parsers.Parser   = (*Parser)(nil)
	_ parsers.Stateful = (*Parser)(nil)
)

// New returns a parser configured by opts.
func New(opts parsers.Options) (parsers.Parser, error) {
	opts = opts.WithDefaults()
	p := &Parser{
		opts:      opts,
		stepField: opts.StepField,
		last:      map[string]int64{},
	}
	if p.stepField == "" {
		p.stepField = DefaultStepField
	}
	if opts.TimeField != "" {
		p.timeFields = []string{opts.TimeField}
		p.explicitTm = true
	} else {
		p.timeFields = defaultTimeFields
	}
	return p, nil
}

// state is the persisted form of the parser's memory: the last step used per
// run, so auto-numbered lines continue where they left off after a restart.
type state struct {
	Last map[string]int64 `json:"last,omitempty"`
}

// State implements parsers.Stateful.
func (p *Parser) State() ([]byte, error) {
	if len(p.last) == 0 {
		return nil, nil
	}
	if n, ok := p.last[""]; ok && len(p.last) == 1 {
		// The common case, a file of one run, without the reflection of
		// encoding/json: State is taken after every chunk.
		b := make([]byte, 0, 32)
		b = append(b, `{"last":{"":`...)
		b = strconv.AppendInt(b, n, 10)
		return append(b, "}}"...), nil
	}
	return json.Marshal(state{Last: p.last})
}

// Restore implements parsers.Stateful.
func (p *Parser) Restore(b []byte) error {
	p.last = map[string]int64{}
	if len(b) == 0 {
		return nil
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("restore jsonl state: %w", err)
	}
	for k, v := range s.Last {
		p.last[k] = v
	}
	return nil
}

// line holds what the scan of one line found besides plain values.
type line struct {
	step    int64
	hasStep bool
	time    int64
	hasTime bool
	timeKey int // index into timeFields of the field used, for priority
}

// Parse implements parsers.Parser.
func (p *Parser) Parse(dst []event.Event, rec event.Record) ([]event.Event, error) {
	data := rec.Data
	if p.opts.MaxRecordBytes > 0 && len(data) > p.opts.MaxRecordBytes {
		return dst, &parsers.RecordError{Line: rec.Line, Err: fmt.Errorf("%w: %d bytes (limit %d)", parsers.ErrTooLong, len(data), p.opts.MaxRecordBytes)}
	}
	if rec.Line == 1 {
		data = bytes.TrimPrefix(data, utf8BOM) // Windows tools start files with one
	}
	if len(data) > 0 && (data[0] == 0 || data[len(data)-1] == 0) {
		// A zero-filled region: what a crash leaves where a writer had
		// extended the file but not yet written. Skip it and parse what
		// follows; say so once per file.
		trimmed := bytes.Trim(data, "\x00")
		if !p.padded {
			p.padded = true
			p.opts.Notice(rec.Line, parsers.NoticeNULPadding,
				fmt.Sprintf("%d NUL bytes skipped (a zero-filled region, as a crash leaves); the data around them is read", len(data)-len(trimmed)))
		}
		data = trimmed
	}
	p.sc.reset(data)
	switch p.sc.peek() {
	case '{':
	default:
		if p.sc.atEnd() {
			return dst, nil // blank line
		}
		return dst, &parsers.RecordError{Line: rec.Line, Err: parsers.ErrNotObject}
	}
	p.prefix = p.prefix[:0] // a bad record may have left a nested prefix behind
	p.points = p.points[:0]
	p.strs = p.strs[:0]
	p.tags = nil
	p.config = nil
	p.status = ""
	p.runName = ""
	ln := line{timeKey: len(p.timeFields)}
	if err := p.object(&ln, 0, rec.Line); err != nil {
		return dst, err
	}
	if !p.sc.atEnd() {
		return dst, &parsers.RecordError{Line: rec.Line, Err: fmt.Errorf("%w: %v", parsers.ErrSyntax, errTrailing)}
	}
	if !ln.hasStep {
		ln.step = p.last[p.runName] + 1
		if _, seen := p.last[p.runName]; !seen {
			ln.step = 1 // the SDK's counter starts at 0, so its first auto step is 1
		}
	}
	if ln.hasStep || len(p.points) > 0 || len(p.strs) > 0 {
		p.last[p.runName] = ln.step
	}
	if !ln.hasTime {
		ln.time = p.opts.Now().UnixMilli()
	}
	base := event.Event{Run: p.runName, Pos: rec.Pos, Step: ln.step, Time: ln.time}
	if len(p.points) > 0 {
		ev := base
		ev.Kind = event.KindMetrics
		ev.Points = append([]event.Point(nil), p.points...)
		dst = append(dst, ev)
	}
	for _, sp := range p.strs {
		ev := base
		ev.Kind = event.KindData
		ev.Type = event.DataStringSeries
		ev.Name = sp.name
		ev.Text = sp.value
		dst = append(dst, ev)
	}
	if len(p.tags) > 0 {
		ev := base
		ev.Kind = event.KindTags
		ev.Tags = p.tags
		dst = append(dst, ev)
	}
	if len(p.config) > 0 {
		ev := base
		ev.Kind = event.KindConfig
		ev.Config = p.config
		dst = append(dst, ev)
	}
	if p.status != "" {
		ev := base
		ev.Kind = event.KindStatus
		ev.Status = p.status
		if !ln.hasTime {
			ev.Time = 0 // the agent finishes the run at its last data time
		}
		dst = append(dst, ev)
	}
	return dst, nil
}

func (p *Parser) recErr(lineNo int64, field string, err error) error {
	if !errors.Is(err, parsers.ErrBadStep) && !errors.Is(err, parsers.ErrBadTime) &&
		!errors.Is(err, parsers.ErrBadValue) && !errors.Is(err, parsers.ErrBadRunName) {
		err = fmt.Errorf("%w: %v", parsers.ErrSyntax, err)
	}
	return &parsers.RecordError{Line: lineNo, Field: field, Err: err}
}

// object walks an object whose keys are prefixed by p.prefix.
func (p *Parser) object(ln *line, depth int, lineNo int64) error {
	if depth > maxDepth {
		return p.recErr(lineNo, "", errDepth)
	}
	sc := &p.sc
	sc.pos++ // '{'
	if sc.peek() == '}' {
		sc.pos++
		return nil
	}
	for {
		key, err := sc.str()
		if err != nil {
			return p.recErr(lineNo, "", err)
		}
		plen := len(p.prefix)
		if plen > 0 {
			p.prefix = append(p.prefix, '/')
		}
		p.prefix = append(p.prefix, key...)
		if err := sc.expect(':'); err != nil {
			return p.recErr(lineNo, string(p.prefix), err)
		}
		if err := p.member(ln, depth, plen == 0, lineNo); err != nil {
			return err
		}
		p.prefix = p.prefix[:plen]
		switch sc.peek() {
		case ',':
			sc.pos++
		case '}':
			sc.pos++
			return nil
		default:
			return p.recErr(lineNo, "", sc.endErr())
		}
	}
}

// member handles the value of the key in p.prefix.
func (p *Parser) member(ln *line, depth int, top bool, lineNo int64) error {
	sc := &p.sc
	name := p.prefix
	if top {
		switch {
		case string(name) == p.stepField:
			return p.stepValue(ln, lineNo)
		case p.opts.RunField != "" && string(name) == p.opts.RunField:
			return p.runValue(lineNo)
		case string(name) == keyTags:
			return p.tagsValue(lineNo)
		case string(name) == keyConfig:
			return p.configValue(lineNo)
		case string(name) == keyStatus:
			return p.statusValue(lineNo)
		}
		for i, tf := range p.timeFields {
			if string(name) == tf && i < ln.timeKey {
				handled, err := p.timeValue(ln, i, lineNo)
				if handled || err != nil {
					return err
				}
				break
			}
		}
	}
	switch sc.kind() {
	case vNumber:
		v, err := sc.number()
		if err != nil {
			return p.recErr(lineNo, string(name), err)
		}
		p.addPoint(v)
		return nil
	case vObject:
		return p.object(ln, depth+1, lineNo)
	case vString:
		s, err := sc.str()
		if err != nil {
			return p.recErr(lineNo, string(name), err)
		}
		if len(s) > maxStringValue {
			p.opts.OnSkip(parsers.SkipString)
			return nil
		}
		if !parsers.ValidName(string(name)) {
			p.opts.OnSkip(parsers.SkipOther)
			return nil
		}
		p.strs = append(p.strs, strPoint{name: p.intern(name), value: string(s)})
		return nil
	case vBool:
		p.opts.OnSkip(parsers.SkipBool)
	case vNull:
		p.opts.OnSkip(parsers.SkipNull)
	case vArray:
		p.opts.OnSkip(parsers.SkipArray)
	}
	if err := sc.skip(depth); err != nil {
		return p.recErr(lineNo, string(name), err)
	}
	return nil
}

func (p *Parser) addPoint(v float64) {
	name := p.prefix
	if !parsers.ValidName(string(name)) {
		p.opts.OnSkip(parsers.SkipOther)
		return
	}
	p.points = append(p.points, event.Point{Name: p.intern(name), Value: v})
}

// intern returns a string equal to b, shared between lines and between
// files (ten thousand files of one training setup repeat the same metric
// names), so repeated names cost no allocation and little memory.
func (p *Parser) intern(b []byte) string { return names.intern(b) }

// internTable is the process-wide name table, bounded so unbounded key
// cardinality cannot grow it without limit.
type internTable struct {
	mu sync.RWMutex
	m  map[string]string
}

var names = &internTable{m: map[string]string{}}

func (t *internTable) intern(b []byte) string {
	t.mu.RLock()
	s, ok := t.m[string(b)]
	t.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	t.mu.Lock()
	if len(t.m) < maxInterned {
		t.m[s] = s
	}
	t.mu.Unlock()
	return s
}

func (p *Parser) stepValue(ln *line, lineNo int64) error {
	sc := &p.sc
	field := p.stepField
	var (
		step int64
		err  error
	)
	switch sc.kind() {
	case vNumber:
		if sc.literal("NaN") || sc.literal("Infinity") || sc.literal("-Infinity") {
			err = fmt.Errorf("%w: not a finite number", parsers.ErrBadStep)
			break
		}
		var tok []byte
		if tok, err = sc.numberToken(); err == nil {
			// Exactly: steps above 2^53 do not survive a float64.
			step, err = parsers.StepFromString(unsafe.String(unsafe.SliceData(tok), len(tok)))
		}
	case vString:
		var s []byte
		if s, err = sc.str(); err == nil {
			step, err = parsers.StepFromString(string(s))
		}
	case vNull:
		// "step": null means "no step": the line takes the next one.
		return p.skipValue(lineNo, field)
	default:
		if err = sc.skip(0); err == nil {
			err = fmt.Errorf("%w: not a number", parsers.ErrBadStep)
		}
	}
	if err != nil {
		return p.recErr(lineNo, field, err)
	}
	ln.step, ln.hasStep = step, true
	return nil
}

// timeValue reads a time field. It reports handled=false when an
// auto-detected field turns out not to hold a timestamp, so the caller
// treats it as an ordinary value.
func (p *Parser) timeValue(ln *line, idx int, lineNo int64) (bool, error) {
	sc := &p.sc
	field := p.timeFields[idx]
	save := sc.pos
	var (
		ms  int64
		err error
	)
	switch sc.kind() {
	case vNumber:
		var v float64
		if v, err = sc.number(); err == nil {
			if !p.explicitTm && !(v >= minAutoTime) {
				sc.pos = save
				return false, nil
			}
			ms, err = parsers.TimeFromNumber(v)
		}
	case vString:
		var s []byte
		if s, err = sc.str(); err == nil {
			ms, err = parsers.TimeFromString(string(s))
			if err != nil && !p.explicitTm {
				sc.pos = save
				return false, nil
			}
		}
	default:
		if p.explicitTm {
			if err = sc.skip(0); err == nil {
				err = fmt.Errorf("%w: not a number or a date", parsers.ErrBadTime)
			}
		} else {
			return false, nil
		}
	}
	if err != nil {
		return true, p.recErr(lineNo, field, err)
	}
	ln.time, ln.hasTime, ln.timeKey = ms, true, idx
	return true, nil
}

func (p *Parser) runValue(lineNo int64) error {
	sc := &p.sc
	field := p.opts.RunField
	switch sc.kind() {
	case vString:
		s, err := sc.str()
		if err != nil {
			return p.recErr(lineNo, field, err)
		}
		name := strings.TrimSpace(string(s))
		if name == "" {
			return p.recErr(lineNo, field, fmt.Errorf("%w: empty", parsers.ErrBadRunName))
		}
		p.runName = name
	case vNumber:
		v, err := sc.number()
		if err != nil {
			return p.recErr(lineNo, field, err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return p.recErr(lineNo, field, fmt.Errorf("%w: %v", parsers.ErrBadRunName, v))
		}
		p.runName = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		if err := sc.skip(0); err != nil {
			return p.recErr(lineNo, field, err)
		}
		return p.recErr(lineNo, field, fmt.Errorf("%w: not a string or number", parsers.ErrBadRunName))
	}
	return nil
}

func (p *Parser) skipValue(lineNo int64, field string) error {
	if err := p.sc.skip(0); err != nil {
		return p.recErr(lineNo, field, err)
	}
	return nil
}

func (p *Parser) tagsValue(lineNo int64) error {
	v, err := p.sc.any(1)
	if err != nil {
		return p.recErr(lineNo, keyTags, err)
	}
	list, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			list = []any{s}
		} else {
			return p.recErr(lineNo, keyTags, fmt.Errorf("%w: want a list of strings", parsers.ErrBadValue))
		}
	}
	for _, t := range list {
		s, ok := t.(string)
		if !ok || strings.TrimSpace(s) == "" {
			return p.recErr(lineNo, keyTags, fmt.Errorf("%w: want a list of non-empty strings", parsers.ErrBadValue))
		}
		p.tags = append(p.tags, s)
	}
	return nil
}

func (p *Parser) configValue(lineNo int64) error {
	v, err := p.sc.any(1)
	if err != nil {
		return p.recErr(lineNo, keyConfig, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return p.recErr(lineNo, keyConfig, fmt.Errorf("%w: want an object", parsers.ErrBadValue))
	}
	p.config = m
	return nil
}

func (p *Parser) statusValue(lineNo int64) error {
	v, err := p.sc.any(1)
	if err != nil {
		return p.recErr(lineNo, keyStatus, err)
	}
	s, _ := v.(string)
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "completed", "complete", "finished", "success", "succeeded":
		p.status = event.StatusCompleted
	case "failed", "failure", "error", "crashed":
		p.status = event.StatusFailed
	case "terminated", "killed", "cancelled", "canceled":
		p.status = event.StatusTerminated
	case "running":
		p.status = event.StatusRunning
	default:
		return p.recErr(lineNo, keyStatus, fmt.Errorf("%w: %q (want completed or failed)", parsers.ErrBadValue, s))
	}
	return nil
}
