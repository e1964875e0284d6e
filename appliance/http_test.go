package appliance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"slate/appliance"
	"slate/inventory"
	"slate/redfish/redfishtest"
)

type harness struct {
	t   *testing.T
	a   *appliance.Appliance
	srv *httptest.Server
	tok map[string]string // role → token
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessIn(t, t.TempDir(), appliance.Options{})
}

// newHarnessIn builds the harness on a given data directory (e.g. a small tmpfs).
func newHarnessIn(t *testing.T, dataDir string, o appliance.Options, mods ...func(*appliance.Config)) *harness {
	t.Helper()
	cfg := appliance.Defaults()
	cfg.DataDir = dataDir
	cfg.Listen = "127.0.0.1:0"
	for _, m := range mods {
		m(&cfg)
	}
	o.AdminPassword = "first-pass-01"
	a, err := appliance.New(context.Background(), cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	h := &harness{t: t, a: a, srv: httptest.NewServer(a.Handler()), tok: map[string]string{}}
	t.Cleanup(h.srv.Close)
	h.tok["admin"] = h.login("admin", "first-pass-01")
	for _, u := range [][2]string{{"olga", "operator"}, {"aldo", "auditor"}} {
		st, body := h.do("POST", "/api/v1/users", h.tok["admin"], map[string]string{"username": u[0], "password": "pass-" + u[1] + "-01", "role": u[1]})
		if st != 201 {
			t.Fatalf("create %s: %d %s", u[0], st, body)
		}
		h.tok[u[1]] = h.login(u[0], "pass-"+u[1]+"-01")
	}
	return h
}

func (h *harness) login(user, pw string) string {
	h.t.Helper()
	st, body := h.do("POST", "/api/v1/auth/token", "", map[string]string{"username": user, "password": pw})
	if st != 200 {
		h.t.Fatalf("login %s: %d %s", user, st, body)
	}
	var out struct{ Token string }
	json.Unmarshal(body, &out)
	return out.Token
}

func (h *harness) raw(method, path, token, contentType string, body io.Reader) (int, []byte, http.Header) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, nil, resp.Header // a live stream: the status is the answer
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (h *harness) do(method, path, token string, body any) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	ct := ""
	if body != nil {
		b, _ := json.Marshal(body)
		rd, ct = bytes.NewReader(b), "application/json"
	}
	st, b, _ := h.raw(method, path, token, ct, rd)
	return st, b
}

func (h *harness) counts() (machines, audit int) {
	h.t.Helper()
	ctx := context.Background()
	_, machines, _ = h.a.Store.ListMachines(ctx, inventory.MachineFilter{})
	rep, _ := h.a.Store.VerifyAudit(ctx)
	return machines, int(rep.Events)
}

var paramRE = regexp.MustCompile(`:[a-z_]+`)

// TestRoleMatrixRouteByRoute checks every API route for anonymous callers and each role.
func TestRoleMatrixRouteByRoute(t *testing.T) {
	h := newHarness(t)
	st, body := h.do("POST", "/api/v1/machines", h.tok["admin"], map[string]any{"name": "m1", "macs": []string{"52:54:00:00:00:01"}})
	if st != 201 {
		t.Fatalf("enroll: %d %s", st, body)
	}
	var m inventory.Machine
	json.Unmarshal(body, &m)
	routes := h.a.API.Routes()
	if len(routes) < 15 {
		t.Fatalf("only %d routes", len(routes))
	}
	for _, rt := range routes {
		path := "/api/v1" + paramRE.ReplaceAllString(rt.Path, m.ID)
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			st, b, hdr := h.raw(rt.Method, path, "", "application/json", strings.NewReader("{}"))
			if rt.Public() {
				// Login answers 401 to bad credentials, but never asks for a token first.
				if st == 403 || strings.Contains(string(b), "Bearer") {
					t.Fatalf("public route refused an anonymous caller: %d %s", st, b)
				}
				return
			}
			if st != 401 || !strings.Contains(hdr.Get("Content-Type"), "problem+json") {
				t.Fatalf("anonymous: got %d %s (%s), want 401 problem+json", st, b, hdr.Get("Content-Type"))
			}
			if st, _, _ := h.raw(rt.Method, path, "slt_not-a-real-token", "application/json", strings.NewReader("{}")); st != 401 {
				t.Fatalf("forged token: got %d, want 401", st)
			}
			for _, role := range []string{"admin", "operator", "auditor"} {
				tok := h.tok[role]
				if rt.Method == "DELETE" && rt.Path == "/auth/token" {
					// Logging out revokes the token: use a throwaway one.
					tok = h.login(map[string]string{"admin": "admin", "operator": "olga", "auditor": "aldo"}[role],
						map[string]string{"admin": "first-pass-01", "operator": "pass-operator-01", "auditor": "pass-auditor-01"}[role])
				}
				st, b, _ := h.raw(rt.Method, path, tok, "application/json", strings.NewReader("{}"))
				allowed := slices.Contains(rt.Roles, role)
				if allowed && (st == 401 || st == 403) {
					t.Errorf("%s may call it but got %d %s", role, st, b)
				}
				if !allowed && st != 403 {
					t.Errorf("%s may not call it but got %d %s", role, st, b)
				}
			}
		})
	}
}

