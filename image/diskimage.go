package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// WriteOptions describe a disk image to stream onto a disk.
type WriteOptions struct {
	// Digest is the expected "sha256:<hex>" of the stream as received (the blob digest in the
	// registry, compressed or not). Required: an unverified image is never written as good.
	Digest string
	// Compression is "", "gzip" or "zstd"; "auto" looks at the first bytes.
	Compression string
	// Progress, when set, is called with the bytes written so far and the disk size.
	Progress func(written, disk int64)
	// BufferSize is the write size (default 4 MiB).
	BufferSize int
}

// WriteResult is what was written.
type WriteResult struct {
	Written     int64  `json:"written"`       // bytes of raw image written
	DiskBytes   int64  `json:"disk_bytes"`    // size of the target disk
	RawSHA256   string `json:"raw_sha256"`    // of the decompressed image, checked on read-back
	StreamSHA   string `json:"stream_sha256"` // of the stream as received (= the digest)
	GPTRepaired bool   `json:"gpt_repaired"`  // the backup GPT header was moved to the disk's end
}

// ErrTooLarge is returned when the image does not fit the disk.
var ErrTooLarge = errors.New("image larger than the disk")

// WriteImage streams a raw disk image onto dev, checks the stream's sha256 against
// o.Digest, reads back what it wrote and compares, and moves a GPT's backup header and
// entries to the real end of the disk. On any failure the first MiB of the disk is zeroed so
// that a half-written image can never boot as if it were good.
func WriteImage(ctx context.Context, src io.Reader, dev string, o WriteOptions) (res WriteResult, err error) {
	if o.Digest == "" {
		return res, errors.New("write image: no digest given: Slate writes only images pinned by digest")
	}
	if o.BufferSize <= 0 {
		o.BufferSize = 4 << 20
	}
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return res, fmt.Errorf("open %s: %w (is it mounted or in use?)", dev, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return res, fmt.Errorf("size of %s: %w", dev, err)
	}
	res.DiskBytes = size
	defer func() {
		if err != nil {
			// Never leave something bootable behind a failure.
			zero := make([]byte, min(1<<20, size))
			_, _ = f.WriteAt(zero, 0)
			_ = f.Sync()
		}
	}()
	streamHash := sha256.New()
	in := bufio.NewReaderSize(io.TeeReader(src, streamHash), 1<<20)
	raw, err := decompressor(in, o.Compression)
	if err != nil {
		return res, err
	}
	rawHash := sha256.New()
	buf := make([]byte, o.BufferSize)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("write image interrupted at byte %d: %w", off, err)
		}
		n, rerr := io.ReadFull(raw, buf)
		if n > 0 {
			if off+int64(n) > size {
				return res, fmt.Errorf("%w: %s has %d bytes, the image has more than %d", ErrTooLarge, dev, size, off+int64(n)-1)
			}
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return res, fmt.Errorf("write %s at byte %d: %w", dev, off, err)
			}
			rawHash.Write(buf[:n])
			off += int64(n)
			if o.Progress != nil {
				o.Progress(off, size)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return res, fmt.Errorf("read image at byte %d: %w", off, rerr)
		}
	}
	// Drain what the decompressor left (a trailer) so the stream digest covers everything.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return res, fmt.Errorf("read image: %w", err)
	}
	res.Written = off
	res.StreamSHA = "sha256:" + hex.EncodeToString(streamHash.Sum(nil))
	res.RawSHA256 = hex.EncodeToString(rawHash.Sum(nil))
	if res.StreamSHA != o.Digest {
		return res, fmt.Errorf("image digest mismatch: received %s, release pins %s: the image was not written as good", res.StreamSHA, o.Digest)
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("flush %s: %w", dev, err)
	}
	// Read back through the device and compare with what was received.
	check := sha256.New()
	if _, err := io.Copy(check, io.NewSectionReader(f, 0, off)); err != nil {
		return res, fmt.Errorf("read back %s: %w", dev, err)
	}
	if got := hex.EncodeToString(check.Sum(nil)); got != res.RawSHA256 {
		return res, fmt.Errorf("read-back of %s differs from the image (sha256 %s, wrote %s): the disk does not hold what was written", dev, got, res.RawSHA256)
	}
	repaired, err := RelocateGPTBackup(f, size)
	if err != nil {
		return res, err
	}
	res.GPTRepaired = repaired
	return res, f.Sync()
}

