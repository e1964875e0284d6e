package inventory

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// GenesisHash is the previous-hash of the first audit event.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// AuditEvent is one link of the append-only, hash-chained audit log.
type AuditEvent struct {
	Seq      int64          `json:"seq"`
	At       time.Time      `json:"at"`
	Actor    string         `json:"actor"`
	Action   string         `json:"action"`
	Subject  string         `json:"subject"`
	Details  map[string]any `json:"details"`
	Outcome  string         `json:"outcome"` // ok, refused, failed
	PrevHash string         `json:"prev_hash"`
	Hash     string         `json:"hash"`
}

// chainHash is what links an event to the one before: SHA-256 over the previous hash and a
// canonical encoding of every stored field, so editing any column breaks the chain.
func chainHash(seq int64, atNanos int64, actor, action, subject, details, outcome, prev string) string {
	h := sha256.New()
	enc, _ := json.Marshal([]any{seq, atNanos, actor, action, subject, details, outcome, prev})
	h.Write([]byte(prev))
	h.Write(enc)
	return hex.EncodeToString(h.Sum(nil))
}

// Audit appends an event inside the transaction, so it commits with the change it records.
func (t *Tx) Audit(ctx context.Context, actor, action, subject, outcome string, details map[string]any) (AuditEvent, error) {
	if outcome == "" {
		outcome = "ok"
	}
	if details == nil {
		details = map[string]any{}
	}
	d, err := json.Marshal(details)
	if err != nil {
		return AuditEvent{}, fmt.Errorf("audit %s: details: %w", action, err)
	}
	var prev string
	var last sql.NullInt64
	err = t.tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
	if errors.Is(err, sql.ErrNoRows) {
		prev, err = GenesisHash, nil
	}
	if err != nil {
		return AuditEvent{}, fmt.Errorf("audit %s: read chain head: %w", action, err)
	}
	seq := last.Int64 + 1
	at := t.now.UnixNano()
	h := chainHash(seq, at, actor, action, subject, string(d), outcome, prev)
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO audit_events(seq, at, actor, action, subject, details, outcome, prev_hash, hash)
		VALUES (?,?,?,?,?,?,?,?,?)`, seq, at, actor, action, subject, string(d), outcome, prev, h); err != nil {
		return AuditEvent{}, fmt.Errorf("audit %s: %w", action, err)
	}
	return AuditEvent{Seq: seq, At: time.Unix(0, at).UTC(), Actor: actor, Action: action, Subject: subject,
		Details: details, Outcome: outcome, PrevHash: prev, Hash: h}, nil
}

// Audit records an event on its own (e.g. a refused request, where nothing else is written).
func (s *Store) Audit(ctx context.Context, actor, action, subject, outcome string, details map[string]any) error {
	return s.Update(ctx, func(t *Tx) error {
		_, err := t.Audit(ctx, actor, action, subject, outcome, details)
		return err
	})
}

// AuditFilter narrows an audit listing.
type AuditFilter struct {
	Subject string
	Actor   string
	Action  string
	Before  int64 // seq, for paging backwards; 0 = from the newest
	Limit   int
}

// ListAudit returns events newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var where []string
	var args []any
	if f.Subject != "" {
		where = append(where, "subject = ?")
		args = append(args, f.Subject)
	}
	if f.Actor != "" {
		where = append(where, "actor = ?")
		args = append(args, f.Actor)
	}
	if f.Action != "" {
		where = append(where, "action LIKE ?")
		args = append(args, f.Action+"%")
	}
	if f.Before > 0 {
		where = append(where, "seq < ?")
		args = append(args, f.Before)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.read.QueryContext(ctx, `SELECT seq, at, actor, action, subject, details, outcome, prev_hash, hash
		FROM audit_events`+cond+` ORDER BY seq DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	out := []AuditEvent{}
	for rows.Next() {
		var e AuditEvent
		var at int64
		var d string
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &d, &e.Outcome, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		e.At = time.Unix(0, at).UTC()
		_ = json.Unmarshal([]byte(d), &e.Details)
		out = append(out, e)
	}
	return out, rows.Err()
}

// AuditReport is the outcome of walking the chain.
type AuditReport struct {
	Events    int64  `json:"events"`
	Head      string `json:"head"`
	OK        bool   `json:"ok"`
	BrokenSeq int64  `json:"broken_seq,omitempty"`
	Problem   string `json:"problem,omitempty"`
}

// VerifyAudit walks the whole chain from the first event and names the first broken link.
func (s *Store) VerifyAudit(ctx context.Context) (AuditReport, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT seq, at, actor, action, subject, details, outcome, prev_hash, hash FROM audit_events ORDER BY seq`)
	if err != nil {
		return AuditReport{}, fmt.Errorf("verify audit: %w", err)
	}
	defer rows.Close()
	rep := AuditReport{OK: true, Head: GenesisHash}
	prev := GenesisHash
	var expectSeq int64 = 1
	for rows.Next() {
		var seq, at int64
		var actor, action, subject, details, outcome, prevHash, hash string
		if err := rows.Scan(&seq, &at, &actor, &action, &subject, &details, &outcome, &prevHash, &hash); err != nil {
			return rep, err
		}
		rep.Events++
		broken := func(p string) (AuditReport, error) {
			rep.OK, rep.BrokenSeq, rep.Problem = false, seq, p
			return rep, nil
		}
		if seq != expectSeq {
			return broken(fmt.Sprintf("event %d missing (found %d next): events were deleted", expectSeq, seq))
		}
		if prevHash != prev {
			return broken(fmt.Sprintf("event %d does not point at event %d's hash: the chain was re-linked", seq, seq-1))
		}
		if want := chainHash(seq, at, actor, action, subject, details, outcome, prevHash); want != hash {
			return broken(fmt.Sprintf("event %d's content does not match its hash: the row was edited", seq))
		}
		prev = hash
		expectSeq++
	}
	rep.Head = prev
	return rep, rows.Err()
}
