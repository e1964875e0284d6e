package appliance_test

import (
	"context"
	"strings"
	"testing"

	"slate/inventory"
)

// TestAccountManagementAPI drives every account action through the API, each with the case
// that must be refused beside the one that must work.
func TestAccountManagementAPI(t *testing.T) {
	h := newHarness(t)
	ad, op := h.tok["admin"], h.tok["operator"]

	// Disable: olga's existing token stops working at once; her right password no longer logs in.
	if st, b := h.do("POST", "/api/v1/users/olga/disable", op, nil); st != 403 {
		t.Fatalf("operator disabled a user: %d %s", st, b)
	}
	if st, b := h.do("POST", "/api/v1/users/olga/disable", ad, nil); st != 204 {
		t.Fatalf("disable: %d %s", st, b)
	}
	if st, _ := h.do("GET", "/api/v1/me", op, nil); st != 401 {
		t.Fatalf("a disabled user's token still works: %d", st)
	}
	if st, b := h.do("POST", "/api/v1/auth/token", "", map[string]string{"username": "olga", "password": "pass-operator-01"}); st != 403 || !strings.Contains(string(b), "disabled") {
		t.Fatalf("disabled user login: %d %s", st, b)
	}
	if st, b := h.do("POST", "/api/v1/users/olga/enable", ad, nil); st != 204 {
		t.Fatalf("enable: %d %s", st, b)
	}
	op = h.login("olga", "pass-operator-01")

	// Yourself and the last admin.
	if st, b := h.do("POST", "/api/v1/users/admin/disable", ad, nil); st != 409 || !strings.Contains(string(b), "your own") {
		t.Fatalf("admin disabled themselves: %d %s", st, b)
	}
	st, b := h.do("POST", "/api/v1/users", ad, map[string]string{"username": "root2", "password": "second-admin-pw-7", "role": "admin"})
	if st != 201 {
		t.Fatalf("second admin: %d %s", st, b)
	}
	root2 := h.login("root2", "second-admin-pw-7")
	if st, b := h.do("DELETE", "/api/v1/users/root2", ad, nil); st != 204 {
		t.Fatalf("delete the second admin: %d %s", st, b)
	}
	if st, _ := h.do("GET", "/api/v1/me", root2, nil); st != 401 {
		t.Fatalf("a deleted user's token still works: %d", st)
	}
	if st, b := h.do("DELETE", "/api/v1/users/admin", ad, nil); st != 409 {
		t.Fatalf("deleting yourself: %d %s", st, b)
	}

	// Weak passwords, with what is wrong.
	for pw, want := range map[string]string{"12345678": "at least 12", "123456789012": "common", "my-olga-password": "username"} {
		if st, b := h.do("PUT", "/api/v1/users/olga/password", ad, map[string]string{"password": pw}); st != 422 || !strings.Contains(string(b), want) {
			t.Errorf("reset to %q: %d %s (want 422 saying %q)", pw, st, b, want)
		}
	}
	if st, b := h.do("POST", "/api/v1/users", ad, map[string]string{"username": "weakadmin", "password": "12345678", "role": "admin"}); st != 422 {
		t.Fatalf("admin with 12345678: %d %s", st, b)
	}

	// Own password: the current one is needed; the change revokes the other tokens.
	other := h.login("olga", "pass-operator-01")
	if st, b := h.do("PUT", "/api/v1/me/password", op, map[string]string{"current_password": "not-my-password", "new_password": "olive-tree-lamp-5"}); st != 422 || !strings.Contains(string(b), "current password") {
		t.Fatalf("wrong current password: %d %s", st, b)
	}
	if st, _ := h.do("GET", "/api/v1/me", other, nil); st != 200 {
		t.Fatal("a refused change revoked a token")
	}
	if st, b := h.do("PUT", "/api/v1/me/password", op, map[string]string{"current_password": "pass-operator-01", "new_password": "olive-tree-lamp-5"}); st != 200 {
		t.Fatalf("change: %d %s", st, b)
	}
	if st, _ := h.do("GET", "/api/v1/me", other, nil); st != 401 {
		t.Fatal("another token survived the password change")
	}
	if st, _ := h.do("GET", "/api/v1/me", op, nil); st != 200 {
		t.Fatal("the changing token was revoked")
	}

	// Revoke all tokens: mine (keeps this one), and an admin's for a user.
	other = h.login("olga", "olive-tree-lamp-5")
	if st, b := h.do("POST", "/api/v1/me/revoke-tokens", op, nil); st != 200 || !strings.Contains(string(b), `"revoked":1`) {
		t.Fatalf("revoke mine: %d %s", st, b)
	}
	if st, _ := h.do("GET", "/api/v1/me", other, nil); st != 401 {
		t.Fatal("revoked token works")
	}
	if st, _ := h.do("POST", "/api/v1/users/olga/revoke-tokens", op, nil); st != 403 {
		t.Fatal("an operator revoked a user's tokens")
	}
	if st, b := h.do("POST", "/api/v1/users/olga/revoke-tokens", ad, nil); st != 200 {
		t.Fatalf("admin revoke: %d %s", st, b)
	}
	if st, _ := h.do("GET", "/api/v1/me", op, nil); st != 401 {
		t.Fatal("token survived an admin's revoke")
	}

	// The list shows state and last login; every action is in the audit log.
	st, b = h.do("GET", "/api/v1/users", ad, nil)
	if st != 200 || !strings.Contains(string(b), `"disabled":false`) || !strings.Contains(string(b), `"last_login_at"`) {
		t.Fatalf("user list: %d %s", st, b)
	}
	ev, err := h.a.Store.ListAudit(context.Background(), inventory.AuditFilter{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range ev {
		seen[e.Action+"/"+e.Outcome] = true
	}
	for _, want := range []string{"user.disable/ok", "user.enable/ok", "user.delete/ok", "user.password.change/refused",
		"user.password.change/ok", "user.tokens.revoke/ok"} {
		if !seen[want] {
			t.Errorf("not audited: %s", want)
		}
	}
}
