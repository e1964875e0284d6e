package inventory

import "context"

// CountOpenTasks counts pending and running tasks of a kind across all machines (the
// reconciler's limit on concurrent installs and wipes).
func (s *Store) CountOpenTasks(ctx context.Context, kind string) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM tasks WHERE kind = ? AND state IN ('pending', 'running')`, kind).Scan(&n)
	return n, err
}
