package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// decodeLine parses a generated line the way a user's tool would.
func decodeLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("generated line %q is not a JSON object: %v", line, err)
	}
	return m
}

func TestBackfillLine(t *testing.T) {
	p := newValuePool(1)
	for _, step := range []int64{0, 1, 99, 1000, 123_456_789} {
		line := p.appendBackfillLine(nil, step)
		if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
			t.Fatalf("line %q: want one JSON object and one trailing newline", line)
		}
		m := decodeLine(t, line)
		if got, want := len(m), len(metricNames)+2; got != want {
			t.Errorf("step %d: %d fields, want %d (step, time and %d metrics)", step, got, want, len(metricNames))
		}
		if got := m["step"].(json.Number).String(); got != fmt.Sprint(step) {
			t.Errorf("step = %s, want %d", got, step)
		}
		tm, err := m["time"].(json.Number).Float64()
		wantTime := float64(baseEpochMS+step*10) / 1000
		if err != nil || math.Abs(tm-wantTime) > 1e-3/2 {
			t.Errorf("step %d: time = %v (%v), want %.3f", step, m["time"], err, wantTime)
		}
		for _, name := range metricNames {
			n, ok := m[name].(json.Number)
			if !ok {
				t.Fatalf("step %d: metric %s = %#v, want a number", step, name, m[name])
			}
			if v, err := n.Float64(); err != nil || v < 0 || v >= 10 {
				t.Errorf("step %d: %s = %s, want a number in [0, 10)", step, name, n)
			}
		}
	}
}

func TestBackfillLinesDiffer(t *testing.T) {
	p := newValuePool(1)
	a, b := p.appendBackfillLine(nil, 1), p.appendBackfillLine(nil, 2)
	ma, mb := decodeLine(t, a), decodeLine(t, b)
	same := 0
	for _, name := range metricNames {
		if ma[name] == mb[name] {
			same++
		}
	}
	if same == len(metricNames) {
		t.Errorf("lines 1 and 2 carry the same values: %s %s", a, b)
	}
}

func TestWriteBackfillFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.jsonl")
	const lines = 2500
	n, err := writeBackfillFile(path, lines, newValuePool(3))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != n {
		t.Errorf("writeBackfillFile returned %d bytes, file has %d", n, len(data))
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var got int64
	for sc.Scan() {
		m := decodeLine(t, sc.Bytes())
		if s := m["step"].(json.Number).String(); s != fmt.Sprint(got) {
			t.Fatalf("line %d: step %s, want %d", got+1, s, got)
		}
		got++
	}
	if got != lines || data[len(data)-1] != '\n' {
		t.Errorf("file has %d lines (ends with %q), want %d ending in a newline", got, data[len(data)-1], lines)
	}
}

func TestWriteManyFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := writeManyFiles(dir, 3, 10, newValuePool(1)); err != nil {
		t.Fatal(err)
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil || len(matches) != 3 {
		t.Fatalf("files = %v (%v), want 3", matches, err)
	}
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Count(data, []byte("\n")); got != 10 {
			t.Errorf("%s: %d lines, want 10", m, got)
		}
	}
}

func TestLiveLine(t *testing.T) {
	p := newValuePool(1)
	const us = 1_764_107_374_123_456
	line := p.appendLiveLine(nil, 42, us)
	m := decodeLine(t, line)
	if got, want := int64(len(m)), livePointsPerLine+1; got != want {
		t.Errorf("%d fields, want %d (step + %d metric points)", got, want, livePointsPerLine)
	}
	if got := m[writeField].(json.Number).String(); got != fmt.Sprint(us) {
		t.Errorf("%s = %s, want %d", writeField, got, us)
	}
	if got := m["step"].(json.Number).String(); got != "42" {
		t.Errorf("step = %s, want 42", got)
	}
	// The write time survives the agent's float64 conversion exactly.
	if float64(int64(float64(us))) != float64(us) || int64(float64(us)) != us {
		t.Errorf("%d is not exact in a float64", us)
	}
}
