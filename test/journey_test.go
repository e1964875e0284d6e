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
	"sync/atomic"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/internal/testenv"
	"slate/inventory"
	"slate/lab"
)

// labCount keeps the namespaces of labs started by one test process apart.
var labCount atomic.Int64

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
// and the deploy environment, and auto-enrolls the lab's MACs; tweak changes the options
// (e.g. VMs left off for enrollment by BMC).
func startLab(t *testing.T, vms int, firmware string, tweak ...func(*lab.Options)) *labSlate {
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
	o := lab.Options{Namespace: fmt.Sprintf("st-jny-%d-%d", os.Getpid()%100000, labCount.Add(1)), StateDir: state, VMs: vms,
		Firmware: firmware, Disks: []string{lab.DiskNVMe, lab.DiskSATA, lab.DiskVirtio}, DiskSize: "256M", MemoryMB: 1024, CPUs: 2,
		Accel: "tcg", PowerOn: true, SlateBinary: slate(t), HostUI: "127.0.0.1:0",
		SlateSettings: map[string]any{"auto_enroll_mac_prefixes": []string{"52:54:00"}, "reconcile_interval": "1s"},
		SlateEnv:      []string{"SLATE_ADMIN_PASSWORD=journey-pw-1"}}
	for _, f := range tweak {
		f(&o)
	}
	l, err := lab.Up(ctx, o)
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

// announce is the technician at the rack: the lab powered the VM on, not Slate (the machine
// has no BMC enrolled), so its network boot is announced once Slate has seen it (the UI's
// "I will power this machine on"); only an expected boot gets an agent token. The VM's script
// fetch before that got none and asks again within about 70 s.
func (ls *labSlate) announce(t *testing.T, mac string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var l struct{ Items []inventory.Machine }
		apiGet(t, ls.base, ls.token, "/api/v1/machines?include_retired=true&q="+mac, &l)
		for _, m := range l.Items {
			if len(m.MACs) > 0 && m.MACs[0] == mac {
				if st, b := apiPost(t, ls.base, ls.token, "/api/v1/machines/"+m.ID+"/expect-boot", nil, nil); st != 200 {
					t.Fatalf("expect-boot %s: %d %s", mac, st, b)
				}
				return
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("machine %s never showed up (DHCP) in %s", mac, timeout)
}

// waitState polls until the machine with mac reaches state, returning it.
func (ls *labSlate) waitState(t *testing.T, mac, state string, timeout time.Duration) inventory.Machine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var l struct{ Items []inventory.Machine }
		apiGet(t, ls.base, ls.token, "/api/v1/machines?include_retired=true&q="+mac, &l)
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
				ls.announce(t, vm.MAC, 3*time.Minute)
				m := ls.waitState(t, vm.MAC, "ready", 10*time.Minute)
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
	if t.Failed() {
		return
	}
	t.Run("decommission", func(t *testing.T) { decommissionVM(t, ls, info.VMs[0], 0) })
	log, _ := os.ReadFile(info.SlateLog)
	for _, want := range []string{"service=dhcp", "service=boot"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("Slate's log has no %s line: the VMs did not boot through Slate", want)
		}
	}
}

func apiPost(t *testing.T, base, token, path string, body any, out any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		json.Unmarshal(rb, out)
	}
	return resp.StatusCode, string(rb)
}

