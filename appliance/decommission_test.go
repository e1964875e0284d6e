package appliance_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/internal/testenv"
	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
	wipecert "slate/wipe/cert"
)

// fakeAgent speaks the agent API as the deploy environment would, for one machine.
type fakeAgent struct {
	t     *testing.T
	base  string
	token string
}

func (f fakeAgent) next() agentproto.Task {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.base+agentproto.PathPrefix+"/tasks/next?wait=0s", nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		f.t.Fatalf("next task: %d %s", resp.StatusCode, b)
	}
	var t agentproto.Task
	json.NewDecoder(resp.Body).Decode(&t)
	return t
}

func (f fakeAgent) result(taskID string, r agentproto.Result) {
	f.t.Helper()
	b, _ := json.Marshal(r)
	req, _ := http.NewRequest("POST", f.base+agentproto.PathPrefix+"/tasks/"+taskID+"/result", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		f.t.Fatalf("result of %s: %d %s", taskID, resp.StatusCode, b)
	}
}

func loopDevice(t *testing.T, size int64) (dev, img string) {
	t.Helper()
	testenv.RequireRoot(t)
	img = filepath.Join(t.TempDir(), "disk.img")
	f, _ := os.Create(img)
	io.CopyN(f, rand.Reader, size)
	f.Close()
	out, err := exec.Command("losetup", "--direct-io=on", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev, img
}

// TestDecommissionToRetired drives the server side of a decommission with the real wipe
// executor on a loop device standing in for the machine's disk: plan, refused and accepted
// confirmations, wipe, signed certificates, sanitized, retired, and the auditor's view.
func TestDecommissionToRetired(t *testing.T) {
	dev, img := loopDevice(t, 64<<20)
	h := newHarness(t)
	ctx := context.Background()
	op, au := h.tok["operator"], h.tok["auditor"]
	st, b := h.do("POST", "/api/v1/machines", op, map[string]any{"name": "old-hmi", "macs": []string{"52:54:00:de:c0:01"}, "serial": "HMI-9",
		"labels": map[string]string{"ip": "10.99.0.50", "line": "3"}})
	if st != 201 {
		t.Fatalf("%d %s", st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)
	// The API asks for the same typed name as the UI: without it, or with another machine's
	// name, nothing moves.
	for _, confirm := range []string{"", "other-hmi", "old-hmi "[:3]} {
		st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/transition", op, map[string]string{"to": "decommissioning", "reason": "line 3 rebuilt", "confirm_name": confirm})
		if st != 422 || !strings.Contains(string(b), "confirm_name must be the machine's name (old-hmi)") {
			t.Fatalf("decommission with confirm_name %q: %d %s, want 422 naming the machine", confirm, st, b)
		}
		if got, _ := h.a.Store.GetMachine(ctx, m.ID); got.State != "enrolled" {
			t.Fatalf("decommission with confirm_name %q moved the machine to %s", confirm, got.State)
		}
	}
	// The web form refuses the wrong name the same way, in red.
	st, b, _ = h.send(h.formReq("/machines/"+m.ID+"/decommission", h.uiSession("olga"), url.Values{"confirm_name": {"old-hm"}})())
	if st != 422 || !strings.Contains(string(b), `class="flash error"`) || !strings.Contains(string(b), "type the machine&#39;s name exactly (old-hmi)") {
		t.Fatalf("UI decommission with the wrong name: %d %.600s", st, b)
	}
	if got, _ := h.a.Store.GetMachine(ctx, m.ID); got.State != "enrolled" {
		t.Fatalf("UI decommission with the wrong name moved the machine to %s", got.State)
	}
	if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/transition", op, map[string]string{"to": "decommissioning", "reason": "line 3 rebuilt", "confirm_name": "old-hmi"}); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	if err := h.a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := h.a.Store.IssueAgentToken(ctx, m.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ag := fakeAgent{t, h.srv.URL, tok}
	task := ag.next()
	if task.Kind != agentproto.KindWipePlan {
		t.Fatalf("first task %q, want wipe-plan", task.Kind)
	}
	log := slog.New(slog.DiscardHandler)
	plan, err := wipe.PlanTask(ctx, m.ID, wipe.DefaultPolicy(), log, time.Now().UTC(), dev)
	if err != nil {
		t.Fatal(err)
	}
	pj, _ := json.Marshal(plan)
	ag.result(task.ID, agentproto.Result{State: "succeeded", Result: pj})

	st, b = h.do("GET", "/api/v1/machines/"+m.ID+"/wipe-plan", au, nil)
	var wp struct {
		Digest        string
		Runnable      bool
		Plan          wipe.Plan
		Discrepancies []string
	}
	json.Unmarshal(b, &wp)
	// Slate's plan, made with its own policy from the agent's probe: same drive and method.
	if st != 200 || wp.Digest != wp.Plan.Digest() || !wp.Runnable || len(wp.Plan.Drives) != 1 || wp.Plan.Drives[0].Drive.Path != dev ||
		wp.Plan.Drives[0].Method != plan.Drives[0].Method {
		t.Fatalf("wipe plan: %d %s", st, b)
	}
	// This machine was never inspected: the plan says so, for the technician to check.
	if len(wp.Discrepancies) != 1 || !strings.Contains(wp.Discrepancies[0], "never inspected") {
		t.Fatalf("discrepancies: %q", wp.Discrepancies)
	}
	if err := h.a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if why := h.a.Reconciler.Why(m.ID); !strings.Contains(why, "confirm") {
		t.Fatalf("machine should wait for confirmation, says %q", why)
	}
	// Refusals: the auditor, a wrong name, a stale digest. Nothing is queued.
	for _, c := range []struct {
		tok, digest, name string
		status            int
	}{{au, wp.Digest, "old-hmi", 403}, {op, wp.Digest, "old-hmj", 422}, {op, strings.Repeat("0", 64), "old-hmi", 409}} {
		if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/wipe/confirm", c.tok, map[string]string{"plan_digest": c.digest, "machine_name": c.name}); st != c.status {
			t.Fatalf("confirm %+v: %d %s", c, st, b)
		}
	}
	if ts, _ := h.a.Store.ListTasks(ctx, m.ID, 10); len(ts) != 1 {
		t.Fatalf("refused confirmations queued tasks: %d", len(ts))
	}
	// Who performs the sanitization goes on every certificate (NIST SP 800-88 Appendix G):
	// with no wipe.certificate_file, a confirmation naming only the person is refused, and the
	// refusal names each missing field (and not the one given).
	st, b = h.do("POST", "/api/v1/machines/"+m.ID+"/wipe/confirm", op, map[string]any{"plan_digest": wp.Digest, "machine_name": "old-hmi",
		"person": map[string]string{"name": "Olga Weber"}})
	if st != 422 || !strings.Contains(string(b), "person.title, person.organization, person.location") || strings.Contains(string(b), "person.name") {
		t.Fatalf("confirm without title, organization and location: %d %s, want 422 naming them", st, b)
	}
	st, b = h.do("POST", "/api/v1/machines/"+m.ID+"/wipe/confirm", op, map[string]any{"plan_digest": wp.Digest, "machine_name": "old-hmi",
		"person": map[string]string{"name": "Olga Weber", "title": "Line technician", "organization": "Plant 4", "location": "Hall 2", "phone": "+49 711 555\n0"}})
	if st != 422 || !strings.Contains(string(b), "person.phone: contains control characters") {
		t.Fatalf("confirm with a line break in the phone: %d %s, want 422 naming person.phone", st, b)
	}
	// The web form (no JavaScript needed) refuses a cleared title in red, tied to that field.
	olga := h.uiSession("olga")
	st, b, _ = h.send(h.formReq("/machines/"+m.ID+"/wipe/confirm", olga, url.Values{"plan_digest": {wp.Digest}, "confirm_name": {"old-hmi"},
		"person_name": {"Olga Weber"}, "person_title": {""}, "person_organization": {"Plant 4"}, "person_location": {"Hall 2"}})())
	if st != 422 || !strings.Contains(string(b), `class="flash error"`) || !strings.Contains(string(b), "person.title") ||
		!regexp.MustCompile(`name="person_title"[^>]*aria-invalid="true"`).Match(b) || regexp.MustCompile(`name="person_name"[^>]*aria-invalid`).Match(b) {
		t.Fatalf("UI confirmation without a title: %d %.3000s", st, b)
	}
	// What was typed stays in the form for the correction.
	if !strings.Contains(string(b), `name="person_organization" value="Plant 4"`) {
		t.Fatal("the refused form lost what was typed")
	}
	if ts, _ := h.a.Store.ListTasks(ctx, m.ID, 10); len(ts) != 1 {
		t.Fatalf("refused confirmations queued tasks: %d", len(ts))
	}
	person := wipe.Person{Name: "Olga Weber", Title: "Line technician", Organization: "Plant 4 GmbH", Location: "Hall 2, Stuttgart", Phone: "+49 711 555-0"}
	st, b = h.do("POST", "/api/v1/machines/"+m.ID+"/wipe/confirm", op, map[string]any{"plan_digest": wp.Digest, "machine_name": "old-hmi", "person": person})
	if st != 201 {
		t.Fatalf("confirm: %d %s", st, b)
	}
	task = ag.next()
	if task.Kind != agentproto.KindWipe {
		t.Fatalf("task %q, want wipe", task.Kind)
	}
	tr, err := wipe.RunTask(ctx, task.Params, wipe.Options{Log: log, Tool: "Slate test"})
	if err != nil {
		t.Fatal(err)
	}
	rj, _ := json.Marshal(tr)
	ag.result(task.ID, agentproto.Result{State: "succeeded", Result: rj})
	got, _ := h.a.Store.GetMachine(ctx, m.ID)
	if got.State != lifecycle.Sanitized {
		t.Fatalf("after the wipe: %s (%s)", got.State, got.FailedReason)
	}
	if err := h.a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ = h.a.Store.GetMachine(ctx, m.ID); got.State != lifecycle.Retired {
		t.Fatalf("after reconcile: %s", got.State)
	}
	// Retired: its DHCP reservation is gone (other labels stay), its agent tokens revoked.
	if _, ok := got.Labels["ip"]; ok || got.Labels["line"] != "3" {
		t.Fatalf("labels after retirement: %v", got.Labels)
	}
	if _, err := h.a.Store.MachineForAgentToken(ctx, tok); err == nil {
		t.Fatal("the agent token still works after retirement")
	}
	// The disk reads back as zeros from the host.
	data, _ := os.ReadFile(img)
	if !bytes.Equal(data, make([]byte, len(data))) {
		t.Fatal("the disk image is not erased")
	}
	// The auditor reads, verifies and exports the certificates.
	st, b = h.do("GET", "/api/v1/machines/"+m.ID+"/certificates", au, nil)
	var list struct {
		Certificates []inventory.Certificate
		Reports      []inventory.Report
	}
	json.Unmarshal(b, &list)
	if st != 200 || len(list.Certificates) != 1 || len(list.Reports) != 1 || !list.Reports[0].Complete {
		t.Fatalf("certificates: %d %s", st, b)
	}
	_, pemKey := h.do("GET", "/api/v1/certificates/public-key", au, nil)
	pub, err := wipecert.ParsePublicKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	_, file := h.do("GET", "/api/v1/certificates/"+list.Certificates[0].ID, au, nil)
	cert, err := wipecert.VerifyCertificate(file, pub)
	if err != nil || cert.Machine.Name != "old-hmi" || cert.Person != person || cert.Run.ConfirmedBy != "olga" {
		t.Fatalf("certificate: %v %+v, want person %+v", err, cert, person)
	}
	// The person is signed content: changing the title breaks the signature.
	if forged := bytes.Replace(file, []byte("Line technician"), []byte("Plant manager"), 1); bytes.Equal(forged, file) {
		t.Fatal("the certificate file does not hold the person's title")
	} else if _, err := wipecert.VerifyCertificate(forged, pub); err == nil {
		t.Fatal("a certificate with a changed person verified")
	}
	tampered := bytes.Replace(file, []byte("old-hmi"), []byte("new-hmi"), 1)
	if _, err := wipecert.VerifyCertificate(tampered, pub); err == nil {
		t.Fatal("a tampered certificate verified")
	}
	if st, pdf := h.do("GET", "/api/v1/certificates/"+cert.ID+"/pdf", au, nil); st != 200 || !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Fatalf("certificate PDF: %d %.20q", st, pdf)
	}
	if st, pdf := h.do("GET", "/api/v1/machines/"+m.ID+"/report.pdf", au, nil); st != 200 || !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Fatalf("report PDF: %d", st)
	}
	// The auditor's batch report: one PDF with the summary and each certificate (with the
	// person and the signature); a date range without certificates gives an empty summary, a
	// bad date is refused naming the parameter, and nobody without a session gets it.
	st, pdf := h.do("GET", "/api/v1/certificates/report.pdf?machine=old-hmi&from="+time.Now().UTC().Add(-24*time.Hour).Format("2006-01-02"), au, nil)
	if st != 200 {
		t.Fatalf("batch report: %d %s", st, pdf)
	}
	text, pages := testenv.PDF(t, pdf)
	for _, w := range []string{"Sanitization Certificates Report", cert.ID, "Olga Weber", "Line technician", "Plant 4 GmbH", "Hall 2, Stuttgart",
		"+49 711 555-0", "Ed25519 key " + wipecert.KeyID(pub)} {
		if !strings.Contains(text, w) {
			t.Fatalf("batch report lacks %q:\n%s", w, text)
		}
	}
	if n := strings.Count(text, "Certificate of Sanitization"); n != 1 || pages < 2 {
		t.Fatalf("batch report: %d certificates on %d pages, want 1 after the summary page", n, pages)
	}
	st, pdf = h.do("GET", "/api/v1/certificates/report.pdf?to=2000-01-01", au, nil)
	if text, _ := testenv.PDF(t, pdf); st != 200 || !strings.Contains(text, "No certificate matches this selection") || strings.Contains(text, cert.ID) {
		t.Fatalf("batch report of 1999: %d %s", st, text)
	}
	if st, b := h.do("GET", "/api/v1/certificates/report.pdf?from=yesterday", au, nil); st != 400 || !strings.Contains(string(b), "from:") {
		t.Fatalf("batch report with a bad date: %d %s, want 400 naming from", st, b)
	}
	if st, _ := h.do("GET", "/api/v1/certificates/report.pdf", "", nil); st != 401 {
		t.Fatalf("batch report without a session: %d, want 401", st)
	}
	// The public key served is the key the certificates verify with (checked above) and comes
	// with its fingerprint.
	if st, b, hd := h.raw("GET", "/api/v1/certificates/public-key", au, "", nil); st != 200 || hd.Get("X-Key-Fingerprint") != "SHA256:"+wipecert.Fingerprint(pub) ||
		!bytes.Equal(b, pemKey) {
		t.Fatalf("public key: %d %q", st, hd.Get("X-Key-Fingerprint"))
	}
	// The certificates page shows the key's fingerprint and offers the PEM and the report
	// (checkboxes tie into the report form).
	uiGet := func(path string) (int, []byte) {
		req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: "slate_session", Value: olga.token})
		st, b, _ := h.send(req)
		return st, b
	}
	st, b = uiGet("/certificates")
	if st != 200 || !strings.Contains(string(b), wipecert.Fingerprint(pub)) || !strings.Contains(string(b), `href="/certificates/public-key.pem"`) ||
		!strings.Contains(string(b), `name="id" value="`+cert.ID+`" form="report-form"`) {
		t.Fatalf("certificates page: %d %.2000s", st, b)
	}
	if st, b := uiGet("/machines/" + m.ID); st != 200 || !strings.Contains(string(b), `href="/certificates/report.pdf?machine=`+m.ID+`"`) {
		t.Fatalf("machine page lacks the link to its certificates report: %d", st)
	}
	if st, b := uiGet("/certificates/public-key.pem"); st != 200 || !bytes.Equal(b, pemKey) {
		t.Fatalf("public key from the page: %d %s", st, b)
	}
	if st, pdf := uiGet("/certificates/report.pdf?id=" + cert.ID); st != 200 {
		t.Fatalf("report from the page: %d %.300s", st, pdf)
	} else if text, _ := testenv.PDF(t, pdf); !strings.Contains(text, cert.ID) || !strings.Contains(text, "certificates "+cert.ID) {
		t.Fatalf("report from the page:\n%s", text)
	}
	_, tb := h.do("GET", "/api/v1/certificates/export", au, nil)
	tr2 := tar.NewReader(bytes.NewReader(tb))
	var names []string
	for {
		hd, err := tr2.Next()
		if err != nil {
			break
		}
		names = append(names, hd.Name)
	}
	if len(names) != 3 || names[0] != "public-key.pem" {
		t.Fatalf("export: %v", names)
	}
	// Certificates are immutable even to SQL.
	ev, _ := h.a.Store.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Limit: 100})
	var trail []string
	for i := len(ev) - 1; i >= 0; i-- {
		trail = append(trail, ev[i].Action+":"+ev[i].Outcome)
	}
	// The confirmation's audit event records the person the certificates name.
	for _, e := range ev {
		if e.Action == "wipe.confirm" && e.Outcome == "ok" {
			if d, _ := json.Marshal(e.Details); !strings.Contains(string(d), `"title":"Line technician"`) || !strings.Contains(string(d), `"organization":"Plant 4 GmbH"`) {
				t.Fatalf("wipe.confirm audit lacks the person: %s", d)
			}
		}
	}
	want := []string{"wipe.confirm:refused", "wipe.confirm:refused", "wipe.confirm:ok", "certificates.issue:ok"}
	joined := strings.Join(trail, " ")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Fatalf("audit trail lacks %s: %s", w, joined)
		}
	}
	if rep, _ := h.a.Store.VerifyAudit(ctx); !rep.OK {
		t.Fatalf("audit chain: %+v", rep)
	}
}
