package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"slate/inventory"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

// sanitizedWithBMC is a machine whose wipe was verified (sanitized), with a BMC at url.
func sanitizedWithBMC(t *testing.T, s *inventory.Store, box *inventory.SecretBox, name, url string) inventory.Machine {
	t.Helper()
	m := newMachine(t, s, name, Sanitized)
	if err := s.Update(context.Background(), func(tx *inventory.Tx) error {
		return tx.SetBMC(context.Background(), box, m.ID, inventory.BMCInfo{Address: url, Username: "admin", VendorProfile: "generic"}, "password")
	}); err != nil {
		t.Fatal(err)
	}
	m, _ = s.GetMachine(context.Background(), m.ID)
	return m
}

// resets lists the ResetTypes the BMC was sent.
func resets(bmc *redfishtest.Server) []string {
	var out []string
	for _, r := range bmc.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "ComputerSystem.Reset") {
			out = append(out, between(string(r.Body), `"ResetType":"`, `"`))
		}
	}
	return out
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return v
}

// TestRetirePowersTheMachineOffThroughItsBMC: a retired machine left running idles in the
// deploy environment; retiring it sends ForceOff to its BMC (audited). A BMC that refuses
// does not stop the retirement: the failure is audited, logged and explained.
func TestRetirePowersTheMachineOffThroughItsBMC(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
		return redfish.DialSystem(ctx, address, user, password, profile, fingerprint, system, slog.New(slog.DiscardHandler))
	})
	good := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
	bad := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
	bad.Inject(redfishtest.Fault{Method: http.MethodPost, Path: bad.SystemURI() + "/Actions", Kind: redfishtest.FaultStatus, Status: http.StatusInternalServerError})
	ok := sanitizedWithBMC(t, s, box, "gone-ok", good.URL)
	refused := sanitizedWithBMC(t, s, box, "gone-refused", bad.URL)
	bare := newMachine(t, s, "gone-bare", Sanitized)

	r := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	for range 2 { // a second pass powers nothing off again
		if err := r.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []inventory.Machine{ok, refused, bare} {
		if got, _ := s.GetMachine(ctx, m.ID); got.State != Retired {
			t.Fatalf("%s: state %s, want retired (a BMC failure must not stop retirement)", m.Name, got.State)
		}
	}
	if got := resets(good); len(got) != 1 || got[0] != "ForceOff" {
		t.Fatalf("the BMC of the retired machine was sent %v, want one ForceOff", got)
	}
	if ps := good.Get(good.SystemURI())["PowerState"]; ps != "Off" {
		t.Fatalf("retired machine's power: %v, want Off", ps)
	}
	ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: ok.ID, Action: "bmc.power-off"})
	if len(ev) != 1 || ev[0].Outcome != "ok" || ev[0].Actor != "slate" {
		t.Fatalf("power-off not audited: %+v", ev)
	}
	if why := r.Why(ok.ID); strings.Contains(why, "failed") {
		t.Fatalf("why (powered off): %q", why)
	}

	// The refusing BMC: still sent the power-off, still retired, the failure audited and explained.
	if got := resets(bad); len(got) == 0 || got[0] != "ForceOff" {
		t.Fatalf("the refusing BMC was sent %v, want a ForceOff", got)
	}
	ev, _ = s.ListAudit(ctx, inventory.AuditFilter{Subject: refused.ID, Action: "bmc.power-off"})
	if len(ev) != 1 || ev[0].Outcome != "failed" || ev[0].Details["error"] == nil {
		t.Fatalf("failed power-off not audited as failed: %+v", ev)
	}
	if why := r.Why(refused.ID); !strings.Contains(why, "powering it off through its BMC failed") || !strings.Contains(why, "by hand") {
		t.Fatalf("why (power-off failed): %q", why)
	}
	// No BMC: nothing to power off, nothing audited.
	if ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: bare.ID, Action: "bmc.power-off"}); len(ev) != 0 {
		t.Fatalf("a machine without a BMC has power-off events: %+v", ev)
	}
}

// TestNoReleaseForADecommissionedMachine: its disks are (being) erased: setting a desired
// release is refused (it was accepted, and the UI showed it as the machine's next release);
// a ready machine still takes one.
func TestNoReleaseForADecommissionedMachine(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *inventory.Tx) error {
		_, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "7", Kind: "disk", ImageRef: "plant/hmi", CreatedBy: "x"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ref := "hmi@7"
	for _, st := range []string{Decommissioning, Sanitized, Retired} {
		m := newMachine(t, s, "gone-"+st, st)
		_, err := l.Update(ctx, "op", m.ID, inventory.MachinePatch{DesiredRelease: &ref})
		if !errors.Is(err, inventory.ErrConflict) || !strings.Contains(err.Error(), "decommissioned") {
			t.Fatalf("%s machine: desired release set (%v)", st, err)
		}
		if got, _ := s.GetMachine(ctx, m.ID); got.DesiredRelease != "" {
			t.Fatalf("%s machine wants %q", st, got.DesiredRelease)
		}
	}
	ready := newMachine(t, s, "ready-1", Ready)
	if m, err := l.Update(ctx, "op", ready.ID, inventory.MachinePatch{DesiredRelease: &ref}); err != nil || m.DesiredRelease != ref {
		t.Fatalf("ready machine: %+v %v", m.DesiredRelease, err)
	}
}
