package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"slate/inventory"
	"slate/lifecycle"
)

// webUser is a logged-in HTTP client of the UI (no browser) and a page's CSRF token.
type webUser struct {
	t    *testing.T
	base string
	cl   *http.Client
}

func logIn(t *testing.T, s *site, user, pw string) *webUser {
	t.Helper()
	cl := &http.Client{Jar: &cookieJar{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := cl.Get(s.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	csrf := between(readAll(r), `name="csrf" value="`, `"`)
	r, _ = cl.PostForm(s.srv.URL+"/login", url.Values{"csrf": {csrf}, "username": {user}, "password": {pw}})
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login %s: %d", user, r.StatusCode)
	}
	return &webUser{t, s.srv.URL, cl}
}

func (w *webUser) get(path string) (int, string) {
	w.t.Helper()
	r, err := w.cl.Get(w.base + path)
	if err != nil {
		w.t.Fatal(err)
	}
	return r.StatusCode, readAll(r)
}

// post sends a form with the CSRF token of the machine list.
func (w *webUser) post(path string, v url.Values) (int, string, string) {
	w.t.Helper()
	_, page := w.get("/machines")
	if v.Get("csrf") == "" {
		v.Set("csrf", between(page, `name="csrf" value="`, `"`))
	}
	r, err := w.cl.PostForm(w.base+path, v)
	if err != nil {
		w.t.Fatal(err)
	}
	return r.StatusCode, readAll(r), r.Header.Get("Location")
}

func ids(t *testing.T, s *site, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		m, err := s.a.Store.GetMachine(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.ID)
	}
	return out
}

func stateOf(t *testing.T, s *site, name string) string {
	m, err := s.a.Store.GetMachine(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return m.State
}

// TestBulkActionsOverHTTP: each bulk action goes through the lifecycle per machine (each in
// the audit log), a refused machine does not stop the others and shows as a red row, a
// wrong typed count decommissions nothing, auditors and forged forms change nothing.
func TestBulkActionsOverHTTP(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	tom := logIn(t, s, "tom", "tech-pass-01")

	// No reason: refused in red at the reason field, nothing moved.
	st, body, _ := tom.post("/machines/bulk", url.Values{"action": {"reinspect"}, "id": ids(t, s, "press-01", "hmi-01")})
	if st != http.StatusUnprocessableEntity || !strings.Contains(body, `class="flash error"`) || !strings.Contains(body, `id="bulk-reason" name="reason" value="" placeholder="for the audit log" aria-invalid="true" aria-describedby="flash"`) {
		t.Fatalf("bulk re-inspect without a reason: %d %.2000s", st, between(body, "<main>", "</main>"))
	}
	if stateOf(t, s, "press-01") != lifecycle.Ready {
		t.Fatal("a refused bulk form moved a machine")
	}
	// Nothing ticked: refused.
	if st, body, _ = tom.post("/machines/bulk", url.Values{"action": {"reinspect"}, "reason": {"x"}}); st != http.StatusUnprocessableEntity || !strings.Contains(body, "tick the machines") {
		t.Fatalf("bulk with nothing ticked: %d", st)
	}
	// Re-inspect press-01 (ready) and hmi-01 (enrolled); a sanitized machine is refused by
	// the lifecycle: the others still move, its row is red and it stays ticked.
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		_, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: "wiped-01", State: lifecycle.Sanitized})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st, body, _ = tom.post("/machines/bulk", url.Values{"action": {"reinspect"}, "reason": {"new NIC firmware"},
		"id": ids(t, s, "press-01", "hmi-01", "wiped-01"), "back": {"sort=name&dir=desc"}})
	if st != http.StatusOK || stateOf(t, s, "press-01") != lifecycle.Inspecting || stateOf(t, s, "hmi-01") != lifecycle.Inspecting || stateOf(t, s, "wiped-01") != lifecycle.Sanitized {
		t.Fatalf("bulk re-inspect: %d, states %s %s %s", st, stateOf(t, s, "press-01"), stateOf(t, s, "hmi-01"), stateOf(t, s, "wiped-01"))
	}
	res := between(body, `id="bulk-results"`, "</table>")
	scada := ids(t, s, "wiped-01")[0]
	if !strings.Contains(res, `class="refused" data-id="`+scada+`"`) || strings.Count(res, `class="done"`) != 2 || !strings.Contains(body, "Done for 2 of 3 machines; 1 refused") {
		t.Fatalf("per-machine results: %s", res)
	}
	if !strings.Contains(body, `value="`+scada+`" form="bulk" checked`) {
		t.Fatal("the refused machine is not ticked for another try")
	}
	for _, n := range []string{"press-01", "hmi-01"} {
		ev, _ := s.a.Store.ListAudit(ctx, inventory.AuditFilter{Subject: ids(t, s, n)[0], Action: "machine.transition", Actor: "tom"})
		if len(ev) != 1 || ev[0].Details["reason"] != "new NIC firmware" {
			t.Fatalf("audit of %s: %+v", n, ev)
		}
	}
	if ev, _ := s.a.Store.ListAudit(ctx, inventory.AuditFilter{Subject: scada, Action: "machine.bulk"}); len(ev) != 1 || ev[0].Outcome != "refused" {
		t.Fatalf("audit of the refused machine: %+v", ev)
	}

	// Set desired release: only an approved one.
	var relID string
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		r, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "7", Kind: "disk", ImageRef: "plant/hmi", CreatedBy: "x"})
		if err != nil {
			return err
		}
		d, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "8", Kind: "disk", ImageRef: "plant/hmi", CreatedBy: "x"})
		if err != nil {
			return err
		}
		relID = d.ID
		return tx.SetReleaseState(ctx, r.ID, lifecycle.ReleaseApproved, "y")
	}); err != nil {
		t.Fatal(err)
	}
	if st, body, _ = tom.post("/machines/bulk", url.Values{"action": {"release"}, "release": {relID}, "id": ids(t, s, "press-02")}); st != http.StatusUnprocessableEntity || !strings.Contains(body, "approved release") {
		t.Fatalf("bulk set to a draft release: %d", st)
	}
	if st, _, _ = tom.post("/machines/bulk", url.Values{"action": {"release"}, "release": {"hmi@7"}, "id": ids(t, s, "press-02")}); st != http.StatusOK {
		t.Fatalf("bulk set release: %d", st)
	}
	if m, _ := s.a.Store.GetMachine(ctx, "press-02"); m.DesiredRelease != "hmi@7" {
		t.Fatalf("press-02 wants %q", m.DesiredRelease)
	}

	// Expect boot: armed for a live machine, refused for a retired one (red row).
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		_, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: "gone-01", State: lifecycle.Retired})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st, body, _ = tom.post("/machines/bulk", url.Values{"action": {"expect-boot"}, "id": ids(t, s, "scada-01", "gone-01")})
	if _, armed, _ := s.a.Store.BootExpected(ctx, ids(t, s, "scada-01")[0]); st != http.StatusOK || !armed {
		t.Fatalf("bulk expect boot: %d, armed %v", st, armed)
	}
	if _, armed, _ := s.a.Store.BootExpected(ctx, ids(t, s, "gone-01")[0]); armed || !strings.Contains(between(body, `id="bulk-results"`, "</table>"), `class="refused" data-id="`+ids(t, s, "gone-01")[0]+`"`) {
		t.Fatalf("a retired machine's boot was expected, or its refusal is not a red row: %s", between(body, `id="bulk-results"`, "</table>"))
	}
	// All refused: red banner, 409.
	if st, body, _ = tom.post("/machines/bulk", url.Values{"action": {"expect-boot"}, "id": ids(t, s, "gone-01")}); st != http.StatusConflict || !strings.Contains(body, `class="flash error"`) {
		t.Fatalf("bulk with every machine refused: %d", st)
	}

	// Decommission: the typed count must match the ticked machines.
	two := ids(t, s, "press-02", "hmi-01")
	for _, typed := range []string{"", "decommission 3 machines", "decommission 2 machine", "press-02"} {
		st, body, _ = tom.post("/machines/bulk", url.Values{"action": {"decommission"}, "confirm": {typed}, "id": two})
		if st != http.StatusUnprocessableEntity || !strings.Contains(body, `class="flash error"`) || !strings.Contains(body, `\"decommission 2 machines\"`) && !strings.Contains(body, `&#34;decommission 2 machines&#34;`) {
			t.Fatalf("decommission typed %q: %d %.1500s", typed, st, between(body, "<main>", "</main>"))
		}
		if stateOf(t, s, "press-02") == lifecycle.Decommissioning {
			t.Fatalf("typed %q decommissioned", typed)
		}
	}
	if st, _, _ = tom.post("/machines/bulk", url.Values{"action": {"decommission"}, "confirm": {"decommission 2 machines"}, "id": two}); st != http.StatusOK {
		t.Fatalf("batch decommission: %d", st)
	}
	if stateOf(t, s, "press-02") != lifecycle.Decommissioning || stateOf(t, s, "hmi-01") != lifecycle.Decommissioning {
		t.Fatal("batch decommission did not move both")
	}

	// An auditor may not; a forged form may not.
	aud := logIn(t, s, "aud", "readonly-pw-01")
	if st, _, _ = aud.post("/machines/bulk", url.Values{"action": {"reinspect"}, "reason": {"x"}, "id": ids(t, s, "press-01")}); st != http.StatusForbidden {
		t.Fatalf("auditor bulk: %d", st)
	}
	if _, page := aud.get("/machines"); strings.Contains(page, `id="bulk"`) || strings.Contains(page, `name="id"`) {
		t.Fatal("the auditor is offered bulk actions")
	}
	if st, _, _ = tom.post("/machines/bulk", url.Values{"csrf": {"forged"}, "action": {"expect-boot"}, "id": ids(t, s, "press-01")}); st != http.StatusForbidden {
		t.Fatalf("forged bulk form: %d", st)
	}
}

