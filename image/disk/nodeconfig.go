package disk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"slate/image/gpt"
)

// NodeConfigPartition is the GPT partition name a disk image reserves for Slate: the
// installer writes the node's credentials and install record there, and `slate-agent node`
// finds it by name (sysfs PARTNAME) without mounting anything. A raw partition, not a file
// in a file system, so Slate needs no file-system driver for the images it installs.
const NodeConfigPartition = "slate-config"

// nodeConfigMax bounds what is written to and read from the partition.
const nodeConfigMax = 64 << 10

// NodeConfig is the installer's record on an installed disk.
type NodeConfig struct {
	URL     string `json:"url"`     // how the node reaches Slate
	Token   string `json:"token"`   // its node token (revoked when re-installed or retired)
	Machine string `json:"machine"` // the machine id Slate knows it by
	Release string `json:"release"` // name@version installed
	Digest  string `json:"digest"`  // the release's image (manifest) digest
}

// Partition is one GPT entry.
type Partition = gpt.Partition

// GPTPartitions reads the primary GPT of a disk (or image) and lists its used entries.
func GPTPartitions(f io.ReaderAt) ([]Partition, error) { return gpt.Partitions(f) }

// WriteNodeConfig writes c into the image's slate-config partition on dev (the whole disk),
// zero-padded, and syncs. A disk image without that partition gets nothing and an error that
// says so: the installed system then cannot report to Slate.
func WriteNodeConfig(dev string, c NodeConfig) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	parts, err := GPTPartitions(f)
	if err != nil {
		return fmt.Errorf("find the %s partition: %w", NodeConfigPartition, err)
	}
	for _, p := range parts {
		if p.Name != NodeConfigPartition {
			continue
		}
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		buf := make([]byte, min(p.Size, nodeConfigMax))
		if len(b) > len(buf) {
			return fmt.Errorf("the %s partition (%d bytes) is too small for the node config (%d bytes)", NodeConfigPartition, p.Size, len(b))
		}
		copy(buf, b)
		if _, err := f.WriteAt(buf, p.Start); err != nil {
			return fmt.Errorf("write the node config: %w", err)
		}
		return f.Sync()
	}
	return fmt.Errorf("the image has no GPT partition named %q: the installed system cannot report to Slate (add a 1 MiB partition with that name to the image)", NodeConfigPartition)
}

// ParseNodeConfig reads the installer's record from the start of the slate-config partition.
func ParseNodeConfig(b []byte) (NodeConfig, error) {
	var c NodeConfig
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, fmt.Errorf("the %s partition is empty: this disk was not installed by Slate", NodeConfigPartition)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("the %s partition does not hold Slate's node config: %w", NodeConfigPartition, err)
	}
	if c.URL == "" || c.Token == "" {
		return c, fmt.Errorf("the node config in %s has no url or token", NodeConfigPartition)
	}
	return c, nil
}

// ReadNodeConfig reads the node config from a partition device (e.g. /dev/vda2).
func ReadNodeConfig(partDev string) (NodeConfig, error) {
	f, err := os.Open(partDev)
	if err != nil {
		return NodeConfig{}, err
	}
	defer f.Close()
	buf := make([]byte, nodeConfigMax)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return NodeConfig{}, fmt.Errorf("read %s: %w", partDev, err)
	}
	return ParseNodeConfig(buf[:n])
}

// ZeroBootSectors zeroes the first MiB of dev (MBR, GPT, boot loader), so an install that
// failed after its image was written can never boot as if it were good.
func ZeroBootSectors(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(make([]byte, min(1<<20, size)), 0); err != nil {
		return err
	}
	return f.Sync()
}
