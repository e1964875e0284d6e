package wipe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// NVMeAdminCmd is Linux's struct nvme_passthru_cmd (include/uapi/linux/nvme_ioctl.h), the
// argument of NVME_IOCTL_ADMIN_CMD. The layout is the kernel's: 72 bytes, little endian,
// Metadata and Addr being user-space pointers filled in when the command is sent.
type NVMeAdminCmd struct {
	Opcode      uint8
	Flags       uint8
	Rsvd1       uint16
	NSID        uint32
	CDW2        uint32
	CDW3        uint32
	Metadata    uint64
	Addr        uint64
	MetadataLen uint32
	DataLen     uint32
	CDW10       uint32
	CDW11       uint32
	CDW12       uint32
	CDW13       uint32
	CDW14       uint32
	CDW15       uint32
	TimeoutMs   uint32
	Result      uint32
}

// nvmeIoctlAdminCmd is _IOWR('N', 0x41, struct nvme_admin_cmd).
const nvmeIoctlAdminCmd = 0xC0484E41

// NVMe admin opcodes and constants used here (NVM Express Base Specification 2.0).
const (
	nvmeOpGetLogPage = 0x02
	nvmeOpIdentify   = 0x06
	nvmeOpFormatNVM  = 0x80
	nvmeOpSanitize   = 0x84

	nvmeLogSanitizeStatus = 0x81
	nvmeNSIDAll           = 0xFFFFFFFF
	nvmeIdentifyLen       = 4096
	nvmeSanitizeLogLen    = 512
)

// NVMeSanitizeAction is the SANACT field of the Sanitize command.
type NVMeSanitizeAction uint8

const (
	NVMeSanitizeExitFailure NVMeSanitizeAction = 1
	NVMeSanitizeBlockErase  NVMeSanitizeAction = 2
	NVMeSanitizeOverwrite   NVMeSanitizeAction = 3
	NVMeSanitizeCryptoErase NVMeSanitizeAction = 4
)

// Bytes is the command as the kernel reads it, pointers zeroed (they differ per run): what the
// byte-exact tests compare with nvme-cli's capture.
func (c NVMeAdminCmd) Bytes() []byte {
	c.Metadata, c.Addr = 0, 0
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, c) // fixed-size struct: cannot fail
	return b.Bytes()
}

// NVMeIdentifyController builds Identify (CNS 01h), as `nvme id-ctrl` sends it.
func NVMeIdentifyController() NVMeAdminCmd {
	return NVMeAdminCmd{Opcode: nvmeOpIdentify, DataLen: nvmeIdentifyLen, CDW10: 1}
}

// NVMeIdentifyNamespace builds Identify (CNS 00h) for one namespace, as `nvme id-ns` sends it.
func NVMeIdentifyNamespace(nsid uint32) NVMeAdminCmd {
	return NVMeAdminCmd{Opcode: nvmeOpIdentify, NSID: nsid, DataLen: nvmeIdentifyLen, CDW10: 0}
}

// NVMeSanitize builds the Sanitize command (applies to the whole NVM subsystem, NSID 0).
// ause: allow unrestricted sanitize exit; owPass/pattern only matter for the overwrite action.
func NVMeSanitize(action NVMeSanitizeAction, ause bool, owPass uint8, pattern uint32) NVMeAdminCmd {
	cdw10 := uint32(action) & 0x7
	if ause {
		cdw10 |= 1 << 3
	}
	if action == NVMeSanitizeOverwrite {
		cdw10 |= uint32(owPass&0xF) << 4
	}
	c := NVMeAdminCmd{Opcode: nvmeOpSanitize, CDW10: cdw10}
	if action == NVMeSanitizeOverwrite {
		c.CDW11 = pattern
	}
	return c
}

// NVMeFormat builds Format NVM for one namespace keeping its LBA format. ses: 1 = user data
// erase, 2 = cryptographic erase. timeoutMs 0 lets the kernel use its admin timeout (nvme-cli's
// default); Slate passes a long one because a user-data erase of a large drive takes minutes.
func NVMeFormat(nsid uint32, lbaf uint8, ses uint8, timeoutMs uint32) NVMeAdminCmd {
	cdw10 := uint32(lbaf&0xF) | uint32(ses&0x7)<<9 | uint32(lbaf>>4&0x3)<<12
	return NVMeAdminCmd{Opcode: nvmeOpFormatNVM, NSID: nsid, CDW10: cdw10, TimeoutMs: timeoutMs}
}

// NVMeSanitizeStatusLog builds Get Log Page for the Sanitize Status log (81h), 512 bytes.
func NVMeSanitizeStatusLog() NVMeAdminCmd {
	numd := uint32(nvmeSanitizeLogLen/4 - 1)
	return NVMeAdminCmd{Opcode: nvmeOpGetLogPage, NSID: nvmeNSIDAll, DataLen: nvmeSanitizeLogLen,
		CDW10: nvmeLogSanitizeStatus | (numd&0xFFFF)<<16, CDW11: numd >> 16}
}

