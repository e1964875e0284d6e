package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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

// BMCDialer opens a BMC session (fingerprint "" = trust on first use) for one computer system
// behind it: system is the id stored with the machine ("" = the service's only system).
type BMCDialer func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error)

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
// MACs, UUID and serial (to match the machine DHCP sees), vendor and model. Behind a BMC with
// several computer systems it picks the one the request names or matches (r.SystemID is
// then that system's id; "" for a service with one system).
func (l *Machines) readBMC(ctx context.Context, r *EnrollRequest) (inv redfish.Inventory, err error) {
	c, err := l.dialEnrollBMC(ctx, r, "", "")
	if err != nil {
		return inv, err
	}
	defer func() {
		if c != nil { // nil when the second dial (for the chosen system) failed
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	systems, err := listSystems(ctx, c, len(r.MACs) > 0 && r.SystemID == "")
	if err != nil {
		return inv, err
	}
	if len(systems) > 1 || r.SystemID != "" {
		pick, err := chooseSystem(r, systems)
		if err != nil {
			return inv, err
		}
		// the certificate seen on the first session is the one the second must present
		fp := fingerprintOf(c)
		c.Close(context.WithoutCancel(ctx))
		c = nil
		if c, err = l.dialEnrollBMC(ctx, r, fp, pick.ID); err != nil {
			return inv, err
		}
		r.SystemID = pick.ID
	}
	return l.foldInventory(ctx, c, r)
}

func (l *Machines) dialEnrollBMC(ctx context.Context, r *EnrollRequest, fingerprint, system string) (BMC, error) {
	profile := r.BMCVendor
	if profile == "" || profile == "generic" {
		profile = "auto"
	}
	c, err := l.dial(ctx, r.BMCAddress, r.BMCUsername, r.BMCPassword, profile, fingerprint, system)
	if err != nil {
		// the BMC error names the BMC, what failed and the one hint that fits (credentials for
		// a 401, the vendor profile for a 404, …): no second hint here
		return nil, &bmcError{fmt.Errorf("enroll by BMC: %w", err)}
	}
	return c, nil
}

// foldInventory reads the system c controls and folds it into r.
func (l *Machines) foldInventory(ctx context.Context, c BMC, r *EnrollRequest) (redfish.Inventory, error) {
	inv, err := c.Inventory(ctx)
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

// DefaultBootWindow is how long an expected network boot may take to fetch its script when
// the configuration says nothing (boot_expect_window).
const DefaultBootWindow = 15 * time.Minute

// SetBootWindow sets how long an expected network boot stays expected (0: DefaultBootWindow).
func (l *Machines) SetBootWindow(d time.Duration) { l.bootWindow = d }

// BootWindow is how long an expected network boot stays expected.
func (l *Machines) BootWindow() time.Duration {
	if l.bootWindow <= 0 {
		return DefaultBootWindow
	}
	return l.bootWindow
}

// ExpectBootTx arms the expectation of the machine's network boot inside tx and audits it
// (boot.expected, with who and why): only an expected boot gets an agent token.
func (l *Machines) ExpectBootTx(ctx context.Context, tx *inventory.Tx, actor, machineID, reason string) (inventory.BootExpectation, error) {
	e, err := tx.ExpectBoot(ctx, machineID, actor, reason, l.BootWindow())
	if err != nil {
		return e, err
	}
	_, err = tx.Audit(ctx, actor, "boot.expected", machineID, "ok",
		map[string]any{"until": e.ExpiresAt.Format(time.RFC3339), "reason": reason})
	return e, err
}

// ExpectBoot is a technician announcing that they will power the machine on by hand: its
// network boot is expected (and gets an agent token) for the boot window.
func (l *Machines) ExpectBoot(ctx context.Context, actor, idOrName string) (inventory.BootExpectation, error) {
	var e inventory.BootExpectation
	err := l.store.Update(ctx, func(tx *inventory.Tx) error {
		m, err := tx.GetMachine(ctx, idOrName)
		if err != nil {
			return err
		}
		if m.State == Retired {
			return inventory.Errorf(inventory.ErrConflict, "machine %s is retired: Slate boots nothing for it, so there is no boot to expect (re-enroll it first)", m.Name)
		}
		e, err = l.ExpectBootTx(ctx, tx, actor, m.ID, "a technician powers it on by hand")
		return err
	})
	if err != nil {
		return e, err
	}
	if l.notify != nil {
		l.notify.MachineChanged(e.MachineID)
	}
	return e, nil
}

// PowerOnForNetboot sets a one-time network boot and powers the machine on through its BMC.
// The boot is expected (armed) first, so its script fetch gets the agent token.
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
	c, err := l.dial(ctx, cred.Address, cred.Username, cred.Password, cred.VendorProfile, cred.TLSFingerprint, cred.SystemID)
	if err != nil {
		return bmcDialFailed(inventory.Machine{ID: machineID}, cred.Address, err)
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
	via := ""
	if target == redfish.BootPXE {
		// A machine whose virtual CD holds Slate's deploy ISO is on a segment where it cannot
		// network-boot (the operator left the ISO in for that): Slate's own boots use the CD.
		if t := l.mediaTarget(ctx, c, machineID); t != "" {
			target, via = t, "virtual media: its CD holds the deploy ISO"
		}
	}
	// Armed only now: a running machine left alone above must not have a boot expected.
	if err := l.store.Update(ctx, func(tx *inventory.Tx) error {
		_, err := l.ExpectBootTx(ctx, tx, actor, machineID, fmt.Sprintf("powered on through its BMC for a one-time %s boot", target))
		return err
	}); err != nil {
		// A boot Slate does not expect would get no token: do not start it.
		return fmt.Errorf("machine %s: not powered on: recording the expected boot failed: %w", machineID, err)
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
		if via != "" {
			details["via"] = via
		}
		if err != nil {
			details["error"] = err.Error()
		}
		_, e := tx.Audit(ctx, actor, "bmc.boot-once", machineID, outcome, details)
		return e
	}); aerr != nil {
		// The BMC acted (or failed), but the record of it was lost: say so to the caller.
		return errors.Join(err, fmt.Errorf("machine %s: the power-on through BMC %s was not audited: %w", machineID, cred.Address, aerr))
	}
	return err
}

// CredentialsReader gives a machine's BMC credentials.
type CredentialsReader interface {
	BMCCredentials(ctx context.Context, box *inventory.SecretBox, machineID string) (inventory.BMCCredentials, error)
}
