package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/redfish/redfishtest"
)

// A machine that runs a system is adopted as it is: its BMC inventory is read and stored,
// nothing is sent that could change it (no Reset, no boot override PATCH), and it is adopted.
// Before, Slate had no such state: an enrolled machine was inspected (powered into the deploy
// environment) as soon as it was off, and enrollment was the only way in.
func TestAdoptRunningMachineSendsNoReset(t *testing.T) {
	s, l, box := bladeSetup(t)
	ctx := context.Background()
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
	sys := bmc.Get(bmc.SystemURI())
	m, err := l.Enroll(ctx, box, "olga", EnrollRequest{Name: "hmi-7", BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password", Adopt: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.State != Adopted || m.Serial != sys["SerialNumber"] || m.Model != sys["Model"] || m.Vendor != sys["Manufacturer"] ||
		!strings.EqualFold(m.SystemUUID, sys["UUID"].(string)) || len(m.MACs) == 0 || m.BMC == nil || m.BMC.TLSFingerprint == "" {
		t.Fatalf("adopted machine: %+v bmc %+v", m, m.BMC)
	}
	if w := writes(bmc); len(w) != 0 {
		t.Fatalf("adoption sent requests that change the machine: %v", w)
	}
	ev, err := s.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "machine.enroll"})
	if err != nil || len(ev) != 1 || ev[0].Details["state"] != Adopted || ev[0].Details["power_state"] != "On" {
		t.Fatalf("adoption audit: %+v %v", ev, err)
	}
	// the reconciler leaves it alone, pass after pass, without even reading its BMC
	rec := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	n := len(bmc.Requests())
	for i := 0; i < 3; i++ {
		if err := rec.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := bmc.Requests(); len(got) != n {
		t.Fatalf("the reconciler talked to an adopted machine's BMC: %v", got[n:])
	}
	if got, _ := s.GetMachine(ctx, m.ID); got.State != Adopted {
		t.Fatalf("after three passes: %s", got.State)
	}
	if why := rec.Why(m.ID); why != AdoptedReason {
		t.Fatalf("why: %q", why)
	}
	if sys := bmc.Get(bmc.SystemURI()); sys["PowerState"] != "On" {
		t.Fatalf("power changed: %v", sys["PowerState"])
	}
	// its boot order may put the network first: a network boot gets its own disk back
	if p, err := PlanBoot(ctx, s, m.MACs[0]); err != nil || p.Action != BootLocalDisk {
		t.Fatalf("an adopted machine that network-boots must boot its own disk: %+v %v", p, err)
	}
	// the operator's explicit move to inspecting (a maintenance window) is the consent to
	// restart it into the deploy environment
	if _, err := l.Transition(ctx, m.ID, Inspecting, "olga", "maintenance window"); err != nil {
		t.Fatal(err)
	}
	if err := rec.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if ts, _ := s.ListTasks(ctx, m.ID, 10); len(ts) != 1 || ts[0].Kind != string(agentproto.KindInspect) {
		t.Fatalf("after the move to inspecting: tasks %+v", ts)
	}
	if b := bmc.Boots(); len(b) == 0 || b[len(b)-1] != "Pxe" {
		t.Fatalf("the requested inspection did not restart the machine into a network boot: writes %v boots %v", writes(bmc), b)
	}
}

// Adoption asks for nothing that changes power: power_on or force with adopt is refused, as
// is adopting without a BMC to read.
func TestAdoptRefusesPowerOnAndNoBMC(t *testing.T) {
	_, l, box := bladeSetup(t)
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t)})
	for _, r := range []EnrollRequest{
		{BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password", Adopt: true, PowerOn: true},
		{BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password", Adopt: true, Force: true},
		{MACs: []string{"52:54:00:00:00:01"}, Adopt: true},
	} {
		if _, err := l.Enroll(context.Background(), box, "op", r); !errors.Is(err, inventory.ErrInvalid) {
			t.Errorf("%+v: want invalid, got %v", r, err)
		}
	}
	if w := writes(bmc); len(w) != 0 {
		t.Fatalf("refused adoptions wrote to the BMC: %v", w)
	}
}

// A desired release does not move an adopted machine: only the operator's move to
// provisioning installs it (restarting the machine through its BMC then, as asked).
func TestAdoptedMachineInstallsOnlyOnExplicitRequest(t *testing.T) {
	s, l, box := bladeSetup(t)
	ctx := context.Background()
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
	m, err := l.Enroll(ctx, box, "olga", EnrollRequest{Name: "hmi-8", BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password", Adopt: true})
	if err != nil {
		t.Fatal(err)
	}
	// no release yet: moving it to provisioning is refused (there is nothing to install)
	if _, err := l.Transition(ctx, m.ID, Provisioning, "olga", "install"); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("adopted → provisioning without a desired release: %v", err)
	}
	if _, err := l.Transition(ctx, m.ID, Ready, "olga", "skip inspection"); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("adopted → ready: %v", err)
	}
	err = s.Update(ctx, func(tx *inventory.Tx) error {
		rel, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "1", Kind: KindDisk, ImageRef: "plant/hmi",
			ImageDigest: "sha256:" + strings.Repeat("cd", 32), CreatedBy: "olga"})
		if err != nil {
			return err
		}
		return tx.SetReleaseState(ctx, rel.ID, ReleaseApproved, "omar")
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := "hmi@1"
	if _, err := l.Update(ctx, "olga", m.ID, inventory.MachinePatch{DesiredRelease: &ref}); err != nil {
		t.Fatal(err)
	}
	rec := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	rec.Installer = &Installer{Releases: s, Images: fakeImages{}, PublicURL: "http://slate"}
	for i := 0; i < 3; i++ {
		if err := rec.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.GetMachine(ctx, m.ID); got.State != Adopted {
		t.Fatalf("a desired release moved the adopted machine by itself: %s", got.State)
	}
	if w := writes(bmc); len(w) != 0 {
		t.Fatalf("a desired release alone made Slate act on the BMC: %v", w)
	}
	if ts, _ := s.ListTasks(ctx, m.ID, 10); len(ts) != 0 {
		t.Fatalf("tasks queued for an adopted machine: %+v", ts)
	}
	if why := rec.Why(m.ID); !strings.Contains(why, "not installed until you move the machine to provisioning") {
		t.Fatalf("why: %q", why)
	}
	// the explicit request
	if _, err := l.Transition(ctx, m.ID, Provisioning, "olga", "maintenance window 02:00"); err != nil {
		t.Fatal(err)
	}
	if err := rec.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	ts, _ := s.ListTasks(ctx, m.ID, 10)
	if len(ts) != 1 || ts[0].Kind != string(agentproto.KindInstallImage) {
		t.Fatalf("after the move to provisioning: tasks %+v", ts)
	}
	reset := false
	for _, w := range writes(bmc) {
		if strings.HasSuffix(w, "/Actions/ComputerSystem.Reset") {
			reset = true
		}
	}
	if !reset || len(bmc.Boots()) == 0 || bmc.Boots()[len(bmc.Boots())-1] != "Pxe" {
		t.Fatalf("the requested install did not restart the machine into a network boot: writes %v boots %v", writes(bmc), bmc.Boots())
	}
	// a second pass does not queue the install again
	if err := rec.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if ts, _ := s.ListTasks(ctx, m.ID, 10); len(ts) != 1 {
		t.Fatalf("second pass: tasks %+v", ts)
	}
}

// The state table: adopted is entered from discovery, by enrollment, or from enrolled (a
// machine left alone because it runs, adopted as it runs), and left only for
// inspecting, provisioning, decommissioning or failed; a retry returns it to adopted.
func TestAdoptedTransitions(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{Discovered, Adopted, true}, {Adopted, Inspecting, true}, {Adopted, Provisioning, true},
		{Adopted, Decommissioning, true}, {Adopted, Failed, true},
		{Enrolled, Adopted, true}, {Adopted, Ready, false}, {Adopted, Deployed, false}, {Adopted, Enrolled, false}, {Ready, Adopted, false},
	} {
		if got := Allowed(c.from, c.to); got != c.ok {
			t.Errorf("%s → %s allowed %v, want %v", c.from, c.to, got, c.ok)
		}
	}
	s, l, _ := setup(t)
	ctx := context.Background()
	m := newMachine(t, s, "a1", Adopted)
	if _, err := l.Fail(ctx, m.ID, "slate", "BMC gone", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Retry(ctx, m.ID, "olga", "BMC back"); err != nil || got.State != Adopted {
		t.Fatalf("retry of a failed adopted machine: %s %v", got.State, err)
	}
}
