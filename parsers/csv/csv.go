// Package csv is the line format for delimited metric tables: a header row
// naming the columns, then one row per logging call. It is registered as
// "csv".
//
// What the parser accepts:
//   - a header row (the first line that is not a comment); column names are
//     trimmed, because YOLOv5 pads them with spaces;
//   - comma, tab or semicolon, detected from the header line by counting the
//     candidates outside quotes (ties and none: comma), unless the
//     "delimiter" parameter fixes it;
//   - RFC 4180 quoted fields ("" is a quote inside a quoted field); a quoted
//     field may hold a newline: the parser buffers the incomplete record
//     across Parse calls (no events until the record is complete) and keeps
//     the buffer in its State, up to MaxRecordBytes (default 64 KiB), after
//     which the record is rejected as too long;
//   - CRLF and mixed line endings (a trailing '\r' is stripped) and a UTF-8
//     byte order mark at the start of a record;
//   - comment lines starting with the "comment" parameter (default "#"; set
//     it to "" to disable). A comment before the header whose text is a JSON
//     object (Stable-Baselines3's monitor.csv starts with
//     #{"t_start": ..., "env_id": ...}) becomes a KindConfig event whose keys
//     are prefixed with the "comment_prefix" parameter (default "monitor/"),
//     and its numeric "t_start" feeds the "offset" time mode;
//   - blank lines, which are skipped.
//
// How a row becomes events:
//   - the step comes from Options.StepField or, when that is empty, from the
//     first column named step, global_step, epoch or iter (case-insensitive,
//     in that order of preference; the "step_candidates" parameter replaces
//     this list); with none of them, or with the auto_step parameter set to
//     "true", the step is a counter per run that starts at 1 for the first
//     data row, like the mlop SDK's auto step. A step cell that is empty,
//     fractional or negative makes the row bad (ErrBadStep);
//   - a configured StepField or RunField that the header lacks makes the
//     whole file unusable: the header record is rejected once with a
//     *parsers.ColumnError (wrapping parsers.ErrUnusable and ErrBadStep or
//     ErrBadRunName) that names the column and the header's columns, and
//     the file's rows are then dropped without an error each (a parser
//     restored from a saved state reports it once more, at its first row);
//   - the time: see the "time" parameter below; a row without a time gets
//     Options.Now();
//   - an empty cell is "no point" (Lightning writes train and validation
//     metrics on different rows), never zero;
//   - a numeric cell (ints, floats, scientific notation, nan, inf, -inf in
//     any case) becomes a point of one KindMetrics event per row; the step,
//     time and run columns do not become points, every other column does
//     (Lightning's epoch, for instance);
//   - true/false (any case) is dropped and reported as parsers.SkipBool,
//     None/null as parsers.SkipNull, like the SDK drops booleans;
//   - any other cell becomes a string-series KindData event (one per cell,
//     after the row's metrics event) when it is at most 200 bytes, as the
//     SDK does; a longer one is dropped and reported as parsers.SkipString.
//     With the "strings" parameter set to "skip", every such cell is dropped
//     and reported;
//   - a row with more cells than the header is bad (ErrSyntax); a row with
//     fewer has its missing cells empty;
//   - a row equal to the header (a logger that restarted and appended a new
//     header) is taken as the header again, never as data; the auto-step
//     counters keep counting so that the new rows do not overwrite the old
//     points on the server;
//   - Options.RunField names a column whose value selects the run
//     (Event.Run); each run has its own auto-step counter; an empty run cell
//     makes the row bad (ErrBadRunName).
//
// Parameters (Options.Params):
//
//	delimiter       ",", ";", "tab" (or "\t"), or any other single byte; default: detect
//	comment         comment prefix; default "#"; "" disables comments
//	comment_prefix  key prefix for the JSON comment's config; default "monitor/"
//	time            auto | epoch | offset | metric (alias: none); default auto
//	t_start         seconds since the epoch for "offset" when the file has no JSON comment
//	strings         series | skip; default series
//	auto_step       "true": ignore step columns and number the rows
//	step_candidates the step columns to look for when Options.StepField is
//	                empty, in order of preference, separated by "|"
//	                ("time/total_timesteps|total_timesteps|step");
//	                matched case-insensitively; none present: the rows are
//	                numbered; default "step|global_step|epoch|iter"
//
// The time column is Options.TimeField or, when that is empty, the first
// column named time, timestamp, _timestamp, ts, created_at or wall time
// (case-insensitive). Its treatment depends on the "time" parameter:
//   - auto: a numeric cell of at least 1e9 (seconds after 2001, or a larger
//     unit) is the row's time (parsers.TimeFromNumber) and not a point; a
//     smaller number is an ordinary point (Ultralytics' "time" is cumulative
//     seconds) and the row gets the read time; text that parsers.TimeFromString
//     accepts (PyTorch Lightning 0.6's created_at "2020-02-14 21:53:05.788645")
//     is the row's time; other text is an ordinary cell;
//   - epoch: the cell must be a timestamp; one that is not makes the row bad
//     (ErrBadTime); an empty cell gets the read time;
//   - offset: the cell is seconds since t_start (Stable-Baselines3's monitor
//     column "t"); the row's time is t_start + cell, and the cell is also kept
//     as a point because elapsed seconds are worth a chart; without a known
//     t_start the row gets the read time;
//   - metric: there is no time column: every column is data and every row
//     gets the read time.
//
// State and file generations: the parser's State holds the header, the
// delimiter, the auto-step counters, the JSON comment's t_start and any
// incomplete quoted record, so a restart in the middle of a file still knows
// its columns. When a file is truncated and rewritten (loggers that rewrite
// the whole CSV each epoch), the agent detects the new file generation and
// creates a fresh parser or calls Restore(nil): the first non-comment line a
// fresh parser sees is the header.
package csv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

