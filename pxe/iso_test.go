package pxe

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"slate/lifecycle"
)

// A fake ISO: the placeholder twice (once across the scanner's 1 MiB chunk boundary), a
// marker without its padding (not a placeholder: left alone), and other bytes.
func fakeISO(t *testing.T, path string) []byte {
	t.Helper()
	ph := []byte(ISOArgsMarker + strings.Repeat("_", ISOArgsLen-len(ISOArgsMarker)))
	b := bytes.Repeat([]byte{0xa5}, 3<<20)
	copy(b[4096:], ph)
	copy(b[(1<<20)-100:], ph)
	copy(b[2<<20:], ISOArgsMarker+"xyz")
	writeFile(t, path, b)
	return b
}

// The ISO Slate serves carries its URL and kernel args in place of every placeholder, and is
// otherwise byte-identical; a Range request (as BMCs send) gets the patched bytes too.
func TestDeployISOIsServedWithSlatesURLPatchedIn(t *testing.T) {
	env := newHTTPEnv(t, true)
	orig := fakeISO(t, filepath.Join(env.data, "deployenv", DeployISO))
	resp, body := env.get(t, "/boot/deploy/"+DeployISO)
	if resp.StatusCode != 200 || len(body) != len(orig) {
		t.Fatalf("status %d, %d bytes (want %d)", resp.StatusCode, len(body), len(orig))
	}
	want := "slate.url=http://10.99.0.1:8080 console=ttyS0"
	for _, off := range []int{4096, (1 << 20) - 100} {
		got := body[off : off+ISOArgsLen]
		if strings.TrimRight(got, " ") != want || len(got) != ISOArgsLen {
			t.Fatalf("at %d: %q", off, strings.TrimRight(got, " "))
		}
	}
	if !strings.Contains(body, ISOArgsMarker+"xyz") {
		t.Fatal("a marker without its padding was patched")
	}
	if strings.Count(body, ISOArgsMarker) != 1 {
		t.Fatal("a placeholder was left unpatched")
	}
	// outside the placeholders, the original bytes
	exp := []byte(body)
	copy(exp[4096:], orig[4096:4096+ISOArgsLen])
	copy(exp[(1<<20)-100:], orig[(1<<20)-100:(1<<20)-100+ISOArgsLen])
	if !bytes.Equal(exp, orig) {
		t.Fatal("bytes outside the placeholders changed")
	}
	// A range that starts inside the second placeholder.
	resp, part := env.get(t, "/boot/deploy/"+DeployISO, "Range", "bytes=1048486-1048600")
	if resp.StatusCode != http.StatusPartialContent || part != body[1048486:1048601] {
		t.Fatalf("range: status %d %q", resp.StatusCode, part)
	}
}

// An ISO not built by deploy-iso.sh (no placeholder) is refused with what to do, not served
// with no way for the agent to find Slate; a missing ISO says how to build it.
func TestDeployISOWithoutPlaceholderOrMissingIsRefused(t *testing.T) {
	env := newHTTPEnv(t, true)
	resp, body := env.get(t, "/boot/deploy/"+DeployISO)
	if resp.StatusCode != 404 || !strings.Contains(body, "make deploy-iso") {
		t.Fatalf("missing ISO: %d %s", resp.StatusCode, body)
	}
	writeFile(t, filepath.Join(env.data, "deployenv", DeployISO), bytes.Repeat([]byte{1}, 5000))
	resp, body = env.get(t, "/boot/deploy/"+DeployISO)
	if resp.StatusCode != 500 || !strings.Contains(body, "no placeholder") {
		t.Fatalf("ISO without placeholder: %d %s", resp.StatusCode, body)
	}
}

// Kernel args that would break out of GRUB's kernel line (or overflow the placeholder) are
// refused, not patched in.
func TestISOArgsRefuseUnsafeOrLongValues(t *testing.T) {
	if _, err := isoArgs("http://10.0.0.1:8080", "console=ttyS0"); err != nil {
		t.Fatal(err)
	}
	if _, err := isoArgs("http://10.0.0.1:8080;reboot", ""); err == nil {
		t.Fatal("a URL with ; was accepted")
	}
	if _, err := isoArgs("http://10.0.0.1:8080", strings.Repeat("a", ISOArgsLen)); err == nil {
		t.Fatal("args longer than the placeholder were accepted")
	}
}

