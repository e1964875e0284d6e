package inventory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Roles, from most to least privileged.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleAuditor  = "auditor"
)

// User is an account (never with its hash).
type User struct {
	Username  string    `json:"username"`
	Role      string    `json:"role"`
	FullName  string    `json:"full_name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Disabled accounts cannot log in and their tokens are refused.
	Disabled bool `json:"disabled"`
	// LastLoginAt is zero when the user never logged in.
	LastLoginAt time.Time `json:"last_login_at,omitzero"`
	// Locked: repeated failed logins locked the account until an admin unlocks it.
	Locked bool `json:"locked"`
}

var usernameRE = regexp.MustCompile(`^[a-z][a-z0-9._-]{1,31}$`)

// ValidRole reports whether r is one of the three roles.
func ValidRole(r string) bool { return r == RoleAdmin || r == RoleOperator || r == RoleAuditor }

// argon2id parameters: RFC 9106's second recommended option (64 MiB, 3 passes).
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 2
	argonKeyLen  = 32
)

// HashPassword returns an encoded argon2id hash.
func HashPassword(pw string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// CheckPassword compares pw with an encoded argon2id hash in constant time.
func CheckPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// CreateUser adds an account.
func (t *Tx) CreateUser(ctx context.Context, username, password, role, fullName string) (User, error) {
	username = strings.TrimSpace(username)
	if !usernameRE.MatchString(username) {
		return User{}, Errorf(ErrInvalid, "username %q must be 2-32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter", username)
	}
	if !ValidRole(role) {
		return User{}, Errorf(ErrInvalid, "role %q must be admin, operator or auditor", role)
	}
	if err := CheckPasswordPolicy(username, password); err != nil {
		return User{}, err
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO users(username, password_hash, role, full_name, created_at) VALUES (?,?,?,?,?)`,
		username, HashPassword(password), role, fullName, t.now.Unix())
	if isUnique(err) {
		return User{}, Errorf(ErrConflict, "user %q already exists", username)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return User{Username: username, Role: role, FullName: fullName, CreatedAt: t.now.Truncate(time.Second).UTC()}, nil
}

// CountUsers returns the number of accounts.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}

// ListUsers returns all accounts.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT username, role, full_name, created_at, disabled, last_login_at, locked_at != 0 FROM users ORDER BY username`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		var u User
		var c, last int64
		if err := rows.Scan(&u.Username, &u.Role, &u.FullName, &c, &u.Disabled, &last, &u.Locked); err != nil {
			return nil, err
		}
		u.CreatedAt = time.Unix(c, 0).UTC()
		if last > 0 {
			u.LastLoginAt = time.Unix(last, 0).UTC()
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// Authenticate checks a username and password.
func (s *Store) Authenticate(ctx context.Context, username, password string) (User, error) {
	var u User
	var hash string
	var c, lockedAt int64
	err := s.read.QueryRowContext(ctx, `SELECT username, role, full_name, created_at, password_hash, disabled, locked_at FROM users WHERE username = ?`,
		username).Scan(&u.Username, &u.Role, &u.FullName, &c, &hash, &u.Disabled, &lockedAt)
	if errors.Is(err, sql.ErrNoRows) {
		// Hash anyway so a wrong username costs as long as a wrong password.
		CheckPassword("$argon2id$v=19$m=65536,t=3,p=2$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", password)
		return User{}, Errorf(ErrNotFound, "wrong username or password")
	}
	if err != nil {
		return User{}, err
	}
	ok := CheckPassword(hash, password)
	if lockedAt != 0 {
		// Said whatever the password: a locked account must not keep answering whether a
		// guess was right.
		return User{}, Errorf(ErrLocked, "account %q is locked after repeated failed logins: ask an admin to unlock it (slate user unlock %s, or Unlock on the Users page)", u.Username, u.Username)
	}
	if !ok {
		return User{}, Errorf(ErrNotFound, "wrong username or password")
	}
	// Said only to someone who knows the password: a guesser learns nothing.
	if u.Disabled {
		return User{}, Errorf(ErrDisabled, "account %s is disabled: ask an admin to enable it", u.Username)
	}
	u.CreatedAt = time.Unix(c, 0).UTC()
	return u, nil
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// IssueToken creates a bearer token (kind "api" or "session") for a user, valid for ttl.
func (t *Tx) IssueToken(ctx context.Context, username, kind string, ttl time.Duration) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("issue token: no randomness: %w", err)
	}
	tok := "slt_" + base64.RawURLEncoding.EncodeToString(b)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO api_tokens(token_hash, username, kind, created_at, expires_at, last_used_at) VALUES (?,?,?,?,?,?)`,
		tokenHash(tok), username, kind, t.now.Unix(), t.now.Add(ttl).Unix(), t.now.Unix())
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	// Expired tokens are pruned here so the table does not grow forever. In the same
	// transaction: a failure here means the token's own insert would not commit either.
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM api_tokens WHERE expires_at < ?`, t.now.Unix()); err != nil {
		return "", fmt.Errorf("issue token: prune expired tokens: %w", err)
	}
	return tok, nil
}

// RevokeToken deletes a token.
func (t *Tx) RevokeToken(ctx context.Context, tok string) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM api_tokens WHERE token_hash = ?`, tokenHash(tok))
	return err
}

// UserForToken resolves a bearer token to its user, if it is valid and not expired.
func (s *Store) UserForToken(ctx context.Context, tok, kind string) (User, error) {
	var u User
	var c int64
	err := s.read.QueryRowContext(ctx, `SELECT u.username, u.role, u.full_name, u.created_at FROM api_tokens t
		JOIN users u ON u.username = t.username WHERE t.token_hash = ? AND t.kind = ? AND t.expires_at > ? AND u.disabled = 0`,
		tokenHash(tok), kind, s.now().Unix()).Scan(&u.Username, &u.Role, &u.FullName, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return u, Errorf(ErrNotFound, "token unknown or expired")
	}
	u.CreatedAt = time.Unix(c, 0).UTC()
	return u, err
}

// AddUser creates an account and audits it, in one transaction.
func (s *Store) AddUser(ctx context.Context, actor, username, password, role, fullName string) (User, error) {
	var u User
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		if u, err = tx.CreateUser(ctx, username, password, role, fullName); err != nil {
			return err
		}
		_, err = tx.Audit(ctx, actor, "user.create", "user:"+u.Username, "ok", map[string]any{"role": u.Role})
		return err
	})
	return u, err
}
