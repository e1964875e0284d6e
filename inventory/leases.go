package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Lease states as stored. Offers are never stored: an offer that is not requested within a
// few seconds means nothing, and writing it would double the disk work per client.
const (
	LeaseBound    = "bound"
	LeaseReleased = "released"
	LeaseDeclined = "declined"
)

// DeclinedKeyPrefix marks a lease row that holds a quarantined (DECLINEd) address rather than
// a client's lease: the leases table is keyed by MAC, and a quarantined address belongs to no
// client, so its row is keyed "declined:<iface>/<ip>".
const DeclinedKeyPrefix = "declined:"

// Lease is one DHCP lease row.
type Lease struct {
	MAC       string     `json:"mac"`
	IP        netip.Addr `json:"ip"`
	Iface     string     `json:"iface"`
	Hostname  string     `json:"hostname,omitempty"`
	State     string     `json:"state"`
	ExpiresAt time.Time  `json:"expires_at"`
	RelayInfo string     `json:"relay_info,omitempty"` // option 82 as the relay sent it, "<sub>=<hex>;…"
	UpdatedAt time.Time  `json:"updated_at"`
}

// LeaseChange is one write in a group commit: an upsert of Lease, or the deletion of the row
// keyed by Lease.MAC when Delete is set.
type LeaseChange struct {
	Lease  Lease
	Delete bool
}

// DeclinedKey is the row key of a quarantined address.
func DeclinedKey(iface string, ip netip.Addr) string {
	return DeclinedKeyPrefix + iface + "/" + ip.String()
}

// DHCPLeases returns every lease row of one interface (all interfaces when iface is empty).
func (s *Store) DHCPLeases(ctx context.Context, iface string) ([]Lease, error) {
	q := `SELECT mac, ip, iface, hostname, state, expires_at, relay_info, updated_at FROM leases`
	var args []any
	if iface != "" {
		q += ` WHERE iface = ?`
		args = append(args, iface)
	}
	q += ` ORDER BY iface, ip`
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var ip string
		var exp, upd int64
		if err := rows.Scan(&l.MAC, &ip, &l.Iface, &l.Hostname, &l.State, &exp, &l.RelayInfo, &upd); err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			// A row nobody can use: say so rather than hand a zero address to the allocator.
			return nil, fmt.Errorf("list leases: row %s has invalid ip %q: %w (delete the row)", l.MAC, ip, err)
		}
		l.IP = a
		l.ExpiresAt = time.Unix(0, exp).UTC()
		l.UpdatedAt = time.Unix(0, upd).UTC()
		out = append(out, l)
	}
	return out, rows.Err()
}

