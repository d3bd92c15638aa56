package tensorboard

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file decodes the few TensorFlow messages an events file holds, by
// field number, straight from the record's bytes (no generated code, no
// copies: byte slices point into the record). Field numbers are those of
// tensorflow/core/util/event.proto, core/framework/summary.proto,
// tensor.proto, tensor_shape.proto, tsl histogram.proto,
// google/protobuf/struct.proto and tensorboard/plugins/hparams/
// plugin_data.proto. Unknown fields are skipped, as protobuf does.

// errWire is wrapped by every decoding error.
var errWire = errors.New("malformed protobuf")

func wireErr(what string, n int) error {
	return fmt.Errorf("%w: %s: %v", errWire, what, protowire.ParseError(n))
}

// field calls fn for every field of msg; fn consumes the value (returning
// how many bytes it used, or a negative protowire error code) or returns 0
// to have it skipped.
func fields(msg []byte, what string, fn func(num protowire.Number, typ protowire.Type, b []byte) int) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return wireErr(what, n)
		}
		msg = msg[n:]
		m := fn(num, typ, msg)
		if m == 0 {
			m = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if m < 0 {
			return wireErr(what, m)
		}
		msg = msg[m:]
	}
	return nil
}

// Event.what, the oneof of an Event.
type eventKind uint8

const (
	evNone eventKind = iota
	evFileVersion
	evGraph
	evSummary
	evLogMessage
	evSessionLog
	evRunMetadata
	evMetaGraph
)

// SessionLog.status values.
const sessionStart = 1

// rawEvent is a decoded Event; byte slices point into the record.
type rawEvent struct {
	wall    float64
	step    int64
	kind    eventKind
	summary []byte // evSummary: the Summary message
	status  int32  // evSessionLog: SessionLog.status
}

func decodeEvent(b []byte, ev *rawEvent) error {
	*ev = rawEvent{}
	// The hot path: a loop, no closures.
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireErr("event", n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			v, m := protowire.ConsumeFixed64(b)
			if m < 0 {
				return wireErr("event", m)
			}
			ev.wall, n = math.Float64frombits(v), m
		case num == 2 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return wireErr("event", m)
			}
			ev.step, n = int64(v), m
		case num >= 3 && num <= 9 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return wireErr("event", m)
			}
			n = m
			switch num {
			case 3:
				ev.kind = evFileVersion
			case 4:
				ev.kind = evGraph
			case 5:
				ev.kind, ev.summary = evSummary, v
			case 6:
				ev.kind = evLogMessage
			case 7:
				ev.kind, ev.status = evSessionLog, sessionStatus(v)
			case 8:
				ev.kind = evRunMetadata
			case 9:
				ev.kind = evMetaGraph
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return wireErr("event", n)
			}
		}
		b = b[n:]
	}
	return nil
}

// sessionStatus reads SessionLog.status (field 1); a malformed message
// reads as 0 (unspecified), which is no purge marker.
func sessionStatus(b []byte) int32 {
	var st int32
	if err := fields(b, "session log", func(num protowire.Number, typ protowire.Type, b []byte) int {
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			st = int32(v)
			return n
		}
		return 0
	}); err != nil {
		return 0
	}
	return st
}

// Summary.Value.value, the oneof of a summary value.
type valueKind uint8

const (
	valNone valueKind = iota
	valSimple
	valOldHisto
	valImage
	valHisto
	valAudio
	valTensor
)

// rawValue is a decoded Summary.Value.
type rawValue struct {
	tag      []byte
	nodeName []byte
	meta     []byte // SummaryMetadata, nil when absent
	hasMeta  bool
	kind     valueKind
	simple   float32
	body     []byte // the image, histogram, audio or tensor message
}

// nextValue decodes the next Summary.value of summary into v and returns
// the rest; ok is false at the end. A malformed summary is an error; the
// values before it were returned.
func nextValue(summary []byte, v *rawValue) (rest []byte, ok bool, err error) {
	for len(summary) > 0 {
		num, typ, n := protowire.ConsumeTag(summary)
		if n < 0 {
			return nil, false, wireErr("summary", n)
		}
		summary = summary[n:]
		if num != 1 || typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, summary)
			if n < 0 {
				return nil, false, wireErr("summary", n)
			}
			summary = summary[n:]
			continue
		}
		msg, n := protowire.ConsumeBytes(summary)
		if n < 0 {
			return nil, false, wireErr("summary", n)
		}
		if err := decodeValue(msg, v); err != nil {
			return nil, false, err
		}
		return summary[n:], true, nil
	}
	return nil, false, nil
}