func init() {
	parsers.Register("csv", New)
}

// Defaults and limits.
const (
	// MaxStringLen is the longest text cell sent as a string series; longer
	// ones are skipped, as the mlop SDK skips them.
	MaxStringLen = 200
	// DefaultMaxPartial bounds a quoted record spanning several lines when
	// Options.MaxRecordBytes is 0, so a stray quote cannot swallow the file.
	DefaultMaxPartial = 64 << 10
	// DefaultCommentPrefix is the key prefix of the config taken from a JSON
	// comment before the header.
	DefaultCommentPrefix = "monitor/"
)

// Time modes, the values of the "time" parameter.
const (
	TimeAuto   = "auto"
	TimeEpoch  = "epoch"
	TimeOffset = "offset"
	TimeMetric = "metric"
)

// stepCandidates and timeCandidates are the default step and time columns,
// in order of preference.
var (
	stepCandidates = []string{"step", "global_step", "epoch", "iter"}
	timeCandidates = []string{"time", "timestamp", "_timestamp", "ts", "created_at", "wall time"}
)

// plausibleEpoch is the smallest number taken as an epoch timestamp in auto
// mode: 1e9 seconds is September 2001, far above any elapsed-seconds column.
const plausibleEpoch = 1e9

var (
	bom = []byte("\xEF\xBB\xBF")
)

// column roles, computed from the header.
const (
	roleData   uint8 = iota // a metric or string cell
	roleIgnore              // unnamed column
	roleStep
	roleTime
	roleRun
)

// Parser decodes one CSV file. It is not safe for concurrent use; the agent
// gives each file its own parser.
type Parser struct {
	opts parsers.Options

	// configuration, fixed by New
	fixedDelim byte   // 0: detect from the header line
	comment    []byte // nil: no comment lines
	cfgPrefix  string
	timeMode   string
	skipText   bool
	autoStep   bool
	stepCands  []string // default step columns, in order of preference
	tStartCfg  float64
	hasTStartC bool
	maxPartial int

	// state, saved by State
	header      []string
	delim       byte
	steps       map[string]int64
	partial     []byte
	inPartial   bool
	partialLine int64
	tStart      float64
	hasTStart   bool

	// derived from the header
	roles   []uint8
	stepIdx int
	timeIdx int
	runIdx  int
	colErr  *parsers.ColumnError // non-nil: a configured column is missing, no row is usable
	colSaid bool                 // colErr has been returned once
	runs    map[string]string

	// scratch, reused between rows
	fields  [][]byte
	scratch []byte
	spans   [][2]int
}