// CommitLeases writes a batch of lease changes in ONE transaction: the DHCP server's group
// commit. With synchronous=FULL the batch is durable when this returns nil, so the server
// sends the ACKs of the whole batch only then. A bad change fails the whole batch.
func (s *Store) CommitLeases(ctx context.Context, changes []LeaseChange) error {
	if len(changes) == 0 {
		return nil
	}
	now := s.now().UnixNano()
	for _, c := range changes {
		if err := checkLease(c); err != nil {
			return fmt.Errorf("commit leases: %w", err)
		}
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("commit leases: begin: %w", err)
	}
	defer tx.Rollback()
	// Fast path: runs of upserts as multi-row statements (the statement count, not the rows,
	// is what costs in the driver). A run fails as a whole when an address moves from an
	// expired lease to a new client ((iface, ip) is unique) or a MAC appears twice; that run is
	// then written row by row, freeing the address first.
	const run = 64
	for i := 0; i < len(changes); {
		j := i
		for j < len(changes) && j-i < run && !changes[j].Delete {
			j++
		}
		if j == i { // a delete
			if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE mac = ?`, changes[i].Lease.MAC); err != nil {
				return fmt.Errorf("commit leases: delete %s: %w", changes[i].Lease.MAC, err)
			}
			i++
			continue
		}
		var q strings.Builder
		q.WriteString(`INSERT INTO leases(mac, ip, iface, hostname, state, expires_at, relay_info, updated_at) VALUES `)
		args := make([]any, 0, 8*(j-i))
		for k, c := range changes[i:j] {
			if k > 0 {
				q.WriteString(",")
			}
			q.WriteString("(?,?,?,?,?,?,?,?)")
			args = append(args, leaseArgs(c.Lease, now)...)
		}
		q.WriteString(upsertTail)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			if !isUnique(err) && !strings.Contains(err.Error(), "cannot affect row a second time") {
				return fmt.Errorf("commit leases: %w", err)
			}
			for _, c := range changes[i:j] {
				if err := upsertOne(ctx, tx, c.Lease, now); err != nil {
					return err
				}
			}
		}
		i = j
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit leases: %w", err)
	}
	return nil
}

const upsertTail = ` ON CONFLICT(mac) DO UPDATE SET ip=excluded.ip, iface=excluded.iface, hostname=excluded.hostname,
	state=excluded.state, expires_at=excluded.expires_at, relay_info=excluded.relay_info, updated_at=excluded.updated_at`

func checkLease(c LeaseChange) error {
	l := c.Lease
	if l.MAC == "" {
		return fmt.Errorf("%w: lease without a MAC", ErrInvalid)
	}
	if c.Delete {
		return nil
	}
	if !l.IP.Is4() {
		return fmt.Errorf("%w: lease %s has no IPv4 address", ErrInvalid, l.MAC)
	}
	switch l.State {
	case LeaseBound, LeaseReleased, LeaseDeclined:
	default:
		return fmt.Errorf("%w: lease %s state %q (want bound, released or declined)", ErrInvalid, l.MAC, l.State)
	}
	return nil
}

// leaseArgs are a row's values; times are Unix nanoseconds, as in the audit log.
func leaseArgs(l Lease, now int64) []any {
	upd := now
	if !l.UpdatedAt.IsZero() {
		upd = l.UpdatedAt.UnixNano()
	}
	return []any{l.MAC, l.IP.String(), l.Iface, strings.TrimSpace(l.Hostname), l.State, l.ExpiresAt.UnixNano(), l.RelayInfo, upd}
}

func upsertOne(ctx context.Context, tx *sql.Tx, l Lease, now int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE iface = ? AND ip = ? AND mac <> ?`, l.Iface, l.IP.String(), l.MAC); err != nil {
		return fmt.Errorf("commit leases: free %s for %s: %w", l.IP, l.MAC, err)
	}
	q := `INSERT INTO leases(mac, ip, iface, hostname, state, expires_at, relay_info, updated_at) VALUES (?,?,?,?,?,?,?,?)` + upsertTail
	if _, err := tx.ExecContext(ctx, q, leaseArgs(l, now)...); err != nil {
		return fmt.Errorf("commit leases: write %s → %s: %w", l.MAC, l.IP, err)
	}
	return nil
}

// LeaseIPs returns the address of each of macs that holds a bound, unexpired lease (the
// machine list's IP column for machines without an ip label): one query for a page.
func (s *Store) LeaseIPs(ctx context.Context, macs []string, now time.Time) (map[string]string, error) {
	out := map[string]string{}
	if len(macs) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(macs)+1)
	for _, m := range macs {
		args = append(args, m)
	}
	args = append(args, now.UnixNano())
	rows, err := s.read.QueryContext(ctx, `SELECT mac, ip FROM leases WHERE mac IN (`+
		strings.TrimSuffix(strings.Repeat("?,", len(macs)), ",")+`) AND state = 'bound' AND expires_at > ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("leases of the listed machines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var mac, ip string
		if err := rows.Scan(&mac, &ip); err != nil {
			return nil, err
		}
		out[mac] = ip
	}
	return out, rows.Err()
}
