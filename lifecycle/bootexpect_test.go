package lifecycle

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"slate/inventory"
)

// Decommissioning an installed machine without a BMC queues a reboot of its running system
// into the deploy environment: that network boot is Slate's, so it is expected (and audited);
// a machine with nothing installed gets no expectation (a technician powers it on and says so).
func TestDecommissionRebootArmsTheExpectedBoot(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	l.SetBootWindow(7 * time.Minute)
	installed := newMachine(t, s, "installed", Deployed)
	bare := newMachine(t, s, "bare", Ready)
	br := "hmi@1"
	if err := s.Update(ctx, func(tx *inventory.Tx) error {
		_, err := tx.UpdateMachine(ctx, installed.ID, inventory.MachinePatch{BootedRelease: &br})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []inventory.Machine{installed, bare} {
		if _, err := l.Transition(ctx, m.ID, Decommissioning, "olga", "line rebuilt"); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReconciler(s, l, nil, slog.New(slog.DiscardHandler), 0)
	if err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	e, ok, err := s.BootExpected(ctx, installed.ID)
	if err != nil || !ok || e.Actor != "slate" || !strings.Contains(e.Reason, "reboot task") {
		t.Fatalf("the queued reboot armed no expected boot: %+v %v %v", e, ok, err)
	}
	if got := e.ExpiresAt.Sub(e.ArmedAt); got != 7*time.Minute {
		t.Fatalf("window %s, want the configured 7m", got)
	}
	ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: installed.ID, Action: "boot.expected"})
	if len(ev) != 1 {
		t.Fatalf("expected boot not audited: %+v", ev)
	}
	if _, ok, _ := s.BootExpected(ctx, bare.ID); ok {
		t.Fatal("a machine nobody reboots has an expected boot")
	}
	// A technician announces it; a retired machine cannot be announced.
	if _, err := l.ExpectBoot(ctx, "olga", bare.Name); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := s.BootExpected(ctx, bare.ID); !ok || e.Actor != "olga" {
		t.Fatalf("technician's announcement not recorded: %+v", e)
	}
	retired := newMachine(t, s, "gone", Retired)
	if _, err := l.ExpectBoot(ctx, "olga", retired.ID); err == nil {
		t.Fatal("a retired machine's boot was expected")
	}
}

// fakeResetBMC records the order of arm and reset.
type fakeResetBMC struct {
	firmwareBMC
	order *[]string
}

func (f fakeResetBMC) PowerCycle(context.Context) error {
	*f.order = append(*f.order, "reset")
	return nil
}

// The reset that activates staged firmware arms the expected boot before it resets; if arming
// fails, the machine is not reset (its boot would get no token).
func TestFirmwareResetArmsTheExpectedBootFirst(t *testing.T) {
	var order []string
	ok := expectingReset{fakeResetBMC{order: &order}, func(context.Context) error { order = append(order, "arm"); return nil }}
	if err := ok.PowerCycle(context.Background()); err != nil || strings.Join(order, ",") != "arm,reset" {
		t.Fatalf("order %v, err %v; want arm,reset", order, err)
	}
	order = nil
	bad := expectingReset{fakeResetBMC{order: &order}, func(context.Context) error { return context.DeadlineExceeded }}
	if err := bad.PowerCycle(context.Background()); err == nil || len(order) != 0 {
		t.Fatalf("a failed arm still reset the machine: %v %v", order, err)
	}
}
