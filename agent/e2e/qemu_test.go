// Package e2e boots the real deploy environment in QEMU (TCG) against Slate's agent API and
// inventory served in-process inside a network namespace, and checks that what the agent
// reports equals what the QEMU command line built.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/api/agentapi"
	"slate/internal/testenv"
	"slate/inventory"
	"slate/lifecycle"
)

const (
	bridgeIP = "10.99.7.1"
	apiPort  = "8080"
)

// TestMain pins the main goroutine to the main thread, so testenv's Netns.Do never switches
// the main thread into the test namespace (the namespace's cleanup would then count this
// process as living there and kill it).
func TestMain(m *testing.M) {
	runtime.LockOSThread()
	os.Exit(m.Run())
}

type lab struct {
	ns      *testenv.Netns
	store   *inventory.Store
	api     *agentapi.Handler
	kernel  string
	initrd  string
	qemu    string
	workdir string
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// setup builds the deploy environment (incremental: quick when up to date), then a namespace
// with a bridge and tap, dnsmasq answering DHCP only, and the agent API with a fresh store.
func setup(t *testing.T) *lab {
	testenv.RequireRoot(t)
	qemu := testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	testenv.RequireCommand(t, "qemu-img", "qemu-utils")
	dnsmasq := testenv.RequireCommand(t, "dnsmasq", "dnsmasq")
	root := repoRoot(t)
	build := exec.Command("make", "-C", root, "--no-print-directory", "deploy-env")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make deploy-env: %v\n%s", err, out)
	}
	l := &lab{qemu: qemu, workdir: t.TempDir(),
		kernel: filepath.Join(root, "assets/deployenv/vmlinuz"), initrd: filepath.Join(root, "assets/deployenv/initrd.gz")}

	l.ns = testenv.NewNetns(t, "age2e")
	for _, args := range [][]string{
		{"link", "add", "br0", "type", "bridge"},
		{"addr", "add", bridgeIP + "/24", "dev", "br0"},
		{"link", "set", "br0", "up"},
		{"tuntap", "add", "dev", "tap0", "mode", "tap"},
		{"link", "set", "tap0", "master", "br0"},
		{"link", "set", "tap0", "up"},
	} {
		l.ns.Exec(t, "ip", args...)
	}
	d := l.ns.Command(dnsmasq, "--no-daemon", "--user=root", "--port=0", "--interface=br0", "--bind-interfaces",
		"--dhcp-range=10.99.7.50,10.99.7.99,255.255.255.0,1h", "--no-ping", "--dhcp-authoritative",
		"--dhcp-leasefile="+filepath.Join(l.workdir, "leases"), "--pid-file="+filepath.Join(l.workdir, "dnsmasq.pid"))
	dlog, _ := os.Create(filepath.Join(l.workdir, "dnsmasq.log"))
	d.Stdout, d.Stderr = dlog, dlog
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait(); dlog.Close() })

	ctx := context.Background()
	s, err := inventory.Open(ctx, filepath.Join(l.workdir, "slate.db"), inventory.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	l.store = s
	alog, _ := os.Create(filepath.Join(l.workdir, "agentapi.log"))
	t.Cleanup(func() { alog.Close() })
	l.api = agentapi.New(s, agentapi.Options{Log: slog.New(slog.NewTextHandler(alog, nil)), PollEvery: 200 * time.Millisecond, MaxWait: 10 * time.Second})
	mux := http.NewServeMux()
	mux.Handle(agentproto.PathPrefix+"/", l.api)
	var ln net.Listener
	if err := l.ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(bridgeIP, apiPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return l
}

type vmSpec struct {
	name, mac, uuid, serial string
	uefi                    bool
	tpm                     bool // a TPM 2.0 from swtpm
	disks                   []diskSpec
}

type diskSpec struct {
	transport, serial string
	mib               int64
}

func (l *lab) qemuArgs(t *testing.T, vm vmSpec, token, machineID, dir string) []string {
	args := []string{"-accel", "tcg", "-m", "1024", "-smp", "2", "-nodefaults", "-display", "none",
		"-serial", "file:" + filepath.Join(dir, "serial.log"), "-monitor", "none", "-no-reboot",
		"-kernel", l.kernel, "-initrd", l.initrd,
		"-append", fmt.Sprintf("console=ttyS0 quiet slate.url=http://%s:%s slate.token=%s slate.machine=%s", bridgeIP, apiPort, token, machineID),
		"-uuid", vm.uuid, "-smbios", "type=1,manufacturer=SlateLab,product=E2E VM,serial=" + vm.serial,
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,mac=" + vm.mac,
	}
	if vm.uefi {
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		b, err := os.ReadFile("/usr/share/OVMF/OVMF_VARS.fd")
		if err != nil {
			t.Fatalf("OVMF: %v (run `make deps`: Debian package ovmf)", err)
		}
		os.WriteFile(vars, b, 0o644)
		args = append(args, "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
			"-drive", "if=pflash,format=raw,file="+vars)
		// The kernel is given directly: without the NIC's iPXE option ROM, OVMF does not spend
		// TCG seconds starting a network stack nobody uses.
		args[slices.Index(args, "virtio-net-pci,netdev=n0,mac="+vm.mac)] += ",romfile="
	}
	if vm.tpm {
		sock := l.startSWTPM(t, dir)
		args = append(args, "-chardev", "socket,id=chrtpm,path="+sock, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
			"-device", "tpm-tis,tpmdev=tpm0")
	}
	for i, d := range vm.disks {
		img := filepath.Join(dir, fmt.Sprintf("disk%d.img", i))
		testenv.Run(t, "qemu-img", "create", "-q", "-f", "raw", img, fmt.Sprintf("%dM", d.mib))
		id := fmt.Sprintf("d%d", i)
		args = append(args, "-drive", "file="+img+",if=none,id="+id+",format=raw")
		switch d.transport {
		case "nvme":
			args = append(args, "-device", "nvme,serial="+d.serial+",drive="+id)
		case "virtio":
			args = append(args, "-device", "virtio-blk-pci,drive="+id+",serial="+d.serial)
		case "sata":
			args = append(args, "-device", "ahci,id=ahci"+id, "-device", "ide-hd,drive="+id+",bus=ahci"+id+".0,serial="+d.serial)
		}
	}
	return args
}

// startSWTPM runs a software TPM 2.0 for one VM, in the foreground, stopped by PID.
func (l *lab) startSWTPM(t *testing.T, dir string) string {
	swtpm := testenv.RequireCommand(t, "swtpm", "swtpm")
	state := filepath.Join(dir, "tpm")
	os.MkdirAll(state, 0o700)
	sock := filepath.Join(dir, "swtpm.sock")
	cmd := exec.Command(swtpm, "socket", "--tpm2", "--tpmstate", "dir="+state, "--ctrl", "type=unixio,path="+sock,
		"--flags", "startup-clear")
	out, _ := os.Create(filepath.Join(dir, "swtpm.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); out.Close() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("swtpm did not create %s: %s", sock, tail(filepath.Join(dir, "swtpm.log"), 10))
	return ""
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// boot runs one VM from power-on to ready, checks its facts field by field against vm, then
// powers it off through a task.
func (l *lab) boot(t *testing.T, vm vmSpec) {
	ctx := context.Background()
	var m inventory.Machine
	var inspect inventory.Task
	err := l.store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		if m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: vm.name, MACs: []string{vm.mac}, State: lifecycle.Enrolled}); err != nil {
			return err
		}
		if _, err = lifecycle.TransitionTx(ctx, tx, m.ID, lifecycle.Inspecting, "test", "e2e", ""); err != nil {
			return err
		}
		inspect, err = tx.CreateTask(ctx, "test", m.ID, string(agentproto.KindInspect), nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	token, err := l.store.IssueAgentToken(ctx, m.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := l.ns.Command(l.qemu, l.qemuArgs(t, vm, token, m.ID, dir)...)
	qlog, _ := os.Create(filepath.Join(dir, "qemu.log"))
	defer qlog.Close()
	cmd.Stdout, cmd.Stderr = qlog, qlog
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	diag := func() string {
		return fmt.Sprintf("\n--- serial:\n%s\n--- qemu:\n%s\n--- agent API:\n%s\n--- dnsmasq:\n%s", tail(filepath.Join(dir, "serial.log"), 40),
			tail(filepath.Join(dir, "qemu.log"), 10), tail(filepath.Join(l.workdir, "agentapi.log"), 20), tail(filepath.Join(l.workdir, "dnsmasq.log"), 10))
	}

	deadline := time.After(4 * time.Minute)
	for {
		got, err := l.store.GetMachine(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == lifecycle.Ready {
			break
		}
		if got.State == lifecycle.Failed {
			t.Fatalf("machine failed: %s%s", got.FailedReason, diag())
		}
		select {
		case err := <-exited:
			t.Fatalf("QEMU exited (%v) before the machine was ready%s", err, diag())
		case <-deadline:
			t.Fatalf("machine still %s after 4 minutes%s", got.State, diag())
		case <-time.After(250 * time.Millisecond):
		}
	}
	ready := time.Since(start)
	if b, err := os.ReadFile(filepath.Join(dir, "serial.log")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, "time="); i >= 0 {
				t.Log("serial: " + line[i:])
			}
		}
		// The file systems an installer needs are loadable (there is no modprobe later).
		if strings.Contains(string(b), "file-system modules not loaded") {
			t.Errorf("%s: the deploy environment could not load its file-system modules (see the serial lines above)", vm.name)
		}
	}
	t.Logf("%s: QEMU start → ready in %.1f s (TCG)", vm.name, ready.Seconds())
	fmt.Printf("agent e2e %s: QEMU start -> ready %.1f s\n", vm.name, ready.Seconds())

	// Facts in the store equal the QEMU command line, field by field.
	f, err := l.store.LatestFacts(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var facts agentproto.Facts
	if err := json.Unmarshal(f.Doc, &facts); err != nil {
		t.Fatal(err)
	}
	got, _ := l.store.GetMachine(ctx, m.ID)
	wantMode := "bios"
	if vm.uefi {
		wantMode = "uefi"
	}
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	check("system uuid", facts.System.UUID, vm.uuid)
	check("system serial", facts.System.Serial, vm.serial)
	check("system vendor", facts.System.Vendor, "SlateLab")
	check("system product", facts.System.Product, "E2E VM")
	check("firmware mode", facts.Firmware.Mode, wantMode)
	// OVMF_CODE.fd has no keys enrolled: Secure Boot off, read from efivarfs.
	wantSB := map[string]string{"bios": "unsupported", "uefi": "disabled"}[wantMode]
	check("secure boot", facts.Firmware.SecureBoot, wantSB)
	check("machine serial", got.Serial, vm.serial)
	check("machine uuid", got.SystemUUID, vm.uuid)
	check("machine firmware mode", got.FirmwareMode, wantMode)
	check("machine arch", got.Arch, "x86_64")
	check("CPU threads (-smp 2)", facts.CPU.Threads, 2)
	if vm.tpm {
		check("TPM", facts.TPM, agentproto.TPM{Present: true, Version: "2.0", Device: "tpm0"})
	} else {
		check("TPM", facts.TPM.Present, false)
	}
	check("memory (-m 1024)", facts.Memory.TotalBytes, int64(1024)<<20)
	if len(facts.NICs) != 1 {
		t.Errorf("NICs: %+v", facts.NICs)
	} else {
		check("NIC MAC", facts.NICs[0].MAC, vm.mac)
		check("NIC driver", facts.NICs[0].Driver, "virtio_net")
		check("NIC link", facts.NICs[0].Link, true)
	}
	check("disk count", len(facts.Disks), len(vm.disks))
	for _, want := range vm.disks {
		var d *agentproto.Disk
		for i := range facts.Disks {
			if facts.Disks[i].Serial == want.serial {
				d = &facts.Disks[i]
			}
		}
		if d == nil {
			t.Errorf("no disk with serial %s in %+v", want.serial, facts.Disks)
			continue
		}
		check(want.serial+" size", d.SizeBytes, want.mib<<20)
		check(want.serial+" transport", d.Transport, want.transport)
		check(want.serial+" logical sector", d.LogicalSectorSize, 512)
		switch want.transport {
		case "nvme":
			if d.NVMe == nil || d.NVMe.OACS&(1<<1) == 0 || len(d.NVMe.Raw) != 4096 {
				t.Errorf("%s: NVMe identify missing or without Format NVM: %+v", want.serial, d.NVMe)
			}
		case "sata":
			if d.ATA == nil || len(d.ATA.Raw) != 512 {
				t.Errorf("%s: ATA identify missing: %+v", want.serial, d.ATA)
			}
		}
	}
	t.Logf("firmware %+v, CPU %+v, TPM %+v", facts.Firmware, facts.CPU, facts.TPM)
	if len(facts.Errors) > 0 {
		t.Logf("facts errors: %v", facts.Errors)
	}
	task, _ := l.store.GetTask(ctx, inspect.ID)
	check("inspect task", task.State, inventory.TaskSucceeded)
	if logs, _ := l.store.TaskLogs(ctx, inspect.ID, 0, 0); len(logs) == 0 {
		t.Error("inspect task has no log lines")
	}

	// Power off through a task: the result is recorded before the VM goes away.
	off, err := l.store.CreateTask(ctx, "test", m.ID, string(agentproto.KindPowerOff), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.api.Wake(m.ID)
	offAt := time.Now()
	select {
	case <-exited:
		t.Logf("powered off %.1f s after the task was queued", time.Since(offAt).Seconds())
	case <-time.After(90 * time.Second):
		t.Fatalf("VM did not power off%s", diag())
	}
	task, _ = l.store.GetTask(ctx, off.ID)
	check("poweroff task", task.State, inventory.TaskSucceeded)
	if t.Failed() {
		t.Log(diag())
	}
}

// An unknown VM (BIOS, then UEFI) with an NVMe, a SATA and a virtio disk boots the deploy
// environment, is inspected, and ends ready with facts equal to its QEMU command line.
func TestQEMUInspect(t *testing.T) {
	l := setup(t)
	disks := func(p string) []diskSpec {
		return []diskSpec{{"nvme", p + "NVME0001", 96}, {"sata", p + "SATA0001", 80}, {"virtio", p + "VIRT0001", 64}}
	}
	t.Run("bios", func(t *testing.T) {
		l.boot(t, vmSpec{name: "e2e-bios", mac: "52:54:00:e2:e0:01", uuid: "5a7e0000-0000-4000-8000-00000000b105",
			serial: "E2E-BIOS-1", disks: disks("B")})
	})
	t.Run("uefi", func(t *testing.T) {
		l.boot(t, vmSpec{name: "e2e-uefi", mac: "52:54:00:e2:e0:02", uuid: "5a7e0000-0000-4000-8000-0000000ef100",
			serial: "E2E-UEFI-1", uefi: true, tpm: true, disks: disks("U")})
	})
}
