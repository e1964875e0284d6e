package agentapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/lifecycle"
)

// A booted release is believed only from the node token Slate issued to an install of this
// machine that succeeded: the deploy environment's token (stolen, say), a node token whose
// install is still running, or one whose install failed are refused and audited; the good
// node then records its release once.
func TestHeartbeatReleaseNeedsNodeTokenOfSucceededInstall(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	m, bootTok := e.machine(t, "node1", "52:54:00:aa:00:01", lifecycle.Provisioning)
	hb := `{"mode":"node","booted_release":"plant/hmi:9.9","release_source":"bootc","image_digest":"sha256:evil"}`
	refused := func(tok, why string) {
		t.Helper()
		st, body := call(t, "POST", e.srv.URL+agentproto.PathPrefix+"/heartbeat", tok, hb)
		if st != 403 || !strings.Contains(body, why) {
			t.Fatalf("heartbeat with %s: %d %s, want 403 naming %q", why, st, body, why)
		}
		if got, _ := e.store.GetMachine(ctx, m.ID); got.BootedRelease != "" || got.BootedDigest != "" {
			t.Fatalf("refused heartbeat set the release: %q %q", got.BootedRelease, got.BootedDigest)
		}
	}
	// The attacker: the deploy environment's boot token. Repeating the same claim is refused
	// each time but audited once.
	refused(bootTok, "boot token cannot report")
	refused(bootTok, "boot token cannot report")

	// A node token issued to a running install: refused until that install succeeded.
	inst, _ := e.store.CreateTask(ctx, "lc", m.ID, "install-image", json.RawMessage(`{}`))
	c := e.client(bootTok)
	if _, ok, err := c.NextTask(ctx, 0); !ok || err != nil {
		t.Fatal(ok, err)
	}
	nt, err := c.NodeToken(ctx, inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	refused(nt.Token, "not a succeeded install")
	if _, err := c.Result(ctx, inst.ID, agentproto.Result{State: "failed", Message: "disk full"}); err != nil {
		t.Fatal(err)
	}
	refused(nt.Token, "not a succeeded install")

	// A second install succeeds: its node token reports, once (the repeat changes nothing).
	inst2, _ := e.store.CreateTask(ctx, "lc", m.ID, "install-image", json.RawMessage(`{}`))
	if _, ok, err := c.NextTask(ctx, 0); !ok || err != nil {
		t.Fatal(ok, err)
	}
	nt2, err := c.NodeToken(ctx, inst2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Result(ctx, inst2.ID, agentproto.Result{State: "succeeded"}); err != nil {
		t.Fatal(err)
	}
	refused(bootTok, "boot token cannot report") // still not the deploy environment's
	node := e.client(nt2.Token)
	for range 2 {
		if _, err := node.Heartbeat(ctx, agentproto.Heartbeat{Mode: "node", BootedRelease: "plant/hmi:1.0", ReleaseSource: "bootc"}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := e.store.GetMachine(ctx, m.ID)
	ok := auditOutcomes(t, e, m.ID, "machine.booted_release", "ok")
	bad := auditOutcomes(t, e, m.ID, "machine.booted_release", "refused")
	if got.BootedRelease != "plant/hmi:1.0" || len(ok) != 1 || len(bad) != 4 {
		t.Fatalf("booted release %q, %d ok and %d refused audit events; want plant/hmi:1.0, 1, 4", got.BootedRelease, len(ok), len(bad))
	}
	if s, ok := e.h.LastSeen(m.ID); !ok || s.BootedRelease != "plant/hmi:1.0" {
		t.Fatalf("last seen: %+v", s)
	}
}

// Inspection never overwrites the serial or system UUID an operator entered: facts that
// disagree fail the machine naming both values, are audited, and are not stored; facts that
// agree (or fill a value nobody entered) are stored as before.
func TestInspectionNeverOverwritesOperatorIdentity(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var m inventory.Machine
	if err := e.store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: "hmi", MACs: []string{"52:54:00:aa:00:02"}, Serial: "HMI-7", State: lifecycle.Inspecting})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	tok, _ := e.store.IssueAgentToken(ctx, m.ID, 3600e9)
	c := e.client(tok)
	facts := func(serial, uuid string) *agentproto.Facts {
		return &agentproto.Facts{Schema: agentproto.FactsSchema, System: agentproto.System{Serial: serial, UUID: uuid, Arch: "x86_64"}}
	}
	// Bad: the agent claims another serial.
	insp, _ := e.store.CreateTask(ctx, "lc", m.ID, string(agentproto.KindInspect), nil)
	if _, ok, err := c.NextTask(ctx, 0); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := c.Result(ctx, insp.ID, agentproto.Result{State: "succeeded", Facts: facts("FORGED-1", "")}); err != nil {
		t.Fatal(err)
	}
	got, _ := e.store.GetMachine(ctx, m.ID)
	if got.Serial != "HMI-7" || got.State != lifecycle.Failed || !strings.Contains(got.FailedReason, `"FORGED-1"`) || !strings.Contains(got.FailedReason, `"HMI-7"`) {
		t.Fatalf("after forged facts: serial %q state %s reason %q", got.Serial, got.State, got.FailedReason)
	}
	if fv, _ := e.store.FactsVersions(ctx, m.ID); len(fv) != 0 {
		t.Fatalf("forged facts stored: %d versions", len(fv))
	}
	if ev := auditOutcomes(t, e, m.ID, "machine.identity_mismatch", "refused"); len(ev) != 1 {
		t.Fatalf("identity mismatch audited %d times", len(ev))
	}
	// The same through PUT /facts: refused with 409, serial kept.
	b, _ := json.Marshal(facts("FORGED-2", ""))
	if st, body := call(t, "PUT", e.srv.URL+agentproto.PathPrefix+"/facts", tok, string(b)); st != 409 || !strings.Contains(body, "FORGED-2") {
		t.Fatalf("PUT facts with another serial: %d %s", st, body)
	}
	// Good: the technician retries; the real machine reports its serial (any case) and a UUID
	// nobody entered, which inspection fills.
	if err := e.store.Update(ctx, func(tx *inventory.Tx) error {
		return tx.SetMachineState(ctx, m.ID, lifecycle.Inspecting, "", "", "")
	}); err != nil {
		t.Fatal(err)
	}
	insp2, _ := e.store.CreateTask(ctx, "lc", m.ID, string(agentproto.KindInspect), nil)
	if _, ok, err := c.NextTask(ctx, 0); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := c.Result(ctx, insp2.ID, agentproto.Result{State: "succeeded", Facts: facts("hmi-7", "4c4c4544-0000-1111-2222-333344445555")}); err != nil {
		t.Fatal(err)
	}
	got, _ = e.store.GetMachine(ctx, m.ID)
	if got.State != lifecycle.Ready || got.Serial != "HMI-7" || got.SystemUUID != "4c4c4544-0000-1111-2222-333344445555" || got.SystemUUIDByOperator {
		t.Fatalf("after genuine facts: %+v", got)
	}
	// The UUID came from inspection: a later inspection may change it (a board swap).
	if _, err := c.PutFacts(ctx, *facts("HMI-7", "4c4c4544-9999-1111-2222-333344445555")); err != nil {
		t.Fatal(err)
	}
	if got, _ = e.store.GetMachine(ctx, m.ID); got.SystemUUID != "4c4c4544-9999-1111-2222-333344445555" || got.State != lifecycle.Ready {
		t.Fatalf("inspected UUID not refreshed: %+v", got)
	}
}

func auditOutcomes(t *testing.T, e *env, subject, action, outcome string) []inventory.AuditEvent {
	t.Helper()
	ev, err := e.store.ListAudit(context.Background(), inventory.AuditFilter{Subject: subject, Action: action, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []inventory.AuditEvent
	for _, x := range ev {
		if x.Outcome == outcome {
			out = append(out, x)
		}
	}
	return out
}
