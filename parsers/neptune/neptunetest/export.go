package neptunetest

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/parquet-go/parquet-go"
)

// This file writes synthetic neptune-exporter exports (neptune-formats.md
// §2.3): <dir>/data/<S(project)>/<S(run)>_part_<n>.parquet with the
// exporter's parquet schema, and the downloaded files under
// <dir>/files/<S(project)>/, in the row order and row-group layout the
// exporter's neptune2 and neptune3 code paths produce.

// ExportVariant selects which exporter code path a generated export
// imitates.
type ExportVariant int

// The export variants.
const (
	// Export3 imitates `--exporter neptune3` (Neptune 3.x): run_id is the
	// custom run id, parameters are melted from a runs table (so a run
	// also gets null rows for other runs' attributes), metrics are
	// ordered by step then attribute, histograms and forks exist.
	Export3 ExportVariant = iota
	// Export2 imitates `--exporter neptune2` (Neptune 2.x): run_id is
	// sys/id, series are ordered attribute by attribute, a file has no
	// extension, a file series' step column holds the file's index, and
	// file sets and artifacts exist.
	Export2
)

// ExportOptions describe a generated export. Zero fields take defaults.
type ExportOptions struct {
	Variant ExportVariant
	// Project is the Neptune project id (default "ws/proj").
	Project string
	// Runs is the number of ordinary runs (default 2; -1 for none).
	Runs int
	// Fork adds a parent run and a run forked from it (Export3 only). The
	// child steps by 0.25, so the family's multiplier is 100.
	Fork bool
	// PointsPerRun is the number of float points of each ordinary run and
	// of the fork parent (the child has half), rounded down to a multiple
	// of Metrics (default 1000).
	PointsPerRun int
	// Metrics is the number of float series per run (default
	// MetricsPerRun).
	Metrics int
	// FractionalSteps makes ordinary runs and the fork parent step by 0.5
	// (multiplier 10).
	FractionalSteps bool
	// StringValues is the number of values of the train/notes string
	// series per run; as many console lines are written (default 4; -1
	// for none).
	StringValues int
	// Histograms is the number of grads/l1 histogram values per run
	// (Export3 only; default 3; -1 for none).
	Histograms int
	// FileSeries is the number of images/preds files per run (default 3;
	// -1 for none, which also drops the single file and, in Export2, the
	// file set and artifact).
	FileSeries int
	// MissingFiles leaves the last images/preds file of every run out of
	// the files directory.
	MissingFiles bool
	// RowsPerPart starts a new part file, at a batch boundary, once a part
	// holds at least this many rows (0: one part per run).
	RowsPerPart int
	// BatchRows is the size of the batches the exporter writes; each is a
	// row group (default 65536).
	BatchRows int
	// Int64Steps stores the step decimal as INT64 instead of
	// FIXED_LEN_BYTE_ARRAY(8).
	Int64Steps bool
	// Pending adds a run still being written: its part_1.parquet is in
	// place, its part_0 is still a .parquet.tmp.
	Pending bool
}

// ExportManifest says what WriteExport wrote.
type ExportManifest struct {
	DataDir    string // <dir>/data
	FilesDir   string // <dir>/files
	ProjectDir string // <DataDir>/<S(project)>
	Runs       []ExportRun
	// Pending lists the file prefixes of runs without part_0.
	Pending []string
	// TmpFiles lists the .parquet.tmp files left in ProjectDir.
	TmpFiles []string
}

// Points is the number of float points of every run.
func (m *ExportManifest) Points() int {
	n := 0
	for i := range m.Runs {
		n += m.Runs[i].Points
	}
	return n
}

// ExportRun is one exported run and what its rows hold.
type ExportRun struct {
	ProjectID string
	RunID     string
	Prefix    string   // the file prefix, S(run_id)
	Parts     []string // part files, part_0 first
	Rows      int64

	Name      string
	CreatedAt int64    // unix ms (sys/creation_time)
	Tags      []string // sys/tags, sorted
	GroupTags []string // sys/group_tags, sorted
	Failed    bool     // sys/failed = true (Export2)
	SysID     string   // sys/id

	// ForkParent is the parent's run id and ForkStepMicro the fork step
	// in millionths (fork children only).
	ForkParent    string
	ForkStepMicro int64
	// Multiplier is the step multiplier an automatic choice must make:
	// the smallest power of ten that makes every step of the run's fork
	// family integral, console lines excluded.
	Multiplier int64

	// Params holds the run's own non-null atoms by attribute path:
	// float64, int64, bool, string, []string (sorted) or ExportTime.
	Params map[string]any
	// NullParams lists attribute paths that only have null rows (another
	// run's parameters, melted into this run's table).
	NullParams []string

	Points  int
	Metrics map[string]*MetricStats

	// Strings holds the non-console string series values in row order.
	Strings map[string][]SeriesValue
	// Console holds the console lines in row order.
	Console []ConsoleLine
	// Histograms holds histogram values in row order.
	Histograms map[string][]HistogramValue
	// Files lists file rows (one per file of a file set) in row order.
	Files []ExportFile
	// FileSeriesIsIndex is set when file-series steps are indexes
	// (Export2).
	FileSeriesIsIndex bool
}

