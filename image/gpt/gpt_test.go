package gpt

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// FuzzGPTPartitions: any bytes give partitions or an error, never a panic or a huge read.
// Every input is also parsed with its two CRCs made right: a fuzzer cannot guess a CRC-32, so
// without the fix-up nearly every input stopped at the header check and the entry parsing was
// never reached. Inputs are small (MBR, header, a few entries), which keeps the engine fuzzing
// instead of minimizing large finds. (Named FuzzGPTPartitions as when it lived in image/.)
func FuzzGPTPartitions(f *testing.F) {
	f.Add(smallGPT())
	hdr := make([]byte, 2*sector) // a GPT signature, nothing else right
	copy(hdr[sector:], "EFI PART")
	f.Add(hdr)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, fixGPTCRCs(b)} {
			parts, err := Partitions(bytes.NewReader(in))
			if err != nil {
				continue
			}
			for _, p := range parts {
				if p.Size <= 0 || p.Start < 0 {
					t.Fatalf("partition %+v", p)
				}
			}
		}
	})
}

// TestFuzzGPTSeedReachesEntries: the fuzz target's seed and CRC fix-up must get past the CRC
// checks, or the fuzzer explores nothing behind them.
func TestFuzzGPTSeedReachesEntries(t *testing.T) {
	parts, err := Partitions(bytes.NewReader(smallGPT()))
	if err != nil || len(parts) != 1 || parts[0].Name != "slate" || parts[0].Start != 34*sector {
		t.Fatalf("seed: %+v, %v", parts, err)
	}
	bad := smallGPT()
	bad[2*sector+40]++ // an entry changed, CRCs not fixed: refused
	if _, err := Partitions(bytes.NewReader(bad)); err == nil {
		t.Fatal("entry array with a stale CRC accepted")
	}
	if _, err := Partitions(bytes.NewReader(fixGPTCRCs(bad))); err != nil {
		t.Fatalf("fixed-up input refused: %v", err)
	}
}

// smallGPT is a 1.5 KiB disk head: protective MBR sector, a GPT header, and 4 entries of 128
// bytes at LBA 2, the first one used.
func smallGPT() []byte {
	b := make([]byte, 3*sector)
	h := b[sector:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 4)
	binary.LittleEndian.PutUint32(h[84:], 128)
	e := b[2*sector:]
	e[0] = 0xaf // a type GUID: the entry is used
	binary.LittleEndian.PutUint64(e[32:], 34)
	binary.LittleEndian.PutUint64(e[40:], 2081)
	copy(e[56:], []byte{'s', 0, 'l', 0, 'a', 0, 't', 0, 'e', 0})
	return fixGPTCRCs(b)
}

// fixGPTCRCs returns a copy of b whose entry-array and header CRCs match its contents, where
// the header's own fields make that possible.
func fixGPTCRCs(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) < 2*sector {
		return b
	}
	h := b[sector : 2*sector]
	lba := binary.LittleEndian.Uint64(h[72:])
	n, esz := uint64(binary.LittleEndian.Uint32(h[80:])), uint64(binary.LittleEndian.Uint32(h[84:]))
	if lba < uint64(len(b))/sector && n*esz <= uint64(len(b))-lba*sector {
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(b[lba*sector:lba*sector+n*esz]))
	}
	if size := binary.LittleEndian.Uint32(h[12:]); size >= 92 && size <= sector {
		binary.LittleEndian.PutUint32(h[16:], 0)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:size]))
	}
	return b
}
