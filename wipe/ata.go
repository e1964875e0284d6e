package wipe

import (
	"encoding/binary"
	"fmt"
)

// ATACommand is one ATA command carried by SCSI ATA PASS-THROUGH(16) (SAT-4 §12.2.2).
type ATACommand struct {
	Protocol uint8 // 3 non-data, 4 PIO data-in, 5 PIO data-out
	Extend   bool  // 48-bit command
	CkCond   bool  // ask for the ATA registers back in the sense data
	TDirIn   bool
	BytBlok  bool
	TLength  uint8 // 2: transfer length is in the Count field
	Features uint16
	Count    uint16
	LBA      uint64 // 48 bits
	Device   uint8
	Command  uint8
}

const (
	ataProtoNonData = 3
	ataProtoPIOIn   = 4
	ataProtoPIOOut  = 5

	ataCmdIdentify            = 0xEC
	ataCmdSecuritySetPassword = 0xF1
	ataCmdSecurityUnlock      = 0xF2
	ataCmdSecurityErasePrep   = 0xF3
	ataCmdSecurityEraseUnit   = 0xF4
	ataCmdSecurityDisable     = 0xF6
	ataCmdSanitize            = 0xB4

	// SANITIZE DEVICE feature codes (ACS-3 §7.33) and the LBA signatures each one requires.
	ataSanitizeStatus    = 0x0000
	ataSanitizeCrypto    = 0x0011
	ataSanitizeBlock     = 0x0012
	ataSanitizeOverwrite = 0x0014
	ataSigCrypto         = 0x43727970   // "Cryp"
	ataSigBlock          = 0x426B4572   // "BkEr"
	ataSigOverwrite      = 0x4F57 << 32 // "OW" in LBA 47:32, pattern in 31:0
	ataIdentifyLen       = 512
	ataPasswordBlockLen  = 512
	ataMaxPasswordLength = 32
)

// CDB is the 16-byte ATA PASS-THROUGH(16) CDB, laid out as SAT-4 Table 174 (and as hdparm
// builds it): the LBA bytes alternate between the "previous" (48-bit) and current registers.
func (a ATACommand) CDB() []byte {
	c := make([]byte, 16)
	c[0] = 0x85
	c[1] = a.Protocol << 1
	if a.Extend {
		c[1] |= 1
	}
	if a.CkCond {
		c[2] |= 1 << 5
	}
	if a.TDirIn {
		c[2] |= 1 << 3
	}
	if a.BytBlok {
		c[2] |= 1 << 2
	}
	c[2] |= a.TLength & 0x3
	c[3], c[4] = byte(a.Features>>8), byte(a.Features)
	c[5], c[6] = byte(a.Count>>8), byte(a.Count)
	c[7], c[8] = byte(a.LBA>>24), byte(a.LBA)
	c[9], c[10] = byte(a.LBA>>32), byte(a.LBA>>8)
	c[11], c[12] = byte(a.LBA>>40), byte(a.LBA>>16)
	c[13] = a.Device
	c[14] = a.Command
	return c
}

// ATAIdentify is IDENTIFY DEVICE (one 512-byte block in).
func ATAIdentify() ATACommand {
	return ATACommand{Protocol: ataProtoPIOIn, TDirIn: true, BytBlok: true, TLength: 2, Count: 1, Device: 0x40, Command: ataCmdIdentify}
}

func ataSecurityOut(cmd uint8) ATACommand {
	return ATACommand{Protocol: ataProtoPIOOut, BytBlok: true, TLength: 2, Count: 1, Device: 0x40, Command: cmd}
}

// ATASecuritySetPassword, ATASecurityEraseUnit, ATASecurityDisable send a 512-byte password
// block (ATASecurityPasswordBlock) to the drive.
func ATASecuritySetPassword() ATACommand { return ataSecurityOut(ataCmdSecuritySetPassword) }
func ATASecurityEraseUnit() ATACommand   { return ataSecurityOut(ataCmdSecurityEraseUnit) }
func ATASecurityDisable() ATACommand     { return ataSecurityOut(ataCmdSecurityDisable) }
func ATASecurityUnlock() ATACommand      { return ataSecurityOut(ataCmdSecurityUnlock) }

// ATASecurityErasePrepare must immediately precede SECURITY ERASE UNIT.
func ATASecurityErasePrepare() ATACommand {
	return ATACommand{Protocol: ataProtoNonData, CkCond: true, Device: 0x40, Command: ataCmdSecurityErasePrep}
}

