package appliance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/api"
	"slate/appliance"
	"slate/inventory"
	"slate/redfish/redfishtest"
)

// writeCase is one write route called on a full disk.
type writeCase struct {
	// want5xx: the request is valid, so only the failed commit can refuse it (507 expected).
	// false: it is refused before it writes (say why in note); it must still not succeed.
	want5xx bool
	note    string
	req     func() *http.Request
}

// mountTmpfs mounts a small tmpfs on a fresh directory (the test runs as root, as `make test`
// does), so "disk full" is a real ENOSPC from the kernel, not a mock.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a %s tmpfs on %s (this test needs root to make a real full disk): %v %s", size, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system says ENOSPC, and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xa5}, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v (want ENOSPC)", p, err)
			}
			return p
		}
	}
}

type sessionCookie struct{ token, csrf string }

// uiSession opens a web UI session for a user and reads the CSRF token off a page.
func (h *harness) uiSession(user string) sessionCookie {
	h.t.Helper()
	ctx := context.Background()
	var tok string
	if err := h.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		tok, err = tx.IssueToken(ctx, user, "session", time.Hour)
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/machines", nil)
	req.AddCookie(&http.Cookie{Name: "slate_session", Value: tok})
	st, body, _ := h.send(req)
	csrf := between(string(body), `name="csrf" value="`, `"`)
	if st != 200 || csrf == "" {
		h.t.Fatalf("UI session for %s: %d, no CSRF token in the page", user, st)
	}
	return sessionCookie{tok, csrf}
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}

// send does a request without following redirects (a 303 to a success banner is an answer).
func (h *harness) send(req *http.Request) (int, []byte, http.Header) {
	h.t.Helper()
	cl := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (h *harness) jsonReq(method, path, bearer string, body any) func() *http.Request {
	return func() *http.Request {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, h.srv.URL+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return req
	}
}

func (h *harness) formReq(path string, s sessionCookie, form url.Values) func() *http.Request {
	return func() *http.Request {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Set("csrf", s.csrf)
		req, _ := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: "slate_session", Value: s.token})
		return req
	}
}

