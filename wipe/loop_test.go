package wipe

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"slate/internal/testenv"
)

// realRun probes a real loop device through the real sysfs and wipes it with the real
// executor (O_DIRECT, O_EXCL), as the agent would.
func realRun(t *testing.T, dev string, pol Policy, ctx context.Context, progress func(Progress)) (Plan, Result) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	drives, err := Probe(context.Background(), log, dev)
	if err != nil {
		t.Fatal(err)
	}
	d := drives[0]
	if d.Transport != TransportLoop || d.SizeBytes != testSize || d.Media != MediaVirtual || d.Mounted || d.BootDevice {
		t.Fatalf("probe of %s: %+v", dev, d)
	}
	p, err := MakePlan("m-loop", drives, pol, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p.Drives[0].Method != MethodOverwrite || p.Drives[0].Level != LevelClear {
		t.Fatalf("plan: %+v", p.Drives[0])
	}
	res, err := Execute(ctx, authFor(p), p, Options{Log: log, Progress: progress, Tool: "Slate test"})
	if err != nil {
		t.Fatal(err)
	}
	return p, res[0]
}

func readAll(t *testing.T, img string) []byte {
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoopOverwriteZeroFullVerify(t *testing.T) {
	dev, img := newLoop(t, testSize)
	var progs []Progress
	_, res := realRun(t, dev, DefaultPolicy(), context.Background(), func(pr Progress) { progs = append(progs, pr) })
	if res.Status != StatusSanitized || res.BytesWritten != testSize || res.Verification.BytesRead != testSize {
		t.Fatalf("result: %+v", res)
	}
	if !bytes.Equal(readAll(t, img), make([]byte, testSize)) {
		t.Fatal("the image does not read back as zeros from the host")
	}
	phases := map[string]bool{}
	for _, pr := range progs {
		phases[pr.Phase] = true
	}
	if !phases["overwrite"] || !phases["verify"] || !phases["done"] {
		t.Fatalf("progress phases %v", phases)
	}

	// The issuer (slate/wipe/cert, tested there for signing, tampering and the PDF) accepts it.
	mustBeCertifiable(t, res)
	if res.Level != LevelClear || res.Method != MethodOverwrite || res.Verification.Subsections != 0 {
		t.Fatalf("result for the certificate: level %s, method %s, verification %+v", res.Level, res.Method, res.Verification)
	}
}

func TestLoopOverwriteAESSampledVerify(t *testing.T) {
	dev, img := newLoop(t, testSize)
	pol := DefaultPolicy()
	pol.Pattern, pol.Verify = PatternAESCTR, VerifySample
	_, res := realRun(t, dev, pol, context.Background(), nil)
	v := res.Verification
	if res.Status != StatusSanitized || v.Subsections != 1000 || v.Extents != 2002 || v.BytesRead < testSize/10 {
		t.Fatalf("result: %+v", res)
	}
	b := readAll(t, img)
	if bytes.Count(b[:1<<20], []byte{0}) > 1<<14 {
		t.Fatal("AES-CTR overwrite left mostly zeros")
	}
	// The same stream cannot be reproduced without the key: a different key's first block differs.
	f, _ := newAESFiller(make([]byte, 32), 0)
	blk := make([]byte, 512)
	f.fill(blk, 0)
	if bytes.Equal(blk, b[:512]) {
		t.Fatal("AES stream used an all-zero key")
	}
}

// Verification catches a block that was not overwritten.
func TestVerifyDetectsLeftoverBlock(t *testing.T) {
	dev, _ := newLoop(t, testSize)
	_, res := realRun(t, dev, DefaultPolicy(), context.Background(), nil)
	if res.Status != StatusSanitized {
		t.Fatalf("result: %+v", res)
	}
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, free, _ := alignedBuf(4096)
	defer free()
	copy(buf, "customer data")
	const at = 40<<20 + 4096
	if _, err := f.WriteAt(buf, at); err != nil {
		t.Fatal(err)
	}
	vr, err := verifyExtents(context.Background(), f, []Extent{{0, testSize}}, 512, 1<<20, checker{want: byteFiller(0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vr.Mismatches != 1 || vr.FirstBad != at {
		t.Fatalf("leftover block not found: %+v", vr)
	}
	// The same with an AES-CTR stream: one block of the stream replaced by old data.
	aes, _ := newAESFiller(bytes.Repeat([]byte{3}, 32), 5)
	if err := overwrite(context.Background(), f, testSize, 1<<20, aes, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(buf[:512], at+512); err != nil {
		t.Fatal(err)
	}
	vr, err = verifyExtents(context.Background(), f, []Extent{{0, testSize}}, 512, 1<<20, checker{want: aes}, nil)
	if err != nil || vr.Mismatches != 1 || vr.FirstBad != at+512 {
		t.Fatalf("leftover block in AES stream not found: %+v %v", vr, err)
	}
}

func TestLoopInterruptedOverwrite(t *testing.T) {
	dev, _ := newLoop(t, testSize)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, res := realRun(t, dev, DefaultPolicy(), ctx, func(pr Progress) {
		if pr.Phase == "overwrite" && pr.Done > 0 {
			cancel()
		}
	})
	if res.Status != StatusInterrupted {
		t.Fatalf("status %q, want interrupted: %+v", res.Status, res)
	}
	requireNoCertificate(t, res)
}

// A device someone holds exclusively (a mounted filesystem does the same) is refused.
func TestLoopBusyDeviceRefused(t *testing.T) {
	dev, _ := newLoop(t, testSize)
	hold, err := os.OpenFile(dev, os.O_RDONLY|unix.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	_, res := realRun(t, dev, DefaultPolicy(), context.Background(), nil)
	if res.Status != StatusFailed || !strings.Contains(strings.Join(res.Errors, " "), "busy") {
		t.Fatalf("busy device not refused: %+v", res)
	}
	requireNoCertificate(t, res)
}

func TestSamplePlanFollowsNIST(t *testing.T) {
	const size = 10 << 30
	ext, err := SamplePlan(size, 4096, 1000, 5, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(ext) != 2002 || ext[0] != (Extent{0, 4096}) || ext[len(ext)-1] != (Extent{size - 4096, 4096}) {
		t.Fatalf("first/last block missing: %d extents, %+v … %+v", len(ext), ext[0], ext[len(ext)-1])
	}
	blocks := uint64(size / 4096)
	sub := blocks / 1000 * 4096
	var total uint64
	for i := 0; i < 1000; i++ {
		a, b := ext[1+2*i], ext[2+2*i]
		lo, hi := uint64(i)*sub, uint64(i+1)*sub
		if i == 999 {
			hi = size
		}
		if a.Off < lo || b.Off+b.Len > hi || a.Off+a.Len > b.Off {
			t.Fatalf("subsection %d: samples %+v %+v overlap or leave [%d,%d)", i, a, b, lo, hi)
		}
		if float64(a.Len) < 0.05*float64(sub) || float64(b.Len) < 0.05*float64(sub) {
			t.Fatalf("subsection %d: sample below 5%%", i)
		}
		total += a.Len + b.Len
	}
	if float64(total) < 0.1*size {
		t.Fatalf("samples cover %d bytes, under 10%%", total)
	}
	again, _ := SamplePlan(size, 4096, 1000, 5, 42)
	other, _ := SamplePlan(size, 4096, 1000, 5, 43)
	if ext[500] != again[500] || ext[500] == other[500] {
		t.Fatal("sampling is not reproducible from its seed, or ignores the seed")
	}
	if _, err := SamplePlan(size, 4096, 999, 5, 1); err == nil {
		t.Fatal("fewer than 1000 subsections accepted")
	}
}

// A real filesystem mounted from a loop device: the real probe sees it, the plan blocks it,
// and the executor refuses it even when handed a plan made before the mount.
func TestLoopMountedFilesystemRefused(t *testing.T) {
	dev, _ := newLoop(t, testSize)
	testenv.RequireCommand(t, "mkfs.ext4", "e2fsprogs")
	pol := DefaultPolicy()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	drives, err := Probe(context.Background(), log, dev)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := MakePlan("m", drives, pol, time.Now())
	if out, err := execCombined("mkfs.ext4", "-q", "-F", dev); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if out, err := execCombined("mount", dev, mnt); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	t.Cleanup(func() { execCombined("umount", mnt) })
	drives, err = Probe(context.Background(), log, dev)
	if err != nil {
		t.Fatal(err)
	}
	if !drives[0].Mounted || len(drives[0].MountPoints) != 1 || drives[0].MountPoints[0] != mnt {
		t.Fatalf("mounted loop device not seen: %+v", drives[0])
	}
	p, _ := MakePlan("m", drives, pol, time.Now())
	if !p.Drives[0].Blocked || !strings.Contains(p.Drives[0].Reason, mnt) {
		t.Fatalf("mounted drive planned: %+v", p.Drives[0])
	}
	res, err := Execute(context.Background(), authFor(before), before, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != StatusFailed || !strings.Contains(strings.Join(res[0].Errors, " "), "refusing") {
		t.Fatalf("mounted drive wiped: %+v", res[0])
	}
	if _, err := os.Stat(filepath.Join(mnt, "lost+found")); err != nil {
		t.Fatalf("filesystem damaged: %v", err)
	}
}

func execCombined(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
