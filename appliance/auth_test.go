package appliance_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slate/appliance"
	"slate/authguard"
	"slate/inventory"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Now().UTC().Truncate(time.Second)} }

// authSite is an appliance with a small lockout threshold and a fake clock (back-off waits
// are skipped by moving the clock, not by sleeping). Logins come from 127.0.0.1.
type authSite struct {
	t     *testing.T
	a     *appliance.Appliance
	srv   *httptest.Server
	clock *fakeClock
	admin string
}

func newAuthSite(t *testing.T, mutate func(*appliance.Config)) *authSite {
	t.Helper()
	cfg := appliance.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Login = authguard.Config{LockoutAfter: 4, FreeFailures: 2, BackoffBase: time.Second, BackoffMax: time.Minute}
	if mutate != nil {
		mutate(&cfg)
	}
	clk := newFakeClock()
	a, err := appliance.New(context.Background(), cfg, appliance.Options{AdminPassword: "first-pass-01", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	s := &authSite{t: t, a: a, srv: httptest.NewServer(a.Handler()), clock: clk}
	t.Cleanup(s.srv.Close)
	if _, err := a.Store.AddUser(context.Background(), "test", "tom", "tech-pass-0001", inventory.RoleOperator, ""); err != nil {
		t.Fatal(err)
	}
	st, body, _ := s.apiLogin("admin", "first-pass-01", nil)
	if st != 200 {
		t.Fatalf("admin login: %d %s", st, body)
	}
	var out struct{ Token string }
	json.Unmarshal([]byte(body), &out)
	s.admin = out.Token
	return s
}

func (s *authSite) send(req *http.Request) (int, string, http.Header) {
	s.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (s *authSite) apiLogin(user, pw string, hdr map[string]string) (int, string, http.Header) {
	s.t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	req, _ := http.NewRequest("POST", s.srv.URL+"/api/v1/auth/token", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return s.send(req)
}

func (s *authSite) registryLogin(user, pw string) (int, string, http.Header) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.srv.URL+"/v2/", nil)
	req.SetBasicAuth(user, pw)
	return s.send(req)
}

// uiLogin posts the login form as a browser does (pre-session cookie and CSRF token first).
func (s *authSite) uiLogin(user, pw string) (int, string, http.Header) {
	s.t.Helper()
	resp, err := http.Get(s.srv.URL + "/login")
	if err != nil {
		s.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, rest, _ := strings.Cut(string(page), `name="csrf" value="`)
	csrf, _, _ := strings.Cut(rest, `"`)
	form := url.Values{"csrf": {csrf}, "username": {user}, "password": {pw}}
	req, _ := http.NewRequest("POST", s.srv.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := cl.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b), r.Header
}

func (s *authSite) audit(action string) []inventory.AuditEvent {
	s.t.Helper()
	ev, err := s.a.Store.ListAudit(context.Background(), inventory.AuditFilter{Action: action})
	if err != nil {
		s.t.Fatal(err)
	}
	return ev
}

// TestEveryPasswordPathIsThrottled: the API login, the web login and the registry's Basic
// auth each answer 429 with Retry-After once the free failures are spent (140 wrong passwords
// in a row used to get no delay), and the good password waits out the back-off too.
func TestEveryPasswordPathIsThrottled(t *testing.T) {
	paths := map[string]struct {
		login   func(s *authSite, user, pw string) (int, string, http.Header)
		refused int
		ok      int
	}{
		"api":      {(*authSite).apiLogin2, http.StatusUnauthorized, http.StatusOK},
		"ui":       {(*authSite).uiLogin, http.StatusUnauthorized, http.StatusSeeOther},
		"registry": {(*authSite).registryLogin, http.StatusUnauthorized, http.StatusOK},
	}
	for name, p := range paths {
		t.Run(name, func(t *testing.T) {
			s := newAuthSite(t, nil)
			for i := range 3 {
				if st, body, _ := p.login(s, "tom", "wrong-pass-"+name); st != p.refused {
					t.Fatalf("wrong password %d: %d %s", i+1, st, body)
				}
			}
			refusedEvents := func() (n int) {
				for _, e := range s.audit("auth.login") {
					if e.Outcome == "refused" {
						n++
					}
				}
				return n
			}
			if n := refusedEvents(); n != 3 {
				t.Fatalf("each wrong password must be audited (remote, via): %d refused events, want 3", n)
			}
			st, body, h := p.login(s, "tom", "tech-pass-0001")
			if st != http.StatusTooManyRequests || h.Get("Retry-After") != "1" {
				t.Fatalf("after 3 failures the next attempt must be 429 with Retry-After: 1, got %d %q %s", st, h.Get("Retry-After"), body)
			}
			if name == "ui" && !strings.Contains(body, "Wait 1 seconds") {
				t.Fatalf("the login page must say how long to wait:\n%s", body)
			}
			if n := refusedEvents(); n != 3 {
				t.Fatalf("a throttled attempt is refused before hashing and not audited: %d refused events, want 3", n)
			}
			s.clock.Add(time.Second)
			if st, body, _ := p.login(s, "tom", "tech-pass-0001"); st != p.ok {
				t.Fatalf("after the wait the right password must work: %d %s", st, body)
			}
		})
	}
}

// apiLogin2 is apiLogin without extra headers (the shape the table wants).
func (s *authSite) apiLogin2(user, pw string) (int, string, http.Header) {
	return s.apiLogin(user, pw, nil)
}

// TestLockoutOverAPIAndAdminUnlock: lockout_after consecutive failures, through any path
// (here the registry and the API together), lock the account: the right password is then
// refused saying how to unlock; auth.locked is audited; only an admin unlocks (operator 403),
// audited, and the person logs in at once.
func TestLockoutOverAPIAndAdminUnlock(t *testing.T) {
	s := newAuthSite(t, nil)
	s.registryLogin("tom", "guess-1")
	s.registryLogin("tom", "guess-2")
	s.apiLogin("tom", "guess-3", nil)
	s.clock.Add(time.Second)
	st, body, _ := s.apiLogin("tom", "guess-4", nil)
	if st != http.StatusForbidden || !strings.Contains(body, "locked") {
		t.Fatalf("the 4th consecutive failure must lock: %d %s", st, body)
	}
	s.clock.Add(time.Minute)
	st, body, _ = s.apiLogin("tom", "tech-pass-0001", nil)
	if st != http.StatusForbidden || !strings.Contains(body, "slate user unlock tom") {
		t.Fatalf("right password on a locked account: want 403 saying how to unlock, got %d %s", st, body)
	}
	s.clock.Add(time.Minute)
	if st, body, _ := s.uiLogin("tom", "tech-pass-0001"); st != http.StatusForbidden || !strings.Contains(body, "locked") {
		t.Fatalf("web login on a locked account: %d", st)
	}
	ev := s.audit("auth.locked")
	if len(ev) != 1 || ev[0].Subject != "user:tom" {
		t.Fatalf("auth.locked audit: %+v", ev)
	}
	// The users list shows it; an operator may not unlock (not even themselves).
	req, _ := http.NewRequest("GET", s.srv.URL+"/api/v1/users", nil)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	if _, body, _ := s.send(req); !strings.Contains(body, `"username":"tom"`) || !strings.Contains(body, `"locked":true`) {
		t.Fatalf("GET /users must show the lock: %s", body)
	}
	if _, err := s.a.Store.AddUser(context.Background(), "test", "olga", "pass-operator-01", inventory.RoleOperator, ""); err != nil {
		t.Fatal(err)
	}
	s.clock.Add(time.Minute) // past this address's back-off
	if st, body, _ = s.apiLogin("olga", "pass-operator-01", nil); st != 200 {
		t.Fatalf("operator login: %d %s", st, body)
	}
	var op struct{ Token string }
	json.Unmarshal([]byte(body), &op)
	unlock := func(tok string) int {
		req, _ := http.NewRequest("POST", s.srv.URL+"/api/v1/users/tom/unlock", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		st, _, _ := s.send(req)
		return st
	}
	if st := unlock(op.Token); st != http.StatusForbidden {
		t.Fatalf("an operator unlocking: %d, want 403", st)
	}
	if st := unlock(s.admin); st != http.StatusOK {
		t.Fatalf("admin unlock: %d", st)
	}
	if st, body, _ := s.apiLogin("tom", "tech-pass-0001", nil); st != http.StatusOK {
		t.Fatalf("after the unlock tom logs in at once: %d %s", st, body)
	}
	if ev := s.audit("user.unlock"); len(ev) != 1 || ev[0].Actor != "admin" {
		t.Fatalf("user.unlock audit: %+v", ev)
	}
}

// TestUIUnlockButton: the users page shows a locked account with an Unlock button that works.
func TestUIUnlockButton(t *testing.T) {
	s := newAuthSite(t, func(c *appliance.Config) { c.Login.LockoutAfter = 1 })
	s.apiLogin("tom", "guess-1", nil)
	st, body, h := s.uiLogin("admin", "first-pass-01")
	if st != http.StatusSeeOther {
		t.Fatalf("admin web login: %d %s", st, body)
	}
	var session *http.Cookie
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "slate_session" {
			session = c
		}
	}
	req, _ := http.NewRequest("GET", s.srv.URL+"/users", nil)
	req.AddCookie(session)
	_, page, _ := s.send(req)
	if !strings.Contains(page, `action="/users/tom/unlock"`) {
		t.Fatalf("the users page must offer Unlock for tom:\n%s", page)
	}
	_, rest, _ := strings.Cut(page, `action="/users/tom/unlock"`)
	_, rest, _ = strings.Cut(rest, `name="csrf" value="`)
	csrf, _, _ := strings.Cut(rest, `"`)
	req, _ = http.NewRequest("POST", s.srv.URL+"/users/tom/unlock", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(session)
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("unlock form: %d", r.StatusCode)
	}
	if st, body, _ := s.apiLogin("tom", "tech-pass-0001", nil); st != http.StatusOK {
		t.Fatalf("after the UI unlock: %d %s", st, body)
	}
}

// TestForwardedForTrustedOnlyFromConfiguredProxies: a client on the segment that sends
// X-Forwarded-For / X-Real-IP gets its TCP address audited, and cannot dodge the per-address
// back-off by changing the header; behind a configured proxy the header is believed.
func TestForwardedForTrustedOnlyFromConfiguredProxies(t *testing.T) {
	s := newAuthSite(t, nil)
	forged := map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.10"}
	s.apiLogin("nobody", "x", forged)
	ev := s.audit("auth.login")
	if len(ev) == 0 || ev[0].Outcome != "refused" || ev[0].Details["remote"] != "127.0.0.1" {
		t.Fatalf("untrusted peer: the audit must show the TCP peer 127.0.0.1, got %+v", ev[0].Details)
	}
	// Spraying usernames with a new forged address each time is still one address.
	for i, ip := range []string{"198.51.100.1", "198.51.100.2"} {
		if st, _, _ := s.apiLogin("ghost"+ip, "x", map[string]string{"X-Forwarded-For": ip}); st != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+2, st)
		}
	}
	if st, _, _ := s.apiLogin("ghost-4", "x", map[string]string{"X-Forwarded-For": "198.51.100.3"}); st != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For must not reset the per-address back-off: %d", st)
	}

	p := newAuthSite(t, func(c *appliance.Config) { c.TrustedProxies = []string{"127.0.0.1/32"} })
	p.apiLogin("nobody", "x", map[string]string{"X-Forwarded-For": "203.0.113.9"})
	ev = p.audit("auth.login")
	if len(ev) == 0 || ev[0].Details["remote"] != "203.0.113.9" {
		t.Fatalf("trusted proxy: the audit must show the forwarded client, got %+v", ev[0].Details)
	}
	// A bad trusted_proxies entry stops start-up naming the key.
	cfg := appliance.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.TrustedProxies = []string{"10.0.0.0/33"}
	if _, err := appliance.New(context.Background(), cfg, appliance.Options{}); err == nil || !strings.Contains(err.Error(), "trusted_proxies[0]") {
		t.Fatalf("bad trusted_proxies: %v", err)
	}
}

