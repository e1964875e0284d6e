package dhcp

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// BootRequest is what the boot decision looks at, taken from a DHCP request and the inventory.
type BootRequest struct {
	// Archs are option 93's processor architecture codes (RFC 4578, IANA registry).
	Archs []iana.Arch
	// VendorClass is option 60, e.g. "PXEClient:Arch:00007:UNDI:003016" or "HTTPClient:Arch:00016".
	VendorClass string
	// IPXE is set when the client already runs iPXE (option 175 present or user class "iPXE").
	IPXE bool
	// MachineState is the machine's lifecycle state ("" when unknown).
	MachineState string
}

// BootKind says how the boot file is fetched.
type BootKind string

const (
	BootNone BootKind = ""     // not a network-boot request: address only
	BootTFTP BootKind = "tftp" // file name over TFTP from next-server
	BootHTTP BootKind = "http" // full URL (UEFI HTTP boot, or iPXE's script)
)

// BootAnswer is the boot decision.
type BootAnswer struct {
	Kind BootKind
	// File is the TFTP file name or the full URL.
	File string
	// VendorClass is what option 60 of the reply must say: "PXEClient", "HTTPClient" (UEFI
	// HTTP boot requires it) or empty.
	VendorClass string
	// Refuse means: this is a network-boot client Slate cannot serve; send it NO offer, so it
	// can try another boot path instead of booting nothing. Reason says why (logged).
	Refuse bool
	Reason string
	// Arch is the architecture the decision was made for, for logs and discovery.
	Arch string
}

// retiredState gets no boot options: a retired machine is gone from Slate's care.
const retiredState = "retired"

// isHTTPArch reports the "boot from HTTP" codes of the IANA registry.
func isHTTPArch(a iana.Arch) bool {
	switch a {
	case iana.EFI_X86_HTTP, iana.EFI_X86_64_HTTP, iana.EFI_BC_HTTP, iana.EFI_ARM32_HTTP, iana.EFI_ARM64_HTTP,
		iana.INTEL_X86PC_HTTP, iana.UBOOT_ARM32_HTTP, iana.UBOOT_ARM64_HTTP, iana.EFI_RISCV32_HTTP,
		iana.EFI_RISCV64_HTTP, iana.EFI_RISCV128_HTTP, archLoongArch32HTTP, archLoongArch64HTTP:
		return true
	}
	return false
}

// Codes IANA assigned after the library's table was written.
const (
	archLoongArch32     iana.Arch = 37
	archLoongArch32HTTP iana.Arch = 38
	archLoongArch64     iana.Arch = 39
	archLoongArch64HTTP iana.Arch = 40
	archARMRPIBoot      iana.Arch = 41
)

