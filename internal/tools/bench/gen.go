package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// Generated data. Lines are built with strconv into reused buffers and
// written through a bufio.Writer: a 10 M-line file (2.5 GiB) must take
// seconds, not minutes, so encoding/json is not used per line.

// metricNames are the numeric fields of a backfill line: ten, named like a
// training loop's, so each line is ten metric points.
var metricNames = [...]string{
	"loss", "acc", "lr", "grad_norm", "val_loss",
	"val_acc", "tokens_per_s", "gpu_mem_gb", "weight_decay", "momentum",
}

// pointsPerLine is the number of metric points in one backfill line.
const pointsPerLine = int64(len(metricNames))

// baseEpochMS is the time of step 0 of generated backfill lines
// (2025-01-01T00:00:00Z); steps are 10 ms apart.
const baseEpochMS = 1_735_689_600_000

// liveFields are the metric fields of a live line besides t_write_us.
var liveFields = [...]string{"loss", "acc", "lr"}

// livePointsPerLine counts a live line's metric points: t_write_us is one
// (the receiver reads it back) plus liveFields.
const livePointsPerLine = int64(len(liveFields)) + 1

// writeField is the field of live lines that carries the time the harness
// wrote the line, in microseconds since the Unix epoch (exact in a float64,
// which the agent turns every value into).
const writeField = "t_write_us"

// valuePool holds preformatted metric values. Values look like what Python
// writes for a float32 tensor's .item() (17 significant digits), so the
// agent parses realistic numbers; drawing them from a pool keeps
// generation I/O-bound.
type valuePool struct {
	vals [][]byte
}

const poolSize = 4096 // a power of two (index masking)

func newValuePool(seed uint64) *valuePool {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := &valuePool{vals: make([][]byte, poolSize)}
	for i := range p.vals {
		v := float64(float32(r.Float64() * 10))
		p.vals[i] = strconv.AppendFloat(nil, v, 'g', -1, 64)
	}
	return p
}

// value returns the value for field k of line n: a cheap hash, so lines
// differ and no two fields of a line repeat in a pattern.
func (p *valuePool) value(n int64, k int) []byte {
	h := uint64(n)*uint64(len(metricNames)) + uint64(k)
	h *= 0x9e3779b97f4a7c15
	return p.vals[(h>>40)&(poolSize-1)]
}

// appendBackfillLine appends one backfill line with its newline:
//
//	{"step":S,"time":T,"loss":V,...,"momentum":V}
//
// T is epoch seconds with millisecond decimals, as Python's time.time()
// rounded would give.
func (p *valuePool) appendBackfillLine(dst []byte, step int64) []byte {
	dst = append(dst, `{"step":`...)
	dst = strconv.AppendInt(dst, step, 10)
	dst = append(dst, `,"time":`...)
	ms := baseEpochMS + step*10
	dst = strconv.AppendInt(dst, ms/1000, 10)
	frac := ms % 1000
	dst = append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	for k, name := range metricNames {
		dst = append(dst, ',', '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
		dst = append(dst, p.value(step, k)...)
	}
	return append(dst, '}', '\n')
}

// appendLiveLine appends one live line with its newline:
//
//	{"step":S,"t_write_us":U,"loss":V,"acc":V,"lr":V}
//
// No time field: the agent stamps the time it reads the line.
func (p *valuePool) appendLiveLine(dst []byte, step, writeUS int64) []byte {
	dst = append(dst, `{"step":`...)
	dst = strconv.AppendInt(dst, step, 10)
	dst = append(dst, `,"`+writeField+`":`...)
	dst = strconv.AppendInt(dst, writeUS, 10)
	for k, name := range liveFields {
		dst = append(dst, ',', '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
		dst = append(dst, p.value(step, k)...)
	}
	return append(dst, '}', '\n')
}

// writeBackfillFile writes lines backfill lines (steps 0..lines-1) to path
// and returns the bytes written.
func writeBackfillFile(path string, lines int64, p *valuePool) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var n int64
	for step := range lines {
		// AvailableBuffer: build the line in the writer's own buffer, no copy.
		b := p.appendBackfillLine(w.AvailableBuffer(), step)
		n += int64(len(b))
		if _, err := w.Write(b); err != nil {
			f.Close()
			return n, fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return n, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("close %s: %w", path, err)
	}
	return n, nil
}

// writeManyFiles writes files backfill files of linesPerFile lines each as
// dir/r0000.jsonl, dir/r0001.jsonl, ... and returns the bytes written.
func writeManyFiles(dir string, files int, linesPerFile int64, p *valuePool) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("create %s: %w", dir, err)
	}
	var total int64
	for i := range files {
		n, err := writeBackfillFile(filepath.Join(dir, fmt.Sprintf("r%04d.jsonl", i)), linesPerFile, p)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