// eachValue calls fn for every Summary.value until fn returns an error.
func eachValue(summary []byte, fn func(v *rawValue) error) error {
	var v rawValue
	for {
		rest, ok, err := nextValue(summary, &v)
		if err != nil || !ok {
			return err
		}
		if err := fn(&v); err != nil {
			return err
		}
		summary = rest
	}
}

func decodeValue(b []byte, v *rawValue) error {
	*v = rawValue{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireErr("summary value", n)
		}
		b = b[n:]
		switch {
		case num == 2 && typ == protowire.Fixed32Type:
			x, m := protowire.ConsumeFixed32(b)
			if m < 0 {
				return wireErr("summary value", m)
			}
			v.kind, v.simple, n = valSimple, math.Float32frombits(x), m
		case typ == protowire.BytesType:
			x, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return wireErr("summary value", m)
			}
			n = m
			switch num {
			case 1:
				v.tag = x
			case 7:
				v.nodeName = x
			case 9:
				v.meta, v.hasMeta = x, true
			case 3:
				v.kind, v.body = valOldHisto, x
			case 4:
				v.kind, v.body = valImage, x
			case 5:
				v.kind, v.body = valHisto, x
			case 6:
				v.kind, v.body = valAudio, x
			case 8:
				v.kind, v.body = valTensor, x
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return wireErr("summary value", n)
			}
		}
		b = b[n:]
	}
	return nil
}

// pluginData reads SummaryMetadata.plugin_data: the plugin's name and its
// content.
func pluginData(meta []byte) (name, content []byte, err error) {
	err = fields(meta, "summary metadata", func(num protowire.Number, typ protowire.Type, b []byte) int {
		if num != 1 || typ != protowire.BytesType {
			return 0
		}
		pd, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return n
		}
		if err := fields(pd, "plugin data", func(num protowire.Number, typ protowire.Type, b []byte) int {
			if typ != protowire.BytesType || (num != 1 && num != 2) {
				return 0
			}
			x, n := protowire.ConsumeBytes(b)
			if num == 1 {
				name = x
			} else {
				content = x
			}
			return n
		}); err != nil {
			return -1
		}
		return n
	})
	return name, content, err
}

// TensorFlow DataType values (types.proto).
const (
	dtFloat    = 1
	dtDouble   = 2
	dtInt32    = 3
	dtUint8    = 4
	dtInt16    = 5
	dtInt8     = 6
	dtString   = 7
	dtInt64    = 9
	dtBool     = 10
	dtBfloat16 = 14
	dtUint16   = 17
	dtHalf     = 19
	dtUint32   = 22
	dtUint64   = 23
)

// rawTensor is a decoded TensorProto. Only one representation of the
// values is set by writers; the numeric ones are kept as their wire bytes
// (packed or not) and read on demand.
type rawTensor struct {
	dtype   int32
	dims    []int64 // nil for rank 0
	unknown bool    // unknown_rank
	content []byte  // tensor_content: raw little-endian values
	// The repeated fields, by field number: the wire bytes of each
	// occurrence (a packed run or a single element) and its wire type.
	reps    [18][]wireRun
	strings [][]byte // string_val
}

type wireRun struct {
	typ protowire.Type
	b   []byte
}

