// Package disk is the agent's side of OS images: streaming a raw image onto a disk (GPT backup
// relocation, verification) and the node-config partition the appliance and the node share.
// It links nothing server-side, so the deploy environment's PID 1 stays small.
package disk

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
	"hash"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"sync"
	"unsafe"

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
	// Phase, when set, is called as each phase starts: "write", "verify" (after the flush:
	// the read-back), "gpt". A caller can tell the technician why progress stopped at the
	// image's end, and the benchmark times the phases.
	Phase func(phase string)
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
	phase := func(string) {}
	if o.Phase != nil {
		phase = o.Phase
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
	// An uncompressed stream is the raw image: its digest is the raw digest, and hashing it
	// twice would cost a second pass of sha256 per byte.
	passthrough := raw == io.Reader(in)
	var rawHash hash.Hash
	if !passthrough {
		rawHash = sha256.New()
	}
	// The image's body goes to the disk with O_DIRECT, as dd oflag=direct does: no copy into
	// the page cache, no write-back of a gigabyte of dirty pages at the flush. Where O_DIRECT
	// is refused (a file on tmpfs) or a write is not aligned (the image's tail), the
	// ordinary descriptor writes.
	var direct *os.File
	if d, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT, 0); err == nil {
		direct = d
		defer d.Close()
	}
	phase("write")
	// Reading (network, decompression, hashing) and writing overlap: a reader goroutine fills
	// buffers while writers empty the previous ones, several writes in flight so the disk's
	// queue never runs dry while the CPU hashes.
	chunks, stop := readChunks(raw, rawHash, o.BufferSize, writers+1)
	defer stop()
	off, err := writeChunks(ctx, chunks, f, direct, size, o.Progress)
	if err != nil {
		return res, fmt.Errorf("%s: %w", dev, err)
	}
	// Drain what the decompressor left (a trailer) so the stream digest covers everything.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return res, fmt.Errorf("read image: %w", err)
	}
	res.Written = off
	res.StreamSHA = "sha256:" + hex.EncodeToString(streamHash.Sum(nil))
	if passthrough {
		res.RawSHA256 = strings.TrimPrefix(res.StreamSHA, "sha256:")
	} else {
		res.RawSHA256 = hex.EncodeToString(rawHash.Sum(nil))
	}
	if res.StreamSHA != o.Digest {
		return res, fmt.Errorf("image digest mismatch: received %s, release pins %s: the image was not written as good", res.StreamSHA, o.Digest)
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("flush %s: %w", dev, err)
	}
	phase("verify")
	// Read back from the disk, not from the page cache the writes may have left behind (the
	// cache would agree with anything): the flushed, clean pages of the image are dropped
	// first. Reads and hashing overlap as the writes did.
	if err := unix.Fadvise(int(f.Fd()), 0, off, unix.FADV_DONTNEED); err != nil {
		return res, fmt.Errorf("drop the page cache of %s before the read-back: %w", dev, err)
	}
	check := sha256.New()
	back, stopBack := readChunks(io.NewSectionReader(f, 0, off), nil, o.BufferSize, 2)
	defer stopBack()
	for c := range back {
		check.Write(c.b)
		c.done()
		if c.err != nil {
			return res, fmt.Errorf("read back %s: %w", dev, c.err)
		}
	}
	if got := hex.EncodeToString(check.Sum(nil)); got != res.RawSHA256 {
		return res, fmt.Errorf("read-back of %s differs from the image (sha256 %s, wrote %s): the disk does not hold what was written", dev, got, res.RawSHA256)
	}
	phase("gpt")
	repaired, err := RelocateGPTBackup(f, size)
	if err != nil {
		return res, err
	}
	res.GPTRepaired = repaired
	return res, f.Sync()
}

// writers is how many writes WriteImage keeps in flight: on the benchmark's virtual disk four
// beat one by ~15 % (docs/benchmarks.md), for 4 × 4 MiB of buffers more.
const writers = 4