func decompressor(r *bufio.Reader, kind string) (io.Reader, error) {
	if kind == "auto" {
		head, _ := r.Peek(4)
		switch {
		case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
			kind = "gzip"
		case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			kind = "zstd"
		default:
			kind = ""
		}
	}
	switch kind {
	case "":
		return r, nil
	case "gzip":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("image is not gzip: %w", err)
		}
		return z, nil
	case "zstd":
		z, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("image is not zstd: %w", err)
		}
		return z.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("compression %q: want gzip, zstd or none", kind)
}

const sector = 512

// RelocateGPTBackup moves a GPT's backup entries and header to the last sectors of a disk
// larger than the image it came from, and fixes the primary header (AlternateLBA,
// LastUsableLBA) and the protective MBR. A disk without GPT is left alone (false, nil).
func RelocateGPTBackup(f io.ReaderAt, diskBytes int64) (bool, error) {
	w, ok := f.(io.WriterAt)
	if !ok {
		return false, errors.New("GPT repair: device not writable")
	}
	hdr := make([]byte, sector)
	if _, err := f.ReadAt(hdr, sector); err != nil {
		return false, fmt.Errorf("read GPT header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return false, nil
	}
	hsize := binary.LittleEndian.Uint32(hdr[12:])
	if hsize < 92 || hsize > sector {
		return false, fmt.Errorf("GPT header size %d is invalid", hsize)
	}
	want := binary.LittleEndian.Uint32(hdr[16:])
	binary.LittleEndian.PutUint32(hdr[16:], 0)
	if crc32.ChecksumIEEE(hdr[:hsize]) != want {
		return false, errors.New("GPT primary header CRC is wrong: the image is damaged")
	}
	entriesLBA := binary.LittleEndian.Uint64(hdr[72:])
	num := binary.LittleEndian.Uint32(hdr[80:])
	esize := binary.LittleEndian.Uint32(hdr[84:])
	if num == 0 || num > 4096 || esize < 128 || esize > 4096 {
		return false, fmt.Errorf("GPT entries %d × %d are invalid", num, esize)
	}
	entries := make([]byte, int(num)*int(esize))
	if _, err := f.ReadAt(entries, int64(entriesLBA)*sector); err != nil {
		return false, fmt.Errorf("read GPT entries: %w", err)
	}
	if crc32.ChecksumIEEE(entries) != binary.LittleEndian.Uint32(hdr[88:]) {
		return false, errors.New("GPT entries CRC is wrong: the image is damaged")
	}
	last := uint64(diskBytes/sector) - 1
	entrySectors := (uint64(len(entries)) + sector - 1) / sector
	if binary.LittleEndian.Uint64(hdr[32:]) == last {
		return false, nil // already at the end
	}
	// Primary: the backup now lives at the last sector; usable space grows to just before it.
	binary.LittleEndian.PutUint64(hdr[32:], last)
	binary.LittleEndian.PutUint64(hdr[48:], last-entrySectors-1)
	binary.LittleEndian.PutUint32(hdr[16:], 0)
	binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr[:hsize]))
	backup := bytes.Clone(hdr)
	binary.LittleEndian.PutUint64(backup[24:], last)
	binary.LittleEndian.PutUint64(backup[32:], 1)
	binary.LittleEndian.PutUint64(backup[72:], last-entrySectors)
	binary.LittleEndian.PutUint32(backup[16:], 0)
	binary.LittleEndian.PutUint32(backup[16:], crc32.ChecksumIEEE(backup[:hsize]))
	if _, err := w.WriteAt(entries, int64(last-entrySectors)*sector); err != nil {
		return false, fmt.Errorf("write backup GPT entries: %w", err)
	}
	if _, err := w.WriteAt(backup, int64(last)*sector); err != nil {
		return false, fmt.Errorf("write backup GPT header: %w", err)
	}
	if _, err := w.WriteAt(hdr, sector); err != nil {
		return false, fmt.Errorf("write GPT header: %w", err)
	}
	// The protective MBR covers the whole disk (capped at 2 TiB of sectors).
	mbr := make([]byte, sector)
	if _, err := f.ReadAt(mbr, 0); err == nil && mbr[510] == 0x55 && mbr[511] == 0xaa && mbr[446+4] == 0xee {
		binary.LittleEndian.PutUint32(mbr[446+12:], uint32(min(last, 0xffffffff)))
		if _, err := w.WriteAt(mbr, 0); err != nil {
			return false, fmt.Errorf("write protective MBR: %w", err)
		}
	}
	return true, nil
}
