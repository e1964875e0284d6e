package inventory

import (
	"context"
	"fmt"
)

// Agent token kinds: a deploy environment's per-boot token, an installed system's node token.
const (
	TokenBoot = "boot"
	TokenNode = "node"
)

// RunningTasks returns a machine's tasks in state running, oldest first.
func (s *Store) RunningTasks(ctx context.Context, machineID string) ([]Task, error) {
	out, err := s.queryTasks(ctx, `SELECT `+taskCols+` FROM tasks WHERE machine_id = ? AND state = ? ORDER BY created_at, rowid`,
		machineID, TaskRunning)
	if err != nil {
		return nil, fmt.Errorf("running tasks of machine %s: %w", machineID, err)
	}
	return out, nil
}