func decodeTensor(b []byte, t *rawTensor) error {
	// Reset, keeping the slices' capacity: tensors are decoded per value.
	t.dtype, t.unknown, t.content = 0, false, nil
	t.dims, t.strings = t.dims[:0], t.strings[:0]
	for i := range t.reps {
		t.reps[i] = t.reps[i][:0]
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireErr("tensor", n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			t.dtype = int32(v)
		case num == 2 && typ == protowire.BytesType:
			var shape []byte
			shape, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				if err := decodeShape(shape, t); err != nil {
					return err
				}
			}
		case num == 4 && typ == protowire.BytesType:
			t.content, n = protowire.ConsumeBytes(b)
		case num == 8 && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				t.strings = append(t.strings, v)
			}
		case num >= 5 && num <= 17 && num != 8 && num != 14 && num != 15:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 {
				run := b[:n]
				if typ == protowire.BytesType {
					run, _ = protowire.ConsumeBytes(b)
				}
				t.reps[num] = append(t.reps[num], wireRun{typ: typ, b: run})
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return wireErr("tensor", n)
		}
		b = b[n:]
	}
	return nil
}

func decodeShape(b []byte, t *rawTensor) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireErr("tensor shape", n)
		}
		b = b[n:]
		switch {
		case num == 2 && typ == protowire.BytesType:
			var dim []byte
			dim, n = protowire.ConsumeBytes(b)
			if n < 0 {
				break
			}
			size := int64(0)
			for len(dim) > 0 {
				dn, dt, m := protowire.ConsumeTag(dim)
				if m < 0 {
					return wireErr("tensor dim", m)
				}
				dim = dim[m:]
				if dn == 1 && dt == protowire.VarintType {
					var v uint64
					v, m = protowire.ConsumeVarint(dim)
					size = int64(v)
				} else {
					m = protowire.ConsumeFieldValue(dn, dt, dim)
				}
				if m < 0 {
					return wireErr("tensor dim", m)
				}
				dim = dim[m:]
			}
			t.dims = append(t.dims, size)
		case num == 3 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			t.unknown = v != 0
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return wireErr("tensor shape", n)
		}
		b = b[n:]
	}
	return nil
}

// elements is the number of values the shape holds (1 for rank 0), or -1
// when the shape is unknown or overflows.
func (t *rawTensor) elements() int64 {
	if t.unknown {
		return -1
	}
	n := int64(1)
	for _, d := range t.dims {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return -1
		}
		n *= d
	}
	return n
}

// numbers returns the tensor's values as float64, at most limit of them,
// from tensor_content or the typed repeated field of its dtype. ok is false
// for a dtype that is not a real number.
func (t *rawTensor) numbers(dst []float64, limit int) ([]float64, bool) {
	if len(t.content) > 0 {
		return t.contentNumbers(dst, limit)
	}
	var field int
	switch t.dtype {
	case dtFloat:
		field = 5
	case dtDouble:
		field = 6
	case dtInt32, dtInt16, dtInt8, dtUint8, dtUint16:
		field = 7
	case dtInt64:
		field = 10
	case dtBool:
		field = 11
	case dtHalf, dtBfloat16:
		field = 13
	case dtUint32:
		field = 16
	case dtUint64:
		field = 17
	default:
		return dst, false
	}
	for _, run := range t.reps[field] {
		b := run.b
		for len(b) > 0 && len(dst) < limit {
			var x float64
			var n int
			switch run.typ {
			case protowire.Fixed32Type, protowire.Fixed64Type, protowire.VarintType:
				// A single unpacked element: b is exactly its bytes.
				x, n = scalarOf(field, t.dtype, run.typ, b)
			case protowire.BytesType:
				// A packed run.
				x, n = scalarOf(field, t.dtype, packedType(field), b)
			default:
				return dst, true
			}
			if n <= 0 {
				return dst, true
			}
			dst = append(dst, x)
			b = b[n:]
		}
	}
	return dst, true
}

func packedType(field int) protowire.Type {
	switch field {
	case 5:
		return protowire.Fixed32Type
	case 6:
		return protowire.Fixed64Type
	}
	return protowire.VarintType
}

