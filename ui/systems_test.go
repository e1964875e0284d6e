package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"slate/inventory"
	"slate/lifecycle"
	"slate/redfish/redfishtest"
)

// The enroll form against a blade chassis (DMTF public-bladed, four systems behind one BMC):
// without a choice the form comes back listing the systems to pick from and nothing is stored;
// picking blade 3 enrolls that blade; "every system" enrolls them all; the adopt checkbox takes
// a running machine as it is, and its page says so. Before, the form had no system choice and
// enrolled the first blade whatever was meant.
func TestEnrollFormSystemsAndAdoption(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	cl := formClient(t, s, "tom", "tech-pass-01")
	bladed := filepath.Join(redfishtest.MockupDir(t), "public-bladed")
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: bladed})
	form := func(extra url.Values) url.Values {
		v := url.Values{"bmc_address": {bmc.URL}, "bmc_username": {"admin"}, "bmc_password": {"password"}, "bmc_vendor": {"auto"}}
		for k, x := range extra {
			v[k] = x
		}
		return v
	}
	_, before, _ := s.a.Store.ListMachines(ctx, inventory.MachineFilter{})
	r, page := post(t, cl, s.srv.URL, "/machines/new", "/machines", form(nil))
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `<select id="system_id" name="system_id"`) {
		t.Fatalf("several systems, no choice: %d\n%.2000s", r.StatusCode, page)
	}
	for _, id := range []string{"529QB9450R6", "529QB9451R6", "529QB9452R6", "529QB9453R6"} {
		if !strings.Contains(page, `<option value="`+id+`"`) {
			t.Errorf("the form does not offer system %s", id)
		}
	}
	if _, after, _ := s.a.Store.ListMachines(ctx, inventory.MachineFilter{}); after != before {
		t.Fatalf("a refused enrollment stored machines: %d → %d", before, after)
	}
	r, _ = post(t, cl, s.srv.URL, "/machines/new", "/machines", form(url.Values{"name": {"blade3"}, "system_id": {"529QB9452R6"}}))
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "ok=machine-enrolled") {
		t.Fatalf("blade 3: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	m, err := s.a.Store.GetMachine(ctx, "blade3")
	if err != nil || m.BMC == nil || m.BMC.SystemID != "529QB9452R6" {
		t.Fatalf("blade 3 stored: %+v %v", m.BMC, err)
	}
	page = readAll(must(cl.Get(s.srv.URL + "/machines/" + m.ID)))
	if !strings.Contains(page, "<dt>System</dt><dd class=\"mono\">529QB9452R6</dd>") {
		t.Fatalf("the machine page does not show its system:\n%.3000s", page)
	}
	// every system of a second chassis (same mockup: its blades get serials of their own, or
	// they would be the first chassis's machines)
	bmc = redfishtest.New(t, redfishtest.Options{Mockup: bladed})
	for _, id := range []string{"529QB9450R6", "529QB9451R6", "529QB9452R6", "529QB9453R6"} {
		bmc.Set("/redfish/v1/Systems/"+id, map[string]any{"SerialNumber": "CH2-" + id})
	}
	r, _ = post(t, cl, s.srv.URL, "/machines/new", "/machines", form(url.Values{"name": {"ch2"}, "system_id": {"all"}}))
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "ok=systems-enrolled") {
		t.Fatalf("every system: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	for _, id := range []string{"529QB9450R6", "529QB9453R6"} {
		if m, err := s.a.Store.GetMachine(ctx, "ch2-"+id); err != nil || m.BMC == nil || m.BMC.SystemID != id {
			t.Fatalf("ch2-%s: %+v %v", id, m, err)
		}
	}
	// adopt a running rack server
	rack := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
	r, _ = post(t, cl, s.srv.URL, "/machines/new", "/machines", url.Values{"name": {"line4-hmi"}, "bmc_address": {rack.URL},
		"bmc_username": {"admin"}, "bmc_password": {"password"}, "bmc_vendor": {"auto"}, "adopt": {"1"}})
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "ok=machine-adopted") {
		t.Fatalf("adopt: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	m, _ = s.a.Store.GetMachine(ctx, "line4-hmi")
	if m.State != lifecycle.Adopted {
		t.Fatalf("adopted machine state: %s", m.State)
	}
	for _, q := range rack.Requests() {
		if q.Method != "GET" && !strings.HasPrefix(q.Path, "/redfish/v1/SessionService/Sessions") {
			t.Fatalf("adoption through the form sent %s %s", q.Method, q.Path)
		}
	}
	page = readAll(must(cl.Get(s.srv.URL + "/machines/" + m.ID)))
	if !strings.Contains(page, "Adopted: runs an unmanaged system") {
		t.Fatalf("the adopted machine's page does not say what it is:\n%.3000s", page)
	}
}

func must(r *http.Response, err error) *http.Response {
	if err != nil {
		panic(err)
	}
	return r
}
