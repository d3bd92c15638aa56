package export

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"

	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
)

// This file reads neptune-exporter part files column by column: each
// needed leaf column of a row group is decoded page by page, straight from
// the page buffers (dictionary indexes included), and rows are assembled
// into rowData values that own their bytes. parquet-go types stay inside
// this file and format.go's helpers; nothing here is exported.

// The logical columns of the exporter's schema (neptune-formats.md §2.3.2).
const (
	cProject = iota
	cRun
	cPath
	cType
	cStep
	cTS
	cInt
	cFloat
	cString
	cBool
	cDatetime
	cSet
	cFile
	cHistType
	cHistEdges
	cHistValues
	numCols
)

// colPaths locates each logical column; list columns name their LIST
// group, whose single leaf is read (the element is called "element" by
// current pyarrow and "item" by older versions, so it is not named here).
var colPaths = [numCols][]string{
	cProject:    {"project_id"},
	cRun:        {"run_id"},
	cPath:       {"attribute_path"},
	cType:       {"attribute_type"},
	cStep:       {"step"},
	cTS:         {"timestamp"},
	cInt:        {"int_value"},
	cFloat:      {"float_value"},
	cString:     {"string_value"},
	cBool:       {"bool_value"},
	cDatetime:   {"datetime_value"},
	cSet:        {"string_set_value"},
	cFile:       {"file_value", "path"},
	cHistType:   {"histogram_value", "type"},
	cHistEdges:  {"histogram_value", "edges"},
	cHistValues: {"histogram_value", "values"},
}

// errSchema is wrapped by errors about a part file whose schema is not the
// exporter's; it is a kind of corruption.
var errSchema = fmt.Errorf("%w: not the exporter's schema", ErrCorrupt)

// attrType is the attribute_type column, decoded.
type attrType uint8

const (
	tUnknown attrType = iota
	tFloat
	tInt
	tString
	tBool
	tDatetime
	tStringSet
	tFloatSeries
	tStringSeries
	tHistogramSeries
	tFile
	tFileSeries
	tFileSet
	tArtifact
	tNull // attribute_type is null
)

func parseAttrType(s string) attrType {
	switch s {
	case "float":
		return tFloat
	case "int":
		return tInt
	case "string":
		return tString
	case "bool":
		return tBool
	case "datetime":
		return tDatetime
	case "string_set":
		return tStringSet
	case "float_series":
		return tFloatSeries
	case "string_series":
		return tStringSeries
	case "histogram_series":
		return tHistogramSeries
	case "file":
		return tFile
	case "file_series":
		return tFileSeries
	case "file_set":
		return tFileSet
	case "artifact":
		return tArtifact
	}
	return tUnknown
}

// atom reports whether the type is a parameter (a value without a step).
func (t attrType) atom() bool { return t >= tFloat && t <= tStringSet }

// rowData is one decoded row. It owns every byte it holds, so rows can be
// kept while the readers move on to later pages.
type rowData struct {
	row     int64 // index of the row in its part
	typ     attrType
	typName string // the attribute_type text, for unknown types
	path    string

	hasStep bool
	step    int64 // millionths
	stepErr error

	hasTS, hasInt, hasFloat, hasStr, hasBool, hasDT, hasSet, hasFile, hasHist bool

	ts    int64 // unix ms
	i     int64
	f     float64
	b     bool
	dt    int64 // unix ms
	str   []byte
	set   []string
	file  []byte
	htype string
	edges []float64
	vals  []float64

	project, run string // only when the reader reads those columns
}

func (rd *rowData) reset() {
	// Field by field: cheaper than zeroing the whole struct on every row.
	rd.typ, rd.typName, rd.path = tUnknown, "", ""
	rd.hasStep, rd.stepErr = false, nil
	rd.hasTS, rd.hasInt, rd.hasFloat, rd.hasStr, rd.hasBool, rd.hasDT, rd.hasSet, rd.hasFile, rd.hasHist =
		false, false, false, false, false, false, false, false, false
	rd.str, rd.file, rd.edges, rd.vals = rd.str[:0], rd.file[:0], rd.edges[:0], rd.vals[:0]
	if len(rd.set) > 0 {
		clear(rd.set)
		rd.set = rd.set[:0]
	}
	rd.htype, rd.project, rd.run = "", "", ""
}

