package inventory

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for idle-timeout tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openClock(t *testing.T) (*Store, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "slate.db"), Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

func TestPasswordPolicy(t *testing.T) {
	for _, tc := range []struct{ user, pw, want string }{
		{"ada", "12345678", "at least 12"},
		{"ada", "short-pw", "at least 12"},
		{"ada", "123456789012", "common passwords"},
		{"ada", "Password2024!", "common passwords"},
		{"ada", "changeme-123", "common passwords"},
		{"ada", "xxada-is-here-1", "username"},
		{"ada", "ADA-long-enough-1", "username"},
		{"ada", "zzzzzzzzzzzzzz", "repeated"},
		{"ada", "blue-kettle-rain-7", ""},
		{"admin", "plant floor tea mug", ""},
	} {
		err := CheckPasswordPolicy(tc.user, tc.pw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q for %s refused: %v", tc.pw, tc.user, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q for %s: got %v, want an error saying %q", tc.pw, tc.user, err, tc.want)
		case tc.want != "" && !errors.Is(err, ErrInvalid):
			t.Errorf("%q: error %v is not ErrInvalid", tc.pw, err)
		}
	}
	// The policy holds where accounts are made, not only in this function.
	s, _ := openClock(t)
	if _, err := s.AddUser(context.Background(), "t", "root2", "12345678", RoleAdmin, ""); err == nil {
		t.Fatal("admin with password 12345678 was created")
	}
}

func TestDisableDeleteAndLastAdmin(t *testing.T) {
	ctx := context.Background()
	s, _ := openClock(t)
	for _, u := range [][2]string{{"root", RoleAdmin}, {"boss", RoleAdmin}, {"tom", RoleOperator}} {
		if _, err := s.AddUser(ctx, "t", u[0], "blue-kettle-rain-7", u[1], ""); err != nil {
			t.Fatal(err)
		}
	}
	var tok string
	if err := s.Update(ctx, func(tx *Tx) (err error) { tok, err = tx.IssueToken(ctx, "tom", "api", time.Hour); return }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserForToken(ctx, tok, "api"); err != nil {
		t.Fatalf("fresh token refused: %v", err)
	}
	// Disabled: the existing token stops at once and the right password no longer logs in.
	if err := s.SetUserDisabled(ctx, "root", "tom", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserForToken(ctx, tok, "api"); err == nil {
		t.Fatal("a disabled user's existing token still works")
	}
	if _, err := s.Authenticate(ctx, "tom", "blue-kettle-rain-7"); !errors.Is(err, ErrDisabled) {
		t.Fatalf("disabled user logged in: %v", err)
	}
	if err := s.SetUserDisabled(ctx, "root", "tom", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "tom", "blue-kettle-rain-7"); err != nil {
		t.Fatalf("re-enabled user refused: %v", err)
	}
	// Yourself and the last admin.
	if err := s.SetUserDisabled(ctx, "root", "root", true); !errors.Is(err, ErrConflict) {
		t.Fatalf("admin disabled themselves: %v", err)
	}
	if err := s.DeleteUser(ctx, "root", "root"); !errors.Is(err, ErrConflict) {
		t.Fatalf("admin deleted themselves: %v", err)
	}
	if err := s.SetUserDisabled(ctx, "root", "boss", true); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "boss", "root"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "last enabled admin") {
		t.Fatalf("deleting the last enabled admin: %v", err)
	}
	if err := s.SetUserDisabled(ctx, "tom", "root", true); !errors.Is(err, ErrConflict) {
		t.Fatalf("disabling the last enabled admin: %v", err)
	}
	// Deleting keeps the name in the audit log.
	if err := s.DeleteUser(ctx, "root", "tom"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "tom", "blue-kettle-rain-7"); err == nil {
		t.Fatal("deleted user logged in")
	}
	ev, err := s.ListAudit(ctx, AuditFilter{Action: "user.delete"})
	if err != nil || len(ev) != 1 || ev[0].Subject != "user:tom" || ev[0].Actor != "root" {
		t.Fatalf("delete audit: %+v %v", ev, err)
	}
	if err := s.DeleteUser(ctx, "root", "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting an unknown user: %v", err)
	}
}

