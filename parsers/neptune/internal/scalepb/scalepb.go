// Package scalepb decodes and encodes the few protobuf messages that
// neptune-scale stores in its run_operations table (package
// neptune.ingest.v1: Run and UpdateRunSnapshot), by hand on top of
// protowire. Only the field numbers the agent needs are known; other fields
// are skipped, so newer client versions still decode.
//
// It is the only package of the module that imports google.golang.org/protobuf.
// Decoded byte slices alias the input: they are valid only as long as the
// input buffer is.
package scalepb

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrCorrupt reports bytes that are not a valid encoding of the expected
// message.
var ErrCorrupt = errors.New("corrupt protobuf message")

// Step is a Neptune step: Whole + Micro/1e6.
type Step struct {
	Whole uint64
	Micro uint64
}

// maxWhole keeps Whole*1e6+Micro inside int64.
const maxWhole = (math.MaxInt64 - 999_999) / 1_000_000

// MicroUnits returns the step in millionths, or false when it does not fit
// an int64 or Micro is out of range.
func (s Step) MicroUnits() (int64, bool) {
	if s.Micro >= 1_000_000 || s.Whole > maxWhole {
		return 0, false
	}
	return int64(s.Whole)*1_000_000 + int64(s.Micro), true
}

// Timestamp is a google.protobuf.Timestamp.
type Timestamp struct {
	Seconds int64
	Nanos   int32
}

// UnixMilli converts the timestamp to unix milliseconds.
func (t Timestamp) UnixMilli() int64 {
	return t.Seconds*1000 + int64(t.Nanos)/1_000_000
}

// ValueKind says which member of the Value oneof is set.
type ValueKind uint8

// The Value kinds. KindNone is an empty oneof, KindUnknown a member this
// package does not know.
const (
	KindNone ValueKind = iota
	KindFloat64
	KindInt64
	KindBool
	KindString
	KindTimestamp
	KindStringSet
	KindFileRef
	KindHistogram
	KindUnknown
)

var kindNames = [...]string{"none", "float64", "int64", "bool", "string", "timestamp", "string_set", "file_ref", "histogram", "unknown"}

