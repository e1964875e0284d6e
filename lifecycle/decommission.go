package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/wipe"
)

// Certifier turns a finished wipe task into signed certificates stored in the same
// transaction, and says whether every drive is sanitized.
type Certifier interface {
	Certify(ctx context.Context, tx *inventory.Tx, m inventory.Machine, task inventory.Task) (sanitized bool, summary string, err error)
}

// TaskHook is what a finished task means for its machine; the agent API calls it inside the
// transaction that records the result.
type TaskHook struct {
	Certifier Certifier
	// WipePolicy is Slate's sanitization policy (nil: wipe.DefaultPolicy()): the plan Slate
	// stores is made with it from the drives the agent probed, whatever policy the agent used.
	WipePolicy *wipe.Policy
	Now        func() time.Time
}

// TaskFinished moves the machine on: inspecting → ready (or failed); a finished wipe →
// certificates and sanitized (or failed, with no certificate for what was not sanitized).
func (h TaskHook) TaskFinished(ctx context.Context, tx *inventory.Tx, m inventory.Machine, task inventory.Task) error {
	failed := task.State != inventory.TaskSucceeded
	switch {
	case kindOf(task) == agentproto.KindInspect && m.State == Inspecting:
		if failed {
			_, err := TransitionTx(ctx, tx, m.ID, Failed, "agent", "inspection failed: "+task.Message, task.ID)
			return err
		}
		_, err := TransitionTx(ctx, tx, m.ID, Ready, "agent", "inspection finished", task.ID)
		return err
	case kindOf(task).Installs() && (m.State == Provisioning || m.State == Updating || m.State == RollingBack) && failed:
		_, err := TransitionTx(ctx, tx, m.ID, Failed, "agent", "install failed: "+task.Message, task.ID)
		return err
	case kindOf(task) == agentproto.KindWipePlan && m.State == Decommissioning && failed:
		_, err := TransitionTx(ctx, tx, m.ID, Failed, "agent", "could not plan the wipe: "+task.Message, task.ID)
		return err
	case kindOf(task) == agentproto.KindWipePlan && m.State == Decommissioning:
		return h.replan(ctx, tx, m, task)
	case kindOf(task) == agentproto.KindWipe && m.State == Decommissioning:
		if failed {
			_, err := TransitionTx(ctx, tx, m.ID, Failed, "agent", "wipe failed: "+task.Message, task.ID)
			return err
		}
		if h.Certifier == nil {
			return fmt.Errorf("wipe of machine %s finished but no certifier is configured", m.ID)
		}
		ok, summary, err := h.Certifier.Certify(ctx, tx, m, task)
		if err != nil {
			return err
		}
		if !ok {
			_, err := TransitionTx(ctx, tx, m.ID, Failed, "agent", "not every drive was sanitized: "+summary, task.ID)
			return err
		}
		_, err = TransitionTx(ctx, tx, m.ID, Sanitized, "agent", "every drive sanitized and certified: "+summary, task.ID)
		return err
	}
	return nil
}

