package agentapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/api/agentapi"
	"slate/inventory"
	"slate/lifecycle"
)

// bootEnv is an agent API over a store with a clock the test moves.
type bootEnv struct {
	store *inventory.Store
	srv   *httptest.Server
	now   *time.Time
	log   *strings.Builder
}

func newBootEnv(t *testing.T) *bootEnv {
	t.Helper()
	now := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	e := &bootEnv{now: &now, log: &strings.Builder{}}
	s, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "slate.db"),
		inventory.Options{Synchronous: "NORMAL", Now: func() time.Time { return *e.now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.store = s
	h := agentapi.New(s, agentapi.Options{PollEvery: 20 * time.Millisecond, MaxWait: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(e.log, nil))})
	mux := http.NewServeMux()
	mux.Handle(agentproto.PathPrefix+"/", h)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// bootToken creates a machine, announces its boot and issues the token a script fetch from
// src would get.
func (e *bootEnv) bootToken(t *testing.T, name, mac string, src netip.Addr) (inventory.Machine, string) {
	t.Helper()
	ctx := context.Background()
	var m inventory.Machine
	if err := e.store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: name, MACs: []string{mac}, State: lifecycle.Inspecting})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := lifecycle.New(e.store, nil).ExpectBoot(ctx, "technician", m.ID); err != nil {
		t.Fatal(err)
	}
	tok, err := e.store.IssueBootToken(ctx, inventory.BootTokenRequest{MachineID: m.ID, MAC: mac, Source: src,
		TTL: 2 * time.Hour, Activation: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

func (e *bootEnv) register(t *testing.T, tok string) (int, string) {
	t.Helper()
	return call(t, "POST", e.srv.URL+agentproto.PathPrefix+"/register", tok, `{"mode":"deploy"}`)
}

// A token stolen from a boot script (the kernel line is visible on the console, and the
// script went over plain HTTP) is refused from any other address: 401, logged with both
// addresses, audited as suspicious. From the address that fetched the script it works.
func TestBoundBootTokenRefusedFromAnotherAddress(t *testing.T) {
	e := newBootEnv(t)
	ctx := context.Background()
	m, tok := e.bootToken(t, "victim", "52:54:00:c0:00:01", netip.MustParseAddr("10.99.0.57"))
	code, body := e.register(t, tok) // the test client is 127.0.0.1
	if code != http.StatusUnauthorized || !strings.Contains(body, "127.0.0.1") {
		t.Fatalf("a bound token from another address: %d %s", code, body)
	}
	if !strings.Contains(e.log.String(), "bound=10.99.0.57") || !strings.Contains(e.log.String(), "remote=127.0.0.1:") {
		t.Fatalf("the refusal is not logged with remote and bound address:\n%s", e.log)
	}
	ev, err := e.store.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "agent.token-refused"})
	if err != nil || len(ev) != 1 || ev[0].Outcome != "suspicious" {
		t.Fatalf("the refused use is not audited as suspicious: %v %+v", err, ev)
	}

	// The good case: the token bound to the address the agent calls from.
	_, good := e.bootToken(t, "real", "52:54:00:c0:00:02", netip.MustParseAddr("127.0.0.1"))
	if code, body := e.register(t, good); code != http.StatusOK {
		t.Fatalf("a bound token from its own address: %d %s", code, body)
	}
}

// A token the agent never uses dies after the activation window; a used one lives its full
// lifetime (the boot), as before.
func TestBootTokenActivationWindow(t *testing.T) {
	e := newBootEnv(t)
	lo := netip.MustParseAddr("127.0.0.1")
	_, unused := e.bootToken(t, "unused", "52:54:00:c0:00:03", lo)
	_, used := e.bootToken(t, "used", "52:54:00:c0:00:04", lo)
	if code, body := e.register(t, used); code != http.StatusOK {
		t.Fatalf("first use: %d %s", code, body)
	}
	*e.now = e.now.Add(11 * time.Minute)
	if code, body := e.register(t, unused); code != http.StatusUnauthorized {
		t.Fatalf("a token unused for 11 minutes (activation window 10): %d %s", code, body)
	}
	if code, body := e.register(t, used); code != http.StatusOK {
		t.Fatalf("an activated token 11 minutes later: %d %s", code, body)
	}
	*e.now = e.now.Add(2 * time.Hour)
	if code, _ := e.register(t, used); code != http.StatusUnauthorized {
		t.Fatalf("an activated token after its lifetime: %d", code)
	}
}

// Node tokens (installed systems) are issued by an install task, not by a script fetch: they
// are bound to no address and keep working.
func TestNodeTokenNotBoundToAnAddress(t *testing.T) {
	e := newBootEnv(t)
	ctx := context.Background()
	m, _ := e.bootToken(t, "node", "52:54:00:c0:00:05", netip.MustParseAddr("10.99.0.9"))
	var tok string
	if err := e.store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		tok, err = tx.IssueNodeToken(ctx, m.ID, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	*e.now = e.now.Add(time.Hour)
	if code, body := call(t, "POST", e.srv.URL+agentproto.PathPrefix+"/register", tok, `{"mode":"node"}`); code != http.StatusOK {
		t.Fatalf("node token: %d %s", code, body)
	}
}