// writeRoutes lists every route that can write: the API and UI routes with a writing method
// (from the router itself) and every agent API endpoint (its GET /tasks/next claims a task).
func writeRoutes(a *appliance.Appliance) []string {
	var out []string
	for _, r := range a.Echo().Routes() {
		switch {
		case r.Method != "POST" && r.Method != "PUT" && r.Method != "PATCH" && r.Method != "DELETE":
		case r.Path == "/api/v1/*": // the catch-all that answers 404
		case r.Path == "/v2" || strings.HasPrefix(r.Path, "/v2/"):
			// The OCI registry stores blobs as files, not in the database; image/registry owns what a
			// push on a full disk answers.
		default:
			out = append(out, r.Method+" "+r.Path)
		}
	}
	for _, p := range a.AgentEndpoints() {
		if strings.Contains(p, " ") { // "METHOD /path"; the bare pattern is the 404 catch-all
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// TestEveryWriteFailsLoudlyOnAFullDisk: Slate's data directory is a real file system that
// fills up. Every write route — API, web UI, agent API — must then answer a server error
// naming the cause (never 2xx, never a redirect to a success banner), /readyz must say not
// ready, and nothing half-written may remain; once space is freed, writes work again and
// /readyz recovers. The route list comes from the router, so a new write route without a
// case here fails the test.
func TestEveryWriteFailsLoudlyOnAFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "8m")
	h := newHarnessIn(t, dir, appliance.Options{ReadyProbeEvery: 50 * time.Millisecond}, func(c *appliance.Config) {
		c.PublicURL = "http://127.0.0.1:1" // installs possible: a desired release may be set
	})
	ctx := context.Background()
	op, ad := h.tok["operator"], h.tok["admin"]

	// What the cases act on, made while the disk has room.
	enroll := func(name, mac string) inventory.Machine {
		st, b := h.do("POST", "/api/v1/machines", op, map[string]any{"name": name, "macs": []string{mac}})
		if st != 201 {
			t.Fatalf("enroll %s: %d %s", name, st, b)
		}
		var m inventory.Machine
		json.Unmarshal(b, &m)
		return m
	}
	m1 := enroll("press-1", "52:54:00:f0:00:01")
	m2 := enroll("press-2", "52:54:00:f0:00:02")
	agentM := enroll("agent-1", "52:54:00:f0:00:03")
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
	st, b := h.do("POST", "/api/v1/machines", op, map[string]any{"name": "bmc-1", "bmc_address": bmc.URL, "bmc_username": "admin", "bmc_password": "password"})
	var bmcM inventory.Machine
	if json.Unmarshal(b, &bmcM); st != 201 {
		t.Fatalf("enroll by BMC: %d %s", st, b)
	}
	digest := h.pushUntagged("plant/hmi")
	release := func(version string, approve bool) inventory.Release {
		st, b := h.do("POST", "/api/v1/releases", op, map[string]any{"name": "hmi", "version": version, "kind": "bootc",
			"image_ref": "plant/hmi", "image_digest": digest})
		if st != 201 {
			t.Fatalf("create release %s: %d %s", version, st, b)
		}
		var r inventory.Release
		json.Unmarshal(b, &r)
		if approve {
			if st, b := h.do("POST", "/api/v1/releases/"+r.ID+"/approve", ad, nil); st != 200 {
				t.Fatalf("approve %s: %d %s", version, st, b)
			}
		}
		return r
	}
	approved := release("1", true)
	draft := release("2", false)
	draftUI := release("3", false)
	draftDel := release("4", false)
	agentTok, err := h.a.Store.IssueAgentToken(ctx, agentM.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	task := func(kind string, viaStore bool) inventory.Task {
		if viaStore { // install tasks are queued by Slate's own flows, not by hand
			tk, err := h.a.Store.CreateTask(ctx, "slate", agentM.ID, kind, json.RawMessage(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			return tk
		}
		st, b := h.do("POST", "/api/v1/machines/"+agentM.ID+"/tasks", op, map[string]any{"kind": kind})
		if st != 201 {
			t.Fatalf("queue %s: %d %s", kind, st, b)
		}
		var tk inventory.Task
		json.Unmarshal(b, &tk)
		return tk
	}
	claim := func(want inventory.Task) {
		// kinds=: a claimed task is handed out again until it finishes, so ask by kind.
		st, b := h.do("GET", agentproto.PathPrefix+"/tasks/next?kinds="+want.Kind, agentTok, nil)
		var got agentproto.Task
		json.Unmarshal(b, &got)
		if st != 200 || got.ID != want.ID {
			t.Fatalf("agent claim: %d %s, want task %s", st, b, want.ID)
		}
	}
	install := task("install-image", true)
	claim(install)
	running := task("wait", false)
	claim(running)
	queued := task("wait", false)
	throwaway := h.login("olga", "pass-operator-01")
	opUI, adUI, logoutUI := h.uiSession("olga"), h.uiSession("admin"), h.uiSession("olga")
	if err := h.a.Store.SaveFilter(ctx, "olga", "mine", "q=press"); err != nil {
		t.Fatal(err)
	}
	// The login form is CSRF-protected by a pre-session cookie: fetch both now.
	loginPage, _ := http.NewRequest("GET", h.srv.URL+"/login", nil)
	_, lb, lh := h.send(loginPage)
	pre := between(lh.Get("Set-Cookie"), "slate_pre=", ";")
	loginCSRF := between(string(lb), `name="csrf" value="`, `"`)
	if pre == "" || loginCSRF == "" {
		t.Fatalf("login page: no pre-session cookie or CSRF token")
	}
	facts := agentproto.Facts{Schema: agentproto.FactsSchema}
	facts.System.Serial, facts.System.Vendor = "SN-FULL", "QEMU"

	P := agentproto.PathPrefix
	cases := map[string]writeCase{
		// API
		"POST /api/v1/auth/token":   {want5xx: true, req: h.jsonReq("POST", "/api/v1/auth/token", "", map[string]string{"username": "olga", "password": "pass-operator-01"})},
		"DELETE /api/v1/auth/token": {want5xx: true, req: h.jsonReq("DELETE", "/api/v1/auth/token", throwaway, nil)},
		"POST /api/v1/machines": {want5xx: true, req: h.jsonReq("POST", "/api/v1/machines", op,
			map[string]any{"name": "full-1", "macs": []string{"52:54:00:f0:00:10"}})},
		"PATCH /api/v1/machines/:id": {want5xx: true, req: h.jsonReq("PATCH", "/api/v1/machines/"+m1.ID, op, map[string]any{"site": "hall 2"})},
		"POST /api/v1/machines/:id/transition": {want5xx: true, req: h.jsonReq("POST", "/api/v1/machines/"+m1.ID+"/transition", op,
			map[string]string{"to": "inspecting", "reason": "full disk test"})},
		"POST /api/v1/users": {want5xx: true, req: h.jsonReq("POST", "/api/v1/users", ad,
			map[string]string{"username": "fred", "password": "a-much-longer-pass-5", "role": "operator"})},
		"POST /api/v1/releases": {want5xx: true, req: h.jsonReq("POST", "/api/v1/releases", op, map[string]any{"name": "hmi", "version": "9",
			"kind": "bootc", "image_ref": "plant/hmi", "image_digest": digest})},
		"DELETE /api/v1/releases/:id":       {want5xx: true, req: h.jsonReq("DELETE", "/api/v1/releases/"+draftDel.ID, op, nil)},
		"POST /api/v1/releases/:id/approve": {want5xx: true, req: h.jsonReq("POST", "/api/v1/releases/"+draft.ID+"/approve", ad, nil)},
		"POST /api/v1/releases/:id/retire": {want5xx: true, req: h.jsonReq("POST", "/api/v1/releases/"+approved.ID+"/retire", op,
			map[string]string{"reason": "full disk test"})},
		"POST /api/v1/machines/:id/tasks": {want5xx: true, req: h.jsonReq("POST", "/api/v1/machines/"+m1.ID+"/tasks", op, map[string]any{"kind": "reboot"})},
		"POST /api/v1/tasks/:id/cancel": {want5xx: true, req: h.jsonReq("POST", "/api/v1/tasks/"+queued.ID+"/cancel", op,
			map[string]string{"reason": "full disk test"})},
		"POST /api/v1/machines/:id/wipe/confirm": {note: "no wipe plan: refused before writing", req: h.jsonReq("POST", "/api/v1/machines/"+m2.ID+"/wipe/confirm", op,
			map[string]string{"plan_digest": "sha256:00", "machine_name": m2.Name})},
		"POST /api/v1/registry/gc": {want5xx: true, req: h.jsonReq("POST", "/api/v1/registry/gc", ad, map[string]bool{"dry_run": true})},
		"PUT /api/v1/me/password": {want5xx: true, req: h.jsonReq("PUT", "/api/v1/me/password", op,
			map[string]string{"current_password": "pass-operator-01", "new_password": "a-much-longer-pass-2"})},
		"POST /api/v1/me/revoke-tokens":              {want5xx: true, req: h.jsonReq("POST", "/api/v1/me/revoke-tokens", op, nil)},
		"POST /api/v1/users/:username/disable":       {want5xx: true, req: h.jsonReq("POST", "/api/v1/users/aldo/disable", ad, nil)},
		"POST /api/v1/users/:username/enable":        {want5xx: true, req: h.jsonReq("POST", "/api/v1/users/aldo/enable", ad, nil)},
		"POST /api/v1/users/:username/unlock":        {want5xx: true, req: h.jsonReq("POST", "/api/v1/users/aldo/unlock", ad, nil)},
		"POST /api/v1/users/:username/revoke-tokens": {want5xx: true, req: h.jsonReq("POST", "/api/v1/users/aldo/revoke-tokens", ad, nil)},
		"DELETE /api/v1/users/:username":             {want5xx: true, req: h.jsonReq("DELETE", "/api/v1/users/aldo", ad, nil)},
		"PUT /api/v1/users/:username/password": {want5xx: true, req: h.jsonReq("PUT", "/api/v1/users/aldo/password", ad,
			map[string]string{"password": "a-much-longer-pass-3"})},
		"POST /api/v1/machines/:id/bmc/probe": {note: "reads only (nothing to lose); refused here for an unknown vendor profile",
			req: h.jsonReq("POST", "/api/v1/machines/"+bmcM.ID+"/bmc/probe", op, map[string]string{"vendor_profile": "nonesuch"})},
		"PUT /api/v1/machines/:id/bmc":          {want5xx: true, req: h.jsonReq("PUT", "/api/v1/machines/"+bmcM.ID+"/bmc", op, map[string]string{"password": "password"})},
		"POST /machines/:id/bmc":                {want5xx: true, req: h.formReq("/machines/"+bmcM.ID+"/bmc", opUI, url.Values{"password": {"password"}})},
		"POST /api/v1/machines/:id/expect-boot": {want5xx: true, req: h.jsonReq("POST", "/api/v1/machines/"+m1.ID+"/expect-boot", op, nil)},
		"POST /api/v1/machines/:id/media/insert": {note: "no deploy ISO and no BMC: refused before a BMC is touched", req: h.jsonReq("POST", "/api/v1/machines/"+m1.ID+"/media/insert", op,
			map[string]any{"image": "deploy", "boot": true})},
		"POST /api/v1/machines/:id/media/eject": {note: "no deploy ISO and no BMC: refused before a BMC is touched", req: h.jsonReq("POST", "/api/v1/machines/"+m1.ID+"/media/eject", op, nil)},
		"DELETE /api/v1/registry/manifests/:digest": {note: "no such image: refused before it deletes (its refusal's audit cannot be stored either)",
			req: h.jsonReq("DELETE", "/api/v1/registry/manifests/sha256:"+strings.Repeat("0", 64)+"?repo=plant/none", ad, nil)},
		// web UI
		"POST /login": {want5xx: true, req: func() *http.Request {
			f := url.Values{"csrf": {loginCSRF}, "username": {"olga"}, "password": {"pass-operator-01"}}
			req, _ := http.NewRequest("POST", h.srv.URL+"/login", strings.NewReader(f.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: "slate_pre", Value: pre})
			return req
		}},
		"POST /logout":                    {want5xx: true, req: h.formReq("/logout", logoutUI, nil)},
		"POST /machines":                  {want5xx: true, req: h.formReq("/machines", opUI, url.Values{"name": {"full-2"}, "macs": {"52:54:00:f0:00:11"}})},
		"POST /machines/:id/transition":   {want5xx: true, req: h.formReq("/machines/"+m1.ID+"/transition", opUI, url.Values{"to": {"inspecting"}, "reason": {"full"}})},
		"POST /machines/:id/decommission": {want5xx: true, req: h.formReq("/machines/"+m2.ID+"/decommission", opUI, url.Values{"confirm_name": {m2.Name}})},
		"POST /machines/:id/release":      {want5xx: true, req: h.formReq("/machines/"+m1.ID+"/release", opUI, url.Values{"release": {approved.ID}})},
		"POST /machines/:id/wipe/confirm": {note: "no wipe plan: refused before writing", req: h.formReq("/machines/"+m2.ID+"/wipe/confirm", opUI, url.Values{"plan_digest": {"sha256:00"}, "confirm_name": {m2.Name}})},
		"POST /releases":                  {want5xx: true, req: h.formReq("/releases", opUI, url.Values{"name": {"hmi"}, "version": {"8"}, "kind": {"bootc"}, "image": {"plant/hmi@" + digest}})},
		"POST /releases/:id/:verb":        {want5xx: true, req: h.formReq("/releases/"+draftUI.ID+"/approve", adUI, nil)},
		"POST /releases/upload": {note: "not a multipart upload: refused before anything is stored (the image goes to the registry's files, not the database)",
			req: h.formReq("/releases/upload", opUI, url.Values{"repo": {"plant/os"}})},
		"POST /registry/gc":           {want5xx: true, req: h.formReq("/registry/gc", adUI, url.Values{"dry_run": {"1"}})},
		"POST /machines/:id/identity": {want5xx: true, req: h.formReq("/machines/"+m1.ID+"/identity", opUI, url.Values{"serial": {"SN-CORRECTED"}})},
		"POST /account/password": {want5xx: true, req: h.formReq("/account/password", opUI, url.Values{"current_password": {"pass-operator-01"},
			"new_password": {"a-much-longer-pass-4"}, "new_password2": {"a-much-longer-pass-4"}})},
		"POST /account/revoke-tokens":    {want5xx: true, req: h.formReq("/account/revoke-tokens", opUI, url.Values{"confirm": {"yes"}})},
		"POST /users/:username/:verb":    {want5xx: true, req: h.formReq("/users/aldo/disable", adUI, url.Values{"confirm": {"yes"}})},
		"POST /users/:username/unlock":   {want5xx: true, req: h.formReq("/users/aldo/unlock", adUI, nil)},
		"POST /machines/:id/expect-boot": {want5xx: true, req: h.formReq("/machines/"+m1.ID+"/expect-boot", opUI, nil)},
		"POST /machines/bulk": {want5xx: true, req: h.formReq("/machines/bulk", opUI, url.Values{"action": {"reinspect"}, "reason": {"full"},
			"id": {m1.ID, m2.ID}})},
		"POST /machines/filters":         {want5xx: true, req: h.formReq("/machines/filters", opUI, url.Values{"name": {"full"}, "query": {"q=x"}})},
		"POST /machines/filters/delete":  {want5xx: true, req: h.formReq("/machines/filters/delete", opUI, url.Values{"name": {"mine"}})},
		"POST /machines/:id/media/:verb": {note: "no deploy ISO and no BMC: refused before a BMC is touched", req: h.formReq("/machines/"+m1.ID+"/media/insert", opUI, url.Values{"boot": {"1"}})},
		"POST /registry/delete": {note: "no such image: refused before it deletes",
			req: h.formReq("/registry/delete", adUI, url.Values{"image": {"plant/none@sha256:" + strings.Repeat("0", 64)}, "confirm_image": {"plant/none@sha256:" + strings.Repeat("0", 64)}})},
		"POST /users":                        {want5xx: true, req: h.formReq("/users", adUI, url.Values{"username": {"gina"}, "password": {"a-much-longer-pass-6"}, "role": {"auditor"}})},
		"POST " + P + "/register":            {want5xx: true, req: h.jsonReq("POST", P+"/register", agentTok, agentproto.Register{Mode: "deploy", BootID: "b1", MACs: []string{"52:54:00:f0:00:03"}})},
		"GET " + P + "/tasks/next":           {want5xx: true, req: h.jsonReq("GET", P+"/tasks/next", agentTok, nil)},
		"POST " + P + "/tasks/{id}/progress": {want5xx: true, req: h.jsonReq("POST", P+"/tasks/"+running.ID+"/progress", agentTok, agentproto.Progress{Progress: 0.5, Message: "half"})},
		"POST " + P + "/tasks/{id}/result":   {want5xx: true, req: h.jsonReq("POST", P+"/tasks/"+running.ID+"/result", agentTok, agentproto.Result{State: "succeeded"})},
		"PUT " + P + "/facts":                {want5xx: true, req: h.jsonReq("PUT", P+"/facts", agentTok, facts)},
		"POST " + P + "/heartbeat": {note: "who may report a release is item 1's; the write must still not be lost",
			req: h.jsonReq("POST", P+"/heartbeat", agentTok, agentproto.Heartbeat{Mode: "node", BootID: "b1", BootedRelease: "hmi@1", ImageDigest: digest})},
		"POST " + P + "/tasks/{id}/node-token": {want5xx: true, req: h.jsonReq("POST", P+"/tasks/"+install.ID+"/node-token", agentTok, nil)},
	}
	routes := writeRoutes(h.a)
	for _, r := range routes {
		if _, ok := cases[r]; !ok {
			t.Errorf("write route %s has no full-disk case: add one to this test", r)
		}
	}
	for k := range cases {
		if !slices.Contains(routes, k) {
			t.Errorf("full-disk case %s matches no route (renamed?)", k)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	machinesBefore, _ := h.counts()

	// Fill the file system, then keep writing until SQLite itself fails: the WAL file keeps
	// the pages it already has, so commits can still succeed for a while on a "full" disk
	// (they are really stored: that is not data loss).
	filler := fill(t, dir)
	drained := 0
	pad := strings.Repeat("x", 2048)
	for ; drained < 100000; drained++ {
		err := h.a.Store.Audit(ctx, "test", "test.fill", "disk", "ok", map[string]any{"pad": pad})
		if err != nil {
			if !inventory.IsDiskFull(err) || !errors.Is(err, inventory.ErrStorage) {
				t.Fatalf("the write on a full disk failed, but not as disk full: %v", err)
			}
			t.Logf("disk full: SQLite kept committing %d audit events into space it already held, then: %v", drained, err)
			break
		}
	}
	if drained == 100000 {
		t.Fatal("100000 writes on a full disk all succeeded")
	}

	st, b, _ = h.send(h.jsonReq("GET", "/readyz", "", nil)())
	if st != 503 || !strings.Contains(string(b), "full") {
		t.Errorf("/readyz on a full disk: %d %s, want 503 naming the full disk", st, b)
	}
	for _, r := range routes {
		c := cases[r]
		t.Run(r, func(t *testing.T) {
			st, b, hdr := h.send(c.req())
			ct := hdr.Get("Content-Type")
			if st < 400 {
				t.Fatalf("answered %d on a full disk (%s): %.300s", st, hdr.Get("Location"), b)
			}
			if c.want5xx && st != http.StatusInsufficientStorage {
				t.Fatalf("answered %d, want 507 Insufficient Storage: %.300s", st, b)
			}
			switch {
			case strings.HasPrefix(r, "GET "+P), strings.Contains(r, " "+P):
				var e agentproto.Error
				if json.Unmarshal(b, &e) != nil || e.Error == "" {
					t.Fatalf("agent API error body is not {\"error\": …}: %s", b)
				}
				if c.want5xx && !strings.Contains(e.Error, "not saved") {
					t.Fatalf("agent API error does not say nothing was saved: %s", e.Error)
				}
			case strings.Contains(r, " /api/"):
				var p api.Problem
				if !strings.HasPrefix(ct, "application/problem+json") || json.Unmarshal(b, &p) != nil || p.Status != st {
					t.Fatalf("not problem+json: %s %s", ct, b)
				}
				if c.want5xx && !strings.Contains(p.Detail, "nothing was saved") {
					t.Fatalf("problem does not say nothing was saved: %s", p.Detail)
				}
			default: // web UI: an error page, never a success banner
				if strings.Contains(string(b), `class="flash ok"`) {
					t.Fatalf("a success banner on a failed write: %.500s", b)
				}
				if c.want5xx && !strings.Contains(string(b), "nothing was saved") {
					t.Fatalf("the page does not say nothing was saved: %.800s", b)
				}
				if c.want5xx && strings.HasPrefix(ct, "text/html") && !strings.Contains(string(b), `class="flash error"`) {
					t.Fatalf("the page shows no red error: %.800s", b)
				}
			}
		})
	}

	// Free the space: /readyz recovers and writes work; nothing of the refused writes exists.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, b, _ = h.send(h.jsonReq("GET", "/readyz", "", nil)())
		if st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not recover after space was freed: %d %s", st, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, _ := h.counts(); n != machinesBefore {
		t.Errorf("machines: %d before the disk filled, %d after: a refused enrollment was stored", machinesBefore, n)
	}
	if st, b := h.do("POST", "/api/v1/machines", op, map[string]any{"name": "after-1", "macs": []string{"52:54:00:f0:00:20"}}); st != 201 {
		t.Fatalf("enroll after space was freed: %d %s", st, b)
	}
	st, b, hdr := h.send(h.formReq("/machines", opUI, url.Values{"name": {"after-2"}, "macs": {"52:54:00:f0:00:21"}})())
	if st != http.StatusSeeOther || !strings.Contains(hdr.Get("Location"), "ok=") {
		t.Fatalf("UI enroll after space was freed: %d %s %.300s", st, hdr.Get("Location"), b)
	}
	if st, b := h.do("PUT", P+"/facts", agentTok, facts); st != 200 {
		t.Fatalf("agent facts after space was freed: %d %s", st, b)
	}
	if rep, err := h.a.Store.VerifyAudit(ctx); err != nil || !rep.OK {
		t.Fatalf("audit chain after the full disk: %+v %v", rep, err)
	}
}