func TestJourneyAsEachRole(t *testing.T) {
	h := newHarness(t)
	op, au, ad := h.tok["operator"], h.tok["auditor"], h.tok["admin"]

	// The technician enrolls and moves a machine. Its BMC is a test Redfish server on loopback.
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), Password: "calvin"})
	st, body := h.do("POST", "/api/v1/machines", op, map[string]any{"name": "press-1", "macs": []string{"52:54:00:12:34:01"},
		"labels": map[string]string{"line": "3"}, "bmc_address": bmc.URL, "bmc_username": "admin", "bmc_password": "calvin"})
	if st != 201 {
		t.Fatalf("operator enroll: %d %s", st, body)
	}
	if strings.Contains(string(body), "calvin") {
		t.Fatal("the BMC password came back in the API answer")
	}
	var m inventory.Machine
	json.Unmarshal(body, &m)
	if m.State != "enrolled" || m.BMC == nil || m.BMC.Address != bmc.URL {
		t.Fatalf("enrolled machine: %+v", m)
	}
	for _, to := range []string{"inspecting", "ready"} {
		if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/transition", op, map[string]string{"to": to, "reason": "test"}); st != 200 {
			t.Fatalf("operator → %s: %d %s", to, st, b)
		}
	}
	// Every role lists and filters.
	for _, tok := range []string{op, au, ad} {
		st, b := h.do("GET", "/api/v1/machines?state=ready&label=line=3&q=press", tok, nil)
		var l struct {
			Items  []inventory.Machine
			Total  int
			Counts map[string]int `json:"counts_by_state"`
		}
		json.Unmarshal(b, &l)
		if st != 200 || l.Total != 1 || l.Items[0].ID != m.ID || l.Counts["ready"] != 1 {
			t.Fatalf("list: %d %s", st, b)
		}
	}
	// The auditor cannot change anything, and the attempt is audited.
	if st, _ := h.do("POST", "/api/v1/machines/"+m.ID+"/transition", au, map[string]string{"to": "inspecting", "reason": "x"}); st != 403 {
		t.Fatalf("auditor transition: %d", st)
	}
	if st, _ := h.do("POST", "/api/v1/machines", au, map[string]any{"macs": []string{"52:54:00:12:34:09"}}); st != 403 {
		t.Fatalf("auditor enroll: %d", st)
	}
	st, b := h.do("GET", "/api/v1/audit?action=api.refused", au, nil)
	var ev struct{ Items []inventory.AuditEvent }
	json.Unmarshal(b, &ev)
	if st != 200 || len(ev.Items) != 2 || ev.Items[0].Actor != "aldo" || ev.Items[0].Outcome != "refused" {
		t.Fatalf("refused actions audit: %d %s", st, b)
	}
	// The operator reads the audit log (read-only: technicians need the history) and the
	// machine's timeline, but cannot manage users.
	if st, b := h.do("GET", "/api/v1/audit", op, nil); st != 200 {
		t.Fatalf("operator audit list: %d %s", st, b)
	}
	if st, _ := h.do("POST", "/api/v1/users", op, map[string]string{"username": "eve", "password": "password1", "role": "admin"}); st != 403 {
		t.Fatalf("operator creating an admin: %d", st)
	}
	st, b = h.do("GET", "/api/v1/machines/"+m.ID+"/audit", op, nil)
	json.Unmarshal(b, &ev)
	var actions []string
	for _, e := range ev.Items {
		actions = append(actions, e.Action)
	}
	if st != 200 || strings.Join(actions, ",") != "machine.transition,machine.transition,machine.enroll" {
		t.Fatalf("machine timeline: %v", actions)
	}
	// The chain verifies.
	st, b = h.do("GET", "/api/v1/audit/verify", au, nil)
	var rep inventory.AuditReport
	json.Unmarshal(b, &rep)
	if st != 200 || !rep.OK || rep.Events < 8 {
		t.Fatalf("verify: %d %s", st, b)
	}
	// Logout revokes the token.
	if st, _ := h.do("DELETE", "/api/v1/auth/token", op, nil); st != 204 {
		t.Fatalf("logout: %d", st)
	}
	if st, _ := h.do("GET", "/api/v1/machines", op, nil); st != 401 {
		t.Fatalf("revoked token still works: %d", st)
	}
}

