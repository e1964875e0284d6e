package pxe

import (
	"context"
	"errors"
	"fmt"

	"slate/dhcp"
	"slate/inventory"
	"slate/lifecycle"
)

// The tests' copies of the composition root's adapters (pxe's tests cannot import appliance,
// which imports pxe): pxe itself knows neither lifecycle nor inventory.

// lifecyclePlanner is the test copy of appliance's Planner: lifecycle.PlanBoot over the inventory.
type lifecyclePlanner struct{ machines lifecycle.Reader }

func (p lifecyclePlanner) BootPlan(ctx context.Context, mac string) (Plan, error) {
	bp, err := lifecycle.PlanBoot(ctx, p.machines, mac)
	if errors.Is(err, lifecycle.ErrUnknownMAC) {
		return Plan{}, fmt.Errorf("%w: %w", ErrUnknownMachine, err)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("boot plan for MAC %s: %w", mac, err)
	}
	return Plan{MachineID: bp.MachineID, State: bp.State, Action: Action(bp.Action), Message: bp.Message, Firmware: bp.Firmware}, nil
}

// storeLeases is the test copy of appliance.DHCPLeases: the inventory as a dhcp.LeaseStore.
type storeLeases struct{ store *inventory.Store }

func (s storeLeases) DHCPLeases(ctx context.Context, iface string) ([]dhcp.Lease, error) {
	rows, err := s.store.DHCPLeases(ctx, iface)
	out := make([]dhcp.Lease, len(rows))
	for i, r := range rows {
		out[i] = dhcp.Lease(r)
	}
	return out, err
}

func (s storeLeases) CommitLeases(ctx context.Context, changes []dhcp.LeaseChange) error {
	rows := make([]inventory.LeaseChange, len(changes))
	for i, c := range changes {
		rows[i] = inventory.LeaseChange{Lease: inventory.Lease(c.Lease), Delete: c.Delete}
	}
	return s.store.CommitLeases(ctx, rows)
}
