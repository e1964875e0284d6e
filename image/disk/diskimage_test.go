package disk

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/internal/testenv"
)

// gptImage builds a raw disk image of n bytes with a protective MBR, a GPT with one Linux
// partition, and its backup at the image's own end (as an image builder leaves it).
func gptImage(t *testing.T, n int64) []byte {
	t.Helper()
	img := make([]byte, n)
	last := uint64(n/sector) - 1
	// Protective MBR.
	img[446+4] = 0xee
	binary.LittleEndian.PutUint32(img[446+8:], 1)
	binary.LittleEndian.PutUint32(img[446+12:], uint32(last))
	img[510], img[511] = 0x55, 0xaa
	// One partition entry: Linux filesystem type, LBAs 2048..(last-34).
	entries := make([]byte, 128*128)
	linux, _ := hex.DecodeString("af3dc60f838472478e793d69d8477de4")
	copy(entries[0:], linux)
	copy(entries[16:], bytes.Repeat([]byte{0x42}, 16))
	binary.LittleEndian.PutUint64(entries[32:], 2048)
	binary.LittleEndian.PutUint64(entries[40:], last-34)
	copy(entries[56:], []byte{'r', 0, 'o', 0, 'o', 0, 't', 0})
	hdr := func(my, alt, entryLBA uint64) []byte {
		h := make([]byte, sector)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], 34)
		binary.LittleEndian.PutUint64(h[48:], last-33)
		copy(h[56:], bytes.Repeat([]byte{0x17}, 16))
		binary.LittleEndian.PutUint64(h[72:], entryLBA)
		binary.LittleEndian.PutUint32(h[80:], 128)
		binary.LittleEndian.PutUint32(h[84:], 128)
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	copy(img[sector:], hdr(1, last, 2))
	copy(img[2*sector:], entries)
	copy(img[(last-32)*sector:], entries)
	copy(img[last*sector:], hdr(last, 1, last-32))
	// Some content in the partition.
	copy(img[2048*sector:], bytes.Repeat([]byte("slate root filesystem "), 1000))
	return img
}

