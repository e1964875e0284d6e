package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"slate/appliance"
)

// testSlate starts an in-process Slate on a fresh data directory and logs its first admin in:
// the CLI tests run commands against it. mods adjust the configuration first.
func testSlate(t *testing.T, mods ...func(*appliance.Config)) (*appliance.Appliance, *httptest.Server, string) {
	t.Helper()
	cfg := appliance.Defaults()
	cfg.DataDir = t.TempDir()
	for _, m := range mods {
		m(&cfg)
	}
	a, err := appliance.New(context.Background(), cfg, appliance.Options{AdminPassword: "first-pass-01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+"/api/v1/auth/token", "application/json", strings.NewReader(`{"username":"admin","password":"first-pass-01"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var login struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&login); err != nil || login.Token == "" {
		t.Fatalf("log the admin in: %d %v", resp.StatusCode, err)
	}
	return a, srv, login.Token
}
