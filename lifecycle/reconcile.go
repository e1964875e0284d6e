package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/redfish"
)

// ReconcileStore is what the reconciler reads and writes (*inventory.Store implements it).
type ReconcileStore interface {
	Store
	CredentialsReader
	ListMachines(ctx context.Context, f inventory.MachineFilter) ([]inventory.Machine, int, error)
	ListTasks(ctx context.Context, machineID string, limit int) ([]inventory.Task, error)
}

// kindOf is a stored task's kind in the agent contract's type (the store keeps it as text).
func kindOf(t inventory.Task) agentproto.TaskKind { return agentproto.TaskKind(t.Kind) }

// kindNames turns kinds into the store's text form.
func kindNames(kinds []agentproto.TaskKind) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	return out
}

// openCounter counts open tasks of a kind across machines (*inventory.Store has it).
type openCounter interface {
	CountOpenTasks(ctx context.Context, kinds ...string) (int, error)
}

// atLimit says whether limit tasks of kind already run (and explains the wait).
func (r *Reconciler) atLimit(ctx context.Context, m inventory.Machine, limit int, what string, kinds ...agentproto.TaskKind) bool {
	c, ok := r.store.(openCounter)
	if limit <= 0 || !ok {
		return false
	}
	n, err := c.CountOpenTasks(ctx, kindNames(kinds)...)
	if err != nil || n < limit {
		return false
	}
	r.explain(m.ID, fmt.Sprintf("waiting: %d %s already running (limit %d)", n, what, limit))
	return true
}

// Reconciler compares each machine's desired and observed state and takes the next step.
// State lives in the store, so a restart continues every machine where it was; a step that
// already happened (a task queued, a transition made) is seen and not repeated.
type Reconciler struct {
	store    ReconcileStore
	machines *Machines
	box      *inventory.SecretBox
	log      *slog.Logger
	interval time.Duration
	wake     chan struct{}
	// BootTimeout is how long a queued task waits for a BMC machine to take it before it is
	// powered into a network boot again (doubling each time), BootRetries how often; then
	// the machine fails. Defaults: DefaultBootTimeout, DefaultBootRetries.
	BootTimeout time.Duration
	BootRetries int
	bootTries   map[string]int // task id → power-ons retried (in memory: a restart retries anew)
	// AutoEnrollRules enroll a discovered machine once its discovery inspection shows DMI
	// fields that match one of them.
	AutoEnrollRules []AutoEnrollRule
	// AutoEnrollMACPrefixes enrolls a discovered machine whose MAC starts with one of these
	// (lower-case, colon form, e.g. "52:54:00:") without a technician.
	AutoEnrollMACPrefixes []string
	// Installer installs desired releases (nil: machines wait in ready).
	Installer *Installer
	// MaxInstalls and MaxWipes bound how many installs and pre-approved wipes run at once,
	// to spare the plant network and the technicians' attention (0: no limit).
	MaxInstalls, MaxWipes int
	// AutoConfirmWipe confirms a runnable wipe plan without a technician (a pre-approved
	// policy); the confirmation is audited as Slate's.
	AutoConfirmWipe bool
	// Woken is called with a machine id when a task was queued for it (the agent API's long
	// poll answers at once).
	Woken func(machineID string)

	mu          sync.Mutex
	configuring map[string]bool      // machines whose BIOS profile is being applied
	why         map[string]string    // machine → what it waits for, for the UI
	poweredA    map[string]time.Time // machine → when Slate last powered it on for a netboot
	running     map[string]time.Time // enrolled machine → when its BMC last reported it running
	netbooted   map[string]bool      // machine → Slate set a network boot override not yet settled
	retiredNote map[string]string    // retired machine → what went wrong powering it off
}