// vals are the typed arrays of a page or of a dictionary.
type vals struct {
	kind encoding.Kind
	n    int // number of values
	i32  []int32
	i64  []int64
	f32  []float32
	f64  []float64
	bits []byte
	ba   []byte
	off  []uint32
	fl   []byte
	size int
}

func (v *vals) set(data encoding.Values) error {
	*v = vals{kind: data.Kind()}
	switch v.kind {
	case encoding.Boolean:
		v.bits = data.Boolean()
		v.n = 8 * len(v.bits)
	case encoding.Int32:
		v.i32 = data.Int32()
		v.n = len(v.i32)
	case encoding.Int64:
		v.i64 = data.Int64()
		v.n = len(v.i64)
	case encoding.Float:
		v.f32 = data.Float()
		v.n = len(v.f32)
	case encoding.Double:
		v.f64 = data.Double()
		v.n = len(v.f64)
	case encoding.ByteArray:
		v.ba, v.off = data.ByteArray()
		if len(v.off) > 0 {
			v.n = len(v.off) - 1
			if last := v.off[len(v.off)-1]; int(last) > len(v.ba) {
				return fmt.Errorf("byte array offsets past the data: %w", parquet.ErrCorrupted)
			}
			for i := 1; i < len(v.off); i++ {
				if v.off[i] < v.off[i-1] {
					return fmt.Errorf("byte array offsets decrease: %w", parquet.ErrCorrupted)
				}
			}
		}
	case encoding.FixedLenByteArray:
		v.fl, v.size = data.FixedLenByteArray()
		if v.size > 0 {
			v.n = len(v.fl) / v.size
		}
	default:
		return fmt.Errorf("unsupported physical type %s", v.kind)
	}
	return nil
}

// leafCol reads one leaf column of one row group.
type leafCol struct {
	name    string
	col     *parquet.Column
	kind    parquet.Kind
	maxDef  byte
	maxRep  byte
	listDef byte // repeated leaves: the lowest level at which the list exists
	elemOpt bool // repeated leaves: elements may be null

	// step: decimal scale conversion to millionths
	decScale int
	// timestamps: divisor from the column's unit to milliseconds
	tsDiv int64

	err *error // shared with the row reader: the first failure

	pages parquet.Pages
	page  parquet.Page
	defs  []byte
	reps  []byte
	n     int // levels in the page
	lvl   int // next level
	val   int // next stored value
	idx   []int32
	pv    vals // the page's values
	dv    vals // the dictionary's values
	v     *vals
	dict  parquet.Dictionary
	strs  []string // interned dictionary strings, "" not computed (see have)
	have  []bool
	eof   bool
}

func (c *leafCol) fail(err error) {
	if *c.err == nil {
		*c.err = fmt.Errorf("column %s: %w", c.name, err)
	}
}

// open starts reading the column chunk of a row group.
func (c *leafCol) open(rg parquet.RowGroup) {
	c.close()
	c.pages = rg.ColumnChunks()[c.col.Index()].Pages()
	c.n, c.lvl, c.val, c.eof = 0, 0, 0, false
}

func (c *leafCol) close() {
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	if c.pages != nil {
		c.pages.Close()
		c.pages = nil
	}
	c.dict, c.strs, c.have, c.idx = nil, c.strs[:0], c.have[:0], nil
	c.defs, c.reps = nil, nil
}

