package cert

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/wipe"
)

// issuerTask is a confirmed plan for two 64 MiB virtual disks and the agent's honest result.
func issuerTask(t *testing.T) (params []byte, tr wipe.TaskResult) {
	t.Helper()
	var drives []wipe.DriveInfo
	for i, name := range []string{"vda", "vdb"} {
		drives = append(drives, wipe.DriveInfo{Name: name, Path: "/dev/" + name, Transport: wipe.TransportVirtio, Media: wipe.MediaVirtual,
			Serial: fmt.Sprintf("S%d", i), SizeBytes: 64 << 20, LogicalBlockSize: 512})
	}
	plan, err := wipe.MakePlan("m-7", drives, wipe.DefaultPolicy(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	auth := wipe.Authorization{TaskID: "t-7", MachineID: "m-7", PlanDigest: plan.Digest(), ConfirmedBy: "bob"}
	params, _ = json.Marshal(wipe.TaskParams{Plan: plan, Authorization: auth})
	t0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	tr = wipe.TaskResult{MachineID: "m-7", PlanDigest: plan.Digest(), Sanitized: true}
	for _, dp := range plan.Drives {
		tr.Results = append(tr.Results, wipe.Result{Drive: dp.Drive, Level: wipe.LevelClear, Method: wipe.MethodOverwrite, Status: wipe.StatusSanitized,
			Start: t0, End: t0.Add(time.Second), BytesWritten: dp.Drive.SizeBytes, Verification: wipe.Verification{Passed: true, BytesRead: dp.Drive.SizeBytes}})
	}
	return params, tr
}

func newTestIssuer(t *testing.T, metaFile string) *Issuer {
	t.Helper()
	n := 0
	is, err := NewIssuer(IssuerConfig{KeyDir: filepath.Join(t.TempDir(), "keys"), MetaFile: metaFile, Tool: "Slate test",
		NewID: func() string { n++; return fmt.Sprintf("id-%d", n) }, Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// The honest result earns two verifiable certificates and a complete report; a lying one (a
// drive the plan never named) earns nothing and says why; a failed drive makes the report
// incomplete.
func TestIssuerChecksTheResultBeforeSigning(t *testing.T) {
	meta := filepath.Join(t.TempDir(), "meta.json")
	if err := os.WriteFile(meta, []byte(`{"person":{"name":"Olga","organization":"Plant 4"},"destination":{"type":"Recycle"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	is := newTestIssuer(t, meta)
	params, tr := issuerTask(t)
	machine := MachineIdentity{ID: "m-7", Name: "old-hmi", Serial: "CZ123"}

	res, _ := json.Marshal(tr)
	out, err := is.Issue("t-7", params, res, machine, Person{})
	if err != nil || len(out.Problems) > 0 {
		t.Fatalf("honest result: %v %v", err, out.Problems)
	}
	if !out.Complete || len(out.Certificates) != 2 || out.Drives != 2 || out.PlanDigest != tr.PlanDigest || out.ReportID == "" ||
		out.Summary != "2 of 2 drives certified" {
		t.Fatalf("outcome: %+v", out)
	}
	c, err := VerifyCertificate(out.Certificates[0].File, is.PublicKey())
	if err != nil || c.Person.Name != "Olga" || c.Destination.Type != "Recycle" || c.Machine.Name != "old-hmi" || c.Sanitization.Tool != "Slate test" {
		t.Fatalf("certificate: %v %+v", err, c)
	}
	if rep, err := VerifyReport(out.Report, is.PublicKey()); err != nil || !rep.Complete || len(rep.Drives) != 2 {
		t.Fatalf("report: %v %+v", err, rep)
	}

	lie := tr
	lie.Results = append([]wipe.Result(nil), tr.Results...)
	lie.Results[1].Drive.Path = "/dev/sdz"
	res, _ = json.Marshal(lie)
	out, err = is.Issue("t-7", params, res, machine, Person{})
	if err != nil || len(out.Problems) == 0 || len(out.Certificates) != 0 || out.Report != nil ||
		!strings.Contains(out.Refusal, "not a drive of the confirmed plan") {
		t.Fatalf("lying result: %v %+v", err, out)
	}

	failed := tr
	failed.Results = append([]wipe.Result(nil), tr.Results...)
	failed.Results[1].Status, failed.Results[1].Errors = wipe.StatusFailed, []string{"write error"}
	res, _ = json.Marshal(failed)
	out, err = is.Issue("t-7", params, res, machine, Person{})
	if err != nil || out.Complete || len(out.Certificates) != 1 || !strings.Contains(out.Summary, "not sanitized: /dev/vdb") {
		t.Fatalf("one failed drive: %v %+v", err, out)
	}

	if _, err := is.Issue("t-7", params, []byte(`{"results":"nope"}`), machine, Person{}); err == nil {
		t.Fatal("garbage result accepted")
	}
}

// A metadata file with a misspelt field is refused at start, not silently ignored on every
// certificate.
func TestIssuerRefusesAnUnknownMetadataField(t *testing.T) {
	meta := filepath.Join(t.TempDir(), "meta.json")
	if err := os.WriteFile(meta, []byte(`{"persn":{"name":"Olga"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewIssuer(IssuerConfig{KeyDir: t.TempDir(), MetaFile: meta}); err == nil || !strings.Contains(err.Error(), "wipe.certificate_file") {
		t.Fatalf("misspelt field: %v", err)
	}
	if _, err := NewIssuer(IssuerConfig{KeyDir: t.TempDir(), MetaFile: filepath.Join(t.TempDir(), "missing.json")}); err == nil {
		t.Fatal("missing metadata file accepted")
	}
}