// DecideBoot is the boot decision: a pure function of the request, the machine's state and the
// boot configuration. It never touches the network or the store.
func DecideBoot(r BootRequest, b Boot) BootAnswer {
	arch, haveArch := r.arch()
	netboot := haveArch || strings.HasPrefix(r.VendorClass, "PXEClient") ||
		strings.HasPrefix(r.VendorClass, "HTTPClient") || r.IPXE
	if !netboot {
		return BootAnswer{Kind: BootNone}
	}
	a := BootAnswer{Arch: archName(arch, haveArch)}
	if r.MachineState == retiredState {
		// An address (authoritative mode) but nothing to boot: the firmware moves on to its
		// next boot device.
		a.Reason = "machine is retired: no boot options"
		return a
	}
	if b.URL == "" && (r.IPXE || strings.HasPrefix(r.VendorClass, "HTTPClient") || isHTTPArch(arch)) {
		a.Refuse, a.Reason = true, "boot.boot_url is not configured: cannot give an HTTP boot URL"
		return a
	}
	// A client already running iPXE gets its script, never the binary again: that loops.
	if r.IPXE {
		a.Kind, a.File = BootHTTP, b.URL+b.ScriptPath
		return a
	}
	http := strings.HasPrefix(r.VendorClass, "HTTPClient") || isHTTPArch(arch)
	if !haveArch {
		// PXE firmware that omits option 93 and the Arch field is legacy BIOS PXE.
		arch, haveArch = iana.INTEL_X86PC, true
		a.Arch = archName(arch, true)
	}
	if http {
		a.VendorClass = "HTTPClient"
		switch arch {
		case iana.EFI_X86_64_HTTP, iana.EFI_BC_HTTP:
			a.Kind, a.File = BootHTTP, b.URL+b.BinaryPath+"/"+b.UEFIFile
		case iana.EFI_ARM64_HTTP:
			if b.ARM64File == "" {
				a.VendorClass = ""
				a.Refuse, a.Reason = true, "ARM64 UEFI HTTP boot: no ARM64 iPXE binary configured (boot.arm64_file)"
				return a
			}
			a.Kind, a.File = BootHTTP, b.URL+b.BinaryPath+"/"+b.ARM64File
		default:
			a.VendorClass = ""
			a.Refuse, a.Reason = true, fmt.Sprintf("HTTP boot for architecture %s is not supported", a.Arch)
		}
		return a
	}
	a.VendorClass = "PXEClient"
	switch arch {
	case iana.INTEL_X86PC:
		a.Kind, a.File = BootTFTP, b.BIOSFile
	case iana.EFI_X86_64, iana.EFI_BC:
		// EFI_BC (9) is what many x64 UEFI firmwares send, OVMF included.
		a.Kind, a.File = BootTFTP, b.UEFIFile
	case iana.EFI_ARM64:
		if b.ARM64File == "" {
			a.VendorClass = ""
			a.Refuse, a.Reason = true, "ARM64 UEFI PXE: no ARM64 iPXE binary configured (boot.arm64_file)"
			return a
		}
		a.Kind, a.File = BootTFTP, b.ARM64File
	default:
		a.VendorClass = ""
		a.Refuse, a.Reason = true, fmt.Sprintf("PXE boot for architecture %s is not supported", a.Arch)
	}
	return a
}

// arch picks the architecture: option 93's first code, else the vendor class's Arch field.
func (r BootRequest) arch() (iana.Arch, bool) {
	if len(r.Archs) > 0 {
		return r.Archs[0], true
	}
	// "PXEClient:Arch:00007:UNDI:003016": the Arch field is decimal.
	parts := strings.Split(r.VendorClass, ":")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "Arch" {
			v, err := strconv.ParseUint(parts[i+1], 10, 16)
			if err == nil {
				return iana.Arch(v), true
			}
		}
	}
	return 0, false
}

func archName(a iana.Arch, ok bool) string {
	if !ok {
		return "unknown"
	}
	switch a {
	case archLoongArch32:
		return "LoongArch 32-bit UEFI"
	case archLoongArch32HTTP:
		return "LoongArch 32-bit UEFI boot from HTTP"
	case archLoongArch64:
		return "LoongArch 64-bit UEFI"
	case archLoongArch64HTTP:
		return "LoongArch 64-bit UEFI boot from HTTP"
	case archARMRPIBoot:
		return "ARM rpiboot"
	}
	return fmt.Sprintf("%s (%d)", a.String(), uint16(a))
}

// bootRequestFrom extracts the boot-relevant parts of a packet.
func bootRequestFrom(m *dhcpv4.DHCPv4, state string) BootRequest {
	r := BootRequest{VendorClass: m.ClassIdentifier(), MachineState: state}
	if v := m.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(v) >= 2 {
		for i := 0; i+1 < len(v); i += 2 {
			r.Archs = append(r.Archs, iana.Arch(uint16(v[i])<<8|uint16(v[i+1])))
		}
	}
	if m.Options.Has(dhcpv4.OptionEtherboot) {
		r.IPXE = true
	}
	if uc := m.Options.Get(dhcpv4.OptionUserClassInformation); len(uc) > 0 {
		// iPXE sends the user class raw ("iPXE"), not in RFC 3004 form; accept both.
		if string(uc) == "iPXE" || strings.Contains(string(uc), "iPXE") {
			r.IPXE = true
		}
	}
	return r
}
