package inventory

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// IssueAgentToken creates a random token that lets the agent on one machine (and only that
// machine) talk to Slate until it expires.
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
		_, err := t.tx.ExecContext(ctx, `INSERT INTO agent_tokens(token_hash, machine_id, created_at, expires_at) VALUES (?,?,?,?)`,
			tokenHash(tok), machineID, t.now.Unix(), t.now.Add(ttl).Unix())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("issue agent token for machine %s: %w", machineID, err)
	}
	return tok, nil
}

// MachineForAgentToken returns the machine id a valid, unexpired agent token is bound to.
func (s *Store) MachineForAgentToken(ctx context.Context, tok string) (string, error) {
	var id string
	err := s.read.QueryRowContext(ctx, `SELECT machine_id FROM agent_tokens WHERE token_hash = ? AND expires_at > ?`,
		tokenHash(tok), s.now().Unix()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", Errorf(ErrNotFound, "agent token unknown or expired")
	}
	return id, err
}

// AgentToken is what a valid token stands for.
type AgentToken struct {
	MachineID string
	// Kind is "boot" (a deploy environment's per-boot token) or "node" (an installed system's).
	Kind string
	// TaskID is the install task a node token was issued to ("" for boot tokens).
	TaskID string
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
	_, err := t.tx.ExecContext(ctx, `INSERT INTO agent_tokens(token_hash, machine_id, created_at, expires_at, kind, task_id) VALUES (?,?,?,?,'node',?)`,
		tokenHash(tok), machineID, t.now.Unix(), t.now.Add(NodeTokenTTL).Unix(), taskID)
	if err != nil {
		return "", fmt.Errorf("issue node token for machine %s: %w", machineID, err)
	}
	return tok, nil
}

// RevokeAgentTokens removes every token of a machine (it is retired: nothing of it may talk
// to Slate any more).
func (t *Tx) RevokeAgentTokens(ctx context.Context, machineID string) (int64, error) {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM agent_tokens WHERE machine_id = ?`, machineID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
