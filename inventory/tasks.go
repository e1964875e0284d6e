package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Task states. A task is created pending, claimed (running) by the agent on its machine, and
// finished exactly once: succeeded, failed, or cancelled by an operator.
const (
	TaskPending   = "pending"
	TaskRunning   = "running"
	TaskSucceeded = "succeeded"
	TaskFailed    = "failed"
	TaskCancelled = "cancelled"
)

// Task is one unit of work Slate asks the agent on a machine to do (inspect, wipe, install, …).
type Task struct {
	ID         string          `json:"id"`
	MachineID  string          `json:"machine_id"`
	Kind       string          `json:"kind"`
	Params     json.RawMessage `json:"params"`
	State      string          `json:"state"`
	Progress   float64         `json:"progress"`
	Message    string          `json:"message,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Attempts   int             `json:"attempts"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  time.Time       `json:"started_at,omitzero"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
}

// Finished reports whether the task reached a final state.
func (t Task) Finished() bool {
	return t.State == TaskSucceeded || t.State == TaskFailed || t.State == TaskCancelled
}

// TaskLogLine is one line of a task's output. Seq is chosen by the agent (1, 2, …) so a
// retried upload of the same lines stores them once.
type TaskLogLine struct {
	Seq  int64     `json:"seq"`
	At   time.Time `json:"at"`
	Line string    `json:"line"`
}

const taskCols = `id, machine_id, kind, params, state, progress, message, result, attempts, created_at, started_at, finished_at`

func scanTask(sc interface{ Scan(...any) error }) (Task, error) {
	var t Task
	var params, result string
	var created, started, finished int64
	if err := sc.Scan(&t.ID, &t.MachineID, &t.Kind, &params, &t.State, &t.Progress, &t.Message, &result,
		&t.Attempts, &created, &started, &finished); err != nil {
		return t, err
	}
	t.Params = json.RawMessage(params)
	if result != "" {
		t.Result = json.RawMessage(result)
	}
	t.CreatedAt = time.Unix(0, created).UTC()
	if started != 0 {
		t.StartedAt = time.Unix(0, started).UTC()
	}
	if finished != 0 {
		t.FinishedAt = time.Unix(0, finished).UTC()
	}
	return t, nil
}

func getTask(ctx context.Context, q querier, id string) (Task, error) {
	t, err := scanTask(q.QueryRowContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("task %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("get task %q: %w", id, err)
	}
	return t, nil
}

// validJSONObject returns raw as compact JSON, "{}" when empty, or ErrInvalid.
func validJSON(what string, raw json.RawMessage, empty string) (string, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return empty, nil
	}
	if !json.Valid([]byte(s)) {
		return "", Errorf(ErrInvalid, "%s is not valid JSON", what)
	}
	return s, nil
}

// CreateTask queues a task of kind for a machine, with params (a JSON document, may be nil),
// and audits it. It runs inside the caller's transaction so a lifecycle move and the task it
// implies commit together.
func (t *Tx) CreateTask(ctx context.Context, actor, machineID, kind string, params json.RawMessage) (Task, error) {
	kind = strings.TrimSpace(kind)
	if kind == "" {
		return Task{}, Errorf(ErrInvalid, "a task needs a kind (inspect, wipe, install, reboot, …)")
	}
	p, err := validJSON("task params", params, "{}")
	if err != nil {
		return Task{}, err
	}
	if _, err := t.GetMachine(ctx, machineID); err != nil {
		return Task{}, fmt.Errorf("create %s task: %w", kind, err)
	}
	id := newID("t-")
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO tasks(id, machine_id, kind, params, state, created_at) VALUES (?,?,?,?,?,?)`,
		id, machineID, kind, p, TaskPending, t.now.UnixNano()); err != nil {
		return Task{}, fmt.Errorf("create %s task for machine %s: %w", kind, machineID, err)
	}
	if _, err := t.Audit(ctx, actor, "task.create", machineID, "ok", map[string]any{"task": id, "kind": kind}); err != nil {
		return Task{}, err
	}
	return getTask(ctx, t.tx, id)
}

// CreateTask is Tx.CreateTask in its own transaction.
func (s *Store) CreateTask(ctx context.Context, actor, machineID, kind string, params json.RawMessage) (Task, error) {
	var out Task
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		out, err = tx.CreateTask(ctx, actor, machineID, kind, params)
		return err
	})
	return out, err
}

// GetTask returns one task.
func (s *Store) GetTask(ctx context.Context, id string) (Task, error) {
	return getTask(ctx, s.read, id)
}

// GetTask reads a task inside the transaction.
func (t *Tx) GetTask(ctx context.Context, id string) (Task, error) { return getTask(ctx, t.tx, id) }

// ListTasks returns a machine's tasks, newest first (limit ≤ 0: 100).
func (s *Store) ListTasks(ctx context.Context, machineID string, limit int) ([]Task, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	out, err := s.queryTasks(ctx, `SELECT `+taskCols+` FROM tasks WHERE machine_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?`,
		machineID, limit)
	if err != nil {
		return nil, fmt.Errorf("list tasks of machine %s: %w", machineID, err)
	}
	return out, nil
}