// decommissionVM: a ready VM with NVMe, SATA and virtio disks is decommissioned end to end —
// plan, typed confirmation, NVMe Format (user data erase) and overwrite + verify of the
// others, signed certificates, sanitized, retired — and its disk images read back erased.
func decommissionVM(t *testing.T, ls *labSlate, vm lab.VMInfo, index int) {
	start := time.Now()
	// Put data on every disk (from the host) so that erasure is visible.
	junk := make([]byte, 1<<20)
	for i := range junk {
		junk[i] = byte(i*7 + 1)
	}
	for _, kind := range []string{lab.DiskNVMe, lab.DiskSATA, lab.DiskVirtio} {
		f, err := os.OpenFile(filepath.Join(vm.Dir, kind+".img"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(junk, 0)
		f.WriteAt(junk, 100<<20)
		f.Close()
	}
	var l struct{ Items []inventory.Machine }
	apiGet(t, ls.base, ls.token, "/api/v1/machines?include_retired=true&q="+vm.MAC, &l)
	if len(l.Items) != 1 {
		t.Fatalf("machine %s not found", vm.MAC)
	}
	m := l.Items[0]
	if st, b := apiPost(t, ls.base, ls.token, "/api/v1/machines/"+m.ID+"/transition", map[string]string{"to": "decommissioning", "reason": "journey test", "confirm_name": m.Name}, nil); st != 200 {
		t.Fatalf("decommission: %d %s", st, b)
	}
	var wp struct {
		Digest   string
		Runnable bool
		Plan     struct {
			Drives []struct {
				Drive struct {
					Serial string
				}
				Method  string
				Blocked bool
				Reason  string
			}
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for apiGet(t, ls.base, ls.token, "/api/v1/machines/"+m.ID+"/wipe-plan", &wp) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("no wipe plan after 3 minutes")
		}
		time.Sleep(time.Second)
	}
	methods := map[string]string{}
	for _, d := range wp.Plan.Drives {
		methods[d.Drive.Serial] = d.Method
		if d.Blocked {
			t.Fatalf("drive %s blocked: %s", d.Drive.Serial, d.Reason)
		}
	}
	t.Logf("wipe plan after %s: %v", time.Since(start).Round(time.Second), methods)
	if len(methods) != 3 || !strings.Contains(methods[fmt.Sprintf("SLATELAB%04dN0", index+1)], "format") {
		t.Fatalf("plan methods: %v (want NVMe by Format, the others by overwrite)", methods)
	}
	if st, b := apiPost(t, ls.base, ls.token, "/api/v1/machines/"+m.ID+"/wipe/confirm", map[string]any{"plan_digest": wp.Digest, "machine_name": m.Name,
		"person": map[string]string{"name": "Lab Technician", "title": "Technician", "organization": "Slate lab", "location": "Lab rack 1"}}, nil); st != 201 {
		t.Fatalf("confirm: %d %s", st, b)
	}
	ls.waitState(t, vm.MAC, "retired", 6*time.Minute)
	t.Logf("decommission → retired in %s", time.Since(start).Round(time.Second))
	var certs struct {
		Certificates []inventory.Certificate
		Reports      []inventory.Report
	}
	apiGet(t, ls.base, ls.token, "/api/v1/machines/"+m.ID+"/certificates", &certs)
	if len(certs.Certificates) != 3 || len(certs.Reports) != 1 || !certs.Reports[0].Complete {
		t.Fatalf("certificates: %d, reports %+v", len(certs.Certificates), certs.Reports)
	}
	// Each certificate verifies offline with the appliance's public key (slate cert verify).
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	req, _ := http.NewRequest("GET", ls.base+"/api/v1/certificates/public-key", nil)
	req.Header.Set("Authorization", "Bearer "+ls.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(keyFile, pem, 0o644)
	for _, c := range certs.Certificates {
		req, _ := http.NewRequest("GET", ls.base+"/api/v1/certificates/"+c.ID, nil)
		req.Header.Set("Authorization", "Bearer "+ls.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		file, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cf := filepath.Join(t.TempDir(), c.ID+".json")
		os.WriteFile(cf, file, 0o644)
		if out, err := run(t, nil, "cert", "verify", cf, "--public-key", keyFile); err != nil {
			t.Fatalf("slate cert verify %s: %v\n%s", c.ID, err, out)
		}
	}
	for _, kind := range []string{lab.DiskNVMe, lab.DiskSATA, lab.DiskVirtio} {
		b, err := os.ReadFile(filepath.Join(vm.Dir, kind+".img"))
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(b); off++ {
			if b[off] != 0 {
				t.Fatalf("%s disk image not erased: byte %d is %#x", kind, off, b[off])
			}
		}
	}
}
