package inspect

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
)

// testdata/uefi-server is a sysfs/procfs tree shaped like a 1-socket rack server: DMI, two
// DIMMs and an empty slot, UEFI with Secure Boot on, a TPM 2.0, an NVMe and a SATA disk, a
// tg3 NIC, and a loop device and loopback that must be ignored.
func TestCollectServerTree(t *testing.T) {
	at := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	f, err := Collect(context.Background(), Options{Root: "testdata/uefi-server", Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if f.Schema != agentproto.FactsSchema || !f.CollectedAt.Equal(at) {
		t.Fatalf("header: %d %v", f.Schema, f.CollectedAt)
	}
	want := agentproto.System{UUID: "4c4c4544-0042-3510-8052-b4c04f384e32", Serial: "8R4N2S2", Vendor: "Dell Inc.",
		Product: "PowerEdge R650", SKU: "SKU=0A6A", Family: "PowerEdge", BoardVendor: "Dell Inc.", BoardProduct: "0Y2K8N",
		BoardSerial: ".8R4N2S2.CNFCP0041A00OS.", ChassisType: "Rack mount chassis", Arch: "x86_64"}
	if f.System != want {
		t.Errorf("system:\n got %+v\nwant %+v", f.System, want)
	}
	if f.BIOS != (agentproto.BIOS{Vendor: "Dell Inc.", Version: "1.13.2", Date: "03/20/2024"}) {
		t.Errorf("bios: %+v", f.BIOS)
	}
	if f.Firmware != (agentproto.Firmware{Mode: "uefi", SecureBoot: "enabled"}) {
		t.Errorf("firmware: %+v", f.Firmware)
	}
	if f.CPU.Sockets != 1 || f.CPU.Cores != 2 || f.CPU.Threads != 4 || f.CPU.Vendor != "GenuineIntel" ||
		!strings.Contains(f.CPU.Model, "Gold 6338") || strings.Join(f.CPU.Flags, ",") != "lm,vmx,aes,avx2,avx512f" {
		t.Errorf("cpu: %+v", f.CPU)
	}
	if f.Memory.TotalBytes != 64<<30 || f.Memory.UsableBytes != 65536000*1024 || len(f.Memory.DIMMs) != 2 {
		t.Errorf("memory: %+v", f.Memory)
	}
	if d := f.Memory.DIMMs[0]; d != (agentproto.DIMM{Locator: "A1", BankLocator: "Bank 0", SizeBytes: 32 << 30, Type: "DDR4",
		SpeedMTs: 3200, Manufacturer: "Hynix", Serial: "8A1B2C3D", PartNumber: "HMAA4GR7AJR8N-XN"}) {
		t.Errorf("dimm 0: %+v", d)
	}
	if len(f.Disks) != 2 {
		t.Fatalf("disks: %+v", f.Disks)
	}
	nv, sd := f.Disks[0], f.Disks[1]
	if nv.Name != "nvme0n1" || nv.Serial != "S64DNX0T123456" || nv.Model != "Samsung SSD 980 PRO 1TB" || nv.SizeBytes != 1953525168*512 ||
		nv.Transport != "nvme" || nv.Rotational || nv.WWN != "eui.002538b411b2a1c4" || nv.Firmware != "5B2QGXA7" || nv.Driver != "nvme" ||
		nv.PCIAddress != "0000:c1:00.0" || nv.NVMe == nil || nv.NVMe.Controller != "nvme0" || nv.NVMe.NSID != 1 {
		t.Errorf("nvme: %+v %+v", nv, nv.NVMe)
	}
	if sd.Name != "sda" || sd.Serial != "ZC1ABCD1" || sd.Model != "ST4000NM0035-1V4" || sd.SizeBytes != 7814037168*512 ||
		sd.Transport != "sata" || !sd.Rotational || sd.PhysicalSectorSize != 4096 || sd.LogicalSectorSize != 512 ||
		sd.WWN != "naa.5000c500a1b2c3d4" || sd.Driver != "ahci" {
		t.Errorf("sata: %+v", sd)
	}
	if len(f.NICs) != 1 || !reflect.DeepEqual(f.NICs[0], agentproto.NIC{Name: "eno1", MAC: "b0:7b:25:aa:bb:01", Driver: "tg3", SpeedMbps: 1000,
		Link: true, PCIAddress: "0000:31:00.0"}) {
		t.Errorf("nics: %+v", f.NICs)
	}
	if len(f.PCI) != 3 || f.PCI[0].Address != "0000:00:17.0" || f.PCI[0].Class != "010601" || f.PCI[0].Driver != "ahci" {
		t.Errorf("pci: %+v", f.PCI)
	}
	if f.TPM != (agentproto.TPM{Present: true, Version: "2.0", Device: "tpm0"}) {
		t.Errorf("tpm: %+v", f.TPM)
	}
}

// A BIOS machine without DMI, DIMMs or TPM: facts still come, with what is missing said.
func TestCollectSparseBIOSTree(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"sys/devices/system/cpu", "sys/block", "sys/class/net", "sys/bus/pci/devices", "proc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	f, err := Collect(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if f.Firmware.Mode != "bios" || f.Firmware.SecureBoot != "unsupported" || f.TPM.Present || len(f.Disks) != 0 {
		t.Fatalf("%+v", f)
	}
	if len(f.Errors) == 0 {
		t.Fatal("no errors reported for a tree without CPU information")
	}
	if _, err := Collect(context.Background(), Options{Root: filepath.Join(root, "nope")}); err == nil {
		t.Fatal("a tree without sysfs was accepted")
	}
}

func TestParseIdentifyPages(t *testing.T) {
	ata := make([]byte, 512)
	copy(ata[20:], "BZ1A2B3C4D          ") // serial, bytes of each word swapped below
	for i := 20; i < 40; i += 2 {
		ata[i], ata[i+1] = ata[i+1], ata[i]
	}
	binary.LittleEndian.PutUint16(ata[82*2:], 1<<1)
	binary.LittleEndian.PutUint16(ata[128*2:], 1<<3|1<<5)
	binary.LittleEndian.PutUint16(ata[59*2:], 1<<12|1<<13)
	binary.LittleEndian.PutUint16(ata[169*2:], 1)
	caps, serial, err := ParseATAIdentify(ata)
	if err != nil || serial != "ZB1A2B3C4D" && serial != "BZ1A2B3C4D" {
		t.Fatalf("serial %q %v", serial, err)
	}
	if !caps.SecuritySupported || caps.SecurityEnabled || !caps.SecurityFrozen || !caps.EnhancedErase || !caps.SanitizeSupported ||
		!caps.CryptoScramble || caps.BlockErase || caps.Overwrite || !caps.TRIM {
		t.Fatalf("caps: %+v", caps)
	}
	if _, _, err := ParseATAIdentify(ata[:100]); err == nil {
		t.Fatal("short identify accepted")
	}
	nv := make([]byte, 4096)
	binary.LittleEndian.PutUint16(nv[256:], 0x10a)
	binary.LittleEndian.PutUint32(nv[328:], 0x3)
	nv[524] = 0x4
	var c agentproto.NVMeCaps
	if err := ParseNVMeIdentify(nv, &c); err != nil || c.OACS != 0x10a || c.SANICAP != 3 || c.FNA != 4 {
		t.Fatalf("nvme: %+v %v", c, err)
	}
	if err := ParseNVMeIdentify(nv[:10], &c); err == nil {
		t.Fatal("short nvme identify accepted")
	}
	if s, err := ParseVPD80([]byte("\x00\x80\x00\x08ABC123  ")); err != nil || s != "ABC123" {
		t.Fatalf("vpd80 %q %v", s, err)
	}
	for _, bad := range [][]byte{nil, []byte("\x00\x83\x00\x01x"), []byte("\x00\x80\x00\x09short")} {
		if _, err := ParseVPD80(bad); err == nil {
			t.Errorf("vpd80 %q accepted", bad)
		}
	}
}

func FuzzParseMemoryDevice(f *testing.F) {
	for _, i := range []string{"0", "1", "2"} {
		if b, err := os.ReadFile("testdata/uefi-server/sys/firmware/dmi/entries/17-" + i + "/raw"); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{17, 0x15, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, ok, err := ParseMemoryDevice(b)
		if err == nil && ok && d.SizeBytes < 0 {
			t.Fatalf("negative size %d", d.SizeBytes)
		}
	})
}

func FuzzParseVPD80(f *testing.F) {
	f.Add([]byte("\x00\x80\x00\x08ABC123  "))
	f.Add([]byte("\x00\x80\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseVPD80(b) })
}

func FuzzParseATAIdentify(f *testing.F) {
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, b []byte) { ParseATAIdentify(b) })
}
