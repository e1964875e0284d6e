package lifecycle

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"slate/inventory"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

func TestReconcilerStartsInspectionAndPowersOnThroughTheBMC(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t)})
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint string) (BMC, error) {
		return redfish.Dial(ctx, address, user, password, profile, fingerprint, slog.New(slog.DiscardHandler))
	})
	withBMC, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "with-bmc", BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	bare, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "bare", MACs: []string{"52:54:00:00:00:51"}})
	if err != nil {
		t.Fatal(err)
	}
	disc, _, _ := l.RecordDiscovered(ctx, "52:54:00:00:00:52", "", "", "br0")
	other, _, _ := l.RecordDiscovered(ctx, "02:11:00:00:00:53", "", "", "br0")

	r := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	r.AutoEnrollMACPrefixes = []string{"52:54:00:"}
	for range 3 { // idempotent: repeated passes take no step twice
		if err := r.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{withBMC.ID, bare.ID, disc.ID} {
		m, _ := s.GetMachine(ctx, id)
		ts, _ := s.ListTasks(ctx, id, 10)
		if m.State != Inspecting || len(ts) != 1 || ts[0].Kind != TaskInspect || ts[0].State != inventory.TaskPending {
			t.Fatalf("%s: state %s, tasks %+v; want inspecting with one pending inspect task", m.Name, m.State, ts)
		}
	}
	// The machine outside the auto-enroll rule stays discovered, inspected read-only.
	o, _ := s.GetMachine(ctx, other.ID)
	ts, _ := s.ListTasks(ctx, other.ID, 10)
	if o.State != Discovered || len(ts) != 1 || ts[0].Kind != TaskInspect {
		t.Fatalf("other discovered machine: %s %+v", o.State, ts)
	}
	if boots := bmc.Boots(); len(boots) != 1 || boots[0] != "Pxe" {
		t.Fatalf("BMC boots %v, want one PXE boot", boots)
	}
	// Only the boot Slate started through the BMC is expected (and so gets an agent token);
	// the machines nobody powered on are not.
	if e, ok, err := s.BootExpected(ctx, withBMC.ID); err != nil || !ok || e.Actor != "slate" || !strings.Contains(e.Reason, "BMC") {
		t.Fatalf("the BMC power-on armed no expected boot: %+v %v %v", e, ok, err)
	}
	for _, id := range []string{bare.ID, disc.ID, other.ID} {
		if e, ok, _ := s.BootExpected(ctx, id); ok {
			t.Fatalf("a boot nobody started is expected: %+v", e)
		}
	}
	if why := r.Why(bare.ID); !strings.Contains(why, "technician to power it on") {
		t.Fatalf("why (no BMC): %q", why)
	}
	if why := r.Why(withBMC.ID); !strings.Contains(why, "powered on by Slate") {
		t.Fatalf("why (BMC): %q", why)
	}
	ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: disc.ID})
	if len(ev) < 3 || !strings.Contains(ev[len(ev)-2].Details["reason"].(string), "auto-enroll") {
		t.Fatalf("auto-enroll not audited: %+v", ev)
	}
}

// TestAutoEnrollByDMI: a discovered machine is enrolled once its discovery inspection shows
// fields matching a rule — not before (nothing known yet), and not by a rule it fails.
func TestAutoEnrollByDMI(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	r := NewReconciler(s, l, nil, slog.New(slog.DiscardHandler), 0)
	r.AutoEnrollRules = []AutoEnrollRule{{Vendor: "Dell*", Model: "PowerEdge R6*"}, {SerialPrefix: "PLANT7-"}}
	for _, bad := range []AutoEnrollRule{{}, {Vendor: "[Dell"}} {
		if bad.Validate() == nil {
			t.Errorf("rule %+v accepted", bad)
		}
	}
	dell := newMachine(t, s, "dell", Discovered)
	other := newMachine(t, s, "other", Discovered)
	plant := newMachine(t, s, "plant", Discovered)
	r.ReconcileOnce(ctx)
	for _, m := range []inventory.Machine{dell, other, plant} {
		if got, _ := s.GetMachine(ctx, m.ID); got.State != Discovered {
			t.Fatalf("%s enrolled before anything was known of it: %s", m.Name, got.State)
		}
	}
	set := func(m inventory.Machine, vendor, model, serial string) {
		s.Update(ctx, func(tx *inventory.Tx) error {
			_, err := tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{Vendor: &vendor, Model: &model, Serial: &serial})
			return err
		})
	}
	set(dell, "Dell Inc.", "PowerEdge R650", "ABC123")
	set(other, "Dell Inc.", "PowerEdge T150", "XYZ")
	set(plant, "Supermicro", "SYS-1029", "PLANT7-0042")
	r.ReconcileOnce(ctx)
	for m, want := range map[string]string{dell.ID: Enrolled, other.ID: Discovered, plant.ID: Enrolled} {
		if got, _ := s.GetMachine(ctx, m); got.State != want {
			t.Errorf("%s: %s, want %s", got.Name, got.State, want)
		}
	}
	ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: dell.ID, Action: "machine.transition"})
	if len(ev) == 0 || !strings.Contains(ev[0].Details["reason"].(string), "vendor Dell*, model PowerEdge R6*") {
		t.Fatalf("audit: %+v", ev)
	}
}