func (k ValueKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// FileRef is a reference to an uploaded file.
type FileRef struct {
	Path      []byte // the destination key; equals file_upload_requests.destination
	SizeBytes int64
	MimeType  []byte
}

// Histogram holds bin edges and either counts or densities.
type Histogram struct {
	Edges        []float64
	Counts       []uint64
	Densities    []float64
	HasCounts    bool
	HasDensities bool
}

// Value is one neptune.ingest.v1.Value.
type Value struct {
	Kind    ValueKind
	Float   float64
	Int     int64
	Bool    bool
	Str     []byte // KindString
	Time    Timestamp
	Strings [][]byte   // KindStringSet
	File    FileRef    // KindFileRef
	Hist    *Histogram // KindHistogram
}

// Entry is one map entry of assign or append.
type Entry struct {
	Key   []byte
	Value Value
}

// Set operations of ModifyStringSet.
const (
	SetNoop   = 0
	SetAdd    = 1
	SetRemove = 2
)

// SetOp is one ADD or REMOVE of modify_sets, flattened.
type SetOp struct {
	Path []byte // e.g. sys/tags
	Item []byte
	Op   int32
}

// Preview is the preview marker of a snapshot.
type Preview struct {
	IsPreview       bool
	CompletionRatio float32
}

// Snapshot is one neptune.ingest.v1.UpdateRunSnapshot. Its slices are
// reused by DecodeSnapshot.
type Snapshot struct {
	HasStep    bool
	Step       Step
	HasTime    bool
	Time       Timestamp
	HasPreview bool
	Preview    Preview
	Assign     []Entry
	Append     []Entry
	Modify     []SetOp
}

// Reset clears s, keeping its slices' storage.
func (s *Snapshot) Reset() {
	s.HasStep, s.Step = false, Step{}
	s.HasTime, s.Time = false, Timestamp{}
	s.HasPreview, s.Preview = false, Preview{}
	s.Assign = s.Assign[:0]
	s.Append = s.Append[:0]
	s.Modify = s.Modify[:0]
}

// ForkPoint names the run and step a run was forked from.
type ForkPoint struct {
	HasParentProject bool
	ParentProject    string
	ParentRunID      string
	HasStep          bool
	Step             Step
}

// Run is one neptune.ingest.v1.Run (a CREATE_RUN operation).
type Run struct {
	RunID           string
	Fork            *ForkPoint
	HasCreationTime bool
	CreationTime    Timestamp
	Family          string
	HasExperimentID bool
	ExperimentID    string
	Tracker         string
	HasInherit      bool
	InheritConfigs  bool
}

// Field numbers, from neptune-api common.proto (see docs/neptune-formats.md §2.2.3).
const (
	snapStep       = 1
	snapTimestamp  = 2
	snapAssign     = 4
	snapModifySets = 5
	snapAppend     = 8
	snapPreview    = 10

	runRunID        = 1
	runForkPoint    = 2
	runCreationTime = 3
	runFamily       = 4
	runExperimentID = 5
	runTracker      = 8
	runInherit      = 9

	forkParentProject = 1
	forkParentRunID   = 2
	forkStep          = 4

	valFloat64   = 1
	valInt64     = 3
	valBool      = 5
	valString    = 6
	valTimestamp = 8
	valStringSet = 12
	valFileRef   = 13
	valHistogram = 14

	histEdges     = 1
	histCounts    = 4
	histDensities = 5
)

func corrupt(what string) error { return fmt.Errorf("%w: %s", ErrCorrupt, what) }

// field reads one tag and returns the field number, wire type and the
// remaining bytes after the tag.
func field(b []byte) (protowire.Number, protowire.Type, []byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, corrupt("bad tag")
	}
	return num, typ, b[n:], nil
}

func skip(num protowire.Number, typ protowire.Type, b []byte) ([]byte, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return nil, corrupt("bad field value")
	}
	return b[n:], nil
}

func bytesField(typ protowire.Type, b []byte, what string) ([]byte, []byte, error) {
	if typ != protowire.BytesType {
		return nil, nil, corrupt(what + ": wrong wire type")
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, nil, corrupt(what + ": truncated")
	}
	return v, b[n:], nil
}

func varintField(typ protowire.Type, b []byte, what string) (uint64, []byte, error) {
	if typ != protowire.VarintType {
		return 0, nil, corrupt(what + ": wrong wire type")
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, nil, corrupt(what + ": truncated")
	}
	return v, b[n:], nil
}

func fixed64Field(typ protowire.Type, b []byte, what string) (uint64, []byte, error) {
	if typ != protowire.Fixed64Type {
		return 0, nil, corrupt(what + ": wrong wire type")
	}
	v, n := protowire.ConsumeFixed64(b)
	if n < 0 {
		return 0, nil, corrupt(what + ": truncated")
	}
	return v, b[n:], nil
}

func decodeStep(b []byte) (Step, error) {
	var s Step
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return s, err
		}
		switch num {
		case 1:
			s.Whole, b, err = varintField(typ, rest, "step.whole")
		case 2:
			s.Micro, b, err = varintField(typ, rest, "step.micro")
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

func decodeTimestamp(b []byte) (Timestamp, error) {
	var t Timestamp
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return t, err
		}
		var v uint64
		switch num {
		case 1:
			v, b, err = varintField(typ, rest, "timestamp.seconds")
			t.Seconds = int64(v)
		case 2:
			v, b, err = varintField(typ, rest, "timestamp.nanos")
			t.Nanos = int32(v)
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return t, err
		}
	}
	return t, nil
}

