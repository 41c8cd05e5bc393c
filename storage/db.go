// Package storage keeps everything mem1lab records in one SQLite file: the imported
// questions and passage corpus (with an FTS5 BM25 index), experiments, their tasks,
// rollouts and turns.
//
// A Store holds two handles on the file: a single writer connection (every write
// is a BEGIN IMMEDIATE transaction, so writers queue instead of failing with
// SQLITE_BUSY in the middle of a transaction) and a pool of read-only connections.
// The file is in WAL mode, so readers see every committed write and never block
// the writer. Build with the tag sqlite_fts5.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// ErrNotFound is wrapped by every error that reports a missing row (question,
// passage, experiment, task, rollout).
var ErrNotFound = errors.New("not found")

// ErrDuplicate is wrapped by AppendTurn when the rollout already has a turn with
// the same index, and by AddTasks when a task key is reused with other content.
var ErrDuplicate = errors.New("duplicate")

// busyTimeoutMS is how long a connection waits on a lock before SQLITE_BUSY.
const busyTimeoutMS = 10000

// Store is one mem1lab SQLite file. It is safe for concurrent use.
type Store struct {
	path string
	w    *sql.DB // one connection, the only writer
	r    *sql.DB // read-only pool

	contexts lastContexts // the last appended context per rollout (see contexts.go)
	readOnly bool         // opened with OpenReadOnly: w is the read-only pool too
	bg       *background  // checkpoints and the trace indexer (background.go); nil when read-only
	stmts    *writeStmts  // the commit path's statements, prepared once on the writer (writes.go)
}

// writerDriver is the SQLite driver of the writer connection: automatic WAL
// checkpoints are off on it (background.go checkpoints from another connection).
const writerDriver = "sqlite3_mem1lab_writer"

func init() {
	sql.Register(writerDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec("PRAGMA wal_autocheckpoint = 0", nil)
		return err
	}})
}

// ErrNeedsMigration is wrapped by OpenReadOnly when the store's schema is older
// than this build's: open it once with Open (write access) to migrate it.
var ErrNeedsMigration = errors.New("the store needs migrating: open it once with write access")

// ErrReadOnly is wrapped by every write to a store opened with OpenReadOnly.
var ErrReadOnly = errors.New("the store is open read-only")

