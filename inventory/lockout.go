package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrLocked: the account is locked after repeated failed logins (an admin unlocks it).
var ErrLocked = errors.New("locked")

// RecordLoginFailure audits a refused login and counts it against the account (if one has
// that name). When the account reaches lockAfter consecutive failures it is locked, which is
// audited as auth.locked; locked reports whether this failure locked it. lockAfter <= 0
// never locks.
func (s *Store) RecordLoginFailure(ctx context.Context, username, remote, via, reason string, lockAfter int) (locked bool, err error) {
	err = s.Update(ctx, func(tx *Tx) error {
		locked = false
		if _, err := tx.Audit(ctx, username, "auth.login", "user:"+username, "refused",
			map[string]any{"remote": remote, "via": via, "reason": reason}); err != nil {
			return err
		}
		res, err := tx.tx.ExecContext(ctx, `UPDATE users SET failed_logins = failed_logins + 1 WHERE username = ? AND locked_at = 0`, username)
		if err != nil {
			return fmt.Errorf("count the failed login of %q: %w", username, err)
		}
		if n, _ := res.RowsAffected(); n == 0 || lockAfter <= 0 {
			return nil // no such account, or already locked
		}
		var fails int
		if err := tx.tx.QueryRowContext(ctx, `SELECT failed_logins FROM users WHERE username = ?`, username).Scan(&fails); err != nil {
			return err
		}
		if fails < lockAfter {
			return nil
		}
		if _, err := tx.tx.ExecContext(ctx, `UPDATE users SET locked_at = ? WHERE username = ?`, tx.now.Unix(), username); err != nil {
			return fmt.Errorf("lock account %q: %w", username, err)
		}
		locked = true
		_, err = tx.Audit(ctx, "slate", "auth.locked", "user:"+username, "ok",
			map[string]any{"failed_logins": fails, "remote": remote, "via": via})
		return err
	})
	return locked, err
}

// ClearLoginFailures restarts an account's count of consecutive failures after a good login.
func (s *Store) ClearLoginFailures(ctx context.Context, username string) error {
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT failed_logins FROM users WHERE username = ?`, username).Scan(&n); err != nil || n == 0 {
		return nil // nothing to clear: a good login must not cost a write
	}
	return s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `UPDATE users SET failed_logins = 0 WHERE username = ? AND locked_at = 0`, username)
		return err
	})
}

// UnlockUser lets a locked account log in again (an admin's decision), audited.
func (s *Store) UnlockUser(ctx context.Context, actor, username string) error {
	return s.Update(ctx, func(tx *Tx) error {
		var lockedAt int64
		var fails int
		err := tx.tx.QueryRowContext(ctx, `SELECT locked_at, failed_logins FROM users WHERE username = ?`, username).Scan(&lockedAt, &fails)
		if errors.Is(err, sql.ErrNoRows) {
			return Errorf(ErrNotFound, "user %q does not exist (slate user list shows the accounts)", username)
		}
		if err != nil {
			return fmt.Errorf("unlock %q: %w", username, err)
		}
		if _, err := tx.tx.ExecContext(ctx, `UPDATE users SET locked_at = 0, failed_logins = 0 WHERE username = ?`, username); err != nil {
			return fmt.Errorf("unlock %q: %w", username, err)
		}
		_, err = tx.Audit(ctx, actor, "user.unlock", "user:"+username, "ok",
			map[string]any{"was_locked": lockedAt != 0, "failed_logins": fails})
		return err
	})
}
