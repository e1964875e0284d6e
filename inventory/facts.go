package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FactFields are the few facts also kept as machine columns, so machines can be searched
// and listed by them. Empty fields leave the machine's value as it is.
type FactFields struct {
	SystemUUID   string
	Serial       string
	Vendor       string
	Model        string
	Arch         string
	FirmwareMode string
}

// Facts is one version of a machine's hardware facts document (as the agent reported it).
type Facts struct {
	MachineID string          `json:"machine_id"`
	Version   int             `json:"version"`
	Doc       json.RawMessage `json:"doc"`
	CreatedAt time.Time       `json:"created_at"`
}

// PutFacts stores doc as the machine's next facts version and copies fields onto the machine.
// A serial that already belongs to another machine is not copied (the facts are kept: two
// boards with the same factory serial happen) and is reported in warnings.
func (t *Tx) PutFacts(ctx context.Context, machineID string, doc json.RawMessage, f FactFields) (version int, warnings []string, err error) {
	d, err := validJSON("facts document", doc, "")
	if err != nil {
		return 0, nil, err
	}
	if d == "" {
		return 0, nil, Errorf(ErrInvalid, "facts document is empty")
	}
	m, err := t.GetMachine(ctx, machineID)
	if err != nil {
		return 0, nil, fmt.Errorf("store facts: %w", err)
	}
	var cur sql.NullInt64
	if err := t.tx.QueryRowContext(ctx, `SELECT MAX(version) FROM facts WHERE machine_id = ?`, machineID).Scan(&cur); err != nil {
		return 0, nil, fmt.Errorf("facts of machine %s: %w", machineID, err)
	}
	version = int(cur.Int64) + 1
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO facts(machine_id, version, doc, created_at) VALUES (?,?,?,?)`,
		machineID, version, d, t.now.UnixNano()); err != nil {
		return 0, nil, fmt.Errorf("store facts of machine %s: %w", machineID, err)
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	p := MachinePatch{SystemUUID: opt(f.SystemUUID), Serial: opt(f.Serial), Vendor: opt(f.Vendor), Model: opt(f.Model),
		Arch: opt(f.Arch), FirmwareMode: opt(f.FirmwareMode), fromFacts: true}
	// Operator-entered identity is never overwritten from facts, whoever calls: the agent
	// API fails the machine on a mismatch before it gets here (IdentityConflicts).
	if m.SerialByOperator {
		p.Serial = nil
	}
	if m.SystemUUIDByOperator {
		p.SystemUUID = nil
	}
	if _, err := t.UpdateMachine(ctx, machineID, p); err != nil {
		if !errors.Is(err, ErrConflict) || p.Serial == nil {
			return 0, nil, fmt.Errorf("store facts of machine %s: %w", machineID, err)
		}
		warnings = append(warnings, err.Error())
		p.Serial = nil
		if _, err := t.UpdateMachine(ctx, machineID, p); err != nil {
			return 0, nil, fmt.Errorf("store facts of machine %s: %w", machineID, err)
		}
	}
	if _, err := t.Audit(ctx, "agent", "machine.facts", machineID, "ok", map[string]any{"version": version}); err != nil {
		return 0, nil, err
	}
	return version, warnings, nil
}

// IdentityConflicts compares inspected identity with what an operator entered: one sentence
// per field that differs, naming both values (none: facts may be stored). Values never
// entered by an operator are not compared: inspection fills them.
func IdentityConflicts(m Machine, f FactFields) []string {
	var out []string
	check := func(what, byOperator, inspected string, entered bool) {
		if !entered || strings.TrimSpace(inspected) == "" || strings.EqualFold(strings.TrimSpace(inspected), strings.TrimSpace(byOperator)) {
			return
		}
		out = append(out, fmt.Sprintf("inspected %s %q differs from the %s %q entered by an operator: check the machine and correct one of them", what, inspected, what, byOperator))
	}
	check("serial", m.Serial, f.Serial, m.SerialByOperator)
	check("system UUID", m.SystemUUID, f.SystemUUID, m.SystemUUIDByOperator)
	return out
}

// LatestFacts returns the newest facts of a machine inside the transaction.
func (t *Tx) LatestFacts(ctx context.Context, machineID string) (Facts, error) {
	f := Facts{MachineID: machineID}
	var doc string
	var at int64
	err := t.tx.QueryRowContext(ctx, `SELECT version, doc, created_at FROM facts WHERE machine_id = ? ORDER BY version DESC LIMIT 1`, machineID).Scan(&f.Version, &doc, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("facts of machine %s: %w (inspect the machine first)", machineID, ErrNotFound)
	}
	if err != nil {
		return f, fmt.Errorf("facts of machine %s: %w", machineID, err)
	}
	f.Doc = json.RawMessage(doc)
	f.CreatedAt = time.Unix(0, at).UTC()
	return f, nil
}

// LatestFacts returns the newest facts of a machine (ErrNotFound if it was never inspected).
func (s *Store) LatestFacts(ctx context.Context, machineID string) (Facts, error) {
	return s.FactsVersion(ctx, machineID, 0)
}

// FactsVersion returns one version of a machine's facts (0: the newest).
func (s *Store) FactsVersion(ctx context.Context, machineID string, version int) (Facts, error) {
	q := `SELECT version, doc, created_at FROM facts WHERE machine_id = ? ORDER BY version DESC LIMIT 1`
	args := []any{machineID}
	if version > 0 {
		q = `SELECT version, doc, created_at FROM facts WHERE machine_id = ? AND version = ?`
		args = append(args, version)
	}
	f := Facts{MachineID: machineID}
	var doc string
	var at int64
	err := s.read.QueryRowContext(ctx, q, args...).Scan(&f.Version, &doc, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("facts of machine %s (version %d; 0 = newest): %w (inspect the machine first)", machineID, version, ErrNotFound)
	}
	if err != nil {
		return f, fmt.Errorf("facts of machine %s: %w", machineID, err)
	}
	f.Doc = json.RawMessage(doc)
	f.CreatedAt = time.Unix(0, at).UTC()
	return f, nil
}

// FactsVersions lists the versions stored for a machine, newest first, without documents.
func (s *Store) FactsVersions(ctx context.Context, machineID string) ([]Facts, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT version, created_at FROM facts WHERE machine_id = ? ORDER BY version DESC`, machineID)
	if err != nil {
		return nil, fmt.Errorf("facts versions of machine %s: %w", machineID, err)
	}
	defer rows.Close()
	out := []Facts{}
	for rows.Next() {
		f := Facts{MachineID: machineID}
		var at int64
		if err := rows.Scan(&f.Version, &at); err != nil {
			return nil, err
		}
		f.CreatedAt = time.Unix(0, at).UTC()
		out = append(out, f)
	}
	return out, rows.Err()
}
