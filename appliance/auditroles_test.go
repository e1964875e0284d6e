package appliance_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"slate/ui"
)

// TestEveryAuditReadingRouteHasTheSameRoles: operators could read one machine's audit events
// but not the audit log. Every audit-reading route of the API (found in the route table, so a
// new one is covered) and the UI's audit page must allow one role set — operators included,
// read-only — and serve it as declared.
func TestEveryAuditReadingRouteHasTheSameRoles(t *testing.T) {
	h := newHarness(t)
	want := ui.AuditRoles()
	slices.Sort(want)
	if !slices.Contains(want, "operator") || !slices.Contains(want, "auditor") || !slices.Contains(want, "admin") {
		t.Fatalf("audit readers %v: technicians (operators), auditors and admins all read the audit log", want)
	}
	var auditRoutes []string
	for _, rt := range h.a.API.Routes() {
		if !strings.Contains(rt.Path, "audit") {
			continue
		}
		if rt.Method != "GET" {
			t.Errorf("%s %s: the audit log is append-only; no route may write it directly", rt.Method, rt.Path)
			continue
		}
		auditRoutes = append(auditRoutes, rt.Path)
		got := slices.Clone(rt.Roles)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("GET %s allows %v, the UI's audit page %v: one role set for every audit-reading route", rt.Path, got, want)
		}
	}
	if len(auditRoutes) < 3 {
		t.Fatalf("found only %v: the audit list, its verification and a machine's events are expected", auditRoutes)
	}
	// Served as declared: every role reads the log, verifies the chain and opens the page.
	st, b := h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"name": "m1", "macs": []string{"52:54:00:00:a0:01"}})
	if st != 201 {
		t.Fatalf("enroll: %d %s", st, b)
	}
	id := between(string(b), `"id":"`, `"`)
	users := map[string]string{"admin": "admin", "operator": "olga", "auditor": "aldo"}
	for role, user := range users {
		for _, p := range []string{"/api/v1/audit", "/api/v1/audit/verify", "/api/v1/machines/" + id + "/audit"} {
			if st, b := h.do("GET", p, h.tok[role], nil); st != http.StatusOK {
				t.Errorf("%s GET %s: %d %s", role, p, st, b)
			}
		}
		s := h.uiSession(user)
		req, _ := http.NewRequest("GET", h.srv.URL+"/audit", nil)
		req.AddCookie(&http.Cookie{Name: "slate_session", Value: s.token})
		st, b, _ := h.send(req)
		if st != http.StatusOK || !strings.Contains(string(b), "Hash chain intact") {
			t.Errorf("%s opens the UI audit page: %d %.300s", role, st, b)
		}
		if !strings.Contains(string(b), `href="/audit"`) {
			t.Errorf("%s has no Audit log link in the navigation", role)
		}
	}
}
