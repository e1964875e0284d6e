package redfish_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"slate/redfish"
	"slate/redfish/redfishtest"
)

// Every DMTF public mockup beside the repository is probed and inventoried, on every system it
// has, and power and a one-time boot work on every system with a Reset action and a Boot
// object. gofish v0.19.0 failed public-applications (ComputerSystem v1_27 carries the
// OperatingSystem link where gofish models a string), and only the first system of
// public-bladed could be reached.
func TestEveryMockupProbesPowersAndBoots(t *testing.T) {
	dir := redfishtest.MockupDir(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"public-applications", "public-bladed", "public-bladed-partitions", "public-catfish", "public-iiot",
		"public-mpf", "public-rackmount1", "public-smartnic", "public-telemetry"}
	var seen []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "public-") {
			continue
		}
		seen = append(seen, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			s := redfishtest.New(t, redfishtest.Options{Mockup: filepath.Join(dir, e.Name())})
			ctx := context.Background()
			// the default pick, as `slate bmc probe` does it
			c := connect(t, s, nil)
			if _, err := c.Inventory(ctx); err != nil {
				t.Fatalf("inventory: %v", err)
			}
			coll := s.Get("/redfish/v1/Systems")
			members, _ := coll["Members"].([]any)
			if len(members) == 0 {
				t.Fatal("mockup lists no systems")
			}
			driven := 0
			for _, m := range members {
				uri, _ := m.(map[string]any)["@odata.id"].(string)
				cfg := fastConfig(t, s, nil)
				cfg.System = uri
				c, err := redfish.Connect(ctx, cfg)
				if err != nil {
					t.Fatalf("connect to system %s: %v", uri, err)
				}
				defer c.Close(ctx)
				if c.SystemURI() != uri {
					t.Fatalf("asked for system %s, got %s", uri, c.SystemURI())
				}
				inv, err := c.Inventory(ctx)
				if err != nil {
					t.Fatalf("inventory of %s: %v", uri, err)
				}
				if inv.SystemURI != uri {
					t.Errorf("inventory of %s names system %s", uri, inv.SystemURI)
				}
				doc := s.Get(uri)
				acts, _ := doc["Actions"].(map[string]any)
				_, hasReset := acts["#ComputerSystem.Reset"]
				boot, hasBoot := doc["Boot"].(map[string]any)
				if !hasReset || !hasBoot {
					t.Logf("%s: no Reset action or no Boot object: power and boot not driven", uri)
					continue
				}
				driven++
				target := redfish.BootPXE
				if allowed, ok := boot["BootSourceOverrideTarget@Redfish.AllowableValues"].([]any); ok && !slices.Contains(allowed, any("Pxe")) {
					target = redfish.BootDisk
				}
				if err := c.PowerOff(ctx); err != nil {
					t.Fatalf("power off %s: %v", uri, err)
				}
				if ps, err := c.PowerState(ctx); err != nil || ps != redfish.PowerOff {
					t.Fatalf("after power off %s reads %q, %v", uri, ps, err)
				}
				before := len(s.Boots())
				if err := c.BootOnceNow(ctx, redfish.BootOverride{Target: target}); err != nil {
					t.Fatalf("boot once %s into %s: %v", uri, target, err)
				}
				boots := s.Boots()
				if len(boots) != before+1 || boots[len(boots)-1] != string(target) {
					t.Fatalf("%s booted %v after a one-time %s boot", uri, boots[before:], target)
				}
				if ps, err := c.PowerState(ctx); err != nil || ps != redfish.PowerOn {
					t.Fatalf("after the boot %s reads %q, %v", uri, ps, err)
				}
			}
			if driven == 0 && e.Name() != "public-iiot" {
				t.Errorf("no system of %s was driven", e.Name())
			}
		})
	}
	for _, w := range want {
		if !slices.Contains(seen, w) {
			t.Errorf("mockup %s is missing from %s", w, dir)
		}
	}
}

