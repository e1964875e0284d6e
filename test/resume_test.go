package test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
)

// startServeConfig is startServe with a configuration file.
func startServeConfig(t *testing.T, dataDir, yaml string) *server {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "slate.yaml")
	os.WriteFile(cfg, []byte(yaml), 0o600)
	addr := freePort(t)
	cmd := exec.Command(slate(t), "serve", "--listen", addr, "--data-dir", dataDir, "--config", cfg, "--public-url", "http://"+addr)
	cmd.Env = append(os.Environ(), "SLATE_ADMIN_PASSWORD=resume-pw-0001")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, addr: addr, dataDir: dataDir, log: &log}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 400 {
		if r, err := http.Get("http://" + addr + "/healthz"); err == nil {
			r.Body.Close()
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("slate serve did not come up:\n%s", log.String())
	return nil
}

// TestJourneyResumesAfterKill: a machine's inspection is under way (the agent holds its
// task) when slate serve is killed with SIGKILL; the restarted Slate on the same data takes the
// agent's result, the machine becomes ready, no task is queued twice, and a repeated report
// changes nothing.
func TestJourneyResumesAfterKill(t *testing.T) {
	dir := t.TempDir()
	de := filepath.Join(dir, "deployenv")
	os.MkdirAll(de, 0o755)
	for _, f := range []string{"vmlinuz", "initrd.gz"} {
		copyFile(t, filepath.Join("..", "assets", "deployenv", f), filepath.Join(de, f))
	}
	conf := "reconcile_interval: 200ms\n"
	s := startServeConfig(t, dir, conf)
	tok := apiToken(t, s.addr, "admin", "resume-pw-0001")
	base := "http://" + s.addr
	mac := "52:54:00:77:00:99"
	var m inventory.Machine
	if st, b := apiPost(t, base, tok, "/api/v1/machines", map[string]any{"name": "resume-1", "macs": []string{mac}}, &m); st != 201 {
		t.Fatalf("enroll: %d %s", st, b)
	}
	// The reconciler queues the inspection; the machine network-boots and fetches its script,
	// whose kernel line carries its per-boot agent token.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got inventory.Machine
		apiGet(t, base, tok, "/api/v1/machines/"+m.ID, &got)
		if got.State == "inspecting" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine not inspecting: %s", got.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// No BMC: the technician announces the boot (the UI's "I will power this machine on").
	var exp inventory.BootExpectation
	if st, b := apiPost(t, base, tok, "/api/v1/machines/"+m.ID+"/expect-boot", nil, &exp); st != 200 {
		t.Fatalf("expect-boot: %d %s", st, b)
	}
	resp, err := http.Get(base + "/boot/machine/" + mac + ".ipxe")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tm := regexp.MustCompile(`slate\.token=(\S+)`).FindSubmatch(script)
	if tm == nil {
		t.Fatalf("no agent token in the boot script:\n%s", script)
	}
	agentTok := string(tm[1])
	agentReq := func(method, path string, body any) (int, []byte) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+agentproto.PathPrefix+path, rd)
		req.Header.Set("Authorization", "Bearer "+agentTok)
		req.Header.Set("Content-Type", "application/json")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, b
	}
	st, b := agentReq("GET", "/tasks/next?wait=0s", nil)
	var task agentproto.Task
	json.Unmarshal(b, &task)
	if st != 200 || task.Kind != "inspect" {
		t.Fatalf("next task: %d %s", st, b)
	}
	// Slate dies mid-journey.
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	if st, _ := agentReq("POST", "/tasks/"+task.ID+"/result", nil); st != 0 {
		t.Fatalf("a dead Slate answered %d", st)
	}
	// Restarted on the same data (the port is taken again by the new process).
	s2 := startServeConfig(t, dir, conf)
	base = "http://" + s2.addr
	tok = apiToken(t, s2.addr, "admin", "resume-pw-0001")
	facts := agentproto.Facts{Schema: 1, System: agentproto.System{Serial: "RESUME-1", UUID: "0e3c9c5e-0000-4000-8000-000000000099"}}
	result := agentproto.Result{State: "succeeded", Facts: &facts}
	for i := range 2 {
		st, b := agentReq("POST", "/tasks/"+task.ID+"/result", result)
		var rr agentproto.ResultReply
		json.Unmarshal(b, &rr)
		if st != 200 || rr.Duplicate != (i == 1) {
			t.Fatalf("report %d after the restart: %d %s", i+1, st, b)
		}
	}
	var got inventory.Machine
	apiGet(t, base, tok, "/api/v1/machines/"+m.ID, &got)
	if got.State != "ready" || got.Serial != "RESUME-1" {
		t.Fatalf("after the restart: %s serial %q", got.State, got.Serial)
	}
	time.Sleep(600 * time.Millisecond) // a few reconcile passes
	var ts struct{ Items []inventory.Task }
	apiGet(t, base, tok, "/api/v1/machines/"+m.ID+"/tasks", &ts)
	if len(ts.Items) != 1 {
		t.Fatalf("%d tasks after the restart, want the one inspection", len(ts.Items))
	}
	var rep inventory.AuditReport
	apiGet(t, base, tok, "/api/v1/audit/verify", &rep)
	if !rep.OK || !strings.Contains(s2.log.String(), "slate serving") {
		t.Fatalf("audit chain after the kill: %+v", rep)
	}
}
