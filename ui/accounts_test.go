package ui_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/appliance"
	"slate/inventory"
)

// post submits a form of the page at pagePath with its CSRF token.
func post(t *testing.T, cl *http.Client, base, pagePath, action string, v url.Values) (*http.Response, string) {
	t.Helper()
	r, err := cl.Get(base + pagePath)
	if err != nil {
		t.Fatal(err)
	}
	csrf := between(readAll(r), `name="csrf" value="`, `"`)
	if v == nil {
		v = url.Values{}
	}
	v.Set("csrf", csrf)
	r, err = cl.PostForm(base+action, v)
	if err != nil {
		t.Fatal(err)
	}
	return r, readAll(r)
}

// TestUsersPageActions: an admin disables, resets, revokes and deletes through the users
// page; each refusal (no confirmation, weak password, yourself, a forged form) changes nothing.
func TestUsersPageActions(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	admin := formClient(t, s, "admin", "first-pass-01")
	tom := formClient(t, s, "tom", "tech-pass-01")

	r, _ := admin.Get(s.srv.URL + "/users")
	page := readAll(r)
	for _, want := range []string{"Last login", "Manage tom", `action="/users/tom/disable"`, `action="/users/tom/delete"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("users page lacks %q", want)
		}
	}
	if strings.Contains(page, `action="/users/admin/disable"`) {
		t.Fatal("the admin is offered to disable themselves")
	}
	// Without the confirmation box: refused, red, nothing changed.
	r, body := post(t, admin, s.srv.URL, "/users", "/users/tom/disable", nil)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `class="flash error"`) {
		t.Fatalf("disable without confirmation: %d", r.StatusCode)
	}
	// A forged form (no CSRF token) is refused.
	r, _ = admin.PostForm(s.srv.URL+"/users/tom/disable", url.Values{"confirm": {"yes"}})
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("disable without CSRF: %d", r.StatusCode)
	}
	if r, _ := tom.Get(s.srv.URL + "/machines"); r.StatusCode != http.StatusOK {
		t.Fatalf("a refused disable ended tom's session: %d", r.StatusCode)
	}
	// Disabled: tom's open session ends at once, and the login page says so.
	r, _ = post(t, admin, s.srv.URL, "/users", "/users/tom/disable", url.Values{"confirm": {"yes"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/users?ok=user-disabled#u-tom" {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	r, _ = tom.Get(s.srv.URL + "/machines")
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "err=session-expired") {
		t.Fatalf("disabled user's session: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	r, _ = tom.Get(s.srv.URL + r.Header.Get("Location"))
	if page := readAll(r); !strings.Contains(page, "Your session expired") {
		t.Fatal("the login page does not say the session expired")
	}
	login := func(user, pw string) (int, string) {
		cl := &http.Client{Jar: &cookieJar{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r, _ := cl.Get(s.srv.URL + "/login")
		csrf := between(readAll(r), `name="csrf" value="`, `"`)
		r, _ = cl.PostForm(s.srv.URL+"/login", url.Values{"csrf": {csrf}, "username": {user}, "password": {pw}})
		return r.StatusCode, readAll(r)
	}
	if st, page := login("tom", "tech-pass-01"); st != http.StatusForbidden || !strings.Contains(page, "disabled") {
		t.Fatalf("disabled user logged in: %d", st)
	}
	r, _ = post(t, admin, s.srv.URL, "/users", "/users/tom/enable", url.Values{"confirm": {"yes"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("enable: %d", r.StatusCode)
	}
	// Password reset: a weak one is refused saying why; a good one ends tom's sessions.
	tom = formClient(t, s, "tom", "tech-pass-01")
	r, body = post(t, admin, s.srv.URL, "/users", "/users/tom/password", url.Values{"confirm": {"yes"}, "password": {"12345678"}})
	if r.StatusCode != http.StatusConflict || !strings.Contains(body, "at least 12") {
		t.Fatalf("weak reset: %d", r.StatusCode)
	}
	r, _ = post(t, admin, s.srv.URL, "/users", "/users/tom/password", url.Values{"confirm": {"yes"}, "password": {"fresh-green-lamp-9"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("reset: %d", r.StatusCode)
	}
	if r, _ := tom.Get(s.srv.URL + "/machines"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("tom's session survived a password reset: %d", r.StatusCode)
	}
	// Delete: needs the typed name; never yourself.
	r, body = post(t, admin, s.srv.URL, "/users", "/users/tom/delete", url.Values{"confirm_name": {"to"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "type the username") {
		t.Fatalf("delete without typed name: %d", r.StatusCode)
	}
	r, body = post(t, admin, s.srv.URL, "/users", "/users/admin/delete", url.Values{"confirm_name": {"admin"}})
	if r.StatusCode != http.StatusConflict || !strings.Contains(body, "your own account") {
		t.Fatalf("admin deleting themselves: %d", r.StatusCode)
	}
	r, _ = post(t, admin, s.srv.URL, "/users", "/users/tom/delete", url.Values{"confirm_name": {"tom"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if st, _ := login("tom", "fresh-green-lamp-9"); st != http.StatusUnauthorized {
		t.Fatalf("deleted user logged in: %d", st)
	}
	// An operator cannot reach these actions.
	aud := formClient(t, s, "aud", "readonly-pw-01")
	r, _ = post(t, aud, s.srv.URL, "/account", "/users/admin/revoke-tokens", url.Values{"confirm": {"yes"}})
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("auditor revoking the admin's tokens: %d", r.StatusCode)
	}
	ev, _ := s.a.Store.ListAudit(ctx, inventory.AuditFilter{Subject: "user:tom"})
	seen := map[string]bool{}
	for _, e := range ev {
		seen[e.Action] = true
	}
	for _, want := range []string{"user.disable", "user.enable", "user.password.reset", "user.delete"} {
		if !seen[want] {
			t.Errorf("not audited: %s", want)
		}
	}
}

// TestMyAccountPage: everyone changes their own password (the current one is needed) and
// revokes their other sessions; this session stays.
func TestMyAccountPage(t *testing.T) {
	s := newSite(t)
	aud := formClient(t, s, "aud", "readonly-pw-01")
	other := formClient(t, s, "aud", "readonly-pw-01")
	r, body := post(t, aud, s.srv.URL, "/account", "/account/password",
		url.Values{"current_password": {"wrong-pass-99"}, "new_password": {"night-owl-lamp-3"}, "new_password2": {"night-owl-lamp-3"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "current password is wrong") ||
		!strings.Contains(body, `id="current_password" name="current_password" type="password" required autocomplete="current-password" style="width:100%" aria-invalid="true" aria-describedby="flash"`) {
		t.Fatalf("wrong current password: %d\n%s", r.StatusCode, between(body, "<main>", "</main>"))
	}
	r, body = post(t, aud, s.srv.URL, "/account", "/account/password",
		url.Values{"current_password": {"readonly-pw-01"}, "new_password": {"password1234"}, "new_password2": {"password1234"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "common passwords") {
		t.Fatalf("weak new password: %d", r.StatusCode)
	}
	r, _ = post(t, aud, s.srv.URL, "/account", "/account/password",
		url.Values{"current_password": {"readonly-pw-01"}, "new_password": {"night-owl-lamp-3"}, "new_password2": {"night-owl-lamp-3"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account?ok=password-changed" {
		t.Fatalf("change: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if r, _ := aud.Get(s.srv.URL + "/account?ok=password-changed"); r.StatusCode != http.StatusOK || !strings.Contains(readAll(r), "Your password was changed") {
		t.Fatal("this session ended with the password change")
	}
	if r, _ := other.Get(s.srv.URL + "/machines"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("another session survived the password change: %d", r.StatusCode)
	}
	other = formClient(t, s, "aud", "night-owl-lamp-3")
	r, _ = post(t, aud, s.srv.URL, "/account", "/account/revoke-tokens", nil)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke mine: %d", r.StatusCode)
	}
	if r, _ := other.Get(s.srv.URL + "/machines"); r.StatusCode != http.StatusSeeOther {
		t.Fatal("revoked session still works")
	}
	if r, _ := aud.Get(s.srv.URL + "/machines"); r.StatusCode != http.StatusOK {
		t.Fatal("the revoking session was revoked")
	}
}

// TestUISessionIdleTimeout uses a fake clock: a session used within the idle timeout lives
// on; one left alone longer is refused and the login page says it expired.
func TestUISessionIdleTimeout(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cfg := appliance.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.SessionIdleTimeout = 15 * time.Minute
	a, err := appliance.New(context.Background(), cfg, appliance.Options{AdminPassword: "first-pass-01", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	s := &site{a: a, srv: srv}
	cl := formClient(t, s, "admin", "first-pass-01")
	for range 4 { // an hour of use, a page every 10 minutes
		advance(10 * time.Minute)
		if r, _ := cl.Get(srv.URL + "/machines"); r.StatusCode != http.StatusOK {
			t.Fatalf("session in use refused: %d", r.StatusCode)
		}
	}
	advance(16 * time.Minute)
	r, _ := cl.Get(srv.URL + "/machines")
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next=%2Fmachines&err=session-expired" {
		t.Fatalf("idle session: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	r, _ = cl.Get(srv.URL + r.Header.Get("Location"))
	if page := readAll(r); !strings.Contains(page, "Your session expired") || !strings.Contains(page, `value="/machines"`) {
		t.Fatal("login page does not say the session expired or lost the page to return to")
	}
}

// TestBannersAreCodesNotText: ?ok= with arbitrary text shows nothing; a known refusal code
// renders red and is tied to its field; a success code renders green.
func TestBannersAreCodesNotText(t *testing.T) {
	s := newSite(t)
	tom := formClient(t, s, "tom", "tech-pass-01")
	m, _ := s.a.Store.GetMachine(context.Background(), "press-01")
	get := func(q string) string {
		r, _ := tom.Get(s.srv.URL + "/machines/" + m.ID + "?" + q)
		return readAll(r)
	}
	lie := "Security notice: your password expired, call 555-0100"
	if page := get("ok=" + url.QueryEscape(lie)); strings.Contains(page, "555-0100") || strings.Contains(page, `class="flash ok"`) {
		t.Fatal("free text in ?ok= is shown as a banner")
	}
	page := get("ok=reason-required")
	if !strings.Contains(page, `class="flash error" id="flash" role="alert"`) || strings.Contains(page, `class="flash ok"`) {
		t.Fatal("a refusal code renders as success")
	}
	if !strings.Contains(page, `aria-label="Reason" aria-invalid="true" aria-describedby="flash"`) {
		t.Fatal("the refusal is not tied to the reason field")
	}
	if page := get("ok=machine-enrolled"); !strings.Contains(page, `class="flash ok" id="flash" role="status"><span class="flash-mark" aria-hidden="true">✓</span> Machine enrolled.`) {
		t.Fatal("a success code is not shown")
	}
	// The transition form without a reason now redirects with the code, and it renders red.
	r, _ := post(t, tom, s.srv.URL, "/machines/"+m.ID, "/machines/"+m.ID+"/transition", url.Values{"to": {"configuring"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/machines/"+m.ID+"?err=reason-required" {
		t.Fatalf("transition without reason: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	// The login return path: the reported redirect lands on Slate's start page.
	cl := &http.Client{Jar: &cookieJar{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, _ = cl.Get(s.srv.URL + "/login?next=%2F%09%2Fother-host")
	lp := readAll(r)
	if !strings.Contains(lp, `name="next" value="/machines"`) {
		t.Fatal("login page kept a hostile next")
	}
	csrf := between(lp, `name="csrf" value="`, `"`)
	r, _ = cl.PostForm(s.srv.URL+"/login", url.Values{"csrf": {csrf}, "username": {"tom"}, "password": {"tech-pass-01"}, "next": {"/\t/other-host"}})
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/machines" {
		t.Fatalf("login with a hostile next: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
}
