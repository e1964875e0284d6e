package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrDisabled is the kind of error for a correct password on a disabled account.
var ErrDisabled = errors.New("account disabled")

// MinPasswordLength is the shortest password Slate accepts (NIST SP 800-63B asks for at
// least 8; an appliance that signs certificates of sanitization asks for more).
const MinPasswordLength = 12

// commonPasswords are refused whatever their length: the first guesses of any attacker.
// Compared case-insensitively, also with digits and punctuation trimmed from both ends.
var commonPasswords = []string{
	"password", "passw0rd", "p@ssw0rd", "p@ssword", "123456789012", "1234567890", "12345678",
	"qwertyuiop", "qwertyuiopas", "qwerty", "letmein", "iloveyou", "welcome", "admin", "administrator",
	"changeme", "changeit", "secret", "default", "slate", "trustno1", "football", "baseball",
	"monkey", "dragon", "master", "sunshine", "princess", "superman", "starwars", "abcdefghijkl",
	"aaaaaaaaaaaa", "111111111111", "000000000000", "correcthorsebatterystaple", "operator",
	"auditor", "root", "toor", "test", "guest", "login", "passwordpassword", "qwerty123456",
}

// CheckPasswordPolicy says what is wrong with a password for username (nil: acceptable).
func CheckPasswordPolicy(username, pw string) error {
	if len([]rune(pw)) < MinPasswordLength {
		return Errorf(ErrInvalid, "password must be at least %d characters (this one has %d); a passphrase of a few words is easiest",
			MinPasswordLength, len([]rune(pw)))
	}
	if len(pw) > 1024 {
		return Errorf(ErrInvalid, "password must be at most 1024 bytes")
	}
	lower := strings.ToLower(pw)
	if u := strings.ToLower(strings.TrimSpace(username)); u != "" && strings.Contains(lower, u) {
		return Errorf(ErrInvalid, "password must not contain the username %q", username)
	}
	core := strings.Trim(lower, "0123456789!@#$%^&*()-_=+.,;:?/ ")
	for _, c := range commonPasswords {
		if lower == c || core == c {
			return Errorf(ErrInvalid, "password is on the list of common passwords attackers try first: choose another")
		}
	}
	if strings.Count(lower, lower[:1]) == len(lower) {
		return Errorf(ErrInvalid, "password must not be one character repeated")
	}
	return nil
}

// RecordLogin notes a successful login (shown to admins on the users page).
func (t *Tx) RecordLogin(ctx context.Context, username string) error {
	if _, err := t.tx.ExecContext(ctx, `UPDATE users SET last_login_at = ? WHERE username = ?`, t.now.Unix(), username); err != nil {
		return fmt.Errorf("record login of %s: %w", username, err)
	}
	return nil
}

// userRow reads one account inside a transaction (with its hash, for password changes).
func (t *Tx) userRow(ctx context.Context, username string) (User, string, error) {
	var u User
	var hash string
	var c, last int64
	err := t.tx.QueryRowContext(ctx, `SELECT username, role, full_name, created_at, password_hash, disabled, last_login_at FROM users WHERE username = ?`,
		username).Scan(&u.Username, &u.Role, &u.FullName, &c, &hash, &u.Disabled, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return u, "", Errorf(ErrNotFound, "no user %q", username)
	}
	if err != nil {
		return u, "", fmt.Errorf("read user %s: %w", username, err)
	}
	u.CreatedAt = time.Unix(c, 0).UTC()
	if last > 0 {
		u.LastLoginAt = time.Unix(last, 0).UTC()
	}
	return u, hash, nil
}

// refuseLastAdmin fails when taking u out of service would leave no enabled admin.
func (t *Tx) refuseLastAdmin(ctx context.Context, u User, what string) error {
	if u.Role != RoleAdmin || u.Disabled {
		return nil
	}
	var n int
	if err := t.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND username <> ?`,
		u.Username).Scan(&n); err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if n == 0 {
		return Errorf(ErrConflict, "cannot %s %s: it is the last enabled admin (add or enable another admin first)", what, u.Username)
	}
	return nil
}

// revokeTokens deletes every token of username except keep (a token, "" for none).
func (t *Tx) revokeTokens(ctx context.Context, username, keep string) (int, error) {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM api_tokens WHERE username = ? AND token_hash <> ?`, username, tokenHash(keep))
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of %s: %w", username, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// SetUserDisabled disables (or enables) an account; disabling revokes its tokens and
// sessions in the same transaction, so they stop working at once. An admin cannot disable
// themselves, nor the last enabled admin.
func (s *Store) SetUserDisabled(ctx context.Context, actor, username string, disabled bool) error {
	verb := map[bool]string{true: "disable", false: "enable"}[disabled]
	if disabled && actor == username {
		return Errorf(ErrConflict, "you cannot disable your own account (another admin can)")
	}
	return s.Update(ctx, func(tx *Tx) error {
		u, _, err := tx.userRow(ctx, username)
		if err != nil {
			return err
		}
		if disabled {
			if err := tx.refuseLastAdmin(ctx, u, verb); err != nil {
				return err
			}
		}
		if _, err := tx.tx.ExecContext(ctx, `UPDATE users SET disabled = ? WHERE username = ?`, disabled, username); err != nil {
			return fmt.Errorf("%s user %s: %w", verb, username, err)
		}
		revoked := 0
		if disabled {
			if revoked, err = tx.revokeTokens(ctx, username, ""); err != nil {
				return err
			}
		}
		_, err = tx.Audit(ctx, actor, "user."+verb, "user:"+username, "ok", map[string]any{"role": u.Role, "tokens_revoked": revoked})
		return err
	})
}

