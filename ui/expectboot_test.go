package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The technician who powers a machine on by hand announces its network boot on the machine
// page: the form needs the page's CSRF token, records who, and the page then shows until when
// the boot is expected.
func TestExpectBootButton(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	cl := formClient(t, s, "tom", "tech-pass-01")
	m, _ := s.a.Store.GetMachine(ctx, "hmi-01")
	r, _ := cl.Get(s.srv.URL + "/machines/" + m.ID)
	page := readAll(r)
	if !strings.Contains(page, "No network boot expected") || !strings.Contains(page, `action="/machines/`+m.ID+`/expect-boot"`) ||
		!strings.Contains(page, "I will power this machine on: expect its network boot for 15 minutes") {
		t.Fatalf("the machine page has no expect-boot button:\n%.3000s", page)
	}
	csrf := between(page, `name="csrf" value="`, `"`)
	// A forged form (another site posting for the technician) arms nothing.
	r, _ = cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/expect-boot", url.Values{"csrf": {"0000"}})
	r.Body.Close()
	if _, ok, _ := s.a.Store.BootExpected(ctx, m.ID); r.StatusCode != http.StatusForbidden || ok {
		t.Fatalf("forged expect-boot: %d, armed %v", r.StatusCode, ok)
	}
	r, _ = cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/expect-boot", url.Values{"csrf": {csrf}})
	r.Body.Close()
	e, ok, _ := s.a.Store.BootExpected(ctx, m.ID)
	if r.StatusCode != http.StatusSeeOther || !ok || e.Actor != "tom" {
		t.Fatalf("expect-boot: %d, armed %v by %q", r.StatusCode, ok, e.Actor)
	}
	r, _ = cl.Get(s.srv.URL + "/machines/" + m.ID)
	if page := readAll(r); !strings.Contains(page, "Expected until <b>"+e.ExpiresAt.Local().Format("15:04:05")+"</b>") {
		t.Fatalf("the page does not show until when the boot is expected:\n%.3000s", page)
	}
}
