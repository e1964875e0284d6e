package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"slate/lab/vbmc"
)

// Disk kinds a lab VM can have (LAB.md: the sanitization techniques differ per kind).
const (
	DiskNVMe   = "nvme"
	DiskSATA   = "sata"
	DiskVirtio = "virtio"
)

// vmConfig is one QEMU VM.
type vmConfig struct {
	Name   string
	MAC    string
	UUID   string
	Serial string
	Tap    string
	Netns  string
	Dir    string
	Disks  []string // kinds, in order; files are Dir/<kind>.img
	Memory int      // MiB
	CPUs   int      // vCPUs (1 when 0)
	Accel  string   // tcg or kvm
	QEMU   string
	// OVMFCode and OVMFVarsTemplate are the UEFI firmware; each VM has its own copy of the
	// variables (Dir/OVMF_VARS.fd) so boot entries do not leak between machines.
	OVMFCode string
}

func (c vmConfig) serialLog() string { return filepath.Join(c.Dir, "serial.log") }
func (c vmConfig) qmpSocket() string { return filepath.Join(c.Dir, "qmp.sock") }
func (c vmConfig) varsFile() string  { return filepath.Join(c.Dir, "OVMF_VARS.fd") }
func (c vmConfig) qemuLog() string   { return filepath.Join(c.Dir, "qemu.log") }
func (c vmConfig) pidFile() string   { return filepath.Join(c.Dir, "qemu.pid") }
func (c vmConfig) diskFile(kind string) string {
	return filepath.Join(c.Dir, kind+".img")
}

// qemuArgs is the QEMU command line for one power-on. It is a pure function of the VM and the
// boot spec so the boot-order rules can be tested without QEMU.
func qemuArgs(c vmConfig, s vbmc.BootSpec) []string {
	a := []string{
		"-name", c.Name,
		"-machine", "pc,accel=" + c.Accel,
		"-m", strconv.Itoa(c.Memory), "-smp", strconv.Itoa(max(c.CPUs, 1)),
		"-uuid", c.UUID,
		"-smbios", "type=0,vendor=Slate Lab,version=" + s.BIOSVersion,
		"-smbios", "type=1,manufacturer=Slate Lab,product=QEMU x86_64,serial=" + c.Serial + ",uuid=" + c.UUID,
		// -nographic, not -display none: with the latter SeaBIOS and iPXE print nothing to
		// the serial port (LAB.md).
		"-nographic", "-monitor", "none",
		"-chardev", "file,id=serial0,path=" + c.serialLog() + ",append=on",
		"-serial", "chardev:serial0",
		"-qmp", "unix:" + c.qmpSocket() + ",server=on,wait=off",
		"-pidfile", c.pidFile(),
		// A guest reboot stops QEMU instead of resetting inside it, so the BMC sees every
		// reset and applies what waits for it (one-time boot override, BIOS settings).
		"-no-reboot",
	}
	if !s.Virtualization {
		a = append(a, "-cpu", "qemu64,-vmx,-svm")
	}
	target := s.Target
	if target == vbmc.TargetUefiHTTP && !s.UEFI {
		target = vbmc.TargetPxe // legacy BIOS has no HTTP boot; its PXE is the nearest thing
	}
	if s.UEFI {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+c.OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+c.varsFile())
	}
	// Boot order: the override target first, then disks, CD, network.
	order := []string{"disk", "cd", "net"}
	switch target {
	case vbmc.TargetPxe, vbmc.TargetUefiHTTP:
		order = []string{"net", "disk", "cd"}
	case vbmc.TargetCd:
		order = []string{"cd", "disk", "net"}
	}
	if !s.PXEEnabled {
		order = removeItem(order, "net")
	}
	idx := map[string]int{}
	next := 1
	for _, o := range order {
		idx[o] = next
		if o == "disk" {
			next += len(c.Disks)
		} else {
			next++
		}
	}
	nic := "virtio-net-pci,netdev=net0,mac=" + c.MAC
	if i, ok := idx["net"]; ok {
		nic += ",bootindex=" + strconv.Itoa(i)
	}
	// UEFI HTTP boot needs OVMF's own network stack with PXE switched off (else PXE is tried
	// first); a disabled PXE device has no option ROM at all.
	if target == vbmc.TargetUefiHTTP || !s.PXEEnabled {
		nic += ",romfile="
	}
	if s.UEFI && (target == vbmc.TargetUefiHTTP || !s.PXEEnabled) {
		a = append(a,
			"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")
	}
	a = append(a, "-netdev", "tap,id=net0,ifname="+c.Tap+",script=no,downscript=no", "-device", nic)
	for i, kind := range c.Disks {
		id := fmt.Sprintf("%s%d", kind, i)
		boot := ""
		if b, ok := idx["disk"]; ok {
			boot = ",bootindex=" + strconv.Itoa(b+i)
		}
		a = append(a, "-drive", "file="+c.diskFile(kind)+",if=none,id="+id+",format=raw,discard=unmap")
		switch kind {
		case DiskNVMe:
			a = append(a, "-device", "nvme,serial="+c.Serial+"N"+strconv.Itoa(i)+",drive="+id+boot)
		case DiskVirtio:
			a = append(a, "-device", "virtio-blk-pci,drive="+id+",serial="+c.Serial+"V"+strconv.Itoa(i)+boot)
		case DiskSATA:
			a = append(a, "-device", "ahci,id=ahci"+strconv.Itoa(i),
				"-device", "ide-hd,drive="+id+",bus=ahci"+strconv.Itoa(i)+".0,serial="+c.Serial+"S"+strconv.Itoa(i)+boot)
		}
	}
	cd := "if=none,id=cdrom0,media=cdrom,readonly=on"
	if s.MediaPath != "" {
		cd += ",format=raw,file=" + s.MediaPath
	}
	dev := "ide-cd,drive=cdrom0,id=cd0,bus=ide.1,unit=0"
	if i, ok := idx["cd"]; ok {
		dev += ",bootindex=" + strconv.Itoa(i)
	}
	a = append(a, "-drive", cd, "-device", dev)
	return a
}

