package redfish

import (
	"context"
	"fmt"
	"slices"
)

// BootTarget is a one-time boot device, as Redfish names it.
type BootTarget string

const (
	BootPXE  BootTarget = "Pxe"
	BootHTTP BootTarget = "UefiHttp"
	BootCD   BootTarget = "Cd"
	BootDisk BootTarget = "Hdd"
)

// BootMode is BIOS (Legacy) or UEFI; empty keeps what the system has.
type BootMode string

const (
	ModeUEFI   BootMode = "UEFI"
	ModeLegacy BootMode = "Legacy"
)

// BootOverride is a one-time boot request.
type BootOverride struct {
	Target BootTarget `json:"target"`
	Mode   BootMode   `json:"mode,omitempty"`
	// URI is the UEFI HTTP boot URI; sent only where the BMC has HttpBootUri (elsewhere DHCP
	// must hand the URI to the firmware).
	URI string `json:"uri,omitempty"`
}

// SetBootOnce sets a one-time boot override for the next boot and checks it took.
func (c *Client) SetBootOnce(ctx context.Context, o BootOverride) error {
	const op = "set one-time boot override"
	switch o.Target {
	case BootPXE, BootHTTP, BootCD, BootDisk:
	default:
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("boot target %q is not one of Pxe, UefiHttp, Cd, Hdd", o.Target)}
	}
	switch o.Mode {
	case "", ModeUEFI, ModeLegacy:
	default:
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("boot mode %q is not UEFI or Legacy", o.Mode)}
	}
	s, err := c.system(ctx, op)
	if err != nil {
		return err
	}
	if len(s.bootAllowed) > 0 && !slices.Contains(s.bootAllowed, string(o.Target)) {
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC allows boot targets %v, not %s: %w", s.bootAllowed, o.Target, ErrUnsupported),
			Hint: "choose another boot target, or update the BMC firmware"}
	}
	if o.Target == BootHTTP && o.Mode == ModeLegacy {
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("UEFI HTTP boot needs UEFI mode: %w", ErrUnsupported)}
	}
	if o.URI != "" && (o.Target != BootHTTP || !s.hasHTTPURI) {
		if o.Target == BootHTTP {
			c.log.Info("bmc has no HttpBootUri: the boot URI must come from DHCP", "uri", o.URI)
		}
		o.URI = ""
	}
	var lastErr error
	var sent map[string]any
	for _, boot := range c.vendor.BootPatches(o, s.Boot) {
		err := c.patch(ctx, op, c.systemURI, map[string]any{"Boot": boot})
		if err == nil {
			sent, lastErr = boot, nil
			break
		}
		lastErr = err
		if !isStatus(err, 400) {
			return err
		}
		c.log.Info("bmc rejected the boot override, trying the vendor's next form", "err", err)
	}
	if lastErr != nil {
		return lastErr
	}
	// read back: a BMC may accept a PATCH and still not hold the value
	s, err = c.system(ctx, op)
	if err != nil {
		return err
	}
	got := s.Boot
	echo := c.vendor.BootEcho()
	cleared := got.BootSourceOverrideEnabled == OverrideDisabled || got.BootSourceOverrideTarget == "None" || got.BootSourceOverrideTarget == ""
	switch {
	case got.BootSourceOverrideTarget == string(o.Target) && got.BootSourceOverrideEnabled == OverrideOnce:
	case got.BootSourceOverrideTarget == string(o.Target) && got.BootSourceOverrideEnabled == OverrideContinuous:
		// taken, but it would stay for every later boot: whoever observes the boot calls
		// ClearBootOverride (lifecycle does when the deploy environment takes its task)
		if echo == EchoOnce {
			c.log.Warn("bmc reports the one-time override as Continuous: accepted; it is set Disabled after the boot (profile "+c.vendor.Name()+" expects Once)",
				"target", o.Target)
		} else {
			c.log.Info("bmc reports the one-time override as Continuous, as its profile expects: it is set Disabled after the boot", "target", o.Target)
		}
	case cleared && echo == EchoCleared:
		c.log.Info("bmc does not show the override it took, as its profile expects: verified by the boot", "target", o.Target,
			"reported_target", got.BootSourceOverrideTarget, "reported_enabled", got.BootSourceOverrideEnabled)
		return nil
	default:
		hint := ""
		if cleared {
			hint = "if this BMC clears an override as soon as it takes it (sushy-tools, some emulators), set its vendor profile to sushy: Slate then verifies by the boot"
		}
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC accepted the override but reports target %q enabled %q: %w",
			got.BootSourceOverrideTarget, got.BootSourceOverrideEnabled, ErrNotApplied), Hint: hint}
	}
	if m, ok := sent["BootSourceOverrideMode"]; ok && string(got.BootSourceOverrideMode) != m {
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC reports boot mode %q, not %v: %w", got.BootSourceOverrideMode, m, ErrNotApplied)}
	}
	if _, ok := sent["BootSourceOverrideMode"]; !ok && o.Mode != "" {
		c.log.Warn("bmc would not take the boot mode with the override; set it in the BIOS profile", "mode", o.Mode)
	}
	return nil
}

// BootOnceNow sets a one-time override and starts the system into it: a restart when it runs,
// a power-on when it is off. It is what enrollment by BMC does with BootPXE.
func (c *Client) BootOnceNow(ctx context.Context, o BootOverride) error {
	if err := c.SetBootOnce(ctx, o); err != nil {
		return err
	}
	return c.PowerCycle(ctx)
}

// ClearBootOverride sets a lingering override Disabled once the boot it was for has been
// observed: a BMC that reports (and keeps) a one-time override as Continuous would otherwise
// network-boot the machine on every later reset. It sends nothing when no override is
// Continuous (consumed Once overrides need nothing), and checks the BMC took it.
func (c *Client) ClearBootOverride(ctx context.Context) error {
	const op = "clear boot override"
	s, err := c.system(ctx, op)
	if err != nil {
		return err
	}
	if s.Boot.BootSourceOverrideEnabled != OverrideContinuous {
		return nil
	}
	if err := c.patch(ctx, op, c.systemURI, map[string]any{"Boot": map[string]any{"BootSourceOverrideEnabled": OverrideDisabled}}); err != nil {
		return err
	}
	s, err = c.system(ctx, op)
	if err != nil {
		return err
	}
	if s.Boot.BootSourceOverrideEnabled == OverrideContinuous {
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC still reports the override %q Continuous: %w", s.Boot.BootSourceOverrideTarget, ErrNotApplied),
			Hint: "set the boot override to Disabled on the BMC, or every reset boots " + s.Boot.BootSourceOverrideTarget}
	}
	c.log.Info("bmc boot override set Disabled after the boot", "was", s.Boot.BootSourceOverrideTarget)
	return nil
}