// replan replaces the agent's proposed plan with Slate's (slatePlan), audited with what was
// ignored of the agent's proposal and how the drives differ from inspection.
func (h TaskHook) replan(ctx context.Context, tx *inventory.Tx, m inventory.Machine, task inventory.Task) error {
	policy := wipe.DefaultPolicy()
	if h.WipePolicy != nil {
		policy = *h.WipePolicy
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	p, ignored, err := slatePlan(ctx, tx, m, task.Result, policy, now().UTC())
	if err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := tx.SetTaskResult(ctx, task.ID, b); err != nil {
		return err
	}
	outcome := "ok"
	disc := p.AllDiscrepancies()
	if len(disc) > 0 {
		outcome = "discrepancy"
	}
	_, err = tx.Audit(ctx, "slate", "wipe.plan", m.ID, outcome, map[string]any{"task": task.ID, "plan_digest": p.Digest(),
		"drives": len(p.Drives), "discrepancies": disc, "ignored_from_agent": ignored})
	return err
}

// WipePlan returns the newest wipe plan proposed for a machine, with its task.
func WipePlan(ctx context.Context, st interface {
	LatestTask(ctx context.Context, machineID, kind string) (inventory.Task, bool, error)
}, machineID string) (wipe.Plan, inventory.Task, bool, error) {
	t, ok, err := st.LatestTask(ctx, machineID, string(agentproto.KindWipePlan))
	if err != nil || !ok || t.State != inventory.TaskSucceeded {
		return wipe.Plan{}, t, false, err
	}
	var p agentproto.WipePlanResult
	if err := json.Unmarshal(t.Result, &p); err != nil {
		return p, t, false, fmt.Errorf("wipe plan of task %s: %w", t.ID, err)
	}
	return p, t, true, nil
}

// ConfirmWipe is the audited confirmation that starts the erasure: the operator names the
// plan (by digest), types the machine's name and says who performs the sanitization (the
// person every certificate of this wipe names: NIST SP 800-88 Appendix G). Slate then queues
// the wipe task with an authorization bound to that task, that machine and that plan, and
// stores the person beside it. A pre-approved policy (AutoWipeActor) names nobody: its
// certificates take the configured person.
func (r *Reconciler) ConfirmWipe(ctx context.Context, actor, machineRef, planDigest, typedName string, person wipe.Person) (inventory.Task, error) {
	st, ok := r.store.(interface {
		LatestTask(ctx context.Context, machineID, kind string) (inventory.Task, bool, error)
	})
	if !ok {
		return inventory.Task{}, fmt.Errorf("confirm wipe: store cannot read tasks")
	}
	var out inventory.Task
	var refusal error
	err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		m, err := tx.GetMachine(ctx, machineRef)
		if err != nil {
			return err
		}
		plan, planTask, ok, err := WipePlan(ctx, st, m.ID)
		if err != nil {
			return err
		}
		switch {
		case m.State != Decommissioning:
			refusal = inventory.Errorf(inventory.ErrConflict, "machine %s is %s: only a machine in decommissioning can be wiped", m.Name, m.State)
		case !ok:
			refusal = inventory.Errorf(inventory.ErrConflict, "machine %s has no wipe plan yet: wait for its drives to be probed", m.Name)
		case plan.Digest() != planDigest:
			refusal = inventory.Errorf(inventory.ErrConflict, "plan %s is not machine %s's current plan (%s): reload it and confirm again", short(planDigest), m.Name, short(plan.Digest()))
		case strings.TrimSpace(typedName) != m.Name:
			refusal = inventory.Errorf(inventory.ErrInvalid, "type the machine's name (%s) to confirm its erasure", m.Name)
		case actor != AutoWipeActor && person.Check() != nil:
			refusal = inventory.Errorf(inventory.ErrInvalid, "%s", person.Check().Error())
		case !plan.Runnable():
			refusal = inventory.Errorf(inventory.ErrConflict, "the plan has blocked drives: %s", blockedSummary(plan))
		case actor == AutoWipeActor && len(plan.AllDiscrepancies()) > 0:
			// A pre-approved policy covers the drives inspection saw, nothing else: a
			// technician must look at the machine and confirm by hand.
			refusal = inventory.Errorf(inventory.ErrConflict, "the plan differs from inspection, so it cannot be confirmed automatically: %s",
				strings.Join(plan.AllDiscrepancies(), "; "))
		}
		if refusal != nil {
			return refusal
		}
		if t, ok, _ := st.LatestTask(ctx, m.ID, string(agentproto.KindWipe)); ok && !t.Finished() {
			return inventory.Errorf(inventory.ErrConflict, "a wipe of machine %s is already under way (task %s)", m.Name, t.ID)
		}
		task, err := tx.CreateTask(ctx, actor, m.ID, string(agentproto.KindWipe), nil)
		if err != nil {
			return err
		}
		params, err := json.Marshal(agentproto.WipeParams{Plan: plan, Authorization: wipe.Authorization{TaskID: task.ID, MachineID: m.ID,
			PlanDigest: plan.Digest(), ConfirmedBy: actor}})
		if err != nil {
			return err
		}
		if err := tx.SetTaskParams(ctx, task.ID, params); err != nil {
			return err
		}
		person = person.Trimmed()
		if !person.IsZero() {
			pb, err := json.Marshal(person)
			if err != nil {
				return err
			}
			if err := tx.SetWipePerson(ctx, task.ID, pb); err != nil {
				return err
			}
		}
		drives := []string{}
		for _, d := range plan.Drives {
			drives = append(drives, fmt.Sprintf("%s %s: %s by %s", d.Drive.Path, d.Drive.Serial, d.Level, d.Method))
		}
		if _, err := tx.Audit(ctx, actor, "wipe.confirm", m.ID, "ok", map[string]any{"task": task.ID, "plan_task": planTask.ID,
			"plan_digest": plan.Digest(), "drives": drives, "discrepancies_acknowledged": plan.AllDiscrepancies(), "person": person}); err != nil {
			return err
		}
		out, err = tx.GetTask(ctx, task.ID)
		return err
	})
	if refusal != nil {
		if aerr := r.store.Update(ctx, func(tx *inventory.Tx) error {
			_, e := tx.Audit(ctx, actor, "wipe.confirm", machineRef, "refused", map[string]any{"reason": refusal.Error(), "person": person.Trimmed()})
			return e
		}); aerr != nil {
			// The refusal stands; that its record was lost must not be silent.
			err = errors.Join(err, fmt.Errorf("the refusal was not audited: %w", aerr))
		}
	}
	if err == nil {
		r.notify(out.MachineID)
	}
	return out, err
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func blockedSummary(p wipe.Plan) string {
	var out []string
	for _, d := range p.Drives {
		if d.Blocked {
			out = append(out, fmt.Sprintf("%s (%s): %s — %s", d.Drive.Path, d.Drive.Serial, d.Reason, d.Remedy))
		}
	}
	return strings.Join(out, "; ")
}

