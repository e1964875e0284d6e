// Package lifecycle owns the machine state machine: which moves are allowed (one table, as
// data), and the transition that records a move and its audit event in one transaction.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"slate/inventory"
)

// States of a machine, in journey order.
const (
	Discovered      = "discovered"
	Enrolled        = "enrolled"
	Inspecting      = "inspecting"
	Ready           = "ready"
	Configuring     = "configuring"
	Provisioning    = "provisioning"
	Deployed        = "deployed"
	Updating        = "updating"
	RollingBack     = "rolling-back"
	Decommissioning = "decommissioning"
	Sanitized       = "sanitized"
	Retired         = "retired"
	Failed          = "failed"
	// Adopted is a machine enrolled as it runs: an unmanaged system Slate did not install,
	// whose power Slate never touches on its own. It leaves adopted only by an operator's
	// explicit request (inspect it in a maintenance window, install a release, decommission).
	Adopted = "adopted"
)

// States lists every state in journey order.
var states = []string{Discovered, Enrolled, Inspecting, Ready, Configuring, Provisioning, Deployed,
	Updating, RollingBack, Decommissioning, Sanitized, Retired, Failed, Adopted}

// States returns every state in journey order.
func States() []string { return slices.Clone(states) }

// ValidState reports whether s is a lifecycle state.
func ValidState(s string) bool { return slices.Contains(states, s) }

// transitions is the whole state machine: from → allowed targets. Decommissioning and failed
// are reachable from every state but retired (a retired machine is gone: re-enrol it).
// Leaving failed is handled apart (see Retry): its target depends on where it failed.
func transitions() map[string][]string {
	t := map[string][]string{
		Discovered:      {Enrolled, Adopted},
		Enrolled:        {Inspecting, Adopted}, // adopted: an enrolled machine found running, taken as it runs
		Inspecting:      {Ready},
		Ready:           {Inspecting, Configuring, Provisioning},
		Configuring:     {Provisioning, Ready},
		Provisioning:    {Deployed},
		Deployed:        {Updating, RollingBack, Inspecting},
		Updating:        {Deployed, RollingBack},
		RollingBack:     {Deployed},
		Decommissioning: {Sanitized},
		Sanitized:       {Retired},
		Retired:         {},
		Failed:          {},
		// Every move out of adopted is an operator's (the reconciler makes none): inspecting
		// restarts the running machine into the deploy environment, provisioning (with a
		// desired release set) installs over what runs there.
		Adopted: {Inspecting, Provisioning},
	}
	for from, to := range t {
		if from == Retired {
			continue
		}
		if from != Decommissioning && from != Sanitized {
			to = append(to, Decommissioning)
		}
		if from != Failed {
			to = append(to, Failed)
		}
		t[from] = to
	}
	return t
}

// Table returns the transition table (a copy), for documentation, the API and tests.
func Table() map[string][]string { return transitions() }

// Allowed reports whether from → to is a move the table allows (leaving failed excluded).
func Allowed(from, to string) bool {
	return slices.Contains(transitions()[from], to)
}

// ErrNotAllowed is returned for a move the table refuses.
var ErrNotAllowed = errors.New("transition not allowed")

// TransitionError names both states of a refused move.
type TransitionError struct {
	Machine, From, To string
	Allowed           []string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("machine %s cannot go from %s to %s (allowed from %s: %v)", e.Machine, e.From, e.To, e.From, e.Allowed)
}

func (e *TransitionError) Unwrap() error { return ErrNotAllowed }

// Store is what lifecycle needs of the inventory.
type Store interface {
	Update(ctx context.Context, fn func(*inventory.Tx) error) error
}

// Notifier hears about committed state changes (the live UI, the reconciler).
type Notifier interface {
	MachineChanged(machineID string)
}

// Machines moves machines between states.
type Machines struct {
	store  Store
	notify Notifier
	dial   BMCDialer
	// bootWindow is how long an expected network boot may take to fetch its script.
	bootWindow time.Duration
	// noInstalls says why this Slate cannot install a release ("" when it can): a desired
	// release would never be acted on, so setting one is refused with this reason.
	noInstalls string
	// mediaBase is public_url: virtual media images are served under it (SetMediaBase).
	mediaBase string
	// deployISO says why the deploy ISO cannot be served (nil: it can; SetDeployISOCheck).
	deployISO func() error
}

// ErrCannotInstall is returned for a desired release this Slate cannot install (no public_url).
var ErrCannotInstall = errors.New("this Slate cannot install releases")

// SetInstallsUnavailable makes setting a desired release fail with reason (e.g. no public_url:
// machines could not fetch the image); "" allows it again.
func (l *Machines) SetInstallsUnavailable(reason string) { l.noInstalls = reason }

// New returns the lifecycle service. notify may be nil.
func New(store Store, notify Notifier) *Machines { return &Machines{store: store, notify: notify} }