// NVMeController is what Slate needs from Identify Controller.
type NVMeController struct {
	Serial   string `json:"serial"`
	Model    string `json:"model"`
	Firmware string `json:"firmware"`
	// OACS bit 1: Format NVM supported.
	FormatSupported bool `json:"format_supported"`
	// FNA bit 0: format applies to all namespaces; bit 1: secure erase applies to all
	// namespaces; bit 2: cryptographic erase supported as part of Format.
	FormatAllNamespaces bool `json:"format_all_namespaces"`
	CryptoFormat        bool `json:"crypto_format"`
	// SANICAP bits 0-2: crypto erase, block erase, overwrite.
	SanitizeCrypto    bool   `json:"sanitize_crypto"`
	SanitizeBlock     bool   `json:"sanitize_block"`
	SanitizeOverwrite bool   `json:"sanitize_overwrite"`
	OACS              uint16 `json:"oacs"`
	FNA               uint8  `json:"fna"`
	SANICAP           uint32 `json:"sanicap"`
	Namespaces        uint32 `json:"namespaces"`
}

// ParseNVMeIdentifyController decodes a 4096-byte Identify Controller data structure.
func ParseNVMeIdentifyController(b []byte) (NVMeController, error) {
	if len(b) < nvmeIdentifyLen {
		return NVMeController{}, fmt.Errorf("nvme identify controller: %d bytes, want %d", len(b), nvmeIdentifyLen)
	}
	le := binary.LittleEndian
	c := NVMeController{
		Serial:     ataString(b[4:24]),
		Model:      ataString(b[24:64]),
		Firmware:   ataString(b[64:72]),
		OACS:       le.Uint16(b[256:258]),
		SANICAP:    le.Uint32(b[328:332]),
		Namespaces: le.Uint32(b[516:520]),
		FNA:        b[524],
	}
	c.FormatSupported = c.OACS&(1<<1) != 0
	c.FormatAllNamespaces = c.FNA&1 != 0
	c.CryptoFormat = c.FNA&(1<<2) != 0
	c.SanitizeCrypto = c.SANICAP&1 != 0
	c.SanitizeBlock = c.SANICAP&2 != 0
	c.SanitizeOverwrite = c.SANICAP&4 != 0
	return c, nil
}

// NVMeNamespace is what Slate needs from Identify Namespace.
type NVMeNamespace struct {
	SizeBlocks uint64 `json:"size_blocks"`
	LBAFormat  uint8  `json:"lba_format"`
	BlockSize  uint32 `json:"block_size"`
}

// ParseNVMeIdentifyNamespace decodes a 4096-byte Identify Namespace data structure.
func ParseNVMeIdentifyNamespace(b []byte) (NVMeNamespace, error) {
	if len(b) < nvmeIdentifyLen {
		return NVMeNamespace{}, fmt.Errorf("nvme identify namespace: %d bytes, want %d", len(b), nvmeIdentifyLen)
	}
	le := binary.LittleEndian
	flbas := b[26]
	nlbaf := int(b[25]) + 1
	idx := int(flbas&0xF) | int(flbas>>5&0x3)<<4
	if idx >= nlbaf || idx >= 64 {
		return NVMeNamespace{}, fmt.Errorf("nvme identify namespace: current LBA format %d beyond the %d formats listed", idx, nlbaf)
	}
	lbads := b[128+4*idx+2]
	if lbads < 9 || lbads > 20 {
		return NVMeNamespace{}, fmt.Errorf("nvme identify namespace: LBA data size 2^%d is not plausible", lbads)
	}
	return NVMeNamespace{SizeBlocks: le.Uint64(b[0:8]), LBAFormat: uint8(idx), BlockSize: 1 << lbads}, nil
}

// NVMeSanitizeStatus is the Sanitize Status log page.
type NVMeSanitizeStatus struct {
	// Progress of the running sanitize, in 1/65536 units.
	Progress uint16 `json:"progress"`
	// Status: 0 never sanitized, 1 completed, 2 in progress, 3 failed, 4 completed without
	// deallocation.
	Status       uint8  `json:"status"`
	GlobalErased bool   `json:"global_erased"`
	CDW10        uint32 `json:"cdw10"`
	// Estimated seconds for overwrite, block erase, crypto erase (0xFFFFFFFF: unknown).
	EstOverwrite uint32 `json:"est_overwrite_s"`
	EstBlock     uint32 `json:"est_block_s"`
	EstCrypto    uint32 `json:"est_crypto_s"`
}

const (
	NVMeSanitizeNever      = 0
	NVMeSanitizeCompleted  = 1
	NVMeSanitizeInProgress = 2
	NVMeSanitizeFailed     = 3
	NVMeSanitizeNoDealloc  = 4
)

// ParseNVMeSanitizeStatus decodes the Sanitize Status log page (at least 20 bytes).
func ParseNVMeSanitizeStatus(b []byte) (NVMeSanitizeStatus, error) {
	if len(b) < 20 {
		return NVMeSanitizeStatus{}, fmt.Errorf("nvme sanitize status log: %d bytes, want at least 20", len(b))
	}
	le := binary.LittleEndian
	sstat := le.Uint16(b[2:4])
	return NVMeSanitizeStatus{
		Progress:     le.Uint16(b[0:2]),
		Status:       uint8(sstat & 0x7),
		GlobalErased: sstat&(1<<8) != 0,
		CDW10:        le.Uint32(b[4:8]),
		EstOverwrite: le.Uint32(b[8:12]),
		EstBlock:     le.Uint32(b[12:16]),
		EstCrypto:    le.Uint32(b[16:20]),
	}, nil
}

// ataString trims an ASCII identify field (space padded; NVMe) and drops non-printables so a
// garbled drive cannot inject control characters into logs or certificates.
func ataString(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7F {
			s.WriteByte(c)
		}
	}
	return strings.TrimSpace(s.String())
}
