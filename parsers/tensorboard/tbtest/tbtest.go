// Package tbtest writes TensorBoard events files for tests and benchmarks:
// real TFRecord framing (masked CRC32C) around Event protos encoded field
// by field, the way TensorFlow, tensorboardX and torch's SummaryWriter
// lay them out. It is test support: nothing in the agent imports it.
package tbtest

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC is TFRecord's checksum of b.
func MaskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// Frame wraps one record: length, masked CRC of the length, data, masked
// CRC of the data.
func Frame(data []byte) []byte {
	out := make([]byte, 12, 16+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(data)))
	binary.LittleEndian.PutUint32(out[8:], MaskedCRC(out[:8]))
	out = append(out, data...)
	return binary.LittleEndian.AppendUint32(out, MaskedCRC(data))
}

// Records frames records into one events file's bytes.
func Records(records ...[]byte) []byte {
	var out []byte
	for _, r := range records {
		out = append(out, Frame(r)...)
	}
	return out
}

// WriteFile writes framed records to path, creating its directory.
func WriteFile(path string, records ...[]byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, Records(records...), 0o644)
}

// FileName is a writer's file name: events.out.tfevents.<secs>.<host>
// plus the suffix (".123.0" for torch's pid and counter, ".v2", ...).
func FileName(secs int64, host, suffix string) string {
	return fmt.Sprintf("events.out.tfevents.%d.%s%s", secs, host, suffix)
}

// Event field numbers (event.proto).
func event(wall float64, step int64) []byte {
	var b []byte
	if wall != 0 {
		b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(wall))
	}
	if step != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(step))
	}
	return b
}

func bytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// FileVersion is the first record of every file.
func FileVersion(wall float64) []byte {
	return bytesField(event(wall, 0), 3, []byte("brain.Event:2"))
}

// SessionLog is an Event with a SessionLog of status (1 START, 2 STOP, 3
// CHECKPOINT) at step.
func SessionLog(wall float64, step int64, status int) []byte {
	var sl []byte
	sl = protowire.AppendTag(sl, 1, protowire.VarintType)
	sl = protowire.AppendVarint(sl, uint64(status))
	return bytesField(event(wall, step), 7, sl)
}

// Start is SessionLog START: TensorBoard's purge marker.
func Start(wall float64, step int64) []byte { return SessionLog(wall, step, 1) }

// Graph is an Event holding a (fake) GraphDef of n bytes.
func Graph(wall float64, n int) []byte {
	return bytesField(event(wall, 0), 4, make([]byte, n))
}

// RunMetadata is an Event with a TaggedRunMetadata.
func RunMetadata(wall float64, step int64, tag string) []byte {
	var m []byte
	m = bytesField(m, 1, []byte(tag))
	m = bytesField(m, 2, []byte{1, 2, 3})
	return bytesField(event(wall, step), 8, m)
}

// Summary is an Event with a Summary of the given values.
func Summary(wall float64, step int64, values ...[]byte) []byte {
	var s []byte
	for _, v := range values {
		s = bytesField(s, 1, v)
	}
	return bytesField(event(wall, step), 5, s)
}

// Scalar is what tensorboardX and torch write for add_scalar: one value,
// simple_value.
func Scalar(wall float64, step int64, tag string, v float32) []byte {
	return Summary(wall, step, Simple(tag, v))
}

// Simple is a Summary.Value with simple_value.
func Simple(tag string, v float32) []byte {
	b := bytesField(nil, 1, []byte(tag))
	b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, math.Float32bits(v))
}

// Meta is a SummaryMetadata naming a plugin, with its content.
func Meta(plugin string, content []byte) []byte {
	var pd []byte
	pd = bytesField(pd, 1, []byte(plugin))
	if len(content) > 0 {
		pd = bytesField(pd, 2, content)
	}
	return bytesField(nil, 1, pd)
}

// Value is a Summary.Value with a tensor and, when meta is not nil, its
// metadata.
func Value(tag string, meta []byte, tensor []byte) []byte {
	b := bytesField(nil, 1, []byte(tag))
	if meta != nil {
		b = bytesField(b, 9, meta)
	}
	if tensor != nil {
		b = bytesField(b, 8, tensor)
	}
	return b
}

// MetaOnly is a value carrying only metadata (how the hparams plugin
// writes its summaries).
func MetaOnly(tag string, meta []byte) []byte { return Value(tag, meta, nil) }

