package dhcp

import (
	"context"
	"net/netip"
	"time"
)

// dhcp owns its lease types (as tinkerbell/smee's DHCP code owns its data types): the server is
// written against LeaseStore alone, and the composition root (appliance) adapts the inventory
// to it. dhcp imports neither inventory nor lifecycle (internal/importrules enforces it).

// Lease states as stored. Offers are never stored: an offer that is not requested within a
// few seconds means nothing, and writing it would double the disk work per client.
const (
	LeaseBound    = "bound"
	LeaseReleased = "released"
	LeaseDeclined = "declined"
)

// DeclinedKeyPrefix marks a lease row that holds a quarantined (DECLINEd) address rather than
// a client's lease: leases are keyed by MAC, and a quarantined address belongs to no client,
// so its row is keyed "declined:<iface>/<ip>".
const DeclinedKeyPrefix = "declined:"

// DeclinedKey is the row key of a quarantined address.
func DeclinedKey(iface string, ip netip.Addr) string {
	return DeclinedKeyPrefix + iface + "/" + ip.String()
}

// Lease is one stored DHCP lease. Its fields are those of the inventory's lease row, in the
// same order, so the adapter in appliance converts it with a plain type conversion and the
// compiler refuses the build when the two drift apart.
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

// LeaseStore is where leases are durably kept (appliance adapts the inventory to it).
type LeaseStore interface {
	// DHCPLeases returns the stored leases of one interface (all when iface is empty), to
	// rebuild the pools at start-up and to list them.
	DHCPLeases(ctx context.Context, iface string) ([]Lease, error)
	// CommitLeases writes a batch in one durable transaction (the group commit). It returns
	// only once the batch is durable: the server sends no ACK before that.
	CommitLeases(ctx context.Context, changes []LeaseChange) error
}
