package scalepb

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The encoders write fields in field-number order, as the Python protobuf
// runtime does, so test data and generated benchmark input look like what
// neptune-scale stores.

func appendMsg(dst []byte, num protowire.Number, body []byte) []byte {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, body)
}

func appendStr(dst []byte, num protowire.Number, s []byte) []byte {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, s)
}

func appendVarint(dst []byte, num protowire.Number, v uint64) []byte {
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, v)
}

// AppendStep encodes a Step message body.
func AppendStep(dst []byte, s Step) []byte {
	if s.Whole != 0 {
		dst = appendVarint(dst, 1, s.Whole)
	}
	if s.Micro != 0 {
		dst = appendVarint(dst, 2, s.Micro)
	}
	return dst
}

// AppendTimestamp encodes a Timestamp message body.
func AppendTimestamp(dst []byte, t Timestamp) []byte {
	if t.Seconds != 0 {
		dst = appendVarint(dst, 1, uint64(t.Seconds))
	}
	if t.Nanos != 0 {
		dst = appendVarint(dst, 2, uint64(t.Nanos))
	}
	return dst
}

// AppendValue encodes a Value message body.
func AppendValue(dst []byte, v Value) []byte {
	switch v.Kind {
	case KindFloat64:
		dst = protowire.AppendTag(dst, valFloat64, protowire.Fixed64Type)
		dst = protowire.AppendFixed64(dst, math.Float64bits(v.Float))
	case KindInt64:
		dst = appendVarint(dst, valInt64, uint64(v.Int))
	case KindBool:
		b := uint64(0)
		if v.Bool {
			b = 1
		}
		dst = appendVarint(dst, valBool, b)
	case KindString:
		dst = appendStr(dst, valString, v.Str)
	case KindTimestamp:
		dst = appendMsg(dst, valTimestamp, AppendTimestamp(nil, v.Time))
	case KindStringSet:
		var body []byte
		for _, s := range v.Strings {
			body = appendStr(body, 1, s)
		}
		dst = appendMsg(dst, valStringSet, body)
	case KindFileRef:
		var body []byte
		body = appendStr(body, 1, v.File.Path)
		if v.File.SizeBytes != 0 {
			body = appendVarint(body, 2, uint64(v.File.SizeBytes))
		}
		body = appendStr(body, 3, v.File.MimeType)
		dst = appendMsg(dst, valFileRef, body)
	case KindHistogram:
		dst = appendMsg(dst, valHistogram, appendHistogram(nil, v.Hist))
	}
	return dst
}

func appendHistogram(dst []byte, h *Histogram) []byte {
	if h == nil {
		return dst
	}
	var packed []byte
	for _, e := range h.Edges {
		packed = protowire.AppendFixed64(packed, math.Float64bits(e))
	}
	dst = appendMsg(dst, histEdges, packed)
	switch {
	case h.HasCounts:
		var p []byte
		for _, c := range h.Counts {
			p = protowire.AppendVarint(p, c)
		}
		dst = appendMsg(dst, histCounts, appendMsg(nil, 1, p))
	case h.HasDensities:
		var p []byte
		for _, d := range h.Densities {
			p = protowire.AppendFixed64(p, math.Float64bits(d))
		}
		dst = appendMsg(dst, histDensities, appendMsg(nil, 1, p))
	}
	return dst
}

func appendEntry(dst []byte, num protowire.Number, e Entry) []byte {
	var body []byte
	body = appendStr(body, 1, e.Key)
	body = appendMsg(body, 2, AppendValue(nil, e.Value))
	return appendMsg(dst, num, body)
}

// AppendSnapshot encodes an UpdateRunSnapshot. Set operations on the same
// path that are adjacent in s.Modify share one map entry.
func AppendSnapshot(dst []byte, s *Snapshot) []byte {
	if s.HasStep {
		dst = appendMsg(dst, snapStep, AppendStep(nil, s.Step))
	}
	if s.HasTime {
		dst = appendMsg(dst, snapTimestamp, AppendTimestamp(nil, s.Time))
	}
	for _, e := range s.Assign {
		dst = appendEntry(dst, snapAssign, e)
	}
	for i := 0; i < len(s.Modify); {
		j := i
		var mss []byte
		for ; j < len(s.Modify) && string(s.Modify[j].Path) == string(s.Modify[i].Path); j++ {
			var ent []byte
			ent = appendStr(ent, 1, s.Modify[j].Item)
			ent = appendVarint(ent, 2, uint64(s.Modify[j].Op))
			mss = appendMsg(mss, 1, ent)
		}
		var entry []byte
		entry = appendStr(entry, 1, s.Modify[i].Path)
		entry = appendMsg(entry, 2, appendMsg(nil, 1, mss))
		dst = appendMsg(dst, snapModifySets, entry)
		i = j
	}
	for _, e := range s.Append {
		dst = appendEntry(dst, snapAppend, e)
	}
	if s.HasPreview {
		var body []byte
		if s.Preview.IsPreview {
			body = appendVarint(body, 1, 1)
		}
		if s.Preview.CompletionRatio != 0 {
			body = protowire.AppendTag(body, 2, protowire.Fixed32Type)
			body = protowire.AppendFixed32(body, math.Float32bits(s.Preview.CompletionRatio))
		}
		dst = appendMsg(dst, snapPreview, body)
	}
	return dst
}

// AppendRun encodes a Run message.
func AppendRun(dst []byte, r *Run) []byte {
	if r.RunID != "" {
		dst = appendStr(dst, runRunID, []byte(r.RunID))
	}
	if r.Fork != nil {
		var body []byte
		if r.Fork.HasParentProject {
			body = appendStr(body, forkParentProject, []byte(r.Fork.ParentProject))
		}
		body = appendStr(body, forkParentRunID, []byte(r.Fork.ParentRunID))
		if r.Fork.HasStep {
			body = appendMsg(body, forkStep, AppendStep(nil, r.Fork.Step))
		}
		dst = appendMsg(dst, runForkPoint, body)
	}
	if r.HasCreationTime {
		dst = appendMsg(dst, runCreationTime, AppendTimestamp(nil, r.CreationTime))
	}
	if r.Family != "" {
		dst = appendStr(dst, runFamily, []byte(r.Family))
	}
	if r.HasExperimentID {
		dst = appendStr(dst, runExperimentID, []byte(r.ExperimentID))
	}
	if r.Tracker != "" {
		dst = appendStr(dst, runTracker, []byte(r.Tracker))
	}
	if r.HasInherit {
		b := uint64(0)
		if r.InheritConfigs {
			b = 1
		}
		dst = appendVarint(dst, runInherit, b)
	}
	return dst
}
