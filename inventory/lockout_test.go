package inventory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLockoutSurvivesRestartAndOnlyAnAdminUnlocks: N consecutive failures lock the account
// (audited auth.locked); then even the right password is refused with a message saying how to
// unlock; a restart does not unlock it; UnlockUser does (audited user.unlock).
func TestLockoutSurvivesRestartAndOnlyAnAdminUnlocks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "slate.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, "admin", "tom", "tech-pass-0001", RoleOperator, ""); err != nil {
		t.Fatal(err)
	}
	// A good login between failures restarts the count: only consecutive failures lock.
	for range 2 {
		if _, err := s.RecordLoginFailure(ctx, "tom", "10.0.0.66", "api", "wrong username or password", 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ClearLoginFailures(ctx, "tom"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		locked, err := s.RecordLoginFailure(ctx, "tom", "10.0.0.66", "api", "wrong username or password", 3)
		if err != nil {
			t.Fatal(err)
		}
		if locked != (i == 2) {
			t.Fatalf("failure %d: locked=%v, want lock exactly at the 3rd consecutive failure", i+1, locked)
		}
	}
	if _, err := s.Authenticate(ctx, "tom", "tech-pass-0001"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "slate user unlock tom") {
		t.Fatalf("the right password on a locked account must be refused saying how to unlock: %v", err)
	}
	// A wrong password gets the same answer: a locked account is no password oracle.
	if _, err := s.Authenticate(ctx, "tom", "guess-1234"); !errors.Is(err, ErrLocked) {
		t.Fatalf("a wrong password on a locked account: %v", err)
	}
	ev, err := s.ListAudit(ctx, AuditFilter{Action: "auth.locked"})
	if err != nil || len(ev) != 1 || ev[0].Subject != "user:tom" || ev[0].Details["remote"] != "10.0.0.66" {
		t.Fatalf("auth.locked audit: %v %+v", err, ev)
	}
	s.Close()

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Authenticate(ctx, "tom", "tech-pass-0001"); !errors.Is(err, ErrLocked) {
		t.Fatalf("a restart must not unlock: %v", err)
	}
	us, _ := s.ListUsers(ctx)
	if len(us) != 1 || !us[0].Locked {
		t.Fatalf("ListUsers must show the lock: %+v", us)
	}
	if err := s.UnlockUser(ctx, "admin", "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unlocking an unknown user: %v", err)
	}
	if err := s.UnlockUser(ctx, "admin", "tom"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "tom", "tech-pass-0001"); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	ev, _ = s.ListAudit(ctx, AuditFilter{Action: "user.unlock"})
	if len(ev) != 1 || ev[0].Actor != "admin" {
		t.Fatalf("user.unlock audit: %+v", ev)
	}
	// Failures for a name nobody has are audited but lock nothing.
	if locked, err := s.RecordLoginFailure(ctx, "ghost", "10.0.0.66", "ui", "wrong username or password", 1); err != nil || locked {
		t.Fatalf("unknown user: locked=%v err=%v", locked, err)
	}
}

// TestDatabaseFilesArePrivate: the database and its -wal/-shm are 0600 after Open and after
// the first write (which creates the WAL), whatever the umask; files an earlier Slate left
// 0644 are fixed on Open.
func TestDatabaseFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "slate.db")
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return fi.Mode().Perm()
	}
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, "test", "tom", "tech-pass-0001", RoleOperator, ""); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if m := mode(p); m != 0o600 {
			t.Fatalf("%s has mode %v after the first write, want 0600", filepath.Base(p), m)
		}
	}
	s.Close()

	// An install from before the fix: everything world-readable.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if _, err := os.Stat(p); err != nil {
			os.WriteFile(p, nil, 0o644) // SQLite removes -wal/-shm on a clean close
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if m := mode(p); m != 0o600 {
			t.Fatalf("%s left at mode %v by Open, want 0600", filepath.Base(p), m)
		}
	}
	if us, err := s.ListUsers(ctx); err != nil || len(us) != 1 {
		t.Fatalf("the fixed database must still read: %v %v", us, err)
	}
}
