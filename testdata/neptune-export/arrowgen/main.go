// Command arrowgen writes a small neptune-exporter export with Apache
// Arrow's Go parquet writer (pqarrow), whose defaults mirror pyarrow's:
// an independent writer for the reader's fixture test. Rows follow
// neptune-exporter's model.SCHEMA and its neptune3 row order.
package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"golang.org/x/crypto/blake2b"
)

// sanitize is neptune-exporter's sanitize_path_part.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	h, _ := blake2b.New(8, nil)
	h.Write([]byte(s))
	return b.String() + "-" + hex.EncodeToString(h.Sum(nil))
}

var ts = arrow.FixedWidthTypes.Timestamp_ms.(*arrow.TimestampType)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "project_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "run_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "attribute_path", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "attribute_type", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "step", Type: &arrow.Decimal128Type{Precision: 18, Scale: 6}, Nullable: true},
	{Name: "timestamp", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "int_value", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "float_value", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "string_value", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "bool_value", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "datetime_value", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "string_set_value", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "file_value", Type: arrow.StructOf(arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true}), Nullable: true},
	{Name: "histogram_value", Type: arrow.StructOf(
		arrow.Field{Name: "type", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "edges", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64), Nullable: true},
		arrow.Field{Name: "values", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64), Nullable: true},
	), Nullable: true},
}, nil)

type row struct {
	path, typ string
	step      *float64
	ts        *time.Time
	i         *int64
	f         *float64
	s         *string
	b         *bool
	dt        *time.Time
	set       []string
	file      *string
	hist      *[3]any // type, edges, values
}

func p[T any](v T) *T { return &v }

func at(s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func build(project, run string, rows []row) arrow.Record {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(project)
		b.Field(1).(*array.StringBuilder).Append(run)
		b.Field(2).(*array.StringBuilder).Append(r.path)
		b.Field(3).(*array.StringBuilder).Append(r.typ)
		if r.step != nil {
			d, err := decimal128.FromFloat64(*r.step, 18, 6)
			if err != nil {
				panic(err)
			}
			b.Field(4).(*array.Decimal128Builder).Append(d)
		} else {
			b.Field(4).AppendNull()
		}
		appendTime := func(i int, t *time.Time) {
			if t == nil {
				b.Field(i).AppendNull()
				return
			}
			b.Field(i).(*array.TimestampBuilder).Append(arrow.Timestamp(t.UnixMilli()))
		}
		appendTime(5, r.ts)
		if r.i != nil {
			b.Field(6).(*array.Int64Builder).Append(*r.i)
		} else {
			b.Field(6).AppendNull()
		}
		if r.f != nil {
			b.Field(7).(*array.Float64Builder).Append(*r.f)
		} else {
			b.Field(7).AppendNull()
		}
		if r.s != nil {
			b.Field(8).(*array.StringBuilder).Append(*r.s)
		} else {
			b.Field(8).AppendNull()
		}
		if r.b != nil {
			b.Field(9).(*array.BooleanBuilder).Append(*r.b)
		} else {
			b.Field(9).AppendNull()
		}
		appendTime(10, r.dt)
		lb := b.Field(11).(*array.ListBuilder)
		if r.set != nil {
			lb.Append(true)
			for _, s := range r.set {
				lb.ValueBuilder().(*array.StringBuilder).Append(s)
			}
		} else {
			lb.AppendNull()
		}
		sb := b.Field(12).(*array.StructBuilder)
		if r.file != nil {
			sb.Append(true)
			sb.FieldBuilder(0).(*array.StringBuilder).Append(*r.file)
		} else {
			sb.AppendNull()
		}
		hb := b.Field(13).(*array.StructBuilder)
		if r.hist != nil {
			hb.Append(true)
			hb.FieldBuilder(0).(*array.StringBuilder).Append(r.hist[0].(string))
			for k := 1; k <= 2; k++ {
				l := hb.FieldBuilder(k).(*array.ListBuilder)
				l.Append(true)
				for _, v := range r.hist[k].([]float64) {
					l.ValueBuilder().(*array.Float64Builder).Append(v)
				}
			}
		} else {
			hb.AppendNull()
		}
	}
	return b.NewRecord()
}

