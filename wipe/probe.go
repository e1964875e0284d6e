package wipe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Transport is how Slate talks to a drive.
type Transport string

const (
	TransportNVMe   Transport = "nvme"
	TransportATA    Transport = "ata"
	TransportSCSI   Transport = "scsi"
	TransportVirtio Transport = "virtio"
	TransportLoop   Transport = "loop"
	TransportOther  Transport = "other"
)

// MediaType is the policy's view of a drive (NIST SP 800-88 Appendix A groups).
type MediaType string

const (
	MediaHDD       MediaType = "hdd"
	MediaSSD       MediaType = "ssd"
	MediaNVMe      MediaType = "nvme"
	MediaRemovable MediaType = "removable"
	MediaVirtual   MediaType = "virtual"
)

// DriveInfo is everything the probe learnt about one drive: the plan is made from it and it is
// shown to the technician.
type DriveInfo struct {
	Name      string    `json:"name"`
	Path      string    `json:"path"`
	Transport Transport `json:"transport"`
	Media     MediaType `json:"media"`
	Vendor    string    `json:"vendor,omitempty"`
	Model     string    `json:"model"`
	Serial    string    `json:"serial"`
	// WWN is the kernel's world-wide identifier of the drive (wwid), when it has one.
	WWN               string   `json:"wwn,omitempty"`
	Firmware          string   `json:"firmware,omitempty"`
	SizeBytes         uint64   `json:"size_bytes"`
	LogicalBlockSize  uint32   `json:"logical_block_size"`
	PhysicalBlockSize uint32   `json:"physical_block_size"`
	Rotational        bool     `json:"rotational"`
	Removable         bool     `json:"removable"`
	Mounted           bool     `json:"mounted"`
	MountPoints       []string `json:"mount_points,omitempty"`
	// InUse lists holders (device-mapper, md) and swap that make the drive busy.
	InUse      []string `json:"in_use,omitempty"`
	BootDevice bool     `json:"boot_device"`

	NVMe *NVMeInfo    `json:"nvme,omitempty"`
	ATA  *ATAIdentity `json:"ata,omitempty"`
	SCSI *SCSIInfo    `json:"scsi,omitempty"`
	TCG  *TCGInfo     `json:"tcg,omitempty"`
	// Notes records what could not be probed and why (unsupported command, ioctl error).
	Notes []string `json:"notes,omitempty"`
}

// NVMeInfo is the NVMe part of a probe.
type NVMeInfo struct {
	Controller NVMeController `json:"controller"`
	NSID       uint32         `json:"nsid"`
	Namespace  NVMeNamespace  `json:"namespace"`
}

// SCSIInfo is the SCSI/SAS part of a probe.
type SCSIInfo struct {
	Inquiry           SCSIInquiry `json:"inquiry"`
	SanitizeOverwrite bool        `json:"sanitize_overwrite"`
	SanitizeBlock     bool        `json:"sanitize_block"`
	SanitizeCrypto    bool        `json:"sanitize_crypto"`
}

// TCGInfo is what TCG Level 0 Discovery said.
type TCGInfo struct {
	Opal            bool   `json:"opal"`
	Enterprise      bool   `json:"enterprise"`
	Pyrite          bool   `json:"pyrite"`
	LockingEnabled  bool   `json:"locking_enabled"`
	Locked          bool   `json:"locked"`
	MediaEncryption bool   `json:"media_encryption"`
	BaseComID       uint16 `json:"base_comid"`
}

// TCGProber discovers TCG Storage features of a drive (go-tcg-storage in production).
type TCGProber interface {
	Discover(ctx context.Context, path string) (*TCGInfo, error)
}

// Prober probes drives. The roots are injectable so tests can lay out a fake sysfs.
type Prober struct {
	SysRoot    string // "/sys"
	DevRoot    string // "/dev"
	MountInfo  string // "/proc/self/mountinfo"
	Swaps      string // "/proc/swaps"
	Executable string // the agent's binary: its device is never wiped
	Open       func(path string) (Commander, io.Closer, error)
	TCG        TCGProber
	Log        *slog.Logger
}

