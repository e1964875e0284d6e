package redfish_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"slate/redfish"
	"slate/redfish/redfishtest"
)

func TestSessionCreateReuseReloginDelete(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	ctx := context.Background()
	c, err := redfish.Connect(ctx, fastConfig(t, s, nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.Sessions() != 1 {
		t.Fatalf("sessions after connect = %d, want 1", s.Sessions())
	}
	for range 3 {
		if _, err := c.PowerState(ctx); err != nil {
			t.Fatal(err)
		}
	}
	logins := len(bodies(s, "POST", "/SessionService/Sessions"))
	if logins != 1 {
		t.Fatalf("session not reused: %d logins", logins)
	}
	s.ExpireSessions()
	if _, err := c.PowerState(ctx); err != nil {
		t.Fatalf("after session expiry: %v", err)
	}
	if n := len(bodies(s, "POST", "/SessionService/Sessions")); n != 2 {
		t.Fatalf("logins after 401 = %d, want 2", n)
	}
	for _, r := range s.Requests() {
		if r.Header.Get("Authorization") != "" {
			t.Fatalf("Basic auth sent although a session exists: %s %s", r.Method, r.Path)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Sessions() != 0 {
		t.Fatalf("session not deleted on close: %d left", s.Sessions())
	}
}

func TestBasicAuthWithoutSessionService(t *testing.T) {
	s := rackmount(t, redfishtest.Options{NoSessionService: true})
	c := connect(t, s, nil)
	st, err := c.PowerState(context.Background())
	if err != nil || st != redfish.PowerOn {
		t.Fatalf("power state %q, %v", st, err)
	}
	basic := 0
	for _, r := range s.Requests() {
		if r.Header.Get("Authorization") != "" {
			basic++
		}
	}
	if basic == 0 {
		t.Fatal("no Basic auth used against a BMC without SessionService")
	}
}

func TestWrongPassword(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	cfg := fastConfig(t, s, nil)
	cfg.Password = "nope"
	_, err := redfish.Connect(context.Background(), cfg)
	requireBMCError(t, err, s.URL, "log in")
	if !errors.Is(err, redfish.ErrUnauthorized) || !strings.Contains(err.Error(), "check the BMC user name") {
		t.Fatalf("want an unauthorized error telling what to do, got %v", err)
	}
}

func TestTrustOnFirstUse(t *testing.T) {
	ctx := context.Background()
	s := rackmount(t, redfishtest.Options{TLSCert: redfishtest.NewCert(t)})
	c := connect(t, s, nil)
	fp := c.Fingerprint()
	if fp == "" || fp != s.Fingerprint() {
		t.Fatalf("first-use fingerprint %q, server's %q", fp, s.Fingerprint())
	}
	// pinned and unchanged: accepted (formatting of the stored pin does not matter)
	cfg := fastConfig(t, s, nil)
	cfg.Fingerprint = strings.ToUpper(fp)
	c2, err := redfish.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("pinned fingerprint refused: %v", err)
	}
	_ = c2.Close(ctx)

	// the same address now presents another certificate: refused, with what to do
	other := rackmount(t, redfishtest.Options{TLSCert: redfishtest.NewCert(t)})
	cfg = fastConfig(t, other, nil)
	cfg.Fingerprint = fp
	_, err = redfish.Connect(ctx, cfg)
	requireBMCError(t, err, other.URL, "connect")
	if !errors.Is(err, redfish.ErrFingerprintChanged) {
		t.Fatalf("want ErrFingerprintChanged, got %v", err)
	}
	t.Log(err)
	for _, want := range []string{"re-pin", other.Fingerprint(), fp} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("fingerprint error lacks %q: %v", want, err)
		}
	}
	if n := len(other.Requests()); n != 0 {
		t.Fatalf("%d requests reached a BMC with a changed certificate", n)
	}
}

func TestVendorDetectionAndIDs(t *testing.T) {
	for _, tc := range []struct {
		vendor redfishtest.Vendor
		name   string
		system string
	}{
		{redfishtest.Generic, "generic", "/redfish/v1/Systems/437XR1138R2"},
		{redfishtest.Dell, "dell", "/redfish/v1/Systems/System.Embedded.1"},
		{redfishtest.HPE, "hpe", "/redfish/v1/Systems/1"},
		{redfishtest.Supermicro, "supermicro", "/redfish/v1/Systems/1"},
		{redfishtest.Lenovo, "lenovo", "/redfish/v1/Systems/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rackmount(t, redfishtest.Options{Vendor: tc.vendor})
			c := connect(t, s, nil)
			if c.Vendor().Name() != tc.name || c.SystemURI() != tc.system {
				t.Fatalf("vendor %s system %s, want %s %s", c.Vendor().Name(), c.SystemURI(), tc.name, tc.system)
			}
		})
	}
	if _, err := redfish.VendorByName("acme"); err == nil {
		t.Fatal("unknown vendor profile accepted")
	}
}

