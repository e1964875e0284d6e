package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Certificate is a stored certificate of sanitization: a signed file, immutable.
type Certificate struct {
	ID          string    `json:"id"`
	MachineID   string    `json:"machine_id"`
	TaskID      string    `json:"task_id"`
	DriveSerial string    `json:"drive_serial"`
	DrivePath   string    `json:"drive_path"`
	KeyID       string    `json:"key_id"`
	Signature   string    `json:"signature"`
	File        []byte    `json:"-"`
	CreatedAt   time.Time `json:"created_at"`
}

// Report is a stored decommission report (every drive of one wipe).
type Report struct {
	ID         string    `json:"id"`
	MachineID  string    `json:"machine_id"`
	TaskID     string    `json:"task_id"`
	PlanDigest string    `json:"plan_digest"`
	Complete   bool      `json:"complete"`
	File       []byte    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
}

// AddCertificate stores a certificate.
func (t *Tx) AddCertificate(ctx context.Context, c Certificate) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO certificates(id, machine_id, task_id, drive_serial, drive_path, key_id, signature, file, created_at)
		VALUES (?,?,?,?,?,?,?,?,?)`, c.ID, c.MachineID, c.TaskID, c.DriveSerial, c.DrivePath, c.KeyID, c.Signature, c.File, t.now.UnixNano())
	if err != nil {
		return fmt.Errorf("store certificate %s: %w", c.ID, err)
	}
	return nil
}

// AddReport stores a decommission report.
func (t *Tx) AddReport(ctx context.Context, r Report) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO decommission_reports(id, machine_id, task_id, plan_digest, complete, file, created_at)
		VALUES (?,?,?,?,?,?,?)`, r.ID, r.MachineID, r.TaskID, r.PlanDigest, r.Complete, r.File, t.now.UnixNano())
	if err != nil {
		return fmt.Errorf("store decommission report %s: %w", r.ID, err)
	}
	return nil
}

const certCols = `id, machine_id, task_id, drive_serial, drive_path, key_id, signature, file, created_at`

func scanCert(sc interface{ Scan(...any) error }) (Certificate, error) {
	var c Certificate
	var at int64
	err := sc.Scan(&c.ID, &c.MachineID, &c.TaskID, &c.DriveSerial, &c.DrivePath, &c.KeyID, &c.Signature, &c.File, &at)
	c.CreatedAt = time.Unix(0, at).UTC()
	return c, err
}

// ListCertificates returns certificates, newest first (machineID "" = all).
func (s *Store) ListCertificates(ctx context.Context, machineID string) ([]Certificate, error) {
	q, args := `SELECT `+certCols+` FROM certificates`, []any{}
	if machineID != "" {
		q += ` WHERE machine_id = ?`
		args = append(args, machineID)
	}
	rows, err := s.read.QueryContext(ctx, q+` ORDER BY created_at DESC, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Certificate{}
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// GetCertificate returns one certificate.
func (s *Store) GetCertificate(ctx context.Context, id string) (Certificate, error) {
	c, err := scanCert(s.read.QueryRowContext(ctx, `SELECT `+certCols+` FROM certificates WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, Errorf(ErrNotFound, "certificate %q not found", id)
	}
	return c, err
}

// ListReports returns a machine's decommission reports, newest first.
func (s *Store) ListReports(ctx context.Context, machineID string) ([]Report, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, machine_id, task_id, plan_digest, complete, file, created_at
		FROM decommission_reports WHERE machine_id = ? ORDER BY created_at DESC`, machineID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Report{}
	for rows.Next() {
		var r Report
		var at int64
		if err := rows.Scan(&r.ID, &r.MachineID, &r.TaskID, &r.PlanDigest, &r.Complete, &r.File, &at); err != nil {
			return nil, err
		}
		r.CreatedAt = time.Unix(0, at).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// SetTaskParams replaces the params of a task that has not started (a wipe task's
// authorization names the task's own id, known only once it exists).
func (t *Tx) SetTaskParams(ctx context.Context, taskID string, params []byte) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE tasks SET params = ? WHERE id = ? AND state = 'pending'`, string(params), taskID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Errorf(ErrConflict, "task %s is not pending: its params cannot change", taskID)
	}
	return nil
}

// LatestTask returns the newest task of a kind for a machine (ok false: none).
func (s *Store) LatestTask(ctx context.Context, machineID, kind string) (Task, bool, error) {
	ts, err := s.ListTasks(ctx, machineID, 200)
	if err != nil {
		return Task{}, false, err
	}
	for _, t := range ts {
		if strings.EqualFold(t.Kind, kind) {
			return t, true, nil
		}
	}
	return Task{}, false, nil
}

// DeleteLeasesOf frees the DHCP leases of a machine's MACs (a retired machine).
func (t *Tx) DeleteLeasesOf(ctx context.Context, macs []string) (int64, error) {
	var n int64
	for _, mac := range macs {
		res, err := t.tx.ExecContext(ctx, `DELETE FROM leases WHERE mac = ?`, mac)
		if err != nil {
			return n, err
		}
		k, _ := res.RowsAffected()
		n += k
	}
	return n, nil
}

// SetTaskResult replaces a finished task's result document: Slate stores its own wipe plan
// in place of the one the agent proposed (the agent reports drives; Slate decides methods).
func (t *Tx) SetTaskResult(ctx context.Context, taskID string, result []byte) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE tasks SET result = ? WHERE id = ? AND state = 'succeeded'`, string(result), taskID)
	if err != nil {
		return fmt.Errorf("store result of task %s: %w", taskID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Errorf(ErrConflict, "task %s has not succeeded: its result cannot be replaced", taskID)
	}
	return nil
}

// SetWipePerson stores who performs a wipe (JSON, as given at its confirmation) beside its task.
func (t *Tx) SetWipePerson(ctx context.Context, taskID string, person []byte) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO wipe_confirmations(task_id, person, created_at) VALUES (?,?,?)`, taskID, string(person), t.now.UnixNano())
	if err != nil {
		return fmt.Errorf("store the person confirming wipe task %s: %w", taskID, err)
	}
	return nil
}

// WipePerson returns the person stored with a wipe's confirmation (ok false: none, a wipe
// confirmed before persons were asked for).
func (t *Tx) WipePerson(ctx context.Context, taskID string) ([]byte, bool, error) {
	var p string
	err := t.tx.QueryRowContext(ctx, `SELECT person FROM wipe_confirmations WHERE task_id = ?`, taskID).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the person confirming wipe task %s: %w", taskID, err)
	}
	return []byte(p), true, nil
}