// scalarOf decodes one element of a repeated numeric field.
func scalarOf(field int, dtype int32, typ protowire.Type, b []byte) (float64, int) {
	switch typ {
	case protowire.Fixed32Type:
		v, n := protowire.ConsumeFixed32(b)
		if n < 0 || field != 5 {
			return 0, n
		}
		return float64(math.Float32frombits(v)), n
	case protowire.Fixed64Type:
		v, n := protowire.ConsumeFixed64(b)
		if n < 0 || field != 6 {
			return 0, n
		}
		return math.Float64frombits(v), n
	case protowire.VarintType:
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return 0, n
		}
		switch field {
		case 7:
			// int32 on the wire: negative values are sign-extended.
			x := int32(v)
			switch dtype {
			case dtUint8:
				return float64(uint8(x)), n
			case dtUint16:
				return float64(uint16(x)), n
			case dtInt8:
				return float64(int8(x)), n
			case dtInt16:
				return float64(int16(x)), n
			}
			return float64(x), n
		case 10:
			return float64(int64(v)), n
		case 11:
			if v != 0 {
				return 1, n
			}
			return 0, n
		case 13:
			if dtype == dtBfloat16 {
				return float64(bfloat16(uint16(v))), n
			}
			return float64(half(uint16(v))), n
		case 16:
			return float64(uint32(v)), n
		case 17:
			return float64(v), n
		}
		return 0, n
	}
	return 0, -1
}

// contentNumbers decodes tensor_content, the raw little-endian values
// written by TensorFlow's C++ summary writer.
func (t *rawTensor) contentNumbers(dst []float64, limit int) ([]float64, bool) {
	b := t.content
	var width int
	switch t.dtype {
	case dtFloat, dtInt32, dtUint32:
		width = 4
	case dtDouble, dtInt64, dtUint64:
		width = 8
	case dtInt16, dtUint16, dtHalf, dtBfloat16:
		width = 2
	case dtInt8, dtUint8, dtBool:
		width = 1
	default:
		return dst, false
	}
	for len(b) >= width && len(dst) < limit {
		var x float64
		switch t.dtype {
		case dtFloat:
			x = float64(math.Float32frombits(le32(b)))
		case dtDouble:
			x = math.Float64frombits(le64(b))
		case dtInt32:
			x = float64(int32(le32(b)))
		case dtUint32:
			x = float64(le32(b))
		case dtInt64:
			x = float64(int64(le64(b)))
		case dtUint64:
			x = float64(le64(b))
		case dtInt16:
			x = float64(int16(le16(b)))
		case dtUint16:
			x = float64(le16(b))
		case dtHalf:
			x = float64(half(le16(b)))
		case dtBfloat16:
			x = float64(bfloat16(le16(b)))
		case dtInt8:
			x = float64(int8(b[0]))
		case dtUint8:
			x = float64(b[0])
		case dtBool:
			if b[0] != 0 {
				x = 1
			}
		}
		dst = append(dst, x)
		b = b[width:]
	}
	return dst, true
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }

// half converts an IEEE 754 binary16 bit pattern to float32 exactly.
func half(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac × 2^-24
		v := float32(frac) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// bfloat16 converts a bfloat16 bit pattern (the top half of a float32).
func bfloat16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// histo is a decoded HistogramProto.
type histo struct {
	min, max, num, sum float64
	limits, counts     []float64
}

func decodeHisto(b []byte, h *histo) error {
	*h = histo{}
	return fields(b, "histogram", func(num protowire.Number, typ protowire.Type, b []byte) int {
		switch {
		case num >= 1 && num <= 5 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			x := math.Float64frombits(v)
			switch num {
			case 1:
				h.min = x
			case 2:
				h.max = x
			case 3:
				h.num = x
			case 4:
				h.sum = x
			}
			return n
		case (num == 6 || num == 7) && (typ == protowire.BytesType || typ == protowire.Fixed64Type):
			dst := &h.limits
			if num == 7 {
				dst = &h.counts
			}
			if typ == protowire.Fixed64Type {
				v, n := protowire.ConsumeFixed64(b)
				*dst = append(*dst, math.Float64frombits(v))
				return n
			}
			run, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return n
			}
			if len(run)%8 != 0 {
				return -1
			}
			for ; len(run) >= 8; run = run[8:] {
				*dst = append(*dst, math.Float64frombits(le64(run)))
			}
			return n
		}
		return 0
	})
}

// image is a decoded Summary.Image.
type image struct {
	height, width int64
	encoded       []byte
}

