package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"slate/inventory"
	"slate/redfish"
)

// The real client must keep fitting what the reconciler asks of a BMC.
var _ BMC = (*redfish.Client)(nil)

// baselineShape is told to authors whose baseline does not parse: the error alone names the
// bad field, not what a good baseline looks like.
const baselineShape = `{"name", "version", "components": [{"component", "version", "image_uri"}]}`

// Firmware component states in the firmware.apply audit event.
const (
	fwCurrent       = "current"        // already at the baseline: nothing sent
	fwUpdated       = "updated"        // updated and verified
	fwPending       = "pending"        // staged; takes effect at the next reset
	fwFailed        = "failed"         // refused, failed, or still differing after the update
	fwMissing       = "missing"        // the BMC lists no such component
	fwNotUpdateable = "not-updateable" // the BMC says it cannot be updated through Redfish
)

// parseBaseline reads a release's firmware baseline. The release already names the baseline,
// so an author may leave "name" out (it becomes name@version of the release).
func parseBaseline(name, version string, raw map[string]any) (redfish.FirmwareBaseline, error) {
	m := maps.Clone(raw)
	if _, ok := m["name"]; !ok {
		m["name"] = name + "@" + version
	}
	b, err := json.Marshal(m)
	if err != nil {
		return redfish.FirmwareBaseline{}, fmt.Errorf("firmware baseline: %w", err)
	}
	fb, err := redfish.ParseFirmwareBaseline(b)
	if err != nil {
		return fb, fmt.Errorf("%w (a baseline is %s)", err, baselineShape)
	}
	return fb, nil
}

// releaseBaseline is the firmware baseline of a release; ok is false when it has none.
func releaseBaseline(rel inventory.Release) (b redfish.FirmwareBaseline, ok bool, err error) {
	if len(rel.FirmwareBaseline) == 0 {
		return b, false, nil
	}
	b, err = parseBaseline(rel.Name, rel.Version, rel.FirmwareBaseline)
	return b, true, err
}

// canConfigure says whether Slate can reach the machine's BMC to configure it.
func (r *Reconciler) canConfigure(m inventory.Machine) bool {
	return m.BMC != nil && r.machines.dial != nil
}

// needsConfigure says whether a ready machine goes through configuring before its install:
// the release has a BIOS profile or a firmware baseline, and the machine has a BMC Slate can use.
func (r *Reconciler) needsConfigure(m inventory.Machine, rel inventory.Release) bool {
	return (len(rel.BIOSProfile) > 0 || len(rel.FirmwareBaseline) > 0) && r.canConfigure(m)
}

// configureWhat names what configuring applies, for the explanation and the transition.
func configureWhat(rel inventory.Release) string {
	var parts []string
	if len(rel.FirmwareBaseline) > 0 {
		name := "firmware baseline"
		if b, _, err := releaseBaseline(rel); err == nil {
			name += " " + b.Name
		}
		parts = append(parts, name)
	}
	if len(rel.BIOSProfile) > 0 {
		parts = append(parts, "BIOS profile")
	}
	return fmt.Sprintf("applying the %s of %s@%s through the BMC", strings.Join(parts, " and "), rel.Name, rel.Version)
}

// firmwareTimeout is the configure step's extra time for a firmware baseline: one update task
// per component, and a BMC may take most of an hour on one image.
func firmwareTimeout(rel inventory.Release) time.Duration {
	b, ok, err := releaseBaseline(rel)
	if !ok || err != nil {
		return 0
	}
	return time.Duration(len(b.Components)) * 50 * time.Minute
}

// noBMCReason says why a machine cannot be configured through its BMC.
func (r *Reconciler) noBMCReason(m inventory.Machine) string {
	if m.BMC == nil {
		return "the machine has no BMC"
	}
	return "BMC support is not configured in Slate"
}

