package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Agent token kinds: a deploy environment's per-boot token, an installed system's node token.
const (
	TokenBoot = "boot"
	TokenNode = "node"
)

// AgentCredential is what a valid agent or node token stands for.
type AgentCredential struct {
	MachineID string
	Kind      string // TokenBoot or TokenNode
}

// AgentCredentialFor returns the machine and kind of a valid, unexpired agent or node token.
func (s *Store) AgentCredentialFor(ctx context.Context, tok string) (AgentCredential, error) {
	var c AgentCredential
	err := s.read.QueryRowContext(ctx, `SELECT machine_id, kind FROM agent_tokens WHERE token_hash = ? AND expires_at > ?`,
		tokenHash(tok), s.now().Unix()).Scan(&c.MachineID, &c.Kind)
	if errors.Is(err, sql.ErrNoRows) {
		return c, Errorf(ErrNotFound, "agent token unknown or expired")
	}
	return c, err
}

// RunningTasks returns a machine's tasks in state running, oldest first.
func (s *Store) RunningTasks(ctx context.Context, machineID string) ([]Task, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE machine_id = ? AND state = ? ORDER BY created_at, rowid`,
		machineID, TaskRunning)
	if err != nil {
		return nil, fmt.Errorf("running tasks of machine %s: %w", machineID, err)
	}
	defer rows.Close()
	out := []Task{}
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