// NewReconciler builds the reconciler; Run drives it.
func NewReconciler(store ReconcileStore, machines *Machines, box *inventory.SecretBox, log *slog.Logger, interval time.Duration) *Reconciler {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &Reconciler{store: store, machines: machines, box: box, log: log, interval: interval,
		wake: make(chan struct{}, 1), why: map[string]string{}, poweredA: map[string]time.Time{}, running: map[string]time.Time{}, netbooted: map[string]bool{},
		retiredNote: map[string]string{}}
}

// MachineChanged wakes the reconciler (it implements Notifier).
func (r *Reconciler) MachineChanged(string) {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Why says what a machine waits for ("" when nothing is known).
func (r *Reconciler) Why(machineID string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.why[machineID]
}

// explain records what a machine waits for. When the explanation changes, its live pages
// are told: the explanation often changes after the transition that refreshed them (a
// machine becomes deployed, then the next pass says what it runs), and a page that was not
// told again kept showing the old one. Changes only in figures ("powered on 12s ago", a
// percentage) do not notify: task progress notifies by itself, and a page need not reload
// every pass for a clock.
func (r *Reconciler) explain(id, msg string) {
	r.mu.Lock()
	old, had := r.why[id]
	r.why[id] = msg
	r.mu.Unlock()
	if (!had || withoutFigures(old) != withoutFigures(msg)) && r.machines != nil && r.machines.notify != nil {
		r.machines.notify.MachineChanged(id)
	}
}

// withoutFigures drops the digits of an explanation, to compare what it says, not its counters.
func withoutFigures(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, s)
}

// Run reconciles until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if err := r.ReconcileOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// ReconcileOnce takes at most one step for every machine.
func (r *Reconciler) ReconcileOnce(ctx context.Context) error {
	var errs []error
	for off := 0; ; off += 500 {
		ms, total, err := r.store.ListMachines(ctx, inventory.MachineFilter{Limit: 500, Offset: off, IncludeRetired: true})
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := r.step(ctx, m); err != nil {
				errs = append(errs, fmt.Errorf("machine %s: %w", m.Name, err))
			}
		}
		if off+len(ms) >= total || len(ms) == 0 {
			break
		}
	}
	return errors.Join(errs...)
}

// following explains an open task of kind (its progress while it runs, what it waits for
// before) and reports whether there is one.
func (r *Reconciler) following(ctx context.Context, ts []inventory.Task, m inventory.Machine, kind agentproto.TaskKind, doing string) bool {
	t, ok := openTask(ts, kind)
	if !ok {
		return false
	}
	if r.overdue(ctx, m, t) {
		return true
	}
	if t.State == inventory.TaskRunning {
		r.settleBootOverride(ctx, m)
		r.explain(m.ID, fmt.Sprintf("%s: %.0f %% %s", doing, t.Progress*100, t.Message))
	} else {
		r.explain(m.ID, r.waitingForBoot(m))
	}
	return true
}

func openTask(ts []inventory.Task, kind agentproto.TaskKind) (inventory.Task, bool) {
	for _, t := range ts {
		if kindOf(t) == kind && (t.State == inventory.TaskPending || t.State == inventory.TaskRunning) {
			return t, true
		}
	}
	return inventory.Task{}, false
}

