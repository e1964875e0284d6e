package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"

	"slate/internal/testenv"
	"slate/lab/vbmc"
)

func TestBootProbe(t *testing.T) {
	testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	// Under TCG the probe guest must boot: this is what proves that "no marker under KVM"
	// means a broken KVM and not a broken probe.
	ok, out, err := bootProbe(context.Background(), "qemu-system-x86_64", "/usr/lib/ipxe/ipxe.lkrn", "tcg", 60*time.Second)
	if err != nil || !ok {
		t.Fatalf("probe guest did not boot under TCG: %v\n%s", err, out)
	}
	if a := DetectAccel(context.Background(), Options{Accel: "tcg"}); a != "tcg" {
		t.Fatalf("forced tcg gave %s", a)
	}
}

func TestPreflight(t *testing.T) {
	testenv.RequireRoot(t)
	ns := testenv.NewNetns(t, "pre")
	err := Preflight(Options{Namespace: ns.Name})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("existing namespace: %v", err)
	}
	err = Preflight(Options{Namespace: "slt-none", QEMU: "qemu-system-nonexistent", OVMFCode: "/nonexistent/OVMF_CODE.fd"})
	if err == nil || !strings.Contains(err.Error(), "apt-get install qemu-system-x86") || !strings.Contains(err.Error(), "apt-get install ovmf") {
		t.Fatalf("missing tools not named with their packages: %v", err)
	}
}

