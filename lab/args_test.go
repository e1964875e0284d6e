package lab

import (
	"net/netip"
	"strings"
	"testing"

	"slate/lab/vbmc"
)

func TestQEMUArgsBootOrder(t *testing.T) {
	c := vmConfig{Name: "vm1", MAC: "52:54:00:5a:00:01", UUID: "u", Serial: "S1", Tap: "tap0", Dir: "/s/vm1",
		Disks: []string{DiskNVMe, DiskSATA}, Memory: 1024, Accel: "tcg", OVMFCode: "/ovmf/code.fd"}
	cases := []struct {
		name string
		spec vbmc.BootSpec
		want []string // substrings that must be in the command line
		not  []string // and must not
	}{
		{"default uefi: disks first", vbmc.BootSpec{Target: vbmc.TargetNone, UEFI: true, PXEEnabled: true, Virtualization: true, BIOSVersion: "1.0.0"},
			[]string{"drive=nvme0,bootindex=1", "bus=ahci1.0,serial=S1S1,bootindex=2", "id=cd0,bus=ide.1,unit=0,bootindex=3", "mac=52:54:00:5a:00:01,bootindex=4", "if=pflash", "file=/s/vm1/OVMF_VARS.fd", "version=1.0.0"},
			[]string{"romfile=", "IPv4PXESupport", "-vmx"}},
		{"pxe bios: nic first, SeaBIOS", vbmc.BootSpec{Target: vbmc.TargetPxe, PXEEnabled: true, Virtualization: true},
			[]string{"mac=52:54:00:5a:00:01,bootindex=1", "drive=nvme0,bootindex=2", "bootindex=4"},
			[]string{"if=pflash", "romfile="}},
		{"uefi http: OVMF's own stack, PXE off", vbmc.BootSpec{Target: vbmc.TargetUefiHTTP, UEFI: true, PXEEnabled: true},
			[]string{"bootindex=1,romfile=", "IPv4PXESupport,string=n", "IPv6PXESupport,string=n", "qemu64,-vmx,-svm"},
			nil},
		{"uefi http on legacy falls back to pxe", vbmc.BootSpec{Target: vbmc.TargetUefiHTTP, PXEEnabled: true},
			[]string{"mac=52:54:00:5a:00:01,bootindex=1 "},
			[]string{"IPv4PXESupport", "romfile="}},
		{"cd first with media", vbmc.BootSpec{Target: vbmc.TargetCd, UEFI: true, PXEEnabled: true, MediaPath: "/m/cd.iso"},
			[]string{"file=/m/cd.iso", "id=cd0,bus=ide.1,unit=0,bootindex=1", "drive=nvme0,bootindex=2"}, nil},
		{"pxe disabled: no nic boot", vbmc.BootSpec{Target: vbmc.TargetNone, UEFI: true, PXEEnabled: false},
			[]string{"mac=52:54:00:5a:00:01,romfile=", "IPv4PXESupport,string=n"},
			[]string{"mac=52:54:00:5a:00:01,bootindex"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := strings.Join(qemuArgs(c, tc.spec), " ") + " "
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("missing %q in\n%s", w, line)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(line, n) {
					t.Errorf("unexpected %q in\n%s", n, line)
				}
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{VMs: 100}, {Firmware: "coreboot"}, {Disks: []string{"scsi"}}, {Disks: []string{"nvme", "nvme"}},
		{Accel: "hvf"}, {Namespace: "a-very-long-namespace-name"},
	} {
		o.defaults()
		if err := o.validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	o := Options{}
	o.defaults()
	if err := o.validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
}

func TestRouterAdvert(t *testing.T) {
	msg := routerAdvert([]byte{0x52, 0x54, 0, 1, 2, 3}, mustPrefix("fd00:99::/64"))
	// type 134, code 0, checksum, then hop limit 64 … SLLA option … prefix option with /64.
	if msg[0] != 134 || msg[1] != 0 || msg[4] != 64 {
		t.Fatalf("header % x", msg[:8])
	}
	if len(msg) != 16+8+32 {
		t.Fatalf("length %d", len(msg))
	}
	p := msg[24:]
	if p[0] != 3 || p[1] != 4 || p[2] != 64 || p[3] != 0xc0 || p[16] != 0xfd || p[18] != 0 || p[19] != 0x99 {
		t.Fatalf("prefix option % x", p)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
