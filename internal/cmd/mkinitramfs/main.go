// Command mkinitramfs builds the deploy environment's initramfs (see package deployenv).
// scripts/deploy-env.sh runs it; it reads only the files named on its command line.
package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"slate/agent/deployenv"
)

func main() {
	modDir := flag.String("modules-dir", "", "unpacked kernel package's lib/modules/<release>")
	agentBin := flag.String("agent", "", "static slate-agent binary (becomes /init)")
	modules := flag.String("modules", "", "comma-separated modules to include (dependencies are added)")
	out := flag.String("out", "", "initramfs to write (gzip cpio)")
	epoch := flag.Int64("epoch", 0, "mtime of every entry (SOURCE_DATE_EPOCH)")
	flag.Parse()
	if *modDir == "" || *agentBin == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "mkinitramfs: -modules-dir, -agent and -out are required")
		os.Exit(2)
	}
	var want []string
	for _, m := range strings.Split(*modules, ",") {
		if m = strings.TrimSpace(m); m != "" {
			want = append(want, m)
		}
	}
	var buf bytes.Buffer
	res, err := deployenv.Build(&buf, deployenv.Options{ModulesDir: *modDir, Release: filepath.Base(filepath.Clean(*modDir)),
		Agent: *agentBin, Modules: want, Epoch: *epoch})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
	// Write beside, then rename: a half-written initrd is never served.
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
	if err := os.Rename(tmp, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
	fmt.Printf("initramfs: %d modules: %s\n", len(res.Modules), strings.Join(res.Modules, " "))
	fmt.Printf("initramfs: %.1f MiB uncompressed, %.1f MiB compressed, sha256 %x\n",
		float64(res.Uncompressed)/(1<<20), float64(buf.Len())/(1<<20), sha256.Sum256(buf.Bytes()))
}
