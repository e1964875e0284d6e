package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"slate/internal/binpath"
	"slate/lab"
)

// labCommands are `slate lab up|status|down` (slate execs this binary for them): the QEMU lab
// with a virtual Redfish BMC per VM.
func labCommands() []*command {
	return []*command{
		{name: "up", summary: "start the lab (namespace, bridge, VMs, BMCs, slate serve)",
			usage: "[--vms N] [--firmware bios|uefi|mixed] [--disks nvme,sata,virtio] [--foreground]", run: labUp},
		{name: "status", summary: "show the running lab", usage: "[--state-dir DIR] [--json]", run: labStatus},
		{name: "down", summary: "stop the lab and remove everything it created", usage: "[--state-dir DIR] [--keep]", run: labDown},
	}
}

type labFlags struct {
	fs         *flag.FlagSet
	opts       lab.Options
	disks      string
	noSlate    bool
	foreground bool
	asJSON     bool
}

func newLabFlags(env *cliEnv, name string) *labFlags {
	f := &labFlags{fs: flag.NewFlagSet("slate lab "+name, flag.ContinueOnError)}
	f.fs.SetOutput(env.stderr)
	f.fs.StringVar(&f.opts.StateDir, "state-dir", "/var/lib/slate-lab", "where the lab keeps disks, firmware variables, BMC state and logs")
	f.fs.StringVar(&f.opts.Namespace, "namespace", "slatelab", "network namespace of the lab")
	return f
}

// parse reports done when the command has nothing more to do (--help was printed).
func (f *labFlags) parse(args []string) (done bool, err error) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return true, err
	}
	if f.fs.NArg() > 0 {
		return true, fmt.Errorf("unexpected argument %q (see --help)", f.fs.Arg(0))
	}
	return false, nil
}

func labUp(ctx context.Context, env *cliEnv, args []string) error {
	f := newLabFlags(env, "up")
	o := &f.opts
	f.fs.IntVar(&o.VMs, "vms", 2, "number of VMs")
	f.fs.StringVar(&o.Firmware, "firmware", "uefi", "bios, uefi, or mixed (odd VMs UEFI)")
	f.fs.StringVar(&f.disks, "disks", "nvme", "disk kinds per VM, comma separated: nvme,sata,virtio")
	f.fs.StringVar(&o.DiskSize, "disk-size", "8G", "size of each (sparse) disk")
	f.fs.IntVar(&o.MemoryMB, "memory", 1024, "MiB of memory per VM")
	f.fs.StringVar(&o.Accel, "accel", "auto", "auto (KVM only if a probe guest boots under it), tcg or kvm")
	f.fs.BoolVar(&o.PowerOn, "power-on", true, "power the VMs on at start (they boot from the network)")
	f.fs.StringVar(&o.HostUI, "ui", "127.0.0.1:8080", "host address forwarded to Slate's UI in the namespace (- for none)")
	f.fs.IntVar(&o.HostBMCBase, "host-bmc-base", 6230, "forward 127.0.0.1:<base+N> to VM N's BMC (0: BMCs only inside the namespace)")
	f.fs.BoolVar(&o.HostLink, "host-link", false, "add a veth from the host into the lab bridge (to attach a Slate running on the host)")
	f.fs.BoolVar(&f.noSlate, "no-slate", false, "do not run slate serve in the namespace (attach your own)")
	f.fs.StringVar(&o.SlateBinary, "slate", "", "the slate binary to run in the namespace (default: the slate next to slate-lab, else on PATH)")
	f.fs.BoolVar(&f.foreground, "foreground", false, "run the lab in this process until interrupted, instead of in the background")
	if done, err := f.parse(args); done {
		return err
	}
	o.Disks = nil
	for _, d := range strings.Split(f.disks, ",") {
		if d = strings.TrimSpace(d); d != "" {
			o.Disks = append(o.Disks, d)
		}
	}
	if f.noSlate {
		o.SlateBinary = ""
	} else if o.SlateBinary == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the slate binary to run in the lab: %w (pass --slate PATH)", err)
		}
		if o.SlateBinary, err = binpath.Sibling(self, "slate", binpath.Executable, exec.LookPath); err != nil {
			return fmt.Errorf("%w, or pass --slate PATH (or --no-slate to attach your own)", err)
		}
	}
	if err := lab.Preflight(*o); err != nil {
		return fmt.Errorf("cannot start the lab:\n%w", err)
	}
	if f.foreground {
		return labForeground(ctx, env, *o)
	}
	// Background: the lab's BMCs and forwarder live in a supervisor process that outlives this
	// command; `slate lab down` stops it.
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(o.StateDir, "lab.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, append([]string{"up", "--foreground"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the lab supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(env.stderr, "starting the lab (log: %s)…\n", logPath)
	deadline := time.After(5 * time.Minute)
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("the lab did not start (%v):\n%s", err, lastLines(string(b), 20))
		case <-deadline:
			return fmt.Errorf("the lab is not ready after 5 minutes: see %s, then `slate lab down`", logPath)
		case <-ctx.Done():
			fmt.Fprintln(env.stderr, "interrupted: removing the half-started lab")
			return lab.Down(context.Background(), *o)
		case <-time.After(300 * time.Millisecond):
		}
		if in, err := lab.ReadInfo(o.StateDir); err == nil && in.Ready && in.SupervisorPID == cmd.Process.Pid {
			printLab(env.stdout, in, logPath)
			return nil
		}
	}
}

