package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/internal/testenv"
	"slate/inventory"
	"slate/lab"
)

// labSlate is one lab with Slate running inside it, shared by the journey subtests.
type labSlate struct {
	l     *lab.Lab
	base  string // Slate's API, forwarded to the host's loopback
	token string
	start time.Time
}

func apiGet(t *testing.T, base, token, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, b)
		}
	}
	return resp.StatusCode
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("%v: build the deploy environment first (make deploy-env; make test does)", err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startLab brings up a lab whose Slate answers DHCP on the bridge, serves TFTP and HTTP boot
// and the deploy environment, and auto-enrolls the lab's MACs.
func startLab(t *testing.T, vms int, firmware string) *labSlate {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	state := t.TempDir()
	de := filepath.Join(state, "slate", "deployenv")
	if err := os.MkdirAll(de, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinuz", "initrd.gz"} {
		copyFile(t, filepath.Join("..", "assets", "deployenv", f), filepath.Join(de, f))
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Namespace: fmt.Sprintf("st-jny-%d", os.Getpid()%100000), StateDir: state, VMs: vms,
		Firmware: firmware, Disks: []string{lab.DiskNVMe, lab.DiskSATA, lab.DiskVirtio}, DiskSize: "256M", MemoryMB: 1024, CPUs: 2,
		Accel: "tcg", PowerOn: true, SlateBinary: slate(t), HostUI: "127.0.0.1:0",
		SlateSettings: map[string]any{"auto_enroll_mac_prefixes": []string{"52:54:00"}, "reconcile_interval": "1s"},
		SlateEnv:      []string{"SLATE_ADMIN_PASSWORD=journey-pw-1"}})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			info := l.Info()
			if b, err := os.ReadFile(info.SlateLog); err == nil {
				t.Logf("slate log (tail):\n%s", tail(string(b), 60))
			}
			for _, v := range info.VMs {
				if b, err := os.ReadFile(v.SerialLog); err == nil {
					t.Logf("%s serial (tail):\n%s", v.Name, tail(string(b), 30))
				}
			}
		}
		l.Close(context.Background())
	})
	info := l.Info()
	if info.HostUI == "" || info.SlateError != "" {
		t.Fatalf("lab without Slate: %+v", info)
	}
	return &labSlate{l: l, base: info.HostUI, token: apiToken(t, strings.TrimPrefix(info.HostUI, "http://"), "admin", "journey-pw-1"), start: start}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitState polls until the machine with mac reaches state, returning it.
func (ls *labSlate) waitState(t *testing.T, mac, state string, timeout time.Duration) inventory.Machine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var l struct{ Items []inventory.Machine }
		apiGet(t, ls.base, ls.token, "/api/v1/machines?q="+mac, &l)
		for _, m := range l.Items {
			if len(m.MACs) > 0 && m.MACs[0] == mac {
				last = m.State
				if m.State == state {
					return m
				}
				if m.State == "failed" {
					t.Fatalf("machine %s failed: %s", mac, m.FailedReason)
				}
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("machine %s did not reach %s in %s (last state %q)", mac, state, timeout, last)
	return inventory.Machine{}
}

// TestNetbootDiscoverInspect: unknown VMs (one BIOS, one UEFI) power on, get their address
// and boot files from Slate's own DHCP, TFTP and HTTP, are discovered and auto-enrolled, boot
// the deploy environment, are inspected, and their facts match the QEMU command line.
func TestNetbootDiscoverInspect(t *testing.T) {
	ls := startLab(t, 2, lab.FirmwareMixed)
	info := ls.l.Info()
	var wg sync.WaitGroup
	for i, vm := range info.VMs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(vm.Firmware, func(t *testing.T) {
				m := ls.waitState(t, vm.MAC, "ready", 8*time.Minute)
				t.Logf("%s (%s): QEMU start → ready in %s", vm.Name, vm.Firmware, time.Since(ls.start).Round(time.Second))
				var f struct{ Doc agentproto.Facts }
				if st := apiGet(t, ls.base, ls.token, "/api/v1/machines/"+m.ID+"/facts", &f); st != 200 {
					t.Fatalf("facts: %d", st)
				}
				d := f.Doc
				if !strings.EqualFold(d.System.UUID, vm.UUID) || d.System.Serial != fmt.Sprintf("SLATELAB%04d", i+1) {
					t.Errorf("identity: uuid %s serial %s, want %s SLATELAB%04d", d.System.UUID, d.System.Serial, vm.UUID, i+1)
				}
				if d.CPU.Threads != 2 || d.Memory.TotalBytes < 900<<20 || d.Memory.TotalBytes > 1<<30 {
					t.Errorf("cpu threads %d, memory %d: want 2 and 1 GiB", d.CPU.Threads, d.Memory.TotalBytes)
				}
				wantMode := map[string]string{lab.FirmwareBIOS: "bios", lab.FirmwareUEFI: "uefi"}[vm.Firmware]
				if d.Firmware.Mode != wantMode {
					t.Errorf("firmware mode %q, want %q", d.Firmware.Mode, wantMode)
				}
				macOK := false
				for _, n := range d.NICs {
					macOK = macOK || n.MAC == vm.MAC
				}
				serials := map[string]bool{}
				for _, disk := range d.Disks {
					serials[disk.Serial] = disk.SizeBytes == 256<<20
				}
				for _, s := range []string{"N0", "S1", "V2"} {
					want := fmt.Sprintf("SLATELAB%04d%s", i+1, s)
					if !serials[want] {
						t.Errorf("disk %s (256 MiB) missing from facts: %v", want, serials)
					}
				}
				if !macOK {
					t.Errorf("NIC %s missing from facts", vm.MAC)
				}
				var ev struct{ Items []inventory.AuditEvent }
				apiGet(t, ls.base, ls.token, "/api/v1/machines/"+m.ID+"/audit", &ev)
				var trail []string
				for j := len(ev.Items) - 1; j >= 0; j-- {
					e := ev.Items[j]
					if e.Action == "machine.discover" || e.Action == "machine.transition" {
						trail = append(trail, fmt.Sprint(e.Details["to"]))
					}
				}
				if got := strings.Join(trail, ","); got != "<nil>,enrolled,inspecting,ready" {
					t.Errorf("journey in the audit log: %s", got)
				}
			})
		}()
	}
	wg.Wait()
	log, _ := os.ReadFile(info.SlateLog)
	for _, want := range []string{"service=dhcp", "service=boot"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("Slate's log has no %s line: the VMs did not boot through Slate", want)
		}
	}
}
