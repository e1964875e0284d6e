package inventory

import "context"

// CountOpenTasks counts pending and running tasks of the given kinds across all machines
// (the reconciler's limit on concurrent installs and wipes).
func (s *Store) CountOpenTasks(ctx context.Context, kinds ...string) (int, error) {
	var n int
	for _, k := range kinds {
		var c int
		if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM tasks WHERE kind = ? AND state IN ('pending', 'running')`, k).Scan(&c); err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}