func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	h := newHarness(t)
	op := h.tok["operator"]
	st, b := h.do("POST", "/api/v1/machines", op, map[string]any{"name": "a", "macs": []string{"52:54:00:00:00:01"}, "serial": "S1"})
	if st != 201 {
		t.Fatalf("%d %s", st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)
	big := `{"name":"` + strings.Repeat("x", 1<<20+10) + `"}`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		detail                          string
	}{
		{"malformed JSON", "POST", "/api/v1/machines", "application/json", `{"name": "x",`, 400, "malformed JSON"},
		{"not JSON", "POST", "/api/v1/machines", "text/plain", `name=x`, 415, "application/json"},
		{"unknown field", "POST", "/api/v1/machines", "application/json", `{"name":"x","macs":["52:54:00:00:00:02"],"colour":"red"}`, 400, `unknown field "colour"`},
		{"wrong type", "POST", "/api/v1/machines", "application/json", `{"macs":"52:54:00:00:00:02"}`, 400, `field "macs"`},
		{"body over 1 MiB", "POST", "/api/v1/machines", "application/json", big, 413, "1 MiB"},
		{"empty body", "POST", "/api/v1/machines", "application/json", ``, 400, "empty"},
		{"trailing data", "POST", "/api/v1/machines", "application/json", `{"serial":"Z"} {"serial":"Y"}`, 400, "extra data"},
		{"invalid MAC", "POST", "/api/v1/machines", "application/json", `{"macs":["52:54:00:zz:00:01"]}`, 422, "not a MAC address"},
		{"nothing to identify", "POST", "/api/v1/machines", "application/json", `{"name":"ghost"}`, 422, "at least one of"},
		{"duplicate MAC", "POST", "/api/v1/machines", "application/json", `{"macs":["52:54:00:00:00:01"]}`, 409, "already belongs"},
		{"duplicate serial", "POST", "/api/v1/machines", "application/json", `{"serial":"S1","macs":["52:54:00:00:00:03"]}`, 409, `serial "S1"`},
		{"BMC without user", "POST", "/api/v1/machines", "application/json", `{"bmc_address":"https://x"}`, 422, "bmc_username"},
		{"disallowed transition", "POST", "/api/v1/machines/" + m.ID + "/transition", "application/json", `{"to":"deployed","reason":"r"}`, 409, "from enrolled to deployed"},
		{"unknown state", "POST", "/api/v1/machines/" + m.ID + "/transition", "application/json", `{"to":"flying","reason":"r"}`, 422, "not a lifecycle state"},
		{"transition without reason", "POST", "/api/v1/machines/" + m.ID + "/transition", "application/json", `{"to":"inspecting"}`, 422, "reason is required"},
		{"unknown machine", "GET", "/api/v1/machines/m-nope", "", ``, 404, "m-nope"},
		{"bad paging", "GET", "/api/v1/machines?limit=-1", "", ``, 400, "limit"},
		{"bad state filter", "GET", "/api/v1/machines?state=bogus", "", ``, 400, "not a lifecycle state"},
		{"unknown route", "GET", "/api/v1/nothing-here", "", ``, 404, "no API route"},
		{"patch unknown field", "PATCH", "/api/v1/machines/" + m.ID, "application/json", `{"state":"deployed"}`, 400, `unknown field "state"`},
		{"patch bad MAC", "PATCH", "/api/v1/machines/" + m.ID, "application/json", `{"macs":["nope"]}`, 422, "not a MAC"},
		{"patch booted release by hand", "PATCH", "/api/v1/machines/" + m.ID, "application/json", `{"booted_release":"hmi@1"}`, 422, "reported by the machine's own agent"},
		{"patch unknown desired release", "PATCH", "/api/v1/machines/" + m.ID, "application/json", `{"desired_release":"nope@9"}`, 422, "no such release"},
		{"short password", "POST", "/api/v1/users", "application/json", `{"username":"bob","password":"short","role":"operator"}`, 403, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m0, a0 := h.counts()
			st, b, hdr := h.raw(c.method, c.path, op, c.ctype, strings.NewReader(c.body))
			if st != c.status {
				t.Fatalf("status %d, want %d: %s", st, c.status, b)
			}
			if !strings.Contains(hdr.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("content type %q, want problem+json", hdr.Get("Content-Type"))
			}
			var p struct {
				Status int
				Title  string
				Detail string
			}
			if err := json.Unmarshal(b, &p); err != nil || p.Status != c.status || p.Title == "" || !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("problem body %s, want detail containing %q", b, c.detail)
			}
			m1, a1 := h.counts()
			extraAudit := 0
			if c.status == 403 || (c.status == 409 && strings.Contains(c.name, "transition")) {
				extraAudit = 1 // refusals are audited, nothing else is written
			}
			if m1 != m0 || a1 != a0+extraAudit {
				t.Fatalf("refused request wrote something: machines %d→%d, audit %d→%d", m0, m1, a0, a1)
			}
		})
	}
	// Admin creating a user with a bad password: 422, no user row.
	st, b = h.do("POST", "/api/v1/users", h.tok["admin"], map[string]string{"username": "bob", "password": "short", "role": "operator"})
	if st != 422 || !strings.Contains(string(b), "at least 12") {
		t.Fatalf("short password: %d %s", st, b)
	}
	st, b = h.do("POST", "/api/v1/users", h.tok["admin"], map[string]string{"username": "bob", "password": "long-enough", "role": "superuser"})
	if st != 422 || !strings.Contains(string(b), "role") {
		t.Fatalf("bad role: %d %s", st, b)
	}
	// Wrong password: 401, and a refused login in the audit log.
	st, _ = h.do("POST", "/api/v1/auth/token", "", map[string]string{"username": "admin", "password": "guess"})
	if st != 401 {
		t.Fatalf("wrong password: %d", st)
	}
	ev, _ := h.a.Store.ListAudit(context.Background(), inventory.AuditFilter{Action: "auth.login", Limit: 1})
	if len(ev) != 1 || ev[0].Outcome != "refused" {
		t.Fatalf("refused login not audited: %+v", ev)
	}
}

