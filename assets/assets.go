// Package assets holds files embedded into the Slate binary at build time. The iPXE binaries
// come from Debian's ipxe package through `make assets` (see mk/ipxe.mk); they are not
// committed, so a build without them works but serves none (MissingIPXE says which).
package assets

import (
	"embed"
	"fmt"
	"io/fs"
)

// ipxeFS is read-only by construction (embed.FS), so holding it at package level keeps no
// mutable state.
//
//go:embed ipxe
var ipxeFS embed.FS

// IPXE binary names, as machines ask for them over TFTP and HTTP.
const (
	UndionlyKPXE = "undionly.kpxe"  // BIOS PXE → iPXE chaining through the NIC's UNDI driver
	IPXEEFI      = "ipxe.efi"       // x86-64 UEFI, iPXE's own NIC drivers
	SNPOnlyEFI   = "snponly.efi"    // x86-64 UEFI, through the firmware's SNP driver
	IPXEArm64EFI = "ipxe-arm64.efi" // arm64 UEFI, only where the Debian package ships one
)

// IPXENames lists every iPXE binary Slate knows; the first three are required, arm64 optional.
func IPXENames() []string { return []string{UndionlyKPXE, IPXEEFI, SNPOnlyEFI, IPXEArm64EFI} }

// RequiredIPXE lists the binaries a Slate build must embed to netboot x86-64 machines.
func RequiredIPXE() []string { return []string{UndionlyKPXE, IPXEEFI, SNPOnlyEFI} }

// IPXE returns the embedded iPXE binaries, by bare name (e.g. "ipxe.efi"). Only the names in
// IPXENames are meant to be served; the folder's README is not.
func IPXE() fs.FS {
	sub, err := fs.Sub(ipxeFS, "ipxe")
	if err != nil {
		// fs.Sub only fails on an invalid path, and "ipxe" is a constant valid one.
		panic(fmt.Sprintf("assets: sub-FS ipxe: %v", err))
	}
	return sub
}

// MissingIPXE returns the required binaries this build lacks (nil when complete).
func MissingIPXE() []string {
	var out []string
	for _, n := range RequiredIPXE() {
		if _, err := fs.Stat(IPXE(), n); err != nil {
			out = append(out, n)
		}
	}
	return out
}

// ErrIPXEMissing explains how to get a binary this build lacks.
func ErrIPXEMissing(name string) error {
	return fmt.Errorf("iPXE binary %s is not embedded in this Slate build: run `make assets` "+
		"(copies Debian's ipxe package files from /usr/lib/ipxe into assets/ipxe/; `make deps` installs the package) and rebuild", name)
}
