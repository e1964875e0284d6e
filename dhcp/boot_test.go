package dhcp

import (
	"fmt"
	"testing"

	"github.com/insomniacslk/dhcp/iana"
)

var testBoot = Boot{URL: "http://10.99.0.1:8080", BIOSFile: "undionly.kpxe", UEFIFile: "ipxe.efi",
	ScriptPath: "/boot/auto.ipxe", BinaryPath: "/boot/ipxe"}

// TestDecideBootEveryArch walks every code of IANA's processor architecture registry
// (0…41) as PXE option 93, as the vendor class's Arch field, and as an iPXE client.
func TestDecideBootEveryArch(t *testing.T) {
	type want struct {
		kind   BootKind
		file   string
		vendor string
	}
	refuse := want{}
	tftp := func(f string) want { return want{BootTFTP, f, "PXEClient"} }
	http := func(f string) want { return want{BootHTTP, "http://10.99.0.1:8080/boot/ipxe/" + f, "HTTPClient"} }
	// expected answer per code when the code arrives in option 93 with a matching vendor class.
	expect := map[iana.Arch]want{
		0: tftp("undionly.kpxe"), 7: tftp("ipxe.efi"), 9: tftp("ipxe.efi"),
		16: http("ipxe.efi"), 17: http("ipxe.efi"),
	}
	names := map[iana.Arch]bool{}
	for code := iana.Arch(0); code <= 41; code++ {
		names[code] = true
		w, ok := expect[code]
		if !ok {
			w = refuse
		}
		vc := "PXEClient"
		if isHTTPArch(code) {
			vc = "HTTPClient"
		}
		vc = fmt.Sprintf("%s:Arch:%05d:UNDI:003016", vc, code)
		for _, how := range []string{"option93", "vendorclass"} {
			r := BootRequest{VendorClass: vc, MachineState: "ready"}
			if how == "option93" {
				r.Archs = []iana.Arch{code}
			}
			got := DecideBoot(r, testBoot)
			if w == refuse {
				if !got.Refuse || got.Reason == "" || got.File != "" {
					t.Errorf("arch %d via %s: want refusal with a reason, got %+v", code, how, got)
				}
				continue
			}
			if got.Refuse || got.Kind != w.kind || got.File != w.file || got.VendorClass != w.vendor {
				t.Errorf("arch %d via %s: got %+v, want %+v", code, how, got, w)
			}
			if got.Arch == "" || got.Arch == "unknown" {
				t.Errorf("arch %d: no architecture name in %+v", code, got)
			}
		}
		// An iPXE client gets the script, whatever its architecture: never the binary again.
		got := DecideBoot(BootRequest{Archs: []iana.Arch{code}, VendorClass: vc, IPXE: true}, testBoot)
		if got.Refuse || got.Kind != BootHTTP || got.File != "http://10.99.0.1:8080/boot/auto.ipxe" {
			t.Errorf("arch %d as iPXE: got %+v", code, got)
		}
	}
	if len(names) != 42 {
		t.Fatalf("covered %d codes, want 42", len(names))
	}
}

func TestDecideBootCases(t *testing.T) {
	arm := testBoot
	arm.ARM64File = "ipxe-arm64.efi"
	snp := testBoot
	snp.UEFIFile = "snponly.efi"
	noURL := testBoot
	noURL.URL = ""
	cases := []struct {
		name string
		r    BootRequest
		b    Boot
		kind BootKind
		file string
		ref  bool
	}{
		{"plain DHCP client", BootRequest{VendorClass: "udhcp 1.35.0"}, testBoot, BootNone, "", false},
		{"no class at all", BootRequest{}, testBoot, BootNone, "", false},
		{"PXE without arch is BIOS", BootRequest{VendorClass: "PXEClient"}, testBoot, BootTFTP, "undionly.kpxe", false},
		{"x64 UEFI snponly", BootRequest{Archs: []iana.Arch{7}, VendorClass: "PXEClient:Arch:00007"}, snp, BootTFTP, "snponly.efi", false},
		{"arm64 PXE present", BootRequest{Archs: []iana.Arch{11}}, arm, BootTFTP, "ipxe-arm64.efi", false},
		{"arm64 PXE absent", BootRequest{Archs: []iana.Arch{11}}, testBoot, BootNone, "", true},
		{"arm64 HTTP present", BootRequest{Archs: []iana.Arch{19}, VendorClass: "HTTPClient:Arch:00019"}, arm, BootHTTP, "http://10.99.0.1:8080/boot/ipxe/ipxe-arm64.efi", false},
		{"arm64 HTTP absent", BootRequest{Archs: []iana.Arch{19}, VendorClass: "HTTPClient:Arch:00019"}, testBoot, BootNone, "", true},
		{"HTTP class, no option 93", BootRequest{VendorClass: "HTTPClient:Arch:00016"}, testBoot, BootHTTP, "http://10.99.0.1:8080/boot/ipxe/ipxe.efi", false},
		{"retired machine gets nothing to boot", BootRequest{Archs: []iana.Arch{7}, MachineState: "retired"}, testBoot, BootNone, "", false},
		{"retired iPXE gets nothing", BootRequest{IPXE: true, MachineState: "retired"}, testBoot, BootNone, "", false},
		{"iPXE without boot URL refused", BootRequest{IPXE: true}, noURL, BootNone, "", true},
		{"BIOS PXE without boot URL still TFTP", BootRequest{Archs: []iana.Arch{0}}, noURL, BootTFTP, "undionly.kpxe", false},
		{"HTTP boot without boot URL refused", BootRequest{VendorClass: "HTTPClient:Arch:00016"}, noURL, BootNone, "", true},
		{"bad Arch field falls back to BIOS", BootRequest{VendorClass: "PXEClient:Arch:xx"}, testBoot, BootTFTP, "undionly.kpxe", false},
	}
	for _, c := range cases {
		got := DecideBoot(c.r, c.b)
		if got.Kind != c.kind || got.File != c.file || got.Refuse != c.ref {
			t.Errorf("%s: got %+v, want kind=%q file=%q refuse=%v", c.name, got, c.kind, c.file, c.ref)
		}
		if c.ref && got.Reason == "" {
			t.Errorf("%s: a refusal must say why", c.name)
		}
	}
}
