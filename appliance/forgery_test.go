package appliance_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/appliance"
	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
	wipecert "slate/wipe/cert"
)

// forgeryMachine enrols a machine with an operator-entered serial and puts it in inspecting
// with an inspect task queued; it returns the machine and a (stolen) deploy-environment token.
func forgeryMachine(t *testing.T, h *harness, name, mac string) (inventory.Machine, fakeAgent) {
	t.Helper()
	ctx := context.Background()
	op := h.tok["operator"]
	st, b := h.do("POST", "/api/v1/machines", op, map[string]any{"name": name, "macs": []string{mac}, "serial": "HMI-7"})
	if st != 201 {
		t.Fatalf("enrol: %d %s", st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)
	if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/transition", op, map[string]string{"to": "inspecting", "reason": "first boot"}); st != 200 {
		t.Fatalf("to inspecting: %d %s", st, b)
	}
	if _, err := h.a.Store.CreateTask(ctx, "slate", m.ID, string(agentproto.KindInspect), nil); err != nil {
		t.Fatal(err)
	}
	// The token is stolen: issued with the store directly, as the review's attacker got one.
	tok, err := h.a.Store.IssueAgentToken(ctx, m.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return m, fakeAgent{t, h.srv.URL, tok}
}

// genuineFacts is what the real machine reports: its serial and its one (loop) disk.
func genuineFacts(dev string) *agentproto.Facts {
	return &agentproto.Facts{Schema: agentproto.FactsSchema, System: agentproto.System{Serial: "HMI-7", Vendor: "Siemens", Arch: "x86_64"},
		Disks: []agentproto.Disk{{Name: filepath.Base(dev), SizeBytes: 64 << 20, LogicalSectorSize: 512, PhysicalSectorSize: 512, Transport: "unknown"}}}
}

func auditOutcome(t *testing.T, h *harness, subject, action, outcome string) []inventory.AuditEvent {
	t.Helper()
	ev, err := h.a.Store.ListAudit(context.Background(), inventory.AuditFilter{Subject: subject, Action: action, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []inventory.AuditEvent
	for _, e := range ev {
		if e.Outcome == outcome {
			out = append(out, e)
		}
	}
	return out
}

// The review's forgery, step by step, by a fake agent holding a valid (stolen) agent token;
// each step is refused: (a) invented facts do not overwrite the operator's serial, the
// machine fails; (b) a wipe plan naming an invented 1 TiB drive, with the agent's own weak
// policy, becomes Slate's plan with Slate's policy, shows the discrepancies and is not
// confirmed automatically; (c) "sanitized" for that drive a second after the operator
// confirmed anyway is refused as suspicious, audited, and no certificate exists to verify;
// (d) the token cannot set the booted release.
func TestForgedSanitizationRefusedAtEveryStep(t *testing.T) {
	dev, _ := loopDevice(t, 64<<20)
	h := newHarness(t)
	ctx := context.Background()
	op, au := h.tok["operator"], h.tok["auditor"]
	h.a.Reconciler.AutoConfirmWipe = true // the pre-approved policy the attacker hopes to ride
	m, ag := forgeryMachine(t, h, "hmi-3", "52:54:00:f0:0f:01")

	// (0) The review's attacker began by fetching the machine's boot script, which handed out
	// a token. Nobody powered the machine on (no BMC power-on, no technician's announcement):
	// no token, whatever is asked, and nothing is written. The steps below assume the token
	// was stolen some other way.
	for _, q := range []string{"", "?platform=efi", "?platform=pcbios&buildarch=x86_64"} {
		_, b, _ := h.raw("GET", "/boot/machine/52:54:00:f0:0f:01.ipxe"+q, "", "", nil)
		if strings.Contains(string(b), "slate.token=") {
			t.Fatalf("(0) an unexpected boot's script carries a token:\n%s", b)
		}
	}
	if ev, _ := h.a.Store.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "agent.token-issued"}); len(ev) != 0 {
		t.Fatalf("(0) tokens were issued to the script fetch: %+v", ev)
	}

	// (a) Invented facts: another serial, an invented 1 TiB disk.
	task := ag.next()
	forged := &agentproto.Facts{Schema: agentproto.FactsSchema, System: agentproto.System{Serial: "FORGED-1", Arch: "x86_64"},
		Disks: []agentproto.Disk{{Name: "sdz", Serial: "FAKE-1TB", SizeBytes: 1 << 40}}}
	ag.result(task.ID, agentproto.Result{State: "succeeded", Facts: forged})
	got, _ := h.a.Store.GetMachine(ctx, m.ID)
	if got.State != lifecycle.Failed || got.Serial != "HMI-7" || !strings.Contains(got.FailedReason, `inspected serial "FORGED-1" differs from the serial "HMI-7" entered by an operator`) {
		t.Fatalf("(a) after invented facts: state %s, serial %q, reason %q", got.State, got.Serial, got.FailedReason)
	}
	if fv, _ := h.a.Store.FactsVersions(ctx, m.ID); len(fv) != 0 {
		t.Fatalf("(a) invented facts were stored: %d versions", len(fv))
	}
	if len(auditOutcome(t, h, m.ID, "machine.identity_mismatch", "refused")) != 1 {
		t.Fatal("(a) the identity mismatch is not audited")
	}

	// The technician resolves it (retry); the genuine machine reports its facts; later it is
	// decommissioned and Slate asks for a wipe plan.
	if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/transition", op, map[string]string{"to": "retry", "reason": "serial checked on the label"}); st != 200 {
		t.Fatalf("retry: %d %s", st, b)
	}
	insp, _ := h.a.Store.CreateTask(ctx, "slate", m.ID, string(agentproto.KindInspect), nil)
	if task = ag.next(); task.ID != insp.ID {
		t.Fatalf("got task %s, want the inspection %s", task.ID, insp.ID)
	}
	ag.result(task.ID, agentproto.Result{State: "succeeded", Facts: genuineFacts(dev)})
	if got, _ = h.a.Store.GetMachine(ctx, m.ID); got.State != lifecycle.Ready {
		t.Fatalf("genuine inspection: %s (%s)", got.State, got.FailedReason)
	}
	if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/transition", op, map[string]string{"to": "decommissioning", "reason": "line rebuilt", "confirm_name": m.Name}); st != 200 {
		t.Fatalf("decommission: %d %s", st, b)
	}
	if err := h.a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if task = ag.next(); task.Kind != agentproto.KindWipePlan {
		t.Fatalf("task %q, want wipe-plan", task.Kind)
	}

	// (b) The agent answers with one invented 1 TiB drive and its own weak policy (Clear for
	// everything, sampled verification).
	weak := wipe.DefaultPolicy()
	for k := range weak.MinLevel {
		weak.MinLevel[k] = wipe.LevelClear
	}
	weak.Verify, weak.PreferPurge, weak.Purge = wipe.VerifySample, false, nil
	invented := wipe.DriveInfo{Name: "sdz", Path: "/dev/sdz", Transport: wipe.TransportATA, Media: wipe.MediaSSD, Model: "Invented",
		Serial: "FAKE-1TB", SizeBytes: 1 << 40, LogicalBlockSize: 512, PhysicalBlockSize: 512}
	fakePlan, err := wipe.MakePlan(m.ID, []wipe.DriveInfo{invented}, weak, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pj, _ := json.Marshal(fakePlan)
	ag.result(task.ID, agentproto.Result{State: "succeeded", Result: pj})
	st, b := h.do("GET", "/api/v1/machines/"+m.ID+"/wipe-plan", au, nil)
	var wp struct {
		Digest          string
		Plan            wipe.Plan
		Discrepancies   []string
		AutoConfirmable bool `json:"auto_confirmable"`
	}
	json.Unmarshal(b, &wp)
	if st != 200 || wp.Digest == fakePlan.Digest() || wp.AutoConfirmable {
		t.Fatalf("(b) wipe plan: %d %s", st, b)
	}
	// Slate's policy, not the agent's: flash needs Purge, and this "SSD" offers none.
	if pol, _ := json.Marshal(wp.Plan.Policy); string(pol) != mustJSON(t, wipe.DefaultPolicy()) || !wp.Plan.Drives[0].Blocked {
		t.Fatalf("(b) the agent's policy was used: %s", b)
	}
	disc := strings.Join(wp.Discrepancies, "\n")
	if !strings.Contains(disc, `saw no disk with serial "FAKE-1TB"`) || !strings.Contains(disc, filepath.Base(dev)+` (serial "", 67108864 bytes), which the plan does not list`) {
		t.Fatalf("(b) discrepancies: %q", wp.Discrepancies)
	}
	if err := h.a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := h.a.Store.LatestTask(ctx, m.ID, string(agentproto.KindWipe)); ok {
		t.Fatal("(b) a plan with an invented drive was confirmed automatically")
	}
	if _, err := h.a.Reconciler.ConfirmWipe(ctx, lifecycle.AutoWipeActor, m.ID, wp.Digest, "hmi-3", wipe.Person{}); err == nil {
		t.Fatal("(b) the pre-approved policy confirmed a plan that differs from inspection")
	}
	if len(auditOutcome(t, h, m.ID, "wipe.plan", "discrepancy")) != 1 {
		t.Fatal("(b) the plan's discrepancy is not audited")
	}

	// (c) Even a plan the technician confirmed by hand gets no certificate from an impossible
	// result. The invented drive is planned as the agent wanted (a weak overwrite), so the
	// plan itself is not what stops it: the result check is.
	weakHDD := invented
	weakHDD.Media, weakHDD.Rotational = wipe.MediaHDD, true
	fakePlan, _ = wipe.MakePlan(m.ID, []wipe.DriveInfo{weakHDD}, weak, time.Now())
	pj, _ = json.Marshal(fakePlan)
	// A second wipe-plan round (a technician asked for a new probe), answered by the attacker.
	if _, err := h.a.Store.CreateTask(ctx, "slate", m.ID, string(agentproto.KindWipePlan), nil); err != nil {
		t.Fatal(err)
	}
	task = ag.next()
	ag.result(task.ID, agentproto.Result{State: "succeeded", Result: pj})
	_, b = h.do("GET", "/api/v1/machines/"+m.ID+"/wipe-plan", au, nil)
	json.Unmarshal(b, &wp)
	if !strings.Contains(strings.Join(wp.Discrepancies, "\n"), "FAKE-1TB") || wp.Plan.Drives[0].Method != wipe.MethodOverwrite {
		t.Fatalf("(c) plan: %s", b)
	}
	if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/wipe/confirm", op, map[string]any{"plan_digest": wp.Digest, "machine_name": "hmi-3",
		"person": wipe.Person{Name: "Olga", Title: "Technician", Organization: "Plant 4", Location: "Hall 2"}}); st != 201 {
		t.Fatalf("(c) the operator's confirmation: %d %s", st, b)
	}
	task = ag.next()
	if task.Kind != agentproto.KindWipe {
		t.Fatalf("(c) task %q, want wipe", task.Kind)
	}
	var params wipe.TaskParams
	json.Unmarshal(task.Params, &params)
	start := time.Now().UTC()
	lie := wipe.TaskResult{MachineID: m.ID, PlanDigest: params.Authorization.PlanDigest, Sanitized: true, Results: []wipe.Result{{
		Drive: params.Plan.Drives[0].Drive, Level: wipe.LevelClear, Method: wipe.MethodOverwrite, Status: wipe.StatusSanitized,
		Start: start, End: start.Add(time.Second), BytesWritten: 1 << 40, BytesPerSecond: 1 << 40,
		Verification: wipe.Verification{Method: "full read-back", Passed: true, BytesRead: 1 << 40}}}}
	rj, _ := json.Marshal(lie)
	ag.result(task.ID, agentproto.Result{State: "succeeded", Result: rj})
	got, _ = h.a.Store.GetMachine(ctx, m.ID)
	if got.State == lifecycle.Sanitized || got.State == lifecycle.Retired || !strings.Contains(got.FailedReason, "suspicious") {
		t.Fatalf("(c) after the forged result: state %s, reason %q", got.State, got.FailedReason)
	}
	sus := auditOutcome(t, h, m.ID, "wipe.result", "suspicious")
	if len(sus) != 1 || !strings.Contains(string(mustJSONRaw(sus[0].Details)), "physically impossible") {
		t.Fatalf("(c) suspicious result audit: %+v", sus)
	}
	st, b = h.do("GET", "/api/v1/machines/"+m.ID+"/certificates", au, nil)
	var list struct {
		Certificates []inventory.Certificate
		Reports      []inventory.Report
	}
	json.Unmarshal(b, &list)
	if st != 200 || len(list.Certificates) != 0 || len(list.Reports) != 0 {
		t.Fatalf("(c) certificates after a forged result: %d %s", st, b)
	}
	if st, b = h.do("GET", "/api/v1/certificates", au, nil); st != 200 || strings.Contains(string(b), m.ID) {
		t.Fatalf("(c) a certificate names the machine: %d %s", st, b)
	}

	// (d) The deploy environment's token sets no booted release.
	st, b = h.do("POST", agentproto.PathPrefix+"/heartbeat", ag.token, map[string]string{"mode": "node", "booted_release": "plant/hmi:6.6", "image_digest": "sha256:forged"})
	if st != 403 {
		t.Fatalf("(d) heartbeat with the stolen token: %d %s", st, b)
	}
	if got, _ = h.a.Store.GetMachine(ctx, m.ID); got.BootedRelease != "" || got.BootedDigest != "" {
		t.Fatalf("(d) booted release set: %q %q", got.BootedRelease, got.BootedDigest)
	}
	if len(auditOutcome(t, h, m.ID, "machine.booted_release", "refused")) != 1 {
		t.Fatal("(d) the refused release is not audited")
	}
	if rep, _ := h.a.Store.VerifyAudit(ctx); !rep.OK {
		t.Fatalf("audit chain: %+v", rep)
	}
}

