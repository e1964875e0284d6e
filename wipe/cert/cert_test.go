package cert

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/wipe"
)

// goodResult is one drive's completed, verified overwrite as the agent reports it.
func goodResult() wipe.Result {
	start := time.Unix(1_800_000_000, 0).UTC()
	return wipe.Result{Drive: wipe.DriveInfo{Path: "/dev/vda", Serial: "S1", Model: "QEMU HARDDISK", Transport: wipe.TransportVirtio, SizeBytes: 64 << 20},
		Level: wipe.LevelClear, Method: wipe.MethodOverwrite, Status: wipe.StatusSanitized, Start: start, End: start.Add(3 * time.Second),
		BytesWritten: 64 << 20, Verification: wipe.Verification{Method: "full read-back", Passed: true, BytesRead: 64 << 20}}
}

var testAuth = wipe.Authorization{TaskID: "t-7", MachineID: "m-7", PlanDigest: "sha256:plan", ConfirmedBy: "bob"}

// A certificate verifies with the appliance's key only; tampering with any field is detected;
// the PDF renders.
func TestCertificateSignsAndDetectsTampering(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	c, err := IssueCertificate("cert-1", goodResult(), testAuth, CertMeta{Person: Person{Name: "Alice"}}, "Slate test", time.Unix(1_800_000_100, 0))
	if err != nil {
		t.Fatalf("certificate refused for a good run: %v", err)
	}
	if c.Sanitization.MethodType != wipe.LevelClear || c.Sanitization.MethodUsed != "Overwrite" || c.Sanitization.VerificationMethod != "Full" {
		t.Fatalf("certificate sanitization block: %+v", c.Sanitization)
	}
	signed, err := Sign(c, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCertificate(signed, pub); err != nil {
		t.Fatalf("fresh certificate does not verify: %v", err)
	}
	for _, tamper := range []struct{ from, to string }{
		{`"method_type": "Clear"`, `"method_type": "Purge"`},
		{`"serial_number": "`, `"serial_number": "X`},
		{`"passed": true`, `"passed": false`},
	} {
		bad := strings.Replace(string(signed), tamper.from, tamper.to, 1)
		if bad == string(signed) {
			t.Fatalf("tamper pattern %q not found in\n%s", tamper.from, signed)
		}
		if _, err := VerifyCertificate([]byte(bad), pub); err == nil || !strings.Contains(err.Error(), "SIGNATURE INVALID") {
			t.Errorf("tampering %q → %q not detected: %v", tamper.from, tamper.to, err)
		}
	}
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := VerifyCertificate(signed, otherPub); err == nil {
		t.Error("certificate verified with another appliance's key")
	}
	env, _ := ParseEnvelope(signed)
	var pdf bytes.Buffer
	if err := RenderCertificatePDF(&pdf, c, env.Signature); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf.Bytes(), []byte("%PDF-")) || pdf.Len() < 2000 {
		t.Fatalf("PDF: %d bytes, starts %q", pdf.Len(), pdf.Bytes()[:8])
	}
}

// The issuer refuses every result wipe.Certifiable refuses: a failed, interrupted or lying run
// never gets a certificate, whoever calls the issuer.
func TestNoCertificateForAnUncertifiableResult(t *testing.T) {
	if _, err := IssueCertificate("c-good", goodResult(), testAuth, CertMeta{}, "Slate test", time.Now()); err != nil {
		t.Fatalf("good run refused: %v", err)
	}
	for name, spoil := range map[string]func(*wipe.Result){
		"failed":             func(r *wipe.Result) { r.Status = wipe.StatusFailed },
		"interrupted":        func(r *wipe.Result) { r.Status = wipe.StatusInterrupted },
		"verification":       func(r *wipe.Result) { r.Verification.Passed = false },
		"mismatches":         func(r *wipe.Result) { r.Verification.Mismatches = 3 },
		"nothing read back":  func(r *wipe.Result) { r.Verification.BytesRead = 0 },
		"overwrite as purge": func(r *wipe.Result) { r.Level = wipe.LevelPurge },
		"unknown method":     func(r *wipe.Result) { r.Method = "magic-erase" },
		"time runs backward": func(r *wipe.Result) { r.End = r.Start.Add(-time.Second) },
	} {
		r := goodResult()
		spoil(&r)
		if _, err := IssueCertificate("c-bad", r, testAuth, CertMeta{}, "Slate test", time.Now()); err == nil {
			t.Errorf("%s: a certificate was issued", name)
		}
	}
}

