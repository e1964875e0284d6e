package inventory

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// IssueAgentToken creates a random token that lets the agent on one machine (and only that
// machine) talk to Slate until it expires, from any address. Only tests and tools that stand
// in for a deploy environment use it: a real boot gets its token from IssueBootToken.
func (s *Store) IssueAgentToken(ctx context.Context, machineID string, ttl time.Duration) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := "sla_" + base64.RawURLEncoding.EncodeToString(b)
	err := s.Update(ctx, func(t *Tx) error {
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM agent_tokens WHERE expires_at < ?`, t.now.Unix()); err != nil {
			return err
		}
		_, err := t.tx.ExecContext(ctx, `INSERT INTO agent_tokens(token_hash, machine_id, created_at, expires_at, activated_at) VALUES (?,?,?,?,?)`,
			tokenHash(tok), machineID, t.now.Unix(), t.now.Add(ttl).Unix(), t.now.Unix())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("issue agent token for machine %s: %w", machineID, err)
	}
	return tok, nil
}

// MachineForAgentToken returns the machine id a valid, unexpired agent token is bound to. It
// does not check the bound address (the caller has none): the agent API uses
// AuthenticateAgentToken.
func (s *Store) MachineForAgentToken(ctx context.Context, tok string) (string, error) {
	var id string
	err := s.read.QueryRowContext(ctx, `SELECT machine_id FROM agent_tokens WHERE token_hash = ? AND expires_at > ?`,
		tokenHash(tok), s.now().Unix()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", Errorf(ErrNotFound, "agent token unknown or expired")
	}
	return id, err
}

// AgentToken is what a valid token says about its bearer.
type AgentToken struct {
	MachineID string
	Kind      string     // "boot" (deploy environment) or "node" (installed system)
	BoundAddr netip.Addr // invalid: usable from any address (node tokens)
	// TaskID is the install task a node token was issued to ("" for boot tokens).
	TaskID string
}

// ErrTokenSource marks a bound token presented from another address than it was issued to.
var ErrTokenSource = errors.New("agent token used from another address")

// TokenSourceError: a bound token came from Remote, not Bound.
type TokenSourceError struct {
	MachineID     string
	Bound, Remote netip.Addr
}

func (e *TokenSourceError) Error() string {
	return fmt.Sprintf("agent token of machine %s is bound to %s but was presented from %s", e.MachineID, e.Bound, e.Remote)
}

func (e *TokenSourceError) Unwrap() error { return ErrTokenSource }

// AuthenticateAgentToken checks a token presented from remote: it must be known, unexpired,
// and (a boot token) come from the address it was issued to. A boot token's first use
// activates it: from then on it lives its full lifetime instead of the short activation window.
func (s *Store) AuthenticateAgentToken(ctx context.Context, tok string, remote netip.Addr) (AgentToken, error) {
	var t AgentToken
	var bound string
	var activated, created, lifetime int64
	now := s.now()
	err := s.read.QueryRowContext(ctx, `SELECT machine_id, kind, task_id, bound_addr, activated_at, created_at, lifetime_s FROM agent_tokens WHERE token_hash = ? AND expires_at > ?`,
		tokenHash(tok), now.Unix()).Scan(&t.MachineID, &t.Kind, &t.TaskID, &bound, &activated, &created, &lifetime)
	if errors.Is(err, sql.ErrNoRows) {
		return t, Errorf(ErrNotFound, "agent token unknown or expired")
	}
	if err != nil {
		return t, fmt.Errorf("check agent token: %w", err)
	}
	if bound != "" {
		b, err := netip.ParseAddr(bound)
		if err != nil {
			return t, fmt.Errorf("agent token of machine %s has an unreadable bound address %q: %w", t.MachineID, bound, err)
		}
		t.BoundAddr = b
		if remote.Unmap() != b {
			return t, &TokenSourceError{MachineID: t.MachineID, Bound: b, Remote: remote.Unmap()}
		}
	}
	if activated == 0 {
		err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.tx.ExecContext(ctx, `UPDATE agent_tokens SET activated_at = ?, expires_at = ? WHERE token_hash = ? AND activated_at = 0 AND expires_at > ?`,
				tx.now.Unix(), created+lifetime, tokenHash(tok), tx.now.Unix())
			return err
		})
		if err != nil {
			return t, fmt.Errorf("activate the agent token of machine %s: %w", t.MachineID, err)
		}
	}
	return t, nil
}

// AgentTokenInfo returns what a valid, unexpired token stands for (ErrNotFound otherwise):
// handlers that must know which kind of agent is calling ask it beside the auth middleware.
func (s *Store) AgentTokenInfo(ctx context.Context, tok string) (AgentToken, error) {
	var a AgentToken
	err := s.read.QueryRowContext(ctx, `SELECT machine_id, kind, task_id FROM agent_tokens WHERE token_hash = ? AND expires_at > ?`,
		tokenHash(tok), s.now().Unix()).Scan(&a.MachineID, &a.Kind, &a.TaskID)
	if errors.Is(err, sql.ErrNoRows) {
		return a, Errorf(ErrNotFound, "agent token unknown or expired")
	}
	return a, err
}

// NodeTokenTTL is how long an installed system's token lives: as long as the install, in
// practice — a re-install replaces it and retiring the machine revokes it.
const NodeTokenTTL = 10 * 365 * 24 * time.Hour

// IssueNodeToken creates the token an installed system's slate-agent node uses. Earlier node
// tokens of the machine are revoked in the same transaction: only the newest install reports.
// taskID is the install task the token is issued to (AgentTokenInfo returns it).
func (t *Tx) IssueNodeToken(ctx context.Context, machineID, taskID string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := "sln_" + base64.RawURLEncoding.EncodeToString(b)
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM agent_tokens WHERE machine_id = ? AND kind = 'node'`, machineID); err != nil {
		return "", err
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO agent_tokens(token_hash, machine_id, created_at, expires_at, kind, activated_at, task_id) VALUES (?,?,?,?,'node',?,?)`,
		tokenHash(tok), machineID, t.now.Unix(), t.now.Add(NodeTokenTTL).Unix(), t.now.Unix(), taskID)
	if err != nil {
		return "", fmt.Errorf("issue node token for machine %s: %w", machineID, err)
	}
	return tok, nil
}

// RevokeAgentTokens removes every token of a machine (it is retired: nothing of it may talk
// to Slate any more).
func (t *Tx) RevokeAgentTokens(ctx context.Context, machineID string) (int64, error) {
	// Nor may a boot expected of it hand out a new one.
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM boot_expectations WHERE machine_id = ?`, machineID); err != nil {
		return 0, err
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM agent_tokens WHERE machine_id = ?`, machineID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