// stepDecommission drives a machine in decommissioning: probe its drives (plan), wait for
// the confirmation (or confirm under a pre-approved policy), follow the wipe.
func (r *Reconciler) stepDecommission(ctx context.Context, m inventory.Machine) error {
	ts, err := r.store.ListTasks(ctx, m.ID, 50)
	if err != nil {
		return err
	}
	if r.following(ctx, ts, m, agentproto.KindWipe, "wiping") || r.following(ctx, ts, m, agentproto.KindWipePlan, "probing drives to plan the wipe") {
		return nil
	}
	// The newest plan must be newer than the decommission request: drives change.
	var plan *inventory.Task
	for i := range ts {
		if kindOf(ts[i]) == agentproto.KindWipePlan {
			plan = &ts[i]
			break
		}
	}
	if plan == nil || plan.State != inventory.TaskSucceeded || plan.CreatedAt.Before(m.UpdatedAt) {
		if m.BootedRelease != "" && !r.hasBMC(m) {
			// An installed system may be running: its node takes a reboot first (queued
			// ahead, in the same transaction), and the deploy environment then plans. With
			// a BMC, queue power-cycles it into the network boot instead.
			return r.queueAll(ctx, m, "rebooting the installed system into the deploy environment to plan the wipe", agentproto.KindReboot, agentproto.KindWipePlan)
		}
		return r.queue(ctx, m, agentproto.KindWipePlan, "probing drives to plan the wipe")
	}
	var p wipe.Plan
	if err := json.Unmarshal(plan.Result, &p); err != nil {
		return fmt.Errorf("wipe plan of task %s: %w", plan.ID, err)
	}
	if !p.Runnable() {
		r.explain(m.ID, "wipe plan blocked: "+blockedSummary(p))
		return nil
	}
	if d := p.AllDiscrepancies(); len(d) > 0 {
		r.explain(m.ID, "wipe plan differs from inspection ("+strings.Join(d, "; ")+"): check the machine's drives; only a technician can confirm this plan")
		return nil
	}
	if r.AutoConfirmWipe {
		if r.atLimit(ctx, m, r.MaxWipes, "wipes", agentproto.KindWipe) {
			return nil
		}
		_, err := r.ConfirmWipe(ctx, AutoWipeActor, m.ID, p.Digest(), m.Name, wipe.Person{})
		return err
	}
	r.explain(m.ID, fmt.Sprintf("wipe plan ready for %d drives: confirm it to start the erasure", len(p.Drives)))
	return nil
}