// ExportTime is a datetime atom (unix ms).
type ExportTime int64

// MetricStats summarises one float series.
type MetricStats struct {
	Count                         int
	FirstStepMicro, LastStepMicro int64
	First, Last, Sum              float64
	FirstTime, LastTime           int64
}

// SeriesValue is a string-series value.
type SeriesValue struct {
	StepMicro int64
	Value     string
}

// ConsoleLine is one captured console line.
type ConsoleLine struct {
	Path string
	Text string // as written (with its newline)
}

// HistogramValue is one histogram point.
type HistogramValue struct {
	StepMicro     int64
	Edges, Values []float64
}

// ExportFile is one file a row points to.
type ExportFile struct {
	Attr      string
	Type      string // file, file_series, file_set, artifact
	StepMicro int64  // file_series: the step column
	Rel       string // file_value.path
	Local     string // the file in the files directory; "" when missing
	Missing   bool
}

// baseMillis is the generated runs' creation time (2025-01-01T00:00:00Z).
const baseMillis = int64(baseTime) * 1000

// SanitizePathPart imitates the exporter's sanitize_path_part: characters
// other than letters, digits, '_' and '-' become '_', and a digest of the
// original is appended. The digest is a stand-in (FNV-64a instead of
// blake2b-64): readers must treat the name as opaque.
func SanitizePathPart(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	return b.String() + "-" + hex.EncodeToString(h.Sum(nil))
}

// pngBytes is a valid 1×1 PNG, so content sniffing finds an image.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")

// exportFileValue and exportHist are the exporter's structs.
type exportFileValue struct {
	Path *string `parquet:"path,optional"`
}

type exportHist struct {
	Type   *string    `parquet:"type,optional"`
	Edges  []*float64 `parquet:"edges,optional,list"`
	Values []*float64 `parquet:"values,optional,list"`
}

// exportRow is model.SCHEMA: S is *[8]byte (DECIMAL(18,6) as
// FIXED_LEN_BYTE_ARRAY(8), pyarrow's default) or *int64 (INT64-backed).
type exportRow[S any] struct {
	ProjectID      *string          `parquet:"project_id,optional,dict"`
	RunID          *string          `parquet:"run_id,optional,dict"`
	AttributePath  *string          `parquet:"attribute_path,optional,dict"`
	AttributeType  *string          `parquet:"attribute_type,optional,dict"`
	Step           S                `parquet:"step,decimal(6:18),dict"`
	Timestamp      *int64           `parquet:"timestamp,optional,timestamp(millisecond:utc),dict"`
	IntValue       *int64           `parquet:"int_value,optional,int(64)"`
	FloatValue     *float64         `parquet:"float_value,optional"`
	StringValue    *string          `parquet:"string_value,optional,dict"`
	BoolValue      *bool            `parquet:"bool_value,optional"`
	DatetimeValue  *int64           `parquet:"datetime_value,optional,timestamp(millisecond:utc)"`
	StringSetValue []*string        `parquet:"string_set_value,optional,list"`
	FileValue      *exportFileValue `parquet:"file_value,optional"`
	HistogramValue *exportHist      `parquet:"histogram_value,optional"`
}

// value kinds of a rowSpec
const (
	vNull = iota
	vInt
	vFloat
	vStr
	vBool
	vTime
	vSet
	vFile
	vHist
)

// rowSpec is one row before it is written.
type rowSpec struct {
	path, typ string
	hasStep   bool
	step      int64 // millionths
	hasTS     bool
	ts        int64
	kind      int
	i         int64
	f         float64
	s         string
	b         bool
	set       []string
	fileVal   exportFileValue
	hist      exportHist
}

