package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/appliance"
	"slate/internal/testenv"
	"slate/inventory"
	"slate/wipe"
	wipecert "slate/wipe/cert"
)

// `slate cert public-key` fetches the key the appliance signs with (its fingerprint beside
// it), and `slate cert report` writes one PDF holding every selected certificate; a bad date
// is refused before any request, naming the flag.
func TestCertPublicKeyAndReport(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	a, srv, token := testSlate(t, func(c *appliance.Config) { c.DataDir = dataDir })
	// Three certificates of one machine, signed with the appliance's own key.
	key, err := wipecert.LoadOrCreateSigningKey(filepath.Join(dataDir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var m inventory.Machine
	if err := a.Store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: "press-9", MACs: []string{"52:54:00:00:90:01"}, State: "retired"})
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
	auth := wipe.Authorization{TaskID: "t-9", MachineID: m.ID, PlanDigest: plan.Digest(), ConfirmedBy: "admin"}
	t0 := time.Now().UTC().Add(-time.Minute)
	tr := wipe.TaskResult{MachineID: m.ID, PlanDigest: plan.Digest(), Sanitized: true}
	for _, dp := range plan.Drives {
		tr.Results = append(tr.Results, wipe.Result{Drive: dp.Drive, Level: wipe.LevelClear, Method: wipe.MethodOverwrite, Status: wipe.StatusSanitized,
			Start: t0, End: t0.Add(time.Second), BytesWritten: dp.Drive.SizeBytes, Verification: wipe.Verification{Passed: true, BytesRead: dp.Drive.SizeBytes}})
	}
	n := 0
	meta := wipecert.CertMeta{Machine: wipecert.MachineIdentity{ID: m.ID, Name: m.Name},
		Person: wipecert.Person{Name: "Olga Weber", Title: "Line technician", Organization: "Werk 4", Location: "Halle 2"}}
	certs, _, err := wipecert.Certify(tr, auth, meta, "Slate test", key, func() string { n++; return fmt.Sprintf("c-cli-%d", n) }, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store.Update(ctx, func(tx *inventory.Tx) error {
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
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		env := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(""), environ: func() []string { return nil },
			getenv: func(k string) string {
				return map[string]string{"SLATE_SERVER": srv.URL, "SLATE_TOKEN": token, "HOME": t.TempDir()}[k]
			}}
		err := dispatch(ctx, env, commands(), args, "slate")
		return out.String(), errOut.String(), err
	}
	pub := key.Public().(ed25519.PublicKey)
	out, errOut, err := run("cert", "public-key")
	if err != nil || out != string(wipecert.PublicKeyPEM(pub)) || !strings.Contains(errOut, wipecert.Fingerprint(pub)) {
		t.Fatalf("cert public-key: %v\n%s\n%s", err, out, errOut)
	}
	pdfPath := filepath.Join(t.TempDir(), "report.pdf")
	if out, _, err := run("cert", "report", "--machine", "press-9", "--from", time.Now().UTC().Add(-24*time.Hour).Format("2006-01-02"), "-o", pdfPath); err != nil || !strings.Contains(out, "wrote "+pdfPath) {
		t.Fatalf("cert report: %v %s", err, out)
	}
	pdf, _ := os.ReadFile(pdfPath)
	text, _ := testenv.PDF(t, pdf)
	if c := strings.Count(text, "Certificate of Sanitization"); c != 3 || !strings.Contains(text, "Olga Weber") {
		t.Fatalf("report holds %d certificates, want 3:\n%s", c, text)
	}
	if out, _, err := run("cert", "report", "--id", "c-cli-2", "-o", pdfPath); err != nil {
		t.Fatalf("cert report --id: %v %s", err, out)
	}
	pdf, _ = os.ReadFile(pdfPath)
	if text, _ := testenv.PDF(t, pdf); strings.Count(text, "Certificate of Sanitization") != 1 || !strings.Contains(text, "c-cli-2") || strings.Contains(text, "c-cli-1") {
		t.Fatalf("report of one id:\n%s", text)
	}
	if _, _, err := run("cert", "report", "--to", "7.12.2026", "-o", pdfPath); err == nil || !strings.Contains(err.Error(), "--to:") {
		t.Fatalf("cert report with a bad date: %v, want the flag named", err)
	}
}

// `slate machine wipe-confirm` sends the plan, the typed name and the person's fields; it
// asks for the plan and the name before sending anything.
func TestMachineWipeConfirmSendsThePerson(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/machines/press-9/wipe/confirm" {
			http.Error(w, "unexpected "+r.URL.Path, 404)
			return
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &got)
		w.WriteHeader(201)
		w.Write([]byte(`{"id":"t-1","machine_id":"m-1","kind":"wipe"}`))
	}))
	t.Cleanup(srv.Close)
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		env := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(""), environ: func() []string { return nil },
			getenv: func(k string) string {
				return map[string]string{"SLATE_SERVER": srv.URL, "SLATE_TOKEN": "tok", "HOME": t.TempDir()}[k]
			}}
		err := dispatch(context.Background(), env, commands(), args, "slate")
		return out.String() + errOut.String(), err
	}
	if _, err := run("machine", "wipe-confirm", "press-9", "--confirm", "press-9"); err == nil || !strings.Contains(err.Error(), "--plan") || got != nil {
		t.Fatalf("without --plan: %v (sent %v)", err, got)
	}
	out, err := run("machine", "wipe-confirm", "press-9", "--plan", "sha256:ab", "--confirm", "press-9", "--person-name", "Olga Weber",
		"--person-title", "Line technician", "--person-organization", "Werk 4", "--person-location", "Halle 2", "--person-phone", "+49 711 555-0")
	if err != nil || !strings.Contains(out, "task t-1") {
		t.Fatalf("wipe-confirm: %v %s", err, out)
	}
	p, _ := got["person"].(map[string]any)
	if got["plan_digest"] != "sha256:ab" || got["machine_name"] != "press-9" || p["name"] != "Olga Weber" || p["title"] != "Line technician" ||
		p["organization"] != "Werk 4" || p["location"] != "Halle 2" || p["phone"] != "+49 711 555-0" {
		t.Fatalf("sent %v", got)
	}
}
