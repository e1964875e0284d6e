package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"slate/agent/agentproto"
	"slate/image/disk"
)

// installedDisk is how a result names the disk an install chose.
func installedDisk(d Disk) agentproto.InstalledDisk { return agentproto.InstalledDisk(d) }

// DiskTarget is the install rule (shared with Slate, which shows the disk before the install).
type DiskTarget = agentproto.DiskTarget

// Disk is what target selection needs to know of a block device.
type Disk struct {
	Name, Serial, WWN string
	Bytes             int64
	Removable         bool
	Rotational        bool
}

// ChooseDisk applies a target rule to the machine's disks.
func ChooseDisk(disks []Disk, t DiskTarget) (Disk, error) {
	in := make([]agentproto.Disk, len(disks))
	for i, d := range disks {
		in[i] = agentproto.Disk{Name: d.Name, Serial: d.Serial, WWN: d.WWN, SizeBytes: d.Bytes, Removable: d.Removable, Rotational: d.Rotational}
	}
	c, err := agentproto.ChooseDisk(in, t)
	if err != nil {
		return Disk{}, err
	}
	for _, d := range disks {
		if d.Name == c.Name {
			return d, nil
		}
	}
	return Disk{}, fmt.Errorf("disk %s vanished", c.Name)
}

// SysDisks lists the block devices under sysRoot (/sys) that can hold a system.
func SysDisks(sysRoot string) ([]Disk, error) {
	ents, err := os.ReadDir(filepath.Join(sysRoot, "block"))
	if err != nil {
		return nil, err
	}
	var out []Disk
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "sr") || strings.HasPrefix(n, "zram") {
			continue
		}
		dir := filepath.Join(sysRoot, "block", n)
		read := func(p string) string { b, _ := os.ReadFile(filepath.Join(dir, p)); return strings.TrimSpace(string(b)) }
		sectors, _ := strconv.ParseInt(read("size"), 10, 64)
		serial := read("device/serial")
		if serial == "" {
			serial = read("serial")
		}
		out = append(out, Disk{Name: n, Serial: serial, WWN: read("wwid"), Bytes: sectors * 512, Removable: read("removable") == "1",
			Rotational: read("queue/rotational") == "1"})
	}
	return out, nil
}

// RegisterInstall adds the install-image task. disks lists the machine's disks (SysDisks in
// the deploy environment); devDir is where their nodes are (/dev).
func RegisterInstall(r *Registry, c *Client, disks func() ([]Disk, error), devDir string, log *slog.Logger) {
	r.Register(agentproto.KindInstallImage, RunnerFunc(func(ctx context.Context, t agentproto.Task, rep Reporter) (Outcome, error) {
		var p agentproto.InstallImageParams
		dec := json.NewDecoder(bytes.NewReader(t.Params))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return Outcome{}, fmt.Errorf("install-image: params: %w", err)
		}
		ds, err := disks()
		if err != nil {
			return Outcome{}, fmt.Errorf("install-image: list disks: %w", err)
		}
		d, err := ChooseDisk(ds, p.Target)
		if err != nil {
			return Outcome{}, fmt.Errorf("install-image: %w", err)
		}
		dev := filepath.Join(devDir, d.Name)
		rep.Logf("installing %s onto %s (%s, %d bytes)", p.Release, dev, d.Serial, d.Bytes)
		req, err := http.NewRequestWithContext(ctx, "GET", p.BlobURL, nil)
		if err != nil {
			return Outcome{}, fmt.Errorf("install-image: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		hc := c.HTTP
		if hc == nil {
			hc = http.DefaultClient
		}
		resp, err := hc.Do(req)
		if err != nil {
			return Outcome{}, fmt.Errorf("install-image: fetch %s: %w", p.BlobURL, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return Outcome{}, fmt.Errorf("install-image: fetch %s: HTTP %d", p.BlobURL, resp.StatusCode)
		}
		total := resp.ContentLength
		res, err := disk.WriteImage(ctx, resp.Body, dev, disk.WriteOptions{Digest: p.Digest, Compression: p.Compression,
			Progress: func(w, disk int64) {
				if total > 0 && p.Compression == "" {
					rep.Progress(min(0.95, float64(w)/float64(total)), "writing "+p.Release)
				} else {
					rep.Progress(0.5, fmt.Sprintf("writing %s: %d MiB", p.Release, w>>20))
				}
			}})
		if err != nil {
			return Outcome{}, fmt.Errorf("install-image: %w", err)
		}
		rep.Logf("wrote %d bytes, read back and verified (sha256 %s), GPT moved to the disk's end: %v", res.Written, res.RawSHA256, res.GPTRepaired)
		// The installed system reports with its own token, recorded on the disk beside the
		// release it got. Without it the node could never say what it booted: fail rather
		// than leave a machine Slate cannot see.
		nt, err := c.NodeToken(ctx, t.ID)
		if err != nil {
			disk.ZeroBootSectors(dev)
			return Outcome{}, fmt.Errorf("install-image: node token: %w", err)
		}
		nc := disk.NodeConfig{URL: c.Base, Token: nt.Token, Machine: nt.MachineID, Release: p.Release, Digest: p.ImageDigest}
		if err := disk.WriteNodeConfig(dev, nc); err != nil {
			disk.ZeroBootSectors(dev)
			return Outcome{}, fmt.Errorf("install-image: %w", err)
		}
		rep.Logf("node config written to the %s partition (release %s, digest %s)", disk.NodeConfigPartition, p.Release, p.ImageDigest)
		out, err := json.Marshal(agentproto.InstallImageResult{Disk: installedDisk(d), Result: agentproto.ImageWrite(res),
			Release: p.Release, ImageDigest: p.ImageDigest})
		if err != nil {
			return Outcome{}, fmt.Errorf("install-image: encode the result: %w", err)
		}
		log.Info("image installed", "release", p.Release, "disk", dev, "bytes", res.Written)
		return Outcome{Result: out}, nil
	}))
}