func labForeground(ctx context.Context, env *cliEnv, o lab.Options) error {
	o.Log = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := lab.Up(ctx, o)
	if err != nil {
		return err
	}
	in := l.Info()
	printLab(env.stdout, &in, "")
	fmt.Fprintln(env.stdout, "The lab runs until interrupted (Ctrl-C) or `slate lab down`.")
	<-ctx.Done()
	fmt.Fprintln(env.stderr, "stopping the lab…")
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return l.Close(cctx)
}

func printLab(w io.Writer, in *lab.Info, supervisorLog string) {
	fmt.Fprintf(w, "Slate lab %q is up (accelerator: %s)\n", in.Namespace, in.Accel)
	if in.HostUI != "" {
		fmt.Fprintf(w, "  UI:        %s  (forwarded to %s in the namespace)\n", in.HostUI, in.UI)
	} else {
		fmt.Fprintf(w, "  UI:        %s  (inside the namespace: ip netns exec %s …)\n", in.UI, in.Namespace)
	}
	if in.SlateLog != "" {
		fmt.Fprintf(w, "  Slate log: %s\n", in.SlateLog)
	}
	if in.SlateDataDir != "" {
		pwFile := filepath.Join(in.SlateDataDir, "initial-admin-password")
		if b, err := os.ReadFile(pwFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			fmt.Fprintf(w, "  Login:     admin / %s  (from %s)\n", strings.TrimSpace(string(b)), pwFile)
		} else {
			fmt.Fprintf(w, "  Login:     admin, password in %s once Slate has started (removed at the admin's first login)\n", pwFile)
		}
	}
	if in.HostLink != "" {
		fmt.Fprintf(w, "  Host link: %s (attach your Slate's DHCP to it)\n", in.HostLink)
	}
	if supervisorLog != "" {
		fmt.Fprintf(w, "  Lab log:   %s\n", supervisorLog)
	}
	fmt.Fprintf(w, "  BMC credentials: %s / %s (Redfish, Basic or session auth)\n", in.BMCUser, in.BMCPassword)
	for _, v := range in.VMs {
		fmt.Fprintf(w, "  %-4s %s  %-4s  BMC %s/redfish/v1/Systems/1\n", v.Name, v.MAC, v.Firmware, v.BMC)
		if v.HostBMC != "" {
			fmt.Fprintf(w, "       BMC from the host: %s/redfish/v1/Systems/1\n", v.HostBMC)
		}
		fmt.Fprintf(w, "       serial log %s\n", v.SerialLog)
	}
	for _, warn := range in.Warnings {
		fmt.Fprintf(w, "  WARNING: %s\n", warn)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func labStatus(ctx context.Context, env *cliEnv, args []string) error {
	f := newLabFlags(env, "status")
	f.fs.BoolVar(&f.asJSON, "json", false, "print the status as JSON")
	if done, err := f.parse(args); done {
		return err
	}
	st, err := lab.GetStatus(f.opts)
	if err != nil {
		return err
	}
	if f.asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printLab(env.stdout, &st.Info, "")
	state := func(ok bool) string {
		if ok {
			return "running"
		}
		return "NOT running"
	}
	fmt.Fprintf(env.stdout, "  namespace %s: %s; supervisor (pid %d): %s", st.Namespace, map[bool]string{true: "present", false: "MISSING"}[st.NamespaceExists], st.SupervisorPID, state(st.SupervisorAlive))
	if st.SlatePID > 0 {
		fmt.Fprintf(env.stdout, "; slate serve (pid %d): %s", st.SlatePID, state(st.SlateAlive))
	}
	fmt.Fprintln(env.stdout)
	for i, v := range st.VMs {
		power := "off"
		if st.QEMUPIDs[i] > 0 {
			power = fmt.Sprintf("on (QEMU pid %d)", st.QEMUPIDs[i])
		}
		fmt.Fprintf(env.stdout, "  %s: %s\n", v.Name, power)
	}
	return nil
}

func labDown(ctx context.Context, env *cliEnv, args []string) error {
	f := newLabFlags(env, "down")
	f.fs.BoolVar(&f.opts.Keep, "keep", false, "keep disks, firmware variables, BMC state and logs for the next `slate lab up`")
	if done, err := f.parse(args); done {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("slate lab down needs root (it deletes a network namespace): run it with sudo")
	}
	if err := lab.Down(ctx, f.opts); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "lab removed")
	return nil
}
