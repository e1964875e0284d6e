package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"slate/redfish/redfishtest"
)

// `slate bmc power off|cycle` and `slate bmc boot --now` refuse a running machine without
// --force and send nothing that changes it; with --force they act. A machine that is off is
// powered on into the override without --force.
func TestBMCPowerNeedsForceOnARunningMachine(t *testing.T) {
	run := func(s *redfishtest.Server, args ...string) (string, error) {
		var out, errb bytes.Buffer
		env := &cliEnv{stdout: &out, stderr: &errb, stdin: strings.NewReader(""),
			getenv:  func(k string) string { return map[string]string{"SLATE_BMC_PASSWORD": "password"}[k] },
			environ: func() []string { return nil }}
		all := append([]string{"--address", s.URL, "--user", "admin"}, args[1:]...)
		var err error
		switch args[0] {
		case "power":
			err = bmcPower(context.Background(), env, all)
		case "boot":
			err = bmcBoot(context.Background(), env, all)
		}
		return out.String(), err
	}
	changes := func(s *redfishtest.Server) int {
		n := 0
		for _, r := range s.Requests() {
			if r.Method == "PATCH" || (r.Method == "POST" && strings.Contains(r.Path, "Reset")) {
				n++
			}
		}
		return n
	}
	for _, c := range [][]string{{"power", "off"}, {"power", "cycle"}, {"boot", "--target", "pxe", "--now"}} {
		s := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
		_, err := run(s, c...)
		if err == nil || !strings.Contains(err.Error(), "running") || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("%v on a running machine: %v", c, err)
		}
		if n := changes(s); n != 0 {
			t.Fatalf("%v on a running machine sent %d changing requests", c, n)
		}
		forced := append(append([]string{c[0]}, "--force"), c[1:]...)
		if _, err := run(s, forced...); err != nil {
			t.Fatalf("%v: %v", forced, err)
		}
		if changes(s) == 0 {
			t.Fatalf("%v changed nothing", forced)
		}
	}
	s := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "Off"})
	if _, err := run(s, "boot", "--target", "pxe", "--now"); err != nil {
		t.Fatalf("boot --now on a machine that is off: %v", err)
	}
	if b := s.Boots(); len(b) != 1 || b[0] != "Pxe" {
		t.Fatalf("boots %v", b)
	}
}
