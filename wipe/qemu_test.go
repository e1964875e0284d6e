package wipe_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"slate/internal/testenv"
	"slate/wipe"
	"slate/wipe/cert"
)

// qemuKernelCache holds Debian's kernel package; the lab's tests use the same folder.
const qemuKernelCache = "/var/cache/slate-test"

// qemuModules are loaded in this order by the VM's /init: NVMe, AHCI/SATA and virtio-blk.
var qemuModules = []string{
	"crypto/crct10dif_common", "lib/crc-t10dif", "lib/crc64", "lib/crc64-rocksoft", "crypto/crc64_rocksoft_generic",
	"crypto/crct10dif_generic", "block/t10-pi", "drivers/nvme/host/nvme-core", "drivers/nvme/host/nvme",
	"drivers/scsi/scsi_common", "drivers/scsi/scsi_mod", "drivers/ata/libata", "drivers/ata/libahci", "drivers/ata/ahci",
	"drivers/scsi/sd_mod", "drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_pci_modern_dev",
	"drivers/virtio/virtio_pci_legacy_dev", "drivers/virtio/virtio_pci", "drivers/block/virtio_blk",
	// Entropy from the host: the check signs certificates (crypto/rand blocks until the kernel's
	// pool is ready, which under TCG without an RNG can take minutes on a loaded machine).
	"drivers/char/hw_random/virtio-rng",
}