// writeRun writes one run's part_0 with one row group per batch, as the
// exporter's ParquetWriter does (write_batch per batch, snappy).
func writeRun(dir, project, run string, batches ...[]row) {
	path := filepath.Join(dir, sanitize(project), sanitize(run)+"_part_0.parquet")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		panic(err)
	}
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	w, err := pqarrow.NewFileWriter(schema, f,
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(true)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		panic(err)
	}
	for _, rows := range batches {
		rec := build(project, run, rows)
		if err := w.Write(rec); err != nil {
			panic(err)
		}
		rec.Release()
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
}

func main() {
	out := os.Args[1]
	data, files := filepath.Join(out, "data"), filepath.Join(out, "files")
	const project = "ws/proj"
	created := at("2025-01-01T00:00:00Z")
	writeRun(data, project, "parent-run",
		[]row{
			{path: "sys/custom_run_id", typ: "string", s: p("parent-run")},
			{path: "sys/name", typ: "string", s: p("exp-a")},
			{path: "sys/creation_time", typ: "datetime", dt: created},
			{path: "sys/tags", typ: "string_set", set: []string{"baseline"}},
			{path: "parameters/lr", typ: "float", f: p(0.01)},
		},
		[]row{
			{path: "metrics/loss", typ: "float_series", step: p(9.75), ts: at("2025-01-01T00:00:09.750Z"), f: p(0.5)},
			{path: "metrics/loss", typ: "float_series", step: p(10.0), ts: at("2025-01-01T00:00:10Z"), f: p(0.4)},
		})
	writeRun(data, project, "mouse-run-7",
		[]row{
			{path: "sys/custom_run_id", typ: "string", s: p("mouse-run-7")},
			{path: "sys/name", typ: "string", s: p("exp-a")},
			{path: "sys/tags", typ: "string_set", set: []string{"baseline", "forked"}},
			{path: "sys/creation_time", typ: "datetime", dt: at("2025-01-01T01:00:00Z")},
			{path: "sys/forking/parent", typ: "string", s: p("parent-run")},
			{path: "sys/forking/step", typ: "float", f: p(10.0)},
			{path: "parameters/lr", typ: "float", f: p(0.001)},
			{path: "parameters/epochs", typ: "int", i: p(int64(5))},
			{path: "parameters/amp", typ: "bool", b: p(true)},
			{path: "parameters/only_in_parent", typ: "float"},
		},
		[]row{
			{path: "metrics/acc", typ: "float_series", step: p(10.5), ts: at("2025-01-01T01:00:00.123Z"), f: p(0.8)},
			{path: "metrics/loss", typ: "float_series", step: p(10.5), ts: at("2025-01-01T01:00:00.123Z"), f: p(0.25)},
			{path: "metrics/acc", typ: "float_series", step: p(11.0), ts: at("2025-01-01T01:00:01Z"), f: p(0.9)},
			{path: "metrics/loss", typ: "float_series", step: p(11.0), ts: at("2025-01-01T01:00:01Z"), f: p(0.2)},
		},
		[]row{
			{path: "grads/l1", typ: "histogram_series", step: p(11.0), ts: at("2025-01-01T01:00:01Z"), hist: &[3]any{"COUNTING", []float64{0, 1, 2}, []float64{3, 4}}},
			{path: "runtime/stdout", typ: "string_series", step: p(0.000001), ts: at("2025-01-01T01:00:00.5Z"), s: p("epoch 1\n")},
		},
		[]row{
			{path: "preds", typ: "file_series", step: p(11.0), ts: at("2025-01-01T01:00:01Z"), file: p("mouse-run-7/preds/step_11_000000.png")},
		})
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
	fp := filepath.Join(files, sanitize(project), "mouse-run-7", "preds", "step_11_000000.png")
	if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
		panic(err)
	}
	if err := os.WriteFile(fp, png, 0o644); err != nil {
		panic(err)
	}
	fmt.Println(sanitize(project), sanitize("mouse-run-7"), sanitize("parent-run"))
}
