// Package inspect collects a machine's hardware facts in the deploy environment: DMI identity,
// firmware mode and Secure Boot, CPUs, memory and DIMMs, disks (with the NVMe/ATA capability
// words the wipe planner needs), NICs, PCI devices and the TPM.
//
// Everything is read below a root directory, so tests run on fake sysfs trees. ghw reads what
// it reads well (DMI strings, CPU topology, memory blocks); disks, NICs and PCI are read from
// sysfs directly because ghw takes disk serials and WWNs from udev's database, and the deploy
// environment has no udev, and names PCI devices from pci.ids, which it does not carry.
package inspect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jaypipes/ghw/pkg/baseboard"
	"github.com/jaypipes/ghw/pkg/bios"
	"github.com/jaypipes/ghw/pkg/chassis"
	"github.com/jaypipes/ghw/pkg/cpu"
	"github.com/jaypipes/ghw/pkg/memory"
	"github.com/jaypipes/ghw/pkg/option"
	"github.com/jaypipes/ghw/pkg/product"

	"slate/agent/agentproto"
)

// Options say where to read from.
type Options struct {
	Root string // "/" on a machine; a fake tree in tests
	// Probe sends identify commands to NVMe and ATA disks through /dev (root, real devices).
	Probe bool
	// KeepRaw keeps the raw identify pages in the facts (for the wipe planner).
	KeepRaw bool
	Now     func() time.Time
}

// Inspector implements agent.Inspector on the live machine.
type Inspector struct{ Opt Options }

// Inspect implements agent.Inspector.
func (i Inspector) Inspect(ctx context.Context) (agentproto.Facts, error) { return Collect(ctx, i.Opt) }

type collector struct {
	root string
	f    *agentproto.Facts
}

func (c *collector) path(p string) string { return filepath.Join(c.root, p) }

func (c *collector) read(p string) string {
	b, err := os.ReadFile(c.path(p))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (c *collector) readInt(p string) int64 {
	n, _ := strconv.ParseInt(c.read(p), 10, 64)
	return n
}

func (c *collector) fail(what string, err error) {
	c.f.Errors = append(c.f.Errors, fmt.Sprintf("%s: %v", what, err))
}

// known drops the placeholders firmware and ghw use for "not set".
func known(s string) string {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "unknown", "not specified", "to be filled by o.e.m.", "default string", "none", "0", "n/a", "system serial number", "system product name":
		return ""
	}
	return s
}

func goArchToUname(a string) string {
	switch a {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	}
	return a
}

// Collect reads every fact it can. Parts that cannot be read are listed in Facts.Errors; the
// result is an error only when the tree is not a Linux system at all.
func Collect(ctx context.Context, o Options) (agentproto.Facts, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f := agentproto.Facts{Schema: agentproto.FactsSchema, CollectedAt: o.Now().UTC()}
	c := &collector{root: o.Root, f: &f}
	if _, err := os.Stat(c.path("sys/devices")); err != nil {
		return f, fmt.Errorf("inspect: %s has no sys/devices (is sysfs mounted?): %w", o.Root, err)
	}
	ghwOpts := []*option.Option{option.WithChroot(o.Root), option.WithNullAlerter(), option.WithDisableTools()}

	f.System.Arch = goArchToUname(runtime.GOARCH)
	if p, err := product.New(ghwOpts...); err == nil {
		f.System.UUID = strings.ToLower(known(p.UUID))
		f.System.Serial = known(p.SerialNumber)
		f.System.Vendor = known(p.Vendor)
		f.System.Product = known(p.Name)
		f.System.Version = known(p.Version)
		f.System.SKU = known(p.SKU)
		f.System.Family = known(p.Family)
	} else {
		c.fail("DMI product", err)
	}
	if b, err := baseboard.New(ghwOpts...); err == nil {
		f.System.BoardVendor, f.System.BoardProduct, f.System.BoardSerial = known(b.Vendor), known(b.Product), known(b.SerialNumber)
	}
	if ch, err := chassis.New(ghwOpts...); err == nil {
		f.System.ChassisType = known(ch.TypeDescription)
	}
	if b, err := bios.New(ghwOpts...); err == nil {
		f.BIOS = agentproto.BIOS{Vendor: known(b.Vendor), Version: known(b.Version), Date: known(b.Date)}
	} else {
		c.fail("DMI BIOS", err)
	}
	c.firmware()
	if ci, err := cpu.New(ghwOpts...); err == nil && len(ci.Processors) > 0 {
		p := ci.Processors[0]
		f.CPU = agentproto.CPU{Model: p.Model, Vendor: p.Vendor, Sockets: len(ci.Processors), Cores: int(ci.TotalCores),
			Threads: int(ci.TotalHardwareThreads)}
		for _, flag := range []string{"lm", "vmx", "svm", "aes", "avx2", "avx512f", "hypervisor"} {
			if p.HasCapability(flag) {
				f.CPU.Flags = append(f.CPU.Flags, flag)
			}
		}
	} else {
		c.fail("CPU", fmt.Errorf("no processors found (%v)", err))
	}
	if mi, err := memory.New(ghwOpts...); err == nil {
		f.Memory.TotalBytes, f.Memory.UsableBytes = mi.TotalPhysicalBytes, mi.TotalUsableBytes
	} else {
		c.fail("memory", err)
	}
	c.dimms()
	if err := ctx.Err(); err != nil {
		return f, err
	}
	c.disks(o)
	c.nics()
	c.pci()
	c.tpm()
	return f, ctx.Err()
}

