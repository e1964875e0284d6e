package initsys

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"slate/agent"
	"slate/agent/inspect"
	"slate/agent/netup"
	"slate/image/disk"
)

// Node runs `slate-agent node` as PID 1 of a small installed system (an image without an init
// system of its own, such as the lab's test image): it mounts the kernel file systems, loads
// drivers, brings the network up, reads the installer's record from the slate-config
// partition and reports the booted release to Slate. It never returns.
func Node(version, releaseFile string) {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	log.Info("slate-agent node starting as init", "version", version)
	mountKernelFS(log)
	forever(log, "node agent", func() { runNode(context.Background(), log, version, releaseFile, start) })
}

func runNode(ctx context.Context, log *slog.Logger, version, releaseFile string, start time.Time) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loadDrivers(ctx, log)
	seedRandom(log)
	var cfg disk.NodeConfig
	for {
		var err error
		if cfg, err = ReadNodeConfig("/sys", "/dev"); err == nil {
			break
		}
		log.Error("no node config: this disk was not installed by Slate, or its record is damaged", "err", err)
		time.Sleep(30 * time.Second)
	}
	log = log.With("machine", cfg.Machine)
	log.Info("installed by Slate", "release", cfg.Release, "digest", cfg.Digest, "slate", cfg.URL)
	var leases []netup.Lease
	for {
		var err error
		if leases, err = netup.Up(ctx, netup.Options{Log: log}); err == nil {
			break
		}
		log.Error("network not up; retrying", "err", err)
		time.Sleep(10 * time.Second)
	}
	go netup.Renew(ctx, netup.Options{Log: log}, leases)
	log.Info("network up", "since_start", time.Since(start).Round(time.Millisecond))
	n := &agent.Node{
		Client:      &agent.Client{Base: strings.TrimRight(cfg.URL, "/"), Token: cfg.Token, Log: log},
		Registry:    agent.BuiltinRegistry(inspect.Inspector{Opt: inspect.Options{Root: "/", Probe: true}}, sysPower{log: log}),
		Log:         log,
		BootID:      agent.BootID("/"),
		Version:     version,
		MACs:        macs(),
		Interval:    15 * time.Second,
		ReleasePath: releaseFile,
		Installed:   cfg,
	}
	err := n.Run(ctx)
	log.Error("node agent ended", "err", err)
}

// ReadNodeConfig finds the partition named slate-config (the kernel names GPT partitions in
// their uevent as PARTNAME; no udev needed) and reads the installer's record from it.
func ReadNodeConfig(sysRoot, devDir string) (disk.NodeConfig, error) {
	dev, err := FindPartition(sysRoot, disk.NodeConfigPartition)
	if err != nil {
		return disk.NodeConfig{}, err
	}
	return disk.ReadNodeConfig(devDir + "/" + dev)
}

// FindPartition returns the block device name (e.g. vda2) of the partition with a GPT name.
func FindPartition(sysRoot, name string) (string, error) {
	ents, err := os.ReadDir(sysRoot + "/class/block")
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		b, err := os.ReadFile(sysRoot + "/class/block/" + e.Name() + "/uevent")
		if err != nil {
			continue
		}
		dev, part := "", ""
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				dev = v
			}
			if v, ok := strings.CutPrefix(l, "PARTNAME="); ok {
				part = v
			}
		}
		if part == name && dev != "" {
			return dev, nil
		}
	}
	return "", fmt.Errorf("no partition named %q on this machine's disks", name)
}
