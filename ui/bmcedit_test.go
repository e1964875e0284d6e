package ui_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"slate/inventory"
	"slate/redfish/redfishtest"
)

// uiLogin logs tom (operator) in and returns a client that does not follow redirects.
func uiLogin(t *testing.T, s *site) *http.Client {
	t.Helper()
	cl := &http.Client{Jar: &cookieJar{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := cl.Get(s.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	csrf := between(readAll(r), `name="csrf" value="`, `"`)
	r, _ = cl.PostForm(s.srv.URL+"/login", url.Values{"csrf": {csrf}, "username": {"tom"}, "password": {"tech-pass-01"}})
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", r.StatusCode)
	}
	return cl
}

// TestEnrollPowerOnWarningOnMachinePage: an enrollment whose power-on failed lands on the
// machine page with a visible warning that says in plain words what happened and what to do,
// the BMC's detail behind it, and it stays there on a later visit (not only in the one-time
// banner); a running machine left alone says so, not "the power-on failed".
func TestEnrollPowerOnWarningOnMachinePage(t *testing.T) {
	s := newSite(t)
	cl := uiLogin(t, s)
	r, _ := cl.Get(s.srv.URL + "/machines/new")
	csrf := between(readAll(r), `name="csrf" value="`, `"`)
	enroll := func(name string, bmc *redfishtest.Server) string {
		t.Helper()
		r, err := cl.PostForm(s.srv.URL+"/machines", url.Values{"csrf": {csrf}, "name": {name}, "bmc_address": {bmc.URL},
			"bmc_username": {"admin"}, "bmc_password": {"password"}, "bmc_vendor": {"auto"}, "power_on": {"1"}})
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("enroll %s: %d", name, r.StatusCode)
		}
		return r.Header.Get("Location")
	}
	failing := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "Off"})
	failing.Inject(redfishtest.Fault{Method: "PATCH", Path: failing.SystemURI(), Kind: redfishtest.FaultStatus, Status: 500})
	loc := enroll("cell-1", failing)
	for _, path := range []string{loc, strings.SplitN(loc, "?", 2)[0]} { // with the banner, and a later visit
		r, _ = cl.Get(s.srv.URL + path)
		page := html.UnescapeString(readAll(r))
		warn := between(page, `id="power-warning"`, `</div>`)
		if !strings.Contains(warn, "Not powered on.") || !strings.Contains(warn, "Slate did not power this machine on: its BMC refused or failed the one-time network boot") ||
			!strings.Contains(warn, "<summary>Detail</summary>") || !strings.Contains(warn, "HTTP 500") {
			t.Fatalf("%s: no visible power-on warning:\n%s", path, warn)
		}
	}

	running := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t), PowerState: "On"})
	loc = enroll("cell-2", running)
	r, _ = cl.Get(s.srv.URL + loc)
	page := html.UnescapeString(readAll(r))
	if !strings.Contains(page, "the machine is running, so Slate left it alone") || strings.Contains(page, `id="power-warning"`) ||
		strings.Contains(page, "powering the machine on through its BMC failed") {
		t.Fatalf("a running machine left alone:\n%.4000s", page)
	}
}