// HistoValue is a Summary.Value with a HistogramProto.
func HistoValue(tag string, h Histo) []byte {
	return bytesField(bytesField(nil, 1, []byte(tag)), 5, h.Marshal())
}

// ImageValue is a Summary.Value with a Summary.Image.
func ImageValue(tag string, im Image) []byte {
	return bytesField(bytesField(nil, 1, []byte(tag)), 4, im.Marshal())
}

// AudioValue is a Summary.Value with a Summary.Audio.
func AudioValue(tag string, data []byte) []byte {
	var a []byte
	a = bytesField(a, 4, data)
	a = bytesField(a, 5, []byte("audio/wav"))
	return bytesField(bytesField(nil, 1, []byte(tag)), 6, a)
}

// TensorFlow DataType values.
const (
	DTFloat    = 1
	DTDouble   = 2
	DTInt32    = 3
	DTUint8    = 4
	DTInt16    = 5
	DTInt8     = 6
	DTString   = 7
	DTInt64    = 9
	DTBool     = 10
	DTBfloat16 = 14
	DTUint16   = 17
	DTHalf     = 19
	DTUint32   = 22
	DTUint64   = 23
)

// Tensor is a TensorProto. Set one representation of the values.
type Tensor struct {
	DType   int
	Dims    []int64 // nil: rank 0
	Content []byte  // tensor_content
	Float   []float32
	Double  []float64
	Int     []int32 // int_val (DT_INT32, INT16, INT8, UINT8, UINT16)
	Int64   []int64
	Half    []uint16 // half_val: DT_HALF or DT_BFLOAT16 bit patterns
	Bool    []bool
	Uint32  []uint32
	Uint64  []uint64
	Strings [][]byte
	// Unpacked writes the repeated numbers one field each instead of
	// packed (both are valid protobuf).
	Unpacked bool
}

// Marshal encodes the tensor.
func (t Tensor) Marshal() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t.DType))
	var shape []byte
	for _, d := range t.Dims {
		var dim []byte
		dim = protowire.AppendTag(dim, 1, protowire.VarintType)
		dim = protowire.AppendVarint(dim, uint64(d))
		shape = bytesField(shape, 2, dim)
	}
	b = bytesField(b, 2, shape)
	if t.Content != nil {
		b = bytesField(b, 4, t.Content)
	}
	packed := func(num protowire.Number, typ protowire.Type, n int, elem func(b []byte, i int) []byte) {
		if n == 0 {
			return
		}
		if t.Unpacked {
			for i := 0; i < n; i++ {
				b = protowire.AppendTag(b, num, typ)
				b = elem(b, i)
			}
			return
		}
		var run []byte
		for i := 0; i < n; i++ {
			run = elem(run, i)
		}
		b = bytesField(b, num, run)
	}
	packed(5, protowire.Fixed32Type, len(t.Float), func(b []byte, i int) []byte {
		return protowire.AppendFixed32(b, math.Float32bits(t.Float[i]))
	})
	packed(6, protowire.Fixed64Type, len(t.Double), func(b []byte, i int) []byte {
		return protowire.AppendFixed64(b, math.Float64bits(t.Double[i]))
	})
	packed(7, protowire.VarintType, len(t.Int), func(b []byte, i int) []byte {
		return protowire.AppendVarint(b, uint64(int64(t.Int[i])))
	})
	for _, s := range t.Strings {
		b = bytesField(b, 8, s)
	}
	packed(10, protowire.VarintType, len(t.Int64), func(b []byte, i int) []byte {
		return protowire.AppendVarint(b, uint64(t.Int64[i]))
	})
	packed(11, protowire.VarintType, len(t.Bool), func(b []byte, i int) []byte {
		return protowire.AppendVarint(b, protowire.EncodeBool(t.Bool[i]))
	})
	packed(13, protowire.VarintType, len(t.Half), func(b []byte, i int) []byte {
		return protowire.AppendVarint(b, uint64(t.Half[i]))
	})
	packed(16, protowire.VarintType, len(t.Uint32), func(b []byte, i int) []byte {
		return protowire.AppendVarint(b, uint64(t.Uint32[i]))
	})
	packed(17, protowire.VarintType, len(t.Uint64), func(b []byte, i int) []byte {
		return protowire.AppendVarint(b, t.Uint64[i])
	})
	return b
}