func loop(t *testing.T, size int64) string {
	t.Helper()
	testenv.RequireRoot(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, bytes.Repeat([]byte{0xaa}, int(size)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestWriteImageGrowsGPTAndVerifies writes an 8 MiB gzip-compressed GPT image onto a 32 MiB
// disk: the digest of the compressed stream is checked, the read-back matches, and sfdisk
// (util-linux) finds a valid GPT whose backup is at the real end of the disk.
func TestWriteImageGrowsGPTAndVerifies(t *testing.T) {
	sfdisk := testenv.RequireCommand(t, "sfdisk", "fdisk")
	raw := gptImage(t, 8<<20)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	dev := loop(t, 32<<20)
	var last int64
	res, err := WriteImage(context.Background(), bytes.NewReader(gz.Bytes()), dev, WriteOptions{Digest: digestOf(gz.Bytes()),
		Compression: "auto", BufferSize: 1 << 20, Progress: func(w, _ int64) { last = w }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 8<<20 || last != 8<<20 || !res.GPTRepaired || res.StreamSHA != digestOf(gz.Bytes()) {
		t.Fatalf("result: %+v (progress %d)", res, last)
	}
	out, err := exec.Command(sfdisk, "--verify", dev).CombinedOutput()
	if err != nil || strings.Contains(strings.ToLower(string(out)), "backup") {
		t.Fatalf("sfdisk --verify: %v\n%s", err, out)
	}
	js, err := exec.Command(sfdisk, "--json", dev).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string `json:"label"`
			LastLBA    int64  `json:"lastlba"`
			Partitions []struct {
				Start int64  `json:"start"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	json.Unmarshal(js, &pt)
	if pt.PartitionTable.Label != "gpt" || pt.PartitionTable.LastLBA != (32<<20)/512-34 || len(pt.PartitionTable.Partitions) != 1 ||
		pt.PartitionTable.Partitions[0].Name != "root" {
		t.Fatalf("partition table after the write: %s", js)
	}
	// The uncompressed image, written again, is repaired again (its header points at the
	// image's end), and a repair of a repaired disk changes nothing.
	if res, err := WriteImage(context.Background(), bytes.NewReader(raw), dev, WriteOptions{Digest: digestOf(raw)}); err != nil || !res.GPTRepaired {
		t.Fatalf("second write: %+v %v", res, err)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	again, err := RelocateGPTBackup(f, 32<<20)
	f.Close()
	if err != nil || again {
		t.Fatalf("repairing a repaired GPT: %v %v", again, err)
	}
}

// TestWriteImageUnalignedTail: an uncompressed image whose size is not a multiple of 4 KiB
// goes to the disk through O_DIRECT for its aligned body and the ordinary descriptor for
// its tail; the disk then holds exactly the image, the raw digest is the stream's, and the
// phases are announced in order.
func TestWriteImageUnalignedTail(t *testing.T) {
	const n = 8<<20 + 1536
	raw := gptImage(t, n)
	dev := loop(t, n)
	var phases []string
	res, err := WriteImage(context.Background(), bytes.NewReader(raw), dev, WriteOptions{Digest: digestOf(raw), BufferSize: 1 << 20,
		Phase: func(p string) { phases = append(phases, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != n || "sha256:"+res.RawSHA256 != digestOf(raw) || res.GPTRepaired || strings.Join(phases, ",") != "write,verify,gpt" {
		t.Fatalf("result: %+v, phases %v", res, phases)
	}
	got, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatal("the disk does not hold the image")
	}
}

// TestWriteImageCancelledWhileTheSourceStalls: a cancelled install returns at once even when
// the network stalls mid-image, and leaves nothing bootable behind.
func TestWriteImageCancelledWhileTheSourceStalls(t *testing.T) {
	raw := gptImage(t, 8<<20)
	dev := loop(t, 16<<20)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(raw[:5<<20]) // then nothing more: the pipe stalls
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := WriteImage(ctx, pr, dev, WriteOptions{Digest: digestOf(raw), BufferSize: 1 << 20})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled install: %v after %v", err, time.Since(start))
	}
	head := make([]byte, 1<<20)
	f, _ := os.Open(dev)
	f.ReadAt(head, 0)
	f.Close()
	if !bytes.Equal(head, make([]byte, 1<<20)) {
		t.Fatal("a cancelled install left its boot sectors on the disk")
	}
}

// TestWriteImageRefusesBadInput: a lying digest, an image larger than the disk and a missing
// digest are refused, and nothing bootable is left behind.
func TestWriteImageRefusesBadInput(t *testing.T) {
	raw := gptImage(t, 8<<20)
	dev := loop(t, 16<<20)
	_, err := WriteImage(context.Background(), bytes.NewReader(raw), dev, WriteOptions{Digest: "sha256:" + strings.Repeat("0", 64)})
	if err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("lying digest: %v", err)
	}
	head := make([]byte, 1<<20)
	f, _ := os.Open(dev)
	f.ReadAt(head, 0)
	f.Close()
	if !bytes.Equal(head, make([]byte, 1<<20)) {
		t.Fatal("a refused image left its boot sectors on the disk")
	}
	small := loop(t, 4<<20)
	if _, err := WriteImage(context.Background(), bytes.NewReader(raw), small, WriteOptions{Digest: digestOf(raw)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("image larger than the disk: %v", err)
	}
	if _, err := WriteImage(context.Background(), bytes.NewReader(raw), dev, WriteOptions{}); err == nil {
		t.Fatal("an image without a digest was written")
	}
	// A damaged GPT (bad CRC) is reported, not "repaired".
	bad := bytes.Clone(raw)
	bad[sector+30] ^= 0xff // MyLBA's high bytes: covered by the header CRC
	if _, err := WriteImage(context.Background(), bytes.NewReader(bad), dev, WriteOptions{Digest: digestOf(bad)}); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("damaged GPT: %v", err)
	}
}

// memDisk is an in-memory disk for the parser fuzz target.
type memDisk struct{ b []byte }

func (m *memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m.b)) {
		return 0, errors.New("out of range")
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, errors.New("short read")
	}
	return n, nil
}

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("out of range")
	}
	return copy(m.b[off:], p), nil
}

// FuzzRelocateGPTBackup: whatever an image's first sectors hold, the GPT repair errors or
// succeeds, never panics, and never writes outside the disk.
func FuzzRelocateGPTBackup(f *testing.F) {
	img := gptImage(&testing.T{}, 1<<20)
	f.Add(img[:64<<10])
	f.Add(img[:2*sector])
	f.Add([]byte("EFI PART"))
	f.Fuzz(func(t *testing.T, head []byte) {
		disk := &memDisk{b: make([]byte, 2<<20)}
		copy(disk.b, head)
		RelocateGPTBackup(disk, int64(len(disk.b)))
	})
}
