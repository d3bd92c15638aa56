package export

import (
	"context"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/mlop-ai/mlop-agent/event"
	"github.com/mlop-ai/mlop-agent/parsers"
	"github.com/mlop-ai/mlop-agent/parsers/neptune/neptunetest"
)

// TestResume reads each run in small chunks and, after every chunk,
// reopens it at the chunk's end — with the chunk's state, and without
// any state (the run is replayed) — and checks that the events read
// before plus those read after are exactly the events of one pass.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts neptunetest.ExportOptions
	}{
		{"neptune3", neptunetest.ExportOptions{Variant: neptunetest.Export3, Fork: true, FractionalSteps: true, MissingFiles: true,
			RowsPerPart: 90, BatchRows: 40, PointsPerRun: 200}},
		{"neptune2", neptunetest.ExportOptions{Variant: neptunetest.Export2, Runs: 2, RowsPerPart: 90, BatchRows: 40, PointsPerRun: 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := neptunetest.WriteExport(t.TempDir(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			f := New(quiet)
			for _, info := range discover(t, f, m.DataDir) {
				full, _ := openRead(t, f, info, parsers.Options{})
				s, err := f.Open(info, event.Position{}, nil, parsers.Options{})
				if err != nil {
					t.Fatal(err)
				}
				s.(*stream).maxRows = 23 // many chunks, ending inside parts and operations' batches
				var before []event.Event
				chunks := 0
				for {
					ch, err := s.Next(context.Background(), nil)
					if len(ch.Events) > 0 {
						before = append(before, ch.Events...)
						chunks++
						for _, state := range [][]byte{ch.State, nil} {
							r, err := f.Open(info, ch.End, state, parsers.Options{})
							if err != nil {
								t.Fatal(err)
							}
							rest, _ := readAll(t, r)
							r.Close()
							rest = resumedRest(t, rest, full, state != nil)
							got := append(append([]event.Event(nil), before...), rest...)
							if !reflect.DeepEqual(got, full) {
								t.Fatalf("%s: resumed at %v (state %v): %d events, want %d; first difference at %d",
									info.Key, ch.End, state != nil, len(got), len(full), firstDiff(got, full))
							}
						}
					}
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				s.Close()
				if chunks < 5 {
					t.Errorf("%s: only %d chunks", info.Key, chunks)
				}
				if !reflect.DeepEqual(before, full) {
					t.Errorf("%s: small chunks gave other events than one pass", info.Key)
				}
			}
		})
	}
}

func firstDiff(a, b []event.Event) int {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestResumeAtEnd reopens a finished run at its end: nothing more.
func TestResumeAtEnd(t *testing.T) {
	m, err := neptunetest.WriteExport(t.TempDir(), neptunetest.ExportOptions{Runs: 1, PointsPerRun: 30})
	if err != nil {
		t.Fatal(err)
	}
	f := New(quiet)
	info := discover(t, f, m.DataDir)[0]
	s, err := f.Open(info, event.Position{}, nil, parsers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, last := readAll(t, s)
	s.Close()
	if want := (event.Position{Offset: 0, Seq: m.Runs[0].Rows}); last.End != want {
		t.Fatalf("end %v, want %v", last.End, want)
	}
	r, err := f.Open(info, last.End, last.State, parsers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ch, err := r.Next(context.Background(), nil)
	if !errors.Is(err, io.EOF) || len(ch.Events) != 0 {
		t.Fatalf("after the end: %d events, %v; want none, EOF", len(ch.Events), err)
	}
	// Closed streams refuse to read; Close is idempotent.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(context.Background(), nil); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("Next after Close: %v", err)
	}
}