// load reads the next page. It returns false at the end of the chunk
// (c.eof) or on an error (recorded).
func (c *leafCol) load() bool {
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	for {
		p, err := c.pages.ReadPage()
		if err != nil {
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else {
				c.fail(err)
			}
			return false
		}
		n := int(p.NumValues())
		if n == 0 {
			parquet.Release(p)
			continue
		}
		c.page = p
		c.defs, c.reps = p.DefinitionLevels(), p.RepetitionLevels()
		if (c.maxDef > 0 && len(c.defs) != n) || (c.maxRep > 0 && len(c.reps) != n) {
			c.fail(fmt.Errorf("page levels do not match its %d values: %w", n, parquet.ErrCorrupted))
			return false
		}
		c.n, c.lvl, c.val = n, 0, 0
		stored := n
		if c.maxDef > 0 {
			stored = 0
			for _, d := range c.defs {
				if d == c.maxDef {
					stored++
				} else if d > c.maxDef {
					c.fail(fmt.Errorf("definition level %d above %d: %w", d, c.maxDef, parquet.ErrCorrupted))
					return false
				}
			}
		}
		if d := p.Dictionary(); d != nil {
			data := p.Data()
			if data.Kind() != encoding.Int32 {
				c.fail(fmt.Errorf("dictionary page without indexes: %w", parquet.ErrCorrupted))
				return false
			}
			if d != c.dict {
				c.dict = d
				if err := c.dv.set(d.Page().Data()); err != nil {
					c.fail(err)
					return false
				}
				c.strs, c.have = c.strs[:0], c.have[:0]
			}
			c.idx = data.Int32()
			if len(c.idx) < stored {
				c.fail(fmt.Errorf("%d dictionary indexes for %d values: %w", len(c.idx), stored, parquet.ErrCorrupted))
				return false
			}
			for _, x := range c.idx[:stored] {
				if x < 0 || int(x) >= c.dv.n {
					c.fail(fmt.Errorf("dictionary index %d out of range: %w", x, parquet.ErrCorrupted))
					return false
				}
			}
			c.v = &c.dv
		} else {
			c.idx = nil
			if err := c.pv.set(p.Data()); err != nil {
				c.fail(err)
				return false
			}
			if c.pv.n < stored {
				c.fail(fmt.Errorf("%d values for %d definitions: %w", c.pv.n, stored, parquet.ErrCorrupted))
				return false
			}
			c.v = &c.pv
		}
		if c.v.kind != encKind(c.kind) {
			c.fail(fmt.Errorf("page of %s values in a %s column: %w", c.v.kind, c.kind, parquet.ErrCorrupted))
			return false
		}
		return true
	}
}

// ensure makes a level available; false at the end of the chunk.
func (c *leafCol) ensure() bool {
	if c.lvl < c.n {
		return true
	}
	if c.eof || *c.err != nil {
		return false
	}
	return c.load()
}

// next reads one row of a flat column and returns the index of its value
// in c.v, or -1 if it is null.
func (c *leafCol) next() int {
	if !c.ensure() {
		if *c.err == nil {
			c.fail(fmt.Errorf("fewer values than rows: %w", parquet.ErrCorrupted))
		}
		return -1
	}
	def := c.maxDef
	if c.maxDef > 0 {
		def = c.defs[c.lvl]
	}
	c.lvl++
	if def != c.maxDef {
		return -1
	}
	return c.take()
}

func (c *leafCol) take() int {
	k := c.val
	c.val++
	if c.idx != nil {
		return int(c.idx[k])
	}
	return k
}

// str returns the interned string of value k of a byte-array column.
func (c *leafCol) str(k int, in *interner) string {
	if c.idx == nil {
		return in.bytes(c.bytesAt(k))
	}
	if len(c.strs) < c.dv.n {
		c.strs = append(c.strs[:0], make([]string, c.dv.n)...)
		c.have = append(c.have[:0], make([]bool, c.dv.n)...)
	}
	if !c.have[k] {
		c.strs[k], c.have[k] = in.bytes(c.bytesAt(k)), true
	}
	return c.strs[k]
}

func (c *leafCol) bytesAt(k int) []byte {
	v := c.v
	if v.kind == encoding.FixedLenByteArray {
		return v.fl[k*v.size : (k+1)*v.size]
	}
	return v.ba[v.off[k]:v.off[k+1]]
}

func (c *leafCol) intAt(k int) int64 {
	if c.v.kind == encoding.Int32 {
		return int64(c.v.i32[k])
	}
	return c.v.i64[k]
}

func (c *leafCol) floatAt(k int) float64 {
	if c.v.kind == encoding.Float {
		return float64(c.v.f32[k])
	}
	return c.v.f64[k]
}

func (c *leafCol) boolAt(k int) bool { return c.v.bits[k>>3]>>(k&7)&1 != 0 }