// ATASecurityPasswordBlock is the data of the security commands: word 0 control (bit 0 master
// password, bit 1 enhanced erase), words 1-16 the password.
func ATASecurityPasswordBlock(password string, master, enhanced bool) ([]byte, error) {
	if len(password) == 0 || len(password) > ataMaxPasswordLength {
		return nil, fmt.Errorf("ata security password must be 1-%d bytes, got %d", ataMaxPasswordLength, len(password))
	}
	b := make([]byte, ataPasswordBlockLen)
	var ctl uint16
	if master {
		ctl |= 1
	}
	if enhanced {
		ctl |= 2
	}
	binary.LittleEndian.PutUint16(b[0:2], ctl)
	copy(b[2:34], password)
	return b, nil
}

// ATASanitizeKind names the SANITIZE DEVICE sub-commands.
type ATASanitizeKind int

const (
	ATASanitizeStatusExt ATASanitizeKind = iota
	ATASanitizeCryptoScramble
	ATASanitizeBlockErase
	ATASanitizeOverwrite
)

// ATASanitize builds SANITIZE DEVICE. count is OVERWRITE EXT's pass count (0 = 16 passes),
// pattern its 32-bit pattern; both are ignored by the other sub-commands.
func ATASanitize(kind ATASanitizeKind, count uint16, pattern uint32) ATACommand {
	c := ATACommand{Protocol: ataProtoNonData, Extend: true, CkCond: true, Device: 0x40, Command: ataCmdSanitize}
	switch kind {
	case ATASanitizeCryptoScramble:
		c.Features, c.LBA = ataSanitizeCrypto, ataSigCrypto
	case ATASanitizeBlockErase:
		c.Features, c.LBA = ataSanitizeBlock, ataSigBlock
	case ATASanitizeOverwrite:
		c.Features, c.LBA, c.Count = ataSanitizeOverwrite, ataSigOverwrite|uint64(pattern), count
	default:
		c.Features = ataSanitizeStatus
	}
	return c
}

// ATAIdentity is what Slate needs from IDENTIFY DEVICE.
type ATAIdentity struct {
	Serial     string `json:"serial"`
	Model      string `json:"model"`
	Firmware   string `json:"firmware"`
	Removable  bool   `json:"removable"`
	Sectors    uint64 `json:"sectors"`
	SectorSize uint32 `json:"sector_size"`
	// RotationRate: 1 = solid state, 0 = not reported, else RPM.
	RotationRate uint16 `json:"rotation_rate"`

	SecuritySupported bool `json:"security_supported"`
	SecurityEnabled   bool `json:"security_enabled"`
	SecurityLocked    bool `json:"security_locked"`
	SecurityFrozen    bool `json:"security_frozen"`
	SecurityCountExp  bool `json:"security_count_expired"`
	EnhancedErase     bool `json:"enhanced_erase"`
	// Erase time estimates in minutes (0: not given).
	EraseMinutes         int `json:"erase_minutes"`
	EnhancedEraseMinutes int `json:"enhanced_erase_minutes"`

	SanitizeSupported bool `json:"sanitize_supported"`
	SanitizeCrypto    bool `json:"sanitize_crypto"`
	SanitizeOverwrite bool `json:"sanitize_overwrite"`
	SanitizeBlock     bool `json:"sanitize_block"`

	HPASupported bool `json:"hpa_supported"`
	HPAEnabled   bool `json:"hpa_enabled"`
	DCOSupported bool `json:"dco_supported"`
}

