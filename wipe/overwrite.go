package wipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// blockIO is the drive as the overwrite and verification see it: positioned reads and writes
// of aligned buffers. Tests use the real thing on loop devices.
type blockIO interface {
	ReadAt(b []byte, off int64) (int, error)
	WriteAt(b []byte, off int64) (int, error)
}

// openDirect opens a block device for O_DIRECT I/O; O_EXCL makes the kernel refuse it when a
// filesystem is mounted on it or another program holds it exclusively.
func openDirect(path string, write bool) (*os.File, error) {
	flags := unix.O_DIRECT | unix.O_EXCL
	if write {
		flags |= os.O_RDWR
	} else {
		flags |= os.O_RDONLY
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s for direct I/O (busy or mounted?): %w", path, err)
	}
	return f, nil
}

// alignedBuf returns n bytes aligned to a page (O_DIRECT needs the logical block alignment;
// anonymous mmap gives page alignment, which covers every block size up to 4 KiB).
func alignedBuf(n int) ([]byte, func(), error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, fmt.Errorf("allocate %d-byte aligned buffer: %w", n, err)
	}
	return b, func() { _ = unix.Munmap(b) }, nil
}

// progressFn receives bytes done of total in the current phase.
type progressFn func(done, total uint64)

// overwrite writes f's content over [0,size) in chunks of bufSize. A generator fills the next
// chunks while two writers keep two writes in flight (a drive, like the loop device, does
// better with a queue than with dd's one request at a time), so neither a stream cipher nor a
// single outstanding request stalls the disk.
func overwrite(ctx context.Context, dev blockIO, size uint64, bufSize int, f filler, progress progressFn) error {
	if size == 0 {
		return errors.New("overwrite: device size is 0")
	}
	const nbuf, writers = 4, 2
	free := make(chan []byte, nbuf)
	for range nbuf {
		b, release, err := alignedBuf(bufSize)
		if err != nil {
			return err
		}
		defer release()
		if f.constant() {
			f.fill(b, 0)
		}
		free <- b
	}
	type chunk struct {
		buf []byte
		off uint64
	}
	ready := make(chan chunk, nbuf)
	genCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(ready)
		for off := uint64(0); off < size; off += uint64(bufSize) {
			var b []byte
			select {
			case b = <-free:
			case <-genCtx.Done():
				return
			}
			n := uint64(bufSize)
			if size-off < n {
				n = size - off
			}
			if !f.constant() {
				f.fill(b[:n], off)
			}
			select {
			case ready <- chunk{b[:n], off}:
			case <-genCtx.Done():
				return
			}
		}
	}()
	var (
		mu      sync.Mutex
		done    uint64
		firstEr error
		wg      sync.WaitGroup
	)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ready {
				if genCtx.Err() != nil {
					continue // drain after a failure
				}
				if _, err := dev.WriteAt(c.buf, int64(c.off)); err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = fmt.Errorf("overwrite: write at byte %d: %w", c.off, err)
					}
					mu.Unlock()
					cancel()
					continue
				}
				mu.Lock()
				done += uint64(len(c.buf))
				d := done
				if progress != nil {
					progress(d, size)
				}
				mu.Unlock()
				free <- c.buf[:cap(c.buf)]
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	if done != size {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("overwrite interrupted at byte %d: %w", done, err)
		}
		return fmt.Errorf("overwrite stopped at byte %d of %d", done, size)
	}
	return nil
}

// Extent is a byte range read during verification.
type Extent struct {
	Off uint64 `json:"off"`
	Len uint64 `json:"len"`
}

