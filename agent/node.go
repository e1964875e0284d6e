package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"slate/agent/agentproto"
	"slate/image/disk"
)

// ParseBootcStatus returns the digest of the image bootc booted, from `bootc status
// --format=json` (status.booted.image.imageDigest).
func ParseBootcStatus(b []byte) (string, error) {
	var st struct {
		Status struct {
			Booted *struct {
				Image *struct {
					ImageDigest string `json:"imageDigest"`
				} `json:"image"`
			} `json:"booted"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return "", fmt.Errorf("bootc status output is not the JSON expected: %w", err)
	}
	if st.Status.Booted == nil || st.Status.Booted.Image == nil || st.Status.Booted.Image.ImageDigest == "" {
		return "", errors.New("bootc status has no status.booted.image.imageDigest (not booted from a bootc image?)")
	}
	return st.Status.Booted.Image.ImageDigest, nil
}

// ReleaseFile is what the installer writes when the OS is not bootc-managed
// (/etc/slate/release.json).
type ReleaseFile struct {
	Release string `json:"release"`          // release id or name@version
	Digest  string `json:"digest,omitempty"` // image digest, when the install came from an image
}

// ParseReleaseFile reads the installer's release file; the digest wins over the name.
func ParseReleaseFile(b []byte) (string, error) {
	var r ReleaseFile
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("release file is not JSON: %w", err)
	}
	if r.Digest != "" {
		return r.Digest, nil
	}
	if r.Release == "" {
		return "", errors.New("release file names no release and no digest")
	}
	return r.Release, nil
}

// Node is `slate-agent node`: on an installed OS it heartbeats with the booted release and
// runs only the tasks Slate asks for.
type Node struct {
	Client      *Client
	Registry    *Registry
	Log         *slog.Logger
	BootID      string
	Version     string
	MACs        []string
	Interval    time.Duration // heartbeat interval until Slate says otherwise (default 60 s)
	Bootc       string        // path of bootc ("" = look it up on PATH)
	ReleasePath string        // default /etc/slate/release.json
	// Run runs a command and returns its stdout (tests fake bootc).
	Exec func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Installed is the installer's record on the disk (disk images): reported beside the
	// release the running system names, so Slate can check the two agree.
	Installed disk.NodeConfig
}

// BootedRelease says what this node booted, and from where it learnt it.
func (n *Node) BootedRelease(ctx context.Context) (release, source string, err error) {
	run := n.Exec
	if run == nil {
		run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, name, args...).Output()
		}
	}
	bootc := n.Bootc
	if bootc == "" {
		bootc, _ = exec.LookPath("bootc")
	}
	var bootcErr error
	if bootc != "" {
		out, err := run(ctx, bootc, "status", "--format=json")
		if err == nil {
			d, err := ParseBootcStatus(out)
			if err == nil {
				return d, "bootc", nil
			}
			bootcErr = err
		} else {
			bootcErr = fmt.Errorf("bootc status: %w", err)
		}
	}
	p := n.ReleasePath
	if p == "" {
		p = "/etc/slate/release.json"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", "", errors.Join(bootcErr, fmt.Errorf("no bootc and no release file: %w", err))
	}
	r, err := ParseReleaseFile(b)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", p, err)
	}
	return r, "release-file", nil
}

// Run heartbeats and serves tasks until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	if n.Log == nil {
		n.Log = slog.New(slog.DiscardHandler)
	}
	interval := n.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	start := time.Now()
	// Ask only for what this node can run: the deploy environment's tasks (a wipe plan, an
	// install) queued while it still runs are for the next boot, not for it to fail.
	n.Client.Kinds = n.Registry.Kinds()
	loop := &Loop{API: n.Client, Registry: n.Registry, Log: n.Log,
		Register: agentproto.Register{Mode: "node", AgentVersion: n.Version, BootID: n.BootID, MACs: n.MACs}}
	errc := make(chan error, 1)
	go func() { errc <- loop.Run(ctx) }()
	for {
		rel, src, err := n.BootedRelease(ctx)
		if err != nil {
			n.Log.Warn("booted release unknown", "err", err)
		}
		reply, err := n.Client.Heartbeat(ctx, agentproto.Heartbeat{Mode: "node", BootID: n.BootID,
			UptimeSeconds: int64(time.Since(start).Seconds()), BootedRelease: rel, ReleaseSource: src,
			InstalledRelease: n.Installed.Release, ImageDigest: n.Installed.Digest})
		if err != nil && ctx.Err() == nil {
			n.Log.Error("heartbeat refused", "err", err)
		}
		if reply.IntervalSeconds > 0 {
			interval = time.Duration(reply.IntervalSeconds) * time.Second
		}
		select {
		case <-ctx.Done():
			<-errc
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// BootID reads the kernel's random id of this boot ("" if unavailable).
func BootID(root string) string {
	b, _ := os.ReadFile(strings.TrimRight(root, "/") + "/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}
