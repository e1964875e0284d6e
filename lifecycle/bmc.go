package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"slate/inventory"
	"slate/redfish"
)

// BMC is what lifecycle uses of one machine's BMC (redfish.Client implements it).
type BMC interface {
	PowerState(ctx context.Context) (redfish.PowerState, error)
	PowerOn(ctx context.Context) error
	PowerOff(ctx context.Context) error
	// PowerCycle activates firmware that a BMC stages until the next reset.
	PowerCycle(ctx context.Context) error
	BootOnceNow(ctx context.Context, o redfish.BootOverride) error
	// SetBootOnce sets the next boot's target without resetting (the agent reboots itself).
	SetBootOnce(ctx context.Context, o redfish.BootOverride) error
	// ClearBootOverride sets an override the BMC kept as Continuous Disabled, once the boot
	// it was for has been observed.
	ClearBootOverride(ctx context.Context) error
	Inventory(ctx context.Context) (redfish.Inventory, error)
	ApplyBIOS(ctx context.Context, p redfish.BIOSProfile) (redfish.BIOSResult, error)
	PlanFirmware(ctx context.Context, b redfish.FirmwareBaseline) ([]redfish.FirmwareStep, error)
	UpdateFirmware(ctx context.Context, u redfish.FirmwareUpdate) (redfish.FirmwareResult, error)
	Close(ctx context.Context) error
}

// BMCDialer opens a BMC session (fingerprint "" = trust on first use).
type BMCDialer func(ctx context.Context, address, user, password, profile, fingerprint string) (BMC, error)

// ErrBMC marks a failure talking to a BMC (the API answers 502: the BMC, not the request, failed).
var ErrBMC = errors.New("BMC unreachable or refused")

// ErrBMCCredentials marks a BMC that refused the credentials given in the request (the API
// answers 422: the request must change, the BMC did not fail).
var ErrBMCCredentials = errors.New("the BMC refused the credentials")

// ErrMachineRunning marks a power action refused because the machine is running and the
// caller did not ask to interrupt it: Slate never resets a running machine on its own.
var ErrMachineRunning = errors.New("the machine is running")

// RunningReason is what an enrolled machine that is left alone because it runs says.
const RunningReason = "running: inspect it in a maintenance window or adopt it"

type bmcError struct{ err error }

func (e *bmcError) Error() string { return e.err.Error() }
func (e *bmcError) Unwrap() []error {
	if errors.Is(e.err, redfish.ErrUnauthorized) {
		return []error{ErrBMCCredentials, e.err}
	}
	return []error{ErrBMC, e.err}
}

// SetBMCDialer enables enrollment by BMC address.
func (l *Machines) SetBMCDialer(d BMCDialer) { l.dial = d }

// readBMC dials the BMC of an enrollment request and folds what it reports into the request:
// MACs, UUID and serial (to match the machine DHCP sees), vendor and model.
func (l *Machines) readBMC(ctx context.Context, r *EnrollRequest) (inv redfish.Inventory, err error) {
	profile := r.BMCVendor
	if profile == "" || profile == "generic" {
		profile = "auto"
	}
	c, err := l.dial(ctx, r.BMCAddress, r.BMCUsername, r.BMCPassword, profile, "")
	if err != nil {
		// the BMC error names the BMC, what failed and the one hint that fits (credentials for
		// a 401, the vendor profile for a 404, …): no second hint here
		return inv, &bmcError{fmt.Errorf("enroll by BMC: %w", err)}
	}
	defer c.Close(context.WithoutCancel(ctx))
	inv, err = c.Inventory(ctx)
	if err != nil {
		return inv, &bmcError{fmt.Errorf("enroll by BMC: read the system: %w", err)}
	}
	seen := map[string]bool{}
	for _, m := range r.MACs {
		seen[m] = true
	}
	for _, m := range inv.MACs() {
		if n, err := inventory.NormalizeMAC(m); err == nil && !seen[n] {
			r.MACs = append(r.MACs, n)
			seen[n] = true
		}
	}
	if r.Serial == "" {
		r.Serial = strings.TrimSpace(inv.Serial)
	}
	r.BMCVendor = inv.VendorProfile
	return inv, nil
}

// PowerOnForNetboot sets a one-time network boot and powers the machine on through its BMC.
// Without force it touches only a machine that is off: a running one (or one whose power
// state the BMC does not report) is left alone, no override set, and ErrMachineRunning
// returned. force restarts a running machine into the network boot: only for an explicit
// request (the operator's, or a boot Slate itself started).
func (l *Machines) PowerOnForNetboot(ctx context.Context, box *inventory.SecretBox, st CredentialsReader, actor, machineID string, target redfish.BootTarget, force bool) error {
	if l.dial == nil {
		return errors.New("power on: no BMC support configured")
	}
	cred, err := st.BMCCredentials(ctx, box, machineID)
	if err != nil {
		return err
	}
	c, err := l.dial(ctx, cred.Address, cred.Username, cred.Password, cred.VendorProfile, cred.TLSFingerprint)
	if err != nil {
		return &bmcError{fmt.Errorf("machine %s: BMC %s: %w", machineID, cred.Address, err)}
	}
	defer c.Close(context.WithoutCancel(ctx))
	if !force {
		ps, err := c.PowerState(ctx)
		if err != nil {
			return &bmcError{fmt.Errorf("machine %s: read the power state: %w", machineID, err)}
		}
		if ps != redfish.PowerOff {
			// nothing was done, so nothing is audited as done; the caller says why it waits
			return fmt.Errorf("machine %s: its BMC reports power %q: not powered into a network boot (%s): %w",
				machineID, ps, RunningReason, ErrMachineRunning)
		}
	}
	outcome := "ok"
	o := redfish.BootOverride{Target: target}
	if force {
		err = c.BootOnceNow(ctx, o)
	} else if err = c.SetBootOnce(ctx, o); err == nil {
		// PowerOn never resets: a machine switched on since the check above keeps running
		err = c.PowerOn(ctx)
	}
	if err != nil {
		outcome = "failed"
		err = &bmcError{fmt.Errorf("machine %s: one-time %s boot: %w", machineID, target, err)}
	}
	if aerr := l.store.Update(ctx, func(tx *inventory.Tx) error {
		details := map[string]any{"target": string(target), "bmc": cred.Address, "force": force}
		if err != nil {
			details["error"] = err.Error()
		}
		_, e := tx.Audit(ctx, actor, "bmc.boot-once", machineID, outcome, details)
		return e
	}); aerr != nil {
		if err == nil {
			return fmt.Errorf("machine %s: powered on for a network boot, but the audit record failed: %w", machineID, aerr)
		}
		return errors.Join(err, fmt.Errorf("audit record: %w", aerr))
	}
	return err
}

// CredentialsReader gives a machine's BMC credentials.
type CredentialsReader interface {
	BMCCredentials(ctx context.Context, box *inventory.SecretBox, machineID string) (inventory.BMCCredentials, error)
}
