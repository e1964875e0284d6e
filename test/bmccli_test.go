package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slate/redfish/redfishtest"
)

// TestCLIEnrollWarningAndRepin drives the CLI against a real `slate serve` and Redfish BMCs:
//   - `machine enroll --power-on` of a running machine, and of one whose BMC fails the
//     power-on, enrolls it (stdout says so) but exits 3 with a warning that says why, in
//     words, and what to do — never the plain success (exit 0) it was;
//   - a BMC that replaced its certificate is re-pinned with `machine bmc --repin`: both
//     fingerprints are shown, nothing is changed without a confirmation naming the new one,
//     a confirmation naming another is refused, the right one pins it.
func TestCLIEnrollWarningAndRepin(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)
	pwb, err := os.ReadFile(filepath.Join(dir, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	pwFile, bmcPw := filepath.Join(tmp, "pw"), filepath.Join(tmp, "bmc-pw")
	os.WriteFile(pwFile, pwb, 0o600)
	os.WriteFile(bmcPw, []byte("password\n"), 0o600)
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "SLATE_SERVER=http://" + s.addr}
	if out, err := run(t, env, "login", "--username", "admin", "--password-file", pwFile); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}

	running := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t), PowerState: "On"})
	out, err := run(t, env, "machine", "enroll", "--name", "line-1", "--bmc-address", running.URL, "--bmc-user", "admin",
		"--bmc-password-file", bmcPw, "--power-on")
	if exitCode(err) != 3 || !strings.Contains(out, "Enrolled line-1") || !strings.Contains(out, "slate: warning: line-1 is enrolled but NOT powered") ||
		!strings.Contains(out, "it is running, so Slate left it alone") || !strings.Contains(out, "adopt") {
		t.Fatalf("enroll --power-on of a running machine: exit %d\n%s", exitCode(err), out)
	}

	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "Off", TLSCert: redfishtest.NewCert(t)})
	bmc.Inject(redfishtest.Fault{Method: "PATCH", Path: bmc.SystemURI(), Kind: redfishtest.FaultStatus, Status: 500})
	out, err = run(t, env, "machine", "enroll", "--name", "line-2", "--bmc-address", bmc.URL, "--bmc-user", "admin",
		"--bmc-password-file", bmcPw, "--power-on")
	if exitCode(err) != 3 || !strings.Contains(out, "Enrolled line-2") || !strings.Contains(out, "the power-on through its BMC failed") ||
		!strings.Contains(out, "HTTP 500") {
		t.Fatalf("enroll --power-on whose power-on fails: exit %d\n%s", exitCode(err), out)
	}
	// A plain enrollment asked for nothing more: no warning, exit 0.
	out, err = run(t, env, "machine", "enroll", "--json", "--name", "line-3", "--mac", "52:54:00:ab:cd:33")
	if exitCode(err) != 0 || strings.Contains(out, "warning") {
		t.Fatalf("a plain enrollment: exit %d\n%s", exitCode(err), out)
	}

	oldFP := bmc.Fingerprint()
	bmc.ReplaceCertificate(redfishtest.NewCert(t))
	newFP := bmc.Fingerprint()
	out, err = run(t, env, "machine", "bmc", "line-2")
	if exitCode(err) != 1 || !strings.Contains(out, "pinned certificate:    "+oldFP) || !strings.Contains(out, "presented certificate: "+newFP) ||
		!strings.Contains(out, "--repin") {
		t.Fatalf("machine bmc after the certificate changed: exit %d\n%s", exitCode(err), out)
	}
	out, err = run(t, env, "machine", "bmc", "line-2", "--repin") // no terminal to confirm on
	if exitCode(err) != 1 || !strings.Contains(out, "--confirm-fingerprint "+newFP) {
		t.Fatalf("--repin without a confirmation: exit %d\n%s", exitCode(err), out)
	}
	out, err = run(t, env, "machine", "bmc", "line-2", "--repin", "--confirm-fingerprint", oldFP)
	if exitCode(err) != 1 || !strings.Contains(out, "is not the certificate the BMC presents ("+newFP+")") {
		t.Fatalf("--repin confirming another fingerprint: exit %d\n%s", exitCode(err), out)
	}
	out, err = run(t, env, "machine", "show", "line-2", "--json")
	if err != nil || !strings.Contains(out, oldFP) {
		t.Fatalf("a refused re-pin changed the pin: %v\n%s", err, out)
	}
	out, err = run(t, env, "machine", "bmc", "line-2", "--repin", "--confirm-fingerprint", newFP)
	if exitCode(err) != 0 || !strings.Contains(out, "certificate "+newFP+" pinned (was "+oldFP+")") {
		t.Fatalf("--repin confirmed: exit %d\n%s", exitCode(err), out)
	}
	out, err = run(t, env, "machine", "bmc", "line-2")
	if exitCode(err) != 0 || !strings.Contains(out, "Nothing to change") {
		t.Fatalf("machine bmc after the re-pin: exit %d\n%s", exitCode(err), out)
	}
	out, err = run(t, env, "audit", "list", "--action", "machine.bmc")
	if err != nil || !strings.Contains(out, "machine.bmc") {
		t.Fatalf("the re-pin is not in the audit log: %v\n%s", err, out)
	}
}
