package export

import (
	"context"
	"errors"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/internal/mapping"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

func TestDecodeDecimal(t *testing.T) {
	tests := []struct {
		b     []byte
		scale int
		want  int64
		err   error
	}{
		{[]byte{0, 0, 0, 0, 0, 0x0f, 0x42, 0x40}, 6, 1_000_000, nil}, // 1.000000
		{[]byte{0, 0, 0, 0, 0, 0x07, 0xa1, 0x20}, 6, 500_000, nil},   // 0.500000
		{[]byte{0x0f, 0x42, 0x40}, 6, 1_000_000, nil},                // 3 bytes
		{[]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 6, math.MaxInt64, nil},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 6, 0, mapping.ErrStepNegative},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40}, 6, 1_000_000, nil}, // 16 bytes
		{[]byte{1, 0, 0, 0, 0, 0, 0, 0, 0}, 6, 0, mapping.ErrStepOverflow},
		{[]byte{0, 0x80, 0, 0, 0, 0, 0, 0, 0}, 6, 0, mapping.ErrStepOverflow},
		{[]byte{3}, 0, 3_000_000, nil},
		{[]byte{25}, 1, 2_500_000, nil},
		{[]byte{0x01, 0x2c}, 8, 3, nil},                    // 300e-8
		{[]byte{0x01, 0x2d}, 8, 0, mapping.ErrStepTooFine}, // 301e-8
		{[]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0, 0, mapping.ErrStepOverflow},
		{nil, 6, 0, mapping.ErrStepSyntax},
	}
	for _, tc := range tests {
		got, err := decodeDecimal(tc.b, tc.scale)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("decodeDecimal(%x, %d) = %d, %v; want %d, %v", tc.b, tc.scale, got, err, tc.want, tc.err)
		}
	}
}

// FuzzDecodeDecimal checks the decimal decoding against math/big.
func FuzzDecodeDecimal(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0x0f, 0x42, 0x40}, uint8(6))
	f.Add([]byte{0xff, 0x01}, uint8(2))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(12))
	f.Fuzz(func(t *testing.T, b []byte, scale uint8) {
		s := int(scale % 40)
		got, err := decodeDecimal(b, s)
		if len(b) == 0 {
			if err == nil {
				t.Fatal("empty input accepted")
			}
			return
		}
		// Reference: two's complement big-endian, times 10^(6-s).
		v := new(big.Int).SetBytes(b)
		if b[0]&0x80 != 0 {
			v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
		if v.Sign() < 0 {
			if err == nil {
				t.Fatalf("negative %v accepted as %d", v, got)
			}
			return
		}
		want := new(big.Int).Set(v)
		exact := true
		if s <= 6 {
			want.Mul(want, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(6-s)), nil))
		} else {
			var rem big.Int
			want.QuoRem(want, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(s-6)), nil), &rem)
			exact = rem.Sign() == 0
		}
		fits := want.IsInt64() && v.BitLen() <= 63
		switch {
		case !exact:
			if err == nil {
				t.Fatalf("%x scale %d: inexact value accepted as %d", b, s, got)
			}
		case !fits:
			if err == nil {
				t.Fatalf("%x scale %d: %v accepted as %d", b, s, want, got)
			}
		default:
			if err != nil || got != want.Int64() {
				t.Fatalf("%x scale %d = %d, %v; want %v", b, s, got, err, want)
			}
		}
	})
}

// FuzzExportPart reads arbitrary bytes as a run's only part file: errors
// and warnings are fine, panics and hangs are not.
func FuzzExportPart(f *testing.F) {
	dir := f.TempDir()
	m, err := neptunetest.WriteExport(dir, neptunetest.ExportOptions{Runs: 1, PointsPerRun: 20, Metrics: 2, BatchRows: 16})
	if err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(m.Runs[0].Parts[0])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	arrow, err := os.ReadFile(filepath.Join(arrowFixture, "data/ws_proj-00871eb7ac1bdb01/mouse-run-7-6c9c7367962659dc_part_0.parquet"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(arrow)
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		proj := filepath.Join(t.TempDir(), "data", "proj")
		if err := os.MkdirAll(proj, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proj, "run_part_0.parquet"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		fm := New(quiet)
		infos, err := fm.Discover(proj)
		if err != nil || len(infos) != 1 {
			t.Fatalf("Discover = %v, %v", infos, err)
		}
		s, err := fm.Open(infos[0], event.Position{}, nil, parsers.Options{})
		if err != nil {
			return
		}
		defer s.Close()
		for i := 0; i < 10_000; i++ {
			ch, err := s.Next(context.Background(), nil)
			_ = ch
			if err != nil {
				return
			}
		}
		t.Fatal("stream does not end")
	})
}
