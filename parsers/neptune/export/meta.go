package export

import (
	"fmt"
	"path"
	"strings"

	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
)

// runMeta is what a run's part_0 says about the run: its identity and the
// sys/* atoms the run event needs.
type runMeta struct {
	projectID, runID string

	name        string
	created     int64 // unix ms
	hasCreated  bool
	customID    string // sys/custom_run_id
	sysID       string // sys/id
	forkParent  string // sys/forking/parent
	forkStep    float64
	hasForkStep bool

	// Which exporter wrote the run, from attributes only one of the Neptune
	// generations has.
	marks2, marks3 bool
}

// maxMetaGroups bounds how many leading row groups of part_0 are searched
// for parameters. The exporter writes a run's parameters as its first
// batch, so they fill the first row group(s).
const maxMetaGroups = 16

func want(cols ...int) [numCols]bool {
	var w [numCols]bool
	for _, c := range cols {
		w[c] = true
	}
	return w
}

// classify turns a read failure into an I/O error (retry later) or a
// corruption.
func classify(p *partFile, err error) error {
	if p.ioError() != nil {
		return &ioError{fmt.Errorf("read %s: %w", p.path, err)}
	}
	if isIOError(err) {
		return err
	}
	return fmt.Errorf("read %s: %w: %w", p.path, err, ErrCorrupt)
}

// seekGroup positions the reader at the start of row group g.
func (r *rowReader) seekGroup(g int) {
	r.row = 0
	for i, rg := range r.part.pf.RowGroups() {
		if i == g {
			break
		}
		r.row += max(rg.NumRows(), 0)
	}
	r.rg, r.rgLeft = g, 0
}

// readMeta reads a run's identity from the first row of part_0 and its
// sys/* parameters from the leading row groups that hold parameters. It
// reads the attribute_type column of a row group first and the values
// only when the group has parameters, so Discover stays cheap for runs
// with millions of points.
func readMeta(file string) (m *runMeta, err error) {
	p, err := openPart(file)
	if err != nil {
		return nil, err
	}
	defer p.close()
	m = &runMeta{}
	if p.rows == 0 {
		return m, nil
	}
	in := &interner{}
	var rd rowData
	r, err := newRowReader(p, in, want(cProject, cRun))
	if err != nil {
		return nil, err
	}
	ok := r.read(&rd)
	r.close()
	if !ok {
		return nil, classify(p, r.err)
	}
	m.projectID, m.runID = rd.project, rd.run
	groups := p.pf.RowGroups()
	for g := 0; g < len(groups) && g < maxMetaGroups; g++ {
		n := groups[g].NumRows()
		r1, err := newRowReader(p, in, want(cType))
		if err != nil {
			return nil, err
		}
		r1.seekGroup(g)
		atoms := 0
		for k := int64(0); k < n && r1.read(&rd); k++ {
			switch {
			case rd.typ.atom():
				atoms++
			case rd.typ == tHistogramSeries:
				m.marks3 = true
			case rd.typ == tFileSet || rd.typ == tArtifact:
				m.marks2 = true
			}
		}
		r1.close()
		if r1.err != nil {
			return nil, classify(p, r1.err)
		}
		if atoms == 0 {
			break
		}
		r2, err := newRowReader(p, in, want(cPath, cType, cInt, cFloat, cString, cBool, cDatetime))
		if err != nil {
			return nil, err
		}
		r2.seekGroup(g)
		for k := int64(0); k < n && r2.read(&rd); k++ {
			if rd.typ.atom() {
				m.note(&rd)
			}
		}
		r2.close()
		if r2.err != nil {
			return nil, classify(p, r2.err)
		}
	}
	return m, nil
}

