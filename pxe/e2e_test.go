package pxe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/dhcp"
	"slate/internal/testenv"
	"slate/inventory"
	"slate/lifecycle"
)

// bootCache keeps the Debian kernel between runs (a 70 MB download): outside the tree, so
// every clone on this machine shares it.
const bootCache = "/var/cache/slate-test"

const e2eMarker = "SLATE-E2E-DEPLOYENV-UP"

// TestNetbootE2E boots four QEMU VMs (TCG) at once inside a network namespace, through
// Slate's own DHCP, Slate's TFTP and Slate's HTTP (dnsmasq only sends IPv6 router adverts), to the deploy
// environment (a Debian kernel and a busybox initramfs that prints a marker and its kernel
// line, then powers off):
//   - BIOS: SeaBIOS → QEMU's iPXE NIC ROM → DHCP → HTTP auto.ipxe → machine script
//   - UEFI PXE: OVMF's own PXE (romfile= empties the iPXE ROM) → TFTP snponly.efi → HTTP
//   - UEFI HTTP boot: OVMF's HTTPv4 boot → HTTP ipxe.efi → HTTP scripts
//   - and a retired machine (BIOS), whose script says why and powers it off
func TestNetbootE2E(t *testing.T) {
	testenv.RequireRoot(t)
	qemu := testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	testenv.RequireCommand(t, "dnsmasq", "dnsmasq")
	testenv.RequireCommand(t, "cpio", "cpio")
	if _, err := os.Stat("/usr/share/OVMF/OVMF_CODE.fd"); err != nil {
		t.Fatal("OVMF missing: run `make deps` (Debian package ovmf)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	buildDeployEnv(t, filepath.Join(data, "deployenv"))

	// The network: one bridge, one tap per VM, an IPv6 prefix only so dnsmasq can send the
	// router advert iPXE otherwise waits ≈13 s for.
	ns := testenv.NewNetns(t, "pxe")
	run := func(args ...string) { testenv.Run(t, "ip", append([]string{"-n", ns.Name}, args...)...) }
	run("link", "add", "br0", "type", "bridge")
	run("addr", "add", "10.99.0.1/24", "dev", "br0")
	run("addr", "add", "fd00:99::1/64", "dev", "br0")
	run("link", "set", "br0", "up")
	vms := []*e2eVM{
		{name: "bios", tap: "tap0", mac: "52:54:00:e2:00:01"},
		{name: "uefi-pxe", tap: "tap1", mac: "52:54:00:e2:00:02", uefi: true},
		{name: "uefi-http", tap: "tap2", mac: "52:54:00:e2:00:03", uefi: true, httpBoot: true},
		// A retired machine gets no boot options from Slate's DHCP at all (tested in dhcp/);
		// its poweroff script is covered by the script tests.
	}
	for _, vm := range vms {
		run("tuntap", "add", "dev", vm.tap, "mode", "tap")
		run("link", "set", vm.tap, "master", "br0")
		run("link", "set", vm.tap, "up")
	}

	// Slate: inventory (machines and per-boot tokens), lifecycle's boot planner, TFTP and HTTP,
	// all in this process with their sockets in the namespace.
	store, err := inventory.Open(ctx, filepath.Join(work, "slate.db"), inventory.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// lifecycle decides: an inspecting machine boots the deploy environment.
	planner := lifecyclePlanner{machines: store}
	for _, vm := range vms {
		err := store.Update(ctx, func(tx *inventory.Tx) error {
			st := vm.state
			if st == "" {
				st = lifecycle.Inspecting
			}
			m, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: vm.name, MACs: []string{vm.mac}, State: st})
			vm.id = m.ID
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	log, lb := newLog()
	cfg := Config{TFTPListen: "0.0.0.0:69", DataDir: data, PublicURL: "http://10.99.0.1:8080", KernelArgs: "console=ttyS0 quiet loglevel=1"}
	tftpSrv, err := NewTFTP(cfg, log, WithIPXE(ipxeFS(t)))
	if err != nil {
		t.Fatal(err)
	}
	// The VMs are started by hand here (no BMC): announce their boots as a technician does.
	for _, vm := range vms {
		if _, err := lifecycle.New(store, nil).ExpectBoot(ctx, "technician", vm.id); err != nil {
			t.Fatal(err)
		}
	}
	httpH, err := NewHTTP(cfg, planner, storeTokens{store: store, requireLease: false}, log, WithIPXE(ipxeFS(t)))
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	var srvWG sync.WaitGroup
	ready := make(chan error, 1)
	srvWG.Add(1)
	go func() {
		defer srvWG.Done()
		// Serve runs on the namespace thread, so each transfer's socket is opened there too.
		err := inNetns(ns, func() error {
			conn, err := ListenTFTP(cfg.TFTPListen)
			ready <- err
			if err != nil {
				return err
			}
			return tftpSrv.Serve(srvCtx, conn)
		})
		if err != nil && srvCtx.Err() == nil {
			t.Errorf("tftp: %v", err)
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := inNetns(ns, func() (err error) { ln, err = net.Listen("tcp", "10.99.0.1:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/boot/", httpH)
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	defer func() {
		hs.Close()
		stopSrv()
		srvWG.Wait()
	}()

	// Slate's own DHCP server answers on the bridge (sockets opened inside the namespace).
	dir := dhcp.NewMemDirectory()
	for _, vm := range vms {
		hw, _ := net.ParseMAC(vm.mac)
		st := vm.state
		if st == "" {
			st = lifecycle.Inspecting
		}
		dir.Add(hw, dhcp.Machine{ID: vm.id, State: st, Hostname: vm.name})
	}
	dcfg := dhcp.Config{Interfaces: []dhcp.InterfaceConfig{{Name: "br0", Mode: dhcp.ModeAuthoritative, ServerAddress: "10.99.0.1",
		Pool: &dhcp.Pool{Range: "10.99.0.100-10.99.0.200", Netmask: "255.255.255.0"},
		Boot: dhcp.Boot{URL: "http://10.99.0.1:8080", UEFIFile: "snponly.efi"}}}}
	dsrv, err := dhcp.New(dcfg, dhcp.Options{Store: storeLeases{store}, Directory: dir, Logger: log.With("service", "dhcp"),
		ListenPacket: func(iface string, port int) (net.PacketConn, error) {
			var c net.PacketConn
			err := inNetns(ns, func() (e error) { c, e = dhcp.ListenInterface(iface, port); return e })
			return c, err
		},
		ListenICMP: func(iface string) (net.PacketConn, error) {
			var c net.PacketConn
			err := inNetns(ns, func() (e error) { c, e = dhcp.ListenICMP(iface); return e })
			return c, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stopDHCP := context.WithCancel(ctx)
	dhcpDone := make(chan error, 1)
	go func() { dhcpDone <- dsrv.Run(dctx) }()
	select {
	case <-dsrv.Ready():
	case err := <-dhcpDone:
		t.Fatalf("Slate's DHCP did not start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Slate's DHCP not ready after 20 s")
	}
	defer func() { stopDHCP(); <-dhcpDone }()

	// dnsmasq only sends the IPv6 router advert iPXE otherwise waits ≈13 s for (LAB.md); it
	// hands out no IPv4 address (no IPv4 range, no DNS, no TFTP).
	dnsmasq := ns.Command("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--interface=br0", "--bind-interfaces", "--log-facility=-",
		"--pid-file="+filepath.Join(work, "dnsmasq.pid"), "--dhcp-leasefile="+filepath.Join(work, "leases"),
		"--enable-ra", "--dhcp-range=fd00:99::,ra-only")
	dlog := &logBuf{}
	dnsmasq.Stdout, dnsmasq.Stderr = dlog, dlog
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { dnsmasq.Process.Kill(); dnsmasq.Wait() }()

	// Boot them all at once.
	var wg sync.WaitGroup
	for _, vm := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vm.boot(ctx, t, ns, qemu, work)
		}()
	}
	wg.Wait()

	var report []string
	for _, vm := range vms {
		if vm.err == nil && vm.state == lifecycle.Retired {
			report = append(report, fmt.Sprintf("%s %.1fs", vm.name, vm.took.Seconds()))
			t.Logf("%-12s %5.1f s to its poweroff script (%s)", vm.name, vm.took.Seconds(), vm.cmdline)
			serial, _ := os.ReadFile(vm.serial)
			if !strings.Contains(string(serial), "Slate: This machine is retired from Slate") {
				t.Errorf("%s: lifecycle's message is not on the console:\n%s", vm.name, tail(serial, 2000))
			}
			if lb.find("http transfer", map[string]any{"path": "/boot/machine/" + vm.mac + ".ipxe", "status": float64(200), "machine": vm.id, "action": "poweroff"}) == nil {
				t.Errorf("%s: no poweroff script log line", vm.name)
			}
			continue
		}
		if vm.err != nil {
			serial, _ := os.ReadFile(vm.serial)
			t.Errorf("%s VM did not reach the deploy environment: %v\n--- serial (last 3000 bytes):\n%s", vm.name, vm.err, tail(serial, 3000))
			continue
		}
		report = append(report, fmt.Sprintf("%s %.1fs", vm.name, vm.took.Seconds()))
		t.Logf("boot time %-10s %5.1f s (QEMU start → marker on the serial console)", vm.name, vm.took.Seconds())
		// The kernel line carries this machine's id and a token bound to it.
		m := regexp.MustCompile(`slate\.machine=(\S+)`).FindStringSubmatch(vm.cmdline)
		tok := regexp.MustCompile(`slate\.token=(\S+)`).FindStringSubmatch(vm.cmdline)
		if m == nil || tok == nil || m[1] != vm.id {
			serial, _ := os.ReadFile(vm.serial)
			t.Errorf("%s: kernel line %q lacks slate.machine=%s or slate.token\n--- serial (last 2000 bytes):\n%s", vm.name, vm.cmdline, vm.id, tail(serial, 2000))
			continue
		}
		if owner, err := store.MachineForAgentToken(ctx, tok[1]); err != nil || owner != vm.id { // bound to the VM's address
			t.Errorf("%s: the booted token belongs to %q (%v), want %s", vm.name, owner, err, vm.id)
		}
		if !strings.Contains(vm.cmdline, "slate.url=http://10.99.0.1:8080") || !strings.Contains(vm.cmdline, "console=ttyS0") {
			t.Errorf("%s: kernel line %q lacks slate.url or console=ttyS0", vm.name, vm.cmdline)
		}
		if vm.uefi && !strings.Contains(vm.cmdline, "initrd=initrd.gz") {
			t.Errorf("%s: UEFI kernel line lacks initrd=initrd.gz: %q", vm.name, vm.cmdline)
		}
		if lb.find("http transfer", map[string]any{"path": "/boot/machine/" + vm.mac + ".ipxe", "status": float64(200), "machine": vm.id}) == nil {
			t.Errorf("%s: no transfer log line for its script", vm.name)
		}
	}
	// Slate's transfer log shows each path's own hop.
	for _, want := range []struct {
		msg   string
		attrs map[string]any
		why   string
	}{
		{"tftp transfer", map[string]any{"file": "snponly.efi", "result": "ok", "bytes": float64(len(readAsset(t, "snponly.efi")))}, "UEFI PXE fetched snponly.efi over TFTP"},
		{"http transfer", map[string]any{"path": "/boot/ipxe/snponly.efi", "status": float64(200)}, "UEFI HTTP boot fetched the EFI iPXE over HTTP"},
		{"http transfer", map[string]any{"path": "/boot/auto.ipxe", "status": float64(200)}, "iPXE fetched the generic script"},
		{"http transfer", map[string]any{"path": "/boot/deploy/vmlinuz", "status": float64(200)}, "iPXE fetched the kernel"},
		{"http transfer", map[string]any{"path": "/boot/deploy/initrd.gz", "status": float64(200)}, "iPXE fetched the initrd"},
	} {
		if lb.find(want.msg, want.attrs) == nil {
			t.Errorf("no %q log line %v (%s)", want.msg, want.attrs, want.why)
		}
	}
	if n := len(lb.lines("http transfer")); n < 13 {
		t.Errorf("only %d HTTP transfer lines; want at least 13 (3 × auto, script, kernel, initrd; 1 × the EFI binary)", n)
	}
	if t.Failed() {
		t.Logf("Slate log:\n%s\ndnsmasq log:\n%s", tail([]byte(lb.String()), 8000), tail([]byte(dlog.String()), 4000))
	}
	sort.Strings(report)
	t.Logf("netboot e2e boot times: %s", strings.Join(report, ", "))
}

type e2eVM struct {
	name, tap, mac, id string
	state              string // lifecycle state (default inspecting)
	uefi, httpBoot     bool
	serial             string
	took               time.Duration
	cmdline            string
	err                error
}

func (vm *e2eVM) boot(ctx context.Context, t *testing.T, ns *testenv.Netns, qemu, work string) {
	vm.serial = filepath.Join(work, vm.name+".serial")
	args := []string{"-accel", "tcg", "-nographic", "-serial", "file:" + vm.serial, "-monitor", "none", "-no-reboot",
		"-netdev", "tap,id=n0,ifname=" + vm.tap + ",script=no,downscript=no"}
	nic := "virtio-net-pci,netdev=n0,mac=" + vm.mac
	if vm.uefi {
		vars := filepath.Join(work, vm.name+"-vars.fd")
		b, err := os.ReadFile("/usr/share/OVMF/OVMF_VARS.fd")
		if err != nil {
			vm.err = err
			return
		}
		os.WriteFile(vars, b, 0o644)
		args = append(args, "-m", "1024",
			"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
			"-drive", "if=pflash,format=raw,file="+vars)
		// An empty romfile leaves OVMF's own PXE/HTTP client in charge (not QEMU's iPXE ROM).
		nic += ",romfile=,bootindex=1"
		if vm.httpBoot {
			args = append(args, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
				"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")
		}
	} else {
		args = append(args, "-m", "512", "-boot", "n")
	}
	args = append(args, "-device", nic)
	cmd := ns.Command(qemu, args...)
	out := &logBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		vm.err = err
		return
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	re := regexp.MustCompile(e2eMarker + ` cmdline=([^\r\n]*) end`)
	if vm.state == lifecycle.Retired {
		// Done when iPXE says it cannot power off (Debian's build has no poweroff command),
		// or when QEMU exits after "powering off" (a build that has one).
		re = regexp.MustCompile(`Slate: (this iPXE cannot power off): power machine ` + vm.id + ` off`)
	}
	poweredOff := regexp.MustCompile(`Slate: (powering machine ` + vm.id + ` off)`)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(vm.serial)
		if m := re.FindSubmatch(b); m != nil {
			vm.took, vm.cmdline = time.Since(start), string(m[1])
			return
		}
		select {
		case <-ctx.Done():
			vm.err = fmt.Errorf("no marker after %s", time.Since(start).Round(time.Second))
			return
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(vm.serial)
			if m := re.FindSubmatch(b); m != nil {
				vm.took, vm.cmdline = time.Since(start), string(m[1])
				return
			}
			if m := poweredOff.FindSubmatch(b); m != nil && vm.state == lifecycle.Retired {
				vm.took, vm.cmdline = time.Since(start), string(m[1])+" and QEMU exited"
				return
			}
			vm.err = fmt.Errorf("QEMU exited (%v) before the marker: %s", err, out.String())
			return
		case <-tick.C:
		}
	}
}

// buildDeployEnv puts a Debian kernel (cached) and a busybox initramfs printing the marker
// into dir, as `make deploy-env` would put the real one.
func buildDeployEnv(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kernel, err := cachedKernel(t)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, DeployKernel), b)

	root := t.TempDir()
	for _, d := range []string{"bin", "dev", "proc", "sys"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal("busybox missing: run `make deps` (Debian package busybox-static)")
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Symlink("busybox", filepath.Join(root, "bin", "sh"))
	init := "#!/bin/busybox sh\n" +
		"/bin/busybox mount -t devtmpfs dev /dev\n" +
		"/bin/busybox mount -t proc proc /proc\n" +
		// Keep kernel messages off the console so none lands inside the marker line.
		"echo 1 > /proc/sys/kernel/printk\n" +
		"exec </dev/console >/dev/console 2>&1\n" +
		"echo \"" + e2eMarker + " cmdline=$(/bin/busybox cat /proc/cmdline) end\"\n" +
		"/bin/busybox poweroff -f\n"
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(init), 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command("sh", "-c", "find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > "+filepath.Join(dir, DeployInitrd))
	c.Dir = root
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build initramfs: %v\n%s", err, out)
	}
}

// cachedKernel returns a Debian kernel image, downloading the package once into bootCache.
func cachedKernel(t *testing.T) (string, error) {
	if m, _ := filepath.Glob(filepath.Join(bootCache, "vmlinuz-*")); len(m) > 0 {
		return m[0], nil
	}
	if err := os.MkdirAll(bootCache, 0o755); err != nil {
		return "", err
	}
	debs, _ := filepath.Glob(filepath.Join(bootCache, "linux-image-*.deb"))
	if len(debs) == 0 {
		out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
		if err != nil {
			return "", fmt.Errorf("find the kernel package (apt-cache depends linux-image-amd64): %w", err)
		}
		pkg := regexp.MustCompile(`linux-image-[0-9][^\s]*-amd64`).FindString(string(out))
		if pkg == "" {
			return "", errors.New("apt-cache names no linux-image-<version>-amd64: run apt-get update")
		}
		t.Logf("downloading %s into %s (once)", pkg, bootCache)
		c := exec.Command("apt-get", "download", pkg)
		c.Dir = bootCache
		if b, err := c.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, b)
		}
		debs, _ = filepath.Glob(filepath.Join(bootCache, "linux-image-*.deb"))
		if len(debs) == 0 {
			return "", fmt.Errorf("apt-get download %s left no .deb in %s", pkg, bootCache)
		}
	}
	tmp, err := os.MkdirTemp(bootCache, "x-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	c := exec.Command("sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -x -C \"$2\" --wildcards './boot/vmlinuz-*'", "sh", debs[0], tmp)
	if b, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("extract the kernel from %s: %w\n%s", debs[0], err, b)
	}
	m, _ := filepath.Glob(filepath.Join(tmp, "boot", "vmlinuz-*"))
	if len(m) == 0 {
		return "", fmt.Errorf("%s holds no boot/vmlinuz-*", debs[0])
	}
	dst := filepath.Join(bootCache, filepath.Base(m[0]))
	if err := os.Rename(m[0], dst); err != nil {
		return "", err
	}
	return dst, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