// stepAt decodes value k of the step column to millionths.
func (c *leafCol) stepAt(k int) (int64, error) {
	switch c.v.kind {
	case encoding.Double, encoding.Float:
		return mapping.MicroFromFloat(c.floatAt(k))
	case encoding.Int32, encoding.Int64:
		return scaleMicro(c.intAt(k), c.decScale)
	default:
		return decodeDecimal(c.bytesAt(k), c.decScale)
	}
}

// timeAt decodes value k of a timestamp column to unix milliseconds.
func (c *leafCol) timeAt(k int) int64 {
	v := c.intAt(k)
	if c.tsDiv > 1 {
		// Floor, so instants before 1970 stay ordered.
		q := v / c.tsDiv
		if v%c.tsDiv < 0 {
			q--
		}
		return q
	}
	return v
}

// beginList starts a row of a repeated column and returns its first
// level's definition.
func (c *leafCol) beginList() (def byte, ok bool) {
	if !c.ensure() {
		if *c.err == nil {
			c.fail(fmt.Errorf("fewer values than rows: %w", parquet.ErrCorrupted))
		}
		return 0, false
	}
	if c.reps[c.lvl] != 0 {
		c.fail(fmt.Errorf("row starts at repetition level %d: %w", c.reps[c.lvl], parquet.ErrCorrupted))
		return 0, false
	}
	def = c.defs[c.lvl]
	c.lvl++
	return def, true
}

// more reports whether the current row has another element, loading the
// next page when the row continues there (data page v1 allows it).
func (c *leafCol) more() (def byte, ok bool) {
	if !c.ensure() || c.reps[c.lvl] == 0 {
		return 0, false
	}
	def = c.defs[c.lvl]
	c.lvl++
	return def, true
}

// floatList reads one row of a list of numbers into dst.
func (c *leafCol) floatList(dst []float64) ([]float64, bool) {
	def, ok := c.beginList()
	if !ok {
		return dst, false
	}
	present := def >= c.listDef
	for {
		switch {
		case def == c.maxDef:
			dst = append(dst, c.floatAt(c.take()))
		case present && def == c.maxDef-1 && c.elemOpt:
			dst = append(dst, math.NaN()) // a null element: rejected by the mapper
		}
		if def, ok = c.more(); !ok {
			return dst, present
		}
	}
}

// stringList reads one row of a list of strings into dst; null elements
// are left out.
func (c *leafCol) stringList(dst []string) ([]string, bool) {
	def, ok := c.beginList()
	if !ok {
		return dst, false
	}
	present := def >= c.listDef
	for {
		if def == c.maxDef {
			dst = append(dst, string(c.bytesAt(c.take())))
		}
		if def, ok = c.more(); !ok {
			return dst, present
		}
	}
}

// encKind maps a column's physical type to the kind of its page values.
func encKind(k parquet.Kind) encoding.Kind {
	switch k {
	case parquet.Boolean:
		return encoding.Boolean
	case parquet.Int32:
		return encoding.Int32
	case parquet.Int64:
		return encoding.Int64
	case parquet.Int96:
		return encoding.Int96
	case parquet.Float:
		return encoding.Float
	case parquet.Double:
		return encoding.Double
	case parquet.ByteArray:
		return encoding.ByteArray
	case parquet.FixedLenByteArray:
		return encoding.FixedLenByteArray
	}
	return encoding.Undefined
}

// interner shares one string per distinct attribute path or type.
type interner struct{ m map[string]string }

func (in *interner) bytes(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil {
		in.m = map[string]string{}
	}
	s := string(b)
	in.m[s] = s
	return s
}

// partFile is one open part file.
type partFile struct {
	path string
	f    *os.File
	ra   *trackReader
	pf   *parquet.File
	size int64
	rows int64
	cols [numCols]*parquet.Column // nil: not in the schema
}

// trackReader remembers an I/O error, so that a failure can be told apart
// from corrupt content.
type trackReader struct {
	f   *os.File
	err error
}

func (t *trackReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := t.f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) && t.err == nil {
		t.err = err
	}
	return n, err
}

// ioError returns the I/O error seen, if any: a failure with one is not
// the file's fault and is not reported as corruption.
func (p *partFile) ioError() error {
	if p == nil || p.ra == nil {
		return nil
	}
	return p.ra.err
}