func TestInventory(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	inv, err := c.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if inv.Model != "3500" || inv.Serial != "437XR1138R2" || inv.UUID != "38947555-7742-3448-3784-823347823834" || inv.Manufacturer != "Contoso" {
		t.Fatalf("system identity wrong: %+v", inv)
	}
	if inv.BMCFirmware != "1.45.455b66-rev4" {
		t.Fatalf("BMC firmware %q", inv.BMCFirmware)
	}
	macs := inv.MACs()
	want := map[string]bool{"12:44:6a:3b:04:11": false, "12:44:6a:3b:88:90": false}
	for _, m := range macs {
		if _, ok := want[m]; ok {
			want[m] = true
		}
	}
	for m, seen := range want {
		if !seen {
			t.Errorf("MAC %s missing from %v", m, macs)
		}
	}
	if inv.Fingerprint == "" || inv.VendorProfile != "generic" {
		t.Errorf("inventory lacks fingerprint or profile: %+v", inv)
	}
}

func TestConcurrentCallsAfterExpiryLogInOnce(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	ctx := context.Background()
	s.ExpireSessions()
	errs := make(chan error, 8)
	for range 8 {
		go func() { _, err := c.PowerState(ctx); errs <- err }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := len(bodies(s, "POST", "/SessionService/Sessions")); n > 3 {
		t.Fatalf("%d logins for one expiry", n)
	}
	if s.Sessions() != 1 {
		t.Fatalf("%d live sessions, want 1 (the others leak on the BMC)", s.Sessions())
	}
}

func TestDialStoredFields(t *testing.T) {
	s := rackmount(t, redfishtest.Options{Vendor: redfishtest.Dell})
	c, err := redfish.Dial(context.Background(), s.URL, "admin", "password", "auto", "", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if c.Vendor().Name() != "dell" || c.Fingerprint() != s.Fingerprint() {
		t.Fatalf("vendor %s fingerprint %s", c.Vendor().Name(), c.Fingerprint())
	}
	_, err = redfish.Dial(context.Background(), s.URL, "admin", "password", "acme", "", testLogger(t))
	requireBMCError(t, err, s.URL, "connect")
}

func TestPlainHTTPHasNoFingerprint(t *testing.T) {
	s := rackmount(t, redfishtest.Options{PlainHTTP: true})
	c := connect(t, s, nil)
	if c.Fingerprint() != "" {
		t.Fatalf("fingerprint %q over plain HTTP", c.Fingerprint())
	}
	if _, err := c.PowerState(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestLoginRetriedWhenBusy(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	s.Inject(redfishtest.Fault{Method: "POST", Path: "/redfish/v1/SessionService/Sessions", Kind: redfishtest.FaultStatus, Status: 503, Times: 1})
	c := connect(t, s, nil)
	if s.Sessions() != 1 {
		t.Fatalf("%d sessions", s.Sessions())
	}
	_ = c
}
