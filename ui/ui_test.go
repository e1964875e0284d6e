package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"slate/agent/agentproto"
	"slate/appliance"
	"slate/internal/testenv"
	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
)

type site struct {
	a   *appliance.Appliance
	srv *httptest.Server
}

func newSite(t *testing.T) *site {
	t.Helper()
	cfg := appliance.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.PublicURL = "http://127.0.0.1:8080" // installs need it: without it a desired release is refused
	a, err := appliance.New(context.Background(), cfg, appliance.Options{AdminPassword: "first-pass-01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	if _, err := a.Store.AddUser(ctx, "test", "tom", "tech-pass-01", inventory.RoleOperator, "Tom Technician"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.AddUser(ctx, "test", "aud", "readonly-pw-01", inventory.RoleAuditor, "Ada Auditor"); err != nil {
		t.Fatal(err)
	}
	for i, s := range []struct{ name, mac, state string }{
		{"press-01", "52:54:00:00:10:01", lifecycle.Ready}, {"press-02", "52:54:00:00:10:02", lifecycle.Deployed},
		{"hmi-01", "52:54:00:00:10:03", lifecycle.Enrolled}, {"scada-01", "52:54:00:00:10:04", lifecycle.Failed},
	} {
		m, err := a.Lifecycle.Enroll(ctx, nil, "seed", lifecycle.EnrollRequest{Name: s.name, MACs: []string{s.mac}, Serial: "SN-" + s.name})
		if err != nil {
			t.Fatal(err)
		}
		path := map[string][]string{lifecycle.Ready: {lifecycle.Inspecting, lifecycle.Ready},
			lifecycle.Deployed: {lifecycle.Inspecting, lifecycle.Ready, lifecycle.Provisioning, lifecycle.Deployed},
			lifecycle.Failed:   {lifecycle.Inspecting, lifecycle.Failed}}[s.state]
		for _, st := range path {
			if _, err := a.Lifecycle.Transition(ctx, m.ID, st, "seed", "seeded for the UI test"); err != nil {
				t.Fatal(i, err)
			}
		}
	}
	return &site{a, srv}
}

func browser(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	exe := testenv.RequireCommand(t, "chromium", "chromium")
	// Chromium may still write its profile while it exits: not a t.TempDir (whose cleanup
	// fails the test on a non-empty folder), removed best-effort after the browser is gone.
	profile, err := os.MkdirTemp("", "slate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1024, 768))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	return ctx, func() {
		cancelT()
		cancelC()
		cancelA()
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// shot saves a screenshot under the test's artifact folder for a human look.
func shot(t *testing.T, ctx context.Context, name string) {
	var buf []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&buf, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("SLATE_UI_SHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
}

// waitJS waits until a JavaScript expression is true (after a navigation, a selector may
// still match the page being left).
func waitJS(expr string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var ok bool
			// Errors are expected while the old page's context goes away: try again.
			if err := chromedp.Evaluate(expr, &ok).Do(ctx); err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", expr, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

func login(t *testing.T, ctx context.Context, base, user, pw string) {
	t.Helper()
	if err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/machines"),
		chromedp.WaitVisible(`#username`, chromedp.ByID),
		chromedp.SendKeys(`#username`, user, chromedp.ByID),
		chromedp.SendKeys(`#password`, pw, chromedp.ByID),
		chromedp.Submit(`#password`, chromedp.ByID),
		waitJS(`location.pathname !== "/login" && document.readyState === "complete"`),
		chromedp.WaitVisible(`header.top`, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
}

func TestTechnicianFlowInChromium(t *testing.T) {
	s := newSite(t)
	ctx, cancel := browser(t)
	defer cancel()

	// A wrong password keeps the technician on the login page with a message.
	var msg string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(s.srv.URL+"/machines"),
		chromedp.WaitVisible(`#username`, chromedp.ByID),
		chromedp.SendKeys(`#username`, "tom", chromedp.ByID),
		chromedp.SendKeys(`#password`, "nope", chromedp.ByID),
		chromedp.Submit(`#password`, chromedp.ByID),
		chromedp.WaitVisible(`.flash.error`, chromedp.ByQuery),
		chromedp.Text(`.flash.error`, &msg, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "Wrong username or password") {
		t.Fatalf("login error: %q", msg)
	}
	shot(t, ctx, "login-error")

	login(t, ctx, s.srv.URL, "tom", "tech-pass-01")
	var table, counts string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Text(`table`, &table, chromedp.ByQuery),
		chromedp.Text(`.counts`, &counts, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"press-01", "press-02", "hmi-01", "scada-01", "52:54:00:00:10:01", "ready", "deployed", "failed"} {
		if !strings.Contains(table, want) {
			t.Fatalf("machine list lacks %q:\n%s", want, table)
		}
	}
	if !strings.Contains(counts, "4") || !strings.Contains(counts, "deployed") {
		t.Fatalf("state counts: %q", counts)
	}
	shot(t, ctx, "machines")

	// Search narrows the list.
	if err := chromedp.Run(ctx,
		chromedp.SendKeys(`input[name=q]`, "press", chromedp.ByQuery),
		chromedp.Submit(`input[name=q]`, chromedp.ByQuery),
		waitJS(`location.search.includes("q=press") && document.readyState === "complete" && !!document.querySelector("table")`),
		chromedp.Text(`table`, &table, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table, "press-01") || strings.Contains(table, "hmi-01") {
		t.Fatalf("search 'press':\n%s", table)
	}

	// Enroll: a bad MAC is refused with a message; a good one lands on the machine page.
	if err := chromedp.Run(ctx,
		chromedp.Navigate(s.srv.URL+"/machines/new"),
		chromedp.WaitVisible(`#macs`, chromedp.ByID),
		chromedp.SendKeys(`#name`, "robot-cell-7", chromedp.ByID),
		chromedp.SendKeys(`#macs`, "52:54:00:zz", chromedp.ByID),
		chromedp.Submit(`#name`, chromedp.ByID),
		waitJS(`document.readyState === "complete" && !!document.querySelector(".flash.error")`),
		chromedp.Text(`.flash.error`, &msg, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "not a MAC address") {
		t.Fatalf("enroll error: %q", msg)
	}
	var name, identity string
	if err := chromedp.Run(ctx,
		chromedp.SetValue(`#macs`, "52:54:00:00:20:07", chromedp.ByID),
		chromedp.SendKeys(`#serial`, "RC7-0001", chromedp.ByID),
		chromedp.Submit(`#name`, chromedp.ByID),
		waitJS(`location.pathname.startsWith("/machines/m-") && document.readyState === "complete"`),
		chromedp.WaitVisible(`h1 .badge`, chromedp.ByQuery),
		chromedp.Text(`h1`, &name, chromedp.ByQuery),
		chromedp.Text(`.grid .panel`, &identity, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(name, "robot-cell-7") || !strings.Contains(name, "enrolled") || !strings.Contains(identity, "52:54:00:00:20:07") {
		t.Fatalf("machine page after enroll: %q / %q", name, identity)
	}
	m, err := s.a.Store.GetMachine(context.Background(), "robot-cell-7")
	if err != nil || m.Serial != "RC7-0001" {
		t.Fatalf("enrolled machine in the store: %+v %v", m, err)
	}

	// Move it through the actions form; the badge and the timeline follow.
	var timeline string
	if err := chromedp.Run(ctx,
		chromedp.SetValue(`select[name=to]`, "inspecting", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=reason]`, "cabled on line 7", chromedp.ByQuery),
		chromedp.Submit(`input[name=reason]`, chromedp.ByQuery),
		chromedp.WaitVisible(`h1 .badge.s-inspecting`, chromedp.ByQuery),
		chromedp.Text(`h1`, &name, chromedp.ByQuery),
		chromedp.Text(`.timeline`, &timeline, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(name, "inspecting") || !strings.Contains(timeline, "cabled on line 7") || !strings.Contains(timeline, "tom") {
		t.Fatalf("after transition: %q\n%s", name, timeline)
	}
	shot(t, ctx, "machine")

	// Live: a change made elsewhere shows up on the open page without a reload.
	if _, err := s.a.Lifecycle.Transition(context.Background(), m.ID, lifecycle.Ready, "agent", "inspected"); err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(ctx, 15*time.Second)
	defer lcancel()
	if err := chromedp.Run(lctx, chromedp.WaitVisible(`h1 .badge.s-ready`, chromedp.ByQuery)); err != nil {
		t.Fatalf("the machine page did not update live: %v", err)
	}

	// The technician has no audit or users pages.
	var body string
	chromedp.Run(ctx, chromedp.Navigate(s.srv.URL+"/users"), chromedp.Text(`main`, &body, chromedp.ByQuery))
	if !strings.Contains(body, "may not open this page") {
		t.Fatalf("operator on /users: %q", body)
	}
}

func TestAuditorSeesNoActionsAndTheChain(t *testing.T) {
	s := newSite(t)
	ctx, cancel := browser(t)
	defer cancel()
	login(t, ctx, s.srv.URL, "aud", "readonly-pw-01")
	var nav, page string
	var forms int
	m, _ := s.a.Store.GetMachine(context.Background(), "press-01")
	if err := chromedp.Run(ctx,
		chromedp.Text(`header.top nav`, &nav, chromedp.ByQuery),
		chromedp.Navigate(s.srv.URL+"/machines/"+m.ID),
		chromedp.WaitVisible(`.timeline`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('form[action$="/transition"]').length`, &forms),
		chromedp.Navigate(s.srv.URL+"/audit"),
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Text(`main`, &page, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(nav, "Enroll") || !strings.Contains(nav, "Audit log") || strings.Contains(nav, "Users") {
		t.Fatalf("auditor nav: %q", nav)
	}
	if forms != 0 {
		t.Fatalf("auditor sees %d action forms", forms)
	}
	if !strings.Contains(page, "Hash chain intact") || !strings.Contains(page, "machine.transition") {
		t.Fatalf("audit page:\n%.1500s", page)
	}
	shot(t, ctx, "audit")
}

// TestFormsNeedCSRFAndSession posts forms without a browser: a missing or foreign CSRF token
// and a missing session are refused, and nothing is written.
func TestFormsNeedCSRFAndSession(t *testing.T) {
	s := newSite(t)
	jar := &cookieJar{}
	cl := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// No session: a page redirects to the login page; a form post is refused.
	r, err := cl.Get(s.srv.URL + "/machines?state=ready")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next=%2Fmachines%3Fstate%3Dready" {
		t.Fatalf("no session: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	r, _ = cl.PostForm(s.srv.URL+"/machines", url.Values{"macs": {"52:54:00:00:30:01"}})
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("form post without a session: %d", r.StatusCode)
	}
	// Log in properly (the login form itself is CSRF-protected by a pre-session cookie).
	r, _ = cl.Get(s.srv.URL + "/login")
	page := readAll(r)
	csrf := between(page, `name="csrf" value="`, `"`)
	r, _ = cl.PostForm(s.srv.URL+"/login", url.Values{"csrf": {"forged"}, "username": {"tom"}, "password": {"tech-pass-01"}})
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("login with a forged CSRF token: %d", r.StatusCode)
	}
	r.Body.Close()
	r, _ = cl.PostForm(s.srv.URL+"/login", url.Values{"csrf": {csrf}, "username": {"tom"}, "password": {"tech-pass-01"}})
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", r.StatusCode)
	}
	for _, c := range jar.cookies {
		if c.Name == "slate_session" && (!c.HttpOnly || c.SameSite != http.SameSiteStrictMode) {
			t.Fatalf("session cookie must be HttpOnly and SameSite=Strict: %+v", c)
		}
	}
	_, before, _ := s.a.Store.ListMachines(context.Background(), inventory.MachineFilter{})
	r, _ = cl.PostForm(s.srv.URL+"/machines", url.Values{"macs": {"52:54:00:00:30:01"}, "csrf": {"0000"}})
	body := readAll(r)
	if r.StatusCode != http.StatusForbidden || !strings.Contains(body, "did not come from Slate") {
		t.Fatalf("forged CSRF: %d %.300s", r.StatusCode, body)
	}
	_, after, _ := s.a.Store.ListMachines(context.Background(), inventory.MachineFilter{})
	if after != before {
		t.Fatalf("a forged form wrote a machine (%d → %d)", before, after)
	}
	// With the page's own token, the technician sets an approved release as desired.
	ctx := context.Background()
	s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		r, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "7", Kind: "disk", ImageRef: "plant/hmi", CreatedBy: "x"})
		if err != nil {
			return err
		}
		return tx.SetReleaseState(ctx, r.ID, lifecycle.ReleaseApproved, "y")
	})
	m, _ := s.a.Store.GetMachine(ctx, "press-01")
	r, _ = cl.Get(s.srv.URL + "/machines/" + m.ID)
	page = readAll(r)
	if !strings.Contains(page, "hmi@7 (disk)") {
		t.Fatal("the machine page offers no approved release")
	}
	csrf = between(page, `name="csrf" value="`, `"`)
	r, _ = cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/release", url.Values{"csrf": {csrf}, "release": {"hmi@7"}})
	r.Body.Close()
	if got, _ := s.a.Store.GetMachine(ctx, m.ID); r.StatusCode != http.StatusSeeOther || got.DesiredRelease != "hmi@7" {
		t.Fatalf("set desired release: %d, machine wants %q", r.StatusCode, got.DesiredRelease)
	}
}

type cookieJar struct{ cookies []*http.Cookie }

func (j *cookieJar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	for _, c := range cs {
		replaced := false
		for i, o := range j.cookies {
			if o.Name == c.Name {
				j.cookies[i], replaced = c, true
			}
		}
		if !replaced {
			j.cookies = append(j.cookies, c)
		}
	}
}
func (j *cookieJar) Cookies(*url.URL) []*http.Cookie { return j.cookies }

func readAll(r *http.Response) string {
	defer r.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return v
}

// TestDecommissionInChromium: the technician decommissions with a typed name, sees the wipe
// plan, and the erase button stays disabled until the machine's name is typed.
func TestDecommissionInChromium(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	m, _ := s.a.Store.GetMachine(ctx, "press-02")
	br, cancel := browser(t)
	defer cancel()
	login(t, br, s.srv.URL, "tom", "tech-pass-01")
	var flash string
	if err := chromedp.Run(br,
		chromedp.Navigate(s.srv.URL+"/machines/"+m.ID),
		chromedp.WaitVisible(`#decom-btn`, chromedp.ByID),
		chromedp.SendKeys(`input[name=confirm_name]`, "press-02", chromedp.ByQuery),
		chromedp.Submit(`input[name=confirm_name]`, chromedp.ByQuery),
		waitJS(`document.readyState === "complete" && !!document.querySelector("h1 .badge.s-decommissioning")`),
		chromedp.Text(`.flash.ok`, &flash, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flash, "being decommissioned") {
		t.Fatalf("flash: %q", flash)
	}
	// The agent's probe proposes a plan (as a finished wipe-plan task).
	plan, err := wipe.MakePlan(m.ID, []wipe.DriveInfo{{Name: "vda", Path: "/dev/vda", Transport: wipe.TransportVirtio, Media: wipe.MediaVirtual,
		Model: "QEMU HARDDISK", Serial: "VD-0001", SizeBytes: 1 << 30, LogicalBlockSize: 512, PhysicalBlockSize: 512}}, wipe.DefaultPolicy(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pj, _ := json.Marshal(plan)
	task, err := s.a.Store.CreateTask(ctx, "test", m.ID, string(agentproto.KindWipePlan), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.a.Store.ClaimNextTask(ctx, m.ID, 3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.a.Store.FinishTask(ctx, m.ID, task.ID, inventory.TaskOutcome{State: inventory.TaskSucceeded, Result: pj}, nil); err != nil {
		t.Fatal(err)
	}
	var disabled bool
	var table string
	if err := chromedp.Run(br,
		chromedp.Navigate(s.srv.URL+"/machines/"+m.ID),
		chromedp.WaitVisible(`#wipe-btn`, chromedp.ByID),
		chromedp.Text(`#wipe-btn`, &flash, chromedp.ByID),
		chromedp.Evaluate(`document.getElementById("wipe-btn").disabled`, &disabled),
		chromedp.Text(`form[action$="/wipe/confirm"]`, &table, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !disabled {
		t.Fatal("the erase button is enabled before the name is typed")
	}
	var body string
	chromedp.Run(br, chromedp.Text(`main`, &body, chromedp.ByQuery))
	if !strings.Contains(body, "VD-0001") || !strings.Contains(body, "Wipe plan") {
		t.Fatalf("plan not shown:\n%.1500s", body)
	}
	shot(t, br, "wipe-plan")
	// Who performs the sanitization: the name is prefilled (no wipe.certificate_file here:
	// the signed-in user), the rest is typed; all go on the certificates.
	var prefilled string
	if err := chromedp.Run(br,
		chromedp.Value(`input[name=person_name]`, &prefilled, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=person_title]`, "Line technician", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=person_organization]`, "Plant 4", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=person_location]`, "Hall 2", chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if prefilled != "tom" {
		t.Fatalf("person name prefilled with %q, want the signed-in user", prefilled)
	}
	shot(t, br, "wipe-person")
	if err := chromedp.Run(br,
		chromedp.SendKeys(`form[action$="/wipe/confirm"] input[name=confirm_name]`, "press-02", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("wipe-btn").disabled`, &disabled),
	); err != nil {
		t.Fatal(err)
	}
	if disabled {
		t.Fatal("the erase button stays disabled after typing the name")
	}
	if err := chromedp.Run(br,
		chromedp.Click(`#wipe-btn`, chromedp.ByID),
		waitJS(`document.readyState === "complete" && location.search.includes("ok=")`),
		chromedp.Text(`.flash.ok`, &flash, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flash, "Wipe confirmed") {
		t.Fatalf("after confirming: %q", flash)
	}
	wt, ok, _ := s.a.Store.LatestTask(ctx, m.ID, string(agentproto.KindWipe))
	var p wipe.TaskParams
	json.Unmarshal(wt.Params, &p)
	if !ok || p.Authorization.TaskID != wt.ID || p.Authorization.ConfirmedBy != "tom" || p.Authorization.PlanDigest != plan.Digest() {
		t.Fatalf("wipe task: %+v %+v", wt, p.Authorization)
	}
	var person []byte
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		person, _, err = tx.WipePerson(ctx, wt.ID)
		return err
	}); err != nil || !strings.Contains(string(person), `"title":"Line technician"`) || !strings.Contains(string(person), `"name":"tom"`) {
		t.Fatalf("person stored with the confirmation: %s %v", person, err)
	}
}
