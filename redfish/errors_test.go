package redfish_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"slate/redfish"
	"slate/redfish/redfishtest"
)

// Every fault the issue lists, on a read and on a write: an error that names the BMC and the
// operation, no panic, and (for BIOS) nothing reported as applied.
func TestFaults(t *testing.T) {
	type call struct {
		op  string
		run func(context.Context, *redfish.Client) error
	}
	read := call{"read power state", func(ctx context.Context, c *redfish.Client) error { _, err := c.PowerState(ctx); return err }}
	boot := call{"set one-time boot override", func(ctx context.Context, c *redfish.Client) error {
		return c.SetBootOnce(ctx, redfish.BootOverride{Target: redfish.BootPXE})
	}}
	bios := call{"stage BIOS profile", func(ctx context.Context, c *redfish.Client) error {
		res, err := c.ApplyBIOS(ctx, profile)
		if res.State == redfish.BIOSApplied || res.State == redfish.BIOSStaged {
			return errors.New("profile reported " + res.State + " despite the fault")
		}
		return err
	}}
	for _, tc := range []struct {
		name     string
		fault    redfishtest.Fault
		call     call
		status   int
		sentinel error
	}{
		{"400-on-patch", redfishtest.Fault{Method: "PATCH", Kind: redfishtest.FaultStatus, Status: 400}, boot, 400, nil},
		{"401-always", redfishtest.Fault{Method: "GET", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultStatus, Status: 401}, read, 401, redfish.ErrUnauthorized},
		{"412-always", redfishtest.Fault{Method: "PATCH", Kind: redfishtest.FaultETagMismatch}, boot, 412, nil},
		{"503-always", redfishtest.Fault{Method: "GET", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultStatus, Status: 503}, read, 503, nil},
		{"timeout", redfishtest.Fault{Method: "GET", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultHang}, read, 0, redfish.ErrTimeout},
		{"malformed-json", redfishtest.Fault{Method: "GET", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultMalformed}, read, 0, redfish.ErrBadReply},
		{"other-resource", redfishtest.Fault{Method: "GET", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultOtherResource}, read, 0, redfish.ErrBadReply},
		{"bios-400", redfishtest.Fault{Method: "PATCH", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultStatus, Status: 400}, bios, 400, nil},
		{"bios-412", redfishtest.Fault{Method: "PATCH", Kind: redfishtest.FaultETagMismatch}, bios, 412, nil},
		{"bios-malformed", redfishtest.Fault{Method: "GET", Path: "/redfish/v1/Systems/437XR1138R2/Bios/Settings", Kind: redfishtest.FaultMalformed}, bios, 0, redfish.ErrBadReply},
		{"bios-other-resource", redfishtest.Fault{Method: "GET", Path: "/redfish/v1/Systems/437XR1138R2/Bios", Kind: redfishtest.FaultOtherResource}, bios, 0, redfish.ErrBadReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rackmount(t, redfishtest.Options{})
			cfg := fastConfig(t, s, nil)
			cfg.Timeout = 300 * time.Millisecond
			cfg.Retries = 1
			c, err := redfish.Connect(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			s.Inject(tc.fault)
			err = tc.call.run(context.Background(), c)
			e := requireBMCError(t, err, s.URL, tc.call.op)
			if e.Status != tc.status {
				t.Errorf("status %d, want %d: %v", e.Status, tc.status, err)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("want %v in %v", tc.sentinel, err)
			}
			if tc.status == 400 && (e.MessageID == "" || !strings.Contains(err.Error(), "injected 400")) {
				t.Errorf("the Redfish error body is not in the error: %v", err)
			}
			s.ClearFaults()
			if a := s.Get(s.SystemURI() + "/Bios")["Attributes"].(map[string]any); a["ProcHyperthreading"] != "Enabled" {
				t.Error("a failed operation changed BIOS attributes")
			}
		})
	}
}

func TestTransientFaultsAreRetried(t *testing.T) {
	for _, f := range []redfishtest.Fault{
		{Method: "GET", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultStatus, Status: 503, Times: 2},
		{Method: "PATCH", Kind: redfishtest.FaultETagMismatch, Times: 1},
		{Method: "GET", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultHang, Times: 1},
	} {
		s := rackmount(t, redfishtest.Options{})
		cfg := fastConfig(t, s, nil)
		cfg.Timeout = 300 * time.Millisecond
		c, err := redfish.Connect(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.Inject(f)
		if err := c.SetBootOnce(context.Background(), redfish.BootOverride{Target: redfish.BootPXE}); err != nil {
			t.Fatalf("fault %+v not recovered: %v", f, err)
		}
		_ = c.Close(context.Background())
	}
}

func TestRetriesAreBounded(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	cfg := fastConfig(t, s, nil)
	cfg.Retries = 2
	c, err := redfish.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	before := len(s.Requests())
	s.Inject(redfishtest.Fault{Method: "GET", Path: "/redfish/v1/Systems", Kind: redfishtest.FaultStatus, Status: 503})
	if _, err := c.PowerState(context.Background()); err == nil {
		t.Fatal("no error")
	}
	if n := len(s.Requests()) - before; n != 3 {
		t.Fatalf("%d attempts, want 1 + 2 retries", n)
	}
}

func TestContextCancelStopsWaits(t *testing.T) {
	s := rackmount(t, redfishtest.Options{IgnoreGraceful: true})
	cfg := fastConfig(t, s, nil)
	cfg.PowerOffGrace = time.Hour
	cfg.PollInterval = 20 * time.Millisecond
	c, err := redfish.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.PowerOff(ctx)
	requireBMCError(t, err, s.URL, "power off")
	if time.Since(start) > 5*time.Second {
		t.Fatal("cancel did not stop the wait")
	}
}

func TestBadAddress(t *testing.T) {
	for _, a := range []string{"", "ftp://x", "http://"} {
		_, err := redfish.Connect(context.Background(), redfish.Config{Address: a})
		requireBMCError(t, err, a, "connect")
	}
}
