package disk

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// MediaType is the media type of a disk-image release's single layer (docs/images.md); a
// compressed image carries "+gzip" or "+zstd".
const MediaType = "application/vnd.slate.disk.image.raw.v1"

// HeadSize is how much of an image's start CheckHead wants: the GPT (LBA 1 and the partition
// entries after it) lies within the first MiB of the decompressed image, and the compressed
// first MiB of any real image decompresses to more than that.
const HeadSize = 1 << 20

// CheckHead looks at the first bytes of a disk image (raw, gzip or zstd; up to HeadSize of
// them, as stored, so a stream can be checked before it is pushed) and answers its layer media
// type. It refuses an image without a GPT or without the slate-config partition, without
// which an installed system could never report to Slate: `slate registry push-disk` and the
// web UI's upload share it, so both refuse the same images with the same words.
func CheckHead(name string, head []byte) (string, error) {
	media := MediaType
	var dec io.Reader = bytes.NewReader(head)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		media += "+gzip"
		zr, err := gzip.NewReader(bytes.NewReader(head))
		if err != nil {
			return "", fmt.Errorf("%s: gzip header: %w", name, err)
		}
		dec = zr
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		media += "+zstd"
		zr, err := zstd.NewReader(bytes.NewReader(head))
		if err != nil {
			return "", fmt.Errorf("%s: zstd header: %w", name, err)
		}
		defer zr.Close()
		dec = zr
	}
	first := make([]byte, HeadSize)
	// A head cut inside a compressed stream ends with an unexpected EOF: what decompressed
	// before it is what is checked.
	n, _ := io.ReadFull(dec, first)
	parts, err := GPTPartitions(bytes.NewReader(first[:n]))
	if err != nil {
		return "", fmt.Errorf("%s is not a GPT disk image (raw, .gz or .zst): %w", name, err)
	}
	for _, p := range parts {
		if p.Name == NodeConfigPartition {
			return media, nil
		}
	}
	return "", fmt.Errorf("%s has no GPT partition named %q: an installed system could not report to Slate, so Slate would refuse to install it (add a 1 MiB partition with that name)", name, NodeConfigPartition)
}
