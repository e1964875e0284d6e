package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"slate/appliance"
	"slate/lifecycle"
	"slate/redfish/redfishtest"
)

// `slate machine media` in-process against an in-process Slate and DMTF's public-telemetry
// mockup with the machine running: status, a boot refused without --force (exit non-zero,
// nothing sent to the CD), an image Slate does not serve refused, --boot --force, eject.
func TestMachineMediaCommand(t *testing.T) {
	ctx := context.Background()
	a, srv, _ := testSlate(t, func(c *appliance.Config) { c.PublicURL = "http://127.0.0.1:8080" })
	// the ISO's presence is the API test's concern; here the BMC only records the URL
	a.Lifecycle.SetDeployISOCheck(func() error { return nil })
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t), PowerState: "On"})
	if _, err := a.Lifecycle.Enroll(ctx, a.Secrets, "seed", lifecycle.EnrollRequest{Name: "cd-1", MACs: []string{"52:54:00:00:cc:01"},
		BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"}); err != nil {
		t.Fatal(err)
	}
	cfgHome := t.TempDir()
	slate := func(stdin string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		env := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(stdin),
			getenv: func(k string) string {
				return map[string]string{"XDG_CONFIG_HOME": cfgHome, "SLATE_SERVER": srv.URL}[k]
			}, environ: func() []string { return nil }}
		err := dispatch(ctx, env, commands(), args, "slate")
		return out.String() + errOut.String(), err
	}
	if out, err := slate("first-pass-01\n", "login"); err != nil {
		t.Fatalf("login: %v %s", err, out)
	}
	cd := "/redfish/v1/Managers/1/VirtualMedia/CD1"
	if out, err := slate("", "machine", "media", "cd-1", "status"); err != nil || !strings.Contains(out, "virtual CD holds") {
		t.Fatalf("status: %v %s", err, out)
	}
	before := bmc.Get(cd)["Image"]
	out, err := slate("", "machine", "media", "cd-1", "insert", "--boot")
	if err == nil || !strings.Contains(err.Error(), "running") || !strings.Contains(err.Error(), "force") {
		t.Fatalf("running machine without --force: %v %s", err, out)
	}
	if bmc.Get(cd)["Image"] != before || len(bmc.Boots()) != 0 {
		t.Fatal("a refused boot changed the CD or booted")
	}
	if _, err := slate("", "machine", "media", "cd-1", "insert", "http://203.0.113.9/evil.iso"); err == nil || !strings.Contains(err.Error(), "ISO Slate serves") {
		t.Fatalf("foreign image: %v", err)
	}
	if _, err := slate("", "machine", "media", "cd-1", "eject", "--force"); err == nil {
		t.Fatal("eject --force accepted")
	}
	out, err = slate("", "machine", "media", "cd-1", "insert", "deploy", "--boot", "--force")
	if err != nil || !strings.Contains(out, "boots once from it") || !strings.Contains(out, "http://127.0.0.1:8080/boot/deploy/deploy.iso") {
		t.Fatalf("insert --boot --force: %v %s", err, out)
	}
	if boots := bmc.Boots(); len(boots) != 1 || boots[0] != "Cd" {
		t.Fatalf("boots %v", boots)
	}
	out, err = slate("", "machine", "media", "cd-1", "eject", "--json")
	var r lifecycle.MediaResult
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || r.Inserted || bmc.Get(cd)["Inserted"] != false {
		t.Fatalf("eject: %v %s", err, out)
	}
}
