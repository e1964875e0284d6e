// Package pxe serves everything a machine fetches while it network-boots: the iPXE binaries
// over TFTP and HTTP, the generic and per-machine iPXE scripts, the deploy environment's kernel
// and initrd, and artifacts. It never decides what a machine should do: it asks a Planner
// (lifecycle/) and renders the answer.
package pxe

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"slate/assets"
)

// Config is the network-boot part of Slate's configuration.
type Config struct {
	// TFTPListen is the UDP (IPv4) address the TFTP server binds (default "0.0.0.0:69").
	TFTPListen string `yaml:"tftp_listen"`
	// TFTPDir, when set, is a folder whose regular files are served over TFTP too (by their
	// path relative to it), after the embedded iPXE binaries.
	TFTPDir string `yaml:"tftp_dir"`
	// TFTPMaxBlockSize caps the blksize option a client may negotiate (0: only the interface
	// MTU caps it). 1468 fits an Ethernet frame and is what UEFI firmware asks for.
	TFTPMaxBlockSize int `yaml:"tftp_max_block_size"`
	// TFTPTimeout is how long the server waits for one ACK before resending (default 3s).
	TFTPTimeout time.Duration `yaml:"tftp_timeout"`
	// TFTPRetries is how many times a block is sent before the transfer is abandoned (default 5).
	TFTPRetries int `yaml:"tftp_retries"`
	// TFTPMaxTransfers bounds concurrent TFTP transfers; more are refused (default 512).
	TFTPMaxTransfers int `yaml:"tftp_max_transfers"`

	// DataDir is Slate's data folder: the deploy environment is read from
	// <data_dir>/deployenv/{vmlinuz,initrd.gz} and artifacts from <data_dir>/artifacts/.
	DataDir string `yaml:"data_dir"`
	// DeployEnv overrides where vmlinuz and initrd.gz are read from (default
	// <data_dir>/deployenv; `make deploy-env` writes assets/deployenv, and copies there with
	// DEPLOYENV_INSTALL=<dir>).
	DeployEnv string `yaml:"deploy_env_dir"`
	// PublicURL is how machines reach Slate's HTTP server (e.g. http://10.99.0.1:8080). It is
	// put into iPXE scripts and the deploy environment's kernel line. Empty: taken from each
	// request's Host header.
	PublicURL string `yaml:"public_url"`
	// EFIBinary is the x86-64 UEFI iPXE build DHCP offers: "snponly.efi" (default; uses the
	// firmware's network driver, boots faster in the lab) or "ipxe.efi" (iPXE's own drivers).
	EFIBinary string `yaml:"efi_binary"`
	// AgentTokenTTL is how long the per-boot agent token in a deploy script stays valid
	// (default 2h: long enough to boot and finish a task, short enough to die unused).
	AgentTokenTTL time.Duration `yaml:"agent_token_ttl"`
	// KernelArgs are appended to the deploy environment's kernel line (default "console=ttyS0").
	KernelArgs string `yaml:"kernel_args"`
}

// Defaults fills unset fields.
func (c Config) withDefaults() Config {
	if c.TFTPListen == "" {
		c.TFTPListen = "0.0.0.0:69"
	}
	if c.TFTPTimeout <= 0 {
		c.TFTPTimeout = 3 * time.Second
	}
	if c.TFTPRetries <= 0 {
		c.TFTPRetries = 5
	}
	if c.TFTPMaxTransfers <= 0 {
		c.TFTPMaxTransfers = 512
	}
	if c.EFIBinary == "" {
		c.EFIBinary = assets.SNPOnlyEFI
	}
	if c.AgentTokenTTL <= 0 {
		c.AgentTokenTTL = 2 * time.Hour
	}
	if c.KernelArgs == "" {
		c.KernelArgs = "console=ttyS0"
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return c
}

// Validate reports the first configuration mistake, saying which field and what to write.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.EFIBinary != assets.IPXEEFI && c.EFIBinary != assets.SNPOnlyEFI {
		return fmt.Errorf("pxe config efi_binary: %q is not an x86-64 UEFI iPXE build: use %q or %q", c.EFIBinary, assets.SNPOnlyEFI, assets.IPXEEFI)
	}
	if c.TFTPMaxBlockSize != 0 && (c.TFTPMaxBlockSize < 512 || c.TFTPMaxBlockSize > 65464) {
		return fmt.Errorf("pxe config tftp_max_block_size: %d is outside 512..65464 (RFC 2348); 0 means no cap", c.TFTPMaxBlockSize)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return fmt.Errorf("pxe config public_url: %q is not an absolute http(s) URL like http://10.0.0.1:8080", c.PublicURL)
		}
		if !safeScriptValue(c.PublicURL) {
			return fmt.Errorf("pxe config public_url: %q has characters iPXE scripts cannot carry safely (spaces, $, quotes, &, |, #)", c.PublicURL)
		}
	}
	for _, a := range strings.Fields(c.KernelArgs) {
		if !safeScriptValue(a) {
			return fmt.Errorf("pxe config kernel_args: %q has characters iPXE scripts cannot carry safely ($, quotes, &, |, #)", a)
		}
	}
	return nil
}

// BootFiles names what DHCP should offer each kind of client, for the DHCP side to use.
type BootFiles struct {
	BIOS      string // TFTP file name for BIOS PXE (undionly.kpxe)
	UEFI      string // TFTP file name for x86-64 UEFI PXE (EFIBinary)
	UEFIArm64 string // TFTP file name for arm64 UEFI PXE (only served when embedded)
	// HTTPBoot is the path (under the public URL) a UEFI HTTP-boot client is given.
	HTTPBoot string
	// Script is the path of the generic iPXE script an iPXE client is given (it chains to
	// the machine's own script).
	Script string
}

// BootFiles returns the names and paths the DHCP server should hand out.
func (c Config) BootFiles() BootFiles {
	c = c.withDefaults()
	return BootFiles{
		BIOS:      assets.UndionlyKPXE,
		UEFI:      c.EFIBinary,
		UEFIArm64: assets.IPXEArm64EFI,
		HTTPBoot:  "/boot/ipxe/" + c.EFIBinary,
		Script:    "/boot/auto.ipxe",
	}
}