// openPart opens a part file and locates its columns. A panic inside the
// parquet library (it has a few on malformed metadata) becomes an error
// wrapping ErrCorrupt.
func openPart(path string) (p *partFile, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &ioError{fmt.Errorf("open %s: %w", path, err)}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &ioError{fmt.Errorf("open %s: %w", path, err)}
	}
	p = &partFile{path: path, f: f, ra: &trackReader{f: f}, size: fi.Size()}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open %s: %v: %w", path, r, ErrCorrupt)
		}
		if err != nil {
			f.Close()
			p = nil
		}
	}()
	// The library allocates the footer length it reads before checking
	// it against the file: check it first.
	var tail [8]byte
	if p.size < 12 {
		return nil, fmt.Errorf("open %s: %d bytes is too short for a parquet file: %w", path, p.size, ErrCorrupt)
	}
	if _, err := p.ra.ReadAt(tail[:], p.size-8); err != nil {
		if p.ra.err != nil {
			return nil, &ioError{fmt.Errorf("open %s: %w", path, err)}
		}
		return nil, fmt.Errorf("open %s: %v: %w", path, err, ErrCorrupt)
	}
	if footer := int64(binary.LittleEndian.Uint32(tail[:4])); string(tail[4:]) != "PAR1" || footer > p.size-12 {
		return nil, fmt.Errorf("open %s: no parquet footer: %w", path, ErrCorrupt)
	}
	pf, err := parquet.OpenFile(p.ra, p.size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(256<<10))
	if err != nil {
		if ioErr := p.ra.err; ioErr != nil {
			return nil, &ioError{fmt.Errorf("open %s: %w", path, ioErr)}
		}
		return nil, fmt.Errorf("open %s: %v: %w", path, err, ErrCorrupt)
	}
	p.pf, p.rows = pf, pf.NumRows()
	root := pf.Root()
	for i, cp := range colPaths {
		c := root
		for _, name := range cp {
			if c = c.Column(name); c == nil {
				break
			}
		}
		for c != nil && !c.Leaf() {
			if len(c.Columns()) != 1 {
				return nil, fmt.Errorf("open %s: column %s: %w", path, strings.Join(cp, "."), errSchema)
			}
			c = c.Columns()[0]
		}
		p.cols[i] = c
	}
	if p.cols[cPath] == nil || p.cols[cType] == nil {
		return nil, fmt.Errorf("open %s: no attribute_path or attribute_type column: %w", path, errSchema)
	}
	return p, nil
}

func (p *partFile) close() error {
	if p == nil || p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	return err
}

// rowReader reads the rows of one part file, in order, decoding only the
// columns it was asked for.
type rowReader struct {
	part   *partFile
	in     *interner
	leaves [numCols]*leafCol
	err    error

	rg     int   // next row group to open
	rgLeft int64 // rows left in the open row group
	row    int64 // index of the next row in the part
}

// newRowReader prepares to read the columns in want (by logical column).
func newRowReader(p *partFile, in *interner, want [numCols]bool) (*rowReader, error) {
	r := &rowReader{part: p, in: in}
	for i := range want {
		c := p.cols[i]
		if !want[i] || c == nil {
			continue
		}
		l := &leafCol{name: strings.Join(c.Path(), "."), col: c, kind: c.Type().Kind(),
			maxDef: byte(c.MaxDefinitionLevel()), maxRep: byte(c.MaxRepetitionLevel()), err: &r.err}
		if err := l.check(i); err != nil {
			return nil, fmt.Errorf("read %s: %w", p.path, err)
		}
		r.leaves[i] = l
	}
	return r, nil
}

