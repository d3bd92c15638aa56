package tensorboard

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlop-ai/mlop-agent/parsers/tensorboard/tbtest"
)

// crc32cBitwise is CRC32C computed bit by bit from its definition
// (reflected polynomial 0x82F63B78), independent of hash/crc32.
func crc32cBitwise(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c ^= uint32(x)
		for i := 0; i < 8; i++ {
			if c&1 != 0 {
				c = c>>1 ^ 0x82F63B78
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

func TestMaskedCRC(t *testing.T) {
	if got := crc32cBitwise([]byte("123456789")); got != 0xE3069283 {
		t.Fatalf("reference CRC32C check value = %#x, want 0xe3069283", got)
	}
	for _, in := range [][]byte{nil, []byte("123456789"), bytes.Repeat([]byte{0xff}, 100), []byte("brain.Event:2")} {
		c := crc32cBitwise(in)
		want := ((c >> 15) | (c << 17)) + 0xa282ead8
		if got := maskedCRC(in); got != want {
			t.Errorf("maskedCRC(%q) = %#x, want %#x", in, got, want)
		}
		if got := tbtest.MaskedCRC(in); got != want {
			t.Errorf("tbtest.MaskedCRC(%q) = %#x, want %#x", in, got, want)
		}
	}
}

func testRecords(n int) [][]byte {
	recs := [][]byte{tbtest.FileVersion(1.7e9)}
	for i := 1; i < n; i++ {
		recs = append(recs, tbtest.Scalar(1.7e9+float64(i), int64(i), "loss", float32(i)/3))
	}
	return recs
}

// readAllRecords reads what is complete now, returning the records' data
// and the final status.
func readAllRecords(t *testing.T, rd *recordReader) ([][]byte, recStatus) {
	t.Helper()
	var out [][]byte
	for {
		rec, err := rd.next()
		if err != nil {
			t.Fatal(err)
		}
		if rec.status != recOK {
			return out, rec.status
		}
		out = append(out, bytes.Clone(rec.data))
		rd.skipTo(rec.end())
	}
}

// TestRecordsSplitAnywhere grows a file one cut at a time, at every byte
// (mid-header, mid-payload, mid-footer), under one reader: each record is
// returned once, complete, and nothing is skipped while a record is
// incomplete.
func TestRecordsSplitAnywhere(t *testing.T) {
	recs := testRecords(6)
	all := tbtest.Records(recs...)
	ends := map[int]bool{0: true}
	n := 0
	for _, r := range recs {
		n += 16 + len(r)
		ends[n] = true
	}
	for cut := 0; cut <= len(all); cut++ {
		p := filepath.Join(t.TempDir(), "events.out.tfevents.1.h")
		if err := os.WriteFile(p, all[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		rd, err := openRecords(p, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, st := readAllRecords(t, rd)
		want := recStatus(recPartial)
		if ends[cut] {
			want = recEOF
		}
		if st != want {
			t.Fatalf("cut %d: status %v, want %v", cut, st, want)
		}
		appendBytes(t, p, all[cut:])
		more, st := readAllRecords(t, rd)
		if st != recEOF {
			t.Fatalf("cut %d: status after the rest %v", cut, st)
		}
		got = append(got, more...)
		if len(got) != len(recs) {
			t.Fatalf("cut %d: %d records, want %d", cut, len(got), len(recs))
		}
		for i := range recs {
			if !bytes.Equal(got[i], recs[i]) {
				t.Fatalf("cut %d: record %d differs", cut, i)
			}
		}
		rd.Close()
	}
}

func TestBadDataChecksumSkipsOnlyThatRecord(t *testing.T) {
	recs := testRecords(4)
	all := tbtest.Records(recs...)
	off2 := 16 + len(recs[0]) + 16 + len(recs[1])
	all[off2+12+3] ^= 0x40 // a payload byte of record 2
	p := filepath.Join(t.TempDir(), "ev.tfevents")
	os.WriteFile(p, all, 0o644)
	rd, _ := openRecords(p, 0, 0)
	defer rd.Close()
	got, st := readAllRecords(t, rd)
	if len(got) != 2 || st != recBadData {
		t.Fatalf("%d records then %v, want 2 then bad data", len(got), st)
	}
	rec, _ := rd.next()
	if rec.off != int64(off2) || rec.end() != int64(off2+16+len(recs[2])) {
		t.Fatalf("bad record at %d..%d, want %d", rec.off, rec.end(), off2)
	}
	rd.skipTo(rec.end())
	rest, st := readAllRecords(t, rd)
	if len(rest) != 1 || !bytes.Equal(rest[0], recs[3]) || st != recEOF {
		t.Fatalf("after the bad record: %d records, %v", len(rest), st)
	}
}

func TestBadLengthResyncs(t *testing.T) {
	recs := testRecords(5)
	all := tbtest.Records(recs...)
	off2 := 16 + len(recs[0]) + 16 + len(recs[1])
	off3 := off2 + 16 + len(recs[2])
	binary.LittleEndian.PutUint64(all[off2:], 1<<50) // length and its checksum disagree
	p := filepath.Join(t.TempDir(), "ev.tfevents")
	os.WriteFile(p, all, 0o644)
	rd, _ := openRecords(p, 0, 0)
	defer rd.Close()
	_, st := readAllRecords(t, rd)
	if st != recBadLength {
		t.Fatalf("status %v, want bad length", st)
	}
	at, found, err := rd.resync()
	if err != nil || !found || at != int64(off3) {
		t.Fatalf("resync = %d %v %v, want %d", at, found, err, off3)
	}
	rd.skipTo(at)
	rest, st := readAllRecords(t, rd)
	if len(rest) != 2 || st != recEOF {
		t.Fatalf("after resync: %d records, %v", len(rest), st)
	}

	// Garbage to the end: nothing found.
	p2 := filepath.Join(t.TempDir(), "ev2.tfevents")
	os.WriteFile(p2, append(tbtest.Records(recs[0]), bytes.Repeat([]byte{0x55}, 100)...), 0o644)
	rd2, _ := openRecords(p2, 0, 0)
	defer rd2.Close()
	if _, st := readAllRecords(t, rd2); st != recBadLength {
		t.Fatalf("garbage: %v", st)
	}
	if _, found, _ := rd2.resync(); found {
		t.Fatal("resync found a record in garbage")
	}
}

func TestLargeRecords(t *testing.T) {
	big := tbtest.Summary(1.7e9, 1, tbtest.ImageValue("img", tbtest.Image{Height: 1, Width: 1, Encoded: bytes.Repeat([]byte{7}, 3*defaultBufSize)}))
	graph := tbtest.Graph(1.7e9, 2*defaultBufSize)
	recs := [][]byte{tbtest.FileVersion(1.7e9), graph, big, tbtest.Scalar(1.7e9, 2, "x", 1)}
	p := filepath.Join(t.TempDir(), "ev.tfevents")
	os.WriteFile(p, tbtest.Records(recs...), 0o644)
	rd, _ := openRecords(p, 0, 0)
	defer rd.Close()
	kinds := []recStatus{}
	for {
		rec, err := rd.next()
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, rec.status)
		if rec.status == recEOF {
			break
		}
		switch rec.status {
		case recTooLarge:
			if rec.kind != evGraph {
				t.Errorf("large record kind %v, want graph", rec.kind)
			}
		case recOK:
			if len(rec.data) == len(big) && !bytes.Equal(rec.data, big) {
				t.Error("large summary differs")
			}
		}
		rd.skipTo(rec.end())
		if len(rd.buf) > defaultBufSize && int(rd.off-rd.bufOff) >= rd.n {
			t.Error("the grown buffer was kept")
		}
	}
	want := []recStatus{recOK, recTooLarge, recOK, recOK, recEOF}
	if len(kinds) != len(want) {
		t.Fatalf("statuses %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("statuses %v, want %v", kinds, want)
		}
	}
	if len(rd.buf) != defaultBufSize {
		t.Errorf("buffer of %d bytes after the large records", len(rd.buf))
	}

	// Over the limit: skipped, not read.
	rd2, _ := openRecords(p, 0, int64(len(big)-1))
	defer rd2.Close()
	var st []recStatus
	for {
		rec, _ := rd2.next()
		st = append(st, rec.status)
		if rec.status == recEOF {
			break
		}
		rd2.skipTo(rec.end())
	}
	if st[2] != recTooLarge {
		t.Errorf("statuses with a limit: %v", st)
	}
}