// A property Slate does not read may take any shape, and one it reads that arrives in another
// shape is left empty: neither makes the system unusable.
func TestRetypedPropertiesDoNotBreakTheSystem(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	s.Set(s.SystemURI(), map[string]any{
		"OperatingSystem": map[string]any{"@odata.id": s.SystemURI() + "/OperatingSystem"}, // v1_21: a link
		"AssetTag":        map[string]any{"Oem": "an object where a string was"},           // re-typed, read by Slate
		"SomeFutureThing": []any{1, "two", map[string]any{}},                               // unknown
	})
	c := connect(t, s, nil)
	inv, err := c.Inventory(context.Background())
	if err != nil {
		t.Fatalf("inventory with re-typed properties: %v", err)
	}
	if inv.Serial == "" || inv.UUID == "" || inv.PowerState == "" {
		t.Errorf("a re-typed property lost the rest of the system: %+v", inv)
	}
	if inv.AssetTag != "" {
		t.Errorf("a re-typed AssetTag decoded as %q", inv.AssetTag)
	}
	if err := c.SetBootOnce(context.Background(), redfish.BootOverride{Target: redfish.BootPXE}); err != nil {
		t.Fatalf("boot override with re-typed properties: %v", err)
	}
}

// A BMC without a Managers collection (a Supermicro X12 capture: the root links it, GET
// answers 404) is probed, powered and booted: none of that needs the manager. Before, Connect
// read the manager and failed every operation with the 404.
func TestNoManagersCollection(t *testing.T) {
	s := rackmount(t, redfishtest.Options{NoManagers: true})
	ctx := context.Background()
	c := connect(t, s, nil)
	inv, err := c.Inventory(ctx)
	if err != nil {
		t.Fatalf("inventory without Managers: %v", err)
	}
	if inv.Serial == "" || len(inv.NICs) == 0 {
		t.Errorf("inventory without Managers lost the system: %+v", inv)
	}
	if inv.BMCFirmware != "" {
		t.Errorf("BMC firmware %q read from a manager that is not there", inv.BMCFirmware)
	}
	if err := c.PowerOff(ctx); err != nil {
		t.Fatalf("power off without Managers: %v", err)
	}
	if err := c.BootOnceNow(ctx, redfish.BootOverride{Target: redfish.BootPXE}); err != nil {
		t.Fatalf("boot once without Managers: %v", err)
	}
	if b := s.Boots(); len(b) != 1 || b[0] != "Pxe" {
		t.Fatalf("boots %v, want one Pxe boot", b)
	}
	// virtual media, which looks at the manager first, falls back to the system's
	if err := c.InsertMedia(ctx, "http://127.0.0.1/deploy.iso"); err != nil {
		t.Fatalf("virtual media without a manager: %v", err)
	}
	// the good case beside it: with its manager the same BMC reports the BMC firmware
	s2 := rackmount(t, redfishtest.Options{})
	inv2, err := connect(t, s2, nil).Inventory(ctx)
	if err != nil || inv2.BMCFirmware == "" {
		t.Fatalf("inventory with Managers: %+v, %v", inv2, err)
	}
}

// Every log line of a client names its BMC once: Connect attaches bmc=, the transport's
// lines (retries, re-login, Basic auth) used to add it again, and the appliance a third time.
func TestLogLinesNameTheBMCOnce(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	var buf bytes.Buffer
	cfg := fastConfig(t, s, nil)
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	c, err := redfish.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	s.Inject(redfishtest.Fault{Method: "GET", Path: s.SystemURI(), Kind: redfishtest.FaultStatus, Status: 503, Times: 1})
	if _, err := c.PowerState(ctx); err != nil {
		t.Fatal(err)
	}
	s.ExpireSessions()
	if _, err := c.PowerState(ctx); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var sawRetry, sawLogin bool
	for _, l := range lines {
		if n := strings.Count(l, "bmc="); n != 1 {
			t.Errorf("%d bmc= in %q", n, l)
		}
		sawRetry = sawRetry || strings.Contains(l, "retrying")
		sawLogin = sawLogin || strings.Contains(l, "logging in again")
	}
	if !sawRetry || !sawLogin {
		t.Fatalf("the transport's lines were not exercised: %s", buf.String())
	}
}