// note records a parameter row the run event or variant detection needs.
func (m *runMeta) note(rd *rowData) {
	switch rd.path {
	case "sys/name":
		if rd.hasStr {
			m.name = string(rd.str)
		}
	case "sys/creation_time":
		if rd.hasDT {
			m.created, m.hasCreated = rd.dt, true
		}
	case "sys/custom_run_id":
		if rd.hasStr {
			m.customID = string(rd.str)
		}
	case "sys/id":
		if rd.hasStr {
			m.sysID = string(rd.str)
		}
	case "sys/forking/parent":
		if rd.hasStr {
			m.forkParent = string(rd.str)
		}
	case "sys/forking/step":
		switch {
		case rd.hasFloat:
			m.forkStep, m.hasForkStep = rd.f, true
		case rd.hasInt:
			m.forkStep, m.hasForkStep = float64(rd.i), true
		}
	case "sys/family", "sys/archived":
		m.marks3 = true
	case "sys/failed", "sys/hostname", "sys/description", "sys/running_time", "sys/monitoring_time", "sys/size", "sys/trashed":
		m.marks2 = true
	default:
		if rd.hasStr || rd.hasFloat || rd.hasInt || rd.hasBool || rd.hasDT {
			if strings.HasPrefix(rd.path, "sys/experiment/") || strings.HasPrefix(rd.path, "sys/diagnostics/") {
				m.marks3 = true
			}
		}
	}
}

// Export variants, as recorded in the config (neptune/export/variant).
const (
	variant2 = "neptune2"
	variant3 = "neptune3"
)

// variant decides which exporter wrote a run: run_id is the custom run id
// in neptune3 exports and sys/id in neptune2 ones; failing that,
// attributes only one generation has decide; "" when nothing does.
func (m *runMeta) variant() string {
	switch {
	case m.customID != "" && m.customID == m.runID:
		return variant3
	case m.sysID != "" && m.sysID == m.runID:
		return variant2
	case m.marks3 && !m.marks2:
		return variant3
	case m.marks2 && !m.marks3:
		return variant2
	}
	return ""
}

// partScan is what a pre-scan of one part learns.
type partScan struct {
	steps mapping.StepScan
	rows  int64
	// fileSeries counts file_series rows, and indexed those whose file
	// has the neptune2 layout <project>/<run>/<attribute>/<index>.<ext>
	// with the index in the step column.
	fileSeries, indexed int
	err                 error
}

// prescanPart reads a part's step, type and path columns for the steps
// that choose the multiplier: float, string (console lines excepted),
// histogram and file series steps.
func prescanPart(file string) (sc partScan) {
	p, err := openPart(file)
	if err != nil {
		sc.err = err
		return sc
	}
	defer p.close()
	r, err := newRowReader(p, &interner{}, want(cProject, cRun, cPath, cType, cStep, cFile))
	if err != nil {
		sc.err = err
		return sc
	}
	defer r.close()
	var rd rowData
	for r.read(&rd) {
		sc.rows++
		switch rd.typ {
		case tFloatSeries, tHistogramSeries:
		case tStringSeries:
			if _, console := mapping.ConsoleStream(rd.path); console {
				continue
			}
		case tFileSeries:
			sc.fileSeries++
			if rd.hasFile && rd.hasStep && rd.stepErr == nil && indexLayout(rd.project, rd.run, rd.path, string(rd.file), rd.step) {
				sc.indexed++
			}
		default:
			continue
		}
		if rd.hasStep && rd.stepErr == nil {
			sc.steps.Add(rd.step)
		}
	}
	if r.err != nil {
		sc.err = classify(p, r.err)
	}
	return sc
}

// indexLayout reports whether a file-series file has the neptune2
// exporter's layout, where the step column is the file's index in the
// series: <project_id>/<run_id>/<attribute_path>/<index>.<ext>.
func indexLayout(project, run, attr, file string, micro int64) bool {
	dir, base := path.Split(file)
	if dir != project+"/"+run+"/"+attr+"/" {
		return false
	}
	stem, _, _ := strings.Cut(base, ".")
	if stem == "" || strings.TrimLeft(stem, "0123456789") != "" || len(stem) > 12 {
		return false
	}
	var idx int64
	for _, c := range stem {
		idx = idx*10 + int64(c-'0')
	}
	return micro == idx*mapping.MicroPerUnit
}
