package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
)

// `slate machine wipe-plan` prints the plan and every way it differs from inspection,
// `machine show` marks the serial an operator entered, and `machine identity` corrects it.
func TestMachineWipePlanAndIdentity(t *testing.T) {
	ctx := context.Background()
	a, srv, token := testSlate(t)
	m, err := a.Lifecycle.Enroll(ctx, nil, "test", lifecycle.EnrollRequest{Name: "hmi-9", MACs: []string{"52:54:00:00:99:01"}, Serial: "HMI-9"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lifecycle.Transition(ctx, m.ID, lifecycle.Decommissioning, "test", "end of life"); err != nil {
		t.Fatal(err)
	}
	p, err := wipe.MakePlan(m.ID, []wipe.DriveInfo{{Name: "sdz", Path: "/dev/sdz", Transport: wipe.TransportATA, Media: wipe.MediaHDD,
		Serial: "FAKE-1TB", SizeBytes: 1 << 40, LogicalBlockSize: 512}}, wipe.DefaultPolicy(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p.Drives[0].Discrepancy = `inspection (facts version 1) saw no disk with serial "FAKE-1TB" and 1099511627776 bytes`
	pj, _ := json.Marshal(p)
	task, _ := a.Store.CreateTask(ctx, "test", m.ID, string(agentproto.KindWipePlan), nil)
	a.Store.ClaimNextTask(ctx, m.ID, 3)
	if _, _, err := a.Store.FinishTask(ctx, m.ID, task.ID, inventory.TaskOutcome{State: inventory.TaskSucceeded, Result: pj}, nil); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		env := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(""), environ: func() []string { return nil },
			getenv: func(k string) string {
				return map[string]string{"SLATE_SERVER": srv.URL, "SLATE_TOKEN": token, "HOME": t.TempDir()}[k]
			}}
		if err := dispatch(ctx, env, commands(), args, "slate"); err != nil {
			t.Fatalf("slate %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	out := run("machine", "wipe-plan", "hmi-9")
	if !strings.Contains(out, "/dev/sdz") || !strings.Contains(out, "differs from what inspection saw") || !strings.Contains(out, `saw no disk with serial "FAKE-1TB"`) {
		t.Fatalf("wipe-plan output:\n%s", out)
	}
	if out := run("machine", "show", "hmi-9"); !strings.Contains(out, "HMI-9 (entered by an operator)") {
		t.Fatalf("machine show:\n%s", out)
	}
	// Resolving a mismatch: the technician corrects the serial, or clears it for inspection.
	run("machine", "identity", "hmi-9", "--serial", "HMI-9B")
	if got, _ := a.Store.GetMachine(ctx, m.ID); got.Serial != "HMI-9B" || !got.SerialByOperator {
		t.Fatalf("after identity --serial: %q (by operator %v)", got.Serial, got.SerialByOperator)
	}
	run("machine", "identity", "hmi-9", "--clear-serial")
	if got, _ := a.Store.GetMachine(ctx, m.ID); got.Serial != "" || got.SerialByOperator {
		t.Fatalf("after identity --clear-serial: %q (by operator %v)", got.Serial, got.SerialByOperator)
	}
}
