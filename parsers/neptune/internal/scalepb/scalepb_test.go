package scalepb

import (
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// The synthetic row of docs/neptune-formats.md §2.2.3, encoded by protoc:
// its first bytes hold step 3.5 and timestamp 1735689600.123.
func TestDecodeDocumentedPrefix(t *testing.T) {
	b, _ := hex.DecodeString("0a06080310a0c21e120b08808bd2bb0610c0a9d33a")
	var s Snapshot
	if err := DecodeSnapshot(b, &s); err != nil {
		t.Fatal(err)
	}
	if micro, ok := s.Step.MicroUnits(); !s.HasStep || !ok || micro != 3_500_000 {
		t.Errorf("step %+v", s.Step)
	}
	if !s.HasTime || s.Time.UnixMilli() != 1735689600123 {
		t.Errorf("time %+v", s.Time)
	}
}

func sampleSnapshot() *Snapshot {
	return &Snapshot{
		HasStep: true, Step: Step{Whole: 7, Micro: 250_000},
		HasTime: true, Time: Timestamp{Seconds: 1735689600, Nanos: 5_000_000},
		Assign: []Entry{
			{Key: []byte("p/f"), Value: Value{Kind: KindFloat64, Float: 0.5}},
			{Key: []byte("p/i"), Value: Value{Kind: KindInt64, Int: -7}},
			{Key: []byte("p/b"), Value: Value{Kind: KindBool, Bool: true}},
			{Key: []byte("p/s"), Value: Value{Kind: KindString, Str: []byte("zażółć")}},
			{Key: []byte("p/t"), Value: Value{Kind: KindTimestamp, Time: Timestamp{Seconds: 1, Nanos: 2}}},
			{Key: []byte("p/set"), Value: Value{Kind: KindStringSet, Strings: [][]byte{[]byte("a"), []byte("b")}}},
			{Key: []byte("f"), Value: Value{Kind: KindFileRef, File: FileRef{Path: []byte("d/x.png"), SizeBytes: 9, MimeType: []byte("image/png")}}},
		},
		Modify: []SetOp{
			{Path: []byte("sys/tags"), Item: []byte("x"), Op: SetAdd},
			{Path: []byte("sys/tags"), Item: []byte("y"), Op: SetRemove},
			{Path: []byte("sys/group_tags"), Item: []byte("g"), Op: SetAdd},
		},
		Append: []Entry{
			{Key: []byte("m"), Value: Value{Kind: KindFloat64, Float: 1.25}},
			{Key: []byte("h"), Value: Value{Kind: KindHistogram, Hist: &Histogram{Edges: []float64{0, 1, 2}, Counts: []uint64{3, 4}, HasCounts: true}}},
			{Key: []byte("hd"), Value: Value{Kind: KindHistogram, Hist: &Histogram{Edges: []float64{0, 1}, Densities: []float64{0.5}, HasDensities: true}}},
		},
		HasPreview: true, Preview: Preview{IsPreview: true, CompletionRatio: 0.5},
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	want := sampleSnapshot()
	b := AppendSnapshot(nil, want)
	var got Snapshot
	if err := DecodeSnapshot(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, *want)
	}
	// Decoding reuses the slices and resets everything.
	if err := DecodeSnapshot(nil, &got); err != nil || got.HasStep || len(got.Assign) != 0 || len(got.Append) != 0 || got.HasPreview {
		t.Errorf("after an empty decode: %+v, %v", got, err)
	}
}

func TestRunRoundTrip(t *testing.T) {
	want := Run{RunID: "r", Fork: &ForkPoint{HasParentProject: true, ParentProject: "w/p", ParentRunID: "parent", HasStep: true, Step: Step{Whole: 250}},
		HasCreationTime: true, CreationTime: Timestamp{Seconds: 1740902400}, Family: "r", HasExperimentID: true, ExperimentID: "exp",
		Tracker: "t", HasInherit: true, InheritConfigs: true}
	got, err := DecodeRun(AppendRun(nil, &want))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("DecodeRun = %+v, %v; want %+v", got, err, want)
	}
}

func TestUnknownFieldsSkipped(t *testing.T) {
	b := AppendSnapshot(nil, sampleSnapshot())
	// Field 11 (start_processing_time) and an unknown varint field 99.
	extra := []byte{0x5a, 0x02, 0x08, 0x01, 0x98, 0x06, 0x2a}
	var s Snapshot
	if err := DecodeSnapshot(append(append([]byte{}, extra...), b...), &s); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&s, sampleSnapshot()) {
		t.Errorf("with unknown fields: %+v", s)
	}
	// An unknown member of the Value oneof.
	entry := []byte{0x42, 0x07, 0x0a, 0x01, 'k', 0x12, 0x02, 0x78, 0x01}
	if err := DecodeSnapshot(entry, &s); err != nil || len(s.Append) != 1 || s.Append[0].Value.Kind != KindUnknown {
		t.Errorf("unknown value member: %+v, %v", s.Append, err)
	}
}

func TestCorrupt(t *testing.T) {
	full := AppendSnapshot(nil, sampleSnapshot())
	for _, b := range [][]byte{
		{0xff},
		{0x0a, 0x05, 0x08},                         // truncated step
		{0x0d, 0x00, 0x00, 0x00, 0x00},             // step with the wrong wire type
		{0x42, 0x03, 0x0a, 0x05, 'k'},              // entry key longer than the entry
		full[:len(full)-1],                         // cut short
		{0x42, 0x04, 0x12, 0x02, 0x09, 0x00},       // truncated double
		{0x42, 0x05, 0x12, 0x03, 0x72, 0x01, 0x0b}, // histogram edges: packed length 1
	} {
		var s Snapshot
		if err := DecodeSnapshot(b, &s); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeSnapshot(% x) = %v, want ErrCorrupt", b, err)
		}
	}
	if _, err := DecodeRun([]byte{0x12, 0x10}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("DecodeRun(truncated) = %v", err)
	}
}

func TestStepMicroUnits(t *testing.T) {
	for _, tc := range []struct {
		s  Step
		m  int64
		ok bool
	}{
		{Step{}, 0, true},
		{Step{Whole: 1, Micro: 1}, 1_000_001, true},
		{Step{Micro: 1_000_000}, 0, false},
		{Step{Whole: 1 << 62}, 0, false},
	} {
		m, ok := tc.s.MicroUnits()
		if m != tc.m || ok != tc.ok {
			t.Errorf("%+v.MicroUnits() = %d, %v", tc.s, m, ok)
		}
	}
	if KindHistogram.String() != "histogram" || ValueKind(200).String() != "invalid" {
		t.Error("ValueKind.String")
	}
}
