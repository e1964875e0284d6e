package inspect

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"slate/agent/agentproto"
)

// skipDisk says which block devices are not disks: loop, RAM, zram, device-mapper, md, and
// anything without a backing device.
func skipDisk(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "dm-", "md", "nbd", "sr", "fd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// transportOf guesses the bus from the device's sysfs path.
func transportOf(devPath, name string) string {
	switch {
	case strings.HasPrefix(name, "nvme"), strings.Contains(devPath, "/nvme/"):
		return "nvme"
	case strings.Contains(devPath, "/usb"):
		return "usb"
	case strings.Contains(devPath, "/virtio"):
		return "virtio"
	case strings.Contains(devPath, "/mmc"):
		return "mmc"
	case strings.Contains(devPath, "/ata"):
		return "sata"
	case strings.Contains(devPath, "/end_device-"), strings.Contains(devPath, "/port-"):
		return "sas"
	case strings.Contains(devPath, "/host"), strings.Contains(devPath, "/target"):
		return "scsi"
	}
	return "unknown"
}

// wwnFrom keeps only real world-wide names (NAA/EUI-64/NGUID), not the t10 vendor strings the
// kernel falls back to.
func wwnFrom(s string) string {
	s = strings.TrimSpace(s)
	for _, p := range []string{"naa.", "eui.", "0x"} {
		if strings.HasPrefix(s, p) {
			return s
		}
	}
	return ""
}

// ParseVPD80 returns the unit serial number from a SCSI VPD page 0x80 (as in
// /sys/block/sdX/device/vpd_pg80; libata builds it from the ATA serial).
func ParseVPD80(b []byte) (string, error) {
	if len(b) < 4 || b[1] != 0x80 {
		return "", fmt.Errorf("not a VPD page 0x80")
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if 4+n > len(b) {
		return "", fmt.Errorf("VPD page 0x80 says %d bytes of serial, has %d", n, len(b)-4)
	}
	return strings.TrimSpace(strings.Trim(string(b[4:4+n]), "\x00")), nil
}

func (c *collector) disks(o Options) {
	ents, err := os.ReadDir(c.path("sys/block"))
	if err != nil {
		c.fail("block devices", err)
		return
	}
	for _, e := range ents {
		name := e.Name()
		base := "sys/block/" + name
		if skipDisk(name) {
			continue
		}
		if _, err := os.Stat(c.path(base + "/device")); err != nil {
			continue
		}
		devPath := c.resolve(base)
		d := agentproto.Disk{
			Name:               name,
			SizeBytes:          c.readInt(base+"/size") * 512, // always 512-byte units, whatever the sector size
			LogicalSectorSize:  int(c.readInt(base + "/queue/logical_block_size")),
			PhysicalSectorSize: int(c.readInt(base + "/queue/physical_block_size")),
			Rotational:         c.read(base+"/queue/rotational") == "1",
			Removable:          c.read(base+"/removable") == "1",
			ReadOnly:           c.read(base+"/ro") == "1",
			DiscardMaxBytes:    c.readInt(base + "/queue/discard_max_bytes"),
			Transport:          transportOf(devPath, name),
			PCIAddress:         pciAddrOf(devPath),
			Model:              known(c.read(base + "/device/model")),
		}
		if d.PCIAddress != "" {
			d.Driver = c.linkBase("sys/bus/pci/devices/" + d.PCIAddress + "/driver")
		}
		switch d.Transport {
		case "nvme":
			// device/ is the controller: it has serial, model, firmware_rev.
			d.Serial = known(c.read(base + "/device/serial"))
			d.Firmware = known(c.read(base + "/device/firmware_rev"))
			d.WWN = wwnFrom(c.read(base + "/wwid"))
			ctrl := filepath.Base(c.resolve(base + "/device"))
			nsid, _ := strconv.Atoi(c.read(base + "/nsid"))
			d.NVMe = &agentproto.NVMeCaps{Controller: ctrl, NSID: nsid}
			if o.Probe {
				if err := identifyNVMe(filepath.Join(c.root, "dev", ctrl), d.NVMe, o.KeepRaw); err != nil {
					c.fail("NVMe identify "+ctrl, err)
				}
			}
		case "virtio":
			d.Serial = known(c.read(base + "/serial"))
		default:
			d.Firmware = known(c.read(base + "/device/rev"))
			d.WWN = wwnFrom(c.read(base + "/device/wwid"))
			if b, err := os.ReadFile(c.path(base + "/device/vpd_pg80")); err == nil {
				if s, err := ParseVPD80(b); err == nil {
					d.Serial = known(s)
				}
			}
			if d.Transport == "sata" && o.Probe {
				ata, serial, err := identifyATA(filepath.Join(c.root, "dev", name), o.KeepRaw)
				if err != nil {
					c.fail("ATA identify "+name, err)
				} else {
					d.ATA = ata
					if d.Serial == "" {
						d.Serial = serial
					}
				}
			}
		}
		c.f.Disks = append(c.f.Disks, d)
	}
}

// ParseATAIdentify decodes the capability words of a 512-byte IDENTIFY DEVICE page and its
// serial number (words 10-19, ASCII with the bytes of each word swapped).
func ParseATAIdentify(b []byte) (*agentproto.ATACaps, string, error) {
	if len(b) < 512 {
		return nil, "", fmt.Errorf("IDENTIFY DEVICE data is %d bytes, want 512", len(b))
	}
	w := func(i int) uint16 { return binary.LittleEndian.Uint16(b[2*i:]) }
	var sb []byte
	for i := 10; i < 20; i++ {
		v := w(i)
		sb = append(sb, byte(v>>8), byte(v))
	}
	// Word 59 bit 12 says the sanitize feature set is supported; word 82 bit 1 the security one.
	caps := &agentproto.ATACaps{
		SecuritySupported: w(82)&(1<<1) != 0,
		SecurityEnabled:   w(128)&(1<<1) != 0,
		SecurityFrozen:    w(128)&(1<<3) != 0,
		EnhancedErase:     w(128)&(1<<5) != 0,
		SanitizeSupported: w(59)&(1<<12) != 0,
		CryptoScramble:    w(59)&(1<<13) != 0,
		Overwrite:         w(59)&(1<<14) != 0,
		BlockErase:        w(59)&(1<<15) != 0,
		TRIM:              w(169)&1 != 0,
	}
	return caps, known(strings.TrimSpace(string(sb))), nil
}

// ParseNVMeIdentify decodes the capability fields of a 4096-byte Identify Controller page.
func ParseNVMeIdentify(b []byte, caps *agentproto.NVMeCaps) error {
	if len(b) < 4096 {
		return fmt.Errorf("identify controller data is %d bytes, want 4096", len(b))
	}
	caps.OACS = binary.LittleEndian.Uint16(b[256:])
	caps.SANICAP = binary.LittleEndian.Uint32(b[328:])
	caps.FNA = b[524]
	return nil
}
