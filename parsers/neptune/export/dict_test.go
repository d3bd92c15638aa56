package export

import (
	"testing"

	"github.com/parquet-go/parquet-go/format"

	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// TestDictionaryFallback reads a string column whose dictionary outgrew
// its limit, so one column chunk holds dictionary-encoded pages and then
// plain ones (as pyarrow writes past dictionary_pagesize_limit).
func TestDictionaryFallback(t *testing.T) {
	m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 1, PointsPerRun: 10, StringValues: 60_000, BatchRows: 1 << 20, FileSeries: -1})
	if err != nil {
		t.Fatal(err)
	}
	r := &m.Runs[0]
	p, err := openPart(r.Parts[0])
	if err != nil {
		t.Fatal(err)
	}
	mixed := false
	for _, rg := range p.pf.Metadata().RowGroups {
		for _, c := range rg.Columns {
			var plain, dict bool
			for _, e := range c.MetaData.Encoding {
				plain = plain || e == format.Plain
				dict = dict || e == format.RLEDictionary || e == format.PlainDictionary
			}
			if plain && dict && c.MetaData.PathInSchema[0] == "string_value" {
				mixed = true
			}
		}
	}
	p.close()
	if !mixed {
		t.Fatal("generator: no string_value chunk with both dictionary and plain pages")
	}
	f := New(quiet)
	evs, ws := openRead(t, f, discover(t, f, m.DataDir)[0], parsers.Options{})
	checkRun(t, variant3, r, summarize(t, evs), ws)
}