// The media boot's token: an attacker (or the machine before anyone asked for its boot) gets
// none and nothing is written; once the boot is expected, the MAC's machine gets exactly one
// token; a machine with no deploy work gets none.
func TestMediaTokenOnlyForAnExpectedBoot(t *testing.T) {
	env := newHTTPEnv(t, true)
	mac := "52:54:00:b0:00:21"
	id := deployMachine(t, env, mac)
	dbPath := filepath.Join(filepath.Dir(env.data), "slate.db")
	before := dbSnapshot(t, dbPath)
	resp, body := env.get(t, "/boot/media-token/"+mac)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "does not expect machine "+id) {
		t.Fatalf("unexpected boot: %d %s", resp.StatusCode, body)
	}
	if after := dbSnapshot(t, dbPath); after != before {
		t.Fatalf("a refused token request wrote:\n%s\n%s", before, after)
	}
	if resp, _ := env.get(t, "/boot/media-token/52:54:00:b0:00:99"); resp.StatusCode != 404 {
		t.Fatalf("unknown MAC: %d", resp.StatusCode)
	}
	env.expect(t, id)
	req, _ := http.NewRequest("HEAD", env.srv.URL+"/boot/media-token/"+mac, nil)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", r, err)
	}
	resp, body = env.get(t, "/boot/media-token/"+mac)
	tok := strings.TrimSpace(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(tok, "sla_") || resp.Header.Get("Slate-Machine") != id {
		t.Fatalf("expected boot (HEAD must not spend it): %d %q", resp.StatusCode, body)
	}
	if owner, err := env.tokenOwner(tok); err != nil || owner != id {
		t.Fatalf("token owner %q (%v)", owner, err)
	}
	if resp, _ := env.get(t, "/boot/media-token/"+mac); resp.StatusCode != http.StatusConflict {
		t.Fatalf("a second token for one expected boot: %d", resp.StatusCode)
	}
	// no deploy work: no token even when a boot is expected
	mac2 := "52:54:00:b0:00:22"
	id2 := env.machine(t, mac2, lifecycle.Deployed)
	env.planner.set(mac2, Plan{MachineID: id2, State: lifecycle.Deployed, Action: ActionLocalDisk})
	env.expect(t, id2)
	if resp, body := env.get(t, "/boot/media-token/"+mac2); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "no deploy-environment work") {
		t.Fatalf("local-disk machine: %d %s", resp.StatusCode, body)
	}
	if _, ok, _ := env.store.BootExpected(context.Background(), id2); !ok {
		t.Fatal("a refused request consumed the expectation")
	}
}

// The real ISO, when the tools are here: scripts/deploy-iso.sh builds it from a kernel and
// initrd, and its one placeholder is where Slate finds it. Needs grub-mkrescue (make deps).
func TestDeployISOScriptBuildsAPatchableISO(t *testing.T) {
	if _, err := exec.LookPath("grub-mkrescue"); err != nil {
		t.Fatalf("grub-mkrescue missing: run make deps (grub-common, grub-pc-bin, grub-efi-amd64-bin, xorriso, mtools): %v", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "vmlinuz"), bytes.Repeat([]byte("K"), 4096))
	writeFile(t, filepath.Join(dir, "initrd.gz"), bytes.Repeat([]byte("I"), 4096))
	out := filepath.Join(dir, "deploy.iso")
	cmd := exec.Command("../scripts/deploy-iso.sh")
	cmd.Env = append(os.Environ(), "DEPLOYENV_OUT="+dir, "DEPLOYISO_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy-iso.sh: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	offs, err := findPlaceholders(f, st.Size())
	if err != nil || len(offs) != 1 {
		t.Fatalf("placeholders %v (%v), want one", offs, err)
	}
	b := make([]byte, 0x8000+6)
	f.ReadAt(b, 0)
	if string(b[0x8001:0x8006]) != "CD001" || b[510] != 0x55 || b[511] != 0xaa {
		t.Fatal("not a hybrid ISO (no ISO 9660 descriptor or no MBR signature)")
	}
}
