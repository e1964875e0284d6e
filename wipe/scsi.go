package wipe

import (
	"encoding/binary"
	"fmt"
)

// SCSISanitizeAction is the SANITIZE service action (SBC-4 §5.30).
type SCSISanitizeAction uint8

const (
	SCSISanitizeOverwrite   SCSISanitizeAction = 0x01
	SCSISanitizeBlockErase  SCSISanitizeAction = 0x02
	SCSISanitizeCryptoErase SCSISanitizeAction = 0x03
	SCSISanitizeExitFailure SCSISanitizeAction = 0x1F

	scsiOpSanitize    = 0x48
	scsiOpInquiry     = 0x12
	scsiOpRSOC        = 0xA3
	scsiOpRequestSens = 0x03
	scsiRSOCAllocLen  = 8192
)

// SCSISanitizeCDB builds SANITIZE(10). immed returns before the sanitize finishes (progress is
// then read with REQUEST SENSE); paramLen is the parameter list length (overwrite only).
func SCSISanitizeCDB(sa SCSISanitizeAction, immed, ause bool, paramLen uint16) []byte {
	c := make([]byte, 10)
	c[0] = scsiOpSanitize
	c[1] = byte(sa) & 0x1F
	if immed {
		c[1] |= 0x80
	}
	if ause {
		c[1] |= 0x20
	}
	binary.BigEndian.PutUint16(c[7:9], paramLen)
	return c
}

// SCSISanitizeOverwriteParams is the OVERWRITE parameter list: passes (1-31), invert between
// passes, and the pattern (1..logical block length bytes).
func SCSISanitizeOverwriteParams(passes uint8, invert bool, pattern []byte) ([]byte, error) {
	if passes < 1 || passes > 31 {
		return nil, fmt.Errorf("scsi sanitize overwrite: %d passes, want 1-31", passes)
	}
	if len(pattern) == 0 || len(pattern) > 0xFFFF {
		return nil, fmt.Errorf("scsi sanitize overwrite: pattern of %d bytes", len(pattern))
	}
	p := make([]byte, 4+len(pattern))
	p[0] = passes
	if invert {
		p[0] |= 0x80
	}
	binary.BigEndian.PutUint16(p[2:4], uint16(len(pattern)))
	copy(p[4:], pattern)
	return p, nil
}

// SCSIReportOpCodeCDB builds REPORT SUPPORTED OPERATION CODES for one opcode + service action
// (reporting options 010b), as `sg_opcodes --opcode=OP,SA` sends it.
func SCSIReportOpCodeCDB(opcode uint8, sa uint16) []byte {
	c := make([]byte, 12)
	c[0] = scsiOpRSOC
	c[1] = 0x0C
	c[2] = 0x02
	c[3] = opcode
	binary.BigEndian.PutUint16(c[4:6], sa)
	binary.BigEndian.PutUint32(c[6:10], scsiRSOCAllocLen)
	return c
}

// ParseSCSIOneCommand reads the SUPPORT field of a one-command RSOC reply: true for 011b
// (supported as the standard says) and 101b (supported in a vendor-specific way).
func ParseSCSIOneCommand(b []byte) (bool, error) {
	if len(b) < 4 {
		return false, fmt.Errorf("report supported operation codes: %d bytes, want at least 4", len(b))
	}
	s := b[1] & 0x7
	return s == 3 || s == 5, nil
}

// SCSIInquiryCDB builds INQUIRY (standard data, or a VPD page when evpd).
func SCSIInquiryCDB(evpd bool, page uint8, alloc uint16) []byte {
	c := []byte{scsiOpInquiry, 0, page, 0, 0, 0}
	if evpd {
		c[1] = 1
	}
	binary.BigEndian.PutUint16(c[3:5], alloc)
	return c
}

// SCSIInquiry is standard INQUIRY data.
type SCSIInquiry struct {
	DeviceType uint8  `json:"device_type"`
	Removable  bool   `json:"removable"`
	Vendor     string `json:"vendor"`
	Product    string `json:"product"`
	Revision   string `json:"revision"`
}

func ParseSCSIInquiry(b []byte) (SCSIInquiry, error) {
	if len(b) < 36 {
		return SCSIInquiry{}, fmt.Errorf("inquiry: %d bytes, want at least 36", len(b))
	}
	return SCSIInquiry{DeviceType: b[0] & 0x1F, Removable: b[1]&0x80 != 0,
		Vendor: ataString(b[8:16]), Product: ataString(b[16:32]), Revision: ataString(b[32:36])}, nil
}

// ParseSCSIUnitSerial reads VPD page 80h.
func ParseSCSIUnitSerial(b []byte) (string, error) {
	if len(b) < 4 || b[1] != 0x80 {
		return "", fmt.Errorf("vpd page 80h: malformed reply")
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return ataString(b[4 : 4+n]), nil
}

// SCSISense is the part of sense data Slate acts on.
type SCSISense struct {
	Key      uint8
	ASC      uint8
	ASCQ     uint8
	Progress int // 0-65535, -1 when absent
}

// ParseSCSISense decodes fixed (70h/71h) or descriptor (72h/73h) sense data.
func ParseSCSISense(b []byte) (SCSISense, bool) {
	s := SCSISense{Progress: -1}
	if len(b) < 2 {
		return s, false
	}
	switch b[0] & 0x7F {
	case 0x70, 0x71:
		if len(b) < 14 {
			return s, false
		}
		s.Key, s.ASC, s.ASCQ = b[2]&0xF, b[12], b[13]
		if len(b) >= 18 && b[15]&0x80 != 0 && (s.Key == 0 || s.Key == 2) {
			s.Progress = int(binary.BigEndian.Uint16(b[16:18]))
		}
		return s, true
	case 0x72, 0x73:
		if len(b) < 8 {
			return s, false
		}
		s.Key, s.ASC, s.ASCQ = b[1]&0xF, b[2], b[3]
		end := 8 + int(b[7])
		if end > len(b) {
			end = len(b)
		}
		for i := 8; i+2 <= end; i += 2 + int(b[i+1]) {
			if b[i] == 0x02 && i+8 <= end && b[i+4]&0x80 != 0 {
				s.Progress = int(binary.BigEndian.Uint16(b[i+5 : i+7]))
			}
		}
		return s, true
	}
	return s, false
}

// Unsupported tells whether sense data means "this command or field is not supported":
// ILLEGAL REQUEST with INVALID COMMAND OPERATION CODE or INVALID FIELD IN CDB.
func (s SCSISense) Unsupported() bool {
	return s.Key == 0x5 && (s.ASC == 0x20 || s.ASC == 0x24)
}