// EFI global variable GUID (UEFI spec): SecureBoot and SetupMode live under it.
const efiGlobal = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

func (c *collector) firmware() {
	if _, err := os.Stat(c.path("sys/firmware/efi")); err != nil {
		c.f.Firmware = agentproto.Firmware{Mode: "bios", SecureBoot: "unsupported"}
		return
	}
	c.f.Firmware = agentproto.Firmware{Mode: "uefi", SecureBoot: "unknown"}
	// efivarfs files are 4 bytes of attributes, then the value.
	b, err := os.ReadFile(c.path("sys/firmware/efi/efivars/SecureBoot-" + efiGlobal))
	switch {
	case err != nil:
		c.fail("Secure Boot state (is efivarfs mounted?)", err)
	case len(b) >= 5 && b[4] == 1:
		c.f.Firmware.SecureBoot = "enabled"
	case len(b) >= 5:
		c.f.Firmware.SecureBoot = "disabled"
	}
	if b, err := os.ReadFile(c.path("sys/firmware/efi/efivars/SetupMode-" + efiGlobal)); err == nil && len(b) >= 5 {
		c.f.Firmware.SetupMode = b[4] == 1
	}
}

func (c *collector) dimms() {
	ents, _ := filepath.Glob(c.path("sys/firmware/dmi/entries/17-*"))
	slices.Sort(ents)
	var sum int64
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(e, "raw"))
		if err != nil {
			continue
		}
		d, ok, err := ParseMemoryDevice(raw)
		if err != nil {
			c.fail("DIMM "+filepath.Base(e), err)
			continue
		}
		if ok {
			c.f.Memory.DIMMs = append(c.f.Memory.DIMMs, d)
			sum += d.SizeBytes
		}
	}
	// DIMMs are what is installed; memory blocks miss what firmware reserved.
	if sum > 0 {
		c.f.Memory.TotalBytes = sum
	}
}

func (c *collector) tpm() {
	ents, _ := filepath.Glob(c.path("sys/class/tpm/tpm*"))
	if len(ents) == 0 {
		return
	}
	slices.Sort(ents)
	dev := filepath.Base(ents[0])
	c.f.TPM = agentproto.TPM{Present: true, Device: dev}
	switch c.read("sys/class/tpm/" + dev + "/tpm_version_major") {
	case "2":
		c.f.TPM.Version = "2.0"
	case "1":
		c.f.TPM.Version = "1.2"
	default:
		// Older kernels: only TPM 1.2 chips expose caps.
		if _, err := os.Stat(c.path("sys/class/tpm/" + dev + "/device/caps")); err == nil {
			c.f.TPM.Version = "1.2"
		} else {
			c.f.TPM.Version = "2.0"
		}
	}
}

func (c *collector) pci() {
	ents, err := os.ReadDir(c.path("sys/bus/pci/devices"))
	if err != nil {
		c.fail("PCI devices", err)
		return
	}
	for _, e := range ents {
		base := "sys/bus/pci/devices/" + e.Name()
		c.f.PCI = append(c.f.PCI, agentproto.PCIDev{
			Address:   e.Name(),
			VendorID:  strings.TrimPrefix(c.read(base+"/vendor"), "0x"),
			DeviceID:  strings.TrimPrefix(c.read(base+"/device"), "0x"),
			Class:     strings.TrimPrefix(c.read(base+"/class"), "0x"),
			SubVendor: strings.TrimPrefix(c.read(base+"/subsystem_vendor"), "0x"),
			SubDevice: strings.TrimPrefix(c.read(base+"/subsystem_device"), "0x"),
			Driver:    c.linkBase(base + "/driver"),
		})
	}
}

// linkBase is the last element of a symlink's target ("" if it is not one).
func (c *collector) linkBase(p string) string {
	t, err := os.Readlink(c.path(p))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// pciAddrOf returns the last PCI address in a sysfs device path.
func pciAddrOf(devPath string) string {
	var last string
	for _, el := range strings.Split(devPath, "/") {
		if isPCIAddr(el) {
			last = el
		}
	}
	return last
}

func isPCIAddr(s string) bool {
	// dddd:bb:dd.f
	if len(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.' {
		return false
	}
	for i, r := range s {
		if i == 4 || i == 7 || i == 10 {
			continue
		}
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// resolve follows a sysfs symlink relative to the root and returns the path below the root.
func (c *collector) resolve(p string) string {
	t, err := filepath.EvalSymlinks(c.path(p))
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(c.root, t)
	if err != nil {
		return t
	}
	return "/" + rel
}

func (c *collector) nics() {
	ents, err := os.ReadDir(c.path("sys/class/net"))
	if err != nil {
		c.fail("network interfaces", err)
		return
	}
	for _, e := range ents {
		name := e.Name()
		base := "sys/class/net/" + name
		if _, err := os.Stat(c.path(base + "/device")); err != nil {
			continue // loopback, bridges, VLANs: not hardware
		}
		n := agentproto.NIC{Name: name, MAC: strings.ToLower(c.read(base + "/address")),
			Driver: c.linkBase(base + "/device/driver"), Link: c.read(base+"/carrier") == "1",
			PCIAddress: pciAddrOf(c.resolve(base + "/device"))}
		if s, err := strconv.Atoi(c.read(base + "/speed")); err == nil && s > 0 {
			n.SpeedMbps = s
		}
		c.f.NICs = append(c.f.NICs, n)
	}
}