func decodeImage(b []byte, im *image) error {
	*im = image{}
	return fields(b, "image", func(num protowire.Number, typ protowire.Type, b []byte) int {
		switch {
		case (num == 1 || num == 2) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if num == 1 {
				im.height = int64(v)
			} else {
				im.width = int64(v)
			}
			return n
		case num == 4 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			im.encoded = v
			return n
		}
		return 0
	})
}

// sessionStartHParams reads HParamsPluginData (field 3 session_start_info,
// field 1 its hparams map). ok is false when the data is another kind
// (experiment, session_end_info).
func sessionStartHParams(content []byte) (hp map[string]any, ok bool, err error) {
	err = fields(content, "hparams plugin data", func(num protowire.Number, typ protowire.Type, b []byte) int {
		if num != 3 || typ != protowire.BytesType {
			return 0
		}
		ssi, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return n
		}
		ok = true
		if hp == nil {
			hp = map[string]any{}
		}
		if err := fields(ssi, "session start info", func(num protowire.Number, typ protowire.Type, b []byte) int {
			if num != 1 || typ != protowire.BytesType {
				return 0
			}
			entry, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return n
			}
			k, v, err := mapEntry(entry, 0)
			if err != nil {
				return -1
			}
			hp[k] = v
			return n
		}); err != nil {
			return -1
		}
		return n
	})
	return hp, ok, err
}

// maxValueDepth bounds the nesting of google.protobuf.Value (structs and
// lists) that is decoded.
const maxValueDepth = 32

// mapEntry reads a map<string, google.protobuf.Value> entry.
func mapEntry(b []byte, depth int) (string, any, error) {
	var key string
	var val any
	var verr error
	err := fields(b, "map entry", func(num protowire.Number, typ protowire.Type, b []byte) int {
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			return 0
		}
		x, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return n
		}
		if num == 1 {
			key = string(x)
		} else if val, verr = structValue(x, depth+1); verr != nil {
			return -1
		}
		return n
	})
	if verr != nil {
		return "", nil, verr
	}
	return key, val, err
}

// structValue decodes a google.protobuf.Value into a JSON-compatible value;
// non-finite numbers become the strings "NaN", "Infinity", "-Infinity"
// (a config is JSON).
func structValue(b []byte, depth int) (any, error) {
	if depth > maxValueDepth {
		return nil, fmt.Errorf("%w: value nested deeper than %d", errWire, maxValueDepth)
	}
	var out any
	var ierr error
	err := fields(b, "value", func(num protowire.Number, typ protowire.Type, b []byte) int {
		switch {
		case num == 1 && typ == protowire.VarintType:
			_, n := protowire.ConsumeVarint(b)
			out = nil
			return n
		case num == 2 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			out = jsonNumber(math.Float64frombits(v))
			return n
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			out = validString(v)
			return n
		case num == 4 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			out = v != 0
			return n
		case num == 5 && typ == protowire.BytesType:
			st, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return n
			}
			m := map[string]any{}
			if err := fields(st, "struct", func(num protowire.Number, typ protowire.Type, b []byte) int {
				if num != 1 || typ != protowire.BytesType {
					return 0
				}
				entry, n := protowire.ConsumeBytes(b)
				if n < 0 {
					return n
				}
				k, v, err := mapEntry(entry, depth)
				if err != nil {
					ierr = err
					return -1
				}
				m[k] = v
				return n
			}); err != nil {
				if ierr == nil {
					ierr = err
				}
				return -1
			}
			out = m
			return n
		case num == 6 && typ == protowire.BytesType:
			lv, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return n
			}
			list := []any{}
			if err := fields(lv, "list", func(num protowire.Number, typ protowire.Type, b []byte) int {
				if num != 1 || typ != protowire.BytesType {
					return 0
				}
				x, n := protowire.ConsumeBytes(b)
				if n < 0 {
					return n
				}
				v, err := structValue(x, depth+1)
				if err != nil {
					ierr = err
					return -1
				}
				list = append(list, v)
				return n
			}); err != nil {
				if ierr == nil {
					ierr = err
				}
				return -1
			}
			out = list
			return n
		}
		return 0
	})
	if ierr != nil {
		return nil, ierr
	}
	return out, err
}

// jsonNumber keeps finite numbers and spells the others as JavaScript
// does, which is what the mlop ingest accepts for metrics.
func jsonNumber(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}