// partWriter writes the parts of one run.
type partWriter interface {
	// write writes one batch (a row group), starting a new part first
	// when the current one is full.
	write(rows []rowSpec) error
	// finish closes the last part and renames the .tmp files, part_0
	// last; keep0 leaves part_0 as .tmp (a run being exported).
	finish(keep0 bool) ([]string, error)
	abort()
}

type genericPartWriter[S any] struct {
	dir, prefix  string
	project, run string
	rowsPerPart  int
	mkStep       func(micro int64, i int) S
	f            *os.File
	w            *parquet.GenericWriter[exportRow[S]]
	part         int
	partRows     int
	tmp          []string
	buf          []exportRow[S]
	rows         int64
}

func (p *genericPartWriter[S]) open() error {
	name := filepath.Join(p.dir, fmt.Sprintf("%s_part_%d.parquet.tmp", p.prefix, len(p.tmp)))
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	p.f = f
	p.w = parquet.NewGenericWriter[exportRow[S]](f,
		parquet.Compression(&parquet.Snappy),
		parquet.DataPageVersion(1),
		parquet.PageBufferSize(1<<20),
		parquet.DictionaryMaxBytes(1<<20),
		parquet.CreatedBy("neptunetest", "1", "export"),
	)
	p.tmp = append(p.tmp, name)
	p.partRows = 0
	return nil
}

func (p *genericPartWriter[S]) closePart() error {
	if p.w == nil {
		return nil
	}
	err := p.w.Close()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.w, p.f = nil, nil
	if err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	return nil
}

func (p *genericPartWriter[S]) write(rows []rowSpec) error {
	if len(rows) == 0 {
		return nil
	}
	if p.w != nil && p.rowsPerPart > 0 && p.partRows >= p.rowsPerPart {
		if err := p.closePart(); err != nil {
			return err
		}
	}
	if p.w == nil {
		if err := p.open(); err != nil {
			return err
		}
	}
	if cap(p.buf) < len(rows) {
		p.buf = make([]exportRow[S], len(rows))
	}
	buf := p.buf[:len(rows)]
	for i := range rows {
		r := &rows[i]
		e := exportRow[S]{ProjectID: &p.project, RunID: &p.run, AttributePath: &r.path, AttributeType: &r.typ}
		if r.hasStep {
			e.Step = p.mkStep(r.step, i)
		}
		if r.hasTS {
			e.Timestamp = &r.ts
		}
		switch r.kind {
		case vInt:
			e.IntValue = &r.i
		case vFloat:
			e.FloatValue = &r.f
		case vStr:
			e.StringValue = &r.s
		case vBool:
			e.BoolValue = &r.b
		case vTime:
			e.DatetimeValue = &r.i
		case vSet:
			e.StringSetValue = make([]*string, len(r.set))
			for k := range r.set {
				e.StringSetValue[k] = &r.set[k]
			}
		case vFile:
			e.FileValue = &r.fileVal
		case vHist:
			e.HistogramValue = &r.hist
		}
		buf[i] = e
	}
	if _, err := p.w.Write(buf); err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	clear(buf)
	p.partRows += len(rows)
	p.rows += int64(len(rows))
	return nil
}

func (p *genericPartWriter[S]) finish(keep0 bool) ([]string, error) {
	if err := p.closePart(); err != nil {
		return nil, err
	}
	var out []string
	// Like the exporter: rename in reverse order, part_0 last.
	for i := len(p.tmp) - 1; i >= 0; i-- {
		final := strings.TrimSuffix(p.tmp[i], ".tmp")
		if i == 0 && keep0 {
			continue
		}
		if err := os.Rename(p.tmp[i], final); err != nil {
			return nil, fmt.Errorf("write export: %w", err)
		}
	}
	for i := range p.tmp {
		out = append(out, strings.TrimSuffix(p.tmp[i], ".tmp"))
	}
	return out, nil
}

func (p *genericPartWriter[S]) abort() {
	if p.w != nil {
		p.w.Close()
		p.f.Close()
	}
}

