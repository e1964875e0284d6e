package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"slate/lifecycle"
	"slate/redfish/redfishtest"
)

// The machine page's "Virtual media" panel, against DMTF's public-telemetry mockup with the
// machine running: reading the CD on request, a forged form doing nothing, a boot from CD
// refused without the "restart it now" box and done with it, then an eject.
func TestVirtualMediaPanel(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	// the ISO's presence is the API test's concern; here the BMC only records the URL
	s.a.Lifecycle.SetDeployISOCheck(func() error { return nil })
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t), PowerState: "On"})
	m, err := s.a.Lifecycle.Enroll(ctx, s.a.Secrets, "seed", lifecycle.EnrollRequest{Name: "cd-01", MACs: []string{"52:54:00:00:10:0c"},
		BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	jar := &cookieJar{}
	cl := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := cl.Get(s.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	csrf := between(readAll(r), `name="csrf" value="`, `"`)
	r, _ = cl.PostForm(s.srv.URL+"/login", url.Values{"csrf": {csrf}, "username": {"tom"}, "password": {"tech-pass-01"}})
	r.Body.Close()
	r, _ = cl.Get(s.srv.URL + "/machines/" + m.ID)
	page := readAll(r)
	if !strings.Contains(page, "Virtual media") || !strings.Contains(page, `action="/machines/`+m.ID+`/media/insert"`) ||
		!strings.Contains(page, "Read what the virtual CD holds") || strings.Contains(page, "Virtual CD: ") {
		t.Fatalf("no virtual media panel (or the BMC was read without being asked):\n%.4000s", page)
	}
	csrf = between(page, `name="csrf" value="`, `"`)
	r, _ = cl.Get(s.srv.URL + "/machines/" + m.ID + "?media=1")
	if page := readAll(r); !strings.Contains(page, "Virtual CD: <b>inserted</b>") {
		t.Fatalf("the CD's content is not shown:\n%.4000s", page)
	}
	cd := "/redfish/v1/Managers/1/VirtualMedia/CD1"
	before := bmc.Get(cd)["Image"]
	r, _ = cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/media/insert", url.Values{"csrf": {"0000"}, "boot": {"1"}, "force": {"1"}})
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden || bmc.Get(cd)["Image"] != before || len(bmc.Boots()) != 0 {
		t.Fatalf("forged insert: %d", r.StatusCode)
	}
	r, _ = cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/media/insert", url.Values{"csrf": {csrf}, "boot": {"1"}})
	page = readAll(r)
	if r.StatusCode != http.StatusConflict || !strings.Contains(page, "Nothing inserted") || !strings.Contains(page, "running") ||
		bmc.Get(cd)["Image"] != before || len(bmc.Boots()) != 0 {
		t.Fatalf("boot of a running machine without the box: %d\n%.3000s", r.StatusCode, page)
	}
	r, _ = cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/media/insert", url.Values{"csrf": {csrf}, "boot": {"1"}, "force": {"1"}})
	r.Body.Close()
	loc := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "ok=media-booted") {
		t.Fatalf("insert and boot: %d %s", r.StatusCode, loc)
	}
	if boots := bmc.Boots(); len(boots) != 1 || boots[0] != "Cd" {
		t.Fatalf("boots %v", boots)
	}
	r, _ = cl.Get(s.srv.URL + loc)
	if page := readAll(r); !strings.Contains(page, "<code>http://127.0.0.1:8080/boot/deploy/deploy.iso</code>") || !strings.Contains(page, "booting from it once") {
		t.Fatalf("after the boot the page does not show the ISO:\n%.4000s", page)
	}
	r, _ = cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/media/eject", url.Values{"csrf": {csrf}})
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || bmc.Get(cd)["Inserted"] != false {
		t.Fatalf("eject: %d %v", r.StatusCode, bmc.Get(cd))
	}
}
