package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
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

// `slate bmc probe` of a blade chassis lists every system behind the BMC (to choose the one
// to enroll with --system); a rack server's probe carries no list.
func TestBMCProbeListsSystems(t *testing.T) {
	probe := func(s *redfishtest.Server) string {
		var out, errb bytes.Buffer
		env := &cliEnv{stdout: &out, stderr: &errb, stdin: strings.NewReader(""),
			getenv:  func(k string) string { return map[string]string{"SLATE_BMC_PASSWORD": "password"}[k] },
			environ: func() []string { return nil }}
		if err := bmcProbe(context.Background(), env, []string{"--address", s.URL, "--user", "admin"}); err != nil {
			t.Fatalf("probe: %v %s", err, errb.String())
		}
		return out.String()
	}
	var got struct {
		Systems []struct{ ID string }
	}
	out := probe(redfishtest.New(t, redfishtest.Options{Mockup: filepath.Join(redfishtest.MockupDir(t), "public-bladed")}))
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Systems) != 4 || got.Systems[2].ID != "529QB9452R6" {
		t.Fatalf("probe of a blade chassis: %v\n%s", err, out)
	}
	if out := probe(redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t)})); strings.Contains(out, `"systems"`) {
		t.Fatalf("probe of a rack server lists systems:\n%s", out)
	}
}
