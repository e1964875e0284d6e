package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"slate/inventory"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

// TestChangedBMCCertificateSaysRepin: the reconciler's reading of a BMC that replaced its
// certificate says what happened and how to re-pin, naming the BMC once, without the
// "check that it is reachable and its credentials" that fitted none of it; once re-pinned
// (SetBMC with the presented fingerprint), the BMC is read again. SetBMC without the
// confirmation stores nothing.
func TestChangedBMCCertificateSaysRepin(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On", TLSCert: redfishtest.NewCert(t)})
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
		return redfish.DialSystem(ctx, address, user, password, profile, fingerprint, system, slog.New(slog.DiscardHandler))
	})
	m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "kiln-1", BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	oldFP := bmc.Fingerprint()
	bmc.ReplaceCertificate(redfishtest.NewCert(t))
	newFP := bmc.Fingerprint()
	r := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	// the pass may report the BMC's failure; what the machine page says is checked here
	t.Logf("pass with the changed certificate: %v", r.ReconcileOnce(ctx))
	why := r.Why(m.ID)
	if !strings.Contains(why, "presents a different certificate (fingerprint "+newFP+", pinned "+oldFP+")") ||
		!strings.Contains(why, "slate machine bmc kiln-1 --repin") || strings.Count(why, bmc.URL) != 1 || strings.Contains(why, "credentials") {
		t.Fatalf("why: %s", why)
	}
	if _, err := l.SetBMC(ctx, box, "op", m.ID, BMCChange{}); !errors.Is(err, ErrFingerprintNotConfirmed) {
		t.Fatalf("SetBMC without a confirmation: %v", err)
	}
	if got, _ := s.GetMachine(ctx, m.ID); got.BMC.TLSFingerprint != oldFP {
		t.Fatalf("a refused change re-pinned: %s", got.BMC.TLSFingerprint)
	}
	if _, err := l.SetBMC(ctx, box, "op", m.ID, BMCChange{TLSFingerprint: newFP}); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.running[m.ID] = time.Now().Add(-runningRecheck)
	r.mu.Unlock()
	if err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if why := r.Why(m.ID); why != RunningReason {
		t.Fatalf("after the re-pin, why: %q, want %q", why, RunningReason)
	}
}