// TestOpenAPIListsExactlyTheServedRoutes compares the description with echo's route table.
func TestOpenAPIListsExactlyTheServedRoutes(t *testing.T) {
	h := newHarness(t)
	st, b := h.do("GET", "/api/v1/openapi.json", h.tok["auditor"], nil)
	if st != 200 {
		t.Fatalf("%d", st)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("not an OpenAPI 3 document: %v", err)
	}
	var described, served []string
	for p, ops := range doc.Paths {
		for m := range ops {
			described = append(described, strings.ToUpper(m)+" "+p)
		}
	}
	for _, r := range h.a.Echo().Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/") || r.Path == "/api/v1/*" {
			continue
		}
		served = append(served, r.Method+" "+paramRE.ReplaceAllStringFunc(r.Path, func(s string) string { return "{" + s[1:] + "}" }))
	}
	sort.Strings(described)
	sort.Strings(served)
	if fmt.Sprint(described) != fmt.Sprint(served) {
		t.Fatalf("OpenAPI and server disagree:\n described %v\n served    %v", described, served)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if st, b := h.do("GET", p, "", nil); st != 200 {
			t.Fatalf("%s: %d %s", p, st, b)
		}
	}
	h.do("POST", "/api/v1/machines", h.tok["admin"], map[string]any{"macs": []string{"52:54:00:00:00:01"}})
	st, b := h.do("GET", "/metrics", "", nil)
	if st != 200 || !strings.Contains(string(b), `slate_machines{state="enrolled"} 1`) || !strings.Contains(string(b), "slate_http_requests_total") {
		t.Fatalf("metrics: %d\n%.2000s", st, b)
	}
}