// DeleteUser removes an account and its tokens. The audit log keeps the name (events store
// it as text). An admin cannot delete themselves, nor the last enabled admin.
func (s *Store) DeleteUser(ctx context.Context, actor, username string) error {
	if actor == username {
		return Errorf(ErrConflict, "you cannot delete your own account (another admin can)")
	}
	return s.Update(ctx, func(tx *Tx) error {
		u, _, err := tx.userRow(ctx, username)
		if err != nil {
			return err
		}
		if err := tx.refuseLastAdmin(ctx, u, "delete"); err != nil {
			return err
		}
		revoked, err := tx.revokeTokens(ctx, username, "")
		if err != nil {
			return err
		}
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM users WHERE username = ?`, username); err != nil {
			return fmt.Errorf("delete user %s: %w", username, err)
		}
		_, err = tx.Audit(ctx, actor, "user.delete", "user:"+username, "ok",
			map[string]any{"role": u.Role, "full_name": u.FullName, "tokens_revoked": revoked})
		return err
	})
}

// ChangePassword sets a user's own password after checking the current one, and revokes
// every other session and token of the user (keep is the token the request came with).
// It returns how many were revoked.
func (s *Store) ChangePassword(ctx context.Context, username, current, newPW, keep string) (int, error) {
	var hash string
	err := s.read.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE username = ?`, username).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, Errorf(ErrNotFound, "no user %q", username)
	}
	if err != nil {
		return 0, fmt.Errorf("read user %s: %w", username, err)
	}
	if !CheckPassword(hash, current) {
		if aerr := s.Audit(ctx, username, "user.password.change", "user:"+username, "refused",
			map[string]any{"reason": "wrong current password"}); aerr != nil {
			return 0, fmt.Errorf("audit refused password change: %w", aerr)
		}
		return 0, Errorf(ErrInvalid, "current password is wrong: nothing changed")
	}
	if current == newPW {
		return 0, Errorf(ErrInvalid, "the new password must differ from the current one")
	}
	return s.setPassword(ctx, username, username, newPW, keep, "user.password.change")
}

// ResetPassword is an admin setting another user's password; every token and session of
// that user is revoked.
func (s *Store) ResetPassword(ctx context.Context, actor, username, newPW string) (int, error) {
	// A stolen admin session must not set the admin's own password without knowing it.
	if actor == username {
		return 0, Errorf(ErrConflict, "to change your own password, give the current one (My account, PUT /api/v1/me/password, slate user passwd)")
	}
	return s.setPassword(ctx, actor, username, newPW, "", "user.password.reset")
}

func (s *Store) setPassword(ctx context.Context, actor, username, newPW, keep, action string) (int, error) {
	if err := CheckPasswordPolicy(username, newPW); err != nil {
		return 0, err
	}
	// Hashed before the transaction: argon2id takes long and the store has one writer.
	hash := HashPassword(newPW)
	var revoked int
	err := s.Update(ctx, func(tx *Tx) error {
		if _, _, err := tx.userRow(ctx, username); err != nil {
			return err
		}
		if _, err := tx.tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE username = ?`, hash, username); err != nil {
			return fmt.Errorf("set password of %s: %w", username, err)
		}
		var err error
		if revoked, err = tx.revokeTokens(ctx, username, keep); err != nil {
			return err
		}
		_, err = tx.Audit(ctx, actor, action, "user:"+username, "ok", map[string]any{"tokens_revoked": revoked})
		return err
	})
	return revoked, err
}

// RevokeUserTokens revokes every token and session of username except keep ("" for all),
// audited; it returns how many were revoked.
func (s *Store) RevokeUserTokens(ctx context.Context, actor, username, keep string) (int, error) {
	var revoked int
	err := s.Update(ctx, func(tx *Tx) error {
		if _, _, err := tx.userRow(ctx, username); err != nil {
			return err
		}
		var err error
		if revoked, err = tx.revokeTokens(ctx, username, keep); err != nil {
			return err
		}
		_, err = tx.Audit(ctx, actor, "user.tokens.revoke", "user:"+username, "ok", map[string]any{"tokens_revoked": revoked, "kept_current": keep != ""})
		return err
	})
	return revoked, err
}

// SessionUser resolves a UI session token like UserForToken and also ends it when it was
// not used for idle (0: no idle timeout). A used session's last use is moved forward, at
// most once a minute, so browsing does not write on every request.
func (s *Store) SessionUser(ctx context.Context, tok string, idle time.Duration) (User, error) {
	var lastUsed int64
	err := s.read.QueryRowContext(ctx, `SELECT last_used_at FROM api_tokens WHERE token_hash = ? AND kind = 'session'`,
		tokenHash(tok)).Scan(&lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, Errorf(ErrNotFound, "session unknown or expired")
	}
	if err != nil {
		return User{}, fmt.Errorf("read session: %w", err)
	}
	now := s.now()
	if idle > 0 && now.Sub(time.Unix(lastUsed, 0)) > idle {
		if _, err := s.write.ExecContext(ctx, `DELETE FROM api_tokens WHERE token_hash = ?`, tokenHash(tok)); err != nil {
			return User{}, fmt.Errorf("end idle session: %w", err)
		}
		return User{}, Errorf(ErrNotFound, "session idle for more than %s: log in again", idle)
	}
	u, err := s.UserForToken(ctx, tok, "session")
	if err != nil {
		return u, err
	}
	if now.Sub(time.Unix(lastUsed, 0)) >= time.Minute {
		if _, err := s.write.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ?`, now.Unix(), tokenHash(tok)); err != nil {
			// The session stays valid (it was used within the window); only its idle clock
			// did not move, so it may end early. Logged by the caller.
			return u, fmt.Errorf("note session use: %w", err)
		}
	}
	return u, nil
}
