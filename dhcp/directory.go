package dhcp

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
)

// Machine is what the DHCP server needs to know of a machine the inventory has.
type Machine struct {
	ID    string
	State string // lifecycle state, e.g. "ready", "retired"
	// ReservedIP is the machine's fixed address (invalid: none, lease from the pool).
	ReservedIP netip.Addr
	Hostname   string
}

// Discovery is an unknown MAC seen PXE booting.
type Discovery struct {
	MAC         net.HardwareAddr
	Interface   string
	Arch        string
	VendorClass string
	Hostname    string
}

// Directory answers machine questions for the DHCP server. appliance implements it over the
// inventory and lifecycle; MemDirectory is the in-memory one for tests and the benchmark.
type Directory interface {
	// LookupMAC finds the machine owning mac; ok is false for an unknown MAC.
	LookupMAC(ctx context.Context, mac net.HardwareAddr) (m Machine, ok bool, err error)
	// RecordDiscovered records an unknown MAC that asked to network-boot as a discovered machine.
	// It must be idempotent: a booting machine asks several times.
	RecordDiscovered(ctx context.Context, d Discovery) error
}

// MemDirectory is an in-memory Directory for tests and the benchmark.
type MemDirectory struct {
	mu         sync.Mutex
	machines   map[string]Machine
	discovered []Discovery
}

// NewMemDirectory returns an empty directory.
func NewMemDirectory() *MemDirectory { return &MemDirectory{machines: map[string]Machine{}} }

// Add registers a known machine.
func (d *MemDirectory) Add(mac net.HardwareAddr, m Machine) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.machines[mac.String()] = m
}

// LookupMAC implements Directory.
func (d *MemDirectory) LookupMAC(_ context.Context, mac net.HardwareAddr) (Machine, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.machines[mac.String()]
	return m, ok, nil
}

// RecordDiscovered implements Directory: the MAC becomes a known machine in state discovered.
func (d *MemDirectory) RecordDiscovered(_ context.Context, disc Discovery) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.machines[disc.MAC.String()]; ok {
		return nil
	}
	d.machines[disc.MAC.String()] = Machine{ID: "m-" + disc.MAC.String(), State: "discovered"}
	d.discovered = append(d.discovered, disc)
	return nil
}

// Discovered returns what RecordDiscovered recorded, in order.
func (d *MemDirectory) Discovered() []Discovery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.discovered)
}