// installSkippingFirmware installs a release whose firmware baseline cannot be applied (no BMC):
// the machine is still installed, because its firmware is the plant's to manage by hand then,
// but the page and the audit log say the baseline was not applied and why.
func (r *Reconciler) installSkippingFirmware(ctx context.Context, m inventory.Machine, rel inventory.Release) error {
	base, _, _ := releaseBaseline(rel)
	reason := r.noBMCReason(m)
	note := fmt.Sprintf("firmware baseline %s not applied: %s", base.Name, reason)
	if len(rel.BIOSProfile) > 0 {
		note = fmt.Sprintf("firmware baseline %s and BIOS profile not applied: %s", base.Name, reason)
	}
	if err := r.startInstall(ctx, m, rel, Ready); err != nil {
		return err
	}
	// Audit only once the install really started: a machine waiting for an install slot comes
	// back here on every pass, and the skip is one decision, not one per pass.
	moved := false
	err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		cur, err := tx.GetMachine(ctx, m.ID)
		if err != nil || cur.State != Provisioning {
			return err
		}
		moved = true
		_, err = tx.Audit(ctx, "slate", "firmware.skip", m.ID, "ok", map[string]any{
			"release": rel.Name + "@" + rel.Version, "baseline": base.Name, "reason": reason})
		return err
	})
	if err != nil {
		return err
	}
	if moved {
		r.log.Info("firmware baseline not applied", "machine", m.ID, "release", rel.Name+"@"+rel.Version, "reason", reason)
		r.explain(m.ID, fmt.Sprintf("installing %s@%s (%s)", rel.Name, rel.Version, note))
	} else {
		r.explain(m.ID, r.Why(m.ID)+" ("+note+")")
	}
	return nil
}

// dialMachineBMC opens a session with a machine's BMC from its stored credentials.
func (r *Reconciler) dialMachineBMC(ctx context.Context, m inventory.Machine) (BMC, error) {
	if r.box == nil {
		return nil, errors.New("no secret key to read the BMC password")
	}
	cred, err := r.store.BMCCredentials(ctx, r.box, m.ID)
	if err != nil {
		return nil, err
	}
	c, err := r.machines.dial(ctx, cred.Address, cred.Username, cred.Password, cred.VendorProfile, cred.TLSFingerprint, cred.SystemID)
	if err != nil {
		return nil, bmcDialFailed(m, cred.Address, err)
	}
	return c, nil
}

// applyFirmware brings the machine to its release's firmware baseline and audits what it did
// (firmware.apply, with every component's versions), whether it succeeded or not.
func (r *Reconciler) applyFirmware(ctx context.Context, m inventory.Machine, rel inventory.Release) error {
	base, _, err := releaseBaseline(rel)
	if err != nil {
		return fmt.Errorf("release %s@%s: %w: create a release with a valid baseline", rel.Name, rel.Version, err)
	}
	c, err := r.dialMachineBMC(ctx, m)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	comps, err := updateFirmware(ctx, expectingReset{c, func(ctx context.Context) error {
		return r.store.Update(ctx, func(tx *inventory.Tx) error {
			_, err := r.machines.ExpectBootTx(ctx, tx, "slate", m.ID, "power-cycled through its BMC to activate staged firmware")
			return err
		})
	}}, base, func(msg string) { r.explain(m.ID, msg) })
	outcome, updated := "ok", 0
	for _, fc := range comps {
		if fc.State == fwUpdated {
			updated++
		}
	}
	details := map[string]any{"release": rel.Name + "@" + rel.Version, "baseline": base.Name, "components": comps, "updated": updated}
	if base.Version != "" {
		details["baseline_version"] = base.Version
	}
	if err != nil {
		outcome, details["error"] = "failed", err.Error()
	}
	if aerr := r.store.Update(ctx, func(tx *inventory.Tx) error {
		_, e := tx.Audit(ctx, "slate", "firmware.apply", m.ID, outcome, details)
		return e
	}); aerr != nil && err == nil {
		return fmt.Errorf("firmware baseline %s applied, but not audited: %w", base.Name, aerr)
	}
	if err != nil {
		return fmt.Errorf("firmware baseline %s: %w", base.Name, err)
	}
	r.log.Info("firmware baseline applied", "machine", m.ID, "baseline", base.Name, "updated", updated)
	return nil
}

// expectingReset arms the expected network boot before the BMC resets the machine: the
// machine is configuring, so it boots the deploy environment again and needs a token.
type expectingReset struct {
	firmwareBMC
	arm func(ctx context.Context) error
}

func (e expectingReset) PowerCycle(ctx context.Context) error {
	if err := e.arm(ctx); err != nil {
		return fmt.Errorf("recording the expected boot: %w", err)
	}
	return e.firmwareBMC.PowerCycle(ctx)
}