// SamplePlan is NIST SP 800-88's sampling verification: the device split into at least 1000
// equal subsections, two non-overlapping pseudorandom extents of pct% in each, plus the first
// and last blocks. The seed is recorded so an auditor can recompute the same extents.
func SamplePlan(size uint64, block uint32, subsections int, pct float64, seed uint64) ([]Extent, error) {
	bs := uint64(block)
	if bs == 0 || size < bs {
		return nil, fmt.Errorf("sample plan: device of %d bytes with %d-byte blocks", size, block)
	}
	blocks := size / bs
	if subsections < 1000 {
		return nil, fmt.Errorf("sample plan: %d subsections, NIST needs at least 1000", subsections)
	}
	if blocks < uint64(subsections)*4 {
		// Too small to split: read everything (a full verification is stricter).
		return []Extent{{0, blocks * bs}}, nil
	}
	sub := blocks / uint64(subsections)
	n := uint64(float64(sub)*pct/100 + 0.999999)
	if n == 0 {
		n = 1
	}
	if 2*n > sub {
		return []Extent{{0, blocks * bs}}, nil
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ext := []Extent{{0, bs}}
	for i := uint64(0); i < uint64(subsections); i++ {
		start := i * sub
		if i == uint64(subsections)-1 {
			sub = blocks - start // the last subsection takes the remainder
		}
		// Two extents of n blocks at a < b with a+n <= b: pick a gap layout at random.
		free := sub - 2*n
		x, y := rng.Uint64N(free+1), rng.Uint64N(free+1)
		if x > y {
			x, y = y, x
		}
		ext = append(ext, Extent{(start + x) * bs, n * bs}, Extent{(start + y + n) * bs, n * bs})
	}
	ext = append(ext, Extent{(blocks - 1) * bs, bs})
	return ext, nil
}

// verifyResult is the outcome of reading back.
type verifyResult struct {
	BytesRead  uint64
	Extents    int
	Mismatches uint64 // blocks that differ from what was expected
	FirstBad   int64  // byte offset of the first bad block, -1 if none
}

// checker says what each block must hold: either a generator of the expected content (compared
// a whole chunk at a time, generated while the chunk is being read), or a per-block predicate.
type checker struct {
	want     filler
	perBlock func(b []byte, off uint64) bool
}

// verifyExtents reads each extent and checks every block. A reader goroutine keeps one read
// in flight while the previous chunk is checked (queue depth 2), so checking — an AES
// keystream to regenerate, a compare — overlaps the disk instead of adding to it.
func verifyExtents(ctx context.Context, dev blockIO, ext []Extent, block uint32, bufSize int,
	c checker, progress progressFn) (verifyResult, error) {
	r := verifyResult{FirstBad: -1, Extents: len(ext)}
	var bufs [2][]byte
	for i := range bufs {
		b, free, err := alignedBuf(bufSize)
		if err != nil {
			return r, err
		}
		defer free()
		bufs[i] = b
	}
	var want []byte
	if c.want != nil {
		w, freeW, err := alignedBuf(bufSize)
		if err != nil {
			return r, err
		}
		defer freeW()
		want = w
		if c.want.constant() {
			c.want.fill(want, 0)
		}
	}
	var total uint64
	for _, e := range ext {
		total += e.Len
	}
	type chunk struct {
		buf []byte
		off uint64
		err error
	}
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan chunk, 1)
	free := make(chan []byte, 2)
	free <- bufs[0]
	free <- bufs[1]
	go func() {
		defer close(ready)
		for _, e := range ext {
			for off := e.Off; off < e.Off+e.Len; {
				n := uint64(bufSize)
				if e.Off+e.Len-off < n {
					n = e.Off + e.Len - off
				}
				var b []byte
				select {
				case b = <-free:
				case <-readCtx.Done():
					return
				}
				_, err := dev.ReadAt(b[:n], int64(off))
				select {
				case ready <- chunk{b[:n], off, err}:
				case <-readCtx.Done():
					return
				}
				if err != nil {
					return
				}
				off += n
			}
		}
	}()
	bs := uint64(block)
	for ch := range ready {
		if err := ctx.Err(); err != nil {
			return r, fmt.Errorf("verification interrupted: %w", err)
		}
		if ch.err != nil {
			return r, fmt.Errorf("verify: read at byte %d: %w", ch.off, ch.err)
		}
		n := uint64(len(ch.buf))
		if want != nil && !c.want.constant() {
			c.want.fill(want[:n], ch.off)
		}
		if want == nil || !bytes.Equal(ch.buf, want[:n]) {
			for i := uint64(0); i < n; i += bs {
				var ok bool
				if want != nil {
					ok = bytes.Equal(ch.buf[i:i+bs], want[i:i+bs])
				} else {
					ok = c.perBlock(ch.buf[i:i+bs], ch.off+i)
				}
				if !ok {
					r.Mismatches++
					if r.FirstBad < 0 {
						r.FirstBad = int64(ch.off + i)
					}
				}
			}
		}
		r.BytesRead += n
		free <- ch.buf[:cap(ch.buf)]
		if progress != nil {
			progress(r.BytesRead, total)
		}
	}
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("verification interrupted: %w", err)
	}
	if r.BytesRead != total {
		return r, fmt.Errorf("verify: read %d of %d bytes", r.BytesRead, total)
	}
	return r, nil
}

// cryptoSample records, before a cryptographic erase, the hash of sampled blocks that hold
// data; after it, none of them may read the same.
type cryptoSample struct {
	Offsets []uint64
	Hashes  map[uint64][32]byte
}

func takeCryptoSample(ctx context.Context, dev blockIO, ext []Extent, block uint32, bufSize int) (cryptoSample, error) {
	s := cryptoSample{Hashes: map[uint64][32]byte{}}
	_, err := verifyExtents(ctx, dev, ext, block, bufSize, checker{perBlock: func(b []byte, off uint64) bool {
		s.Offsets = append(s.Offsets, off)
		if !uniform(b) {
			s.Hashes[off] = sha256.Sum256(b)
		}
		return true
	}}, nil)
	sort.Slice(s.Offsets, func(i, j int) bool { return s.Offsets[i] < s.Offsets[j] })
	return s, err
}

// pollEvery waits d or until ctx ends.
func pollEvery(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
