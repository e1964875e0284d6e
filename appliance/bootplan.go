package appliance

import (
	"context"
	"errors"
	"fmt"

	"slate/lifecycle"
	"slate/pxe"
)

// lifecyclePlanner is the pxe.Planner `slate serve` wires: lifecycle.PlanBoot over the
// inventory (*inventory.Store is a lifecycle.Reader). pxe renders the decision and never makes
// it; this adapter lives in the composition root so pxe knows neither lifecycle nor inventory.
type lifecyclePlanner struct {
	machines lifecycle.Reader
}

// BootPlan asks lifecycle what the machine with this MAC boots now.
func (p lifecyclePlanner) BootPlan(ctx context.Context, mac string) (pxe.Plan, error) {
	bp, err := lifecycle.PlanBoot(ctx, p.machines, mac)
	if errors.Is(err, lifecycle.ErrUnknownMAC) {
		return pxe.Plan{}, fmt.Errorf("%w: %w", pxe.ErrUnknownMachine, err)
	}
	if err != nil {
		return pxe.Plan{}, fmt.Errorf("boot plan for MAC %s: %w", mac, err)
	}
	return pxe.Plan{MachineID: bp.MachineID, State: bp.State, Action: pxe.Action(bp.Action), Message: bp.Message, Firmware: bp.Firmware}, nil
}
