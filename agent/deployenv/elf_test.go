package deployenv

import (
	"bytes"
	"encoding/binary"
)

// minimalELF builds a 64-bit little-endian relocatable ELF with one named section (plus the
// null section and the section name table): enough for debug/elf to read .modinfo back.
func minimalELF(name string, data []byte) []byte {
	shstr := append([]byte{0}, []byte(name+"\x00.shstrtab\x00")...)
	const ehsize, shentsize = 64, 64
	dataOff := uint64(ehsize)
	strOff := dataOff + uint64(len(data))
	shOff := strOff + uint64(len(shstr))
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b.Write(make([]byte, 8))
	le := binary.LittleEndian
	w := func(v any) { binary.Write(&b, le, v) }
	w(uint16(1))  // ET_REL
	w(uint16(62)) // EM_X86_64
	w(uint32(1))
	w(uint64(0)) // entry
	w(uint64(0)) // phoff
	w(shOff)
	w(uint32(0))
	w(uint16(ehsize))
	w(uint16(0))
	w(uint16(0))
	w(uint16(shentsize))
	w(uint16(3)) // shnum
	w(uint16(2)) // shstrndx
	b.Write(data)
	b.Write(shstr)
	sh := func(nameOff uint32, typ uint32, off, size uint64) {
		w(nameOff)
		w(typ)
		w(uint64(0)) // flags
		w(uint64(0)) // addr
		w(off)
		w(size)
		w(uint32(0))
		w(uint32(0))
		w(uint64(1))
		w(uint64(0))
	}
	sh(0, 0, 0, 0)
	sh(1, 1, dataOff, uint64(len(data)))                     // PROGBITS
	sh(uint32(1+len(name)+1), 3, strOff, uint64(len(shstr))) // STRTAB
	return b.Bytes()
}
