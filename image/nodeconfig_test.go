package image

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"slate/internal/testenv"
)

// gptFile makes a disk image file with sfdisk's GPT and the given partition lines.
func gptFile(t *testing.T, mib int, parts string) string {
	t.Helper()
	sfdisk := testenv.RequireCommand(t, "sfdisk", "fdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(int64(mib) << 20)
	f.Close()
	cmd := exec.Command(sfdisk, "--quiet", p)
	cmd.Stdin = strings.NewReader("label: gpt\n" + parts)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return p
}

func TestNodeConfigPartition(t *testing.T) {
	p := gptFile(t, 8, "start=2048, size=4M, type=uefi, name=\"ESP\"\nsize=1M, type=linux, name=\"slate-config\"\n")
	f, _ := os.Open(p)
	parts, err := GPTPartitions(f)
	f.Close()
	if err != nil || len(parts) != 2 || parts[0].Name != "ESP" || parts[1].Name != NodeConfigPartition ||
		parts[1].Start != (2048+8192)*512 || parts[1].Size != 1<<20 {
		t.Fatalf("partitions %+v, %v", parts, err)
	}
	// Old contents of the partition must not survive: fill it with junk first.
	junk := bytes.Repeat([]byte{'x'}, 1<<20)
	f, _ = os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt(junk, parts[1].Start)
	f.Close()
	want := NodeConfig{URL: "http://10.0.0.1:8080", Token: "sln_abc", Machine: "m-1", Release: "plant-os@1", Digest: "sha256:00"}
	if err := WriteNodeConfig(p, want); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got, err := ParseNodeConfig(b[parts[1].Start : parts[1].Start+parts[1].Size])
	if err != nil || got != want {
		t.Fatalf("read back %+v, %v", got, err)
	}
	// The partition device form (here: a file holding just the partition).
	pd := filepath.Join(t.TempDir(), "part")
	os.WriteFile(pd, b[parts[1].Start:parts[1].Start+parts[1].Size], 0o600)
	if got, err := ReadNodeConfig(pd); err != nil || got != want {
		t.Fatalf("ReadNodeConfig %+v, %v", got, err)
	}

	t.Run("image without the partition", func(t *testing.T) {
		p := gptFile(t, 8, "start=2048, size=4M, type=uefi, name=\"ESP\"\n")
		before, _ := os.ReadFile(p)
		err := WriteNodeConfig(p, want)
		if err == nil || !strings.Contains(err.Error(), `no GPT partition named "slate-config"`) {
			t.Fatalf("err = %v", err)
		}
		after, _ := os.ReadFile(p)
		if !bytes.Equal(before, after) {
			t.Fatal("the disk changed")
		}
	})
	t.Run("no GPT", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "blank")
		os.WriteFile(p, make([]byte, 1<<20), 0o600)
		if err := WriteNodeConfig(p, want); err == nil || !strings.Contains(err.Error(), "no GPT") {
			t.Fatalf("err = %v", err)
		}
	})
	for name, b := range map[string][]byte{"empty": make([]byte, 512), "junk": junk, "no token": []byte(`{"url":"http://x"}`)} {
		if _, err := ParseNodeConfig(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzGPTPartitions: any bytes give partitions or an error, never a panic or a huge read.
// Every input is also parsed with its two CRCs made right: a fuzzer cannot guess a CRC-32, so
// without the fix-up nearly every input stopped at the header check and the entry parsing was
// never reached. Inputs are small (MBR, header, a few entries), which keeps the engine fuzzing
// instead of minimizing large finds.
func FuzzGPTPartitions(f *testing.F) {
	f.Add(smallGPT())
	hdr := make([]byte, 4096)
	copy(hdr[512:], "EFI PART")
	f.Add(hdr)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, fixGPTCRCs(b)} {
			parts, err := GPTPartitions(bytes.NewReader(in))
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
	parts, err := GPTPartitions(bytes.NewReader(smallGPT()))
	if err != nil || len(parts) != 1 || parts[0].Name != "slate" || parts[0].Start != 34*sector {
		t.Fatalf("seed: %+v, %v", parts, err)
	}
	bad := smallGPT()
	bad[2*sector+40]++ // an entry changed, CRCs not fixed: refused
	if _, err := GPTPartitions(bytes.NewReader(bad)); err == nil {
		t.Fatal("entry array with a stale CRC accepted")
	}
	if _, err := GPTPartitions(bytes.NewReader(fixGPTCRCs(bad))); err != nil {
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
