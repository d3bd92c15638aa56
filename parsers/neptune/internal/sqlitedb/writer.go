package sqlitedb

import (
	"database/sql"
	"fmt"
)

// schemaV5 is the neptune-scale 0.20+ schema (docs/neptune-formats.md
// §2.2.2), used by tests and benchmark generators to write databases that
// look like the client's.
const schemaV5 = `
CREATE TABLE run_operations (
  sequence_id INTEGER PRIMARY KEY AUTOINCREMENT,
  timestamp INTEGER NOT NULL,
  operation_type INTEGER NOT NULL,
  operation BLOB NOT NULL,
  operation_size_bytes INTEGER NOT NULL);
CREATE INDEX idx_run_operations_sequence_size ON run_operations (sequence_id, operation_size_bytes);
CREATE TABLE metadata (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  version TEXT NOT NULL,
  project TEXT NOT NULL,
  run_id TEXT NOT NULL);
CREATE TABLE file_upload_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  source_path TEXT NOT NULL,
  destination TEXT NOT NULL,
  mime_type TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  is_temporary INTEGER NOT NULL);
CREATE TABLE run_operation_submission (
  sequence_id INTEGER PRIMARY KEY,
  timestamp INTEGER NOT NULL,
  request_id TEXT NOT NULL);
CREATE TABLE operation_errors (
  error_id INTEGER PRIMARY KEY AUTOINCREMENT,
  timestamp INTEGER NOT NULL,
  error_type TEXT NOT NULL,
  error_details TEXT NOT NULL,
  error_body TEXT NOT NULL,
  sequence_id INTEGER);
`

// Writer creates and appends to a neptune-scale database in WAL mode, the
// way the client does. It exists for tests and benchmark generators.
type Writer struct {
	path string
	db   *sql.DB
}

// WriterOptions tune a Writer.
type WriterOptions struct {
	// Fast turns off fsync (synchronous=OFF), for generating large
	// benchmark inputs.
	Fast bool
}

// Create makes a new database at path with the v5 schema and one metadata
// row.
func Create(path string, meta Metadata, opts WriterOptions) (*Writer, error) {
	db, err := sql.Open("sqlite", dsn(path, "mode=rwc"))
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	sync := "FULL"
	if opts.Fast {
		sync = "OFF"
	}
	for _, q := range []string{"PRAGMA journal_mode = WAL", "PRAGMA synchronous = " + sync, schemaV5} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
	}
	if meta.Version == "" {
		meta.Version = "v5"
	}
	if _, err := db.Exec(`INSERT INTO metadata (version, project, run_id) VALUES (?, ?, ?)`, meta.Version, meta.Project, meta.RunID); err != nil {
		db.Close()
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &Writer{path: path, db: db}, nil
}

// Insert appends rows in one transaction. Seq is ignored (the table
// assigns it).
func (w *Writer) Insert(rows ...Row) error {
	tx, err := w.db.Begin()
	if err != nil {
		return fmt.Errorf("insert into %s: %w", w.path, err)
	}
	stmt, err := tx.Prepare(`INSERT INTO run_operations (timestamp, operation_type, operation, operation_size_bytes) VALUES (?, ?, ?, ?)`)
	if err != nil {
		tx.Rollback()
		return fmt.Errorf("insert into %s: %w", w.path, err)
	}
	for _, r := range rows {
		if _, err := stmt.Exec(r.Time, r.Type, r.Op, len(r.Op)); err != nil {
			stmt.Close()
			tx.Rollback()
			return fmt.Errorf("insert into %s: %w", w.path, err)
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert into %s: %w", w.path, err)
	}
	return nil
}

// InsertUpload records a file upload request.
func (w *Writer) InsertUpload(u Upload) error {
	tmp := 0
	if u.Temporary {
		tmp = 1
	}
	_, err := w.db.Exec(`INSERT INTO file_upload_requests (source_path, destination, mime_type, size_bytes, is_temporary) VALUES (?, ?, ?, ?, ?)`,
		u.SourcePath, u.Destination, u.MimeType, u.SizeBytes, tmp)
	if err != nil {
		return fmt.Errorf("insert upload into %s: %w", w.path, err)
	}
	return nil
}

// Close closes the database; SQLite checkpoints and removes the WAL.
func (w *Writer) Close() error {
	if w.db == nil {
		return nil
	}
	err := w.db.Close()
	w.db = nil
	return err
}
