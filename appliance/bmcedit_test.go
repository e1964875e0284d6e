package appliance_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"slate/inventory"
	"slate/lifecycle"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

// TestRepinChangedBMCCertificate: a BMC replaces its certificate (firmware update). The
// machine's BMC calls then fail with the re-pin hint (not "check that it is reachable and its
// credentials"), naming the BMC once; the probe shows the old and new fingerprints; a PUT
// without the confirmation or with another fingerprint is refused and stores nothing; with
// the presented fingerprint it is pinned, audited (never the password), and calls work again.
// The same PUT changes the address and credentials; a wrong password is refused with 422.
func TestRepinChangedBMCCertificate(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "Off", TLSCert: redfishtest.NewCert(t)})
	st, b := h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"name": "press-7", "bmc_address": bmc.URL,
		"bmc_username": "admin", "bmc_password": "password"})
	if st != 201 {
		t.Fatalf("enroll: %d %s", st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)
	oldFP := bmc.Fingerprint()
	if m.BMC == nil || m.BMC.TLSFingerprint != oldFP {
		t.Fatalf("pinned %+v, want %s", m.BMC, oldFP)
	}
	// The PATCH of machine fields names where a BMC is changed.
	st, b = h.do("PATCH", "/api/v1/machines/"+m.ID, h.tok["operator"], map[string]any{"bmc": map[string]string{"address": bmc.URL}})
	if st != 400 || !strings.Contains(string(b), "PUT /api/v1/machines/"+m.ID+"/bmc") {
		t.Fatalf("PATCH bmc: %d %s", st, b)
	}

	bmc.ReplaceCertificate(redfishtest.NewCert(t))
	newFP := bmc.Fingerprint()
	if newFP == oldFP {
		t.Fatal("the test BMC kept its certificate")
	}
	err := h.a.Lifecycle.PowerOnForNetboot(ctx, h.a.Secrets, h.a.Store, "test", m.ID, redfish.BootPXE, false)
	if err == nil {
		t.Fatal("a BMC presenting another certificate was trusted")
	}
	msg := err.Error()
	t.Logf("the machine's BMC call: %s", msg)
	if !strings.Contains(msg, "presents a different certificate (fingerprint "+newFP+", pinned "+oldFP+")") ||
		!strings.Contains(msg, "slate machine bmc "+m.ID+" --repin") || strings.Count(msg, bmc.URL) != 1 ||
		strings.Contains(msg, "credentials") || !errors.Is(err, redfish.ErrFingerprintChanged) {
		t.Fatalf("the changed certificate's error: %s", msg)
	}

	// The machine failed on it (as the reconciler fails a machine whose BMC step failed).
	if _, err := h.a.Lifecycle.Fail(ctx, m.ID, "slate", msg, ""); err != nil {
		t.Fatal(err)
	}

	st, b = h.do("POST", "/api/v1/machines/"+m.ID+"/bmc/probe", h.tok["operator"], nil)
	var p lifecycle.BMCProbe
	json.Unmarshal(b, &p)
	if st != 200 || p.Pinned != oldFP || p.Presented != newFP || !p.Changed {
		t.Fatalf("probe: %d %s", st, b)
	}
	// An auditor may look, not change.
	if st, _ := h.do("POST", "/api/v1/machines/"+m.ID+"/bmc/probe", h.tok["auditor"], nil); st != 403 {
		t.Fatalf("auditor probe: %d", st)
	}
	_, audits := h.counts()
	for _, body := range []map[string]any{
		{},                         // no confirmation: the old pin holds
		{"tls_fingerprint": oldFP}, // the old certificate
		{"tls_fingerprint": "sha256:" + strings.Repeat("ab", 32)}, // a certificate nobody presents
	} {
		st, b = h.do("PUT", "/api/v1/machines/"+m.ID+"/bmc", h.tok["operator"], body)
		if st != 409 || !strings.Contains(string(b), newFP) {
			t.Fatalf("PUT %v: %d %s", body, st, b)
		}
	}
	if got, _ := h.a.Store.GetMachine(ctx, m.ID); got.BMC.TLSFingerprint != oldFP {
		t.Fatalf("a refused PUT changed the pin to %s", got.BMC.TLSFingerprint)
	}
	if _, a := h.counts(); a != audits {
		t.Fatalf("refused PUTs wrote %d audit events", a-audits)
	}
	// A wrong password with the right fingerprint: the BMC refuses it, nothing stored.
	st, b = h.do("PUT", "/api/v1/machines/"+m.ID+"/bmc", h.tok["operator"], map[string]any{"tls_fingerprint": newFP, "password": "wrong"})
	if st != 422 || !strings.Contains(string(b), "refused the credentials") {
		t.Fatalf("PUT with a wrong password: %d %s", st, b)
	}
	// Confirmed, in the colon-separated upper-case form a BMC's web page shows.
	colon := strings.ToUpper(strings.TrimPrefix(newFP, "sha256:"))
	var parts []string
	for i := 0; i < len(colon); i += 2 {
		parts = append(parts, colon[i:i+2])
	}
	st, b = h.do("PUT", "/api/v1/machines/"+m.ID+"/bmc", h.tok["operator"], map[string]any{"tls_fingerprint": strings.Join(parts, ":"), "password": "password"})
	if st != 200 {
		t.Fatalf("confirmed re-pin: %d %s", st, b)
	}
	json.Unmarshal(b, &m)
	if m.BMC == nil || m.BMC.TLSFingerprint != newFP || m.BMC.Address != bmc.URL {
		t.Fatalf("after re-pin: %+v", m.BMC)
	}
	ev, _ := h.a.Store.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "machine.bmc"})
	if len(ev) != 1 || ev[0].Actor != "olga" || ev[0].Details["old_fingerprint"] != oldFP || ev[0].Details["fingerprint"] != newFP ||
		ev[0].Details["old_address"] != bmc.URL || ev[0].Details["repinned"] != true {
		t.Fatalf("audit: %+v", ev)
	}
	for k, v := range ev[0].Details {
		if k == "password" || v == "password" || v == "wrong" {
			t.Fatalf("the audit event carries a password: %v", ev[0].Details)
		}
	}
	// Re-pinned, the failed machine is retried, and its BMC works again.
	st, b = h.do("POST", "/api/v1/machines/"+m.ID+"/transition", h.tok["operator"], map[string]string{"to": "retry", "reason": "BMC re-pinned"})
	if st != 200 || !strings.Contains(string(b), `"state":"enrolled"`) {
		t.Fatalf("retry after the re-pin: %d %s", st, b)
	}
	if err := h.a.Lifecycle.PowerOnForNetboot(ctx, h.a.Secrets, h.a.Store, "test", m.ID, redfish.BootPXE, false); err != nil {
		t.Fatalf("power-on after the re-pin: %v", err)
	}
	if boots := bmc.Boots(); len(boots) == 0 || boots[len(boots)-1] != "Pxe" {
		t.Fatalf("boots after the re-pin: %v", boots)
	}

	// Another BMC address (the board was swapped): probe shows its certificate against the
	// pinned one; the PUT needs it confirmed like any other.
	other := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "Off", Username: "root", Password: "calvin-02"})
	change := map[string]any{"address": other.URL, "username": "root", "password": "calvin-02", "vendor_profile": "dell"}
	st, b = h.do("POST", "/api/v1/machines/"+m.ID+"/bmc/probe", h.tok["operator"], change)
	json.Unmarshal(b, &p)
	if st != 200 || p.Address != other.URL || p.Presented != other.Fingerprint() || p.Pinned != newFP || !p.Changed {
		t.Fatalf("probe of another BMC: %d %s", st, b)
	}
	st, b = h.do("PUT", "/api/v1/machines/"+m.ID+"/bmc", h.tok["operator"], change)
	if st != 409 {
		t.Fatalf("another BMC without confirmation: %d %s", st, b)
	}
	change["tls_fingerprint"] = other.Fingerprint()
	st, b = h.do("PUT", "/api/v1/machines/"+m.ID+"/bmc", h.tok["operator"], change)
	json.Unmarshal(b, &m)
	if st != 200 || m.BMC.Address != other.URL || m.BMC.Username != "root" || m.BMC.VendorProfile != "dell" || m.BMC.TLSFingerprint != other.Fingerprint() {
		t.Fatalf("another BMC confirmed: %d %s", st, b)
	}
	cred, err := h.a.Store.BMCCredentials(ctx, h.a.Secrets, m.ID)
	if err != nil || cred.Password != "calvin-02" {
		t.Fatalf("stored password: %q %v", cred.Password, err)
	}
}
