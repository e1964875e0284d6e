package inventory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// ErrStorage marks a write the database could not make durable: the disk is full, the data
// directory became read-only, or the file system failed. Nothing of the write was kept (the
// transaction rolled back), so callers must answer with a server error, never success.
var ErrStorage = errors.New("storage failure")

// StorageError says which write failed and why, in words an operator can act on.
type StorageError struct {
	Op   string // what was being written ("commit", "begin transaction", …)
	Path string // the database file
	Code int    // SQLite's result code (0 when the failure came from the OS directly)
	Full bool   // the file system has no space left
	Err  error
}

func (e *StorageError) Error() string {
	what := "the file system failed"
	switch {
	case e.Full:
		what = "the disk is full"
	case e.Code&0xff == sqliteReadOnly:
		what = "the database is read-only"
	}
	return fmt.Sprintf("database %s: %s failed, nothing was saved: %s (%v); free space or fix the data directory, then retry",
		e.Path, e.Op, what, e.Err)
}

// Unwrap lets errors.Is find both ErrStorage and the driver's error.
func (e *StorageError) Unwrap() []error { return []error{ErrStorage, e.Err} }

// IsDiskFull reports whether err is a write refused because the disk is full.
func IsDiskFull(err error) bool {
	var se *StorageError
	return errors.As(err, &se) && se.Full
}

// SQLite primary result codes that mean "the storage failed", not "the request was wrong".
const (
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteCorrupt  = 11
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// storageErr wraps err as a StorageError when it is one (nil otherwise unchanged).
func (s *Store) storageErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *StorageError
	if errors.As(err, &se) {
		return err
	}
	var coded interface{ Code() int }
	code := 0
	if errors.As(err, &coded) {
		code = coded.Code()
	}
	full := code&0xff == sqliteFull || errors.Is(err, syscall.ENOSPC)
	switch code & 0xff {
	case sqliteReadOnly, sqliteIOErr, sqliteCorrupt, sqliteFull, sqliteCantOpen:
	default:
		if !full && !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EIO) {
			return err
		}
	}
	return &StorageError{Op: op, Path: s.path, Code: code, Full: full, Err: err}
}

// WriteProbe checks that the database can still commit a write, at most once per interval
// (the cached answer is returned in between), so /readyz can be polled without wearing the
// disk: a small transaction on the write_probe table, rolled forward each time.
type WriteProbe struct {
	s     *Store
	every time.Duration
	mu    sync.Mutex
	at    time.Time
	last  error
}

// NewWriteProbe probes s at most once per every.
func (s *Store) NewWriteProbe(every time.Duration) *WriteProbe {
	return &WriteProbe{s: s, every: every}
}

// Check returns nil when the last probe (at most every old) committed.
func (p *WriteProbe) Check(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.s.now()
	if !p.at.IsZero() && now.Sub(p.at) < p.every && now.After(p.at) {
		return p.last
	}
	p.at = now
	p.last = p.s.Update(ctx, func(tx *Tx) error {
		// A fresh value each time, so the page really is rewritten (an identical UPDATE
		// still writes, but a changing one makes the intent obvious).
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO write_probe(id, at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at`,
			now.UnixNano())
		return err
	})
	return p.last
}
