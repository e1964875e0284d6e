package inventory

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ErrNoBootExpected: a machine asked for a deploy script (and so an agent token) while Slate
// expects no network boot of it. Anyone on the segment can fetch a script for any MAC; only a
// boot Slate started, or a technician announced, may receive a token.
var ErrNoBootExpected = errors.New("no network boot expected")

// BootExpectation is an armed expectation of one machine's network boot.
type BootExpectation struct {
	MachineID string    `json:"machine_id"`
	ArmedAt   time.Time `json:"armed_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Actor     string    `json:"actor"`
	Reason    string    `json:"reason,omitempty"`
}

// ExpectBoot arms (or re-arms, replacing the earlier window) the expectation that the machine
// network-boots within window from now. It writes no audit event: the caller audits what it
// did (a BMC power-on, a queued reboot, a technician's announcement) in the same transaction.
func (t *Tx) ExpectBoot(ctx context.Context, machineID, actor, reason string, window time.Duration) (BootExpectation, error) {
	if window <= 0 {
		return BootExpectation{}, Errorf(ErrInvalid, "expect a boot of machine %s: the window must be positive, not %s", machineID, window)
	}
	e := BootExpectation{MachineID: machineID, ArmedAt: t.now.UTC(), ExpiresAt: t.now.Add(window).UTC(), Actor: actor, Reason: reason}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO boot_expectations(machine_id, armed_at, expires_at, actor, reason) VALUES (?,?,?,?,?)
		ON CONFLICT(machine_id) DO UPDATE SET armed_at=excluded.armed_at, expires_at=excluded.expires_at, actor=excluded.actor, reason=excluded.reason`,
		machineID, e.ArmedAt.UnixNano(), e.ExpiresAt.UnixNano(), actor, reason)
	if err != nil {
		return BootExpectation{}, fmt.Errorf("expect a boot of machine %s: %w", machineID, err)
	}
	return e, nil
}

// ForgetBootExpectation withdraws a machine's expected boot (the reset that would have
// started it did not happen).
func (t *Tx) ForgetBootExpectation(ctx context.Context, machineID string) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM boot_expectations WHERE machine_id = ?`, machineID); err != nil {
		return fmt.Errorf("withdraw the expected boot of machine %s: %w", machineID, err)
	}
	return nil
}

// BootExpected returns the live expectation of a machine's network boot (ok false: none, or
// its window has passed).
func (s *Store) BootExpected(ctx context.Context, machineID string) (BootExpectation, bool, error) {
	return bootExpected(ctx, s.read, machineID, s.now())
}

func bootExpected(ctx context.Context, q querier, machineID string, now time.Time) (BootExpectation, bool, error) {
	var e BootExpectation
	var armed, exp int64
	err := q.QueryRowContext(ctx, `SELECT machine_id, armed_at, expires_at, actor, reason FROM boot_expectations WHERE machine_id = ? AND expires_at > ?`,
		machineID, now.UnixNano()).Scan(&e.MachineID, &armed, &exp, &e.Actor, &e.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("read the boot expectation of machine %s: %w", machineID, err)
	}
	e.ArmedAt, e.ExpiresAt = time.Unix(0, armed).UTC(), time.Unix(0, exp).UTC()
	return e, true, nil
}

// LeaseMismatchError: the script fetch came from another address than the one Slate leased to
// the machine's MAC (Leased is invalid when Slate holds no live lease for it).
type LeaseMismatchError struct {
	MAC            string
	Leased, Source netip.Addr
}

func (e *LeaseMismatchError) Error() string {
	if !e.Leased.IsValid() {
		return fmt.Sprintf("Slate is the DHCP server of %s but holds no live lease for it; the script was fetched from %s", e.MAC, e.Source)
	}
	return fmt.Sprintf("the script for %s was fetched from %s, but Slate leased %s to that MAC", e.MAC, e.Source, e.Leased)
}

// BootTokenRequest is a script fetch that wants a per-boot agent token.
type BootTokenRequest struct {
	MachineID, MAC string
	// Source is the address the script fetch came from: the token works only from it.
	Source netip.Addr
	// TTL is the token's lifetime from its issue, once activated; Activation is how long it
	// waits for its first use by the agent before it dies.
	TTL, Activation time.Duration
	// RequireLease: Slate hands out the addresses (authoritative DHCP) and the source must be
	// the address it leased to MAC. Without it a live lease of MAC is still checked when
	// there is one (proxy mode has none).
	RequireLease bool
}

// IssueBootToken issues the per-boot agent token of a network boot Slate expects, consuming
// the expectation in the same transaction: a second fetch of the script gets no token. A
// request that gets no token (no expectation, wrong address) writes nothing.
func (s *Store) IssueBootToken(ctx context.Context, req BootTokenRequest) (string, error) {
	src := req.Source.Unmap()
	if !src.IsValid() {
		return "", Errorf(ErrInvalid, "issue a boot token for machine %s: no source address", req.MachineID)
	}
	if req.TTL <= 0 || req.Activation <= 0 {
		return "", Errorf(ErrInvalid, "issue a boot token for machine %s: TTL and activation window must be positive", req.MachineID)
	}
	// Checked on the read connection first, so refused fetches (anyone may send them) never
	// take the write lock.
	now := s.now()
	if _, ok, err := bootExpected(ctx, s.read, req.MachineID, now); err != nil {
		return "", err
	} else if !ok {
		return "", fmt.Errorf("machine %s: %w", req.MachineID, ErrNoBootExpected)
	}
	if err := s.checkLease(ctx, req.MAC, src, req.RequireLease, now); err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := "sla_" + base64.RawURLEncoding.EncodeToString(b)
	err := s.Update(ctx, func(t *Tx) error {
		res, err := t.tx.ExecContext(ctx, `DELETE FROM boot_expectations WHERE machine_id = ? AND expires_at > ?`, req.MachineID, t.now.UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			// Another fetch consumed it between the check and now.
			return fmt.Errorf("machine %s: %w", req.MachineID, ErrNoBootExpected)
		}
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM agent_tokens WHERE expires_at < ?`, t.now.Unix()); err != nil {
			return err
		}
		_, err = t.tx.ExecContext(ctx, `INSERT INTO agent_tokens(token_hash, machine_id, created_at, expires_at, kind, bound_addr, activated_at, lifetime_s)
			VALUES (?,?,?,?,'boot',?,0,?)`,
			tokenHash(tok), req.MachineID, t.now.Unix(), t.now.Add(req.Activation).Unix(), src.String(), int64(req.TTL/time.Second))
		if err != nil {
			return err
		}
		_, err = t.Audit(ctx, "slate", "agent.token-issued", req.MachineID, "ok",
			map[string]any{"mac": req.MAC, "bound_addr": src.String(), "activate_within": req.Activation.String()})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("issue boot token for machine %s: %w", req.MachineID, err)
	}
	return tok, nil
}

// checkLease refuses a source address that is not the one Slate leased to mac.
func (s *Store) checkLease(ctx context.Context, mac string, src netip.Addr, require bool, now time.Time) error {
	var ip string
	err := s.read.QueryRowContext(ctx, `SELECT ip FROM leases WHERE mac = ? AND state = ? AND expires_at > ?`, mac, LeaseBound, now.UnixNano()).Scan(&ip)
	if errors.Is(err, sql.ErrNoRows) {
		if require {
			return &LeaseMismatchError{MAC: mac, Source: src}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the lease of %s: %w", mac, err)
	}
	leased, err := netip.ParseAddr(ip)
	if err != nil || leased.Unmap() != src {
		return &LeaseMismatchError{MAC: mac, Leased: leased, Source: src}
	}
	return nil
}