func newPartWriter(dir, prefix, project, run string, opts *ExportOptions) partWriter {
	if opts.Int64Steps {
		back := make([]int64, opts.BatchRows)
		return &genericPartWriter[*int64]{dir: dir, prefix: prefix, project: project, run: run, rowsPerPart: opts.RowsPerPart,
			mkStep: func(m int64, i int) *int64 {
				if i >= len(back) {
					back = append(back, make([]int64, i+1-len(back))...)
				}
				back[i] = m
				return &back[i]
			}}
	}
	back := make([][8]byte, opts.BatchRows)
	return &genericPartWriter[*[8]byte]{dir: dir, prefix: prefix, project: project, run: run, rowsPerPart: opts.RowsPerPart,
		mkStep: func(m int64, i int) *[8]byte {
			if i >= len(back) {
				back = append(back, make([][8]byte, i+1-len(back))...)
			}
			u := uint64(m)
			for k := 7; k >= 0; k-- {
				back[i][k] = byte(u)
				u >>= 8
			}
			return &back[i]
		}}
}

// genRun describes one run to generate.
type genRun struct {
	runID    string
	points   int
	stepInc  int64 // millionths between steps
	firstMic int64 // the first step
	fork     *struct {
		parent string
		step   int64
	}
	sysID   string
	failed  bool
	index   int
	pending bool
}

// WriteExport writes an export under dir (data in dir/data, files in
// dir/files) and returns what it holds.
func WriteExport(dir string, opts ExportOptions) (*ExportManifest, error) {
	if opts.Project == "" {
		opts.Project = "ws/proj"
	}
	if opts.Runs == 0 {
		opts.Runs = 2
	}
	if opts.PointsPerRun == 0 {
		opts.PointsPerRun = 1000
	}
	if opts.Metrics <= 0 {
		opts.Metrics = MetricsPerRun
	}
	if opts.StringValues == 0 {
		opts.StringValues = 4
	}
	if opts.Histograms == 0 {
		opts.Histograms = 3
	}
	if opts.FileSeries == 0 {
		opts.FileSeries = 3
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = 65536
	}
	if opts.Variant == Export2 {
		opts.Fork = false
		opts.Histograms = -1
	}
	m := &ExportManifest{DataDir: filepath.Join(dir, "data"), FilesDir: filepath.Join(dir, "files")}
	projDir := SanitizePathPart(opts.Project)
	m.ProjectDir = filepath.Join(m.DataDir, projDir)
	filesRoot := filepath.Join(m.FilesDir, projDir)
	for _, d := range []string{m.ProjectDir, filesRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("write export: %w", err)
		}
	}

	stepInc := int64(1_000_000)
	if opts.FractionalSteps {
		stepInc = 500_000
	}
	var runs []genRun
	for r := 0; r < max(opts.Runs, 0); r++ {
		g := genRun{points: opts.PointsPerRun, stepInc: stepInc, index: len(runs)}
		if opts.Variant == Export2 {
			g.runID = fmt.Sprintf("SAN-%d", r+1)
			g.sysID = g.runID
			g.failed = r == 1
		} else {
			g.runID = fmt.Sprintf("run-%d", r)
			g.sysID = fmt.Sprintf("PROJ-%d", r+1)
		}
		runs = append(runs, g)
	}
	if opts.Fork {
		parent := genRun{runID: "fork-parent", sysID: fmt.Sprintf("PROJ-%d", len(runs)+1), points: opts.PointsPerRun, stepInc: stepInc, index: len(runs)}
		steps := opts.PointsPerRun / opts.Metrics
		forkStep := int64(steps/2) * stepInc
		child := genRun{runID: "fork-child", sysID: fmt.Sprintf("PROJ-%d", len(runs)+2), points: opts.PointsPerRun / 2, stepInc: 250_000,
			firstMic: forkStep + 250_000, index: len(runs) + 1}
		child.fork = &struct {
			parent string
			step   int64
		}{parent.runID, forkStep}
		runs = append(runs, parent, child)
	}
	if opts.Pending {
		g := genRun{runID: "pending-run", sysID: "PROJ-99", points: 2 * opts.Metrics, stepInc: 1_000_000, pending: true, index: len(runs)}
		if opts.Variant == Export2 {
			g.runID, g.sysID = "SAN-99", "SAN-99"
		}
		runs = append(runs, g)
	}

	for i := range runs {
		g := &runs[i]
		er, err := writeRun(m, &opts, g, runs, filesRoot)
		if err != nil {
			return nil, err
		}
		if g.pending {
			m.Pending = append(m.Pending, er.Prefix)
			m.TmpFiles = append(m.TmpFiles, er.Parts[0]+".tmp")
			continue
		}
		m.Runs = append(m.Runs, *er)
	}
	// Multipliers: a fork family shares one.
	family := func(r *ExportRun) int64 {
		mul := r.Multiplier
		for i := range m.Runs {
			o := &m.Runs[i]
			if o.ForkParent == r.RunID || r.ForkParent == o.RunID {
				mul = max(mul, o.Multiplier)
			}
		}
		return mul
	}
	muls := make([]int64, len(m.Runs))
	for i := range m.Runs {
		muls[i] = family(&m.Runs[i])
	}
	for i := range m.Runs {
		m.Runs[i].Multiplier = muls[i]
	}
	return m, nil
}

