// Package sqlitedb reads (and, for tests and benchmarks, writes)
// neptune-scale run_operations.sqlite3 databases. It is the only package of
// the module that imports modernc.org/sqlite.
//
// Reading never modifies the user's files. A WAL-mode database is opened in
// one of three ways, chosen from the files present:
//
//   - no -wal file: the database is complete (a writer that closes cleanly
//     checkpoints and deletes its WAL), so it is opened with immutable=1,
//     which creates no -wal or -shm file;
//   - -wal and -shm present (a live writer, or a killed one): mode=ro with
//     readonly_shm=1, which opens the -shm read-only. SQLite then either
//     uses the live writer's wal-index or, when no writer holds it, reads
//     the WAL into private heap memory; rows that exist only in the WAL are
//     seen and nothing is written or checkpointed;
//   - -wal without -shm: SQLite would have to create the -shm, so the
//     database and its WAL are copied to a private temporary directory and
//     the copy is opened (re-copied when the originals change).
//
// The choice is re-evaluated before every Scan, so a follower notices a
// writer that starts or stops.
package sqlitedb

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// Errors returned by Open and the readers.
var (
	// ErrNotSQLite: the file does not start with the SQLite header.
	ErrNotSQLite = errors.New("not an SQLite database")
	// ErrNotNeptune: an SQLite database without the neptune-scale tables.
	ErrNotNeptune = errors.New("not a neptune-scale database")
	// ErrUnordered: rows did not arrive in sequence_id order.
	ErrUnordered = errors.New("rows out of order")
)

var sqliteMagic = []byte("SQLite format 3\x00")

// IsSQLite reports whether the file at path starts with the SQLite header.
func IsSQLite(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var hdr [16]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, err
	}
	return bytes.Equal(hdr[:], sqliteMagic), nil
}

// Metadata is the single row of the metadata table.
type Metadata struct {
	Version string
	Project string
	RunID   string
}

// Row is one run_operations row. Op is only valid during the callback that
// receives it.
type Row struct {
	Seq  int64
	Time int64 // enqueue time, unix ms
	Type int64 // 0 = UpdateRunSnapshot, 1 = Run; -1 when the column is not an integer
	Op   []byte
}

// Upload is one file_upload_requests row.
type Upload struct {
	SourcePath  string
	Destination string
	MimeType    string
	SizeBytes   int64
	Temporary   bool
}

// Mode says how a database was opened.
type Mode uint8

// The open modes.
const (
	ModeImmutable   Mode = iota + 1 // no WAL present: immutable=1
	ModeReadOnlyWAL                 // -wal and -shm present: mode=ro&readonly_shm=1
	ModeCopy                        // -wal without -shm: a private copy
)

func (m Mode) String() string {
	switch m {
	case ModeImmutable:
		return "immutable"
	case ModeReadOnlyWAL:
		return "readonly-wal"
	case ModeCopy:
		return "copy"
	}
	return "none"
}

// fileSig identifies the version of a file for the copy mode.
type fileSig struct {
	exists bool
	size   int64
	mtime  time.Time
}

func sig(path string) fileSig {
	fi, err := os.Stat(path)
	if err != nil {
		return fileSig{}
	}
	return fileSig{exists: true, size: fi.Size(), mtime: fi.ModTime()}
}

// Reader reads one database. It is not safe for concurrent use.
type Reader struct {
	path string
	db   *sql.DB
	mode Mode

	tmpDir        string  // ModeCopy: the private copy's directory
	dbSig, walSig fileSig // ModeCopy: the originals the copy was made from
	closed        bool
	scanQuery     string
}