// firmwareBMC is what the firmware step uses of a BMC.
type firmwareBMC interface {
	PlanFirmware(ctx context.Context, b redfish.FirmwareBaseline) ([]redfish.FirmwareStep, error)
	UpdateFirmware(ctx context.Context, u redfish.FirmwareUpdate) (redfish.FirmwareResult, error)
	PowerCycle(ctx context.Context) error
}

// fwComponent is one baseline component in the firmware.apply audit event.
type fwComponent struct {
	Component string `json:"component"`
	Before    string `json:"before"`
	After     string `json:"after,omitempty"`
	Want      string `json:"want"`
	State     string `json:"state"`
}

// updateFirmware plans the baseline, updates every component that differs, one at a time,
// resets the machine once when a component only takes effect at a reset, and verifies the
// versions. It stops at the first refusal: a machine half at a baseline is failed, not installed.
func updateFirmware(ctx context.Context, c firmwareBMC, base redfish.FirmwareBaseline, progress func(string)) ([]fwComponent, error) {
	plan, err := c.PlanFirmware(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("reading the firmware inventory: %w", err)
	}
	comps := make([]fwComponent, 0, len(base.Components))
	idx := map[string]int{}
	for _, t := range base.Components {
		idx[t.Component] = len(comps)
		comps = append(comps, fwComponent{Component: t.Component, Before: t.Version, After: t.Version, Want: t.Version, State: fwCurrent})
	}
	for _, s := range plan {
		comps[idx[s.Component]] = fwComponent{Component: s.Component, Before: s.Current, Want: s.Want}
	}
	// Refuse what cannot be done before sending anything, so no machine is left half-updated
	// by a baseline that could never be met.
	var refused []string
	for _, s := range plan {
		fc := &comps[idx[s.Component]]
		switch {
		case s.Missing:
			fc.State = fwMissing
			refused = append(refused, fmt.Sprintf("the BMC lists no firmware component %s (the baseline wants %s): name it by its Id or Name in the BMC's FirmwareInventory", s.Component, s.Want))
		case !s.Updateable:
			fc.State = fwNotUpdateable
			refused = append(refused, fmt.Sprintf("%s is at %s and the BMC cannot update it through Redfish (the baseline wants %s): update it by hand, then retry", s.Component, s.Current, s.Want))
		}
	}
	if len(refused) > 0 {
		return comps, errors.New(strings.Join(refused, "; "))
	}
	pending := 0
	for i, s := range plan {
		fc := &comps[idx[s.Component]]
		progress(fmt.Sprintf("updating firmware %s %s → %s (%d of %d)", s.Component, orUnknown(s.Current), s.Want, i+1, len(plan)))
		res, err := c.UpdateFirmware(ctx, redfish.FirmwareUpdate{Component: s.Component, Version: s.Want, ImageURI: s.ImageURI})
		fc.After = res.After
		switch {
		case err == nil:
			fc.State = fwUpdated
		case errors.Is(err, redfish.ErrNotApplied) && res.State == fwPending:
			fc.State = fwPending
			pending++
		default:
			fc.State = fwFailed
			return comps, fmt.Errorf("%s not updated from %s to %s: %w", s.Component, orUnknown(s.Current), s.Want, err)
		}
	}
	if len(plan) == 0 {
		return comps, nil
	}
	if pending > 0 {
		progress(fmt.Sprintf("firmware staged for %d component(s): resetting the machine so it takes effect", pending))
		if err := c.PowerCycle(ctx); err != nil {
			return comps, fmt.Errorf("resetting the machine to activate the staged firmware: %w", err)
		}
	}
	progress("verifying the firmware versions")
	after, err := c.PlanFirmware(ctx, base)
	if err != nil {
		return comps, fmt.Errorf("verifying the firmware versions: %w", err)
	}
	var differ []string
	for _, s := range after {
		fc := &comps[idx[s.Component]]
		fc.After, fc.State = s.Current, fwFailed
		differ = append(differ, fmt.Sprintf("%s is at %s after the update, the baseline wants %s", s.Component, orUnknown(s.Current), s.Want))
	}
	for i := range comps {
		if comps[i].State == fwPending {
			comps[i].After, comps[i].State = comps[i].Want, fwUpdated
		}
	}
	if len(differ) > 0 {
		return comps, errors.New(strings.Join(differ, "; "))
	}
	return comps, nil
}

func orUnknown(v string) string {
	if v == "" {
		return "(unknown)"
	}
	return v
}