// Open opens (creating if needed, with its parent directory) the store at path and
// applies pending migrations. It fails when the file was written by a newer
// mem1lab (schema version above SchemaLatest).
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("storage: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("storage: create directory: %w", err)
	}
	uri := fileURI(abs)
	w, err := sql.Open(writerDriver, uri+fmt.Sprintf(
		"?_txlock=immediate&_journal_mode=WAL&_foreign_keys=on&_busy_timeout=%d&_synchronous=NORMAL",
		busyTimeoutMS))
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{path: abs, w: w}
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("storage: open %s: %w", abs, err)
	}
	if err := s.migrate(context.Background()); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite3", uri+fmt.Sprintf("?mode=ro&_foreign_keys=on&_busy_timeout=%d", busyTimeoutMS))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("storage: open read pool %s: %w", abs, err)
	}
	n := 2 * runtime.NumCPU()
	if n < 4 {
		n = 4
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.Ping(); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("storage: open read pool %s: %w", abs, err)
	}
	s.r = r
	if s.stmts, err = prepareWriteStmts(w); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startBackground(uri); err != nil {
		s.Close()
		return nil, err
	}
	// Catch up on turns a crashed process left queued for the trace index.
	if err := s.IndexQueuedTurns(context.Background()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenReadOnly opens the existing store at path for reading only: nothing is
// created, migrated or written (a file the user may not write, on a read-only
// disk, or one another process owns). Writes fail: inTx returns an error wrapping
// ErrReadOnly, and other statements fail with SQLite's "readonly database".
// When even SQLite's shared-memory file cannot be created beside it (a
// read-only directory), the file is opened as immutable: changes another process
// makes meanwhile are then not seen. Errors: a missing file, a file that is not
// a mem1lab store, or a schema version other than LatestSchemaVersion (an older
// store must be opened once writable, so it can be migrated).
func OpenReadOnly(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("storage: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if st, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("storage: open %s read-only: %w", abs, err)
	} else if st.IsDir() {
		return nil, fmt.Errorf("storage: open %s read-only: it is a directory", abs)
	}
	uri := fileURI(abs)
	var lastErr error
	for _, extra := range []string{"", "&immutable=1"} {
		r, err := sql.Open("sqlite3", uri+fmt.Sprintf("?mode=ro&_foreign_keys=on&_busy_timeout=%d", busyTimeoutMS)+extra)
		if err != nil {
			return nil, fmt.Errorf("storage: open %s read-only: %w", abs, err)
		}
		n := max(2*runtime.NumCPU(), 4)
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
		s := &Store{path: abs, w: r, r: r, readOnly: true}
		v, err := s.SchemaVersion(context.Background())
		if err != nil {
			r.Close()
			lastErr = err
			// immutable=1 reads the main file alone, without the WAL: right for a
			// folder where SQLite cannot make the WAL index, wrong for a live store
			// (it would miss every commit not yet checkpointed). So it is the
			// fallback only when the plain read-only open could not open its files.
			var se sqlite3.Error
			if extra == "" && errors.As(err, &se) && (se.Code == sqlite3.ErrCantOpen || se.Code == sqlite3.ErrReadonly) {
				continue
			}
			break
		}
		if v != len(migrations) {
			r.Close()
			if v > len(migrations) {
				return nil, fmt.Errorf("storage: %s has schema version %d but this build knows only up to %d; use a newer mem1lab to open it",
					abs, v, len(migrations))
			}
			return nil, fmt.Errorf("storage: %s has schema version %d, this build reads %d: %w",
				abs, v, len(migrations), ErrNeedsMigration)
		}
		return s, nil
	}
	return nil, fmt.Errorf("storage: open %s read-only: %w", abs, lastErr)
}

// ReadOnly reports whether the store was opened with OpenReadOnly.
func (s *Store) ReadOnly() bool { return s.readOnly }

// fileURI turns an absolute path into an SQLite "file:" URI, escaping the
// characters that URI parsing would otherwise take as delimiters.
func fileURI(abs string) string {
	p := filepath.ToSlash(abs)
	p = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
	if !strings.HasPrefix(p, "/") { // Windows drive path
		p = "/" + p
	}
	return "file:" + p
}

// Close closes both handles. The store must not be used afterwards.
func (s *Store) Close() error {
	var errs []error
	if s.bg != nil {
		errs = append(errs, s.stopBackground())
	}
	if s.stmts != nil {
		errs = append(errs, s.stmts.close())
		s.stmts = nil
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil && s.w != s.r {
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// IntegrityCheck runs SQLite's PRAGMA integrity_check, PRAGMA foreign_key_check
// and the FTS5 index integrity check; it returns nil when all pass, else an error
// listing the problems found.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("storage: integrity check: %w", err)
	}
	var problems []string
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			rows.Close()
			return fmt.Errorf("storage: integrity check: %w", err)
		}
		if msg != "ok" {
			problems = append(problems, msg)
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("storage: integrity check: %w", err)
	}
	fk, err := s.r.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("storage: foreign key check: %w", err)
	}
	for fk.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int
		if err := fk.Scan(&table, &rowid, &parent, &fkid); err != nil {
			fk.Close()
			return fmt.Errorf("storage: foreign key check: %w", err)
		}
		problems = append(problems, fmt.Sprintf("%s row %d references a missing %s row", table, rowid.Int64, parent))
	}
	if err := fk.Close(); err != nil {
		return fmt.Errorf("storage: foreign key check: %w", err)
	}
	// The FTS5 'integrity-check' command compares the index with the content table.
	if _, err := s.w.ExecContext(ctx, "INSERT INTO passages_fts(passages_fts) VALUES('integrity-check')"); err != nil {
		problems = append(problems, "passage search index: "+err.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("storage: integrity check failed: %s", strings.Join(problems, "; "))
	}
	return nil
}

// inTx runs fn in one write transaction (BEGIN IMMEDIATE on the writer), committing
// when fn returns nil and rolling back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.readOnly {
		return fmt.Errorf("storage: %s: %w", s.path, ErrReadOnly)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	return nil
}

// timeLayout is how timestamps are stored: UTC, fixed width, so text order is
// time order.
const timeLayout = "2006-01-02T15:04:05.000Z"

func now() string { return time.Now().UTC().Format(timeLayout) }

func parseTime(s string) time.Time {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