var (
	_ parsers.Parser   = (*Parser)(nil)
	_ parsers.Stateful = (*Parser)(nil)
)

// New makes a CSV parser; it is the format's parsers.Factory.
func New(opts parsers.Options) (parsers.Parser, error) {
	return NewParser(opts)
}

// NewParser makes a CSV parser with the options and parameters described
// in the package documentation.
func NewParser(opts parsers.Options) (*Parser, error) {
	opts = opts.WithDefaults()
	p := &Parser{
		opts:      opts,
		comment:   []byte("#"),
		cfgPrefix: DefaultCommentPrefix,
		timeMode:  TimeAuto,
		stepCands: stepCandidates,
	}
	for k, v := range opts.Params {
		switch k {
		case "delimiter":
			d, err := parseDelimiter(v)
			if err != nil {
				return nil, err
			}
			p.fixedDelim = d
		case "comment":
			if v == "" {
				p.comment = nil
			} else {
				p.comment = []byte(v)
			}
		case "comment_prefix":
			p.cfgPrefix = v
		case "time":
			switch v {
			case TimeAuto, TimeEpoch, TimeOffset, TimeMetric:
				p.timeMode = v
			case "none":
				p.timeMode = TimeMetric
			default:
				return nil, fmt.Errorf("csv: parameter time: %q is not auto, epoch, offset or metric", v)
			}
		case "t_start":
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				return nil, fmt.Errorf("csv: parameter t_start: %q is not a time in seconds", v)
			}
			p.tStartCfg, p.hasTStartC = f, true
		case "strings":
			switch v {
			case "series":
				p.skipText = false
			case "skip":
				p.skipText = true
			default:
				return nil, fmt.Errorf("csv: parameter strings: %q is not series or skip", v)
			}
		case "auto_step":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("csv: parameter auto_step: %q is not a boolean", v)
			}
			p.autoStep = b
		case "step_candidates":
			names, err := parseNames(v)
			if err != nil {
				return nil, fmt.Errorf("csv: parameter step_candidates: %w", err)
			}
			p.stepCands = names
		default:
			return nil, fmt.Errorf("csv: unknown parameter %q", k)
		}
	}
	p.maxPartial = opts.MaxRecordBytes
	if p.maxPartial <= 0 {
		p.maxPartial = DefaultMaxPartial
	}
	p.reset()
	return p, nil
}

func parseDelimiter(v string) (byte, error) {
	switch v {
	case "tab", `\t`, "\t":
		return '\t', nil
	}
	if len(v) != 1 || v[0] == '"' || v[0] == '\n' || v[0] == '\r' || v[0] >= 0x80 {
		return 0, fmt.Errorf("csv: parameter delimiter: %q is not a single ASCII character other than a quote or newline", v)
	}
	return v[0], nil
}

// parseNames splits a "|"-separated list of column names; spaces around a
// name are trimmed (as they are in the header) and none may be empty.
func parseNames(v string) ([]string, error) {
	parts := strings.Split(v, "|")
	out := make([]string, 0, len(parts))
	for _, n := range parts {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, fmt.Errorf("%q has an empty column name (names are separated by \"|\")", v)
		}
		out = append(out, n)
	}
	return out, nil
}

// reset forgets everything learnt from the file: the parser is as new.
func (p *Parser) reset() {
	p.header = nil
	p.delim = 0
	p.steps = map[string]int64{}
	p.partial = p.partial[:0]
	p.inPartial = false
	p.partialLine = 0
	p.tStart, p.hasTStart = p.tStartCfg, p.hasTStartC
	p.roles = nil
	p.stepIdx, p.timeIdx, p.runIdx = -1, -1, -1
	p.colErr, p.colSaid = nil, false
	p.runs = map[string]string{}
}