func decodePreview(b []byte) (Preview, error) {
	var p Preview
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return p, err
		}
		switch num {
		case 1:
			var v uint64
			v, b, err = varintField(typ, rest, "preview.is_preview")
			p.IsPreview = v != 0
		case 2:
			if typ != protowire.Fixed32Type {
				return p, corrupt("preview.completion_ratio: wrong wire type")
			}
			v, n := protowire.ConsumeFixed32(rest)
			if n < 0 {
				return p, corrupt("preview.completion_ratio: truncated")
			}
			p.CompletionRatio = math.Float32frombits(v)
			b = rest[n:]
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// DecodeSnapshot decodes an UpdateRunSnapshot into s, which it resets
// first. Keys and strings alias b.
func DecodeSnapshot(b []byte, s *Snapshot) error {
	s.Reset()
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		var msg []byte
		switch num {
		case snapStep:
			if msg, b, err = bytesField(typ, rest, "step"); err == nil {
				s.Step, err = decodeStep(msg)
				s.HasStep = true
			}
		case snapTimestamp:
			if msg, b, err = bytesField(typ, rest, "timestamp"); err == nil {
				s.Time, err = decodeTimestamp(msg)
				s.HasTime = true
			}
		case snapAssign, snapAppend:
			if msg, b, err = bytesField(typ, rest, "map entry"); err == nil {
				var e Entry
				if e, err = decodeEntry(msg); err == nil {
					if num == snapAssign {
						s.Assign = append(s.Assign, e)
					} else {
						s.Append = append(s.Append, e)
					}
				}
			}
		case snapModifySets:
			if msg, b, err = bytesField(typ, rest, "modify_sets entry"); err == nil {
				s.Modify, err = decodeModifyEntry(msg, s.Modify)
			}
		case snapPreview:
			if msg, b, err = bytesField(typ, rest, "preview"); err == nil {
				s.Preview, err = decodePreview(msg)
				s.HasPreview = true
			}
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeEntry decodes a map<string, Value> entry.
func decodeEntry(b []byte) (Entry, error) {
	var e Entry
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return e, err
		}
		var msg []byte
		switch num {
		case 1:
			e.Key, b, err = bytesField(typ, rest, "map key")
		case 2:
			if msg, b, err = bytesField(typ, rest, "map value"); err == nil {
				e.Value, err = decodeValue(msg)
			}
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return e, err
		}
	}
	return e, nil
}

func decodeValue(b []byte) (Value, error) {
	var v Value
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return v, err
		}
		var (
			u   uint64
			msg []byte
		)
		switch num {
		case valFloat64:
			u, b, err = fixed64Field(typ, rest, "value.float64")
			v.Kind, v.Float = KindFloat64, math.Float64frombits(u)
		case valInt64:
			u, b, err = varintField(typ, rest, "value.int64")
			v.Kind, v.Int = KindInt64, int64(u)
		case valBool:
			u, b, err = varintField(typ, rest, "value.bool")
			v.Kind, v.Bool = KindBool, u != 0
		case valString:
			v.Str, b, err = bytesField(typ, rest, "value.string")
			v.Kind = KindString
		case valTimestamp:
			if msg, b, err = bytesField(typ, rest, "value.timestamp"); err == nil {
				v.Kind = KindTimestamp
				v.Time, err = decodeTimestamp(msg)
			}
		case valStringSet:
			if msg, b, err = bytesField(typ, rest, "value.string_set"); err == nil {
				v.Kind = KindStringSet
				v.Strings, err = decodeStringSet(msg)
			}
		case valFileRef:
			if msg, b, err = bytesField(typ, rest, "value.file_ref"); err == nil {
				v.Kind = KindFileRef
				v.File, err = decodeFileRef(msg)
			}
		case valHistogram:
			if msg, b, err = bytesField(typ, rest, "value.histogram"); err == nil {
				v.Kind = KindHistogram
				v.Hist, err = decodeHistogram(msg)
			}
		default:
			// A oneof member this package does not know: remember that
			// something was set, so the caller can report it.
			v.Kind = KindUnknown
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return v, err
		}
	}
	return v, nil
}