func (r *Reconciler) step(ctx context.Context, m inventory.Machine) error {
	switch m.State {
	case Enrolled:
		return r.startInspection(ctx, m)
	case Inspecting:
		ts, err := r.store.ListTasks(ctx, m.ID, 20)
		if err != nil {
			return err
		}
		if r.following(ctx, ts, m, agentproto.KindInspect, "inspecting") {
			return nil
		}
		// Moved here by hand, or its task was cancelled: queue the inspection again.
		return r.queue(ctx, m, agentproto.KindInspect, "inspection queued")
	case Ready:
		return r.stepReady(ctx, m)
	case Provisioning, Updating, RollingBack:
		return r.stepProvisioning(ctx, m)
	case Configuring:
		return r.stepConfiguring(ctx, m)
	case Decommissioning:
		return r.stepDecommission(ctx, m)
	case Sanitized:
		return r.retire(ctx, m)
	case Retired:
		r.mu.Lock()
		note := r.retiredNote[m.ID]
		r.mu.Unlock()
		r.explain(m.ID, "retired: its certificates are under Certificates"+note)
	case Discovered:
		if rule := r.autoEnrollRule(m); rule != "" {
			_, err := r.machines.Transition(ctx, m.ID, Enrolled, "slate", "auto-enroll rule: "+rule)
			return err
		}
		ts, err := r.store.ListTasks(ctx, m.ID, 20)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if kindOf(t) == agentproto.KindInspect {
				r.explain(m.ID, "discovered on the network: enroll it to manage it")
				return nil
			}
		}
		// Inspect it (read-only) so the technician sees what it is before accepting it.
		return r.queue(ctx, m, agentproto.KindInspect, "discovered: inspecting it so you can decide to enroll it")
	case Deployed:
		return r.stepDeployed(ctx, m)
	case Adopted:
		r.stepAdopted(m)
	case Failed:
		r.explain(m.ID, "failed while "+m.FailedFrom+": "+m.FailedReason+" — retry when fixed")
	}
	return nil
}

func (r *Reconciler) autoEnrollRule(m inventory.Machine) string {
	for _, p := range r.AutoEnrollMACPrefixes {
		for _, mac := range m.MACs {
			if len(p) > 0 && len(mac) >= len(p) && mac[:len(p)] == p {
				return "MAC prefix " + p
			}
		}
	}
	for _, rule := range r.AutoEnrollRules {
		if rule.Matches(m) {
			return rule.String()
		}
	}
	return ""
}

// AutoEnrollRule matches a discovered machine by the DMI fields its discovery inspection
// found; every field given must match (shell patterns: "PowerEdge R6*"), and at least one
// must be given.
type AutoEnrollRule struct {
	Vendor       string `yaml:"vendor" json:"vendor,omitempty"`
	Model        string `yaml:"model" json:"model,omitempty"`
	SerialPrefix string `yaml:"serial_prefix" json:"serial_prefix,omitempty"`
}

// Validate refuses an empty rule (it would enroll everything) and bad patterns.
func (a AutoEnrollRule) Validate() error {
	if a.Vendor == "" && a.Model == "" && a.SerialPrefix == "" {
		return errors.New("a rule needs vendor, model or serial_prefix (an empty rule would enroll every machine)")
	}
	for _, p := range []string{a.Vendor, a.Model} {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("pattern %q: %v", p, err)
		}
	}
	return nil
}

// Matches says whether the machine's inspected fields satisfy the rule. A machine not yet
// inspected (no vendor, model or serial) matches nothing.
func (a AutoEnrollRule) Matches(m inventory.Machine) bool {
	if a.Validate() != nil {
		return false
	}
	match := func(pattern, v string) bool {
		if pattern == "" {
			return true
		}
		ok, _ := path.Match(pattern, v)
		return ok && v != ""
	}
	return match(a.Vendor, m.Vendor) && match(a.Model, m.Model) &&
		(a.SerialPrefix == "" || (m.Serial != "" && strings.HasPrefix(m.Serial, a.SerialPrefix)))
}

func (a AutoEnrollRule) String() string {
	var parts []string
	for _, f := range [][2]string{{"vendor", a.Vendor}, {"model", a.Model}, {"serial prefix", a.SerialPrefix}} {
		if f[1] != "" {
			parts = append(parts, f[0]+" "+f[1])
		}
	}
	return strings.Join(parts, ", ")
}

func (r *Reconciler) waitingForBoot(m inventory.Machine) string {
	if m.BMC == nil {
		return "waiting for a technician to power it on (network boot): announce it first (\"I will power this machine on\" on its page, or slate machine expect-boot), or it gets no agent token"
	}
	r.mu.Lock()
	at, ok := r.poweredA[m.ID]
	r.mu.Unlock()
	if ok {
		return fmt.Sprintf("powered on by Slate %s ago: waiting for the deploy environment", time.Since(at).Round(time.Second))
	}
	return "waiting for the deploy environment"
}