// Parse implements parsers.Parser.
func (p *Parser) Parse(dst []event.Event, rec event.Record) ([]event.Event, error) {
	data := rec.Data
	if n := len(data); n > 0 && data[n-1] == '\r' {
		data = data[:n-1]
	}
	line := rec.Line
	if p.inPartial {
		p.partial = append(p.partial, '\n')
		p.partial = append(p.partial, data...)
		data = p.partial
		line = p.partialLine
		if len(data) > p.maxPartial {
			p.partial = p.partial[:0]
			p.inPartial = false
			return dst, &parsers.RecordError{Line: line, Err: fmt.Errorf("%w: quoted field open for more than %d bytes", parsers.ErrTooLong, p.maxPartial)}
		}
	} else {
		data = bytes.TrimPrefix(data, bom)
		if len(data) == 0 {
			return dst, nil
		}
		if p.comment != nil && bytes.HasPrefix(data, p.comment) {
			return p.parseComment(dst, rec, data[len(p.comment):]), nil
		}
		if p.opts.MaxRecordBytes > 0 && len(data) > p.opts.MaxRecordBytes {
			return dst, &parsers.RecordError{Line: line, Err: fmt.Errorf("%w: %d bytes", parsers.ErrTooLong, len(data))}
		}
	}

	if p.header == nil && p.fixedDelim == 0 {
		p.delim = detectDelimiter(data)
	} else if p.header == nil {
		p.delim = p.fixedDelim
	}
	complete, err := p.split(data)
	if err != nil {
		p.partial = p.partial[:0]
		p.inPartial = false
		return dst, &parsers.RecordError{Line: line, Err: err}
	}
	if !complete {
		if !p.inPartial {
			p.partial = append(p.partial[:0], data...)
			p.inPartial = true
			p.partialLine = rec.Line
		}
		return dst, nil
	}
	// The fields may point into p.partial: it is only truncated here and
	// not written again before this call returns.
	p.partial = p.partial[:0]
	p.inPartial = false

	if p.header == nil {
		p.setHeader(p.fields)
		if p.colErr != nil {
			p.colSaid = true
			return dst, &parsers.RecordError{Line: line, Err: p.colErr}
		}
		return dst, nil
	}
	if p.isHeader(p.fields) {
		return dst, nil
	}
	return p.parseRow(dst, rec, line)
}

// parseComment handles a comment line; text follows the comment prefix.
func (p *Parser) parseComment(dst []event.Event, rec event.Record, text []byte) []event.Event {
	if p.header != nil {
		return dst
	}
	text = bytes.TrimSpace(text)
	if len(text) == 0 || text[0] != '{' {
		return dst
	}
	var obj map[string]any
	if err := json.Unmarshal(text, &obj); err != nil || len(obj) == 0 {
		return dst
	}
	cfg := make(map[string]any, len(obj))
	for k, v := range obj {
		cfg[p.cfgPrefix+k] = v
	}
	if ts, ok := obj["t_start"].(float64); ok && ts >= 0 && !math.IsInf(ts, 0) {
		p.tStart, p.hasTStart = ts, true
	}
	return append(dst, event.Event{Kind: event.KindConfig, Pos: rec.Pos, Config: cfg})
}

// detectDelimiter picks the most frequent of comma, tab and semicolon outside
// quotes; comma wins ties and lines without any.
func detectDelimiter(line []byte) byte {
	var comma, tab, semi int
	quoted := false
	for _, c := range line {
		switch c {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				comma++
			}
		case '\t':
			if !quoted {
				tab++
			}
		case ';':
			if !quoted {
				semi++
			}
		}
	}
	switch {
	case tab > comma && tab >= semi:
		return '\t'
	case semi > comma && semi > tab:
		return ';'
	default:
		return ','
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// trim removes spaces and tabs around an unquoted cell, except the
// delimiter itself.
func (p *Parser) trim(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) && b[0] != p.delim {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) && b[len(b)-1] != p.delim {
		b = b[:len(b)-1]
	}
	return b
}