func decodeStringSet(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		if num == 1 {
			var s []byte
			if s, b, err = bytesField(typ, rest, "string_set.values"); err == nil {
				out = append(out, s)
			}
		} else {
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeFileRef(b []byte) (FileRef, error) {
	var f FileRef
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return f, err
		}
		switch num {
		case 1:
			f.Path, b, err = bytesField(typ, rest, "file_ref.path")
		case 2:
			var u uint64
			u, b, err = varintField(typ, rest, "file_ref.size_bytes")
			f.SizeBytes = int64(u)
		case 3:
			f.MimeType, b, err = bytesField(typ, rest, "file_ref.mime_type")
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return f, err
		}
	}
	return f, nil
}

// appendDoubles decodes a repeated double field, packed or not.
func appendDoubles(dst []float64, typ protowire.Type, b []byte, what string) ([]float64, []byte, error) {
	switch typ {
	case protowire.Fixed64Type:
		u, n := protowire.ConsumeFixed64(b)
		if n < 0 {
			return nil, nil, corrupt(what + ": truncated")
		}
		return append(dst, math.Float64frombits(u)), b[n:], nil
	case protowire.BytesType:
		packed, rest, err := bytesField(typ, b, what)
		if err != nil {
			return nil, nil, err
		}
		if len(packed)%8 != 0 {
			return nil, nil, corrupt(what + ": packed length")
		}
		for len(packed) > 0 {
			u, _ := protowire.ConsumeFixed64(packed)
			dst = append(dst, math.Float64frombits(u))
			packed = packed[8:]
		}
		return dst, rest, nil
	default:
		return nil, nil, corrupt(what + ": wrong wire type")
	}
}

// appendVarints decodes a repeated uint64 field, packed or not.
func appendVarints(dst []uint64, typ protowire.Type, b []byte, what string) ([]uint64, []byte, error) {
	switch typ {
	case protowire.VarintType:
		u, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil, nil, corrupt(what + ": truncated")
		}
		return append(dst, u), b[n:], nil
	case protowire.BytesType:
		packed, rest, err := bytesField(typ, b, what)
		if err != nil {
			return nil, nil, err
		}
		for len(packed) > 0 {
			u, n := protowire.ConsumeVarint(packed)
			if n < 0 {
				return nil, nil, corrupt(what + ": packed varint")
			}
			dst = append(dst, u)
			packed = packed[n:]
		}
		return dst, rest, nil
	default:
		return nil, nil, corrupt(what + ": wrong wire type")
	}
}

func decodeHistogram(b []byte) (*Histogram, error) {
	h := &Histogram{}
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		var msg []byte
		switch num {
		case histEdges:
			h.Edges, b, err = appendDoubles(h.Edges, typ, rest, "histogram.bin_edges")
		case histCounts:
			if msg, b, err = bytesField(typ, rest, "histogram.counts"); err == nil {
				// A oneof: the last member set wins.
				h.HasCounts, h.HasDensities, h.Densities, h.Counts = true, false, nil, h.Counts[:0]
				h.Counts, err = decodeRepeated(msg, h.Counts, nil)
			}
		case histDensities:
			if msg, b, err = bytesField(typ, rest, "histogram.densities"); err == nil {
				h.HasCounts, h.HasDensities, h.Counts, h.Densities = false, true, nil, h.Densities[:0]
				_, err = decodeRepeated(msg, nil, &h.Densities)
			}
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return nil, err
		}
	}
	return h, nil
}