// serialWait waits until the serial log, read from offset, contains want.
func serialWait(t *testing.T, path string, offset int64, want string, timeout time.Duration) string {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var seg string
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if int64(len(b)) > offset {
			seg = string(b[offset:])
			if strings.Contains(seg, want) {
				t.Logf("%q on the serial log after %.1f s", want, time.Since(start).Seconds())
				return seg
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("%q not on %s within %s; the log since power on:\n%s", want, path, timeout, tail(seg, 3000))
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func size(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestLab brings up a two-VM lab (one SeaBIOS, one OVMF), drives the VMs through their BMCs
// with sushy and redfishtool from inside the namespace, checks each effect on QEMU and on the
// serial logs, restarts the lab to see BMC state restored, and checks that Down leaves
// nothing behind.
func TestLab(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	testenv.RequireCommand(t, "dnsmasq", "dnsmasq-base")
	testenv.RequireCommand(t, "redfishtool", "redfishtool")
	testenv.RequireCommand(t, "/usr/bin/python3", "python3-sushy")
	ctx := context.Background()
	ns := fmt.Sprintf("slt-%d", os.Getpid()%100000)
	stateDir := filepath.Join(t.TempDir(), "lab")
	opts := Options{
		Namespace: ns, VMs: 2, Firmware: FirmwareMixed, Disks: []string{DiskNVMe, DiskSATA}, DiskSize: "64M",
		StateDir: stateDir, Accel: "tcg", HostUI: "127.0.0.1:0", BMCPortBase: 7230, HostBMCBase: 17230,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	l, err := Up(ctx, opts)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()); Down(context.Background(), opts) })
	info := l.Info()
	if len(info.VMs) != 2 || info.VMs[0].Firmware != "bios" || info.VMs[1].Firmware != "uefi" {
		t.Fatalf("VMs: %+v", info.VMs)
	}
	out := testenv.Run(t, "ip", "-n", ns, "addr", "show", "br0")
	if !strings.Contains(out, "10.99.0.1/24") || !strings.Contains(out, "fd00:99::1/64") {
		t.Fatalf("bridge addresses:\n%s", out)
	}
	for _, tap := range []string{"tap0", "tap1"} {
		if out := testenv.Run(t, "ip", "-n", ns, "link", "show", tap); !strings.Contains(out, "master br0") {
			t.Fatalf("%s not on the bridge:\n%s", tap, out)
		}
	}
	if err := Preflight(opts); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second lab with the same namespace: %v", err)
	}

	// The router advert arrives on the bridge (multicast loops back to a listener there).
	var ra *icmp.PacketConn
	if err := inNetns(ns, func() error {
		var err error
		ra, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ra.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		buf := make([]byte, 1500)
		n, from, err := ra.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no router advertisement on br0 within 10 s: %v", err)
		}
		if n > 24 && buf[0] == 134 && strings.HasPrefix(from.String(), "fe80::") {
			break
		}
	}
	ra.Close()

	// What Slate will do in the namespace: DHCP (dnsmasq here) and HTTP (a Go server).
	fetched := &sync.Map{}
	hl, err := listenIn(ns, "10.99.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.LoadOrStore(r.URL.Path, time.Now())
		switch r.URL.Path {
		case "/boot.ipxe":
			fmt.Fprint(w, "#!ipxe\necho SLATE-LAB-NETBOOT ${net0/mac}\nsleep 300\n")
		case "/ipxe.efi":
			http.ServeFile(w, r, "/usr/lib/ipxe/ipxe.efi")
		case "/fw.bin":
			w.Write(make([]byte, 8192))
		case "/boot.iso":
			w.Write(make([]byte, 64*1024))
		default:
			fmt.Fprint(w, "slate-lab-test-ui")
		}
	})}
	go hs.Serve(hl)
	defer hs.Close()
	dns := exec.Command("ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=0", "--interface=br0", "--bind-interfaces", "--no-ping", "--log-dhcp",
		"--dhcp-leasefile="+filepath.Join(t.TempDir(), "leases"),
		"--dhcp-range=10.99.0.100,10.99.0.199,1h",
		"--dhcp-match=set:ipxe,175",
		"--dhcp-vendorclass=set:efihttp,HTTPClient",
		"--dhcp-boot=tag:ipxe,http://10.99.0.1:8080/boot.ipxe",
		"--dhcp-boot=tag:efihttp,tag:!ipxe,http://10.99.0.1:8080/ipxe.efi",
		"--dhcp-option-force=tag:efihttp,60,HTTPClient")
	dnsLog, _ := os.Create(filepath.Join(t.TempDir(), "dnsmasq.log"))
	dns.Stdout, dns.Stderr = dnsLog, dnsLog
	if err := dns.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { dns.Process.Kill(); dns.Wait() }()

	// The UI forwarder: host loopback → Slate's port in the namespace.
	resp, err := http.Get(info.HostUI + "/")
	if err != nil {
		t.Fatalf("host forwarder %s: %v", info.HostUI, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "slate-lab-test-ui" {
		t.Fatalf("forwarded UI answered %q", body)
	}

	// The BMC forwarded to the host's loopback answers like the one in the namespace.
	resp, err = http.Get(info.VMs[1].HostBMC + "/redfish/v1/Systems/1")
	if err != nil {
		t.Fatalf("host BMC forward: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("host BMC forward without credentials: %d, want 401", resp.StatusCode)
	}

	sushy := func(vm int, args ...string) (string, error) {
		a := append([]string{"netns", "exec", ns, "/usr/bin/python3", "vbmc/testdata/sushyctl.py", info.VMs[vm].BMC, info.BMCUser, info.BMCPassword}, args...)
		out, err := exec.Command("ip", a...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	rft := func(vm int, args ...string) (string, error) {
		host := strings.TrimPrefix(info.VMs[vm].BMC, "http://")
		a := append([]string{"netns", "exec", ns, "redfishtool", "-r", host, "-u", info.BMCUser, "-p", info.BMCPassword, "-S", "Never"}, args...)
		out, err := exec.Command("ip", a...).CombinedOutput()
		return string(out), err
	}

	t.Run("bios vm: Pxe once via sushy, netboots, ForceOff via redfishtool", func(t *testing.T) {
		if out, err := sushy(0, "power"); err != nil || out != "Off" {
			t.Fatalf("power: %q %v", out, err)
		}
		if out, err := sushy(0, "boot", "Pxe", "Once"); err != nil || out != "Pxe Once" {
			t.Fatalf("boot Pxe Once: %q %v", out, err)
		}
		off := size(info.VMs[0].SerialLog)
		if out, err := sushy(0, "reset", "On"); err != nil {
			t.Fatalf("reset On: %q %v", out, err)
		}
		seg := serialWait(t, info.VMs[0].SerialLog, off, "SLATE-LAB-NETBOOT 52:54:00:5a:00:01", 120*time.Second)
		// Network first: no disk was tried before iPXE ran the script.
		if i := strings.Index(seg, "Booting from Hard Disk"); i >= 0 && i < strings.Index(seg, "SLATE-LAB-NETBOOT") {
			t.Fatalf("disk tried before the network boot:\n%s", seg)
		}
		if out, err := sushy(0, "power"); err != nil || out != "On" {
			t.Fatalf("power after On: %q %v", out, err)
		}
		pid := l.QEMUPID(0)
		if pid == 0 || !alive(pid) {
			t.Fatal("no QEMU process for vm1")
		}
		st0, err := GetStatus(opts)
		if err != nil || !st0.NamespaceExists || !st0.SupervisorAlive || len(st0.QEMUPIDs) != 2 || st0.QEMUPIDs[0] != pid || st0.QEMUPIDs[1] != 0 {
			t.Fatalf("status: %+v %v", st0, err)
		}
		st := l.BMC(0).State()
		if st.BootEnabled != vbmc.OverrideDisabled {
			t.Fatalf("Once override not consumed: %+v", st)
		}
		// A reset from inside the machine (here QMP system_reset; a guest reboot is the same
		// to QEMU under -no-reboot) ends QEMU, and the BMC boots it again with a fresh spec.
		l.vms[0].mu.Lock()
		q := l.vms[0].qmp
		l.vms[0].mu.Unlock()
		off = size(info.VMs[0].SerialLog)
		if _, err := q.execute(ctx, "system_reset", nil); err != nil {
			t.Fatalf("system_reset: %v", err)
		}
		serialWait(t, info.VMs[0].SerialLog, off, "SeaBIOS", 60*time.Second)
		deadline := time.Now().Add(20 * time.Second)
		for l.BMC(0).State().Boots != st.Boots+1 || l.QEMUPID(0) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no reboot after the reset: %+v pid %d", l.BMC(0).State(), l.QEMUPID(0))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if alive(pid) || l.QEMUPID(0) == pid {
			t.Fatalf("the reset did not re-exec QEMU (old pid %d, now %d)", pid, l.QEMUPID(0))
		}
		pid = l.QEMUPID(0)

		// Virtual media on the running VM: the BMC fetches the ISO inside the namespace and
		// QEMU's CD drive really holds it (QMP query-block), then really is empty after eject.
		l.vms[0].mu.Lock()
		q = l.vms[0].qmp
		l.vms[0].mu.Unlock()
		cdFile := func() string {
			raw, err := q.execute(ctx, "query-block", nil)
			if err != nil {
				t.Fatalf("query-block: %v", err)
			}
			var blocks []struct {
				QDev     string `json:"qdev"`
				Inserted *struct {
					File string `json:"file"`
				} `json:"inserted"`
			}
			json.Unmarshal(raw, &blocks)
			for _, b := range blocks {
				if strings.Contains(b.QDev, "cd0") && b.Inserted != nil {
					return b.Inserted.File
				}
			}
			return ""
		}
		post := func(path, body string) int {
			req, _ := http.NewRequest("POST", info.VMs[0].HostBMC+path, strings.NewReader(body))
			req.SetBasicAuth(info.BMCUser, info.BMCPassword)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := post("/redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia", `{"Image":"http://10.99.0.1:8080/boot.iso","Inserted":true}`); code != 204 {
			t.Fatalf("InsertMedia: %d", code)
		}
		if f := cdFile(); f != l.BMC(0).State().Media.Path || f == "" {
			t.Fatalf("QEMU's CD holds %q, the BMC says %q", f, l.BMC(0).State().Media.Path)
		}
		if code := post("/redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.EjectMedia", `{}`); code != 204 {
			t.Fatalf("EjectMedia: %d", code)
		}
		if f := cdFile(); f != "" {
			t.Fatalf("QEMU's CD still holds %q after eject", f)
		}
		if out, err := rft(0, "Systems", "-I", "1", "reset", "ForceOff"); err != nil {
			t.Fatalf("redfishtool ForceOff: %v\n%s", err, out)
		}
		if alive(pid) {
			t.Fatalf("QEMU %d still runs after ForceOff", pid)
		}
		if out, err := sushy(0, "power"); err != nil || out != "Off" {
			t.Fatalf("power after ForceOff: %q %v", out, err)
		}
	})

	t.Run("uefi vm: UefiHttp once via sushy boots over HTTP", func(t *testing.T) {
		if out, err := sushy(1, "boot", "UefiHttp", "Once"); err != nil || out != "UefiHttp Once" {
			t.Fatalf("boot UefiHttp Once: %q %v", out, err)
		}
		off := size(info.VMs[1].SerialLog)
		powerOn := time.Now()
		if out, err := sushy(1, "reset", "On"); err != nil {
			t.Fatalf("reset On: %q %v", out, err)
		}
		// OVMF's first boot with fresh variables is the slowest stage of the lab; on a loaded
		// 2-core machine it has taken over 2 minutes.
		serialWait(t, info.VMs[1].SerialLog, off, "SLATE-LAB-NETBOOT 52:54:00:5a:00:02", 300*time.Second)
		at, ok := fetched.Load("/ipxe.efi")
		if !ok {
			t.Fatal("the firmware never fetched /ipxe.efi over HTTP: that was not a UEFI HTTP boot")
		}
		t.Logf("OVMF fetched /ipxe.efi over HTTP %.1f s after power on", at.(time.Time).Sub(powerOn).Seconds())
		if out, err := rft(1, "Systems", "-I", "1", "setBootOverride", "Continuous", "Hdd"); err != nil {
			t.Fatalf("redfishtool setBootOverride: %v\n%s", err, out)
		}
		if out, err := rft(1, "raw", "PATCH", "/redfish/v1/Systems/1/Bios/Settings", "-d", `{"Attributes":{"ProcVirtualization":"Disabled"}}`); err != nil {
			t.Fatalf("redfishtool raw PATCH: %v\n%s", err, out)
		}
		st := l.BMC(1).State()
		if st.BootEnabled != vbmc.OverrideContinuous || st.BootTarget != vbmc.TargetHdd || st.BiosPending["ProcVirtualization"] != "Disabled" {
			t.Fatalf("state after redfishtool: %+v", st)
		}
	})

	t.Run("bios attributes and firmware update apply at the next reset", func(t *testing.T) {
		if out, err := sushy(1, "bios-set", "BootMode=LegacyBios"); err != nil {
			t.Fatalf("bios-set: %q %v", out, err)
		}
		if out, err := sushy(1, "update", "http://10.99.0.1:8080/fw.bin"); err != nil || out != "Completed" {
			t.Fatalf("simple_update: %q %v", out, err)
		}
		off := l.SerialOffset(1)
		qoff := size(info.VMs[1].QEMULog)
		if out, err := sushy(1, "reset", "ForceRestart"); err != nil {
			t.Fatalf("ForceRestart: %q %v", out, err)
		}
		// LegacyBios: SeaBIOS now, not OVMF.
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, err := l.WaitSerial(wctx, 1, off, "SeaBIOS")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		qlog, _ := os.ReadFile(info.VMs[1].QEMULog)
		line := string(qlog[qoff:])
		if strings.Contains(line, "if=pflash") || !strings.Contains(line, "version=1.0.1") || !strings.Contains(line, "-vmx") {
			t.Fatalf("QEMU command line after reset does not carry the new settings:\n%s", line)
		}
		if out, err := sushy(1, "bios-get"); err != nil || !strings.Contains(out, `"BootMode": "LegacyBios"`) {
			t.Fatalf("bios-get: %q %v", out, err)
		}
		pid := l.QEMUPID(1)
		if out, err := sushy(1, "reset", "ForceOff"); err != nil {
			t.Fatalf("ForceOff: %q %v", out, err)
		}
		if alive(pid) {
			t.Fatal("QEMU still runs after sushy ForceOff")
		}
	})

	t.Run("state survives a lab restart", func(t *testing.T) {
		if err := l.Stop(ctx); err != nil {
			t.Fatalf("close (keep): %v", err)
		}
		if netnsExists(ns) {
			t.Fatal("namespace left after close")
		}
		l2, err := Up(ctx, opts)
		if err != nil {
			t.Fatalf("Up again: %v", err)
		}
		l = l2
		st := l.BMC(1).State()
		if st.Bios["BootMode"] != "LegacyBios" || st.BiosVersion != "1.0.1" || st.BootTarget != vbmc.TargetHdd {
			t.Fatalf("BMC state not restored: %+v", st)
		}
		if l.Info().VMs[1].Firmware != "bios" {
			t.Fatalf("firmware after restore: %s", l.Info().VMs[1].Firmware)
		}
	})

	t.Run("Down leaves nothing behind", func(t *testing.T) {
		if err := l.BMC(0).PowerOn(ctx); err != nil {
			t.Fatal(err)
		}
		pid := l.QEMUPID(0)
		// Down as `slate lab down` would run it from another process.
		if err := Down(ctx, opts); err != nil {
			t.Fatalf("Down: %v", err)
		}
		l.Close(ctx)
		if alive(pid) {
			t.Fatalf("QEMU %d survived Down", pid)
		}
		if netnsExists(ns) {
			t.Fatal("namespace survived Down")
		}
		if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
			t.Fatalf("state dir survived Down: %v", err)
		}
		if leftovers := processesMentioning(stateDir); len(leftovers) > 0 {
			t.Fatalf("processes survived Down: %v", leftovers)
		}
		if c, err := net.DialTimeout("tcp", strings.TrimPrefix(info.HostUI, "http://"), time.Second); err == nil {
			c.Close()
			t.Fatal("the UI forwarder still listens")
		}
	})
}

func processesMentioning(s string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, _ := os.ReadFile(d)
		if strings.Contains(string(b), s) {
			out = append(out, d+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// A QEMU that dies at start is reported at once, with its last words, not after a timeout.
func TestVMStartFailsClearly(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	ns := testenv.NewNetns(t, "vmf")
	// The disk image was never created: QEMU refuses to start.
	v := newVM(vmConfig{Name: "vm1", MAC: "52:54:00:5a:00:01", UUID: "5a1a7e00-0000-4000-8000-000000000001", Serial: "S",
		Tap: "tap0", Netns: ns.Name, Dir: t.TempDir(), Disks: []string{DiskNVMe}, Memory: 128, Accel: "tcg", QEMU: "qemu-system-x86_64"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	start := time.Now()
	err := v.Start(context.Background(), vbmc.BootSpec{Target: vbmc.TargetPxe, PXEEnabled: true, BIOSVersion: "1.0.0"})
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), "nvme.img") {
		t.Fatalf("Start with a missing disk: %v", err)
	}
	t.Log(err)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the failure took %s to report", d)
	}
	if on, _ := v.Powered(context.Background()); on {
		t.Fatal("a VM whose QEMU died reports power on")
	}
}
