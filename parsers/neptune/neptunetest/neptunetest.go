// Package neptunetest writes synthetic Neptune offline data — neptune-client
// 1.x disk queues and neptune-scale SQLite databases — shaped like what the
// real clients write, for tests and benchmarks (make bench).
package neptunetest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/scalepb"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/sqlitedb"
)

// MetricsPerRun is how many float series the generators spread points
// over.
const MetricsPerRun = 10

// baseTime is the generated runs' start (2025-01-01T00:00:00Z).
const baseTime = 1735689600.0

func metricName(i int) string { return "train/metric_" + strconv.Itoa(i%MetricsPerRun) }

// AppendN1Record appends one queue line (with its newline) as
// neptune-client 1.14 writes it: json.dumps of {"obj", "version", "at"}.
// obj is the operation's JSON.
func AppendN1Record(dst []byte, version int64, at float64, obj []byte) []byte {
	dst = append(dst, `{"obj": `...)
	dst = append(dst, obj...)
	dst = append(dst, `, "version": `...)
	dst = strconv.AppendInt(dst, version, 10)
	dst = append(dst, `, "at": `...)
	dst = strconv.AppendFloat(dst, at, 'f', -1, 64)
	return append(dst, "}\n"...)
}

// AppendLogFloats appends a LogFloats operation with one point (what one
// run[path].append(value, step=step) call enqueues).
func AppendLogFloats(dst []byte, path string, value float64, step int64, ts float64) []byte {
	dst = append(dst, `{"type": "LogFloats", "path": [`...)
	dst = appendPath(dst, path)
	dst = append(dst, `], "values": [{"value": `...)
	dst = strconv.AppendFloat(dst, value, 'g', -1, 64)
	dst = append(dst, `, "step": `...)
	dst = strconv.AppendInt(dst, step, 10)
	dst = append(dst, `, "ts": `...)
	dst = strconv.AppendFloat(dst, ts, 'f', -1, 64)
	return append(dst, `}]}`...)
}

// AppendAssignString appends an AssignString operation.
func AppendAssignString(dst []byte, path, value string) []byte {
	dst = append(dst, `{"type": "AssignString", "path": [`...)
	dst = appendPath(dst, path)
	dst = append(dst, `], "value": `...)
	dst = strconv.AppendQuoteToASCII(dst, value)
	return append(dst, '}')
}

func appendPath(dst []byte, path string) []byte {
	start := 0
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			if start > 0 {
				dst = append(dst, ", "...)
			}
			dst = strconv.AppendQuoteToASCII(dst, path[start:i])
			start = i + 1
		}
	}
	return dst
}

// N1Run describes a generated neptune-client run.
type N1Run struct {
	Dir  string // the execution directory
	UUID string
}

