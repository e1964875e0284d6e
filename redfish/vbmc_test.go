package redfish_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/lab/vbmc"
	"slate/redfish"
)

// The lab's virtual BMC is a second, independent Redfish implementation (another engineer's);
// here it drives a recording machine instead of QEMU, so the whole client runs against it in
// seconds. The QEMU-backed runs belong to test/.

type recMachine struct {
	mu     sync.Mutex
	on     bool
	starts []vbmc.BootSpec
	media  []string
}

func (m *recMachine) Powered(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on, nil
}

func (m *recMachine) Start(_ context.Context, s vbmc.BootSpec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.on {
		return errors.New("start while on")
	}
	m.on = true
	m.starts = append(m.starts, s)
	return nil
}

func (m *recMachine) Stop(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = false
	return nil
}

// Shutdown: the guest obeys ACPI at once.
func (m *recMachine) Shutdown(context.Context) error { return m.Stop(context.Background()) }

func (m *recMachine) ChangeMedium(_ context.Context, p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.media = append(m.media, p)
	return nil
}

func (m *recMachine) lastStart(t *testing.T) vbmc.BootSpec {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.starts) == 0 {
		t.Fatal("the machine was never started")
	}
	return m.starts[len(m.starts)-1]
}

func TestLabVirtualBMC(t *testing.T) {
	ctx := context.Background()
	m := &recMachine{}
	b, err := vbmc.New(vbmc.Config{Name: "vm1", UUID: "6E1B2A50-0000-4000-8000-000000000001", Serial: "LAB-0001", MAC: "52:54:00:5a:00:01",
		Machine: m, User: "admin", Password: "password", MediaDir: t.TempDir(), Default: vbmc.DefaultState(true)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(b)
	t.Cleanup(srv.Close)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte{0xa5}, 4096))
	}))
	t.Cleanup(files.Close)

	cfg := redfish.Config{Address: srv.URL, Username: "admin", Password: "password",
		PollInterval: 10 * time.Millisecond, PowerWait: 2 * time.Second, PowerOffGrace: 500 * time.Millisecond,
		TaskTimeout: 5 * time.Second, BIOSVerifyTimeout: 500 * time.Millisecond,
		Logger: testLogger(t)}
	c, err := redfish.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	inv, err := c.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if inv.UUID != "6e1b2a50-0000-4000-8000-000000000001" || len(inv.MACs()) == 0 || inv.MACs()[0] != "52:54:00:5a:00:01" {
		t.Fatalf("inventory %+v", inv)
	}

	t.Run("power and boot once", func(t *testing.T) {
		if err := c.PowerOff(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.BootOnceNow(ctx, redfish.BootOverride{Target: redfish.BootPXE, Mode: redfish.ModeUEFI}); err != nil {
			t.Fatal(err)
		}
		if s := m.lastStart(t); s.Target != "Pxe" {
			t.Fatalf("booted %+v, want PXE", s)
		}
		if err := c.PowerCycle(ctx); err != nil {
			t.Fatal(err)
		}
		if s := m.lastStart(t); s.Target == "Pxe" {
			t.Fatal("the one-time override held for a second boot")
		}
	})

	t.Run("bios apply reset verify", func(t *testing.T) {
		attrs, err := c.BIOSAttributes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := "Disabled"
		if attrs["ProcVirtualization"] == "Disabled" {
			want = "Enabled"
		}
		p := redfish.BIOSProfile{Name: "lab", Attributes: map[string]any{"ProcVirtualization": want}}
		res, err := c.ApplyBIOS(ctx, p)
		if err != nil || res.State != redfish.BIOSApplied {
			t.Fatalf("%+v %v", res, err)
		}
		if s := m.lastStart(t); s.Virtualization != (want == "Enabled") {
			t.Fatalf("machine started with virtualization %t, profile wants %s", s.Virtualization, want)
		}
		_, err = c.StageBIOS(ctx, redfish.BIOSProfile{Name: "bad", Attributes: map[string]any{"ProcVirtualization": "Sometimes"}})
		if e := requireBMCError(t, err, srv.URL, "stage BIOS profile"); e.Status != 400 {
			t.Fatalf("want the BMC's 400, got %v", err)
		}
	})

	t.Run("firmware update task and version after reset", func(t *testing.T) {
		fw, err := c.Firmware(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var before string
		for _, f := range fw {
			if f.ID == "BIOS" {
				before = f.Version
			}
		}
		if before == "" {
			t.Fatalf("no BIOS in %+v", fw)
		}
		res, err := c.UpdateFirmware(ctx, redfish.FirmwareUpdate{Component: "BIOS", Version: bump(before), ImageURI: files.URL + "/bios.bin"})
		if err != nil && !errors.Is(err, redfish.ErrNotApplied) {
			t.Fatalf("%+v %v", res, err)
		}
		if res.Task == "" {
			t.Fatalf("no task followed: %+v", res)
		}
		if err := c.PowerCycle(ctx); err != nil {
			t.Fatal(err)
		}
		plan, err := c.PlanFirmware(ctx, redfish.FirmwareBaseline{Components: []redfish.FirmwareTarget{{Component: "BIOS", Version: bump(before)}}})
		if err != nil || len(plan) != 0 {
			t.Fatalf("after reset: plan %+v %v", plan, err)
		}
	})

	t.Run("virtual media", func(t *testing.T) {
		if err := c.InsertMedia(ctx, files.URL+"/boot.iso"); err != nil {
			t.Fatal(err)
		}
		if err := c.EjectMedia(ctx); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		media := append([]string(nil), m.media...)
		m.mu.Unlock()
		if len(media) != 2 || media[0] == "" || media[1] != "" {
			t.Fatalf("medium changes %q, want insert then eject", media)
		}
	})
}

// bump is the lab BMC's firmware rule: an accepted image raises the last version number.
func bump(v string) string {
	i := strings.LastIndex(v, ".")
	n, err := strconv.Atoi(v[i+1:])
	if err != nil {
		return v + ".1"
	}
	return v[:i+1] + strconv.Itoa(n+1)
}