// TestDataDirIsPrivateAndInitialPasswordGoesAtFirstLogin: a data directory and secret key an
// earlier Slate left 0755/0644 are restricted on start; the generated admin password file is
// 0600, survives other users' logins and a wrong admin password, and is removed (audited) at
// the admin's first successful login.
func TestDataDirIsPrivateAndInitialPasswordGoesAtFirstLogin(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "secret.key"), key, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := appliance.Defaults()
	cfg.DataDir = dir
	var out strings.Builder
	a, err := appliance.New(context.Background(), cfg, appliance.Options{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	mode := func(p string) os.FileMode {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "secret.key"): 0o600,
		filepath.Join(dir, "slate.db"): 0o600, filepath.Join(dir, "slate.db-wal"): 0o600, filepath.Join(dir, "initial-admin-password"): 0o600} {
		if m := mode(p); m != want {
			t.Errorf("%s: mode %v, want %v", p, m, want)
		}
	}
	pwFile := filepath.Join(dir, "initial-admin-password")
	pwb, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "removes the file") {
		t.Fatalf("the start notice must say the file is removed at first login: %q", out.String())
	}
	if _, err := a.Store.AddUser(context.Background(), "test", "tom", "tech-pass-0001", inventory.RoleOperator, ""); err != nil {
		t.Fatal(err)
	}
	s := &authSite{t: t, a: a, srv: srv}
	if st, _, _ := s.apiLogin("tom", "tech-pass-0001", nil); st != 200 {
		t.Fatal(st)
	}
	if st, _, _ := s.apiLogin("admin", "not-the-password", nil); st != 401 {
		t.Fatal(st)
	}
	if _, err := os.Stat(pwFile); err != nil {
		t.Fatalf("another user's login or a wrong admin password must not remove the file: %v", err)
	}
	if st, body, _ := s.apiLogin("admin", strings.TrimSpace(string(pwb)), nil); st != 200 {
		t.Fatalf("admin login: %d %s", st, body)
	}
	if _, err := os.Stat(pwFile); !os.IsNotExist(err) {
		t.Fatalf("the initial password file must be gone after the admin's first login: %v", err)
	}
	if ev := s.audit("auth.initial_password_removed"); len(ev) != 1 {
		t.Fatalf("the removal must be audited: %+v", ev)
	}
}

// TestRegistryTokenAsPasswordIsNoFailedLogin: `podman login -p <token>` sends an API token as
// the Basic password; that is not a wrong password, so it must neither throttle nor lock
// (the CLI's push-disk does this on every push).
func TestRegistryTokenAsPasswordIsNoFailedLogin(t *testing.T) {
	s := newAuthSite(t, nil)
	_, body, _ := s.apiLogin("tom", "tech-pass-0001", nil)
	var out struct{ Token string }
	json.Unmarshal([]byte(body), &out)
	for i := range 6 {
		// A fresh registry cache key each time (the user part differs), so each is checked.
		if st, body, _ := s.registryLogin("tom"+strings.Repeat("x", i), out.Token); st != http.StatusOK {
			t.Fatalf("token as password, attempt %d: %d %s", i+1, st, body)
		}
	}
	for _, e := range s.audit("auth.login") {
		if e.Outcome == "refused" {
			t.Fatalf("a token sent as a password was recorded as a failed login: %+v", e)
		}
	}
	if st, body, _ := s.apiLogin("tom", "tech-pass-0001", nil); st != http.StatusOK {
		t.Fatalf("tom must not be throttled or locked: %d %s", st, body)
	}
}