// Open opens the database at path for reading and checks that it holds
// the neptune-scale tables.
func Open(path string) (*Reader, error) {
	ok, err := IsSQLite(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("open %s: %w", path, ErrNotSQLite)
	}
	r := &Reader{path: path}
	if err := r.open(r.wantMode()); err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Path returns the database path.
func (r *Reader) Path() string { return r.path }

// Mode returns how the database is currently opened.
func (r *Reader) Mode() Mode { return r.mode }

func (r *Reader) wantMode() Mode {
	wal := sig(r.path + "-wal")
	if !wal.exists {
		return ModeImmutable
	}
	if sig(r.path + "-shm").exists {
		return ModeReadOnlyWAL
	}
	return ModeCopy
}

func dsn(path string, params string) string {
	u := url.URL{Scheme: "file", Path: path, RawQuery: params}
	return u.String()
}

func (r *Reader) open(mode Mode) error {
	var target, params string
	switch mode {
	case ModeImmutable:
		target, params = r.path, "mode=ro&immutable=1"
	case ModeReadOnlyWAL:
		target, params = r.path, "mode=ro&readonly_shm=1"
	case ModeCopy:
		if err := r.copyFiles(); err != nil {
			return err
		}
		target, params = filepath.Join(r.tmpDir, "run_operations.sqlite3"), "mode=rw"
	}
	db, err := sql.Open("sqlite", dsn(target, params))
	if err != nil {
		return fmt.Errorf("open %s: %w", r.path, err)
	}
	// One connection: scans must not overlap, and a read-only handle needs
	// no pool.
	db.SetMaxOpenConns(1)
	// A read transaction is what touches the WAL and the -shm, so probe
	// with one rather than with Ping.
	var one int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master`).Scan(&one); err != nil {
		db.Close()
		if mode == ModeReadOnlyWAL {
			// The -shm may be unreadable or vanish between the stat and
			// the open: fall back to a private copy.
			return r.open(ModeCopy)
		}
		return fmt.Errorf("open %s: %w", r.path, err)
	}
	r.db, r.mode = db, mode
	return nil
}

// copyFiles copies the database and its WAL into a private directory.
func (r *Reader) copyFiles() error {
	if r.tmpDir == "" {
		dir, err := os.MkdirTemp("", "mlop-neptune-db-")
		if err != nil {
			return fmt.Errorf("copy %s: %w", r.path, err)
		}
		r.tmpDir = dir
	}
	dst := filepath.Join(r.tmpDir, "run_operations.sqlite3")
	for _, suffix := range []string{"-wal", "-shm", ""} {
		if err := os.Remove(dst + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("copy %s: %w", r.path, err)
		}
	}
	r.dbSig, r.walSig = sig(r.path), sig(r.path+"-wal")
	if err := copyFile(r.path, dst); err != nil {
		return fmt.Errorf("copy %s: %w", r.path, err)
	}
	if err := copyFile(r.path+"-wal", dst+"-wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("copy %s: %w", r.path+"-wal", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (r *Reader) check() error {
	var n int
	err := r.db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('run_operations', 'metadata')`).Scan(&n)
	if err != nil {
		return fmt.Errorf("read schema of %s: %w", r.path, err)
	}
	if n != 2 {
		return fmt.Errorf("read schema of %s: %w", r.path, ErrNotNeptune)
	}
	return nil
}

// refresh reopens the database when the files on disk call for another
// mode, or when a private copy is out of date.
func (r *Reader) refresh() error {
	want := r.wantMode()
	if want == r.mode && (want != ModeCopy || (sig(r.path) == r.dbSig && sig(r.path+"-wal") == r.walSig)) {
		return nil
	}
	if r.db != nil {
		r.db.Close()
		r.db = nil
	}
	return r.open(want)
}

// Metadata reads the metadata row.
func (r *Reader) Metadata(ctx context.Context) (Metadata, error) {
	var m Metadata
	err := r.db.QueryRowContext(ctx, `SELECT version, project, run_id FROM metadata ORDER BY id LIMIT 1`).Scan(&m.Version, &m.Project, &m.RunID)
	if err != nil {
		return m, fmt.Errorf("read metadata of %s: %w", r.path, err)
	}
	return m, nil
}

// Uploads reads the file_upload_requests table (absent before DB v2).
func (r *Reader) Uploads(ctx context.Context) ([]Upload, error) {
	var n int
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'file_upload_requests'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("read uploads of %s: %w", r.path, err)
	}
	if n == 0 {
		return nil, nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT source_path, destination, mime_type, size_bytes, is_temporary FROM file_upload_requests ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read uploads of %s: %w", r.path, err)
	}
	defer rows.Close()
	var out []Upload
	for rows.Next() {
		var u Upload
		var tmp int64
		if err := rows.Scan(&u.SourcePath, &u.Destination, &u.MimeType, &u.SizeBytes, &tmp); err != nil {
			return nil, fmt.Errorf("read uploads of %s: %w", r.path, err)
		}
		u.Temporary = tmp != 0
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read uploads of %s: %w", r.path, err)
	}
	return out, nil
}

