package inventory

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// codedErr stands in for the driver's error (modernc's *sqlite.Error has Code() int).
type codedErr struct{ code int }

func (e codedErr) Error() string { return fmt.Sprintf("sqlite error (%d)", e.code) }
func (e codedErr) Code() int     { return e.code }

// TestStorageErrorsAreClassified: the disk's failures become StorageError (full or not), the
// request's own errors stay what they are.
func TestStorageErrorsAreClassified(t *testing.T) {
	s := &Store{path: "/data/slate.db"}
	for _, tc := range []struct {
		err           error
		storage, full bool
	}{
		{codedErr{13}, true, true},         // SQLITE_FULL
		{codedErr{13 | 1<<8}, true, true},  // an extended FULL code
		{codedErr{10 | 3<<8}, true, false}, // SQLITE_IOERR_WRITE
		{codedErr{8}, true, false},         // SQLITE_READONLY
		{fmt.Errorf("write: %w", syscall.ENOSPC), true, true},
		{codedErr{19}, false, false}, // SQLITE_CONSTRAINT: the request's fault
		{Errorf(ErrConflict, "taken"), false, false},
	} {
		err := s.storageErr("commit", tc.err)
		if got := errors.Is(err, ErrStorage); got != tc.storage {
			t.Errorf("%v: storage %v, want %v", tc.err, got, tc.storage)
		}
		if got := IsDiskFull(err); got != tc.full {
			t.Errorf("%v: full %v, want %v", tc.err, got, tc.full)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%v: the cause is lost", tc.err)
		}
	}
}

// TestWriteProbeIsRateLimited: /readyz may be polled often; the probe writes at most once per
// interval and answers from the last probe in between.
func TestWriteProbeIsRateLimited(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "slate.db"), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	p := s.NewWriteProbe(5 * time.Second)
	written := func() int64 {
		var at int64
		if err := s.write.QueryRowContext(ctx, `SELECT at FROM write_probe WHERE id = 1`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	if err := p.Check(ctx); err != nil {
		t.Fatal(err)
	}
	first := written()
	now = now.Add(2 * time.Second)
	if err := p.Check(ctx); err != nil || written() != first {
		t.Fatalf("probed again within the interval: %v, at %d (first %d)", err, written(), first)
	}
	now = now.Add(4 * time.Second)
	if err := p.Check(ctx); err != nil || written() != now.UnixNano() {
		t.Fatalf("did not probe after the interval: %v, at %d want %d", err, written(), now.UnixNano())
	}
}
