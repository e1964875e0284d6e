package inspect

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"slate/agent/agentproto"
)

// memoryType names SMBIOS type 17 "Memory Type" values (SMBIOS 3.x, table 76).
func memoryType(b byte) string {
	switch b {
	case 0x07:
		return "RAM"
	case 0x0F:
		return "SDRAM"
	case 0x12:
		return "DDR"
	case 0x13:
		return "DDR2"
	case 0x18:
		return "DDR3"
	case 0x1A:
		return "DDR4"
	case 0x1E:
		return "LPDDR4"
	case 0x22:
		return "DDR5"
	case 0x23:
		return "LPDDR5"
	}
	return ""
}

// ParseMemoryDevice decodes one SMBIOS type 17 (Memory Device) structure as the kernel
// exposes it in /sys/firmware/dmi/entries/17-N/raw. ok is false for an empty slot.
func ParseMemoryDevice(raw []byte) (d agentproto.DIMM, ok bool, err error) {
	if len(raw) < 4 || raw[0] != 17 {
		return d, false, fmt.Errorf("not an SMBIOS memory device (type 17) structure")
	}
	n := int(raw[1])
	if n < 0x15 || n > len(raw) {
		return d, false, fmt.Errorf("memory device structure length %d is invalid (have %d bytes)", n, len(raw))
	}
	strs := smbiosStrings(raw[n:])
	str := func(off int) string {
		if off >= n {
			return ""
		}
		i := int(raw[off])
		if i == 0 || i > len(strs) {
			return ""
		}
		return known(strs[i-1])
	}
	size := binary.LittleEndian.Uint16(raw[0x0C:])
	switch {
	case size == 0:
		return d, false, nil
	case size == 0xFFFF:
		d.SizeBytes = 0 // unknown size
	case size == 0x7FFF && n >= 0x20:
		d.SizeBytes = int64(binary.LittleEndian.Uint32(raw[0x1C:])&0x7FFFFFFF) << 20
	case size&0x8000 != 0:
		d.SizeBytes = int64(size&0x7FFF) << 10
	default:
		d.SizeBytes = int64(size) << 20
	}
	d.Locator = str(0x10)
	d.BankLocator = str(0x11)
	if n > 0x12 {
		d.Type = memoryType(raw[0x12])
	}
	if n >= 0x17 {
		d.SpeedMTs = int(binary.LittleEndian.Uint16(raw[0x15:]))
	}
	d.Manufacturer = str(0x17)
	d.Serial = str(0x18)
	d.PartNumber = str(0x1A)
	return d, true, nil
}

// smbiosStrings splits the string set that follows a structure (NUL-terminated strings,
// ended by an empty one).
func smbiosStrings(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i <= 0 {
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out
}