// decodeRepeated reads field 1 of a Counts (uint64) or Densities (double)
// message.
func decodeRepeated(b []byte, counts []uint64, densities *[]float64) ([]uint64, error) {
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		switch {
		case num == 1 && densities == nil:
			counts, b, err = appendVarints(counts, typ, rest, "counts.values")
		case num == 1:
			*densities, b, err = appendDoubles(*densities, typ, rest, "densities.values")
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// decodeModifyEntry decodes a map<string, ModifySet> entry and appends its
// operations.
func decodeModifyEntry(b []byte, dst []SetOp) ([]SetOp, error) {
	var path, set []byte
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		switch num {
		case 1:
			path, b, err = bytesField(typ, rest, "modify_sets key")
		case 2:
			set, b, err = bytesField(typ, rest, "modify_sets value")
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return nil, err
		}
	}
	// ModifySet{ oneof type { ModifyStringSet string = 1; } }
	for len(set) > 0 {
		num, typ, rest, err := field(set)
		if err != nil {
			return nil, err
		}
		if num != 1 {
			if set, err = skip(num, typ, rest); err != nil {
				return nil, err
			}
			continue
		}
		var mss []byte
		if mss, set, err = bytesField(typ, rest, "modify_sets.string"); err != nil {
			return nil, err
		}
		// ModifyStringSet{ map<string, SET_OPERATION> values = 1; }
		for len(mss) > 0 {
			num, typ, rest, err := field(mss)
			if err != nil {
				return nil, err
			}
			if num != 1 {
				if mss, err = skip(num, typ, rest); err != nil {
					return nil, err
				}
				continue
			}
			var ent []byte
			if ent, mss, err = bytesField(typ, rest, "modify_string_set entry"); err != nil {
				return nil, err
			}
			op := SetOp{Path: path}
			for len(ent) > 0 {
				num, typ, rest, err := field(ent)
				if err != nil {
					return nil, err
				}
				switch num {
				case 1:
					op.Item, ent, err = bytesField(typ, rest, "set item")
				case 2:
					var u uint64
					u, ent, err = varintField(typ, rest, "set operation")
					op.Op = int32(u)
				default:
					ent, err = skip(num, typ, rest)
				}
				if err != nil {
					return nil, err
				}
			}
			dst = append(dst, op)
		}
	}
	return dst, nil
}

func decodeForkPoint(b []byte) (*ForkPoint, error) {
	f := &ForkPoint{}
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		var s []byte
		switch num {
		case forkParentProject:
			if s, b, err = bytesField(typ, rest, "fork_point.parent_project"); err == nil {
				f.ParentProject, f.HasParentProject = string(s), true
			}
		case forkParentRunID:
			if s, b, err = bytesField(typ, rest, "fork_point.parent_run_id"); err == nil {
				f.ParentRunID = string(s)
			}
		case forkStep:
			if s, b, err = bytesField(typ, rest, "fork_point.step"); err == nil {
				f.Step, err = decodeStep(s)
				f.HasStep = true
			}
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// DecodeRun decodes a Run (CREATE_RUN) message. Strings are copied.
func DecodeRun(b []byte) (Run, error) {
	var r Run
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return r, err
		}
		var s []byte
		switch num {
		case runRunID:
			if s, b, err = bytesField(typ, rest, "run.run_id"); err == nil {
				r.RunID = string(s)
			}
		case runForkPoint:
			if s, b, err = bytesField(typ, rest, "run.fork_point"); err == nil {
				r.Fork, err = decodeForkPoint(s)
			}
		case runCreationTime:
			if s, b, err = bytesField(typ, rest, "run.creation_time"); err == nil {
				r.CreationTime, err = decodeTimestamp(s)
				r.HasCreationTime = true
			}
		case runFamily:
			if s, b, err = bytesField(typ, rest, "run.family"); err == nil {
				r.Family = string(s)
			}
		case runExperimentID:
			if s, b, err = bytesField(typ, rest, "run.experiment_id"); err == nil {
				r.ExperimentID, r.HasExperimentID = string(s), true
			}
		case runTracker:
			if s, b, err = bytesField(typ, rest, "run.tracker"); err == nil {
				r.Tracker = string(s)
			}
		case runInherit:
			var u uint64
			u, b, err = varintField(typ, rest, "run.inherit_configs")
			r.InheritConfigs, r.HasInherit = u != 0, true
		default:
			b, err = skip(num, typ, rest)
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}