// check validates a leaf's type against what its logical column holds and
// derives the conversions it needs.
func (l *leafCol) check(col int) error {
	bad := func() error {
		return fmt.Errorf("column %s: unexpected type %s: %w", l.name, l.col.Type(), errSchema)
	}
	lt := l.col.Type().LogicalType()
	switch col {
	case cProject, cRun, cPath, cType, cString, cFile, cHistType, cSet:
		if l.kind != parquet.ByteArray {
			return bad()
		}
	case cInt:
		if l.kind != parquet.Int64 && l.kind != parquet.Int32 {
			return bad()
		}
	case cFloat, cHistEdges, cHistValues:
		if l.kind != parquet.Double && l.kind != parquet.Float {
			return bad()
		}
	case cBool:
		if l.kind != parquet.Boolean {
			return bad()
		}
	case cTS, cDatetime:
		if l.kind != parquet.Int64 {
			return bad()
		}
		l.tsDiv = 1
		if lt != nil {
			if ts, ok := lt.Value.(*format.TimestampType); ok {
				switch ts.Unit.Value.(type) {
				case *format.MicroSeconds:
					l.tsDiv = 1_000
				case *format.NanoSeconds:
					l.tsDiv = 1_000_000
				}
			}
		}
	case cStep:
		switch l.kind {
		case parquet.Double, parquet.Float:
		case parquet.Int32, parquet.Int64, parquet.ByteArray, parquet.FixedLenByteArray:
			l.decScale = 0
			if lt != nil {
				if d, ok := lt.Value.(*format.DecimalType); ok {
					l.decScale = int(d.Scale)
				}
			}
			if l.decScale < 0 || l.decScale > 38 {
				return bad()
			}
		default:
			return bad()
		}
	}
	if col == cSet || col == cHistEdges || col == cHistValues {
		if l.maxRep != 1 {
			return fmt.Errorf("column %s: not a list: %w", l.name, errSchema)
		}
		l.elemOpt = l.col.Optional()
		drop := byte(1)
		if l.elemOpt {
			drop = 2
		}
		if l.maxDef < drop {
			return fmt.Errorf("column %s: not a list: %w", l.name, errSchema)
		}
		l.listDef = l.maxDef - drop
	} else if l.maxRep != 0 {
		return fmt.Errorf("column %s: repeated: %w", l.name, errSchema)
	}
	return nil
}

// close releases the reader's pages (the part file stays open).
func (r *rowReader) close() {
	for _, l := range r.leaves {
		if l != nil {
			l.close()
		}
	}
}

// nextGroup opens the next row group with rows; false at the end of the
// part.
func (r *rowReader) nextGroup() bool {
	rgs := r.part.pf.RowGroups()
	for r.rg < len(rgs) {
		g := rgs[r.rg]
		r.rg++
		if g.NumRows() <= 0 {
			continue
		}
		for _, l := range r.leaves {
			if l != nil {
				l.open(g)
			}
		}
		r.rgLeft = g.NumRows()
		return true
	}
	return false
}

// skipGroups moves past whole row groups while n rows remain to skip, and
// returns the rows still to skip inside the next group.
func (r *rowReader) skipGroups(n int64) int64 {
	rgs := r.part.pf.RowGroups()
	for r.rgLeft == 0 && r.rg < len(rgs) && rgs[r.rg].NumRows() <= n {
		n -= max(rgs[r.rg].NumRows(), 0)
		r.row += max(rgs[r.rg].NumRows(), 0)
		r.rg++
	}
	return n
}

