package redfish_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"slate/redfish"
	"slate/redfish/redfishtest"
)

func resetTypes(s *redfishtest.Server) []string {
	var out []string
	for _, b := range bodies(s, "POST", "ComputerSystem.Reset") {
		rt, _ := b["ResetType"].(string)
		out = append(out, rt)
	}
	return out
}

func TestPowerOffGraceful(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	ctx := context.Background()
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.PowerState(ctx); st != redfish.PowerOff {
		t.Fatalf("state %s after power off", st)
	}
	if got := resetTypes(s); !slices.Equal(got, []string{"GracefulShutdown"}) {
		t.Fatalf("reset types %v, want only GracefulShutdown", got)
	}
	// already off: nothing sent
	if err := c.PowerOff(ctx); err != nil || len(resetTypes(s)) != 1 {
		t.Fatalf("second power off: %v, resets %v", err, resetTypes(s))
	}
}

func TestPowerOffForcedAfterGrace(t *testing.T) {
	s := rackmount(t, redfishtest.Options{IgnoreGraceful: true})
	c := connect(t, s, nil)
	ctx := context.Background()
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if got := resetTypes(s); !slices.Equal(got, []string{"GracefulShutdown", "ForceOff"}) {
		t.Fatalf("reset types %v, want GracefulShutdown then ForceOff", got)
	}
	if s.Get(s.SystemURI())["PowerState"] != "Off" {
		t.Fatal("server still on")
	}
}

func TestPowerOnAndCycle(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	ctx := context.Background()
	if err := c.PowerOn(ctx); err != nil { // already on: no reset
		t.Fatal(err)
	}
	if len(resetTypes(s)) != 0 {
		t.Fatalf("power on of a running system sent %v", resetTypes(s))
	}
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	if got := resetTypes(s); !slices.Equal(got, []string{"ForceRestart", "GracefulShutdown", "On"}) {
		t.Fatalf("reset types %v", got)
	}
	if st, _ := c.PowerState(ctx); st != redfish.PowerOn {
		t.Fatalf("state %s", st)
	}
}

func TestBootOncePXEConsumedAtBoot(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	ctx := context.Background()
	if err := c.SetBootOnce(ctx, redfish.BootOverride{Target: redfish.BootDisk, Mode: redfish.ModeUEFI}); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SetBootOnce(ctx, redfish.BootOverride{Target: redfish.BootPXE}); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Boots(); !slices.Equal(got, []string{"Hdd", "Pxe", ""}) {
		t.Fatalf("boots %v: the override must hold for exactly one boot", got)
	}
	// every PATCH carried the ETag of the read before it
	for _, r := range s.Requests() {
		if r.Method == "PATCH" && r.Header.Get("If-Match") == "" {
			t.Fatalf("PATCH %s without If-Match", r.Path)
		}
	}
}

func TestBootUnsupportedTargets(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	ctx := context.Background()
	err := c.SetBootOnce(ctx, redfish.BootOverride{Target: redfish.BootHTTP, URI: "http://10.0.0.1/boot.efi"})
	requireBMCError(t, err, s.URL, "set one-time boot override")
	if !errors.Is(err, redfish.ErrUnsupported) {
		t.Fatalf("want ErrUnsupported for UefiHttp on a BMC without it, got %v", err)
	}
	if len(bodies(s, "PATCH", s.SystemURI())) != 0 {
		t.Fatal("an unsupported override was sent")
	}
	err = c.SetBootOnce(ctx, redfish.BootOverride{Target: "Floppy"})
	requireBMCError(t, err, s.URL, "set one-time boot override")
}

func TestBootUefiHTTPWithURI(t *testing.T) {
	s := rackmount(t, redfishtest.Options{UefiHTTP: true})
	c := connect(t, s, nil)
	uri := "http://192.0.2.1/slate/boot.ipxe.efi"
	if err := c.SetBootOnce(context.Background(), redfish.BootOverride{Target: redfish.BootHTTP, URI: uri}); err != nil {
		t.Fatal(err)
	}
	boot := s.Get(s.SystemURI())["Boot"].(map[string]any)
	if boot["HttpBootUri"] != uri || boot["BootSourceOverrideTarget"] != "UefiHttp" || boot["BootSourceOverrideEnabled"] != "Once" {
		t.Fatalf("boot %v", boot)
	}
}

// HPE iLO takes only Target and Enabled in a boot override PATCH.
func TestQuirkHPEBootMinimalRetry(t *testing.T) {
	ctx := context.Background()
	o := redfish.BootOverride{Target: redfish.BootPXE, Mode: redfish.ModeUEFI}

	s := rackmount(t, redfishtest.Options{Vendor: redfishtest.HPE})
	err := connect(t, s, redfish.Generic{}).SetBootOnce(ctx, o)
	e := requireBMCError(t, err, s.URL, "set one-time boot override")
	if e.Status != 400 {
		t.Fatalf("generic profile against iLO: want the 400, got %v", err)
	}

	s = rackmount(t, redfishtest.Options{Vendor: redfishtest.HPE})
	if err := connect(t, s, redfish.HPE{}).SetBootOnce(ctx, o); err != nil {
		t.Fatalf("HPE profile: %v", err)
	}
	patches := bodies(s, "PATCH", s.SystemURI())
	if len(patches) != 2 {
		t.Fatalf("want full then minimal PATCH, got %v", patches)
	}
	if b := patches[1]["Boot"].(map[string]any); len(b) != 2 {
		t.Fatalf("retry body %v is not Target+Enabled only", b)
	}
}