// split cuts a record into p.fields. complete is false when a quoted field
// is still open at the end of the data (it continues on the next line).
func (p *Parser) split(line []byte) (complete bool, err error) {
	p.fields = p.fields[:0]
	d := p.delim
	if bytes.IndexByte(line, '"') < 0 {
		for {
			i := bytes.IndexByte(line, d)
			if i < 0 {
				p.fields = append(p.fields, p.trim(line))
				return true, nil
			}
			p.fields = append(p.fields, p.trim(line[:i]))
			line = line[i+1:]
		}
	}
	return p.splitQuoted(line)
}

// splitQuoted is the slow path of split for lines holding a quote: every
// field is copied into p.scratch, unescaped.
func (p *Parser) splitQuoted(line []byte) (bool, error) {
	p.scratch = p.scratch[:0]
	p.spans = p.spans[:0]
	d, n, i := p.delim, len(line), 0
	for {
		j := i
		for j < n && isSpace(line[j]) && line[j] != d {
			j++
		}
		if j < n && line[j] == '"' {
			start := len(p.scratch)
			k := j + 1
			for {
				q := bytes.IndexByte(line[k:], '"')
				if q < 0 {
					return false, nil
				}
				p.scratch = append(p.scratch, line[k:k+q]...)
				k += q + 1
				if k < n && line[k] == '"' {
					p.scratch = append(p.scratch, '"')
					k++
					continue
				}
				break
			}
			for k < n && isSpace(line[k]) && line[k] != d {
				k++
			}
			p.spans = append(p.spans, [2]int{start, len(p.scratch)})
			if k == n {
				break
			}
			if line[k] != d {
				return false, fmt.Errorf("%w: unexpected %q after a quoted field", parsers.ErrSyntax, line[k])
			}
			i = k + 1
			if i == n {
				p.spans = append(p.spans, [2]int{len(p.scratch), len(p.scratch)})
				break
			}
			continue
		}
		e := bytes.IndexByte(line[i:], d)
		f := line[i:]
		if e >= 0 {
			f = line[i : i+e]
		}
		start := len(p.scratch)
		p.scratch = append(p.scratch, p.trim(f)...)
		p.spans = append(p.spans, [2]int{start, len(p.scratch)})
		if e < 0 {
			break
		}
		i += e + 1
	}
	for _, s := range p.spans {
		p.fields = append(p.fields, p.scratch[s[0]:s[1]:s[1]])
	}
	return true, nil
}

// setHeader takes the fields as the column names and works out the roles.
func (p *Parser) setHeader(fields [][]byte) {
	p.header = make([]string, len(fields))
	for i, f := range fields {
		// Names go to the server as JSON and into the saved state, both
		// of which need valid UTF-8.
		p.header[i] = strings.ToValidUTF8(string(bytes.TrimSpace(f)), "\uFFFD")
	}
	p.deriveRoles()
}

// deriveRoles computes the column roles from p.header; Restore calls it too.
func (p *Parser) deriveRoles() {
	p.roles = make([]uint8, len(p.header))
	p.stepIdx, p.timeIdx, p.runIdx = -1, -1, -1
	p.colErr = nil
	for i, name := range p.header {
		if !parsers.ValidName(name) {
			p.roles[i] = roleIgnore
		}
	}
	find := func(name string) int {
		for i, h := range p.header {
			if h == name {
				return i
			}
		}
		return -1
	}
	findFold := func(cands []string) int {
		for _, c := range cands {
			for i, h := range p.header {
				if strings.EqualFold(h, c) && p.roles[i] == roleData {
					return i
				}
			}
		}
		return -1
	}
	if f := p.opts.RunField; f != "" {
		if p.runIdx = find(f); p.runIdx >= 0 {
			p.roles[p.runIdx] = roleRun
		} else {
			p.colErr = &parsers.ColumnError{Role: "run", Column: f, Header: p.header}
		}
	}
	switch {
	case p.opts.StepField != "":
		// A step column named by the user is required: numbering the rows
		// instead would put the points at steps the user did not ask for.
		p.stepIdx = find(p.opts.StepField)
		if p.stepIdx < 0 && p.colErr == nil {
			p.colErr = &parsers.ColumnError{Role: "step", Column: p.opts.StepField, Header: p.header}
		}
	case !p.autoStep:
		p.stepIdx = findFold(p.stepCands)
	}
	if p.stepIdx >= 0 {
		p.roles[p.stepIdx] = roleStep
	}
	if p.timeMode != TimeMetric {
		if f := p.opts.TimeField; f != "" {
			p.timeIdx = find(f)
		} else {
			p.timeIdx = findFold(timeCandidates)
		}
		if p.timeIdx >= 0 && p.roles[p.timeIdx] == roleData {
			p.roles[p.timeIdx] = roleTime
		} else {
			p.timeIdx = -1
		}
	}
}

