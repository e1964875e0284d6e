package lifecycle

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

// clock is a store clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestOverdueTasks: a task whose agent vanished mid-run fails the machine after its run
// limit; a task no agent takes makes Slate power a BMC machine into a network boot again,
// with a doubling wait, and after the last try the machine fails with what to check.
func TestOverdueTasks(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)}
	s, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "db"), inventory.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := New(s, &countingNotifier{})
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
		return redfish.Dial(ctx, address, user, password, profile, fingerprint, slog.New(slog.DiscardHandler))
	})
	r := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)

	t.Run("running task whose agent vanished", func(t *testing.T) {
		m := newMachine(t, s, "gone", Inspecting)
		task, _ := s.CreateTask(ctx, "slate", m.ID, string(agentproto.KindInspect), nil)
		if _, ok, _ := s.ClaimNextTask(ctx, m.ID, 3); !ok {
			t.Fatal("not claimed")
		}
		c.add(29 * time.Minute)
		r.ReconcileOnce(ctx)
		if got, _ := s.GetMachine(ctx, m.ID); got.State != Inspecting {
			t.Fatalf("failed before the limit: %s", got.State)
		}
		c.add(2 * time.Minute)
		r.ReconcileOnce(ctx)
		got, _ := s.GetMachine(ctx, m.ID)
		tk, _ := s.GetTask(ctx, task.ID)
		if got.State != Failed || !strings.Contains(got.FailedReason, "no result after 31m") || tk.State != inventory.TaskFailed {
			t.Fatalf("after the limit: machine %s %q, task %s", got.State, got.FailedReason, tk.State)
		}
	})

	t.Run("task nobody takes on a BMC machine", func(t *testing.T) {
		bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "Off"})
		m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "silent", MACs: []string{"52:54:00:00:de:01"},
			BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
		if err != nil {
			t.Fatal(err)
		}
		r.ReconcileOnce(ctx) // enrolled → inspecting: inspect task queued, powered on for PXE
		if got, _ := s.GetMachine(ctx, m.ID); got.State != Inspecting {
			t.Fatalf("state %s", got.State)
		}
		powerOns := func() int {
			ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "bmc.boot-once", Limit: 50})
			return len(ev)
		}
		if n := powerOns(); n != 1 {
			t.Fatalf("power-ons after queueing: %d", n)
		}
		// 15 min, then 30 more, then 60 more: one power-on each; nothing in between.
		for i, wait := range []time.Duration{15 * time.Minute, 30 * time.Minute, 60 * time.Minute} {
			c.add(wait - time.Minute)
			r.ReconcileOnce(ctx)
			if n := powerOns(); n != 1+i {
				t.Fatalf("try %d: %d power-ons before the wait ended", i+1, n)
			}
			c.add(time.Minute)
			r.ReconcileOnce(ctx)
			if n := powerOns(); n != 2+i {
				t.Fatalf("try %d: %d power-ons, want %d", i+1, n, 2+i)
			}
		}
		c.add(2 * time.Hour)
		r.ReconcileOnce(ctx)
		got, _ := s.GetMachine(ctx, m.ID)
		if got.State != Failed || !strings.Contains(got.FailedReason, "did not start its deploy environment") ||
			!strings.Contains(got.FailedReason, "after 4 power-ons") {
			t.Fatalf("after the last try: %s %q", got.State, got.FailedReason)
		}
		ts, _ := s.ListTasks(ctx, m.ID, 10)
		if ts[0].State != inventory.TaskCancelled {
			t.Fatalf("the untaken task is %s", ts[0].State)
		}
	})
}