func TestPasswordChangeRevokesOtherTokens(t *testing.T) {
	ctx := context.Background()
	s, _ := openClock(t)
	if _, err := s.AddUser(ctx, "t", "ada", "blue-kettle-rain-7", RoleOperator, ""); err != nil {
		t.Fatal(err)
	}
	issue := func() string {
		var tok string
		if err := s.Update(ctx, func(tx *Tx) (err error) { tok, err = tx.IssueToken(ctx, "ada", "api", time.Hour); return }); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cur, other := issue(), issue()
	if _, err := s.ChangePassword(ctx, "ada", "wrong-current-pw", "green-lamp-cloud-9", cur); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "current password") {
		t.Fatalf("wrong current password: %v", err)
	}
	if _, err := s.ChangePassword(ctx, "ada", "blue-kettle-rain-7", "password1234", cur); err == nil {
		t.Fatal("weak new password accepted")
	}
	if _, err := s.UserForToken(ctx, other, "api"); err != nil {
		t.Fatal("a refused change revoked tokens")
	}
	n, err := s.ChangePassword(ctx, "ada", "blue-kettle-rain-7", "green-lamp-cloud-9", cur)
	if err != nil || n != 1 {
		t.Fatalf("change: %d %v", n, err)
	}
	if _, err := s.UserForToken(ctx, other, "api"); err == nil {
		t.Fatal("another token survived a password change")
	}
	if _, err := s.UserForToken(ctx, cur, "api"); err != nil {
		t.Fatal("the token that changed the password was revoked")
	}
	if _, err := s.Authenticate(ctx, "ada", "green-lamp-cloud-9"); err != nil {
		t.Fatal(err)
	}
	// Admin reset revokes everything, including the user's current token.
	if _, err := s.ResetPassword(ctx, "root", "ada", "ada"); err == nil {
		t.Fatal("reset accepted a weak password")
	}
	if _, err := s.ResetPassword(ctx, "ada", "ada", "orange-desk-wind-3"); !errors.Is(err, ErrConflict) {
		t.Fatalf("reset of your own password without the current one: %v", err)
	}
	if _, err := s.ResetPassword(ctx, "root", "ada", "orange-desk-wind-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserForToken(ctx, cur, "api"); err == nil {
		t.Fatal("token survived an admin reset")
	}
	// Revoke all tokens, keeping the current one.
	a, b := issue(), issue()
	if n, err := s.RevokeUserTokens(ctx, "ada", "ada", a); err != nil || n != 1 {
		t.Fatalf("revoke: %d %v", n, err)
	}
	if _, err := s.UserForToken(ctx, b, "api"); err == nil {
		t.Fatal("revoked token works")
	}
	if _, err := s.UserForToken(ctx, a, "api"); err != nil {
		t.Fatal("kept token revoked")
	}
	ev, _ := s.ListAudit(ctx, AuditFilter{Subject: "user:ada"})
	var actions []string
	for _, e := range ev {
		actions = append(actions, e.Action+"/"+e.Outcome)
	}
	got := strings.Join(actions, " ")
	for _, want := range []string{"user.password.change/refused", "user.password.change/ok", "user.password.reset/ok", "user.tokens.revoke/ok"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit lacks %s: %s", want, got)
		}
	}
}

func TestSessionIdleTimeout(t *testing.T) {
	ctx := context.Background()
	s, clk := openClock(t)
	if _, err := s.AddUser(ctx, "t", "ada", "blue-kettle-rain-7", RoleOperator, ""); err != nil {
		t.Fatal(err)
	}
	var busy, idle string
	if err := s.Update(ctx, func(tx *Tx) (err error) {
		if busy, err = tx.IssueToken(ctx, "ada", "session", 12*time.Hour); err != nil {
			return err
		}
		idle, err = tx.IssueToken(ctx, "ada", "session", 12*time.Hour)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The busy session is used every 20 minutes for two hours; the idle one is not.
	for range 6 {
		clk.add(20 * time.Minute)
		if _, err := s.SessionUser(ctx, busy, 30*time.Minute); err != nil {
			t.Fatalf("session in use expired: %v", err)
		}
	}
	if _, err := s.SessionUser(ctx, idle, 30*time.Minute); err == nil {
		t.Fatal("session idle for 2 h still valid")
	}
	// Ended for good: not valid again even without the idle check.
	if _, err := s.UserForToken(ctx, idle, "session"); err == nil {
		t.Fatal("idle session not deleted")
	}
	// Absolute lifetime still applies to a busy session.
	for range 30 {
		clk.add(20 * time.Minute)
		s.SessionUser(ctx, busy, 30*time.Minute)
	}
	if _, err := s.SessionUser(ctx, busy, 30*time.Minute); err == nil {
		t.Fatal("session outlived its 12 h lifetime")
	}
}