// Scan calls fn for up to limit rows with sequence_id > after, in
// sequence_id order, and returns how many rows fn saw. An error from fn
// stops the scan and is returned as is.
//
// The rows are fed to fn from inside an SQL aggregate function: that skips
// database/sql's per-row machinery (a third of the cost) and hands fn the
// operation blob without a copy. fn must not keep r.Op nor call back into
// this Reader.
func (r *Reader) Scan(ctx context.Context, after int64, limit int, fn func(Row) error) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("scan %s: %w", r.path, os.ErrClosed)
	}
	if err := r.refresh(); err != nil {
		return 0, err
	}
	st := &scanState{fn: fn, last: after}
	id := scanIDs.Add(1)
	scans.Store(id, st)
	defer scans.Delete(id)
	var n int64
	err := r.db.QueryRowContext(ctx, scanSQL, id, after, limit).Scan(&n)
	if st.err != nil {
		return st.n, st.err
	}
	if err != nil {
		return st.n, fmt.Errorf("scan %s: %w", r.path, err)
	}
	return st.n, nil
}

// Close releases the database and removes a private copy. It is
// idempotent.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var err error
	if r.db != nil {
		err = r.db.Close()
	}
	if r.tmpDir != "" {
		if rerr := os.RemoveAll(r.tmpDir); err == nil {
			err = rerr
		}
	}
	return err
}

const scanFunc = "mlop_neptune_scan"

const scanSQL = `SELECT ` + scanFunc + `(?1, sequence_id, timestamp, operation_type, operation) FROM
 (SELECT sequence_id, timestamp, operation_type, operation FROM run_operations
  WHERE sequence_id > ?2 ORDER BY sequence_id LIMIT ?3)`

// scans routes aggregate calls to the Scan that issued the query: the SQL
// function is registered once per process, the first argument names the
// scan.
var (
	scans   sync.Map // int64 -> *scanState
	scanIDs atomic.Int64
)

type scanState struct {
	fn   func(Row) error
	last int64
	n    int
	err  error
}

type scanAgg struct{ st *scanState }

func asInt(v driver.Value) (int64, bool) {
	i, ok := v.(int64)
	return i, ok
}

func (a *scanAgg) Step(_ *sqlite.FunctionContext, args []driver.Value) error {
	if a.st == nil {
		id, _ := asInt(args[0])
		v, ok := scans.Load(id)
		if !ok {
			return errors.New("sqlitedb: unknown scan")
		}
		a.st = v.(*scanState)
	}
	st := a.st
	if st.err != nil {
		return st.err
	}
	seq, _ := asInt(args[1])
	if seq <= st.last {
		st.err = fmt.Errorf("%w: sequence_id %d after %d", ErrUnordered, seq, st.last)
		return st.err
	}
	st.last = seq
	row := Row{Seq: seq, Type: -1}
	row.Time, _ = asInt(args[2])
	if t, ok := asInt(args[3]); ok {
		row.Type = t
	}
	switch op := args[4].(type) {
	case []byte:
		row.Op = op
	case string:
		row.Op = []byte(op)
	}
	st.n++
	if err := st.fn(row); err != nil {
		st.err = err
		return err
	}
	return nil
}

func (a *scanAgg) WindowInverse(*sqlite.FunctionContext, []driver.Value) error { return nil }

func (a *scanAgg) WindowValue(*sqlite.FunctionContext) (driver.Value, error) {
	if a.st == nil {
		return int64(0), nil
	}
	return int64(a.st.n), nil
}

func (a *scanAgg) Final(*sqlite.FunctionContext) {}

func init() {
	sqlite.MustRegisterFunction(scanFunc, &sqlite.FunctionImpl{
		NArgs: 5,
		// The blob is handed to fn without a copy; fn is documented not to
		// keep it.
		VolatileArgs: true,
		MakeAggregate: func(sqlite.FunctionContext) (sqlite.AggregateFunction, error) {
			return &scanAgg{}, nil
		},
	})
}