// WriteN1Queue writes runs neptune-client 1.14 offline runs under
// dir/.neptune/offline/ (the 1.9+ layout), each with pointsPerRun float
// points, one LogFloats operation per point, spread over MetricsPerRun
// series at integer steps.
func WriteN1Queue(dir string, runs, pointsPerRun int) ([]N1Run, error) {
	var out []N1Run
	for r := 0; r < runs; r++ {
		uuid := fmt.Sprintf("00000000-0000-4000-8000-%012d", r)
		exec := filepath.Join(dir, ".neptune", "offline", fmt.Sprintf("run__%s__%d__bench%03d", uuid, 1000+r, r%1000))
		if err := os.MkdirAll(exec, 0o755); err != nil {
			return nil, fmt.Errorf("write queue: %w", err)
		}
		created := time.Unix(int64(baseTime), 0).UTC().Format("2006-01-02T15:04:05.000000+00:00")
		meta := fmt.Sprintf("{\n  \"mode\": \"offline\",\n  \"containerId\": %q,\n  \"containerType\": \"run\",\n  \"structureVersion\": 3,\n  \"neptuneClientVersion\": \"1.14.0\",\n  \"createdAt\": %q\n}", uuid, created)
		if err := os.WriteFile(filepath.Join(exec, "metadata.json"), []byte(meta), 0o644); err != nil {
			return nil, fmt.Errorf("write queue: %w", err)
		}
		f, err := os.Create(filepath.Join(exec, "data-1.log"))
		if err != nil {
			return nil, fmt.Errorf("write queue: %w", err)
		}
		var buf, obj []byte
		version := int64(1)
		at := baseTime
		obj = AppendAssignString(obj[:0], "sys/name", fmt.Sprintf("bench-run-%d", r))
		buf = AppendN1Record(buf, version, at, obj)
		for i := 0; i < pointsPerRun; i++ {
			version++
			step := int64(i / MetricsPerRun)
			ts := baseTime + float64(i)*0.001
			obj = AppendLogFloats(obj[:0], metricName(i), 1/(1+float64(step))+float64(i%MetricsPerRun), step, ts)
			buf = AppendN1Record(buf, version, ts+0.0001, obj)
			if len(buf) > 1<<20 {
				if _, err := f.Write(buf); err != nil {
					f.Close()
					return nil, fmt.Errorf("write queue: %w", err)
				}
				buf = buf[:0]
			}
		}
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return nil, fmt.Errorf("write queue: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("write queue: %w", err)
		}
		for _, name := range []string{"last_put_version", "last_ack_version"} {
			v := strconv.FormatInt(version, 10)
			if name == "last_ack_version" {
				v = "0"
			}
			if err := os.WriteFile(filepath.Join(exec, name), []byte(v), 0o644); err != nil {
				return nil, fmt.Errorf("write queue: %w", err)
			}
		}
		out = append(out, N1Run{Dir: exec, UUID: uuid})
	}
	return out, nil
}

// ScaleDB writes a neptune-scale database. It is not safe for concurrent
// use.
type ScaleDB struct {
	w   *sqlitedb.Writer
	buf []byte
}

// ScaleOptions describe a generated database.
type ScaleOptions struct {
	Project string // default "bench/project"
	RunID   string // default "bench-run"
	Fast    bool   // no fsync (benchmark inputs)
}