// isHeader reports whether a row repeats the header.
func (p *Parser) isHeader(fields [][]byte) bool {
	if len(fields) != len(p.header) || !sameName(fields[0], p.header[0]) {
		return false
	}
	for i, f := range fields[1:] {
		if !sameName(f, p.header[i+1]) {
			return false
		}
	}
	return true
}

// sameName reports whether a cell spells a column name as setHeader stores it.
func sameName(cell []byte, name string) bool {
	cell = bytes.TrimSpace(cell)
	if string(cell) == name {
		return true
	}
	return !utf8.Valid(cell) && strings.ToValidUTF8(string(cell), "\uFFFD") == name
}

// cell returns the i-th field of the current row, or nil past its end.
func (p *Parser) cell(i int) []byte {
	if i < len(p.fields) {
		return p.fields[i]
	}
	return nil
}

// parseRow turns the data row in p.fields into events.
func (p *Parser) parseRow(dst []event.Event, rec event.Record, line int64) ([]event.Event, error) {
	if p.colErr != nil {
		// The file does not fit the configuration: said once (at the
		// header, or at the first row after a restore), then every row is
		// dropped without another error.
		if p.colSaid {
			return dst, nil
		}
		p.colSaid = true
		return dst, &parsers.RecordError{Line: line, Err: p.colErr}
	}
	if len(p.fields) > len(p.header) {
		return dst, &parsers.RecordError{Line: line, Err: fmt.Errorf("%w: %d cells, the header has %d", parsers.ErrSyntax, len(p.fields), len(p.header))}
	}

	run := ""
	if p.opts.RunField != "" {
		c := p.cell(p.runIdx)
		if len(bytes.TrimSpace(c)) == 0 {
			return dst, &parsers.RecordError{Line: line, Field: p.opts.RunField, Err: fmt.Errorf("%w: empty", parsers.ErrBadRunName)}
		}
		var ok bool
		if run, ok = p.runs[string(c)]; !ok {
			// Run names are saved in the state as JSON keys.
			run = strings.ToValidUTF8(string(c), "\uFFFD")
			p.runs[string(c)] = run
		}
	}

	var step int64
	auto := false
	switch {
	case p.stepIdx >= 0:
		c := p.cell(p.stepIdx)
		var err error
		if step, err = parseStep(c); err != nil {
			return dst, &parsers.RecordError{Line: line, Field: p.header[p.stepIdx], Err: err}
		}
	default:
		auto = true
		step = p.steps[run] + 1
	}

	var ts int64
	hasTime := false
	timeIsPoint := false
	if p.timeIdx >= 0 {
		c := p.cell(p.timeIdx)
		var err error
		ts, hasTime, timeIsPoint, err = p.parseTime(c)
		if err != nil {
			return dst, &parsers.RecordError{Line: line, Field: p.header[p.timeIdx], Err: err}
		}
	}
	if !hasTime {
		ts = p.opts.Now().UnixMilli()
	}
	if auto {
		p.steps[run] = step
	}

	var pts []event.Point
	first := len(dst)
	dst = append(dst, event.Event{}) // the metrics event, filled in below
	for i, c := range p.fields {
		role := p.roles[i]
		if role != roleData && !(role == roleTime && timeIsPoint) {
			continue
		}
		if len(c) == 0 {
			continue
		}
		if v, ok := parseFloat(c); ok {
			if pts == nil {
				pts = make([]event.Point, 0, len(p.fields)-i)
			}
			pts = append(pts, event.Point{Name: p.header[i], Value: v})
			continue
		}
		dst = p.textCell(dst, rec, run, step, ts, p.header[i], c)
	}
	if pts == nil {
		return append(dst[:first], dst[first+1:]...), nil
	}
	dst[first] = event.Event{Kind: event.KindMetrics, Run: run, Pos: rec.Pos, Step: step, Time: ts, Points: pts}
	return dst, nil
}

