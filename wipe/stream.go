package wipe

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
)

// filler produces the expected content of the device at any offset, so an overwrite and its
// verification (full or sampled, in any order) agree without storing what was written.
type filler interface {
	// fill writes the content of [off, off+len(b)) into b; off is a multiple of 16.
	fill(b []byte, off uint64)
	// constant tells whether every buffer is the same (then it is filled once).
	constant() bool
	name() string
}

type byteFiller byte

func (f byteFiller) fill(b []byte, _ uint64) {
	if f == 0 {
		clear(b)
		return
	}
	for i := range b {
		b[i] = byte(f)
	}
}
func (byteFiller) constant() bool { return true }
func (f byteFiller) name() string {
	if f == 0 {
		return "zeros (0x00)"
	}
	return fmt.Sprintf("fixed byte 0x%02x", byte(f))
}

// aesFiller is an AES-256-CTR keystream whose counter is the byte offset / 16: any block can
// be regenerated alone for sampled verification. The key lives only in memory for the run.
type aesFiller struct {
	block cipher.Block
	nonce uint64
}

func newAESFiller(key []byte, nonce uint64) (*aesFiller, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes-ctr stream: %w", err)
	}
	return &aesFiller{block: b, nonce: nonce}, nil
}

// fill splits large buffers across the CPUs: the keystream of each part depends only on its
// offset, so the parts are independent.
func (f *aesFiller) fill(b []byte, off uint64) {
	const part = 1 << 20
	n := runtime.GOMAXPROCS(0)
	if n < 2 || len(b) < 2*part {
		f.fillOne(b, off)
		return
	}
	per := (len(b)/n + 15) &^ 15
	var wg sync.WaitGroup
	for i := 0; i < len(b); i += per {
		end := min(i+per, len(b))
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.fillOne(b[i:end], off+uint64(i))
		}()
	}
	wg.Wait()
}

func (f *aesFiller) fillOne(b []byte, off uint64) {
	var iv [16]byte
	binary.BigEndian.PutUint64(iv[0:8], f.nonce)
	binary.BigEndian.PutUint64(iv[8:16], off/16)
	clear(b)
	cipher.NewCTR(f.block, iv[:]).XORKeyStream(b, b)
}
func (*aesFiller) constant() bool { return false }
func (*aesFiller) name() string {
	return "AES-256-CTR keystream (random key, discarded after verification)"
}

// uniform tells whether b is one byte value repeated (what an erased block reads as).
func uniform(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	return bytes.Count(b, b[:1]) == len(b)
}