// ParseATAIdentify decodes IDENTIFY DEVICE data (ACS-3 Table 45).
func ParseATAIdentify(b []byte) (ATAIdentity, error) {
	if len(b) < ataIdentifyLen {
		return ATAIdentity{}, fmt.Errorf("ata identify: %d bytes, want %d", len(b), ataIdentifyLen)
	}
	w := func(i int) uint16 { return binary.LittleEndian.Uint16(b[2*i:]) }
	// Word 255: when its low byte is A5h the high byte makes the whole block sum to 0.
	if w(255)&0xFF == 0xA5 {
		var sum byte
		for _, x := range b[:ataIdentifyLen] {
			sum += x
		}
		if sum != 0 {
			return ATAIdentity{}, fmt.Errorf("ata identify: checksum mismatch (data corrupted in transfer)")
		}
	}
	if w(0)&0x8000 != 0 {
		return ATAIdentity{}, fmt.Errorf("ata identify: word 0 says this is not an ATA device (ATAPI?)")
	}
	id := ATAIdentity{
		Serial:       ataWordString(b[20:40]),
		Firmware:     ataWordString(b[46:54]),
		Model:        ataWordString(b[54:94]),
		Removable:    w(0)&(1<<7) != 0,
		RotationRate: w(217),
		SectorSize:   512,
	}
	validWord := func(i int) bool { v := w(i); return v != 0 && v != 0xFFFF && v&0xC000 == 0x4000 }
	if validWord(83) && w(83)&(1<<10) != 0 {
		id.Sectors = uint64(w(100)) | uint64(w(101))<<16 | uint64(w(102))<<32 | uint64(w(103))<<48
	} else {
		id.Sectors = uint64(w(60)) | uint64(w(61))<<16
	}
	if validWord(106) && w(106)&(1<<12) != 0 {
		words := uint32(w(117)) | uint32(w(118))<<16
		if words >= 256 && words <= 1<<15 {
			id.SectorSize = words * 2
		}
	}
	if validWord(82) || w(82) != 0 && w(82) != 0xFFFF {
		id.SecuritySupported = w(82)&(1<<1) != 0
		id.HPASupported = w(82)&(1<<10) != 0
	}
	if validWord(83) {
		id.DCOSupported = w(83)&(1<<11) != 0
	}
	if w(85) != 0xFFFF {
		id.HPAEnabled = w(85)&(1<<10) != 0
	}
	s := w(128)
	if s&1 != 0 {
		id.SecuritySupported = true
		id.SecurityEnabled = s&(1<<1) != 0
		id.SecurityLocked = s&(1<<2) != 0
		id.SecurityFrozen = s&(1<<3) != 0
		id.SecurityCountExp = s&(1<<4) != 0
		id.EnhancedErase = s&(1<<5) != 0
	}
	id.EraseMinutes = ataEraseMinutes(w(89))
	id.EnhancedEraseMinutes = ataEraseMinutes(w(90))
	san := w(59)
	id.SanitizeSupported = san&(1<<12) != 0
	if id.SanitizeSupported {
		id.SanitizeCrypto = san&(1<<13) != 0
		id.SanitizeOverwrite = san&(1<<14) != 0
		id.SanitizeBlock = san&(1<<15) != 0
	}
	return id, nil
}

// ataEraseMinutes decodes words 89/90: bit 15 set = extended format (bits 14:0 × 2 minutes),
// else bits 7:0 × 2 minutes; 0 = not specified.
func ataEraseMinutes(v uint16) int {
	if v&0x8000 != 0 {
		return int(v&0x7FFF) * 2
	}
	return int(v&0xFF) * 2
}

// ataWordString decodes an IDENTIFY string: two characters per word, high byte first.
func ataWordString(b []byte) string {
	s := make([]byte, len(b))
	for i := 0; i+1 < len(b); i += 2 {
		s[i], s[i+1] = b[i+1], b[i]
	}
	return ataString(s)
}

// ATAResult is the ATA register image a SAT layer returns in the ATA Status Return sense
// descriptor (SAT-4 §12.2.5) when CK_COND was set or the command failed.
type ATAResult struct {
	Error  uint8
	Status uint8
	Count  uint16
	LBA    uint64
}

// ParseATASense finds the ATA Status Return descriptor in descriptor-format sense data.
func ParseATASense(sense []byte) (ATAResult, bool) {
	if len(sense) < 8 || sense[0]&0x7F != 0x72 && sense[0]&0x7F != 0x73 {
		return ATAResult{}, false
	}
	end := 8 + int(sense[7])
	if end > len(sense) {
		end = len(sense)
	}
	for i := 8; i+2 <= end; {
		code, l := sense[i], int(sense[i+1])
		if code == 0x09 && l >= 12 && i+14 <= end {
			d := sense[i : i+14]
			r := ATAResult{Error: d[3], Status: d[13]}
			r.Count = uint16(d[5])
			r.LBA = uint64(d[7]) | uint64(d[9])<<8 | uint64(d[11])<<16
			if d[2]&1 != 0 { // EXTEND: the "previous" bytes are valid
				r.Count |= uint16(d[4]) << 8
				r.LBA |= uint64(d[6])<<24 | uint64(d[8])<<32 | uint64(d[10])<<40
			}
			return r, true
		}
		i += 2 + l
	}
	return ATAResult{}, false
}

// ATASanitizeState decodes SANITIZE STATUS EXT's output registers (ACS-3 Table 138).
type ATASanitizeState struct {
	Completed  bool
	InProgress bool
	Frozen     bool
	Progress   uint16 // 1/65536 units
	Failed     bool
}

func ParseATASanitizeStatus(r ATAResult) ATASanitizeState {
	return ATASanitizeState{
		Completed:  r.Count&(1<<15) != 0,
		InProgress: r.Count&(1<<14) != 0,
		Frozen:     r.Count&(1<<13) != 0,
		Progress:   uint16(r.LBA),
		Failed:     r.Status&1 != 0,
	}
}
