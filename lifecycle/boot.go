package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"slate/inventory"
)

// Boot actions: what a network-booting machine should do next.
const (
	BootDeploy    = "deploy"     // the deploy environment (slate-agent) — it runs the machine's tasks
	BootLocalDisk = "local-disk" // the installed system
	BootPowerOff  = "poweroff"   // nothing to do, ever: say why and power off
	BootNone      = "none"       // not ours to boot (yet): leave it to the next boot device
)

// BootPlan is lifecycle's answer to "this MAC is network-booting: what now?".
type BootPlan struct {
	MachineID string
	State     string
	Action    string
	Firmware  string
	Message   string
}

// ErrUnknownMAC is returned for a MAC no machine has.
var ErrUnknownMAC = errors.New("unknown MAC")

// Reader is the read side of the inventory lifecycle needs to plan.
type Reader interface {
	MachineByMAC(ctx context.Context, mac string) (inventory.Machine, error)
}

// PlanBoot decides from the machine's state; pxe/ only renders the decision.
func PlanBoot(ctx context.Context, r Reader, mac string) (BootPlan, error) {
	m, err := r.MachineByMAC(ctx, mac)
	if errors.Is(err, inventory.ErrNotFound) {
		return BootPlan{}, fmt.Errorf("%w: %s", ErrUnknownMAC, mac)
	}
	if err != nil {
		return BootPlan{}, err
	}
	p := BootPlan{MachineID: m.ID, State: m.State, Firmware: m.FirmwareMode}
	p.Action, p.Message = bootAction(m)
	if installedFromDisk(ctx, r, m) {
		p.Action, p.Message = BootLocalDisk, ""
	}
	return p, nil
}

func bootAction(m inventory.Machine) (action, message string) {
	switch m.State {
	case Discovered:
		// Only to inspect it (read-only): the technician sees what it is before enrolling it.
		return BootDeploy, ""
	case Enrolled, Inspecting, Ready, Configuring, Provisioning, Updating, RollingBack, Decommissioning:
		return BootDeploy, ""
	case Deployed:
		return BootLocalDisk, ""
	case Adopted:
		// it runs an unmanaged system from its disk: a network boot must not replace it
		return BootLocalDisk, ""
	case Sanitized:
		return BootPowerOff, "This machine's disks were sanitized; it waits to be retired. Nothing will boot."
	case Retired:
		return BootPowerOff, "This machine is retired from Slate. Re-enroll it to use it again."
	case Failed:
		// The deploy environment idles and reports; a retry then finds the agent waiting.
		return BootDeploy, "Last step failed: " + m.FailedReason
	}
	return BootNone, "Unknown state " + m.State
}

// RecordDiscovered records an unknown MAC that asked to network-boot as a discovered
// machine. Idempotent: a booting machine asks several times.
func (l *Machines) RecordDiscovered(ctx context.Context, mac, arch, vendorClass, iface string) (inventory.Machine, bool, error) {
	var out inventory.Machine
	created := false
	norm, err := inventory.NormalizeMAC(mac)
	if err != nil {
		return out, false, err
	}
	err = l.store.Update(ctx, func(tx *inventory.Tx) error {
		m, err := tx.MachineByMAC(ctx, norm)
		if err == nil {
			out = m
			return nil
		}
		if !errors.Is(err, inventory.ErrNotFound) {
			return err
		}
		out, err = tx.CreateMachine(ctx, inventory.NewMachine{MACs: []string{norm}, Arch: arch, State: Discovered,
			Labels: map[string]string{"discovered-on": iface}})
		if err != nil {
			return err
		}
		created = true
		_, err = tx.Audit(ctx, "dhcp", "machine.discover", out.ID, "ok", map[string]any{"mac": norm, "arch": arch,
			"vendor_class": vendorClass, "interface": iface})
		return err
	})
	if err == nil && created && l.notify != nil {
		l.notify.MachineChanged(out.ID)
	}
	return out, created, err
}