// startInspection moves an enrolled machine to inspecting with an inspect task in one
// transaction, then powers it on through its BMC for a network boot when it has one. A machine
// whose BMC reports it running is left enrolled and untouched: enrolling is no consent to
// interrupt what runs there (its power state is read again every runningRecheck, as is a
// BMC that could not be read).
func (r *Reconciler) startInspection(ctx context.Context, m inventory.Machine) error {
	if r.hasBMC(m) {
		r.mu.Lock()
		at, seen := r.running[m.ID]
		r.mu.Unlock()
		if seen && time.Since(at) < runningRecheck {
			return nil
		}
		running, err := r.bmcRunning(ctx, m)
		r.mu.Lock()
		if running || err != nil {
			// read again after runningRecheck, not every pass: an unreachable BMC costs
			// timeouts and retries, and would hold up every other machine's pass
			r.running[m.ID] = time.Now()
		} else {
			delete(r.running, m.ID)
		}
		r.mu.Unlock()
		if err != nil {
			r.explain(m.ID, "enrolled; its BMC could not be read, so it is not powered on (read again in 5 minutes): "+err.Error())
			return err
		}
		if running {
			r.explain(m.ID, RunningReason)
			return nil
		}
	}
	err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		cur, err := tx.GetMachine(ctx, m.ID)
		if err != nil {
			return err
		}
		if cur.State != Enrolled { // someone else moved it meanwhile
			return nil
		}
		if _, err := tx.CreateTask(ctx, "slate", m.ID, string(agentproto.KindInspect), nil); err != nil {
			return err
		}
		_, err = TransitionTx(ctx, tx, m.ID, Inspecting, "slate", "inspection queued", "")
		return err
	})
	if err != nil {
		return err
	}
	r.notify(m.ID)
	return r.netboot(ctx, m, false)
}

// settleBootOverride runs once the deploy environment took its task after Slate set a network
// boot: the boot is observed, so an override the BMC kept as Continuous (sushy-tools, several
// BMCs) is set Disabled — else every later reset, the one after the install included, would
// network-boot again. A failure is logged and retried at the next pass.
func (r *Reconciler) settleBootOverride(ctx context.Context, m inventory.Machine) {
	r.mu.Lock()
	pending := r.netbooted[m.ID]
	r.mu.Unlock()
	if !pending || !r.hasBMC(m) {
		return
	}
	err := func() error {
		c, err := r.dialMachineBMC(ctx, m)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		return c.ClearBootOverride(ctx)
	}()
	if err != nil {
		r.log.Warn("boot override not cleared after the network boot; retrying at the next pass", "machine", m.ID, "err", err)
		return
	}
	r.mu.Lock()
	delete(r.netbooted, m.ID)
	r.mu.Unlock()
}

// runningRecheck is how often the power state of an enrolled machine found running is read
// again (a machine switched off later is inspected then).
const runningRecheck = 5 * time.Minute

