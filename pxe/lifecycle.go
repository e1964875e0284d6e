package pxe

import (
	"context"
	"errors"
	"fmt"

	"slate/lifecycle"
)

// LifecyclePlanner is the Planner `slate serve` wires: lifecycle.PlanBoot over the inventory
// (*inventory.Store is a lifecycle.Reader). pxe renders the decision; it never makes it.
type LifecyclePlanner struct {
	Machines lifecycle.Reader
}

// BootPlan asks lifecycle what the machine with this MAC boots now.
func (p LifecyclePlanner) BootPlan(ctx context.Context, mac string) (Plan, error) {
	bp, err := lifecycle.PlanBoot(ctx, p.Machines, mac)
	if errors.Is(err, lifecycle.ErrUnknownMAC) {
		return Plan{}, fmt.Errorf("%w: %w", ErrUnknownMachine, err)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("boot plan for MAC %s: %w", mac, err)
	}
	return Plan{MachineID: bp.MachineID, State: bp.State, Action: Action(bp.Action), Message: bp.Message, Firmware: bp.Firmware}, nil
}