// queryTasks runs a SELECT of taskCols on the read connection and scans every row.
func (s *Store) queryTasks(ctx context.Context, query string, args ...any) ([]Task, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
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

// ClaimNextTask hands the agent of a machine its next task, marking it running and counting
// the attempt, all in one transaction. The agent asks only when it is idle, so a task of this
// machine still marked running was lost on the way (the answer never arrived, or the machine
// rebooted mid-task): it is handed out again first, until maxAttempts is reached, when it is
// failed instead of looping forever. ok is false when there is nothing to do.
//
// kinds, when given, are the task kinds the asking agent can run: an installed system's node
// agent must not take (and fail) the deploy environment's tasks queued while it still runs.
func (s *Store) ClaimNextTask(ctx context.Context, machineID string, maxAttempts int, kinds ...string) (task Task, ok bool, err error) {
	if maxAttempts <= 0 {
		maxAttempts = 3
	}
	filter, args := "", []any{machineID}
	if len(kinds) > 0 {
		filter = " AND kind IN (?" + strings.Repeat(",?", len(kinds)-1) + ")"
		for _, k := range kinds {
			args = append(args, k)
		}
	}
	err = s.Update(ctx, func(tx *Tx) error {
		for {
			t, err := scanTask(tx.tx.QueryRowContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE machine_id = ? AND state IN ('running','pending')`+filter+`
				ORDER BY CASE state WHEN 'running' THEN 0 ELSE 1 END, created_at, rowid LIMIT 1`, args...))
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("claim task for machine %s: %w", machineID, err)
			}
			if t.Attempts >= maxAttempts {
				msg := fmt.Sprintf("given to the agent %d times without a result (the machine rebooted or lost it each time)", t.Attempts)
				if _, err := tx.tx.ExecContext(ctx, `UPDATE tasks SET state=?, message=?, finished_at=? WHERE id=?`,
					TaskFailed, msg, tx.now.UnixNano(), t.ID); err != nil {
					return err
				}
				if _, err := tx.Audit(ctx, "agent", "task.fail", machineID, "failed", map[string]any{"task": t.ID, "kind": t.Kind, "reason": msg}); err != nil {
					return err
				}
				continue
			}
			started := t.StartedAt.UnixNano()
			if t.StartedAt.IsZero() {
				started = tx.now.UnixNano()
			}
			if _, err := tx.tx.ExecContext(ctx, `UPDATE tasks SET state=?, attempts=attempts+1, started_at=? WHERE id=?`,
				TaskRunning, started, t.ID); err != nil {
				return fmt.Errorf("claim task %s: %w", t.ID, err)
			}
			task, err = getTask(ctx, tx.tx, t.ID)
			ok = err == nil
			return err
		}
	})
	return task, ok, err
}

// ownedTask returns the task if it belongs to machineID; another machine's task is reported
// as not found, so an agent learns nothing about tasks that are not its own.
func (t *Tx) ownedTask(ctx context.Context, machineID, taskID string) (Task, error) {
	task, err := getTask(ctx, t.tx, taskID)
	if err != nil {
		return task, err
	}
	if task.MachineID != machineID {
		return Task{}, fmt.Errorf("task %q: %w", taskID, ErrNotFound)
	}
	return task, nil
}

// ReportTaskProgress records progress (0..1), a message (kept if empty) and log lines of a
// running task. Lines already stored (same seq) are ignored, so a retried report is harmless.
// A finished task refuses progress with ErrConflict.
func (s *Store) ReportTaskProgress(ctx context.Context, machineID, taskID string, progress float64, message string, lines []TaskLogLine) error {
	if math.IsNaN(progress) || progress < 0 || progress > 1 {
		return Errorf(ErrInvalid, "progress %v must be between 0 and 1", progress)
	}
	return s.Update(ctx, func(tx *Tx) error {
		task, err := tx.ownedTask(ctx, machineID, taskID)
		if err != nil {
			return err
		}
		if task.Finished() {
			return Errorf(ErrConflict, "task %s is already %s", taskID, task.State)
		}
		if task.State != TaskRunning {
			return Errorf(ErrConflict, "task %s is %s, not running: ask for the next task first", taskID, task.State)
		}
		if _, err := tx.tx.ExecContext(ctx, `UPDATE tasks SET progress=?, message=CASE WHEN ?='' THEN message ELSE ? END WHERE id=?`,
			progress, message, message, taskID); err != nil {
			return fmt.Errorf("progress of task %s: %w", taskID, err)
		}
		return tx.appendTaskLogs(ctx, taskID, lines)
	})
}

func (t *Tx) appendTaskLogs(ctx context.Context, taskID string, lines []TaskLogLine) error {
	for _, l := range lines {
		if l.Seq <= 0 {
			return Errorf(ErrInvalid, "log line seq must be positive (got %d)", l.Seq)
		}
		at := l.At
		if at.IsZero() {
			at = t.now
		}
		if _, err := t.tx.ExecContext(ctx, `INSERT OR IGNORE INTO task_logs(task_id, seq, at, line) VALUES (?,?,?,?)`,
			taskID, l.Seq, at.UnixNano(), l.Line); err != nil {
			return fmt.Errorf("log of task %s: %w", taskID, err)
		}
	}
	return nil
}

// TaskLogs returns a task's log lines with seq > afterSeq, oldest first (limit ≤ 0: 1000).
func (s *Store) TaskLogs(ctx context.Context, taskID string, afterSeq int64, limit int) ([]TaskLogLine, error) {
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	rows, err := s.read.QueryContext(ctx, `SELECT seq, at, line FROM task_logs WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		taskID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("logs of task %s: %w", taskID, err)
	}
	defer rows.Close()
	out := []TaskLogLine{}
	for rows.Next() {
		var l TaskLogLine
		var at int64
		if err := rows.Scan(&l.Seq, &at, &l.Line); err != nil {
			return nil, err
		}
		l.At = time.Unix(0, at).UTC()
		out = append(out, l)
	}
	return out, rows.Err()
}

// TaskOutcome is how a task ended, as the agent reports it.
type TaskOutcome struct {
	State   string          // TaskSucceeded or TaskFailed
	Message string          // why it failed, or a summary
	Result  json.RawMessage // the task's output document (facts, a wipe report, …)
	Logs    []TaskLogLine   // the last lines, stored with the result
}

// FinishHook runs inside FinishTask's transaction when (and only when) the task really
// finishes now, so what the result implies (facts stored, a lifecycle move) commits with it.
type FinishHook func(ctx context.Context, tx *Tx, task Task) error

// FinishTask records the end of a task exactly once. A repeat of the same outcome (the agent
// retrying after a lost answer or a Slate restart) returns the stored task with changed=false
// and runs nothing again; a contradicting outcome for a finished task is ErrConflict.
func (s *Store) FinishTask(ctx context.Context, machineID, taskID string, o TaskOutcome, hook FinishHook) (task Task, changed bool, err error) {
	if o.State != TaskSucceeded && o.State != TaskFailed {
		return Task{}, false, Errorf(ErrInvalid, "a task finishes as %q or %q, not %q", TaskSucceeded, TaskFailed, o.State)
	}
	res, err := validJSON("task result", o.Result, "")
	if err != nil {
		return Task{}, false, err
	}
	err = s.Update(ctx, func(tx *Tx) error {
		cur, err := tx.ownedTask(ctx, machineID, taskID)
		if err != nil {
			return err
		}
		if cur.Finished() {
			task = cur
			if cur.State == o.State {
				return nil
			}
			return Errorf(ErrConflict, "task %s already finished as %s", taskID, cur.State)
		}
		if err := tx.appendTaskLogs(ctx, taskID, o.Logs); err != nil {
			return err
		}
		progress := cur.Progress
		if o.State == TaskSucceeded {
			progress = 1
		}
		if _, err := tx.tx.ExecContext(ctx, `UPDATE tasks SET state=?, message=?, result=?, progress=?, finished_at=? WHERE id=?`,
			o.State, o.Message, res, progress, tx.now.UnixNano(), taskID); err != nil {
			return fmt.Errorf("finish task %s: %w", taskID, err)
		}
		outcome := "ok"
		if o.State == TaskFailed {
			outcome = "failed"
		}
		if _, err := tx.Audit(ctx, "agent", "task.finish", machineID, outcome,
			map[string]any{"task": taskID, "kind": cur.Kind, "state": o.State, "message": o.Message}); err != nil {
			return err
		}
		task, err = getTask(ctx, tx.tx, taskID)
		if err != nil {
			return err
		}
		if hook != nil {
			if err := hook(ctx, tx, task); err != nil {
				return fmt.Errorf("finish task %s: %w", taskID, err)
			}
		}
		changed = true
		return nil
	})
	return task, changed, err
}

// CancelTask cancels a task that has not finished (an operator's action). The agent learns of
// it when its next report is refused with ErrConflict.
func (s *Store) CancelTask(ctx context.Context, actor, taskID, reason string) (Task, error) {
	var out Task
	err := s.Update(ctx, func(tx *Tx) error {
		cur, err := getTask(ctx, tx.tx, taskID)
		if err != nil {
			return err
		}
		if cur.Finished() {
			return Errorf(ErrConflict, "task %s is already %s", taskID, cur.State)
		}
		if _, err := tx.tx.ExecContext(ctx, `UPDATE tasks SET state=?, message=?, finished_at=? WHERE id=?`,
			TaskCancelled, reason, tx.now.UnixNano(), taskID); err != nil {
			return err
		}
		if _, err := tx.Audit(ctx, actor, "task.cancel", cur.MachineID, "ok", map[string]any{"task": taskID, "reason": reason}); err != nil {
			return err
		}
		out, err = getTask(ctx, tx.tx, taskID)
		return err
	})
	return out, err
}