// bmcRunning reads whether the machine's BMC reports it anything but off.
func (r *Reconciler) bmcRunning(ctx context.Context, m inventory.Machine) (bool, error) {
	c, err := r.dialMachineBMC(ctx, m)
	if err != nil {
		return false, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	ps, err := c.PowerState(ctx)
	if err != nil {
		return false, err
	}
	return ps != redfish.PowerOff, nil
}

func (r *Reconciler) queue(ctx context.Context, m inventory.Machine, kind agentproto.TaskKind, why string) error {
	return r.queueAll(ctx, m, why, kind)
}

// queueAll queues tasks in one transaction; the agent takes them in this order.
func (r *Reconciler) queueAll(ctx context.Context, m inventory.Machine, why string, kinds ...agentproto.TaskKind) error {
	err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		for _, kind := range kinds {
			if _, err := tx.CreateTask(ctx, "slate", m.ID, string(kind), nil); err != nil {
				return err
			}
			if kind == agentproto.KindReboot && !r.hasBMC(m) {
				// The running system reboots into the network boot: that boot is Slate's.
				if _, err := r.machines.ExpectBootTx(ctx, tx, "slate", m.ID, "reboot task queued: the running system reboots into the deploy environment"); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.explain(m.ID, why)
	r.notify(m.ID)
	// a machine Slate is already working on (inspecting, wiping, …): restarting it into the
	// network boot is part of that work
	return r.netboot(ctx, m, true)
}

func (r *Reconciler) notify(id string) {
	if r.Woken != nil {
		r.Woken(id)
	}
	if r.machines.notify != nil {
		r.machines.notify.MachineChanged(id)
	}
}

// bootNext sets, through the machine's BMC, what its next boot starts — its disk after an
// install, the network before an update — without resetting it: the agent reboots by itself
// (the reboot task). Without a BMC nothing is set: the boot order (network first) and Slate's
// iPXE script decide. A BMC failure is audited and logged, not fatal: the script still
// answers.
func (r *Reconciler) bootNext(ctx context.Context, m inventory.Machine, target redfish.BootTarget) {
	if m.BMC == nil || r.machines.dial == nil {
		return
	}
	err := func() error {
		c, err := r.dialMachineBMC(ctx, m)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		if target == redfish.BootPXE {
			// the deploy ISO left in the CD: this machine boots Slate's environment from it
			if t := r.machines.mediaTarget(ctx, c, m.ID); t != "" {
				target = t
			}
		}
		if err := c.SetBootOnce(ctx, redfish.BootOverride{Target: target}); err != nil {
			return err
		}
		if target == redfish.BootDisk {
			// Installed: a later reboot (a power cut) must not start the deploy ISO from a CD
			// first in the boot order, where the agent would wait for work forever.
			if err := r.machines.ejectDeployISO(ctx, c, m.ID); err != nil {
				r.log.Warn("deploy ISO not ejected after the install", "machine", m.ID, "err", err)
			}
		}
		return nil
	}()
	outcome, details := "ok", map[string]any{"target": string(target), "bmc": m.BMC.Address}
	if err != nil {
		outcome, details["error"] = "failed", err.Error()
		r.log.Warn("one-time boot not set", "machine", m.ID, "target", target, "err", err)
	}
	if aerr := r.store.Update(ctx, func(tx *inventory.Tx) error {
		_, e := tx.Audit(ctx, "slate", "bmc.boot-next", m.ID, outcome, details)
		return e
	}); aerr != nil {
		r.log.Error("audit of a one-time boot not saved", "machine", m.ID, "target", target, "err", aerr)
	}
}

// netboot powers a machine on with a one-time PXE boot when it has a BMC; without one, the UI
// says a technician must. force restarts it when it runs (see PowerOnForNetboot).
func (r *Reconciler) netboot(ctx context.Context, m inventory.Machine, force bool) error {
	if m.BMC == nil || r.machines.dial == nil {
		r.explain(m.ID, "waiting for a technician to power it on (network boot): announce it first (\"I will power this machine on\" on its page, or slate machine expect-boot), or it gets no agent token")
		return nil
	}
	r.explain(m.ID, "powering on through the BMC for a network boot")
	if err := r.machines.PowerOnForNetboot(ctx, r.box, r.store, "slate", m.ID, redfish.BootPXE, force); err != nil {
		if errors.Is(err, ErrMachineRunning) {
			r.explain(m.ID, RunningReason)
			return nil
		}
		r.explain(m.ID, "BMC power-on failed: "+err.Error())
		return err
	}
	r.mu.Lock()
	r.poweredA[m.ID] = time.Now()
	r.netbooted[m.ID] = true
	r.mu.Unlock()
	r.explain(m.ID, "powered on by Slate: waiting for the deploy environment")
	return nil
}