// textCell handles a non-numeric data cell.
func (p *Parser) textCell(dst []event.Event, rec event.Record, run string, step, ts int64, name string, c []byte) []event.Event {
	switch {
	case isBool(c):
		p.opts.OnSkip(parsers.SkipBool)
	case isNull(c):
		p.opts.OnSkip(parsers.SkipNull)
	case p.skipText || len(c) > MaxStringLen:
		p.opts.OnSkip(parsers.SkipString)
	default:
		dst = append(dst, event.Event{
			Kind: event.KindData, Run: run, Pos: rec.Pos, Step: step, Time: ts,
			Name: name, Type: event.DataStringSeries, Text: string(c),
		})
	}
	return dst
}

// parseTime interprets the time cell by the time mode. isPoint says the cell
// is also (auto: instead) an ordinary point.
func (p *Parser) parseTime(c []byte) (ts int64, ok, isPoint bool, err error) {
	if len(c) == 0 {
		return 0, false, false, nil
	}
	v, num := parseFloat(c)
	switch p.timeMode {
	case TimeEpoch:
		if num {
			ts, err = parsers.TimeFromNumber(v)
		} else {
			ts, err = parsers.TimeFromString(string(c))
		}
		return ts, err == nil, false, err
	case TimeOffset:
		if !num {
			return 0, false, true, nil
		}
		if !p.hasTStart || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false, true, nil
		}
		ts, err = parsers.TimeFromNumber(p.tStart + v)
		return ts, err == nil, true, nil
	default: // auto
		if num {
			if v >= plausibleEpoch {
				if ts, err = parsers.TimeFromNumber(v); err == nil {
					return ts, true, false, nil
				}
			}
			return 0, false, true, nil
		}
		if ts, err = parsers.TimeFromString(string(c)); err == nil {
			return ts, true, false, nil
		}
		return 0, false, true, nil
	}
}

// parseStep reads a step cell: a non-negative integer, or an integral float.
func parseStep(c []byte) (int64, error) {
	if len(c) == 0 {
		return 0, fmt.Errorf("%w: empty", parsers.ErrBadStep)
	}
	if len(c) <= 18 {
		var n int64
		ok := true
		for _, b := range c {
			if b < '0' || b > '9' {
				ok = false
				break
			}
			n = n*10 + int64(b-'0')
		}
		if ok {
			return n, nil
		}
	}
	return parsers.StepFromString(string(c))
}

// parseFloat parses a numeric cell. Overflow gives ±Inf and underflow 0,
// like Python's float().
func parseFloat(c []byte) (float64, bool) {
	// Fast reject: every number starts with a digit, a sign, a dot, or the
	// first letter of inf/infinity/nan.
	switch c[0] {
	case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '-', '+', '.', 'i', 'I', 'n', 'N':
	default:
		return 0, false
	}
	v, err := strconv.ParseFloat(string(c), 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return v, true
		}
		return 0, false
	}
	return v, true
}

func isBool(c []byte) bool {
	switch len(c) {
	case 4:
		return bytes.EqualFold(c, []byte("true"))
	case 5:
		return bytes.EqualFold(c, []byte("false"))
	}
	return false
}

func isNull(c []byte) bool {
	return string(c) == "None" || string(c) == "null" || string(c) == "NULL"
}
