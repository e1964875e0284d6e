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
