package wipe

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The two-task flow on a real loop device: plan, confirm (authorization), run from JSON params,
// certify on the "appliance" side; the report lists the drive and binds its certificate.
func TestTaskFlowAndCertify(t *testing.T) {
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
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	n := 0
	newID := func() string { n++; return fmt.Sprintf("id-%d", n) }
	auth := Authorization{TaskID: "t-7", MachineID: "m-7", PlanDigest: plan.Digest(), ConfirmedBy: "bob"}
	certs, report, err := Certify(tr, auth, CertMeta{}, "Slate test", priv, newID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || certs[0].DrivePath != dev {
		t.Fatalf("certificates: %+v", certs)
	}
	if _, err := VerifyCertificate(certs[0].File, pub); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyReport(report, pub)
	if err != nil || !rep.Complete || rep.Drives[0].CertificateID != certs[0].ID {
		t.Fatalf("report: %+v %v", rep, err)
	}
	// Params that were not confirmed for this plan are refused before anything is touched.
	bad, _ := json.Marshal(TaskParams{Plan: plan, Authorization: Authorization{TaskID: "t", MachineID: "m-7", PlanDigest: "x", ConfirmedBy: "bob"}})
	if _, err := RunTask(context.Background(), bad, Options{}); err == nil {
		t.Fatal("unconfirmed plan ran")
	}
	if _, err := RunTask(context.Background(), json.RawMessage(`{"plan":1}`), Options{}); err == nil {
		t.Fatal("garbage params accepted")
	}
	if _, _, err := Certify(tr, Authorization{MachineID: "other", PlanDigest: plan.Digest()}, CertMeta{}, "x", priv, newID, time.Now()); err == nil {
		t.Fatal("results certified under another machine's authorization")
	}
}
