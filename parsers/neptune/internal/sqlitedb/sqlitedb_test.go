package sqlitedb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func create(t *testing.T, path string, rows int) *Writer {
	t.Helper()
	w, err := Create(path, Metadata{Project: "w/p", RunID: "r"}, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rows; i++ {
		if err := w.Insert(Row{Time: int64(1000 + i), Type: 0, Op: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.InsertUpload(Upload{SourcePath: "/s", Destination: "d", MimeType: "text/plain", SizeBytes: 3, Temporary: true}); err != nil {
		t.Fatal(err)
	}
	return w
}

func scanAll(t *testing.T, r *Reader) []Row {
	t.Helper()
	var out []Row
	var after int64
	for {
		n, err := r.Scan(context.Background(), after, 3, func(row Row) error {
			row.Op = append([]byte(nil), row.Op...)
			out = append(out, row)
			after = row.Seq
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
	}
}

func checkRows(t *testing.T, rows []Row, n int) {
	t.Helper()
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	for i, r := range rows {
		if r.Seq != int64(i+1) || r.Time != int64(1000+i) || r.Type != 0 || !reflect.DeepEqual(r.Op, []byte{byte(i)}) {
			t.Fatalf("row %d = %+v", i, r)
		}
	}
}

// TestModes: a database is opened without creating or changing a file in
// its directory, whichever of -wal and -shm exist.
func TestModes(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live", "run_operations.sqlite3")
	os.MkdirAll(filepath.Dir(live), 0o755)
	w := create(t, live, 10)
	defer w.Close()

	// A WAL without its -shm: copied to a private directory.
	walOnly := filepath.Join(dir, "walonly", "run_operations.sqlite3")
	os.MkdirAll(filepath.Dir(walOnly), 0o755)
	for _, s := range []string{"", "-wal"} {
		if err := copyFile(live+s, walOnly+s); err != nil {
			t.Fatal(err)
		}
	}
	// A complete database: no WAL at all.
	done := filepath.Join(dir, "done", "run_operations.sqlite3")
	os.MkdirAll(filepath.Dir(done), 0o755)
	w2 := create(t, done, 10)
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		path string
		mode Mode
	}{
		{live, ModeReadOnlyWAL},
		{walOnly, ModeCopy},
		{done, ModeImmutable},
	}
	for _, tc := range tests {
		before := listDir(t, filepath.Dir(tc.path))
		r, err := Open(tc.path)
		if err != nil {
			t.Fatalf("Open(%s): %v", tc.path, err)
		}
		if r.Mode() != tc.mode {
			t.Errorf("%s opened as %v, want %v", tc.path, r.Mode(), tc.mode)
		}
		checkRows(t, scanAll(t, r), 10)
		meta, err := r.Metadata(context.Background())
		if err != nil || meta != (Metadata{Version: "v5", Project: "w/p", RunID: "r"}) {
			t.Errorf("metadata %+v, %v", meta, err)
		}
		ups, err := r.Uploads(context.Background())
		if err != nil || len(ups) != 1 || ups[0] != (Upload{SourcePath: "/s", Destination: "d", MimeType: "text/plain", SizeBytes: 3, Temporary: true}) {
			t.Errorf("uploads %+v, %v", ups, err)
		}
		tmp := r.tmpDir
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if tmp != "" {
			if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("private copy %s left behind", tmp)
			}
		}
		if after := listDir(t, filepath.Dir(tc.path)); !reflect.DeepEqual(before, after) {
			t.Errorf("%s: directory went from %v to %v", tc.path, before, after)
		}
		if _, err := r.Scan(context.Background(), 0, 1, func(Row) error { return nil }); !errors.Is(err, os.ErrClosed) {
			t.Errorf("Scan after Close: %v", err)
		}
	}

	// A follower sees rows committed after it opened; a copy is refreshed.
	r, err := Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkRows(t, scanAll(t, r), 10)
	for i := 10; i < 15; i++ {
		if err := w.Insert(Row{Time: int64(1000 + i), Op: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	checkRows(t, scanAll(t, r), 15)
}

func TestScanStopsOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run_operations.sqlite3")
	w := create(t, path, 5)
	w.Close()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stop := errors.New("stop")
	seen := 0
	n, err := r.Scan(context.Background(), 0, 100, func(row Row) error {
		seen++
		if row.Seq == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 || seen != 3 {
		t.Errorf("Scan = %d, %v (saw %d)", n, err, seen)
	}
	n, err = r.Scan(context.Background(), 3, 100, func(Row) error { return nil })
	if err != nil || n != 2 {
		t.Errorf("Scan after 3 = %d, %v", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Scan(ctx, 0, 100, func(Row) error { return nil }); err == nil {
		t.Error("Scan with a cancelled context: no error")
	}
}

func TestNotNeptune(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.sqlite3")
	os.WriteFile(junk, []byte("hello"), 0o644)
	if _, err := Open(junk); !errors.Is(err, ErrNotSQLite) {
		t.Errorf("Open(junk) = %v", err)
	}
	empty := filepath.Join(dir, "empty.sqlite3")
	os.WriteFile(empty, nil, 0o644)
	if ok, err := IsSQLite(empty); ok || err != nil {
		t.Errorf("IsSQLite(empty) = %v, %v", ok, err)
	}
	if _, err := IsSQLite(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("IsSQLite(missing) = %v", err)
	}
	// A real SQLite database without the tables.
	other := filepath.Join(dir, "other.sqlite3")
	w, err := Create(other, Metadata{}, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Exec("DROP TABLE run_operations"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := Open(other); !errors.Is(err, ErrNotNeptune) {
		t.Errorf("Open(other) = %v", err)
	}
}
