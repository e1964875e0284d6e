package wipe

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The two-task flow on a real loop device: plan, confirm (authorization), run from JSON params,
// and the result is one the appliance will certify.
func TestTaskFlow(t *testing.T) {
	dev, _ := newLoop(t, testSize)
	plan, err := PlanTask(context.Background(), "m-7", DefaultPolicy(), nil, time.Now(), dev)
	if err != nil {
		t.Fatal(err)
	}
	params, _ := json.Marshal(TaskParams{Plan: plan, Authorization: Authorization{TaskID: "t-7", MachineID: "m-7", PlanDigest: plan.Digest(), ConfirmedBy: "bob"}})
	var fractions []float64
	agg := NewProgressAggregator(plan, func(f float64, msg string) {
		fractions = append(fractions, f)
		if !strings.Contains(msg, dev) {
			t.Errorf("progress message without the drive: %q", msg)
		}
	})
	tr, err := RunTask(context.Background(), params, Options{Progress: agg.Progress})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Sanitized || len(tr.Results) != 1 {
		t.Fatalf("task result: %+v", tr)
	}
	// A real run's timings are plausible to Slate's check (the lab's disks are small and fast).
	if problems, missing := CheckResult(plan, tr); len(problems) > 0 || len(missing) > 0 {
		t.Fatalf("a real wipe's result refused: %v %v", problems, missing)
	}
	t.Logf("real overwrite of %d bytes + read-back took %s", tr.Results[0].BytesWritten, tr.Results[0].End.Sub(tr.Results[0].Start))
	if len(fractions) < 3 || fractions[len(fractions)-1] != 1 {
		t.Fatalf("aggregate progress %v does not end at 1", fractions)
	}
	for i := 1; i < len(fractions); i++ {
		if fractions[i] < fractions[i-1] {
			t.Fatalf("aggregate progress goes backwards: %v", fractions)
		}
	}
	// The appliance signs this result (slate/wipe/cert's TestCertifyBindsTheReport).
	if err := Certifiable(tr.Results[0]); err != nil {
		t.Fatalf("a real wipe is not certifiable: %v", err)
	}
	// Params that were not confirmed for this plan are refused before anything is touched.
	bad, _ := json.Marshal(TaskParams{Plan: plan, Authorization: Authorization{TaskID: "t", MachineID: "m-7", PlanDigest: "x", ConfirmedBy: "bob"}})
	if _, err := RunTask(context.Background(), bad, Options{}); err == nil {
		t.Fatal("unconfirmed plan ran")
	}
	if _, err := RunTask(context.Background(), json.RawMessage(`{"plan":1}`), Options{}); err == nil {
		t.Fatal("garbage params accepted")
	}
}
