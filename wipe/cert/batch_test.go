package cert

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"slate/internal/testenv"
	"slate/wipe"
)

// signedBatch issues n certificates (n drives of one wipe) naming person, and returns them
// as stored items with the key.
func signedBatch(t *testing.T, n int, person Person) ([]BatchItem, ed25519.PublicKey) {
	t.Helper()
	var drives []wipe.DriveInfo
	for i := range n {
		drives = append(drives, wipe.DriveInfo{Name: fmt.Sprintf("vd%c", 'a'+i), Path: fmt.Sprintf("/dev/vd%c", 'a'+i), Transport: wipe.TransportVirtio,
			Media: wipe.MediaVirtual, Serial: fmt.Sprintf("SER-%03d", i), Model: "QEMU HARDDISK", SizeBytes: 64 << 20, LogicalBlockSize: 512})
	}
	plan, err := wipe.MakePlan("m-9", drives, wipe.DefaultPolicy(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	auth := wipe.Authorization{TaskID: "t-9", MachineID: "m-9", PlanDigest: plan.Digest(), ConfirmedBy: "olga"}
	params, _ := json.Marshal(wipe.TaskParams{Plan: plan, Authorization: auth})
	t0 := time.Date(2026, 12, 7, 22, 58, 0, 0, time.UTC)
	tr := wipe.TaskResult{MachineID: "m-9", PlanDigest: plan.Digest(), Sanitized: true}
	for _, dp := range plan.Drives {
		tr.Results = append(tr.Results, wipe.Result{Drive: dp.Drive, Level: wipe.LevelClear, Method: wipe.MethodOverwrite, Status: wipe.StatusSanitized,
			Start: t0, End: t0.Add(time.Minute), BytesWritten: dp.Drive.SizeBytes, Verification: wipe.Verification{Passed: true, BytesRead: dp.Drive.SizeBytes}})
	}
	res, _ := json.Marshal(tr)
	is := newTestIssuer(t, "")
	out, err := is.Issue("t-9", params, res, MachineIdentity{ID: "m-9", Name: "press-9"}, person)
	if err != nil || len(out.Certificates) != n {
		t.Fatalf("issue: %v %+v", err, out)
	}
	var items []BatchItem
	for _, c := range out.Certificates {
		items = append(items, BatchItem{ID: c.ID, File: c.File})
	}
	return items, is.PublicKey()
}

// The auditor's report holds every selected certificate, verified, after a summary table
// listing them all; poppler reads it back (it renders, not only starts with %PDF). One
// altered certificate refuses the whole report, and another appliance's key verifies none.
func TestBatchPDFHoldsEveryCertificate(t *testing.T) {
	person := Person{Name: "Olga Weber", Title: "Line technician", Organization: "Werk 4 GmbH", Location: "Halle 2, Stuttgart", Phone: "+49 711 555-0"}
	items, pub := signedBatch(t, 3, person)
	sel := BatchSelection{Machine: "press-9", From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	pdf, err := BatchPDF(items, pub, sel, time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	text, pages := testenv.PDF(t, pdf)
	if n := strings.Count(text, "Certificate of Sanitization"); n != 3 {
		t.Fatalf("%d certificates in the report, want 3:\n%s", n, text)
	}
	if pages < 4 {
		t.Fatalf("%d pages, want the summary and a page per certificate", pages)
	}
	for _, w := range []string{"Sanitization Certificates Report", "machine press-9; issued from 2026-12-01", "Certificates", KeyID(pub), Fingerprint(pub)[:20],
		"SER-000", "SER-001", "SER-002", "Werk 4 GmbH", "Halle 2, Stuttgart", "Line technician", "Signed file SHA-256"} {
		if !strings.Contains(text, w) {
			t.Fatalf("report lacks %q:\n%s", w, text)
		}
	}
	for _, it := range items {
		if strings.Count(text, it.ID) < 2 {
			t.Fatalf("certificate %s is not both in the summary and on its own page", it.ID)
		}
	}
	if testing.Verbose() {
		t.Logf("report: %d pages", pages)
	}
	// An altered certificate (the person's title changed after signing) refuses the report.
	bad := append([]BatchItem{}, items...)
	bad[1].File = bytes.Replace(bad[1].File, []byte("Line technician"), []byte("Plant manager"), 1)
	if _, err := BatchPDF(bad, pub, sel, time.Now()); err == nil || !strings.Contains(err.Error(), items[1].ID) {
		t.Fatalf("report with an altered certificate: %v, want a refusal naming %s", err, items[1].ID)
	}
	other := newTestIssuer(t, "").PublicKey()
	if _, err := BatchPDF(items, other, sel, time.Now()); err == nil {
		t.Fatal("another appliance's key verified the certificates")
	}
}

// Certificates carry the person confirmed with the wipe and still verify; wipes confirmed
// before the person was asked for (zero person) keep the configured one, and a certificate
// signed before this change (same JSON shape) verifies as it did.
func TestCertificatePersonFromConfirmation(t *testing.T) {
	person := Person{Name: "Olga Weber", Title: "Line technician", Organization: "Werk 4 GmbH", Location: "Halle 2"}
	items, pub := signedBatch(t, 1, person)
	c, err := VerifyCertificate(items[0].File, pub)
	if err != nil || c.Person != person {
		t.Fatalf("verify: %v, person %+v want %+v", err, c.Person, person)
	}
	items, pub = signedBatch(t, 1, Person{})
	if c, err := VerifyCertificate(items[0].File, pub); err != nil || c.Person.Name != "olga" {
		t.Fatalf("without a confirmed person: %v %+v, want the confirming user as before", err, c.Person)
	}
	// A certificate signed by Slate before the person was asked for at confirmation
	// (testdata, made with commit b847385) verifies unchanged.
	key, err := os.ReadFile("testdata/v1-public-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	oldPub, err := ParsePublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("testdata/v1-certificate.json")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := VerifyCertificate(file, oldPub); err != nil || c.Person.Organization != "Plant 4" {
		t.Fatalf("certificate from before: %v %+v", err, c.Person)
	}
	if _, err := VerifyCertificate(bytes.Replace(file, []byte("Plant 4"), []byte("Plant 5"), 1), oldPub); err == nil {
		t.Fatal("an altered certificate from before verified")
	}
	if pdf, err := BatchPDF([]BatchItem{{ID: "old", File: file}}, oldPub, BatchSelection{}, time.Now()); err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("batch report of an old certificate: %v", err)
	}
}

func TestParseSelection(t *testing.T) {
	sel, err := ParseSelection(" press-9 ", "2026-12-01", "2026-12-07", []string{"c-1,c-2", "c-3"})
	if err != nil {
		t.Fatal(err)
	}
	day := func(d int) time.Time { return time.Date(2026, 12, d, 0, 0, 0, 0, time.UTC) }
	if sel.Machine != "press-9" || !sel.From.Equal(day(1)) || !sel.To.Equal(day(8)) || strings.Join(sel.IDs, " ") != "c-1 c-2 c-3" {
		t.Fatalf("selection: %+v", sel)
	}
	// "to" includes its whole day; ids narrow further.
	if !sel.Includes("c-2", day(7).Add(23*time.Hour)) || sel.Includes("c-2", day(8)) || sel.Includes("c-9", day(3)) || sel.Includes("c-1", day(1).Add(-time.Second)) {
		t.Fatal("Includes does not keep to the range and ids")
	}
	for _, c := range []struct{ from, to, want string }{
		{"yesterday", "", "from:"}, {"", "7.12.2026", "to:"}, {"2026-12-07", "2026-12-01", "to: the range ends"},
	} {
		if _, err := ParseSelection("", c.from, c.to, nil); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Fatalf("from %q to %q: %v, want %q", c.from, c.to, err, c.want)
		}
	}
}