// DefaultProber probes the running system.
func DefaultProber(log *slog.Logger) Prober {
	exe, _ := os.Executable()
	if log == nil {
		log = slog.Default()
	}
	return Prober{SysRoot: "/sys", DevRoot: "/dev", MountInfo: "/proc/self/mountinfo", Swaps: "/proc/swaps",
		Executable: exe, Open: openLogged(log), TCG: GoTCGProber{}, Log: log}
}

func openLogged(log *slog.Logger) func(string) (Commander, io.Closer, error) {
	return func(path string) (Commander, io.Closer, error) {
		d, err := OpenDevice(path)
		if err != nil {
			return nil, nil, err
		}
		return loggedCommander{next: d, log: log, device: path}, d, nil
	}
}

// Probe probes the named drives (sda, /dev/nvme0n1); with none, every whole disk the kernel
// lists except loop, RAM, optical and device-mapper devices.
func Probe(ctx context.Context, log *slog.Logger, names ...string) ([]DriveInfo, error) {
	return DefaultProber(log).ProbeAll(ctx, names...)
}

// ProbeAll probes the named drives or, with none, every real disk.
func (p Prober) ProbeAll(ctx context.Context, names ...string) ([]DriveInfo, error) {
	if len(names) == 0 {
		ents, err := os.ReadDir(filepath.Join(p.SysRoot, "block"))
		if err != nil {
			return nil, fmt.Errorf("list drives in %s/block: %w", p.SysRoot, err)
		}
		for _, e := range ents {
			n := e.Name()
			if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") ||
				strings.HasPrefix(n, "sr") || strings.HasPrefix(n, "dm-") || strings.HasPrefix(n, "md") ||
				strings.HasPrefix(n, "nbd") || strings.HasPrefix(n, "fd") {
				continue
			}
			names = append(names, n)
		}
	}
	var out []DriveInfo
	for _, n := range names {
		d, err := p.Probe(ctx, n)
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Probe probes one drive by kernel name or /dev path.
func (p Prober) Probe(ctx context.Context, name string) (DriveInfo, error) {
	name = strings.TrimPrefix(filepath.Clean(name), p.DevRoot+"/")
	name = strings.TrimPrefix(name, "/dev/")
	sys := filepath.Join(p.SysRoot, "block", name)
	if _, err := os.Stat(sys); err != nil {
		return DriveInfo{}, fmt.Errorf("probe %s: no such whole disk in %s/block (give a disk, not a partition): %w", name, p.SysRoot, err)
	}
	d := DriveInfo{Name: name, Path: filepath.Join(p.DevRoot, name)}
	sectors, _ := strconv.ParseUint(readTrim(sys, "size"), 10, 64)
	d.SizeBytes = sectors * 512
	d.LogicalBlockSize = uint32(atoiDefault(readTrim(sys, "queue/logical_block_size"), 512))
	d.PhysicalBlockSize = uint32(atoiDefault(readTrim(sys, "queue/physical_block_size"), int(d.LogicalBlockSize)))
	d.Rotational = readTrim(sys, "queue/rotational") == "1"
	d.Removable = readTrim(sys, "removable") == "1"
	d.Vendor = readTrim(sys, "device/vendor")
	d.Model = readTrim(sys, "device/model")
	d.Serial = readTrim(sys, "device/serial")
	d.Firmware = readTrim(sys, "device/firmware_rev")
	if d.Serial == "" {
		d.Serial = readTrim(sys, "serial")
	}
	if d.WWN = readTrim(sys, "wwid"); d.WWN == "" {
		d.WWN = readTrim(sys, "device/wwid")
	}
	switch {
	case strings.HasPrefix(name, "nvme"):
		d.Transport = TransportNVMe
	case strings.HasPrefix(name, "vd"):
		d.Transport = TransportVirtio
		if d.Model == "" {
			d.Vendor, d.Model = "virtio", "virtio block device"
		}
	case strings.HasPrefix(name, "loop"):
		d.Transport = TransportLoop
		d.Vendor, d.Model = "Linux", "loop device"
		if bf := readTrim(sys, "loop/backing_file"); bf != "" {
			d.Serial = "backing file " + bf
		}
	case strings.HasPrefix(name, "sd"):
		d.Transport = TransportSCSI
		if strings.TrimSpace(d.Vendor) == "ATA" {
			d.Transport = TransportATA
		}
	default:
		d.Transport = TransportOther
	}
	p.usage(&d, sys)

	if p.Open != nil && (d.Transport == TransportNVMe || d.Transport == TransportATA || d.Transport == TransportSCSI) {
		c, closer, err := p.Open(d.Path)
		if err != nil {
			d.Notes = append(d.Notes, fmt.Sprintf("could not open for commands: %v", err))
		} else {
			switch d.Transport {
			case TransportNVMe:
				p.probeNVMe(ctx, c, &d, sys)
			case TransportATA:
				p.probeATA(ctx, c, &d)
			case TransportSCSI:
				p.probeSCSI(ctx, c, &d)
			}
			closer.Close()
		}
		if p.TCG != nil {
			if t, err := p.TCG.Discover(ctx, d.Path); err == nil {
				d.TCG = t
			} else {
				d.Notes = append(d.Notes, fmt.Sprintf("no TCG storage: %v", err))
			}
		}
	}
	d.Media = mediaOf(d)
	return d, nil
}

func mediaOf(d DriveInfo) MediaType {
	switch {
	case d.Removable:
		return MediaRemovable
	case d.Transport == TransportNVMe:
		return MediaNVMe
	case d.Transport == TransportLoop || d.Transport == TransportVirtio:
		return MediaVirtual
	case d.ATA != nil && d.ATA.RotationRate == 1:
		return MediaSSD
	case d.Rotational:
		return MediaHDD
	default:
		return MediaSSD
	}
}

func (p Prober) probeNVMe(ctx context.Context, c Commander, d *DriveInfo, sys string) {
	buf := make([]byte, nvmeIdentifyLen)
	if _, err := c.NVMeAdmin(ctx, NVMeIdentifyController(), buf); err != nil {
		d.Notes = append(d.Notes, fmt.Sprintf("nvme identify controller: %v", err))
		return
	}
	ctrl, err := ParseNVMeIdentifyController(buf)
	if err != nil {
		d.Notes = append(d.Notes, err.Error())
		return
	}
	info := &NVMeInfo{Controller: ctrl, NSID: nvmeNSIDOf(d.Name, readTrim(sys, "nsid"))}
	ns := make([]byte, nvmeIdentifyLen)
	if _, err := c.NVMeAdmin(ctx, NVMeIdentifyNamespace(info.NSID), ns); err != nil {
		d.Notes = append(d.Notes, fmt.Sprintf("nvme identify namespace %d: %v", info.NSID, err))
	} else if n, err := ParseNVMeIdentifyNamespace(ns); err != nil {
		d.Notes = append(d.Notes, err.Error())
	} else {
		info.Namespace = n
	}
	d.NVMe = info
	d.Model, d.Serial, d.Firmware = ctrl.Model, ctrl.Serial, ctrl.Firmware
}

// nvmeNSIDOf takes the namespace id from sysfs, else from the name (nvme0n1 → 1).
func nvmeNSIDOf(name, sysNSID string) uint32 {
	if v, err := strconv.ParseUint(sysNSID, 10, 32); err == nil && v > 0 {
		return uint32(v)
	}
	if i := strings.LastIndexByte(name, 'n'); i > 0 {
		if v, err := strconv.ParseUint(name[i+1:], 10, 32); err == nil && v > 0 {
			return uint32(v)
		}
	}
	return 1
}

func (p Prober) probeATA(ctx context.Context, c Commander, d *DriveInfo) {
	buf := make([]byte, ataIdentifyLen)
	if _, err := runATA(ctx, c, ATAIdentify(), DirIn, buf, 15*time.Second); err != nil {
		d.Notes = append(d.Notes, fmt.Sprintf("ata identify: %v", err))
		return
	}
	id, err := ParseATAIdentify(buf)
	if err != nil {
		d.Notes = append(d.Notes, err.Error())
		return
	}
	d.ATA = &id
	d.Model, d.Serial, d.Firmware = id.Model, id.Serial, id.Firmware
}

func (p Prober) probeSCSI(ctx context.Context, c Commander, d *DriveInfo) {
	info := &SCSIInfo{}
	buf := make([]byte, 96)
	if _, err := runSCSI(ctx, c, SCSIInquiryCDB(false, 0, 96), DirIn, buf, 30*time.Second); err == nil {
		if inq, err := ParseSCSIInquiry(buf); err == nil {
			info.Inquiry = inq
		}
	}
	sn := make([]byte, 252)
	if _, err := runSCSI(ctx, c, SCSIInquiryCDB(true, 0x80, 252), DirIn, sn, 30*time.Second); err == nil {
		if s, err := ParseSCSIUnitSerial(sn); err == nil && s != "" {
			d.Serial = s
		}
	}
	for _, sa := range []SCSISanitizeAction{SCSISanitizeOverwrite, SCSISanitizeBlockErase, SCSISanitizeCryptoErase} {
		rb := make([]byte, scsiRSOCAllocLen)
		if _, err := runSCSI(ctx, c, SCSIReportOpCodeCDB(scsiOpSanitize, uint16(sa)), DirIn, rb, 60*time.Second); err != nil {
			d.Notes = append(d.Notes, fmt.Sprintf("report supported operation codes (sanitize 0x%02x): %v", sa, err))
			continue
		}
		ok, _ := ParseSCSIOneCommand(rb)
		switch sa {
		case SCSISanitizeOverwrite:
			info.SanitizeOverwrite = ok
		case SCSISanitizeBlockErase:
			info.SanitizeBlock = ok
		case SCSISanitizeCryptoErase:
			info.SanitizeCrypto = ok
		}
	}
	d.SCSI = info
}

// usage fills Mounted, MountPoints, InUse and BootDevice from mountinfo, swaps, holders and the
// agent's own binary.
func (p Prober) usage(d *DriveInfo, sys string) {
	devs := map[string]bool{readTrim(sys, "dev"): true}
	names := map[string]bool{d.Name: true}
	if ents, err := os.ReadDir(sys); err == nil {
		for _, e := range ents {
			if _, err := os.Stat(filepath.Join(sys, e.Name(), "partition")); err == nil {
				devs[readTrim(filepath.Join(sys, e.Name()), "dev")] = true
				names[e.Name()] = true
				if h, _ := os.ReadDir(filepath.Join(sys, e.Name(), "holders")); len(h) > 0 {
					for _, x := range h {
						d.InUse = append(d.InUse, "holder "+x.Name()+" on "+e.Name())
					}
				}
			}
		}
	}
	if h, _ := os.ReadDir(filepath.Join(sys, "holders")); len(h) > 0 {
		for _, x := range h {
			d.InUse = append(d.InUse, "holder "+x.Name())
		}
	}
	if f, err := os.Open(p.MountInfo); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 5 || !devs[fs[2]] {
				continue
			}
			d.Mounted = true
			d.MountPoints = append(d.MountPoints, fs[4])
			if fs[4] == "/" {
				d.BootDevice = true
			}
		}
		f.Close()
	}
	if f, err := os.Open(p.Swaps); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) > 0 && names[strings.TrimPrefix(fs[0], p.DevRoot+"/")] {
				d.InUse = append(d.InUse, "swap "+fs[0])
			}
		}
		f.Close()
	}
	if p.Executable != "" {
		var st unix.Stat_t
		if unix.Stat(p.Executable, &st) == nil {
			mm := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
			if devs[mm] {
				d.BootDevice = true
			}
		}
	}
}

func readTrim(dir, file string) string {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func atoiDefault(s string, def int) int {
	if v, err := strconv.Atoi(s); err == nil && v > 0 {
		return v
	}
	return def
}

func (t Transport) String() string { return string(t) }