// TestMachineListSortPageRetiredSaved: sort links, page 2, retired hidden by default and
// shown by the toggle, columns for release and IP, saved filters per user.
func TestMachineListSortPageRetiredSaved(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		for i := range 60 {
			st := lifecycle.Ready
			if i%20 == 0 {
				st = lifecycle.Retired
			}
			if _, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: fmt.Sprintf("cell-%02d", i), State: st,
				Labels: map[string]string{"ip": fmt.Sprintf("10.3.0.%d", i+1)}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// press-01 has no ip label: its bound lease gives the IP column; press-02's lease expired.
	if err := s.a.Store.CommitLeases(ctx, []inventory.LeaseChange{
		{Lease: inventory.Lease{MAC: "52:54:00:00:10:01", IP: netip.MustParseAddr("10.5.0.21"), Iface: "eth1", State: "bound", ExpiresAt: time.Now().Add(time.Hour)}},
		{Lease: inventory.Lease{MAC: "52:54:00:00:10:02", IP: netip.MustParseAddr("10.5.0.22"), Iface: "eth1", State: "bound", ExpiresAt: time.Now().Add(-time.Minute)}},
	}); err != nil {
		t.Fatal(err)
	}
	tom := logIn(t, s, "tom", "tech-pass-01")
	if _, page := tom.get("/machines?q=press"); !strings.Contains(page, `title="from the DHCP lease of 52:54:00:00:10:01">10.5.0.21<`) || strings.Contains(page, "10.5.0.22") {
		t.Fatalf("IP column from leases: %s", between(page, "<tbody>", "</tbody>"))
	}
	// 64 machines, 3 retired hidden: 61 listed, page 1 of 2 by 50.
	_, page := tom.get("/machines")
	if strings.Contains(page, ">cell-00<") || !strings.Contains(page, "50 of 61") || !strings.Contains(page, "Retired machines hidden: 3") || !strings.Contains(page, "10.3.0.2") {
		t.Fatalf("default list: %.3000s", between(page, `class="pager"`, "</div>"))
	}
	_, page = tom.get("/machines?sort=name&dir=desc&offset=50")
	// Descending: scada-01, press-02, press-01, hmi-01, cell-59 … (no 40, 20, 00: retired):
	// page 2 holds the last 11, cell-11 … cell-01.
	if !strings.Contains(page, "11 of 61 · page 2 of 2") || !strings.Contains(page, ">cell-11<") || !strings.Contains(page, ">cell-01<") || strings.Contains(page, ">cell-12<") {
		t.Fatalf("page 2 desc: %s", between(page, `class="pager"`, "</div>"))
	}
	if !strings.Contains(page, `aria-sort="descending"`) {
		t.Fatal("the sorted column does not say so")
	}
	// The toolbar offers the same sort (a phone's stacked table has no header to click).
	if !strings.Contains(page, `<option value="name" selected>Sort: Name</option>`) || !strings.Contains(page, `<option value="desc" selected>descending</option>`) {
		t.Fatal("the toolbar's sort does not show the current order")
	}
	_, page = tom.get("/machines?retired=1&size=100")
	if !strings.Contains(page, ">cell-00<") || !strings.Contains(page, "64 of 64") {
		t.Fatalf("with retired: %s", between(page, `class="pager"`, "</div>"))
	}
	// Saved filter: listed for tom only, opens the list it saved, deleted.
	st, _, loc := tom.post("/machines/filters", url.Values{"name": {"Cell IPs"}, "query": {"q=cell&sort=ip&dir=desc&offset=50&ok=filter-saved"}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/machines?dir=desc&q=cell&sort=ip") {
		t.Fatalf("save filter: %d %s", st, loc)
	}
	_, page = tom.get("/machines")
	if !strings.Contains(page, `href="/machines?dir=desc&amp;q=cell&amp;sort=ip" >Cell IPs</a>`) {
		t.Fatalf("saved filter not listed: %s", between(page, "<main>", "<form"))
	}
	aud := logIn(t, s, "aud", "readonly-pw-01")
	if _, p := aud.get("/machines"); strings.Contains(p, "Cell IPs") {
		t.Fatal("another user sees tom's saved filter")
	}
	if st, body, _ := tom.post("/machines/filters", url.Values{"name": {""}, "query": {"q=x"}}); st != http.StatusUnprocessableEntity || !strings.Contains(body, `id="filter_name" name="name" maxlength="80" placeholder="e.g. Hall 3 failed" aria-invalid="true"`) {
		t.Fatalf("filter without a name: %d", st)
	}
	if st, _, _ := aud.post("/machines/filters/delete", url.Values{"name": {"Cell IPs"}}); st != http.StatusNotFound {
		t.Fatalf("auditor deletes tom's filter: %d", st)
	}
	if st, _, _ := tom.post("/machines/filters/delete", url.Values{"name": {"Cell IPs"}}); st != http.StatusSeeOther {
		t.Fatalf("delete filter: %d", st)
	}
	if f, _ := s.a.Store.ListFilters(ctx, "tom"); len(f) != 0 {
		t.Fatalf("after delete: %v", f)
	}
}

// TestBulkInChromium: a technician ticks two machines and re-inspects them, then
// decommissions two with the typed count; a wrong count is refused in red at its field.
func TestBulkInChromium(t *testing.T) {
	s := newSite(t)
	br, cancel := browser(t)
	defer cancel()
	login(t, br, s.srv.URL, "tom", "tech-pass-01")
	tick := func(names ...string) chromedp.Action {
		var acts chromedp.Tasks
		for _, id := range ids(t, s, names...) {
			acts = append(acts, chromedp.Click(`input[name=id][value="`+id+`"]`, chromedp.ByQuery))
		}
		return acts
	}
	var flash, refusedRows string
	if err := chromedp.Run(br,
		chromedp.Navigate(s.srv.URL+"/machines"),
		chromedp.WaitVisible(`#bulk`, chromedp.ByID),
		tick("press-01", "hmi-01"),
		chromedp.SetValue(`#bulk-action`, "reinspect", chromedp.ByID),
		chromedp.SendKeys(`#bulk-reason`, "BIOS update on line 3", chromedp.ByID),
		chromedp.Click(`#bulk-apply`, chromedp.ByID),
		waitJS(`document.readyState === "complete" && !!document.querySelector("#bulk-results")`),
		chromedp.Text(`#flash`, &flash, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	shot(t, br, "bulk-reinspect")
	if !strings.Contains(flash, "Done for all 2 machines") || stateOf(t, s, "press-01") != lifecycle.Inspecting || stateOf(t, s, "hmi-01") != lifecycle.Inspecting {
		t.Fatalf("bulk re-inspect: %q, %s %s", flash, stateOf(t, s, "press-01"), stateOf(t, s, "hmi-01"))
	}
	// Wrong count: red, tied to the confirmation field, nothing decommissioned.
	var described, cls string
	if err := chromedp.Run(br,
		chromedp.Navigate(s.srv.URL+"/machines"),
		chromedp.WaitVisible(`#bulk`, chromedp.ByID),
		tick("press-02", "scada-01"),
		chromedp.SetValue(`#bulk-action`, "decommission", chromedp.ByID),
		chromedp.SendKeys(`#bulk-confirm`, "decommission 3 machines", chromedp.ByID),
		chromedp.Click(`#bulk-apply`, chromedp.ByID),
		waitJS(`document.readyState === "complete" && !!document.querySelector("#flash")`),
		chromedp.Text(`#flash`, &flash, chromedp.ByID),
		chromedp.Evaluate(`document.getElementById("flash").className`, &cls),
		chromedp.Evaluate(`document.getElementById("bulk-confirm").getAttribute("aria-describedby") || ""`, &described),
	); err != nil {
		t.Fatal(err)
	}
	shot(t, br, "bulk-decommission-wrong-count")
	var ticked int
	js(t, br, `document.querySelectorAll("input[name=id]:checked").length`, &ticked)
	if ticked != 2 {
		t.Fatalf("after the refusal %d machines are ticked, want the 2 the technician ticked", ticked)
	}
	if !strings.Contains(cls, "error") || !strings.Contains(flash, `"decommission 2 machines"`) || described != "flash" || stateOf(t, s, "press-02") == lifecycle.Decommissioning {
		t.Fatalf("wrong count: class %q, %q, described by %q, press-02 %s", cls, flash, described, stateOf(t, s, "press-02"))
	}
	if err := chromedp.Run(br,
		chromedp.Navigate(s.srv.URL+"/machines"),
		chromedp.WaitVisible(`#bulk`, chromedp.ByID),
		tick("press-02", "scada-01"),
		chromedp.SetValue(`#bulk-action`, "decommission", chromedp.ByID),
		chromedp.SendKeys(`#bulk-confirm`, "decommission 2 machines", chromedp.ByID),
		chromedp.Click(`#bulk-apply`, chromedp.ByID),
		waitJS(`document.readyState === "complete" && !!document.querySelector("#bulk-results")`),
		chromedp.Text(`#flash`, &flash, chromedp.ByID),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#bulk-results tr.refused")).map(r => r.textContent).join("|")`, &refusedRows),
	); err != nil {
		t.Fatal(err)
	}
	shot(t, br, "bulk-decommission")
	if !strings.Contains(flash, "Done for all 2 machines") || refusedRows != "" {
		t.Fatalf("batch decommission: %q, refused %q", flash, refusedRows)
	}
	deadline := time.Now().Add(5 * time.Second)
	for stateOf(t, s, "press-02") != lifecycle.Decommissioning || stateOf(t, s, "scada-01") != lifecycle.Decommissioning {
		if time.Now().After(deadline) {
			t.Fatalf("after the batch: %s %s", stateOf(t, s, "press-02"), stateOf(t, s, "scada-01"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
