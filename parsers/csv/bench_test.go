package csv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
)

// BenchmarkParse measures rows of ten numeric columns (a step and nine
// metrics), the shape of Lightning and YOLO files. Target: 500k rows/s and
// one allocation per row (the Points slice).
func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts parsers.Options
		pad  bool
	}{
		{name: "plain"},
		{name: "padded", pad: true},
		{name: "auto-step", opts: parsers.Options{Params: map[string]string{"auto_step": "true"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cols := []string{"step"}
			for i := range 9 {
				cols = append(cols, fmt.Sprintf("train/metric_%d", i))
			}
			const nrows = 1024
			rows := make([][]byte, nrows)
			for r := range rows {
				cells := []string{fmt.Sprint(r)}
				for i := range 9 {
					cells = append(cells, fmt.Sprint(0.123456789*float64(r+i+1)))
				}
				if bc.pad {
					for i, c := range cells {
						cells[i] = fmt.Sprintf("%20s", c)
					}
				}
				rows[r] = []byte(strings.Join(cells, ","))
			}
			p := newParser(b, bc.opts)
			dst, err := p.Parse(nil, event.Record{Line: 1, Data: []byte(strings.Join(cols, ","))})
			if err != nil || len(dst) != 0 {
				b.Fatal(err)
			}
			var bytes int64
			for _, r := range rows {
				bytes += int64(len(r)) + 1
			}
			b.SetBytes(bytes / nrows)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				dst, err = p.Parse(dst[:0], event.Record{Line: int64(i + 2), Pos: event.Position{Offset: int64(i)}, Data: rows[i%nrows]})
				if err != nil || len(dst) != 1 || len(dst[0].Points) < 9 {
					b.Fatalf("got %v, %v", dst, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