// Histo is a HistogramProto.
type Histo struct {
	Min, Max, Num, Sum, SumSquares float64
	Limits, Counts                 []float64
}

// Marshal encodes the histogram (packed repeated doubles).
func (h Histo) Marshal() []byte {
	var b []byte
	for i, v := range []float64{h.Min, h.Max, h.Num, h.Sum, h.SumSquares} {
		b = protowire.AppendTag(b, protowire.Number(i+1), protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(v))
	}
	for _, f := range []struct {
		num protowire.Number
		vs  []float64
	}{{6, h.Limits}, {7, h.Counts}} {
		var run []byte
		for _, v := range f.vs {
			run = protowire.AppendFixed64(run, math.Float64bits(v))
		}
		b = bytesField(b, f.num, run)
	}
	return b
}

// Image is a Summary.Image.
type Image struct {
	Height, Width, Colorspace int
	Encoded                   []byte
}

// Marshal encodes the image.
func (im Image) Marshal() []byte {
	var b []byte
	for i, v := range []int{im.Height, im.Width, im.Colorspace} {
		b = protowire.AppendTag(b, protowire.Number(i+1), protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v))
	}
	return bytesField(b, 4, im.Encoded)
}

// HParamsStart is the content of the hparams plugin's
// _hparams_/session_start_info summary: HParamsPluginData{version 0,
// session_start_info{hparams}}. Values: float64, string, bool, nil,
// []any, map[string]any.
func HParamsStart(hp map[string]any) []byte {
	keys := make([]string, 0, len(hp))
	for k := range hp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ssi []byte
	for _, k := range keys {
		ssi = bytesField(ssi, 1, mapEntry(k, hp[k]))
	}
	ssi = protowire.AppendTag(ssi, 5, protowire.Fixed64Type)
	ssi = protowire.AppendFixed64(ssi, math.Float64bits(1.7e9))
	return bytesField(nil, 3, ssi)
}

// HParamsExperiment is the content of _hparams_/experiment (hparam and
// metric infos; the reader ignores it).
func HParamsExperiment(metric string) []byte {
	var name []byte
	name = bytesField(name, 2, []byte(metric))
	var mi []byte
	mi = bytesField(mi, 1, name)
	var exp []byte
	exp = bytesField(exp, 5, mi)
	return bytesField(nil, 2, exp)
}

// HParamsEnd is the content of _hparams_/session_end_info (status 1).
func HParamsEnd() []byte {
	var sei []byte
	sei = protowire.AppendTag(sei, 1, protowire.VarintType)
	sei = protowire.AppendVarint(sei, 1)
	return bytesField(nil, 4, sei)
}

func mapEntry(k string, v any) []byte {
	b := bytesField(nil, 1, []byte(k))
	return bytesField(b, 2, structValue(v))
}

func structValue(v any) []byte {
	var b []byte
	switch x := v.(type) {
	case nil:
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, 0)
	case float64:
		b = protowire.AppendTag(b, 2, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(x))
	case int:
		b = protowire.AppendTag(b, 2, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(float64(x)))
	case string:
		b = bytesField(b, 3, []byte(x))
	case bool:
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(x))
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var st []byte
		for _, k := range keys {
			st = bytesField(st, 1, mapEntry(k, x[k]))
		}
		b = bytesField(b, 5, st)
	case []any:
		var lv []byte
		for _, e := range x {
			lv = bytesField(lv, 1, structValue(e))
		}
		b = bytesField(b, 6, lv)
	default:
		panic(fmt.Sprintf("tbtest: hparam of type %T", v))
	}
	return b
}

// Half returns the IEEE binary16 bit pattern of f (f must be exactly
// representable; tests use such values).
func Half(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int((bits>>23)&0xff) - 127 + 15
	frac := bits & 0x7fffff
	switch {
	case f == 0:
		return sign
	case math.IsInf(float64(f), 0):
		return sign | 0x7c00
	case math.IsNaN(float64(f)):
		return 0x7e00
	case exp <= 0:
		// Subnormal.
		m := (frac | 0x800000) >> uint(1-exp+13)
		return sign | uint16(m)
	}
	return sign | uint16(exp)<<10 | uint16(frac>>13)
}

// Bfloat16 returns the bfloat16 bit pattern of f (its top 16 bits).
func Bfloat16(f float32) uint16 { return uint16(math.Float32bits(f) >> 16) }