func removeItem(list []string, v string) []string {
	var out []string
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// vm runs one QEMU process at a time: power on is a fresh exec with the boot spec of that
// moment (which is how BootMode switches between SeaBIOS and OVMF), power off ends it.
type vm struct {
	cfg vmConfig
	log *slog.Logger

	mu       sync.Mutex
	proc     *os.Process
	qmp      *qmpClient
	exited   chan struct{}
	stopping bool
	reason   string // reason of the last SHUTDOWN event

	// onExit is told why QEMU ended on its own: "guest-reset" or anything else (power off).
	onExit func(reason string)
}

func newVM(cfg vmConfig, log *slog.Logger) *vm {
	return &vm{cfg: cfg, log: log.With("machine", cfg.Name, "mac", cfg.MAC)}
}

// Powered asks QEMU: a live process whose run state is not "shutdown" is a powered machine.
func (v *vm) Powered(ctx context.Context) (bool, error) {
	v.mu.Lock()
	q, exited := v.qmp, v.exited
	v.mu.Unlock()
	if q == nil {
		return false, nil
	}
	select {
	case <-exited:
		return false, nil
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := q.status(ctx)
	if errors.Is(err, errQMPClosed) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read power state of %s from QEMU: %w", v.cfg.Name, err)
	}
	return st != "shutdown", nil
}

func (v *vm) Start(ctx context.Context, spec vbmc.BootSpec) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.exited != nil {
		select {
		case <-v.exited:
		default:
			return fmt.Errorf("%s is already running", v.cfg.Name)
		}
	}
	os.Remove(v.cfg.qmpSocket())
	args := qemuArgs(v.cfg, spec)
	logf, err := os.OpenFile(v.cfg.qemuLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s power on: %s %s\n", time.Now().UTC().Format(time.RFC3339), v.cfg.QEMU, strings.Join(args, " "))
	// ip netns exec execs QEMU in place, so the pid is QEMU's; QEMU must live in the lab's
	// namespace to open its tap.
	cmd := exec.Command("ip", append([]string{"netns", "exec", v.cfg.Netns, v.cfg.QEMU}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C on `slate lab up --foreground` must reach the lab's
	// shutdown code, not kill the VMs behind its back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start QEMU for %s: %w", v.cfg.Name, err)
	}
	exited := make(chan struct{})
	waited := make(chan struct{}) // closed before the lock is taken, so Start sees an early exit
	v.proc, v.exited, v.stopping, v.reason = cmd.Process, exited, false, ""
	go func() {
		err := cmd.Wait()
		close(waited)
		v.mu.Lock()
		stopping, reason, q := v.stopping, v.reason, v.qmp
		v.qmp = nil
		v.mu.Unlock()
		close(exited)
		if q != nil {
			q.Close()
		}
		v.log.Info("lab: QEMU exited", "err", err, "reason", reason, "requested", stopping)
		if !stopping && v.onExit != nil {
			v.onExit(reason)
		}
	}()
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	go func() {
		select {
		case <-waited:
			cancel()
		case <-dctx.Done():
		}
	}()
	q, err := dialQMP(dctx, v.cfg.qmpSocket(), func(name string, data json.RawMessage) {
		if name != "SHUTDOWN" {
			return
		}
		var d struct {
			Reason string `json:"reason"`
		}
		json.Unmarshal(data, &d)
		v.mu.Lock()
		v.reason = d.Reason
		v.mu.Unlock()
	})
	if err != nil {
		// QEMU may create the socket and then die on a later option: give its exit a moment
		// to be seen, so the error is QEMU's own message.
		select {
		case <-waited:
		case <-time.After(2 * time.Second):
		}
		cmd.Process.Kill()
		select {
		case <-waited:
			b, _ := os.ReadFile(v.cfg.qemuLog())
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			return fmt.Errorf("QEMU for %s exited at start: %s (see %s)", v.cfg.Name, lines[len(lines)-1], v.cfg.qemuLog())
		default:
		}
		return fmt.Errorf("QEMU for %s did not come up (see %s): %w", v.cfg.Name, v.cfg.qemuLog(), err)
	}
	v.qmp = q
	v.log.Info("lab: powered on", "pid", cmd.Process.Pid, "target", spec.Target, "uefi", spec.UEFI)
	return nil
}

// Stop ends QEMU: quit over QMP, then SIGKILL if it lingers.
func (v *vm) Stop(ctx context.Context) error {
	v.mu.Lock()
	q, proc, exited := v.qmp, v.proc, v.exited
	v.stopping = true
	v.mu.Unlock()
	if exited == nil {
		return nil
	}
	if q != nil {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		q.execute(qctx, "quit", nil)
		cancel()
	}
	select {
	case <-exited:
		return nil
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
	}
	proc.Kill()
	select {
	case <-exited:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("QEMU of %s (pid %d) does not exit", v.cfg.Name, proc.Pid)
	}
}

func (v *vm) Shutdown(ctx context.Context) error {
	v.mu.Lock()
	q := v.qmp
	v.mu.Unlock()
	if q == nil {
		return nil
	}
	_, err := q.execute(ctx, "system_powerdown", nil)
	return err
}

func (v *vm) ChangeMedium(ctx context.Context, path string) error {
	v.mu.Lock()
	q := v.qmp
	v.mu.Unlock()
	if q == nil {
		return nil // off: the medium is attached at the next power on
	}
	if path == "" {
		_, err := q.execute(ctx, "eject", map[string]any{"id": "cd0", "force": true})
		return err
	}
	_, err := q.execute(ctx, "blockdev-change-medium", map[string]any{
		"id": "cd0", "filename": path, "format": "raw", "read-only-mode": "read-only",
	})
	return err
}

// pid is QEMU's process id, 0 when off.
func (v *vm) pid() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc == nil || v.exited == nil {
		return 0
	}
	select {
	case <-v.exited:
		return 0
	default:
		return v.proc.Pid
	}
}
