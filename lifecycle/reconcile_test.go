package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

func TestReconcilerStartsInspectionAndPowersOnThroughTheBMC(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	// off: powering it on for inspection is what enrolling it means
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "Off"})
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
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
		if m.State != Inspecting || len(ts) != 1 || ts[0].Kind != string(agentproto.KindInspect) || ts[0].State != inventory.TaskPending {
			t.Fatalf("%s: state %s, tasks %+v; want inspecting with one pending inspect task", m.Name, m.State, ts)
		}
	}
	// The machine outside the auto-enroll rule stays discovered, inspected read-only.
	o, _ := s.GetMachine(ctx, other.ID)
	ts, _ := s.ListTasks(ctx, other.ID, 10)
	if o.State != Discovered || len(ts) != 1 || ts[0].Kind != string(agentproto.KindInspect) {
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

// TestEnrolledRunningMachineIsLeftAlone: a machine enrolled by BMC whose BMC reports it
// running is not reset and gets no boot override (seen before: a ForceRestart about a second
// after enrollment, against HPE iLO 5, Lenovo XCC, Gigabyte and Intel); it stays enrolled and
// says why. Once it is off, it is inspected as before.
func TestEnrolledRunningMachineIsLeftAlone(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
		return redfish.Dial(ctx, address, user, password, profile, fingerprint, slog.New(slog.DiscardHandler))
	})
	m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "running", BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	for range 3 {
		if err := r.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, rq := range bmc.Requests() {
		if rq.Method == "PATCH" || (rq.Method == "POST" && strings.Contains(rq.Path, "Reset")) {
			t.Errorf("a running machine got %s %s %s", rq.Method, rq.Path, rq.Body)
		}
	}
	if b := bmc.Boots(); len(b) != 0 {
		t.Fatalf("a running machine was booted: %v", b)
	}
	got, _ := s.GetMachine(ctx, m.ID)
	ts, _ := s.ListTasks(ctx, m.ID, 10)
	if got.State != Enrolled || len(ts) != 0 {
		t.Fatalf("running machine: state %s, tasks %+v; want enrolled, none", got.State, ts)
	}
	if why := r.Why(m.ID); why != RunningReason {
		t.Fatalf("why: %q, want %q", why, RunningReason)
	}
	// switched off later: inspected as any machine that is off
	bmc.Set(bmc.SystemURI(), map[string]any{"PowerState": "Off"})
	r.mu.Lock()
	r.running[m.ID] = time.Now().Add(-runningRecheck)
	r.mu.Unlock()
	if err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetMachine(ctx, m.ID); got.State != Inspecting {
		t.Fatalf("after it was switched off: %s", got.State)
	}
	if b := bmc.Boots(); len(b) != 1 || b[0] != "Pxe" {
		t.Fatalf("boots after it was switched off: %v", b)
	}
}

// TestEnrollPowerOnLeavesARunningMachineAlone: --power-on without --force enrolls a running
// machine but neither sets an override nor resets it, and says so; with --force (the
// operator's explicit request) it is restarted into the network boot.
func TestEnrollPowerOnLeavesARunningMachineAlone(t *testing.T) {
	for _, force := range []bool{false, true} {
		_, l, _ := setup(t)
		ctx := context.Background()
		box, _ := inventory.NewSecretBox(make([]byte, 32))
		l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
			return redfish.Dial(ctx, address, user, password, profile, fingerprint, slog.New(slog.DiscardHandler))
		})
		bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
		m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "running", BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password",
			PowerOn: true, Force: force})
		if force {
			if err != nil {
				t.Fatalf("enroll --power-on --force: %v", err)
			}
			if b := bmc.Boots(); len(b) != 1 || b[0] != "Pxe" {
				t.Fatalf("enroll --power-on --force: boots %v", b)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrMachineRunning) || m.ID == "" || !strings.Contains(err.Error(), RunningReason) {
			t.Fatalf("enroll --power-on of a running machine: %+v, %v", m, err)
		}
		for _, rq := range bmc.Requests() {
			if rq.Method == "PATCH" || (rq.Method == "POST" && strings.Contains(rq.Path, "Reset")) {
				t.Errorf("enroll --power-on of a running machine sent %s %s %s", rq.Method, rq.Path, rq.Body)
			}
		}
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

// TestContinuousOverrideClearedAfterTheBoot: on a BMC that keeps a one-time override as
// Continuous, the network boot for inspection is accepted (it failed "not applied" before),
// and once the deploy environment took its task the override is set Disabled, so the machine
// does not network-boot on every later reset.
func TestContinuousOverrideClearedAfterTheBoot(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "Off", BootEcho: redfishtest.EchoContinuous})
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
		return redfish.Dial(ctx, address, user, password, profile, fingerprint, slog.New(slog.DiscardHandler))
	})
	m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "sushy", BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	if err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetMachine(ctx, m.ID); got.State != Inspecting {
		t.Fatalf("state %s (why %q)", got.State, r.Why(m.ID))
	}
	boot := func() any {
		b, _ := bmc.Get(bmc.SystemURI())["Boot"].(map[string]any)
		return b["BootSourceOverrideEnabled"]
	}
	if boot() != "Continuous" {
		t.Fatalf("override %v before the boot was observed", boot())
	}
	if _, ok, err := s.ClaimNextTask(ctx, m.ID, 3); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if boot() != "Disabled" {
		t.Fatalf("override %v after the deploy environment took its task, want Disabled", boot())
	}
}

// TestEnrollByBMCErrorsCarryOneHint: enrollment errors name the BMC's refusal with the one hint
// that fits — before, "(check the address and credentials)" was added to every failure, a 404
// included, after the BMC error's own hint. A refused password is ErrBMCCredentials (422 in the
// API), not ErrBMC (502).
func TestEnrollByBMCErrorsCarryOneHint(t *testing.T) {
	_, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
		return redfish.Dial(ctx, address, user, password, profile, fingerprint, slog.New(slog.DiscardHandler))
	})
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t)})
	_, err := l.Enroll(ctx, box, "op", EnrollRequest{BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "wrong"})
	if !errors.Is(err, ErrBMCCredentials) || errors.Is(err, ErrBMC) || strings.Count(err.Error(), "(check") != 1 ||
		strings.Count(err.Error(), bmc.URL) != 1 {
		t.Fatalf("wrong password: %v", err)
	}
	bmc.Inject(redfishtest.Fault{Method: "GET", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultStatus, Status: 404})
	_, err = l.Enroll(ctx, box, "op", EnrollRequest{BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
	if !errors.Is(err, ErrBMC) || strings.Contains(err.Error(), "credentials") || strings.Count(err.Error(), "(") != 1 {
		t.Fatalf("404: %v", err)
	}
}
