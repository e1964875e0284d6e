package dhcp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/internal/testenv"
)

// TestQEMUNetboot boots real firmware against Slate's DHCP, all VMs at once (TCG is slow):
//   - BIOS: SeaBIOS runs QEMU's iPXE NIC ROM, an iPXE client: Slate must send it the HTTP
//     script URL (iPXE prints it as "Filename:");
//   - UEFI: OVMF's own PXE (romfile= empty, so no iPXE ROM): Slate must send ipxe.efi over TFTP
//     (OVMF prints "NBP filename is ipxe.efi");
//   - UEFI beside dnsmasq with Slate in proxy mode: OVMF takes its address from dnsmasq and its
//     boot file from Slate's proxy offer.
//
// There is no TFTP/HTTP server here (that is pxe/'s): the VMs stop after DHCP, which is all
// this test is about.
func TestQEMUNetboot(t *testing.T) {
	testenv.RequireRoot(t)
	qemu := testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	dnsmasq := testenv.RequireCommand(t, "dnsmasq", "dnsmasq-base")
	for _, f := range []string{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s missing: run `make deps` (Debian package ovmf)", f)
		}
	}
	tmp := t.TempDir()

	// Segment A: Slate authoritative. Segment B: dnsmasq (plant) + Slate proxy.
	la := newLab(t)
	srvA := la.join("qa", "s0", "", "10.77.0.1/24")
	lb := newLab(t)
	plant := lb.join("qp", "p0", "", "10.78.0.2/24")
	srvB := lb.join("qb", "s0", "", "10.78.0.1/24")
	for _, x := range []struct {
		l   *lab
		tap string
	}{{la, "tap0"}, {la, "tap1"}, {lb, "tap2"}} {
		testenv.Run(t, "ip", "-n", x.l.hub.Name, "tuntap", "add", "dev", x.tap, "mode", "tap")
		testenv.Run(t, "ip", "-n", x.l.hub.Name, "link", "set", x.tap, "master", "br0")
		testenv.Run(t, "ip", "-n", x.l.hub.Name, "link", "set", x.tap, "up")
	}
	dirA := NewMemDirectory()
	startSlate(t, srvA, authConfig(-1, time.Hour), newMemStore(), dirA)
	dm := plant.Command(dnsmasq, "-d", "--conf-file=/dev/null", "--port=0", "--user=root", "--interface=p0", "--bind-interfaces",
		"--dhcp-range=10.78.0.50,10.78.0.60,255.255.255.0,1h", "--dhcp-leasefile="+filepath.Join(tmp, "dnsmasq.leases"),
		"--pid-file="+filepath.Join(tmp, "dnsmasq.pid"), "--no-ping", "--log-dhcp")
	var dmOut logBuf
	dm.Stdout, dm.Stderr = &dmOut, &dmOut
	if err := dm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dm.Process.Kill(); dm.Wait() })
	proxy := startSlate(t, srvB, Config{Interfaces: []InterfaceConfig{{Name: "s0", Mode: ModeProxy, ServerAddress: "10.78.0.1",
		Discovery: true, Boot: Boot{URL: "http://10.78.0.1:8080"}}}}, nil, NewMemDirectory())

	type vm struct {
		name, hub, serial string
		args              []string
	}
	uefi := func(name, tap, mac string) vm {
		vars := filepath.Join(tmp, name+"-vars.fd")
		b, err := os.ReadFile("/usr/share/OVMF/OVMF_VARS.fd")
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(vars, b, 0o644)
		return vm{name: name, args: []string{"-m", "1024",
			"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
			"-drive", "if=pflash,format=raw,file=" + vars,
			"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n0,mac=" + mac + ",romfile=,bootindex=1"}}
	}
	vms := []vm{
		{name: "bios", hub: la.hub.Name, args: []string{"-m", "512", "-boot", "n",
			"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:01"}},
		uefi("uefi", "tap1", "52:54:00:12:34:02"),
		uefi("uefi-proxy", "tap2", "52:54:00:12:34:03"),
	}
	vms[1].hub, vms[2].hub = la.hub.Name, lb.hub.Name
	for i := range vms {
		v := &vms[i]
		v.serial = filepath.Join(tmp, v.name+".serial")
		args := append([]string{"netns", "exec", v.hub, qemu, "-accel", "tcg", "-nographic", "-monitor", "none",
			"-serial", "file:" + v.serial}, v.args...)
		cmd := exec.Command("ip", args...)
		out := &logBuf{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				s, _ := os.ReadFile(v.serial)
				t.Logf("%s qemu output:\n%s\nserial:\n%s", v.name, out.String(), s)
			}
		})
	}
	serial := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(tmp, name+".serial"))
		return string(b)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	wait := func(name string, d time.Duration, markers ...string) {
		defer wg.Done()
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			s := serial(name)
			all := true
			for _, m := range markers {
				all = all && strings.Contains(s, m)
			}
			if all {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		mu.Lock()
		failures = append(failures, fmt.Sprintf("%s: after %s the serial log lacks %q:\n%s", name, d, markers, serial(name)))
		mu.Unlock()
	}
	wg.Add(2)
	go wait("bios", 150*time.Second, "Filename: http://10.77.0.1:8080/boot/auto.ipxe")
	go wait("uefi", 150*time.Second, "Station IP address is 10.77.0.1", "NBP filename is ipxe.efi")
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	// The proxy question (issue 3: "OVMF is reported to ignore proxy offers"): in this lab OVMF
	// 2022.11 takes its address from dnsmasq and its boot file from Slate's proxy offer.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(serial("uefi-proxy"), "NBP filename") {
		time.Sleep(500 * time.Millisecond)
	}
	s := serial("uefi-proxy")
	var seen []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, "IP address is") || strings.Contains(line, "NBP") {
			seen = append(seen, strings.TrimSpace(line))
		}
	}
	t.Logf("OVMF PXE beside dnsmasq (plant) + Slate proxy: %q", seen)
	if !strings.Contains(s, "Station IP address is 10.78.0.5") || !strings.Contains(s, "NBP filename is ipxe.efi") {
		t.Errorf("OVMF beside dnsmasq did not combine dnsmasq's address with Slate's proxy boot file:\n%s", s)
	}
	if v := counterValue(proxy.srv.m.replies); v < 1 {
		t.Errorf("Slate's proxy sent no reply; dnsmasq:\n%s", dmOut.String())
	}
	if d := dirA.Discovered(); len(d) < 2 {
		t.Errorf("both VMs should be discovered machines: %+v", d)
	}
}