// The good path beside it: the genuine agent's facts match the operator's serial, its probe
// matches inspection, so the pre-approved policy confirms; a real wipe of the (loop) disk
// passes the result check and gets a certificate that verifies.
func TestGenuineAgentGetsCertificate(t *testing.T) {
	dev, _ := loopDevice(t, 64<<20)
	h := newHarness(t)
	ctx := context.Background()
	op, au := h.tok["operator"], h.tok["auditor"]
	h.a.Reconciler.AutoConfirmWipe = true
	m, ag := forgeryMachine(t, h, "hmi-4", "52:54:00:f0:0f:02")
	task := ag.next()
	ag.result(task.ID, agentproto.Result{State: "succeeded", Facts: genuineFacts(dev)})
	if got, _ := h.a.Store.GetMachine(ctx, m.ID); got.State != lifecycle.Ready || got.Serial != "HMI-7" {
		t.Fatalf("inspection: %+v", got)
	}
	if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/transition", op, map[string]string{"to": "decommissioning", "reason": "end of life", "confirm_name": m.Name}); st != 200 {
		t.Fatalf("decommission: %d %s", st, b)
	}
	if err := h.a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	task = ag.next()
	log := slog.New(slog.DiscardHandler)
	plan, err := wipe.PlanTask(ctx, m.ID, wipe.DefaultPolicy(), log, time.Now().UTC(), dev)
	if err != nil {
		t.Fatal(err)
	}
	pj, _ := json.Marshal(plan)
	ag.result(task.ID, agentproto.Result{State: "succeeded", Result: pj})
	if err := h.a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	task = ag.next()
	if task.Kind != agentproto.KindWipe {
		t.Fatalf("the pre-approved policy did not confirm a plan matching inspection: task %q, reconciler says %q", task.Kind, h.a.Reconciler.Why(m.ID))
	}
	tr, err := wipe.RunTask(ctx, task.Params, wipe.Options{Log: log, Tool: "Slate test"})
	if err != nil {
		t.Fatal(err)
	}
	rj, _ := json.Marshal(tr)
	ag.result(task.ID, agentproto.Result{State: "succeeded", Result: rj})
	if got, _ := h.a.Store.GetMachine(ctx, m.ID); got.State != lifecycle.Sanitized {
		t.Fatalf("after the real wipe: %s (%s)", got.State, got.FailedReason)
	}
	_, b := h.do("GET", "/api/v1/machines/"+m.ID+"/certificates", au, nil)
	var list struct{ Certificates []inventory.Certificate }
	json.Unmarshal(b, &list)
	if len(list.Certificates) != 1 {
		t.Fatalf("certificates: %s", b)
	}
	_, pemKey := h.do("GET", "/api/v1/certificates/public-key", au, nil)
	pub, err := wipecert.ParsePublicKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	_, file := h.do("GET", "/api/v1/certificates/"+list.Certificates[0].ID, au, nil)
	if _, err := wipecert.VerifyCertificate(file, pub); err != nil {
		t.Fatalf("certificate does not verify: %v", err)
	}
	if len(auditOutcome(t, h, m.ID, "wipe.result", "suspicious")) != 0 {
		t.Fatal("a genuine result was audited as suspicious")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustJSONRaw(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// wipe.policy_file is Slate's policy: a plan is made with it whatever the agent proposed, and
// a file that would fall below NIST's floor stops the appliance from starting.
func TestWipePolicyFileIsSlatesPolicy(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"sample_subsections": 10}`), 0o600)
	cfg := appliance.Defaults()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	cfg.Wipe.PolicyFile = bad
	if a, err := appliance.New(context.Background(), cfg, appliance.Options{AdminPassword: "first-pass-01"}); err == nil {
		a.Close()
		t.Fatal("a policy below NIST's 1000 subsections was accepted")
	} else if !strings.Contains(err.Error(), "wipe.policy_file") {
		t.Fatalf("error does not name the setting: %v", err)
	}
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"verify": "sample", "pattern": "aes-ctr"}`), 0o600)
	cfg.Wipe.PolicyFile = good
	a, err := appliance.New(context.Background(), cfg, appliance.Options{AdminPassword: "first-pass-01"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	ctx := context.Background()
	m, err := a.Lifecycle.Enroll(ctx, nil, "test", lifecycle.EnrollRequest{Name: "hmi-5", MACs: []string{"52:54:00:f0:0f:05"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lifecycle.Transition(ctx, m.ID, lifecycle.Decommissioning, "test", "end of life"); err != nil {
		t.Fatal(err)
	}
	task, _ := a.Store.CreateTask(ctx, "slate", m.ID, string(agentproto.KindWipePlan), nil)
	tok, _ := a.Store.IssueAgentToken(ctx, m.ID, time.Hour)
	ag := fakeAgent{t, srv.URL, tok}
	ag.next()
	// The agent proposes full verification with zeros (the default); Slate's file says otherwise.
	p, _ := wipe.MakePlan(m.ID, []wipe.DriveInfo{{Name: "vda", Path: "/dev/vda", Transport: wipe.TransportVirtio, Media: wipe.MediaVirtual,
		SizeBytes: 1 << 30, LogicalBlockSize: 512}}, wipe.DefaultPolicy(), time.Now())
	pj, _ := json.Marshal(p)
	ag.result(task.ID, agentproto.Result{State: "succeeded", Result: pj})
	got, _, ok, err := lifecycle.WipePlan(ctx, a.Store, m.ID)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got.Policy.Verify != wipe.VerifySample || got.Drives[0].Pattern != wipe.PatternAESCTR || got.Drives[0].Verification != "NIST sampling" {
		t.Fatalf("plan not made with the configured policy: %+v / %+v", got.Policy, got.Drives[0])
	}
}