// retire moves a sanitized machine to retired and frees its DHCP leases.
func (r *Reconciler) retire(ctx context.Context, m inventory.Machine) error {
	err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		n, err := tx.DeleteLeasesOf(ctx, m.MACs)
		if err != nil {
			return err
		}
		tokens, err := tx.RevokeAgentTokens(ctx, m.ID)
		if err != nil {
			return err
		}
		// Its DHCP reservation (the "ip" label) goes too: the address is free for another.
		reservation := ""
		if ip, ok := m.Labels["ip"]; ok {
			labels := map[string]string{}
			for k, v := range m.Labels {
				if k != "ip" {
					labels[k] = v
				}
			}
			if _, err := tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{Labels: &labels}); err != nil {
				return err
			}
			reservation = ", DHCP reservation " + ip + " removed"
		}
		_, err = TransitionTx(ctx, tx, m.ID, Retired, "slate", fmt.Sprintf("sanitized and certified; %d DHCP lease(s) freed%s, %d agent token(s) revoked", n, reservation, tokens), "")
		return err
	})
	if err != nil {
		return err
	}
	r.notify(m.ID)
	// Retired is final: a machine left running would idle in the deploy environment, drawing
	// power and answering on the network. Power it off through its BMC; a failure is audited
	// and shown, but the machine is retired all the same (its disks are erased and certified).
	r.powerOffRetired(ctx, m)
	return nil
}

// forceOffer is a BMC that can cut power at once (the redfish client can).
type forceOffer interface {
	ForceOff(ctx context.Context) error
}

// powerOffRetired powers a retired machine off through its BMC, when it has one: ForceOff,
// since its disks are erased and there is nothing to shut down gracefully (a BMC that cannot
// force gets its ordinary power off). Audited as bmc.power-off either way.
func (r *Reconciler) powerOffRetired(ctx context.Context, m inventory.Machine) {
	if !r.hasBMC(m) {
		return
	}
	err := func() error {
		c, err := r.dialMachineBMC(ctx, m)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		if f, ok := c.(forceOffer); ok {
			return f.ForceOff(ctx)
		}
		return c.PowerOff(ctx)
	}()
	outcome, details := "ok", map[string]any{"bmc": m.BMC.Address, "reason": "retired"}
	note := ""
	if err != nil {
		outcome, details["error"] = "failed", err.Error()
		note = "; powering it off through its BMC failed, power it off by hand: " + err.Error()
		r.log.Error("retired machine not powered off through its BMC: power it off by hand", "machine", m.ID, "bmc", m.BMC.Address, "err", err)
	} else {
		r.log.Info("retired machine powered off through its BMC", "machine", m.ID, "bmc", m.BMC.Address)
	}
	r.mu.Lock()
	if note == "" {
		delete(r.retiredNote, m.ID)
	} else {
		r.retiredNote[m.ID] = note
	}
	r.mu.Unlock()
	if aerr := r.store.Update(ctx, func(tx *inventory.Tx) error {
		_, e := tx.Audit(ctx, "slate", "bmc.power-off", m.ID, outcome, details)
		return e
	}); aerr != nil {
		r.log.Error("audit of a retired machine's power-off not saved", "machine", m.ID, "outcome", outcome, "err", aerr)
	}
	r.explain(m.ID, "retired: its certificates are under Certificates"+note)
}
