package wipe

import (
	"bytes"
	"testing"
)

// BenchmarkAESCTRStream measures the overwrite pattern generator alone (make bench reports it):
// it must outrun the disk so the stream is never the bottleneck.
func BenchmarkAESCTRStream(b *testing.B) {
	f, err := newAESFiller(bytes.Repeat([]byte{7}, 32), 1)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8<<20)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		f.fill(buf, uint64(i)*uint64(len(buf)))
	}
}

// The stream at an offset equals the same bytes cut from a longer run: sampled verification
// depends on it.
func TestAESStreamIsSeekable(t *testing.T) {
	f, _ := newAESFiller(bytes.Repeat([]byte{1}, 32), 9)
	long := make([]byte, 1<<16)
	f.fill(long, 0)
	part := make([]byte, 4096)
	f.fill(part, 8192)
	if !bytes.Equal(part, long[8192:8192+4096]) {
		t.Fatal("AES-CTR stream at an offset differs from the continuous stream")
	}
	if uniform(long[:512]) {
		t.Fatal("keystream is uniform")
	}
}