// qemuKernel returns the path of an unpacked Debian kernel package (downloading it once).
func qemuKernel(t *testing.T) string {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join(qemuKernelCache, "linux-image-*-amd64_*.deb"))
	if len(debs) == 0 {
		os.MkdirAll(qemuKernelCache, 0o755)
		out, _ := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
		m := regexp.MustCompile(`Depends: (linux-image-[0-9.]+-[0-9]+-amd64)`).FindSubmatch(out)
		if m == nil {
			exec.Command("apt-get", "update").Run()
			out, _ = exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
			m = regexp.MustCompile(`Depends: (linux-image-[0-9.]+-[0-9]+-amd64)`).FindSubmatch(out)
		}
		if m == nil {
			t.Fatalf("cannot find Debian's kernel package (apt-cache depends linux-image-amd64):\n%s", out)
		}
		cmd := exec.Command("apt-get", "download", string(m[1]))
		cmd.Dir = qemuKernelCache
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get download %s: %v\n%s", m[1], err, out)
		}
		debs, _ = filepath.Glob(filepath.Join(qemuKernelCache, "linux-image-*-amd64_*.deb"))
	}
	deb := debs[len(debs)-1]
	dir := filepath.Join(qemuKernelCache, "wipe-unpacked", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	if _, err := os.Stat(filepath.Join(dir, "boot")); err != nil {
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		os.MkdirAll(tmp, 0o755)
		if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
		if err := os.Rename(tmp, dir); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestQEMUDecommission boots a VM (TCG) with an NVMe, a SATA (AHCI) and a virtio disk full of
// random data, runs Probe → MakePlan → Execute inside it through the real ioctls, and checks
// from the host that NVMe was purged by Format NVM, the others cleared by overwrite, every
// image reads back as zeros, and every certificate verifies.
func TestQEMUDecommission(t *testing.T) {
	testenv.RequireRoot(t)
	qemu := testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	busybox := testenv.RequireCommand(t, "busybox", "busybox-static")
	testenv.RequireCommand(t, "dpkg-deb", "dpkg")
	goBin := testenv.RequireCommand(t, "go", "golang (the Go toolchain)")
	kdir := qemuKernel(t)
	vmlinuz, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(kdir, "lib", "modules", "*", "kernel"))
	if len(vmlinuz) != 1 || len(mods) != 1 {
		t.Fatalf("kernel package in %s lacks vmlinuz or modules", kdir)
	}

	work := t.TempDir()
	root := filepath.Join(work, "root")
	for _, d := range []string{"bin", "mod", "proc", "sys", "dev"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	build := exec.Command(goBin, "build", "-o", filepath.Join(root, "check"), "slate/internal/cmd/qemucheck")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build qemucheck: %v\n%s", err, out)
	}
	copyFile(t, busybox, filepath.Join(root, "bin", "busybox"), 0o755)
	for _, l := range []string{"sh", "mount", "insmod", "sleep", "poweroff", "ls"} {
		os.Symlink("busybox", filepath.Join(root, "bin", l))
	}
	var insmods strings.Builder
	for _, m := range qemuModules {
		copyFile(t, filepath.Join(mods[0], m+".ko"), filepath.Join(root, "mod", filepath.Base(m)+".ko"), 0o644)
		insmods.WriteString("insmod /mod/" + filepath.Base(m) + ".ko\n")
	}
	initScript := "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n" +
		insmods.String() + "sleep 2\necho DISKS $(ls /sys/block)\n/check\npoweroff -f\n"
	os.WriteFile(filepath.Join(root, "init"), []byte(initScript), 0o755)
	initrd := filepath.Join(work, "initrd.gz")
	cpio := exec.Command("sh", "-c", "find . | "+busybox+" cpio -o -H newc -R 0:0 | gzip -1 > "+initrd)
	cpio.Dir = root
	if out, err := cpio.CombinedOutput(); err != nil {
		t.Fatalf("initramfs: %v\n%s", err, out)
	}

	images := map[string]string{}
	for _, n := range []string{"nvme", "sata", "virtio"} {
		images[n] = filepath.Join(work, n+".img")
		f, _ := os.Create(images[n])
		io.CopyN(f, rand.Reader, 16<<20)
		f.Close()
	}
	serial := filepath.Join(work, "vm.serial")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	vm := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "512", "-nographic", "-serial", "file:"+serial,
		"-monitor", "none", "-no-reboot", "-nic", "none",
		"-kernel", vmlinuz[0], "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1",
		"-drive", "file="+images["nvme"]+",if=none,id=nv0,format=raw", "-device", "nvme,serial=deadbeef,drive=nv0",
		"-drive", "file="+images["sata"]+",if=none,id=sata0,format=raw", "-device", "ahci,id=ahci0", "-device", "ide-hd,drive=sata0,bus=ahci0.0",
		"-drive", "file="+images["virtio"]+",if=none,id=vd0,format=raw", "-device", "virtio-blk-pci,drive=vd0",
		"-device", "virtio-rng-pci")
	if out, err := vm.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(serial)
		t.Fatalf("qemu: %v\n%s\n--- serial:\n%s", err, out, log)
	}
	log, _ := os.ReadFile(serial)
	if !bytes.Contains(log, []byte("QEMUCHECK-END")) || bytes.Contains(log, []byte("QEMUCHECK-ERROR")) {
		t.Fatalf("the VM did not finish the wipe:\n%s", log)
	}
	var pub ed25519.PublicKey
	var plan wipe.Plan
	var all []wipe.Result
	results := map[string]wipe.Result{}
	var certs [][]byte
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		kind, payload, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		b, _ := base64.StdEncoding.DecodeString(payload)
		switch kind {
		case "PUBKEY":
			pub = b
		case "PLAN":
			if err := json.Unmarshal(b, &plan); err != nil {
				t.Fatal(err)
			}
		case "RESULT":
			var r wipe.Result
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			results[r.Drive.Transport.String()] = r
			all = append(all, r)
		case "CERT":
			certs = append(certs, b)
		}
	}
	want := map[string]wipe.Method{"nvme": wipe.MethodNVMeFormatUserData, "ata": wipe.MethodOverwrite, "virtio": wipe.MethodOverwrite}
	for tr, m := range want {
		r, ok := results[tr]
		if !ok || r.Status != wipe.StatusSanitized || r.Method != m || !r.Verification.Passed {
			t.Errorf("%s disk: %+v (want %s, sanitized)", tr, r, m)
		}
	}
	if len(certs) != 3 {
		t.Fatalf("%d certificates, want 3:\n%s", len(certs), log)
	}
	// Slate's check of an agent's result accepts what real drives report (identities, the
	// Format command's completion, timings), so the appliance will certify them too.
	if problems, missing := wipe.CheckResult(plan, wipe.TaskResult{MachineID: "qemu-vm", Results: all}); len(problems) > 0 || len(missing) > 0 {
		t.Errorf("Slate would refuse the VM's real results: %v %v", problems, missing)
	}
	for _, r := range all {
		t.Logf("%s %s: %s, %d bytes written, %d read back, in %s", r.Drive.Path, r.Drive.Transport, r.Method, r.BytesWritten, r.Verification.BytesRead, r.End.Sub(r.Start))
	}
	for _, c := range certs {
		vc, err := cert.VerifyCertificate(c, pub)
		if err != nil {
			t.Errorf("certificate from the VM: %v", err)
		}
		if vc.Media.Interface == wipe.TransportNVMe && (vc.Sanitization.MethodType != wipe.LevelPurge || vc.Media.SerialNumber != "deadbeef") {
			t.Errorf("NVMe certificate: %+v", vc.Sanitization)
		}
	}
	for n, img := range images {
		b, _ := os.ReadFile(img)
		for i, c := range b {
			if c != 0 {
				t.Errorf("%s image is not erased: non-zero byte at offset %d", n, i)
				break
			}
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}