func fracMultiplier(micro int64) int64 {
	mul := int64(1)
	for d := int64(1_000_000); d > 1 && micro%d != 0; d /= 10 {
		mul *= 10
	}
	return mul
}

func writeRun(m *ExportManifest, opts *ExportOptions, g *genRun, all []genRun, filesRoot string) (*ExportRun, error) {
	v2 := opts.Variant == Export2
	er := &ExportRun{ProjectID: opts.Project, RunID: g.runID, Prefix: SanitizePathPart(g.runID), SysID: g.sysID,
		Params: map[string]any{}, Metrics: map[string]*MetricStats{}, Strings: map[string][]SeriesValue{},
		Histograms: map[string][]HistogramValue{}, Multiplier: 1}
	popts := *opts
	if g.pending {
		popts.RowsPerPart = 1 // a part per batch: part_1 exists while part_0 is still .tmp
	}
	pw := newPartWriter(m.ProjectDir, er.Prefix, opts.Project, g.runID, &popts)
	ok := false
	defer func() {
		if !ok {
			pw.abort()
		}
	}()
	noteStep := func(micro int64) {
		er.Multiplier = max(er.Multiplier, fracMultiplier(micro))
	}
	created := baseMillis + int64(g.index)*3_600_000
	er.CreatedAt = created

	// Parameters: one batch.
	var rows []rowSpec
	atom := func(path, typ string, kind int, set func(*rowSpec)) {
		r := rowSpec{path: path, typ: typ, kind: kind}
		if set != nil {
			set(&r)
		}
		rows = append(rows, r)
		switch kind {
		case vInt:
			er.Params[path] = r.i
		case vFloat:
			er.Params[path] = r.f
		case vStr:
			er.Params[path] = r.s
		case vBool:
			er.Params[path] = r.b
		case vTime:
			er.Params[path] = ExportTime(r.i)
		case vSet:
			s := append([]string{}, r.set...) // an empty set is [], not null
			sort.Strings(s)
			er.Params[path] = s
		case vNull:
			er.NullParams = append(er.NullParams, path)
		}
	}
	er.Name = fmt.Sprintf("exp-%d", g.index)
	tags := []string{"run-" + strconv.Itoa(g.index), "baseline"}
	groupTags := []string{"group-a"}
	er.Tags = []string{"baseline", "run-" + strconv.Itoa(g.index)}
	er.GroupTags = []string{"group-a"}
	if !v2 {
		atom("sys/custom_run_id", "string", vStr, func(r *rowSpec) { r.s = g.runID })
		atom("sys/family", "string", vStr, func(r *rowSpec) { r.s = g.runID })
	} else {
		atom("sys/description", "string", vStr, func(r *rowSpec) { r.s = "" })
		atom("sys/hostname", "string", vStr, func(r *rowSpec) { r.s = "host-1" })
		atom("sys/failed", "bool", vBool, func(r *rowSpec) { r.b = g.failed })
		er.Failed = g.failed
	}
	atom("sys/id", "string", vStr, func(r *rowSpec) { r.s = g.sysID })
	atom("sys/name", "string", vStr, func(r *rowSpec) { r.s = er.Name })
	atom("sys/creation_time", "datetime", vTime, func(r *rowSpec) { r.i = created })
	atom("sys/tags", "string_set", vSet, func(r *rowSpec) { r.set = tags })
	atom("sys/group_tags", "string_set", vSet, func(r *rowSpec) { r.set = groupTags })
	if g.fork != nil {
		er.ForkParent, er.ForkStepMicro = g.fork.parent, g.fork.step
		atom("sys/forking/parent", "string", vStr, func(r *rowSpec) { r.s = g.fork.parent })
		atom("sys/forking/step", "float", vFloat, func(r *rowSpec) { r.f = float64(g.fork.step) / 1e6 })
		noteStep(g.fork.step)
	}
	atom("parameters/lr", "float", vFloat, func(r *rowSpec) { r.f = 0.001 * float64(g.index+1) })
	atom("parameters/batch_size", "int", vInt, func(r *rowSpec) { r.i = int64(32 << g.index) })
	atom("parameters/optimizer", "string", vStr, func(r *rowSpec) { r.s = "adam" })
	atom("parameters/amp", "bool", vBool, func(r *rowSpec) { r.b = g.index%2 == 0 })
	atom("parameters/layers", "string_set", vSet, func(r *rowSpec) { r.set = []string{"fc", "conv"} })
	atom("parameters/frozen_layers", "string_set", vSet, func(r *rowSpec) { r.set = []string{} }) // a StringSet with no members
	atom("parameters/started", "datetime", vTime, func(r *rowSpec) { r.i = created + 1500 })
	if !v2 {
		// fetch_runs_table is wide: melting it gives every run a row for
		// every other run's attributes, with a null value.
		atom(fmt.Sprintf("parameters/only_run_%d", (g.index+1)%max(len(all), 1)), "float", vNull, nil)
		atom("parameters/other_note", "string", vNull, nil)
	}
	if err := pw.write(rows); err != nil {
		return nil, err
	}

	// Metrics.
	M := opts.Metrics
	steps := g.points / M
	er.Points = steps * M
	metricTime := func(s, i int) int64 {
		if v2 {
			return created + 10 + int64(s*M+i)
		}
		return created + 10 + int64(s)
	}
	value := func(s, i int) float64 { return float64(i) + 1/(1+float64(s)) + float64(g.index)/1000 }
	stepAt := func(s int) int64 { return g.firstMic + int64(s)*g.stepInc }
	rows = rows[:0]
	flush := func() error {
		if len(rows) >= opts.BatchRows {
			if err := pw.write(rows); err != nil {
				return err
			}
			rows = rows[:0]
		}
		return nil
	}
	addPoint := func(s, i int) error {
		micro, ts, v := stepAt(s), metricTime(s, i), value(s, i)
		path := metricPath(i)
		rows = append(rows, rowSpec{path: path, typ: "float_series", hasStep: true, step: micro, hasTS: true, ts: ts, kind: vFloat, f: v})
		st := er.Metrics[path]
		if st == nil {
			st = &MetricStats{FirstStepMicro: micro, First: v, FirstTime: ts}
			er.Metrics[path] = st
		}
		st.Count++
		st.LastStepMicro, st.Last, st.LastTime = micro, v, ts
		st.Sum += v
		noteStep(micro)
		return flush()
	}
	if v2 {
		for i := 0; i < M; i++ {
			for s := 0; s < steps; s++ {
				if err := addPoint(s, i); err != nil {
					return nil, err
				}
			}
		}
	} else {
		for s := 0; s < steps; s++ {
			for i := 0; i < M; i++ {
				if err := addPoint(s, i); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := pw.write(rows); err != nil {
		return nil, err
	}

	// Series: string series (notes and console) and histograms.
	rows = rows[:0]
	type seriesRow struct {
		attr string
		k    int
	}
	stdout, stderr := "runtime/stdout", "runtime/stderr"
	if v2 {
		stdout, stderr = "monitoring/1a2b3c4d/stdout", "monitoring/1a2b3c4d/stderr"
	}
	nStr := max(opts.StringValues, 0)
	nHist := max(opts.Histograms, 0)
	var series []seriesRow
	attrs := []string{"train/notes", stdout, stderr, "grads/l1"}
	counts := map[string]int{"train/notes": nStr, stdout: nStr, stderr: nStr / 2, "grads/l1": nHist}
	if v2 {
		// Attribute by attribute.
		for _, a := range attrs {
			for k := 0; k < counts[a]; k++ {
				series = append(series, seriesRow{a, k})
			}
		}
	} else {
		// By step, then attribute (a stacked fetch_series frame).
		maxK := max(nStr, nHist)
		sorted := append([]string(nil), attrs...)
		sort.Strings(sorted)
		for k := 0; k < maxK; k++ {
			for _, a := range sorted {
				if k < counts[a] {
					series = append(series, seriesRow{a, k})
				}
			}
		}
	}
	for _, sr := range series {
		ts := created + 20 + int64(sr.k)
		switch sr.attr {
		case "train/notes":
			micro := stepAt(sr.k)
			text := fmt.Sprintf("note %d of %s", sr.k, g.runID)
			rows = append(rows, rowSpec{path: sr.attr, typ: "string_series", hasStep: true, step: micro, hasTS: true, ts: ts, kind: vStr, s: text})
			er.Strings[sr.attr] = append(er.Strings[sr.attr], SeriesValue{micro, text})
			noteStep(micro)
		case "grads/l1":
			micro := int64(sr.k) * 1_000_000
			h := HistogramValue{StepMicro: micro, Edges: []float64{0, 0.5, 1, 2}, Values: []float64{float64(sr.k), 2, float64(sr.k) + 0.5}}
			typ := "COUNTING"
			rows = append(rows, rowSpec{path: sr.attr, typ: "histogram_series", hasStep: true, step: micro, hasTS: true, ts: ts, kind: vHist,
				hist: exportHist{Type: &typ, Edges: ptrs(h.Edges), Values: ptrs(h.Values)}})
			er.Histograms[sr.attr] = append(er.Histograms[sr.attr], h)
			noteStep(micro)
		default:
			// Console lines: neptune-scale logs them at micro-steps,
			// which do not count towards the multiplier.
			micro := int64(sr.k + 1)
			if v2 {
				micro = int64(sr.k) * 1_000_000
			}
			text := fmt.Sprintf("%s line %d\n", filepath.Base(sr.attr), sr.k)
			rows = append(rows, rowSpec{path: sr.attr, typ: "string_series", hasStep: true, step: micro, hasTS: true, ts: ts, kind: vStr, s: text})
			er.Console = append(er.Console, ConsoleLine{Path: sr.attr, Text: text})
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := pw.write(rows); err != nil {
		return nil, err
	}

	// Files.
	rows = rows[:0]
	writeFile := func(rel string, data []byte, missing bool) (string, error) {
		local := filepath.Join(filesRoot, filepath.FromSlash(rel))
		if missing {
			return "", nil
		}
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			return "", fmt.Errorf("write export: %w", err)
		}
		if err := os.WriteFile(local, data, 0o644); err != nil {
			return "", fmt.Errorf("write export: %w", err)
		}
		return local, nil
	}
	if opts.FileSeries > 0 {
		var rel string
		if v2 {
			rel = opts.Project + "/" + g.runID + "/artifacts/sample"
		} else {
			rel = er.Prefix + "/artifacts/sample.png"
		}
		local, err := writeFile(rel, pngBytes, false)
		if err != nil {
			return nil, err
		}
		p := rel
		rows = append(rows, rowSpec{path: "artifacts/sample", typ: "file", kind: vFile, fileVal: exportFileValue{Path: &p}})
		er.Files = append(er.Files, ExportFile{Attr: "artifacts/sample", Type: "file", Rel: rel, Local: local})
		for k := 0; k < opts.FileSeries; k++ {
			micro := stepAt(k)
			if v2 {
				micro = int64(k) * 1_000_000
				rel = fmt.Sprintf("%s/%s/images/preds/%d.png", opts.Project, g.runID, k)
			} else {
				rel = fmt.Sprintf("%s/images/preds/step_%s.png", er.Prefix, strings.ReplaceAll(formatStep(micro), ".", "_"))
			}
			missing := opts.MissingFiles && k == opts.FileSeries-1
			local, err := writeFile(rel, pngBytes, missing)
			if err != nil {
				return nil, err
			}
			r := rowSpec{path: "images/preds", typ: "file_series", hasStep: true, step: micro, kind: vFile}
			r.fileVal.Path = new(string)
			*r.fileVal.Path = rel
			if !v2 {
				r.hasTS, r.ts = true, created+30+int64(k)
				noteStep(micro)
			}
			rows = append(rows, r)
			er.Files = append(er.Files, ExportFile{Attr: "images/preds", Type: "file_series", StepMicro: micro, Rel: rel, Local: local, Missing: missing})
		}
		er.FileSeriesIsIndex = v2
		if v2 {
			rel = opts.Project + "/" + g.runID + "/source_code/files"
			local, err := writeFile(rel+"/source.zip", []byte("PK\x05\x06"+strings.Repeat("\x00", 18)), false)
			if err != nil {
				return nil, err
			}
			p := rel
			rows = append(rows, rowSpec{path: "source_code/files", typ: "file_set", kind: vFile, fileVal: exportFileValue{Path: &p}})
			er.Files = append(er.Files, ExportFile{Attr: "source_code/files", Type: "file_set", Rel: rel, Local: local})
			list, _ := json.Marshal([]map[string]any{{"filePath": "model.pt", "fileHash": "abc", "type": "S3", "size": 10}})
			rel = opts.Project + "/" + g.runID + "/artifacts/model/files_list.json"
			local, err = writeFile(rel, list, false)
			if err != nil {
				return nil, err
			}
			p2 := rel
			rows = append(rows, rowSpec{path: "artifacts/model", typ: "artifact", kind: vFile, fileVal: exportFileValue{Path: &p2}})
			er.Files = append(er.Files, ExportFile{Attr: "artifacts/model", Type: "artifact", Rel: rel, Local: local})
		}
	}
	if err := pw.write(rows); err != nil {
		return nil, err
	}
	parts, err := pw.finish(g.pending)
	if err != nil {
		return nil, err
	}
	ok = true
	er.Parts = parts
	switch w := pw.(type) {
	case *genericPartWriter[*int64]:
		er.Rows = w.rows
	case *genericPartWriter[*[8]byte]:
		er.Rows = w.rows
	}
	if g.pending && len(parts) < 2 {
		// A run being exported has its later parts in place: make sure
		// there is one besides part_0.
		return nil, errors.New("write export: the pending run needs RowsPerPart small enough for two parts")
	}
	return er, nil
}

func ptrs(v []float64) []*float64 {
	out := make([]*float64, len(v))
	for i := range v {
		out[i] = &v[i]
	}
	return out
}

func metricPath(i int) string { return "train/metric_" + strconv.Itoa(i) }

// formatStep writes millionths as the exporter's step_<step:f> does.
func formatStep(micro int64) string {
	return strconv.FormatInt(micro/1_000_000, 10) + "." + fmt.Sprintf("%06d", micro%1_000_000)
}

// Time returns the instant.
func (t ExportTime) Time() time.Time { return time.UnixMilli(int64(t)).UTC() }

// ExportRowSpec is one row for WriteExportPart. Empty strings and nil
// pointers are nulls.
type ExportRowSpec struct {
	Project, Run, Path, Type string
	Step                     *int64 // millionths, any sign
	Time                     *int64 // unix ms
	Int                      *int64
	Float                    *float64
	Str                      *string
	Bool                     *bool
	Datetime                 *int64   // unix ms
	Set                      []string // nil: null
	File                     *string
	Histogram                *ExportHistogram
}

// ExportHistogram is a histogram_value.
type ExportHistogram struct {
	Type          string
	Edges, Values []float64
}

// WriteExportPart writes one part file holding rows as given (for tests of
// rows the generator does not make), one row group per batchRows rows (0:
// one group).
func WriteExportPart(path string, rows []ExportRowSpec, batchRows int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write export part: %w", err)
	}
	w := parquet.NewGenericWriter[exportRow[*[8]byte]](f, parquet.Compression(&parquet.Snappy), parquet.DataPageVersion(1))
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	if batchRows <= 0 {
		batchRows = max(len(rows), 1)
	}
	for start := 0; start < len(rows); start += batchRows {
		batch := rows[start:min(start+batchRows, len(rows))]
		out := make([]exportRow[*[8]byte], len(batch))
		for i, r := range batch {
			e := exportRow[*[8]byte]{ProjectID: str(r.Project), RunID: str(r.Run), AttributePath: str(r.Path), AttributeType: str(r.Type),
				Timestamp: r.Time, IntValue: r.Int, FloatValue: r.Float, StringValue: r.Str, BoolValue: r.Bool, DatetimeValue: r.Datetime}
			if r.Step != nil {
				var b [8]byte
				u := uint64(*r.Step)
				for k := 7; k >= 0; k-- {
					b[k] = byte(u)
					u >>= 8
				}
				e.Step = &b
			}
			if r.Set != nil {
				e.StringSetValue = make([]*string, len(r.Set))
				for k := range r.Set {
					e.StringSetValue[k] = &r.Set[k]
				}
			}
			if r.File != nil {
				e.FileValue = &exportFileValue{Path: r.File}
			}
			if h := r.Histogram; h != nil {
				e.HistogramValue = &exportHist{Type: str(h.Type), Edges: ptrs(h.Edges), Values: ptrs(h.Values)}
			}
			out[i] = e
		}
		if _, err := w.Write(out); err != nil {
			f.Close()
			return fmt.Errorf("write export part: %w", err)
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return fmt.Errorf("write export part: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		f.Close()
		return fmt.Errorf("write export part: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write export part: %w", err)
	}
	return nil
}
