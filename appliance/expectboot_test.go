package appliance_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"slate/appliance"
	"slate/inventory"
)

// A machine without a BMC, powered on by a technician: its script gets no token until the
// technician announces the boot (operators and admins, audited with who); then exactly one
// fetch gets a token, which works for the agent from the fetching address.
func TestExpectBootThroughTheAPI(t *testing.T) {
	cfg := appliance.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.PublicURL = "http://127.0.0.1:8080"
	os.MkdirAll(filepath.Join(cfg.DataDir, "deployenv"), 0o755)
	for _, f := range []string{"vmlinuz", "initrd.gz"} {
		os.WriteFile(filepath.Join(cfg.DataDir, "deployenv", f), []byte("x"), 0o644)
	}
	a, err := appliance.New(context.Background(), cfg, appliance.Options{AdminPassword: "first-pass-01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	h := &harness{t: t, a: a, srv: httptest.NewServer(a.Handler()), tok: map[string]string{}}
	t.Cleanup(h.srv.Close)
	h.tok["admin"] = h.login("admin", "first-pass-01")
	for _, u := range [][2]string{{"olga", "operator"}, {"aldo", "auditor"}} {
		if st, body := h.do("POST", "/api/v1/users", h.tok["admin"], map[string]string{"username": u[0], "password": "pass-word-" + u[1] + "-01", "role": u[1]}); st != 201 {
			t.Fatalf("create %s: %d %s", u[0], st, body)
		}
		h.tok[u[1]] = h.login(u[0], "pass-word-"+u[1]+"-01")
	}
	ctx := context.Background()
	mac := "52:54:00:ee:00:01"
	st, b := h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"name": "hmi-7", "macs": []string{mac}})
	if st != 201 {
		t.Fatalf("enroll: %d %s", st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)
	if err := a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	tokenRE := regexp.MustCompile(`slate\.token=(\S+)`)
	script := func() string {
		_, b, _ := h.raw("GET", "/boot/machine/"+mac+".ipxe", "", "", nil)
		return string(b)
	}
	if s := script(); tokenRE.MatchString(s) || !strings.Contains(s, "expect-boot") {
		t.Fatalf("an unannounced boot got a token:\n%s", s)
	}
	if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/expect-boot", h.tok["auditor"], nil); st != 403 {
		t.Fatalf("auditor expect-boot: %d %s", st, b)
	}
	if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/expect-boot", h.tok["operator"], nil); st != 200 || !strings.Contains(string(b), `"actor":"olga"`) {
		t.Fatalf("operator expect-boot: %d %s", st, b)
	}
	var view struct {
		BootExpected *inventory.BootExpectation `json:"boot_expected"`
	}
	if _, b := h.do("GET", "/api/v1/machines/"+m.ID, h.tok["auditor"], nil); json.Unmarshal(b, &view) != nil || view.BootExpected == nil {
		t.Fatalf("the machine view does not show the expected boot: %s", b)
	}
	ev, _ := a.Store.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "boot.expected"})
	if len(ev) != 1 || ev[0].Actor != "olga" {
		t.Fatalf("expect-boot not audited with who: %+v", ev)
	}
	s := script()
	tm := tokenRE.FindStringSubmatch(s)
	if tm == nil {
		t.Fatalf("the announced boot got no token:\n%s", s)
	}
	if s2 := script(); tokenRE.MatchString(s2) {
		t.Fatalf("a second fetch got a token too:\n%s", s2)
	}
	st, b, _ = h.raw("POST", "/agent/v1/register", tm[1], "application/json", strings.NewReader(`{"mode":"deploy"}`))
	if st != 200 {
		t.Fatalf("the agent with its token, from the fetching address: %d %s", st, b)
	}
	if _, b := h.do("GET", "/api/v1/machines/"+m.ID, h.tok["auditor"], nil); strings.Contains(string(b), "boot_expected") {
		t.Fatalf("the expectation outlived its token: %s", b)
	}
}
