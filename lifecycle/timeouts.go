package lifecycle

import (
	"context"
	"fmt"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
)

// Bounds: a task nobody takes, or one that never ends, must not hold a machine forever.
const (
	// DefaultBootTimeout is how long a queued task waits for the machine's agent to take it
	// before Slate powers the machine into a network boot again (BMC machines).
	DefaultBootTimeout = 15 * time.Minute
	// DefaultBootRetries is how many such power-ons are tried (the wait doubles each time)
	// before the machine is failed.
	DefaultBootRetries = 3
)

// runLimit is how long a task may run once taken before it is failed: its agent vanished (a
// machine powered off mid-task, a crashed deploy environment). Wipes of large spinning drives
// take hours, so they get days.
func runLimit(kind agentproto.TaskKind) time.Duration {
	switch kind {
	case agentproto.KindWipe:
		return 72 * time.Hour
	case agentproto.KindInstallImage, agentproto.KindInstallBootc:
		return 2 * time.Hour
	default:
		return 30 * time.Minute
	}
}

// now is the store's clock when it has one (tests move it), else the wall clock: task times
// come from the store.
func (r *Reconciler) now() time.Time {
	if c, ok := r.store.(interface{ Now() time.Time }); ok {
		return c.Now()
	}
	return time.Now()
}

// taskFinisher fails a task with the lifecycle's hook (*inventory.Store has it).
type taskFinisher interface {
	FinishTask(ctx context.Context, machineID, taskID string, o inventory.TaskOutcome, hook inventory.FinishHook) (inventory.Task, bool, error)
	CancelTask(ctx context.Context, actor, taskID, reason string) (inventory.Task, error)
}

// overdue enforces the bounds on one open task and says whether it did something (the task
// ended, the machine failed, or it was powered on again). Called on every pass.
func (r *Reconciler) overdue(ctx context.Context, m inventory.Machine, t inventory.Task) bool {
	f, ok := r.store.(taskFinisher)
	if !ok {
		return false
	}
	now := r.now()
	switch t.State {
	case inventory.TaskRunning:
		limit := runLimit(kindOf(t))
		if t.StartedAt.IsZero() || now.Sub(t.StartedAt) < limit {
			return false
		}
		msg := fmt.Sprintf("no result after %s (limit %s): the agent stopped answering (machine off or crashed?)", now.Sub(t.StartedAt).Round(time.Second), limit)
		_, _, err := f.FinishTask(ctx, m.ID, t.ID, inventory.TaskOutcome{State: inventory.TaskFailed, Message: msg},
			func(ctx context.Context, tx *inventory.Tx, task inventory.Task) error {
				cur, err := tx.GetMachine(ctx, m.ID)
				if err != nil {
					return err
				}
				if err := (TaskHook{}).TaskFinished(ctx, tx, cur, task); err != nil {
					return err
				}
				// Tasks without a lifecycle meaning of their own still stop the machine.
				if cur2, _ := tx.GetMachine(ctx, m.ID); cur2.State != Failed {
					_, err = TransitionTx(ctx, tx, m.ID, Failed, "slate", t.Kind+" task "+t.ID+": "+msg, t.ID)
				}
				return err
			})
		if err != nil {
			r.log.Warn("failing an overdue task", "machine", m.ID, "task", t.ID, "err", err)
			return false
		}
		r.log.Warn("task overdue: failed", "machine", m.ID, "task", t.ID, "kind", t.Kind)
		r.notify(m.ID)
		return true
	case inventory.TaskPending:
		if !r.hasBMC(m) {
			return false // a technician powers it on; the page says so
		}
		base, retries := r.BootTimeout, r.BootRetries
		if base <= 0 {
			base = DefaultBootTimeout
		}
		if retries <= 0 {
			retries = DefaultBootRetries
		}
		r.mu.Lock()
		if r.bootTries == nil {
			r.bootTries = map[string]int{}
		}
		tries := r.bootTries[t.ID]
		r.mu.Unlock()
		// The wait doubles with every try: 15, 30, 60 min by default (back-off).
		wait := base
		var total time.Duration
		for i := 0; i <= tries; i++ {
			total += wait
			wait *= 2
		}
		if now.Sub(t.CreatedAt) < total {
			return false
		}
		if tries >= retries {
			msg := fmt.Sprintf("the machine did not start its deploy environment to take the %s task in %s, after %d power-ons through its BMC: check its boot order, network cabling and the BMC", t.Kind, now.Sub(t.CreatedAt).Round(time.Minute), tries+1)
			if _, err := f.CancelTask(ctx, "slate", t.ID, msg); err != nil {
				r.log.Warn("cancel an untaken task", "machine", m.ID, "task", t.ID, "err", err)
				return false
			}
			r.machines.Fail(ctx, m.ID, "slate", msg, t.ID)
			r.notify(m.ID)
			return true
		}
		r.mu.Lock()
		r.bootTries[t.ID] = tries + 1
		r.mu.Unlock()
		r.log.Warn("task not taken: powering the machine into a network boot again", "machine", m.ID, "task", t.ID, "try", tries+1)
		// a boot Slate started for this task is Slate's to restart; a machine that runs for
		// another reason is not interrupted
		r.mu.Lock()
		_, ours := r.poweredA[m.ID]
		r.mu.Unlock()
		if err := r.netboot(ctx, m, ours); err != nil {
			r.log.Warn("power-on retry failed", "machine", m.ID, "err", err)
		}
		return true
	}
	return false
}