// writeChunks writes the chunks at consecutive offsets from 0 with up to writers writes in
// flight, reporting progress (bytes on the disk so far) from this goroutine. It returns the
// bytes handed to the disk; on an error it returns once no write is in flight any more.
func writeChunks(ctx context.Context, chunks <-chan chunk, f, direct *os.File, size int64, progress func(written, disk int64)) (int64, error) {
	type job struct {
		c   chunk
		off int64
	}
	type result struct {
		job
		err error
	}
	jobs := make(chan job)
	// A chunk's buffer goes back to the reader only once its result is taken here, so the
	// results pending never outnumber the reader's buffers (writers+1) and a writer never
	// blocks on this channel while this goroutine blocks handing out a job.
	results := make(chan result, writers+1)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for j := range jobs {
				results <- result{j, writeAt(f, direct, j.c.b, j.off)}
			}
		})
	}
	defer wg.Wait()
	defer close(jobs)
	var off, done int64
	inflight := 0
	var firstErr error
	for {
		in, cancelled := chunks, ctx.Done()
		if firstErr != nil {
			in, cancelled = nil, nil // stop taking chunks; wait for the writes in flight
		}
		if in == nil && inflight == 0 {
			return off, firstErr
		}
		select {
		case <-cancelled:
			// Also while the source stalls: the reader is left to its blocked read.
			firstErr = fmt.Errorf("write image interrupted at byte %d: %w", off, ctx.Err())
		case c, ok := <-in:
			if !ok {
				chunks = nil
				continue
			}
			n := int64(len(c.b))
			switch {
			case ctx.Err() != nil:
				firstErr = fmt.Errorf("write image interrupted at byte %d: %w", off, ctx.Err())
			case c.err != nil:
				firstErr = fmt.Errorf("read image at byte %d: %w", off, c.err)
			case off+n > size:
				firstErr = fmt.Errorf("%w: the disk has %d bytes, the image has more than %d", ErrTooLarge, size, off+n-1)
			}
			if firstErr != nil {
				c.done()
				continue
			}
			jobs <- job{c, off}
			off += n
			inflight++
		case r := <-results:
			inflight--
			r.c.done()
			if r.err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("write at byte %d: %w", r.off, r.err)
				}
				continue
			}
			done += int64(len(r.c.b))
			if progress != nil && firstErr == nil {
				progress(done, size)
			}
		}
	}
}

// directAlign is the alignment O_DIRECT needs of memory, offsets and lengths: 4096 covers
// disks with 512- and 4096-byte logical blocks.
const directAlign = 4096

// writeAt writes b at off, its aligned part through direct when there is one.
func writeAt(f, direct *os.File, b []byte, off int64) error {
	if direct != nil && off%directAlign == 0 && aligned(b) {
		n := len(b) &^ (directAlign - 1)
		if n > 0 {
			if _, err := direct.WriteAt(b[:n], off); err != nil {
				return err
			}
		}
		b, off = b[n:], off+int64(n)
	}
	if len(b) == 0 {
		return nil
	}
	_, err := f.WriteAt(b, off)
	return err
}

func aligned(b []byte) bool {
	return len(b) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign == 0
}

// alignedBuffer returns size bytes starting at a directAlign boundary.
func alignedBuffer(size int) []byte {
	b := make([]byte, size+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign)) % directAlign
	return b[skip : skip+size : skip+size]
}

// chunk is one buffer of the image as read; done hands the buffer back for reuse.
type chunk struct {
	b    []byte
	err  error // a read error after b (never io.EOF)
	done func()
}

// readChunks reads r in chunks of size bytes on a goroutine, hashing each into h (when not
// nil), with inFlight buffers. The channel closes after the last chunk; stop ends the
// goroutine early (the caller gave up) and must be called.
func readChunks(r io.Reader, h hash.Hash, size, inFlight int) (<-chan chunk, func()) {
	out := make(chan chunk)
	free := make(chan []byte, inFlight)
	for range inFlight {
		free <- alignedBuffer(size)
	}
	quit := make(chan struct{})
	go func() {
		defer close(out)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-quit:
				return
			}
			n, err := io.ReadFull(r, b)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			if h != nil {
				h.Write(b[:n])
			}
			c := chunk{b: b[:n], done: func() { free <- b[:cap(b)] }}
			if err != nil && err != io.EOF {
				c.err = err
			}
			if n > 0 || c.err != nil {
				select {
				case out <- c:
				case <-quit:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	var once sync.Once
	return out, func() { once.Do(func() { close(quit) }) }
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
