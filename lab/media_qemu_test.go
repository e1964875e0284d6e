package lab

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/internal/testenv"
	"slate/lab/vbmc"
	"slate/pxe"
	"slate/redfish"
)

const isoMarker = "SLATE-ISO-DEPLOYENV-UP"

type noPlans struct{}

func (noPlans) BootPlan(context.Context, string) (pxe.Plan, error) {
	return pxe.Plan{}, pxe.ErrUnknownMachine
}

type noTokens struct{}

func (noTokens) IssueBootToken(context.Context, string, string, netip.Addr, time.Duration) (string, error) {
	return "", pxe.ErrNoBootExpected
}

// TestBootFromDeployISO boots one lab VM (SeaBIOS, TCG) from the deploy ISO through its
// virtual BMC, as an operator's "boot from virtual media" does: the ISO is built by
// scripts/deploy-iso.sh from the deploy kernel and an initramfs that prints a marker and its
// kernel line, Slate's HTTP handler serves it with its URL patched in, the BMC fetches it
// (InsertMedia) and starts the VM once from CD. The kernel line must carry slate.media and the
// slate.url Slate patched in: what the agent needs to ask for its token.
func TestBootFromDeployISO(t *testing.T) {
	testenv.RequireRoot(t)
	qemu := testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	testenv.RequireCommand(t, "grub-mkrescue", "grub-common")
	testenv.RequireCommand(t, "cpio", "cpio")
	kernel, err := filepath.Abs("../assets/deployenv/vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kernel); err != nil {
		t.Fatalf("the deploy kernel is missing (%v): run make deploy-env", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	de := filepath.Join(data, "deployenv")
	os.MkdirAll(de, 0o755)

	// The initramfs: busybox prints the marker and the kernel line, then powers off.
	root := filepath.Join(work, "root")
	for _, d := range []string{"bin", "dev", "proc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal("busybox missing: run make deps (Debian package busybox-static)")
	}
	os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755)
	init := "#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev\n/bin/busybox mount -t proc proc /proc\n" +
		"echo 1 > /proc/sys/kernel/printk\nexec </dev/console >/dev/console 2>&1\n" +
		"echo \"" + isoMarker + " cmdline=$(/bin/busybox cat /proc/cmdline) end\"\n/bin/busybox poweroff -f\n"
	os.WriteFile(filepath.Join(root, "init"), []byte(init), 0o755)
	initrd := filepath.Join(work, "initrd.gz")
	c := exec.Command("sh", "-c", "find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > "+initrd)
	c.Dir = root
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("initramfs: %v\n%s", err, out)
	}
	c = exec.Command("../scripts/deploy-iso.sh")
	c.Env = append(os.Environ(), "KERNEL="+kernel, "INITRD="+initrd, "DEPLOYISO_OUT="+filepath.Join(de, pxe.DeployISO))
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("deploy-iso.sh: %v\n%s", err, out)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	public := "http://10.99.0.1:8080"
	boot, err := pxe.NewHTTP(pxe.Config{DataDir: data, PublicURL: public}, noPlans{}, noTokens{}, log)
	if err != nil {
		t.Fatal(err)
	}
	slate := httptest.NewServer(boot)
	t.Cleanup(slate.Close)

	ns := testenv.NewNetns(t, "iso")
	testenv.Run(t, "ip", "-n", ns.Name, "tuntap", "add", "dev", "tap0", "mode", "tap")
	testenv.Run(t, "ip", "-n", ns.Name, "link", "set", "tap0", "up")
	dir := filepath.Join(work, "vm")
	os.MkdirAll(dir, 0o755)
	v := newVM(vmConfig{Name: "iso1", MAC: "52:54:00:15:00:01", UUID: "15015000-0000-4000-8000-000000000001", Serial: "ISO-1",
		Tap: "tap0", Netns: ns.Name, Dir: dir, Memory: 384, Accel: "tcg", QEMU: qemu}, log)
	t.Cleanup(func() { v.Stop(context.Background()) })
	b, err := vbmc.New(vbmc.Config{Name: "iso1", UUID: "15015000-0000-4000-8000-000000000001", Serial: "ISO-1", MAC: "52:54:00:15:00:01",
		Machine: v, User: "admin", Password: "password", MediaDir: filepath.Join(work, "media"), Default: vbmc.DefaultState(false), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	bmcSrv := httptest.NewTLSServer(b)
	t.Cleanup(bmcSrv.Close)

	cl, err := redfish.Dial(ctx, bmcSrv.URL, "admin", "password", "auto", "", log)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(context.Background())
	// The URL the BMC fetches is Slate's (public_url); here the BMC reaches Slate on loopback.
	if err := cl.InsertMedia(ctx, slate.URL+"/boot/deploy/"+pxe.DeployISO); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cl.SetBootOnce(ctx, redfish.BootOverride{Target: redfish.BootCD}); err != nil {
		t.Fatal(err)
	}
	if err := cl.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	want := "slate.media slate.url=" + public + " console=ttyS0"
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "serial.log"))
		s := string(b)
		if i := strings.Index(s, isoMarker+" cmdline="); i >= 0 && strings.Contains(s[i:], " end") {
			line := s[i:]
			line = line[:strings.Index(line, " end")]
			if !strings.Contains(line, want) {
				t.Fatalf("booted from the ISO, but the kernel line lacks %q:\n%s", want, line)
			}
			t.Logf("booted from the deploy ISO in %s: %s", time.Since(start).Round(time.Second), strings.Join(strings.Fields(line), " "))
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no %s on the serial console within the time limit; console:\n%s", isoMarker, tail(s, 3000))
		}
		time.Sleep(2 * time.Second)
	}
}