// TestRepinBMCInUI: the machine page's "Check / re-pin certificate" shows the pinned and the
// presented fingerprints when the BMC replaced its certificate; pinning needs the page's CSRF
// token and the ticked confirmation, a confirmation of another fingerprint is refused, and
// nothing changes until the right one; "Edit BMC" with a wrong password stores nothing.
func TestRepinBMCInUI(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On", TLSCert: redfishtest.NewCert(t)})
	cl := uiLogin(t, s)
	r, _ := cl.Get(s.srv.URL + "/machines/new")
	csrf := between(readAll(r), `name="csrf" value="`, `"`)
	r, _ = cl.PostForm(s.srv.URL+"/machines", url.Values{"csrf": {csrf}, "name": {"cell-3"}, "bmc_address": {bmc.URL},
		"bmc_username": {"admin"}, "bmc_password": {"password"}, "bmc_vendor": {"auto"}})
	r.Body.Close()
	m, err := s.a.Store.GetMachine(ctx, "cell-3")
	if err != nil || m.BMC == nil {
		t.Fatalf("enroll: %d %v", r.StatusCode, err)
	}
	oldFP := bmc.Fingerprint()
	r, _ = cl.Get(s.srv.URL + "/machines/" + m.ID)
	page := readAll(r)
	if !strings.Contains(page, `id="bmc-repin-form"`) || !strings.Contains(page, `id="bmc-form"`) || !strings.Contains(page, oldFP) {
		t.Fatalf("the machine page has no BMC forms:\n%.4000s", page)
	}
	post := func(form url.Values) (int, string) {
		t.Helper()
		r, err := cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/bmc", form)
		if err != nil {
			t.Fatal(err)
		}
		return r.StatusCode, html.UnescapeString(readAll(r))
	}
	pin := func() string {
		got, _ := s.a.Store.GetMachine(ctx, m.ID)
		return got.BMC.TLSFingerprint
	}
	// Unchanged: nothing to re-pin, nothing audited.
	if st, _ := post(url.Values{"csrf": {csrf}}); st != http.StatusSeeOther {
		t.Fatalf("re-pin of an unchanged certificate: %d", st)
	}

	bmc.ReplaceCertificate(redfishtest.NewCert(t))
	newFP := bmc.Fingerprint()
	st, page := post(url.Values{"csrf": {csrf}})
	if st != http.StatusOK || between(page, `id="old-fingerprint">`, `</dd>`) != oldFP || !strings.Contains(between(page, `id="new-fingerprint">`, `</dd>`), newFP) ||
		!strings.Contains(page, `name="tls_fingerprint" value="`+newFP+`"`) {
		t.Fatalf("re-pin step: %d\n%.4000s", st, page)
	}
	confirmed := url.Values{"csrf": {csrf}, "step": {"confirm"}, "tls_fingerprint": {newFP}, "confirm": {"1"}}
	// A forged form (another site posting for the technician) pins nothing.
	forged := url.Values{"csrf": {"0000"}, "step": {"confirm"}, "tls_fingerprint": {newFP}, "confirm": {"1"}}
	if st, _ := post(forged); st != http.StatusForbidden || pin() != oldFP {
		t.Fatalf("forged re-pin: %d, pin %s", st, pin())
	}
	if st, page := post(url.Values{"csrf": {csrf}, "step": {"confirm"}, "tls_fingerprint": {newFP}}); st != http.StatusUnprocessableEntity ||
		!strings.Contains(page, "tick the confirmation") || pin() != oldFP {
		t.Fatalf("re-pin without the ticked confirmation: %d, pin %s", st, pin())
	}
	if st, page := post(url.Values{"csrf": {csrf}, "step": {"confirm"}, "tls_fingerprint": {oldFP}, "confirm": {"1"}}); st != http.StatusConflict ||
		!strings.Contains(page, "not the certificate you confirmed") || pin() != oldFP {
		t.Fatalf("re-pin confirming another fingerprint: %d, pin %s", st, pin())
	}
	// Edit BMC with a wrong password: refused by the BMC, nothing stored.
	if st, page := post(url.Values{"csrf": {csrf}, "address": {bmc.URL}, "username": {"admin"}, "password": {"wrong"}, "vendor_profile": {"generic"},
		"step": {"confirm"}, "tls_fingerprint": {newFP}, "confirm": {"1"}}); st != http.StatusUnprocessableEntity || !strings.Contains(page, "refused the credentials") || pin() != oldFP {
		t.Fatalf("edit with a wrong password: %d, pin %s\n%.2000s", st, pin(), page)
	}
	r, _ = cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/bmc", confirmed)
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "bmc-repinned") || pin() != newFP {
		t.Fatalf("confirmed re-pin: %d %s, pin %s", r.StatusCode, r.Header.Get("Location"), pin())
	}
	ev, _ := s.a.Store.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "machine.bmc"})
	if len(ev) != 1 || ev[0].Actor != "tom" || ev[0].Details["old_fingerprint"] != oldFP || ev[0].Details["fingerprint"] != newFP {
		t.Fatalf("audit: %+v", ev)
	}
}
