package ui_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"slate/appliance"
	"slate/inventory"
	"slate/wipe"
	wipecert "slate/wipe/cert"
)

// certifiedSite is the UI test site with a retired machine and three certificates signed by
// the appliance's own key (as the certifier signs them), naming a person.
func certifiedSite(t *testing.T) (*site, []wipecert.SignedCertificate, string) {
	t.Helper()
	ctx := context.Background()
	cfg := appliance.Defaults()
	cfg.DataDir = t.TempDir()
	a, err := appliance.New(ctx, cfg, appliance.Options{AdminPassword: "first-pass-01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	s := &site{a, srv}
	if _, err := a.Store.AddUser(ctx, "test", "aud", "readonly-pw-01", inventory.RoleAuditor, "Ada Auditor"); err != nil {
		t.Fatal(err)
	}
	key, err := wipecert.LoadOrCreateSigningKey(filepath.Join(cfg.DataDir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var m inventory.Machine
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: "old-press", State: "retired"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var drives []wipe.DriveInfo
	for i := range 3 {
		drives = append(drives, wipe.DriveInfo{Name: fmt.Sprintf("vd%c", 'a'+i), Path: fmt.Sprintf("/dev/vd%c", 'a'+i), Transport: wipe.TransportVirtio,
			Media: wipe.MediaVirtual, Serial: fmt.Sprintf("SER-%03d", i), Model: "QEMU HARDDISK", SizeBytes: 64 << 20, LogicalBlockSize: 512})
	}
	plan, err := wipe.MakePlan(m.ID, drives, wipe.DefaultPolicy(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	auth := wipe.Authorization{TaskID: "t-9", MachineID: m.ID, PlanDigest: plan.Digest(), ConfirmedBy: "tom"}
	t0 := time.Now().UTC().Add(-time.Minute)
	tr := wipe.TaskResult{MachineID: m.ID, PlanDigest: plan.Digest(), Sanitized: true}
	for _, dp := range plan.Drives {
		tr.Results = append(tr.Results, wipe.Result{Drive: dp.Drive, Level: wipe.LevelClear, Method: wipe.MethodOverwrite, Status: wipe.StatusSanitized,
			Start: t0, End: t0.Add(time.Second), BytesWritten: dp.Drive.SizeBytes, Verification: wipe.Verification{Passed: true, BytesRead: dp.Drive.SizeBytes}})
	}
	n := 0
	meta := wipecert.CertMeta{Machine: wipecert.MachineIdentity{ID: m.ID, Name: m.Name},
		Person: wipecert.Person{Name: "Olga Weber", Title: "Line technician", Organization: "Werk 4", Location: "Halle 2"}}
	certs, _, err := wipecert.Certify(tr, auth, meta, "Slate test", key, func() string { n++; return fmt.Sprintf("c-ui-%d", n) }, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		for _, sc := range certs {
			if err := tx.AddCertificate(ctx, inventory.Certificate{ID: sc.ID, MachineID: m.ID, TaskID: "t-9", DriveSerial: sc.DriveSerial,
				DrivePath: sc.DrivePath, KeyID: sc.KeyID, Signature: sc.Signature, File: sc.File}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s, certs, wipecert.Fingerprint(key.Public().(ed25519.PublicKey))
}

// The certificates page for an auditor, at a desktop, a tablet and a phone: the key's
// fingerprint and PEM link are there, nothing spills out of the page, and ticking
// certificates narrows the report form to them; the report it asks for is one PDF.
func TestCertificatesPaperworkInChromium(t *testing.T) {
	s, certs, fp := certifiedSite(t)
	br, cancel := browser(t)
	defer cancel()
	login(t, br, s.srv.URL, "aud", "readonly-pw-01")
	for _, sz := range []struct {
		name   string
		w, h   int64
		mobile bool
	}{{"desktop", 1366, 768, false}, {"tablet", 1024, 768, false}, {"phone", 390, 844, true}} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if sz.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		var key string
		var overflow int
		if err := chromedp.Run(br, chromedp.EmulateViewport(sz.w, sz.h, opts...),
			chromedp.Navigate(s.srv.URL+"/certificates"),
			chromedp.WaitVisible(`#public-key`, chromedp.ByID),
			chromedp.Text(`#public-key`, &key, chromedp.ByID),
			chromedp.Evaluate(fmt.Sprintf(`document.documentElement.scrollWidth - %d`, sz.w), &overflow),
		); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(key, fp) {
			t.Fatalf("%s: the page does not show the key's fingerprint %s: %q", sz.name, fp, key)
		}
		if overflow > 0 {
			t.Errorf("%s: the certificates page is %d px wider than the screen", sz.name, overflow)
		}
		shot(t, br, "paperwork-"+sz.name+"-certificates")
	}
	// Tick two certificates: the report form carries exactly those, and the PDF it asks for
	// comes back (fetched by the page, as the auditor's browser would download it).
	var query string
	var res struct {
		Status int    `json:"status"`
		Type   string `json:"type"`
		Head   string `json:"head"`
	}
	if err := chromedp.Run(br,
		chromedp.Click(fmt.Sprintf(`input[name=id][value=%q]`, certs[0].ID), chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`input[name=id][value=%q]`, certs[2].ID), chromedp.ByQuery),
		chromedp.Evaluate(`new URLSearchParams(new FormData(document.getElementById("report-form"))).toString()`, &query),
		// The page fetches the report the form asks for; the test polls for the answer.
		chromedp.Evaluate(`window.reportAnswer = null; fetch("/certificates/report.pdf?" + new URLSearchParams(new FormData(document.getElementById("report-form"))).toString())
			.then(async r => { window.reportAnswer = {status: r.status, type: r.headers.get("content-type"), head: (await r.text()).slice(0, 5)}; }); true`, nil),
		waitJS(`window.reportAnswer !== null`),
		chromedp.Evaluate(`window.reportAnswer`, &res),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(query, "id="+certs[0].ID) || !strings.Contains(query, "id="+certs[2].ID) || strings.Contains(query, certs[1].ID) {
		t.Fatalf("report form query %q, want the two ticked certificates", query)
	}
	if res.Status != 200 || res.Type != "application/pdf" || res.Head != "%PDF-" {
		t.Fatalf("report from the page: %+v", res)
	}
	shot(t, br, "paperwork-phone-ticked")
}