// Certify signs one certificate per sanitized drive and a report that binds them; results
// under another machine's authorization are refused.
func TestCertifyBindsTheReport(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	n := 0
	newID := func() string { n++; return fmt.Sprintf("id-%d", n) }
	failed := goodResult()
	failed.Drive.Path, failed.Drive.Serial, failed.Status = "/dev/vdb", "S2", wipe.StatusFailed
	tr := wipe.TaskResult{MachineID: "m-7", PlanDigest: testAuth.PlanDigest, Results: []wipe.Result{goodResult(), failed}}
	certs, report, err := Certify(tr, testAuth, CertMeta{}, "Slate test", priv, newID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || certs[0].DrivePath != "/dev/vda" {
		t.Fatalf("certificates: %+v", certs)
	}
	if _, err := VerifyCertificate(certs[0].File, pub); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyReport(report, pub)
	if err != nil || rep.Complete || len(rep.Drives) != 2 || rep.Drives[0].CertificateID != certs[0].ID || rep.Drives[1].CertificateID != "" {
		t.Fatalf("report: %+v %v", rep, err)
	}
	if _, _, err := Certify(tr, wipe.Authorization{MachineID: "other", PlanDigest: testAuth.PlanDigest}, CertMeta{}, "x", priv, newID, time.Now()); err == nil {
		t.Fatal("results certified under another machine's authorization")
	}
}

func TestDecommissionReportAndKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	priv, err := LoadOrCreateSigningKey(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, SigningKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode(), err)
	}
	again, err := LoadOrCreateSigningKey(dir, nil)
	if err != nil || !again.Equal(priv) {
		t.Fatalf("key not reloaded: %v", err)
	}
	pub, err := ParsePublicKey(PublicKeyPEM(priv.Public().(ed25519.PublicKey)))
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("public key round trip: %v", err)
	}
	good := wipe.Result{Drive: wipe.DriveInfo{Path: "/dev/nvme0n1", Serial: "S1", Model: "M"}, Status: wipe.StatusSanitized, Verification: wipe.Verification{Passed: true}}
	bad := wipe.Result{Drive: wipe.DriveInfo{Path: "/dev/sda", Serial: "S2"}, Status: wipe.StatusFailed, Errors: []string{"boom"}}
	auth := wipe.Authorization{TaskID: "t", MachineID: "m", PlanDigest: "d", ConfirmedBy: "alice"}
	rep := MakeReport("r1", MachineIdentity{}, auth, []wipe.Result{good, bad}, map[string]string{"/dev/nvme0n1": "c1"},
		map[string][]byte{"/dev/nvme0n1": []byte("signed cert")}, time.Unix(1_800_000_000, 0))
	if rep.Complete || len(rep.Drives) != 2 || rep.Drives[0].CertificateSHA256 == "" || rep.Drives[1].CertificateID != "" {
		t.Fatalf("report: %+v", rep)
	}
	signed, err := Sign(rep, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyReport(signed, pub)
	if err != nil || got.Machine.ID != "m" {
		t.Fatalf("report verify: %v %+v", err, got)
	}
	var pdf bytes.Buffer
	env, _ := ParseEnvelope(signed)
	if err := RenderReportPDF(&pdf, got, env.Signature); err != nil || !bytes.HasPrefix(pdf.Bytes(), []byte("%PDF")) {
		t.Fatalf("report pdf: %v", err)
	}
	// Canonical form: key order and whitespace do not matter, values do.
	a, _ := Canonical([]byte(`{"b":1,"a":[1,2.50,"x"]}`))
	b, _ := Canonical([]byte("{ \"a\" : [1, 2.50, \"x\"], \"b\": 1 }"))
	if string(a) != `{"a":[1,2.50,"x"],"b":1}` || !bytes.Equal(a, b) {
		t.Fatalf("canonical: %s vs %s", a, b)
	}
	var m map[string]any
	if err := json.Unmarshal(signed, &m); err != nil {
		t.Fatal(err)
	}
}

func FuzzVerifyCertificate(f *testing.F) {
	f.Add([]byte(`{"document":{"schema":"slate.sanitization-certificate/v1"},"signature":{"algorithm":"Ed25519","key_id":"00","value":"AA=="}}`))
	pub := ed25519.PublicKey(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := VerifyCertificate(b, pub); err == nil {
			t.Fatal("a fuzzed certificate verified against the zero key")
		}
		Canonical(b)
	})
}
