// Command installbench times one streaming install of a raw disk image onto a block device
// through disk.WriteImage, exactly as the agent calls it (digest pinned, read-back
// verification, GPT repair), and prints the time of each phase. test/bench/install.sh runs it
// against dd on the same loop device. It destroys the device's data.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"slate/image/disk"
)

func main() {
	img := flag.String("image", "", "raw disk image file")
	dev := flag.String("dev", "", "block device to write (its data is destroyed)")
	digest := flag.String("digest", "", "sha256:<hex> of the image file")
	bufMiB := flag.Int("buffer-mib", 0, "write size in MiB (0: WriteImage's default)")
	flag.Parse()
	if err := run(*img, *dev, *digest, *bufMiB<<20); err != nil {
		fmt.Fprintln(os.Stderr, "installbench:", err)
		os.Exit(1)
	}
}

func run(img, dev, digest string, buf int) error {
	if img == "" || dev == "" || digest == "" {
		return fmt.Errorf("-image, -dev and -digest are required")
	}
	f, err := os.Open(img)
	if err != nil {
		return err
	}
	defer f.Close()
	marks := map[string]time.Time{}
	start := time.Now()
	res, err := disk.WriteImage(context.Background(), f, dev, disk.WriteOptions{Digest: digest, BufferSize: buf,
		Phase: func(p string) { marks[p] = time.Now() }})
	end := time.Now()
	if err != nil {
		return err
	}
	sec := func(a, b time.Time) float64 { return b.Sub(a).Seconds() }
	// write = stream read + hashes + writes + the flush (dd conv=fsync's peer);
	// verify = the read-back and compare; total adds the GPT repair and its flush.
	fmt.Printf("bytes=%d write_s=%.3f verify_s=%.3f total_s=%.3f gpt_repaired=%v\n",
		res.Written, sec(start, marks["verify"]), sec(marks["verify"], marks["gpt"]), sec(start, end), res.GPTRepaired)
	return nil
}