// CreateScaleDB creates a database at path (and its directory) with the
// v5 schema and the metadata row.
func CreateScaleDB(path string, opts ScaleOptions) (*ScaleDB, error) {
	if opts.Project == "" {
		opts.Project = "bench/project"
	}
	if opts.RunID == "" {
		opts.RunID = "bench-run"
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	w, err := sqlitedb.Create(path, sqlitedb.Metadata{Project: opts.Project, RunID: opts.RunID}, sqlitedb.WriterOptions{Fast: opts.Fast})
	if err != nil {
		return nil, err
	}
	return &ScaleDB{w: w}, nil
}

// Fork is a fork point for CreateRun.
type Fork struct {
	ParentRunID string
	StepMicro   int64 // the step in millionths
}

// CreateRun appends a CREATE_RUN row.
func (d *ScaleDB) CreateRun(experiment string, created time.Time, fork *Fork) error {
	r := scalepb.Run{HasExperimentID: experiment != "", ExperimentID: experiment,
		HasCreationTime: true, CreationTime: ts(created), HasInherit: true, InheritConfigs: true}
	if fork != nil {
		r.Fork = &scalepb.ForkPoint{ParentRunID: fork.ParentRunID, HasStep: true, Step: microStep(fork.StepMicro)}
	}
	d.buf = scalepb.AppendRun(d.buf[:0], &r)
	return d.w.Insert(sqlitedb.Row{Time: created.UnixMilli(), Type: 1, Op: d.buf})
}

func ts(t time.Time) scalepb.Timestamp {
	return scalepb.Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
}

func microStep(m int64) scalepb.Step {
	return scalepb.Step{Whole: uint64(m / 1_000_000), Micro: uint64(m % 1_000_000)}
}

// Metric is one float value for Metrics.
type Metric struct {
	Path  string
	Value float64
}

// Metrics appends one UPDATE_SNAPSHOT row logging values at a step (in
// millionths), like one log_metrics call.
func (d *ScaleDB) Metrics(stepMicro int64, at time.Time, preview bool, values ...Metric) error {
	d.buf = d.appendMetrics(d.buf[:0], stepMicro, at, preview, values)
	return d.w.Insert(sqlitedb.Row{Time: at.UnixMilli(), Type: 0, Op: d.buf})
}

func (d *ScaleDB) appendMetrics(dst []byte, stepMicro int64, at time.Time, preview bool, values []Metric) []byte {
	s := scalepb.Snapshot{HasStep: true, Step: microStep(stepMicro), HasTime: true, Time: ts(at)}
	for _, v := range values {
		s.Append = append(s.Append, scalepb.Entry{Key: []byte(v.Path), Value: scalepb.Value{Kind: scalepb.KindFloat64, Float: v.Value}})
	}
	if preview {
		s.HasPreview, s.Preview = true, scalepb.Preview{IsPreview: true}
	}
	return scalepb.AppendSnapshot(dst, &s)
}

// Tags appends a snapshot adding tags.
func (d *ScaleDB) Tags(at time.Time, add ...string) error {
	s := scalepb.Snapshot{HasTime: true, Time: ts(at)}
	for _, t := range add {
		s.Modify = append(s.Modify, scalepb.SetOp{Path: []byte("sys/tags"), Item: []byte(t), Op: scalepb.SetAdd})
	}
	d.buf = scalepb.AppendSnapshot(d.buf[:0], &s)
	return d.w.Insert(sqlitedb.Row{Time: at.UnixMilli(), Type: 0, Op: d.buf})
}

// Raw appends a row as is (for corrupt-data tests).
func (d *ScaleDB) Raw(opType int64, op []byte, at time.Time) error {
	return d.w.Insert(sqlitedb.Row{Time: at.UnixMilli(), Type: opType, Op: op})
}

// Close closes the database (SQLite checkpoints and removes the WAL).
func (d *ScaleDB) Close() error { return d.w.Close() }

// WriteScaleDB writes a neptune-scale database at path with one run of
// steps snapshots, each logging metricsPerStep float series at an integer
// step — points = steps × metricsPerStep.
func WriteScaleDB(path string, runID string, steps, metricsPerStep int) error {
	d, err := CreateScaleDB(path, ScaleOptions{RunID: runID, Fast: true})
	if err != nil {
		return err
	}
	start := time.Unix(int64(baseTime), 0).UTC()
	if err := d.CreateRun(runID, start, nil); err != nil {
		d.Close()
		return err
	}
	const batch = 1000
	rows := make([]sqlitedb.Row, 0, batch)
	bufs := make([][]byte, batch)
	values := make([]Metric, metricsPerStep)
	for i := range values {
		values[i].Path = metricName(i)
	}
	for s := 0; s < steps; s++ {
		at := start.Add(time.Duration(s) * time.Millisecond)
		for i := range values {
			values[i].Value = 1/(1+float64(s)) + float64(i)
		}
		k := len(rows)
		bufs[k] = d.appendMetrics(bufs[k][:0], int64(s)*1_000_000, at, false, values)
		rows = append(rows, sqlitedb.Row{Time: at.UnixMilli(), Type: 0, Op: bufs[k]})
		if len(rows) == batch || s == steps-1 {
			if err := d.w.Insert(rows...); err != nil {
				d.Close()
				return err
			}
			rows = rows[:0]
		}
	}
	return d.Close()
}

// N1Container describes a generated neptune-client model registry or
// project container.
type N1Container struct {
	Type string // model, model_version or project
	UUID string
	Dir  string // the container's directory
	// What it holds at the end: attribute paths with a value, series with
	// points, and records written.
	Attributes, Series, Records int
}

// n1ContainerOps are the operations neptune-client 1.14 enqueues for an
// unsynced container of each type: init_model(name=...) and
// init_model_version(name=...) assign sys/name (_write_initial_attributes),
// then user code uploads, assigns, logs and tags. Each entry is
// (series, obj JSON).
var n1ContainerOps = map[string][]struct {
	series bool
	obj    string
}{
	"model": {
		{false, `{"type": "AssignString", "path": ["sys", "name"], "value": "fraud detector"}`},
		{false, `{"type": "UploadFile", "path": ["signature"], "ext": "json", "file_path": "/home/researcher/models/signature.json", "tmp_file_name": null, "clean_after_upload": false}`},
		{false, `{"type": "AssignString", "path": ["data", "train_version"], "value": "2025-01"}`},
		{false, `{"type": "AddStrings", "path": ["sys", "tags"], "values": ["prod-candidate"]}`},
	},
	"model_version": {
		{false, `{"type": "AssignString", "path": ["sys", "name"], "value": "fraud detector v3"}`},
		{false, `{"type": "UploadFile", "path": ["model", "binary"], "ext": "pt", "file_path": "/home/researcher/models/model.pt", "tmp_file_name": null, "clean_after_upload": false}`},
		{false, `{"type": "AssignFloat", "path": ["validation", "acc"], "value": 0.97}`},
		{true, `{"type": "LogFloats", "path": ["training", "loss"], "values": [{"value": 0.5, "step": 0.0, "ts": 1735689600.1}, {"value": 0.25, "step": 1.0, "ts": 1735689600.2}]}`},
		{true, `{"type": "LogFloats", "path": ["training", "loss"], "values": [{"value": 0.125, "step": 2.0, "ts": 1735689600.3}]}`},
		{true, `{"type": "LogStrings", "path": ["notes"], "values": [{"value": "promoted", "step": null, "ts": 1735689600.4}]}`},
	},
	"project": {
		{false, `{"type": "AssignString", "path": ["general", "brief"], "value": "fraud models"}`},
		{true, `{"type": "LogFloats", "path": ["leaderboard", "best_acc"], "values": [{"value": 0.97, "step": null, "ts": 1735689600.5}]}`},
	},
}

// WriteN1Containers writes, under dir/.neptune/async/ in the 1.9+ layout
// (<type>__<uuid>__<pid>__<rand8>/ with data-1.log, metadata.json and the
// version files, nothing acknowledged), one unsynced container of each
// given type (model, model_version, project), as neptune-client 1.14
// leaves them when the process ends before the queue is synced.
func WriteN1Containers(dir string, types ...string) ([]N1Container, error) {
	var out []N1Container
	for i, typ := range types {
		ops, ok := n1ContainerOps[typ]
		if !ok {
			return nil, fmt.Errorf("write container: unknown container type %q", typ)
		}
		uuid := fmt.Sprintf("c0c0c0c0-0000-4000-8000-%012d", i)
		exec := filepath.Join(dir, ".neptune", "async", fmt.Sprintf("%s__%s__%d__cont%04d", typ, uuid, 2000+i, i))
		if err := os.MkdirAll(exec, 0o755); err != nil {
			return nil, fmt.Errorf("write container: %w", err)
		}
		created := time.Unix(int64(baseTime), 0).UTC().Format("2006-01-02T15:04:05.000000+00:00")
		meta := fmt.Sprintf("{\n  \"mode\": \"async\",\n  \"containerId\": %q,\n  \"containerType\": %q,\n  \"structureVersion\": 3,\n  \"neptuneClientVersion\": \"1.14.0\",\n  \"createdAt\": %q\n}", uuid, typ, created)
		if err := os.WriteFile(filepath.Join(exec, "metadata.json"), []byte(meta), 0o644); err != nil {
			return nil, fmt.Errorf("write container: %w", err)
		}
		c := N1Container{Type: typ, UUID: uuid, Dir: exec, Records: len(ops)}
		var buf []byte
		paths := map[string]bool{}
		for v, op := range ops {
			buf = AppendN1Record(buf, int64(v+1), baseTime+float64(v), []byte(op.obj))
			path := pathOf(op.obj)
			if !paths[path] {
				paths[path] = true
				if op.series {
					c.Series++
				} else {
					c.Attributes++
				}
			}
		}
		for name, content := range map[string][]byte{
			"data-1.log":       buf,
			"last_put_version": []byte(strconv.Itoa(len(ops))),
			"last_ack_version": []byte("0"),
		} {
			if err := os.WriteFile(filepath.Join(exec, name), content, 0o644); err != nil {
				return nil, fmt.Errorf("write container: %w", err)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// pathOf returns the attribute path of an operation's JSON.
func pathOf(obj string) string {
	var op struct{ Path []string }
	if err := json.Unmarshal([]byte(obj), &op); err != nil {
		panic(err) // the table above is valid JSON
	}
	return strings.Join(op.Path, "/")
}