// Supermicro resets BootSourceOverrideMode unless it is sent with every override.
func TestQuirkSupermicroResendsMode(t *testing.T) {
	ctx := context.Background()
	o := redfish.BootOverride{Target: redfish.BootPXE} // keep the current mode (UEFI)

	s := rackmount(t, redfishtest.Options{Vendor: redfishtest.Supermicro})
	if err := connect(t, s, redfish.Generic{}).SetBootOnce(ctx, o); err != nil {
		t.Fatal(err)
	}
	if m := s.Get(s.SystemURI())["Boot"].(map[string]any)["BootSourceOverrideMode"]; m != "Legacy" {
		t.Fatalf("the test server does not model the quirk: mode %v", m)
	}

	s = rackmount(t, redfishtest.Options{Vendor: redfishtest.Supermicro})
	if err := connect(t, s, redfish.Supermicro{}).SetBootOnce(ctx, o); err != nil {
		t.Fatal(err)
	}
	if m := s.Get(s.SystemURI())["Boot"].(map[string]any)["BootSourceOverrideMode"]; m != "UEFI" {
		t.Fatalf("Supermicro profile lost the mode: %v", m)
	}
}

// iDRAC answers 409 to On when the system is already on: a power-on that races another one
// is judged by the state it leads to, not by the 409.
func TestQuirkDellPowerOnConflict(t *testing.T) {
	s := rackmount(t, redfishtest.Options{Vendor: redfishtest.Dell})
	c := connect(t, s, nil)
	ctx := context.Background()
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	// someone powers it on between our read and our reset: the server then answers 409
	s.Inject(redfishtest.Fault{Method: "POST", Path: s.SystemURI() + "/Actions", Kind: redfishtest.FaultStatus, Status: 409, Times: 1,
		Before: func() { s.Set(s.SystemURI(), map[string]any{"PowerState": "On"}) }})
	if err := c.PowerOn(ctx); err != nil {
		t.Fatalf("power on that met a 409 but left the system on: %v", err)
	}
	// a 409 that leaves the system off is an error
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	s.Inject(redfishtest.Fault{Method: "POST", Path: s.SystemURI() + "/Actions", Kind: redfishtest.FaultStatus, Status: 409, Times: 1})
	err := c.PowerOn(ctx)
	requireBMCError(t, err, s.URL, "power on")
	if !errors.Is(err, redfish.ErrTimeout) {
		t.Fatalf("want the bounded wait to fail, got %v", err)
	}
}

// A BMC that reports the one-time override as Continuous (sushy-tools, several real BMCs) is
// accepted — it failed with "not applied" before — and ClearBootOverride sets it Disabled
// after the boot; without that every later reset would network-boot again.
func TestBootOverrideEchoedContinuous(t *testing.T) {
	s := rackmount(t, redfishtest.Options{BootEcho: redfishtest.EchoContinuous, PowerState: "Off"})
	c := connect(t, s, redfish.Generic{})
	ctx := context.Background()
	if err := c.BootOnceNow(ctx, redfish.BootOverride{Target: redfish.BootPXE}); err != nil {
		t.Fatalf("boot once on a BMC that echoes Continuous: %v", err)
	}
	// the bad case the clearing prevents: the override outlives its boot
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	if b := s.Boots(); len(b) != 2 || b[0] != "Pxe" || b[1] != "Pxe" {
		t.Fatalf("boots %v: the Continuous override should still hold before it is cleared", b)
	}
	if err := c.ClearBootOverride(ctx); err != nil {
		t.Fatalf("clear: %v", err)
	}
	boot, _ := s.Get(s.SystemURI())["Boot"].(map[string]any)
	if boot["BootSourceOverrideEnabled"] != "Disabled" {
		t.Fatalf("override after clearing: %v", boot)
	}
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	if b := s.Boots(); len(b) != 3 || b[2] != "" {
		t.Fatalf("boots %v: after clearing, the next reset must boot normally", b)
	}
	// nothing to clear: nothing sent
	n := len(bodies(s, "PATCH", s.SystemURI()))
	if err := c.ClearBootOverride(ctx); err != nil {
		t.Fatal(err)
	}
	if m := len(bodies(s, "PATCH", s.SystemURI())); m != n {
		t.Fatalf("ClearBootOverride PATCHed a system without a Continuous override")
	}
}

// A BMC that takes the override but reports it cleared at once: with a profile that expects
// it (sushy), Slate verifies by the boot; with the generic profile the same read-back is
// indistinguishable from an ignored override and stays "not applied", with a hint.
func TestBootOverrideEchoedCleared(t *testing.T) {
	s := rackmount(t, redfishtest.Options{BootEcho: redfishtest.EchoCleared, PowerState: "Off"})
	ctx := context.Background()
	err := connect(t, s, redfish.Generic{}).SetBootOnce(ctx, redfish.BootOverride{Target: redfish.BootPXE})
	if e := requireBMCError(t, err, s.URL, "set one-time boot override"); !errors.Is(err, redfish.ErrNotApplied) || !strings.Contains(e.Hint, "sushy") {
		t.Fatalf("generic profile, cleared read-back: %v", err)
	}
	c := connect(t, s, redfish.Sushy{})
	if err := c.BootOnceNow(ctx, redfish.BootOverride{Target: redfish.BootPXE}); err != nil {
		t.Fatalf("sushy profile, cleared read-back: %v", err)
	}
	if b := s.Boots(); len(b) != 1 || b[0] != "Pxe" {
		t.Fatalf("boots %v, want the Pxe override taken", b)
	}
	if v, _ := redfish.VendorByName("sushy"); v == nil || v.BootEcho() != redfish.EchoCleared {
		t.Fatalf("profile sushy: %v", v)
	}
}
