package appliance

import (
	"context"

	"slate/dhcp"
	"slate/inventory"
)

// DHCPLeases adapts the inventory to dhcp.LeaseStore: dhcp owns its lease types and knows no
// store, so the translation lives here in the composition root. The two lease structs have the
// same fields, so each row converts with a type conversion and a drift fails the build.
type DHCPLeases struct{ Store *inventory.Store }

var _ dhcp.LeaseStore = DHCPLeases{}

// DHCPLeases implements dhcp.LeaseStore.
func (d DHCPLeases) DHCPLeases(ctx context.Context, iface string) ([]dhcp.Lease, error) {
	rows, err := d.Store.DHCPLeases(ctx, iface)
	if err != nil {
		return nil, err
	}
	out := make([]dhcp.Lease, len(rows))
	for i, r := range rows {
		out[i] = dhcp.Lease(r)
	}
	return out, nil
}

// CommitLeases implements dhcp.LeaseStore: it returns once the inventory's transaction has
// committed, which is what lets the DHCP server send its ACKs.
func (d DHCPLeases) CommitLeases(ctx context.Context, changes []dhcp.LeaseChange) error {
	rows := make([]inventory.LeaseChange, len(changes))
	for i, c := range changes {
		rows[i] = inventory.LeaseChange{Lease: inventory.Lease(c.Lease), Delete: c.Delete}
	}
	return d.Store.CommitLeases(ctx, rows)
}
