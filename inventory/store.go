// Package inventory is Slate's system of record: one SQLite database holding machines,
// their identities and BMCs, facts, tasks, leases, releases, users, tokens and the
// tamper-evident audit log. Nothing outside this package writes SQL.
package inventory

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Sentinel errors that callers map to user-facing answers (404, 409, …).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// Options tune a Store. The zero value is fine for production.
type Options struct {
	// Now is the clock; tests inject a fixed one.
	Now func() time.Time
	// Synchronous is SQLite's synchronous pragma: FULL (default) makes every commit durable
	// across power loss, which a system of record on a plant floor needs.
	Synchronous string
	// Logger says when Open had to restrict the database files' modes (nil: not logged).
	Logger *slog.Logger
}

// Store is the handle on the database. It is safe for concurrent use.
type Store struct {
	write *sql.DB // one connection: SQLite has one writer; queuing here beats SQLITE_BUSY
	read  *sql.DB
	now   func() time.Time
	path  string
}

// Migration is one forward-only schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded schema steps in order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", name, err)
		}
		b, err := migrationFS.ReadFile("migrations/" + name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d (versions must be contiguous)", m.Name, i+1)
		}
	}
	return out, nil
}

func dsn(path, sync string, immediate bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous("+sync+")")
	if immediate {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and applies every pending migration.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	return OpenAt(ctx, path, opts, -1)
}

// OpenAt is Open that migrates only up to version upTo (-1: all). Tests use it to build
// databases as earlier releases left them.
func OpenAt(ctx context.Context, path string, opts Options, upTo int) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Synchronous == "" {
		opts.Synchronous = "FULL"
	}
	switch strings.ToUpper(opts.Synchronous) {
	case "FULL", "NORMAL", "EXTRA", "OFF":
	default:
		return nil, fmt.Errorf("open store: synchronous must be FULL, NORMAL, EXTRA or OFF, not %q", opts.Synchronous)
	}
	if err := restrictFiles(path, opts.Logger); err != nil {
		return nil, err
	}
	w, err := sql.Open("sqlite", dsn(path, opts.Synchronous, true))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w (is the data directory writable?)", path, err)
	}
	s := &Store{write: w, now: opts.Now, path: path}
	if err := s.migrate(ctx, upTo); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, opts.Synchronous, false))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	s.read = r
	return s, nil
}

// restrictFiles makes the database and its -wal/-shm readable by Slate alone (0600), before
// SQLite opens them: SQLite gives the -wal and -shm files the main file's mode, so creating
// the main file 0600 first keeps all three private whatever the umask, and an install whose
// files an earlier Slate left 0644 is fixed (and logged).
func restrictFiles(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open store %s: %w (is the data directory writable?)", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check the mode of %s: %w", p, err)
		}
		if fi.Mode().Perm()&0o077 == 0 {
			continue // private already
		}
		if err := os.Chmod(p, 0o600); err != nil {
			return fmt.Errorf("restrict %s to mode 0600: %w (fix it by hand: chmod 600 %s)", p, err, p)
		}
		if log != nil {
			log.Warn("restricted a database file that others could read", "path", p, "was", fi.Mode().Perm().String(), "now", "-rw-------")
		}
	}
	return nil
}

// Close releases the database.
func (s *Store) Close() error {
	err := s.write.Close()
	if s.read != nil {
		if e := s.read.Close(); err == nil {
			err = e
		}
	}
	return err
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// SchemaVersion reports the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.write.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// IntegrityCheck runs SQLite's integrity check and foreign key check.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	var res string
	if err := s.write.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("integrity check: %s", res)
	}
	rows, err := s.write.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		return errors.New("foreign key check failed")
	}
	return rows.Err()
}

func (s *Store) migrate(ctx context.Context, upTo int) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	cur, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if cur > len(ms) {
		return fmt.Errorf("migrate: database is at schema version %d but this Slate knows only %d: run the newer Slate that wrote it", cur, len(ms))
	}
	for _, m := range ms {
		if m.Version <= cur || (upTo >= 0 && m.Version > upTo) {
			continue
		}
		tx, err := s.write.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?,?,?)`,
			m.Version, m.Name, s.now().Unix()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
	}
	return nil
}

// Tx is a write transaction. Every mutation goes through one, with its audit event, so a
// change and its audit record commit together or not at all.
type Tx struct {
	tx  *sql.Tx
	s   *Store
	now time.Time
}

// Update runs fn in one write transaction and commits if fn returns nil.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		if se := s.storageErr("begin transaction", err); se != err {
			return se
		}
		return fmt.Errorf("begin transaction: %w", err)
	}
	t := &Tx{tx: tx, s: s, now: s.now()}
	if err := fn(t); err != nil {
		tx.Rollback()
		// A statement can hit the full disk before the commit does (the page cache spills):
		// that is a storage failure too, not the caller's fault.
		return s.storageErr("write", err)
	}
	if err := tx.Commit(); err != nil {
		if se := s.storageErr("commit", err); se != err {
			return se
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Now is the transaction's timestamp (one per transaction, so all rows agree).
func (t *Tx) Now() time.Time { return t.now }

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// kindError is an error of one of the sentinel kinds whose message reads on its own (no
// "invalid: " prefix in what the operator sees).
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Errorf makes an error of kind (ErrInvalid, ErrConflict, ErrNotFound) with a readable message.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