// Transition moves a machine to state to, recording who and why in the audit log. A move the
// table does not allow is refused with a *TransitionError (and nothing is written).
func (l *Machines) Transition(ctx context.Context, machine, to, actor, reason string) (inventory.Machine, error) {
	return l.move(ctx, machine, to, actor, reason, "", false)
}

// Fail moves a machine to failed, keeping the reason and the task that failed, so a retry
// knows where to go back to.
func (l *Machines) Fail(ctx context.Context, machine, actor, reason, task string) (inventory.Machine, error) {
	return l.move(ctx, machine, Failed, actor, reason, task, false)
}

// Retry is the explicit, audited action that leaves failed: back to the state it failed in.
func (l *Machines) Retry(ctx context.Context, machine, actor, reason string) (inventory.Machine, error) {
	return l.move(ctx, machine, "", actor, reason, "", true)
}

// TransitionTx is Transition inside a caller's transaction (so the caller's other writes and
// the move commit together).
func TransitionTx(ctx context.Context, tx *inventory.Tx, machine, to, actor, reason, task string) (inventory.Machine, error) {
	m, err := tx.GetMachine(ctx, machine)
	if err != nil {
		return m, err
	}
	return transitionTx(ctx, tx, m, to, actor, reason, task, false)
}

func (l *Machines) move(ctx context.Context, machine, to, actor, reason, task string, retry bool) (inventory.Machine, error) {
	if to != "" && !ValidState(to) {
		return inventory.Machine{}, inventory.Errorf(inventory.ErrInvalid, "%q is not a lifecycle state (states: %v)", to, states)
	}
	if to == Sanitized {
		// Only a verified, certified wipe (TaskHook) moves a machine there: a person saying so
		// is not evidence that its drives were erased.
		return inventory.Machine{}, inventory.Errorf(inventory.ErrConflict, "a machine becomes sanitized only when its wipe is verified and certified, not by hand")
	}
	var out inventory.Machine
	var refused *TransitionError
	err := l.store.Update(ctx, func(tx *inventory.Tx) error {
		m, err := tx.GetMachine(ctx, machine)
		if err != nil {
			return err
		}
		out, err = transitionTx(ctx, tx, m, to, actor, reason, task, retry)
		if errors.As(err, &refused) {
			return err
		}
		return err
	})
	if refused != nil {
		// The refusal itself is audited, in its own transaction (the move's was rolled back).
		if aerr := l.store.Update(ctx, func(tx *inventory.Tx) error {
			_, e := tx.Audit(ctx, actor, "machine.transition", refused.Machine, "refused",
				map[string]any{"from": refused.From, "to": refused.To, "reason": reason})
			return e
		}); aerr != nil {
			// The refusal stands; that its record was lost must not be silent.
			err = errors.Join(err, fmt.Errorf("the refusal was not audited: %w", aerr))
		}
	}
	if err == nil && l.notify != nil {
		l.notify.MachineChanged(out.ID)
	}
	return out, err
}

func transitionTx(ctx context.Context, tx *inventory.Tx, m inventory.Machine, to, actor, reason, task string, retry bool) (inventory.Machine, error) {
	from := m.State
	if retry {
		if from != Failed {
			return m, &TransitionError{Machine: m.ID, From: from, To: "(retry)", Allowed: transitions()[from]}
		}
		to = m.FailedFrom
		if to == "" || to == Failed {
			to = Enrolled
		}
	} else if from == Failed {
		// Leaving failed other than by Retry: only to decommission, or back to enrolled.
		if to != Decommissioning && to != Enrolled && to != m.FailedFrom {
			return m, &TransitionError{Machine: m.ID, From: from, To: to, Allowed: []string{m.FailedFrom, Enrolled, Decommissioning}}
		}
	} else if !Allowed(from, to) {
		return m, &TransitionError{Machine: m.ID, From: from, To: to, Allowed: transitions()[from]}
	} else if from == Adopted && to == Provisioning && m.DesiredRelease == "" {
		// provisioning an adopted machine installs its desired release over what runs there:
		// without one there is nothing to install
		return m, inventory.Errorf(inventory.ErrInvalid, "machine %s is adopted and has no desired release: set desired_release first, then move it to provisioning to install it (this restarts the machine)", m.Name)
	}
	var failedReason, failedTask, failedFrom string
	if to == Failed {
		failedReason, failedTask, failedFrom = reason, task, from
	}
	if err := tx.SetMachineState(ctx, m.ID, to, failedReason, failedTask, failedFrom); err != nil {
		return m, err
	}
	action := "machine.transition"
	if retry {
		action = "machine.retry"
	}
	details := map[string]any{"from": from, "to": to, "reason": reason}
	if task != "" {
		details["task"] = task
	}
	if _, err := tx.Audit(ctx, actor, action, m.ID, "ok", details); err != nil {
		return m, err
	}
	return tx.GetMachine(ctx, m.ID)
}
