package agentapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"slate/agent"
	"slate/agent/agentproto"
	"slate/api/agentapi"
	"slate/inventory"
	"slate/lifecycle"
)

type env struct {
	store *inventory.Store
	h     *agentapi.Handler
	srv   *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	s, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "slate.db"), inventory.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := agentapi.New(s, agentapi.Options{PollEvery: 20 * time.Millisecond, MaxWait: 2 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	mux := http.NewServeMux()
	mux.Handle(agentproto.PathPrefix+"/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{store: s, h: h, srv: srv}
}

// machine creates a machine in state and returns it with a fresh agent token.
func (e *env) machine(t *testing.T, name, mac, state string) (inventory.Machine, string) {
	t.Helper()
	ctx := context.Background()
	var m inventory.Machine
	err := e.store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: name, MACs: []string{mac}, State: state})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.store.IssueAgentToken(ctx, m.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

func (e *env) client(tok string) *agent.Client {
	return &agent.Client{Base: e.srv.URL, Token: tok, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func call(t *testing.T, method, url, tok, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sampleFacts() agentproto.Facts {
	return agentproto.Facts{Schema: agentproto.FactsSchema,
		System:   agentproto.System{UUID: "4c4c4544-0000", Serial: "SN-42", Vendor: "QEMU", Product: "Standard PC", Arch: "x86_64"},
		Firmware: agentproto.Firmware{Mode: "bios", SecureBoot: "unsupported"},
		CPU:      agentproto.CPU{Sockets: 1, Cores: 2, Threads: 2},
		Memory:   agentproto.Memory{TotalBytes: 1 << 30},
		Disks:    []agentproto.Disk{{Name: "vda", Serial: "VIRTIO1", SizeBytes: 64 << 20, Transport: "virtio"}},
	}
}

type fakeInspector struct{ f agentproto.Facts }

func (f fakeInspector) Inspect(context.Context) (agentproto.Facts, error) { return f.f, nil }

type nopPower struct{ reboots atomic.Int32 }

func (p *nopPower) Reboot() error   { p.reboots.Add(1); return nil }
func (p *nopPower) PowerOff() error { return nil }

// The whole exchange over HTTP: the real agent loop inspects, the facts land in the store and
// the machine goes inspecting → ready; a reboot is acknowledged before it happens.
func TestInspectFlowMovesMachineToReady(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	m, tok := e.machine(t, "node1", "52:54:00:aa:00:01", lifecycle.Inspecting)
	insp, _ := e.store.CreateTask(ctx, "lifecycle", m.ID, string(agentproto.KindInspect), nil)
	reboot, _ := e.store.CreateTask(ctx, "lifecycle", m.ID, string(agentproto.KindReboot), nil)

	power := &nopPower{}
	loop := &agent.Loop{API: e.client(tok), Registry: agent.BuiltinRegistry(fakeInspector{sampleFacts()}, power),
		PollWait: time.Second, ProgressEvery: 10 * time.Millisecond, Register: agentproto.Register{Mode: "deploy", MACs: []string{"52:54:00:aa:00:01"}}}
	for range 2 {
		if err := loop.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := e.store.GetMachine(ctx, m.ID)
	if got.State != lifecycle.Ready || got.Serial != "SN-42" || got.SystemUUID != "4c4c4544-0000" || got.FirmwareMode != "bios" || got.Arch != "x86_64" {
		t.Fatalf("machine after inspection: %+v", got)
	}
	f, err := e.store.LatestFacts(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var doc agentproto.Facts
	if err := json.Unmarshal(f.Doc, &doc); err != nil || doc.Disks[0].Serial != "VIRTIO1" || doc.Memory.TotalBytes != 1<<30 {
		t.Fatalf("stored facts: %+v %v", doc, err)
	}
	for _, id := range []string{insp.ID, reboot.ID} {
		task, _ := e.store.GetTask(ctx, id)
		if task.State != inventory.TaskSucceeded {
			t.Fatalf("task %s (%s) is %s", id, task.Kind, task.State)
		}
	}
	if power.reboots.Load() != 1 {
		t.Fatalf("reboots: %d", power.reboots.Load())
	}
	logs, _ := e.store.TaskLogs(ctx, insp.ID, 0, 0)
	if len(logs) == 0 || !strings.Contains(logs[len(logs)-1].Line, "inspected") {
		t.Fatalf("inspect logs: %+v", logs)
	}
	// Nothing left: the long-poll answers 204 after its wait.
	start := time.Now()
	if _, ok, err := e.client(tok).NextTask(ctx, 200*time.Millisecond); ok || err != nil {
		t.Fatalf("idle next: ok=%v err=%v", ok, err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("long-poll returned before its wait")
	}
	// A task queued during a long-poll is handed out at once when the handler is woken.
	go func() {
		time.Sleep(100 * time.Millisecond)
		e.store.CreateTask(ctx, "lifecycle", m.ID, string(agentproto.KindWait), nil)
		e.h.Wake(m.ID)
	}()
	start = time.Now()
	task, ok, err := e.client(tok).NextTask(ctx, 2*time.Second)
	if err != nil || !ok || task.Kind != agentproto.KindWait || time.Since(start) > time.Second {
		t.Fatalf("woken long-poll: %+v ok=%v err=%v after %s", task, ok, err, time.Since(start))
	}
}

// An agent can neither read nor change another machine.
func TestTokenScopesEverythingToOneMachine(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, tokA := e.machine(t, "a", "52:54:00:aa:00:01", lifecycle.Inspecting)
	b, tokB := e.machine(t, "b", "52:54:00:aa:00:02", lifecycle.Inspecting)
	taskB, _ := e.store.CreateTask(ctx, "lc", b.ID, string(agentproto.KindInspect), nil)
	u := e.srv.URL + agentproto.PathPrefix

	// No token, a bad token: 401 everywhere.
	for _, tok := range []string{"", "sla_nope"} {
		if st, _ := call(t, "GET", u+"/tasks/next", tok, ""); st != http.StatusUnauthorized {
			t.Fatalf("next with token %q: %d", tok, st)
		}
	}
	// A does not get B's task.
	if st, body := call(t, "GET", u+"/tasks/next", tokA, ""); st != http.StatusNoContent {
		t.Fatalf("A's next: %d %s", st, body)
	}
	// B claims it; A can neither report progress nor a result on it.
	if st, _ := call(t, "GET", u+"/tasks/next", tokB, ""); st != http.StatusOK {
		t.Fatalf("B's next: %d", st)
	}
	if st, _ := call(t, "POST", u+"/tasks/"+taskB.ID+"/progress", tokA, `{"progress":0.5,"message":"hijack"}`); st != http.StatusNotFound {
		t.Fatalf("A's progress on B's task: %d", st)
	}
	facts, _ := json.Marshal(agentproto.Result{State: "succeeded", Facts: &agentproto.Facts{Schema: 1, System: agentproto.System{Serial: "EVIL"}}})
	if st, _ := call(t, "POST", u+"/tasks/"+taskB.ID+"/result", tokA, string(facts)); st != http.StatusNotFound {
		t.Fatalf("A's result on B's task: %d", st)
	}
	// A's facts land on A only.
	if st, body := call(t, "PUT", u+"/facts", tokA, `{"schema":1,"system":{"serial":"A-SERIAL","arch":"x86_64"}}`); st != http.StatusOK {
		t.Fatalf("A's facts: %d %s", st, body)
	}
	gb, _ := e.store.GetMachine(ctx, b.ID)
	ga, _ := e.store.GetMachine(ctx, a.ID)
	tb, _ := e.store.GetTask(ctx, taskB.ID)
	if gb.Serial != "" || gb.State != lifecycle.Inspecting || tb.State != inventory.TaskRunning || tb.Message != "" || ga.Serial != "A-SERIAL" {
		t.Fatalf("B was touched by A: machine %+v task %+v", gb, tb)
	}
	if _, err := e.store.LatestFacts(ctx, b.ID); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("B has facts: %v", err)
	}
	// Bad bodies are 400s with a message, not crashes.
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/register", `{"macs":["zz"]}`},
		{"POST", "/register", `not json`},
		{"PUT", "/facts", `{"schema":99}`},
		{"GET", "/tasks/next?wait=forever", ``},
		{"POST", "/tasks/" + taskB.ID + "/result", `{"state":"maybe"}`},
	} {
		tok := tokA
		if strings.Contains(c.path, taskB.ID) {
			tok = tokB
		}
		st, body := call(t, c.method, u+c.path, tok, c.body)
		if st != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
			t.Fatalf("%s %s %q: %d %s", c.method, c.path, c.body, st, body)
		}
	}
	// An inspect result without facts is refused, and changes nothing.
	if st, _ := call(t, "POST", u+"/tasks/"+taskB.ID+"/result", tokB, `{"state":"succeeded"}`); st != http.StatusBadRequest {
		t.Fatalf("inspect without facts: %d", st)
	}
	if tb, _ := e.store.GetTask(ctx, taskB.ID); tb.State != inventory.TaskRunning {
		t.Fatalf("task after refused result: %s", tb.State)
	}
}

// Slate answering 500s and garbage, and "restarting" right after recording a result (the
// answer is lost): the agent retries, and the task is finished once — not lost, not repeated.
func TestFlakySlateNeitherLosesNorRepeatsResults(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	m, tok := e.machine(t, "node1", "52:54:00:aa:00:01", lifecycle.Inspecting)
	insp, _ := e.store.CreateTask(ctx, "lc", m.ID, string(agentproto.KindInspect), nil)

	target, _ := url.Parse(e.srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var n, resultsSeen atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch k := n.Add(1); {
		case k == 1:
			http.Error(w, "boom", http.StatusInternalServerError)
		case k == 2:
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"machine_id": `)) // truncated garbage
		case strings.HasSuffix(r.URL.Path, "/result") && resultsSeen.Add(1) == 1:
			// Slate records the result, then dies before answering.
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				t.Errorf("first result: %d %s", rec.Code, rec.Body)
			}
			http.Error(w, "bad gateway", http.StatusBadGateway)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	defer flaky.Close()

	c := &agent.Client{Base: flaky.URL, Token: tok, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	loop := &agent.Loop{API: c, Registry: agent.BuiltinRegistry(fakeInspector{sampleFacts()}, &nopPower{}), PollWait: time.Second,
		ErrorPause: time.Millisecond, Register: agentproto.Register{Mode: "deploy"}}
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx2) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		task, _ := e.store.GetTask(ctx, insp.ID)
		if task.Finished() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task not finished: %+v", task)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("loop ended with %v", err)
	}
	if resultsSeen.Load() < 2 {
		t.Fatalf("the lost result was not retried (%d result posts)", resultsSeen.Load())
	}
	events, _ := e.store.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "task.finish"})
	fv, _ := e.store.FactsVersions(ctx, m.ID)
	got, _ := e.store.GetMachine(ctx, m.ID)
	if len(events) != 1 || len(fv) != 1 || got.State != lifecycle.Ready {
		t.Fatalf("finished %d times, %d facts versions, state %s: want 1, 1, ready", len(events), len(fv), got.State)
	}
}

// A failed inspection moves the machine to failed with the task named.
func TestFailedInspectionFailsMachine(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	m, tok := e.machine(t, "node1", "52:54:00:aa:00:01", lifecycle.Inspecting)
	insp, _ := e.store.CreateTask(ctx, "lc", m.ID, string(agentproto.KindInspect), nil)
	c := e.client(tok)
	if _, ok, err := c.NextTask(ctx, 0); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := c.Result(ctx, insp.ID, agentproto.Result{State: "failed", Message: "no sysfs"}); err != nil {
		t.Fatal(err)
	}
	got, _ := e.store.GetMachine(ctx, m.ID)
	if got.State != lifecycle.Failed || got.FailedTask != insp.ID || !strings.Contains(got.FailedReason, "no sysfs") {
		t.Fatalf("machine: %+v", got)
	}
}

// An operator cancels a running task: the agent learns it from its next progress report,
// stops the task, and does not fight Slate over the result.
func TestCancelStopsRunningTask(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	m, tok := e.machine(t, "node1", "52:54:00:aa:00:01", lifecycle.Ready)
	w, _ := e.store.CreateTask(ctx, "lc", m.ID, string(agentproto.KindWait), json.RawMessage(`{"seconds": 30}`))
	loop := &agent.Loop{API: e.client(tok), Registry: agent.BuiltinRegistry(fakeInspector{}, &nopPower{}),
		PollWait: time.Second, ProgressEvery: 50 * time.Millisecond}
	go func() {
		time.Sleep(300 * time.Millisecond)
		if _, err := e.store.CancelTask(ctx, "bob", w.ID, "wrong machine"); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	if err := loop.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancelled 30 s wait ran %s", d)
	}
	got, _ := e.store.GetTask(ctx, w.ID)
	if got.State != inventory.TaskCancelled || got.Message != "wrong machine" {
		t.Fatalf("task: %+v", got)
	}
}
