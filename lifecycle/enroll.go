package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"slate/inventory"
	"slate/redfish"
)

// EnrollRequest is what a technician knows when enrolling a machine: at least one of a MAC,
// a serial or a BMC address.
type EnrollRequest struct {
	Name        string            `json:"name,omitempty"`
	MACs        []string          `json:"macs,omitempty"`
	Serial      string            `json:"serial,omitempty"`
	Site        string            `json:"site,omitempty"`
	Segment     string            `json:"segment,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	BMCAddress  string            `json:"bmc_address,omitempty"`
	BMCUsername string            `json:"bmc_username,omitempty"`
	BMCPassword string            `json:"bmc_password,omitempty"`
	BMCVendor   string            `json:"bmc_vendor,omitempty"`
	// PowerOn, with a BMC: set a one-time PXE boot and power the machine on after enrolling.
	// A machine that is running is left alone unless Force is set too.
	PowerOn bool `json:"power_on,omitempty"`
	// Force, with PowerOn: restart a running machine into the network boot (it interrupts
	// whatever runs there).
	Force bool `json:"force,omitempty"`
	// SystemID picks the computer system behind the BMC (its id or URI) where the service
	// has several (blade chassis, multi-node servers). Without it Slate matches the MACs, the
	// serial or SystemUUID given against the systems, and refuses with the list of systems
	// when that does not single one out.
	SystemID string `json:"system_id,omitempty"`
	// SystemUUID matches the system behind a BMC with several by its SMBIOS UUID.
	SystemUUID string `json:"system_uuid,omitempty"`
	// AllSystems enrolls one machine per system behind the BMC, in one transaction, named
	// Name (the prefix) + "-" + the system id (the system id alone without a Name).
	AllSystems bool `json:"all_systems,omitempty"`
	// Adopt enrolls a machine that already runs a system as it is: its BMC inventory is
	// read, nothing else is sent (no power change, no boot override), and it is stored
	// adopted. Needs bmc_address; excludes power_on.
	Adopt bool `json:"adopt,omitempty"`
}

// Validate checks the request without touching the store.
func (r *EnrollRequest) Validate() error {
	r.Name = strings.TrimSpace(r.Name)
	r.Serial = strings.TrimSpace(r.Serial)
	r.BMCAddress = strings.TrimSpace(r.BMCAddress)
	if len(r.MACs) == 0 && r.Serial == "" && r.BMCAddress == "" {
		return inventory.Errorf(inventory.ErrInvalid, "give at least one of macs, serial or bmc_address")
	}
	for i, m := range r.MACs {
		n, err := inventory.NormalizeMAC(m)
		if err != nil {
			return err
		}
		r.MACs[i] = n
	}
	if r.BMCAddress != "" && r.BMCUsername == "" {
		return inventory.Errorf(inventory.ErrInvalid, "bmc_username is needed with bmc_address")
	}
	if r.BMCAddress == "" && (r.BMCUsername != "" || r.BMCPassword != "") {
		return inventory.Errorf(inventory.ErrInvalid, "bmc_username/bmc_password given without bmc_address")
	}
	if len(r.Name) > 63 {
		return inventory.Errorf(inventory.ErrInvalid, "name is longer than 63 characters")
	}
	r.SystemID = strings.TrimSpace(r.SystemID)
	r.SystemUUID = strings.ToLower(strings.TrimSpace(r.SystemUUID))
	if (r.SystemID != "" || r.SystemUUID != "" || r.AllSystems) && r.BMCAddress == "" {
		return inventory.Errorf(inventory.ErrInvalid, "system_id, system_uuid and all_systems choose a system behind a BMC: give bmc_address too")
	}
	if r.AllSystems && (r.SystemID != "" || r.SystemUUID != "" || r.Serial != "" || len(r.MACs) > 0) {
		return inventory.Errorf(inventory.ErrInvalid, "all_systems enrolls every system behind the BMC: give no system_id, system_uuid, serial or macs with it (each system brings its own)")
	}
	if r.Adopt && r.BMCAddress == "" {
		return inventory.Errorf(inventory.ErrInvalid, "adopt reads the running machine's inventory from its BMC: give bmc_address")
	}
	if r.Adopt && (r.PowerOn || r.Force) {
		return inventory.Errorf(inventory.ErrInvalid, "adopt takes a running machine as it is: power_on and force would change its power; give one or the other")
	}
	return nil
}

// Enroll creates a machine in state enrolled, or, when its MAC belongs to a machine Slate
// discovered on the network, accepts that machine (discovered → enrolled).
func (l *Machines) Enroll(ctx context.Context, box *inventory.SecretBox, actor string, r EnrollRequest) (inventory.Machine, error) {
	if err := r.Validate(); err != nil {
		return inventory.Machine{}, err
	}
	if r.AllSystems {
		return inventory.Machine{}, inventory.Errorf(inventory.ErrInvalid, "all_systems enrolls several machines: use EnrollAll")
	}
	if r.Adopt && l.dial == nil {
		return inventory.Machine{}, errors.New("adopt: no BMC support configured to read the machine's inventory")
	}
	var inv redfish.Inventory
	if r.BMCAddress != "" && l.dial != nil {
		var err error
		if inv, err = l.readBMC(ctx, &r); err != nil {
			return inventory.Machine{}, err
		}
	}
	state := Enrolled
	if r.Adopt {
		state = Adopted
	}
	var out inventory.Machine
	err := l.store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		out, err = l.enrollTx(ctx, tx, box, actor, r, inv, state)
		return err
	})
	if err != nil {
		// The transaction set out's fields before the commit failed: return none of them, so
		// no caller can mistake a machine that was never stored for an enrolled one.
		return inventory.Machine{}, err
	}
	if l.notify != nil {
		l.notify.MachineChanged(out.ID)
	}
	if r.PowerOn && r.BMCAddress != "" {
		if st, ok := l.store.(CredentialsReader); ok {
			if perr := l.PowerOnForNetboot(ctx, box, st, actor, out.ID, redfish.BootPXE, r.Force); perr != nil {
				return out, &PowerOnError{Machine: out, Err: perr}
			}
		}
	}
	return out, nil
}

// enrollTx stores one enrolled (or adopted) machine inside tx: it accepts the discovered
// machine that matches, or creates one, audits it and stores its BMC.
func (l *Machines) enrollTx(ctx context.Context, tx *inventory.Tx, box *inventory.SecretBox, actor string, r EnrollRequest, inv redfish.Inventory, state string) (inventory.Machine, error) {
	var out inventory.Machine
	existing, matched, err := tx.FindMachine(ctx, r.MACs, inv.UUID, r.Serial)
	if err != nil {
		return out, err
	}
	if existing != nil && existing.State != Discovered {
		return out, inventory.Errorf(inventory.ErrConflict, "%s already belongs to machine %s (%s)", matched, existing.Name, existing.State)
	}
	if existing != nil {
		p := inventory.MachinePatch{}
		if r.Name != "" {
			p.Name = &r.Name
		}
		if r.Serial != "" {
			p.Serial = &r.Serial
		}
		if r.Site != "" {
			p.Site = &r.Site
		}
		if r.Segment != "" {
			p.Segment = &r.Segment
		}
		if r.Labels != nil {
			p.Labels = &r.Labels
		}
		macs := append(append([]string{}, existing.MACs...), r.MACs...)
		macs = dedupe(macs)
		p.MACs = &macs
		if _, err = tx.UpdateMachine(ctx, existing.ID, p); err != nil {
			return out, err
		}
		verb := "enrolled"
		if state == Adopted {
			verb = "adopted as it runs"
		}
		out, err = TransitionTx(ctx, tx, existing.ID, state, actor, verb+" by "+actor, "")
		if err != nil {
			return out, err
		}
	} else {
		out, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: r.Name, MACs: r.MACs, Serial: r.Serial,
			SystemUUID: inv.UUID, Vendor: inv.Manufacturer, Model: inv.Model,
			Site: r.Site, Segment: r.Segment, Labels: r.Labels, State: state})
		if err != nil {
			return out, err
		}
		details := map[string]any{"name": out.Name, "macs": out.MACs, "serial": out.Serial, "bmc_address": r.BMCAddress, "state": state}
		if r.SystemID != "" {
			details["system_id"] = r.SystemID
		}
		if state == Adopted {
			// what the BMC said of the running machine, kept with the adoption
			details["power_state"], details["bios_version"], details["vendor"], details["model"] = inv.PowerState, inv.BIOSVersion, inv.Manufacturer, inv.Model
		}
		if _, err := tx.Audit(ctx, actor, "machine.enroll", out.ID, "ok", details); err != nil {
			return out, err
		}
	}
	if r.BMCAddress != "" {
		if box == nil {
			return out, errors.New("enroll: no secret key loaded to encrypt the BMC password")
		}
		if err := tx.SetBMC(ctx, box, out.ID, inventory.BMCInfo{Address: r.BMCAddress, Username: r.BMCUsername,
			VendorProfile: r.BMCVendor, TLSFingerprint: inv.Fingerprint, SystemID: r.SystemID}, r.BMCPassword); err != nil {
			return out, err
		}
		return tx.GetMachine(ctx, out.ID)
	}
	return out, nil
}

// PowerOnError is Enroll's answer when the machine was enrolled (committed) but the
// power-on asked for failed: the enrollment stands, the caller reports success with this as
// a warning. Any other error from Enroll means nothing was stored.
type PowerOnError struct {
	Machine inventory.Machine
	Err     error
}

func (e *PowerOnError) Error() string {
	return fmt.Sprintf("enrolled %s, but could not power it on: %v", e.Machine.Name, e.Err)
}

func (e *PowerOnError) Unwrap() error { return e.Err }

// Why an enrollment's power-on did not happen, as the API's warning_code.
const (
	// WarningMachineRunning: the machine runs, so it was left alone (ErrMachineRunning).
	WarningMachineRunning = "machine-running"
	// WarningPowerOnFailed: the BMC refused or failed the one-time boot or the power-on.
	WarningPowerOnFailed = "power-on-failed"
)

// Update changes a machine's descriptive fields, audited.
func (l *Machines) Update(ctx context.Context, actor, id string, p inventory.MachinePatch) (inventory.Machine, error) {
	var out inventory.Machine
	if p.BootedRelease != nil || p.BootedDigest != nil {
		return out, inventory.Errorf(inventory.ErrInvalid, "booted_release and booted_digest are reported by the machine's own agent, not set by hand: set desired_release instead")
	}
	err := l.store.Update(ctx, func(tx *inventory.Tx) error {
		before, err := tx.GetMachine(ctx, id)
		if err != nil {
			return err
		}
		if p.DesiredRelease != nil && strings.TrimSpace(*p.DesiredRelease) != "" {
			switch before.State {
			case Decommissioning, Sanitized, Retired:
				// Its disks are (being) erased and nothing will install on it again.
				return inventory.Errorf(inventory.ErrConflict, "machine %s is %s: no release is installed on a decommissioned machine", before.Name, before.State)
			}
			if _, err := tx.GetRelease(ctx, strings.TrimSpace(*p.DesiredRelease)); err != nil {
				return inventory.Errorf(inventory.ErrInvalid, "desired_release %q: no such release (give name@version or its id; see slate release list)", *p.DesiredRelease)
			}
			if l.noInstalls != "" {
				// nothing would ever install it: answering that the machine "should now run" it is a lie
				return fmt.Errorf("desired_release %q not set: %s: %w", strings.TrimSpace(*p.DesiredRelease), l.noInstalls, ErrCannotInstall)
			}
		}
		out, err = tx.UpdateMachine(ctx, before.ID, p)
		if err != nil {
			return err
		}
		_, err = tx.Audit(ctx, actor, "machine.update", out.ID, "ok", map[string]any{"changes": p})
		return err
	})
	if err == nil && l.notify != nil {
		l.notify.MachineChanged(out.ID)
	}
	return out, err
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
