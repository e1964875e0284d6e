package lifecycle

import (
	"context"
	"fmt"

	"slate/inventory"
)

// AdoptedReason is what an adopted machine says while Slate leaves it alone.
const AdoptedReason = "adopted: runs an unmanaged system; Slate does not touch its power. Inspect it in a maintenance window, or set a desired release and move it to provisioning to install it"

// stepAdopted takes no step: an adopted machine runs a system Slate did not install, and
// only an operator's explicit request (a transition) changes that. No BMC call is made, not
// even a read: a pass over hundreds of adopted machines must not poll their BMCs.
func (r *Reconciler) stepAdopted(m inventory.Machine) {
	if m.DesiredRelease != "" {
		r.explain(m.ID, fmt.Sprintf("adopted: runs an unmanaged system; desired release %s is set but not installed until you move the machine to provisioning (this restarts it)", m.DesiredRelease))
		return
	}
	r.explain(m.ID, AdoptedReason)
}

// auditLister reads the audit log (*inventory.Store has it).
type auditLister interface {
	ListAudit(ctx context.Context, f inventory.AuditFilter) ([]inventory.AuditEvent, error)
}

// fromAdopted says whether the machine's newest transition was an operator's adopted →
// provisioning: the install it asks for is not queued yet.
func (r *Reconciler) fromAdopted(ctx context.Context, m inventory.Machine) bool {
	al, ok := r.store.(auditLister)
	if !ok {
		return false
	}
	evs, err := al.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "machine.transition", Limit: 20})
	if err != nil {
		r.log.Warn("reading the machine's transitions failed", "machine", m.ID, "err", err)
		return false
	}
	for _, e := range evs {
		if e.Outcome != "ok" {
			continue // a refused move moved nothing
		}
		return e.Details["from"] == Adopted && e.Details["to"] == Provisioning
	}
	return false
}

// installAdopted queues the install of an adopted machine's desired release, which an
// operator asked for by moving it to provisioning, and restarts it into the deploy
// environment through its BMC. The BIOS profile and firmware baseline are not applied on this
// path (inspect the machine first for the full one).
func (r *Reconciler) installAdopted(ctx context.Context, m inventory.Machine) error {
	if r.Installer == nil {
		r.explain(m.ID, "provisioning: this Slate cannot install releases (provisioning is not configured)")
		return nil
	}
	if m.DesiredRelease == "" {
		r.explain(m.ID, "provisioning: no desired release set: set one to install it")
		return nil
	}
	rel, err := r.Installer.Releases.GetRelease(ctx, m.DesiredRelease)
	if err != nil {
		r.explain(m.ID, "desired release "+m.DesiredRelease+" not found")
		return nil
	}
	if rel.State != ReleaseApproved {
		r.explain(m.ID, fmt.Sprintf("desired release %s@%s is %s: only an approved release is installed", rel.Name, rel.Version, rel.State))
		return nil
	}
	if !r.hasBMC(m) {
		r.explain(m.ID, "provisioning an adopted machine without a BMC: power-cycle it into a network boot by hand after announcing it (slate machine expect-boot)")
	}
	return r.startInstall(ctx, m, rel, Provisioning)
}
