package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"slate/appliance"
	"slate/inventory"
	"slate/lifecycle"
	"slate/redfish/redfishtest"
)

// TestMachineEnrollSystemsAndAdopt runs `slate machine enroll` against a blade chassis (DMTF
// public-bladed) and a running rack server: no --system is refused with the systems listed,
// --system enrolls that blade, --all-systems one machine per blade, --adopt a running
// machine as it is (no write to its BMC).
func TestMachineEnrollSystemsAndAdopt(t *testing.T) {
	ctx := context.Background()
	// installs need public_url: without it a desired release is refused
	a, srv, _ := testSlate(t, func(c *appliance.Config) { c.PublicURL = "http://127.0.0.1:8080" })
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
	bladed := filepath.Join(redfishtest.MockupDir(t), "public-bladed")
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: bladed})
	enroll := func(addr string, more ...string) (string, error) {
		return slate("password\n", append([]string{"machine", "enroll", "--bmc-address", addr, "--bmc-user", "admin"}, more...)...)
	}
	out, err := enroll(bmc.URL)
	if err == nil || !strings.Contains(err.Error(), "529QB9452R6 (serial 529QB9452R6, model SX1000, power On)") || !strings.Contains(err.Error(), "--system") {
		t.Fatalf("several systems, no --system: %v %s", err, out)
	}
	out, err = enroll(bmc.URL, "--name", "blade3", "--system", "529QB9452R6")
	if err != nil || !strings.Contains(out, "Enrolled blade3") {
		t.Fatalf("--system: %v %s", err, out)
	}
	m, err := a.Store.GetMachine(ctx, "blade3")
	if err != nil || m.BMC == nil || m.BMC.SystemID != "529QB9452R6" {
		t.Fatalf("blade3: %+v %v", m.BMC, err)
	}
	ch2 := redfishtest.New(t, redfishtest.Options{Mockup: bladed})
	for _, id := range []string{"529QB9450R6", "529QB9451R6", "529QB9452R6", "529QB9453R6"} {
		ch2.Set("/redfish/v1/Systems/"+id, map[string]any{"SerialNumber": "CH2-" + id})
	}
	out, err = enroll(ch2.URL, "--name", "ch2", "--all-systems")
	if err != nil || strings.Count(out, "Enrolled ch2-") != 4 || !strings.Contains(out, "system 529QB9453R6") {
		t.Fatalf("--all-systems: %v %s", err, out)
	}
	rack := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
	if out, err := enroll(rack.URL, "--adopt", "--power-on"); err == nil || !strings.Contains(err.Error(), "adopt takes a running machine as it is") {
		t.Fatalf("--adopt --power-on: %v %s", err, out)
	}
	out, err = enroll(rack.URL, "--name", "hmi-9", "--adopt")
	if err != nil || !strings.Contains(out, "Adopted hmi-9") || !strings.Contains(out, "state adopted") {
		t.Fatalf("--adopt: %v %s", err, out)
	}
	if out, err := slate("", "machine", "show", "hmi-9"); err != nil || !strings.Contains(out, "adopted: runs an unmanaged system") {
		t.Fatalf("machine show of an adopted machine: %v %s", err, out)
	}
	if out, err := slate("", "machine", "show", "blade3"); err != nil || !strings.Contains(out, "529QB9452R6") || !strings.Contains(out, "BMC system") {
		t.Fatalf("machine show of a blade: %v %s", err, out)
	}
	err = a.Store.Update(ctx, func(tx *inventory.Tx) error {
		r, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "1", Kind: "disk", ImageRef: "plant/hmi", CreatedBy: "x"})
		if err != nil {
			return err
		}
		return tx.SetReleaseState(ctx, r.ID, lifecycle.ReleaseApproved, "y")
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := slate("", "machine", "provision", "hmi-9", "hmi@1"); err != nil || !strings.Contains(out, "hmi-9 is adopted") || strings.Contains(out, "should now run") {
		t.Fatalf("provision of an adopted machine: %v %s", err, out)
	}
	if m, _ := a.Store.GetMachine(ctx, "hmi-9"); m.State != lifecycle.Adopted {
		t.Fatalf("a desired release moved the adopted machine: %s", m.State)
	}
	for _, q := range rack.Requests() {
		if q.Method != "GET" && !strings.HasPrefix(q.Path, "/redfish/v1/SessionService/Sessions") {
			t.Fatalf("--adopt sent %s %s to the BMC", q.Method, q.Path)
		}
	}
}