// read decodes the next row into rd; false at the end of the part or on
// an error (r.err).
func (r *rowReader) read(rd *rowData) (ok bool) {
	if r.err != nil {
		return false
	}
	// The parquet library panics on some malformed pages and metadata:
	// that is corruption of this part, not a reason to stop the agent.
	defer func() {
		if x := recover(); x != nil {
			r.err = fmt.Errorf("row %d: %v: %w", r.row, x, parquet.ErrCorrupted)
			ok = false
		}
	}()
	if r.rgLeft == 0 && !r.nextGroup() {
		return false
	}
	rd.reset()
	rd.row = r.row
	in := r.in
	L := &r.leaves
	if l := L[cProject]; l != nil {
		if k := l.next(); k >= 0 {
			rd.project = l.str(k, in)
		}
	}
	if l := L[cRun]; l != nil {
		if k := l.next(); k >= 0 {
			rd.run = l.str(k, in)
		}
	}
	if l := L[cPath]; l != nil {
		if k := l.next(); k >= 0 {
			rd.path = l.str(k, in)
		}
	}
	if l := L[cType]; l != nil {
		rd.typ = tNull
		if k := l.next(); k >= 0 {
			rd.typName = l.str(k, in)
			rd.typ = parseAttrType(rd.typName)
		}
	}
	if l := L[cStep]; l != nil {
		if k := l.next(); k >= 0 {
			rd.hasStep = true
			rd.step, rd.stepErr = l.stepAt(k)
		}
	}
	if l := L[cTS]; l != nil {
		if k := l.next(); k >= 0 {
			rd.hasTS, rd.ts = true, l.timeAt(k)
		}
	}
	if l := L[cInt]; l != nil {
		if k := l.next(); k >= 0 {
			rd.hasInt, rd.i = true, l.intAt(k)
		}
	}
	if l := L[cFloat]; l != nil {
		if k := l.next(); k >= 0 {
			rd.hasFloat, rd.f = true, l.floatAt(k)
		}
	}
	if l := L[cString]; l != nil {
		if k := l.next(); k >= 0 {
			rd.hasStr, rd.str = true, append(rd.str, l.bytesAt(k)...)
		}
	}
	if l := L[cBool]; l != nil {
		if k := l.next(); k >= 0 {
			rd.hasBool, rd.b = true, l.boolAt(k)
		}
	}
	if l := L[cDatetime]; l != nil {
		if k := l.next(); k >= 0 {
			rd.hasDT, rd.dt = true, l.timeAt(k)
		}
	}
	if l := L[cSet]; l != nil {
		rd.set, rd.hasSet = l.stringList(rd.set)
	}
	if l := L[cFile]; l != nil {
		if k := l.next(); k >= 0 {
			rd.hasFile, rd.file = true, append(rd.file, l.bytesAt(k)...)
		}
	}
	if l := L[cHistType]; l != nil {
		if k := l.next(); k >= 0 {
			rd.htype = l.str(k, in)
		}
	}
	if l := L[cHistEdges]; l != nil {
		var ok bool
		if rd.edges, ok = l.floatList(rd.edges); ok {
			rd.hasHist = true
		}
	}
	if l := L[cHistValues]; l != nil {
		var ok bool
		if rd.vals, ok = l.floatList(rd.vals); ok {
			rd.hasHist = true
		}
	}
	if r.err != nil {
		return false
	}
	r.rgLeft--
	r.row++
	return true
}

// decodeDecimal decodes a big-endian two's-complement decimal (the
// FIXED_LEN_BYTE_ARRAY or BYTE_ARRAY form of a parquet DECIMAL) with the
// given scale into millionths, exactly: values with more than six
// fractional digits that are not multiples of 1e-6 are rejected.
func decodeDecimal(b []byte, scale int) (int64, error) {
	if len(b) == 0 {
		return 0, mapping.ErrStepSyntax
	}
	// Strip sign-extension bytes beyond 8.
	for len(b) > 8 {
		switch {
		case b[0] == 0 && b[1]&0x80 == 0, b[0] == 0xff && b[1]&0x80 != 0:
			b = b[1:]
		default:
			return 0, mapping.ErrStepOverflow
		}
	}
	var u uint64
	for _, x := range b {
		u = u<<8 | uint64(x)
	}
	// Sign-extend from len(b) bytes.
	shift := uint(64 - 8*len(b))
	v := int64(u<<shift) >> shift
	return scaleMicro(v, scale)
}

// scaleMicro converts an unscaled decimal to millionths.
func scaleMicro(v int64, scale int) (int64, error) {
	if v < 0 {
		return 0, mapping.ErrStepNegative
	}
	switch {
	case scale == 6:
		return v, nil
	case scale < 6:
		m := int64(1)
		for i := scale; i < 6; i++ {
			m *= 10
		}
		if v > math.MaxInt64/m {
			return 0, mapping.ErrStepOverflow
		}
		return v * m, nil
	default:
		d := int64(1)
		for i := 6; i < scale; i++ {
			if d > math.MaxInt64/10 {
				// More than 18 extra digits: only zero is exact.
				if v == 0 {
					return 0, nil
				}
				return 0, mapping.ErrStepTooFine
			}
			d *= 10
		}
		if v%d != 0 {
			return 0, mapping.ErrStepTooFine
		}
		return v / d, nil
	}
}
