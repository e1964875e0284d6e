// Package initsys is slate-agent as PID 1 of the deploy environment: it mounts the kernel
// file systems, loads drivers for the hardware present, brings the network up, and hands over
// to the agent loop — and never returns, because PID 1 exiting panics the kernel.
package initsys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"slate/agent"
	"slate/agent/agentproto"
	"slate/agent/inspect"
	"slate/agent/kmod"
	"slate/agent/netup"
)

type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func mountAll(log *slog.Logger, ms []mount) {
	for _, m := range ms {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			log.Error("mkdir", "path", m.target, "err", err)
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			log.Error("mount failed", "target", m.target, "fstype", m.fstype, "err", err)
		}
	}
}

// reapChildren collects exited children: as PID 1 we inherit every orphan.
func reapChildren() {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, unix.SIGCHLD)
	for range ch {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

type sysPower struct{ log *slog.Logger }

func (p sysPower) Reboot() error {
	p.log.Info("rebooting")
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

func (p sysPower) PowerOff() error {
	p.log.Info("powering off")
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// Deploy runs the deploy environment. It never returns.
func Deploy(version string) {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	log.Info("slate-agent starting as init", "version", version)
	mountKernelFS(log)
	if b, _ := os.ReadFile("/proc/cmdline"); strings.Contains(string(b), "slate.debug") {
		go dumpStacks(log)
	}
	forever(log, "deploy environment", func() { run(context.Background(), log, version, start) })
}

// mountKernelFS mounts what every init of ours needs and starts reaping orphans.
func mountKernelFS(log *slog.Logger) {
	mountAll(log, []mount{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, ""},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	})
	go reapChildren()
}

// forever runs fn again after a crash or an end: PID 1 must never return.
func forever(log *slog.Logger, what string, fn func()) {
	for {
		func() {
			defer func() {
				if r := recover(); r != nil {
					log.Error(what+" crashed; starting over", "panic", r, "stack", string(debug.Stack()))
				}
			}()
			fn()
		}()
		time.Sleep(10 * time.Second)
	}
}

func loadDrivers(ctx context.Context, log *slog.Logger) {
	var u unix.Utsname
	_ = unix.Uname(&u)
	rel := unix.ByteSliceToString(u.Release[:])
	dir := filepath.Join("/lib/modules", rel)
	ix, err := kmod.LoadIndex(dir)
	if err != nil {
		log.Error("no module index: only built-in drivers", "dir", dir, "err", err)
		return
	}
	l := &kmod.Loader{Dir: dir, Sys: "/sys", Index: ix, Log: log, Settle: 500 * time.Millisecond}
	t := time.Now()
	loaded, errs := l.LoadForDevices(ctx, 6)
	log.Info("drivers loaded", "modules", loaded, "failed", len(errs), "took", time.Since(t).Round(time.Millisecond))
	// File systems an installer formats and mounts (bootc: ext4 or xfs, vfat for the ESP,
	// dm-crypt for LUKS): there is no modprobe for the kernel to ask for them later.
	var fsFailed []string
	for _, m := range []string{"crc32c_generic", "ext4", "xfs", "vfat", "nls_cp437", "nls_iso8859_1", "dm_crypt"} {
		if err := l.LoadModule(m); err != nil {
			fsFailed = append(fsFailed, m+": "+err.Error())
		}
	}
	if len(fsFailed) > 0 {
		log.Warn("file-system modules not loaded (bootc installs may fail)", "errors", fsFailed)
	}
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		if err := l.LoadModule("efivarfs"); err != nil {
			log.Warn("efivarfs", "err", err)
		}
		mountAll(log, []mount{{"efivarfs", "/sys/firmware/efi/efivars", "efivarfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY, ""}})
	}
}

func macs() []string {
	ifs, _ := net.Interfaces()
	var out []string
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 && len(i.HardwareAddr) == 6 {
			out = append(out, i.HardwareAddr.String())
		}
	}
	return out
}

// seedRandom waits, once, for the kernel's random pool. The DHCP client polls getrandom
// without blocking, which never makes the kernel gather jitter entropy: on a machine without
// RDRAND or a hardware RNG (a VM under TCG) it would spin forever. One blocking call starts
// that gathering and returns when the pool is ready.
func seedRandom(log *slog.Logger) {
	t := time.Now()
	buf := make([]byte, 16)
	for {
		_, err := unix.Getrandom(buf, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			log.Warn("getrandom", "err", err)
			return
		}
	}
	if d := time.Since(t); d > 100*time.Millisecond {
		log.Info("random pool ready", "waited", d.Round(time.Millisecond))
	}
}

func run(ctx context.Context, log *slog.Logger, version string, start time.Time) {
	// Everything this run starts (lease renewal) ends with it, before Deploy starts over.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loadDrivers(ctx, log)
	seedRandom(log)
	var cfg agent.BootConfig
	for {
		b, err := os.ReadFile("/proc/cmdline")
		if err == nil {
			cfg, err = agent.ParseCmdline(string(b))
		}
		if err == nil {
			break
		}
		log.Error("cannot start: fix the boot script", "err", err)
		time.Sleep(30 * time.Second)
	}
	base := log // the loop adds the machine Slate confirms
	log = log.With("machine", cfg.Machine)
	var leases []netup.Lease
	for {
		var err error
		leases, err = netup.Up(ctx, netup.Options{Log: log})
		if err == nil {
			break
		}
		log.Error("network not up; retrying", "err", err)
		time.Sleep(10 * time.Second)
	}
	go netup.Renew(ctx, netup.Options{Log: log}, leases)
	var addrs []string
	for _, l := range leases {
		addrs = append(addrs, l.CIDR())
	}
	log.Info("network up", "addresses", addrs, "since_start", time.Since(start).Round(time.Millisecond))
	if cfg.Media && cfg.Token == "" {
		// Booted from Slate's ISO: the token is asked for by MAC, and given only for a boot
		// Slate expects; until then (or if the operator has not asked yet) ask again.
		var leaseMACs []string
		for _, l := range leases {
			leaseMACs = append(leaseMACs, l.MAC)
		}
		for {
			tok, machine, err := agent.MediaToken(ctx, &http.Client{Timeout: 30 * time.Second}, cfg.URL, leaseMACs)
			if err == nil {
				cfg.Token = tok
				if cfg.Machine == "" {
					cfg.Machine = machine
				}
				log = base.With("machine", cfg.Machine)
				log.Info("agent token received for the boot from virtual media")
				break
			}
			log.Error("booted from virtual media, but Slate gives no agent token yet; asking again in 30 s", "err", err)
			time.Sleep(30 * time.Second)
		}
	}

	client := &agent.Client{Base: cfg.URL, Token: cfg.Token, Log: log}
	reg := agent.BuiltinRegistry(inspect.Inspector{Opt: inspect.Options{Root: "/", Probe: true, KeepRaw: true}}, sysPower{log: log})
	agent.RegisterWipe(reg, cfg.Machine, version, log)
	agent.RegisterInstall(reg, client, func() ([]agent.Disk, error) { return agent.SysDisks("/sys") }, "/dev", log)
	agent.RegisterBootc(reg, client, agent.BootcOptions{Disks: func() ([]agent.Disk, error) { return agent.SysDisks("/sys") }, DevDir: "/dev", Log: log})
	loop := &agent.Loop{API: checkMachine{client, cfg.Machine, log}, Registry: reg, Log: base,
		Register: agentproto.Register{Mode: "deploy", AgentVersion: version, BootID: agent.BootID("/"), MACs: macs(), Addresses: addrs}}
	err := loop.Run(ctx)
	log.Error("agent loop ended", "err", err)
}

// checkMachine warns when Slate's idea of this machine differs from the boot script's.
type checkMachine struct {
	*agent.Client
	want string
	log  *slog.Logger
}

func (c checkMachine) Register(ctx context.Context, r agentproto.Register) (agentproto.RegisterReply, error) {
	rep, err := c.Client.Register(ctx, r)
	if err == nil && c.want != "" && rep.MachineID != c.want {
		c.log.Warn("token belongs to another machine than slate.machine says", "token_machine", rep.MachineID, "cmdline_machine", c.want)
	}
	return rep, err
}

// dumpStacks prints every goroutine's stack now and then (slate.debug on the kernel command
// line): the deploy environment has no shell to attach a debugger from.
func dumpStacks(log *slog.Logger) {
	for {
		time.Sleep(20 * time.Second)
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		log.Info("goroutine dump (slate.debug)")
		os.Stdout.Write(buf[:n])
	}
}

// Describe returns a one-line summary of the environment for logs.
func Describe() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return fmt.Sprintf("%s %s", strings.TrimSpace(unix.ByteSliceToString(u.Sysname[:])), unix.ByteSliceToString(u.Release[:]))
}
