// Command slate-agent runs on the machines Slate manages.
//
//	slate-agent                as PID 1 of the deploy environment (or: slate-agent init)
//	slate-agent node -config /etc/slate/agent.json
//	slate-agent inspect        print this machine's facts as JSON
//	slate-agent version
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"slate/agent"
	"slate/agent/initsys"
	"slate/agent/inspect"
	"slate/image/disk"
)

var version = "dev"

func main() {
	if os.Getpid() == 1 && len(os.Args) > 1 && os.Args[1] == "node" {
		// An installed system whose init hands over to us (the lab's test image).
		fs := flag.NewFlagSet("node", flag.ContinueOnError)
		rel := fs.String("release-file", "/etc/slate/release.json", "the release the system carries")
		_ = fs.Parse(os.Args[2:])
		initsys.Node(version, *rel) // never returns
	}
	if os.Getpid() == 1 || (len(os.Args) > 1 && os.Args[1] == "init") {
		initsys.Deploy(version) // never returns
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "node":
		err = runNode(ctx, os.Args[2:])
	case "inspect":
		err = runInspect(ctx, os.Args[2:])
	case "version":
		fmt.Println("slate-agent", version)
	case "-h", "--help", "help":
		usage()
	default:
		usage()
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "slate-agent:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  slate-agent                 deploy environment init (PID 1)
  slate-agent node [-config /etc/slate/agent.json | -config-partition]
                              installed-OS mode: heartbeat, booted release, tasks Slate asks for
                              (as PID 1: also mounts, loads drivers, brings the network up)
  slate-agent inspect [-root /] [-probe]
                              print this machine's hardware facts as JSON
  slate-agent version
`)
}

// nodeConfig is /etc/slate/agent.json, written by the installer.
type nodeConfig struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	// Release is where the installer wrote the release file (default /etc/slate/release.json).
	ReleaseFile string `json:"release_file,omitempty"`
}

func runNode(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	cfgPath := fs.String("config", "/etc/slate/agent.json", "agent config written by the installer ({\"url\":…, \"token\":…})")
	fromPart := fs.Bool("config-partition", false, "read the installer's record from the slate-config partition instead (disk images)")
	interval := fs.Duration("interval", time.Minute, "heartbeat interval until Slate says otherwise")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg nodeConfig
	var installed disk.NodeConfig
	var err error
	if *fromPart {
		if installed, err = initsys.ReadNodeConfig("/sys", "/dev"); err != nil {
			return err
		}
		cfg = nodeConfig{URL: installed.URL, Token: installed.Token}
	} else {
		b, err := os.ReadFile(*cfgPath)
		if err != nil {
			return fmt.Errorf("read agent config: %w (the installer writes it)", err)
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("agent config %s: %w", *cfgPath, err)
		}
	}
	if cfg.URL == "" || cfg.Token == "" {
		return fmt.Errorf("agent config %s needs url and token", *cfgPath)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var macs []string
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 && len(i.HardwareAddr) == 6 {
			macs = append(macs, i.HardwareAddr.String())
		}
	}
	n := &agent.Node{
		Client:      &agent.Client{Base: strings.TrimRight(cfg.URL, "/"), Token: cfg.Token, Log: log},
		Registry:    agent.BuiltinRegistry(inspect.Inspector{Opt: inspect.Options{Root: "/", Probe: true}}, nodePower{}),
		Log:         log,
		BootID:      agent.BootID("/"),
		Version:     version,
		MACs:        macs,
		Interval:    *interval,
		ReleasePath: cfg.ReleaseFile,
		Installed:   installed,
	}
	err = n.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// nodePower reboots an installed OS the polite way (its init system stops services first).
type nodePower struct{}

func (nodePower) Reboot() error {
	return syscall.Exec("/sbin/reboot", []string{"reboot"}, os.Environ())
}
func (nodePower) PowerOff() error {
	return syscall.Exec("/sbin/poweroff", []string{"poweroff"}, os.Environ())
}

func runInspect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	root := fs.String("root", "/", "root of the tree to read (a sysfs copy for tests)")
	probe := fs.Bool("probe", false, "send identify commands to NVMe/ATA disks (root)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := inspect.Collect(ctx, inspect.Options{Root: *root, Probe: *probe})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(f)
}
