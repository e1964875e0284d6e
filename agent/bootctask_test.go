package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"slate/agent/agentproto"
	"slate/internal/testenv"
)

// This file is the contract test of the bootc install path: bootc cannot be installed where
// Slate is built, so a test image whose /usr/bin/bootc is a recording stand-in checks the argv,
// environment and mounts Slate gives it against bootc's documented CLI (docs/images.md).

const bootcTestToken = "sla_agent-token-for-bootc"

// bootcTestRegistry is an OCI registry on loopback that, like Slate's, answers only requests
// carrying the agent's bearer token. swap maps a manifest path to the one served instead
// (a registry serving the wrong manifest).
type bootcTestRegistry struct {
	host string
	mu   sync.Mutex
	swap map[string]string
}

func newBootcTestRegistry(t *testing.T) *bootcTestRegistry {
	r := &bootcTestRegistry{swap: map[string]string{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer "+bootcTestToken {
			w.Header().Set("WWW-Authenticate", `Basic realm="slate registry"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		r.mu.Lock()
		if to, ok := r.swap[req.URL.Path]; ok {
			req.URL.Path = to
		}
		r.mu.Unlock()
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// push uploads img as host/repo:tag and returns its manifest digest.
func (r *bootcTestRegistry) push(t *testing.T, repo, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.NewTag(r.host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Bearer{Token: bootcTestToken})); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

type tarEntry struct {
	name string
	typ  byte
	mode int64
	body []byte
	link string
}

func tarLayer(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Linkname: e.link,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write(e.body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// staticBusybox reads /bin/busybox and makes sure it needs no shared libraries: the image
// has none.
func staticBusybox(t *testing.T) []byte {
	t.Helper()
	p := testenv.RequireCommand(t, "busybox", "busybox-static")
	f, err := elf.Open(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked: install busybox-static (make deps)", p)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// standInBootc records what it was given into recDir (under the host's /run, which Slate
// binds into the image's root) and exits 0, or 3 when asked to fail by a karg.
func standInBootc(recDir string) string {
	return `#!/bin/sh
# Recording stand-in for bootc (agent/bootctask_test.go): not bootc.
out=` + recDir + `
for a in "$@"; do echo "$a"; done > $out/argv
tr '\0' '\n' < /proc/$$/environ > $out/env
cat /proc/self/mounts > $out/mounts
prev=
for a in "$@"; do
	if [ "$prev" = --root-ssh-authorized-keys ]; then cat "$a" > $out/keys; fi
	prev=$a
done
cat /etc/ostree/auth.json > $out/auth.json
cat /etc/containers/registries.conf.d/99-slate-registry.conf > $out/registries.conf
id -u > $out/uid
pwd > $out/pwd
[ -e /etc/junk ] && echo present > $out/junk
ls /opt/a > $out/opaque
[ -c /dev/null ] && echo char > $out/devnull
for p in /dev /var/lib/containers /var/tmp /run; do echo "$p $(stat -f -c %i $p)"; done > $out/fsid
echo "Installing image: docker://stand-in"
echo "progress on stderr" >&2
for a in "$@"; do
	if [ "$a" = slate.test.fail ]; then
		echo "error: Installing to disk: Creating rootfs: stand-in failure" >&2
		exit 3
	fi
done
exit 0
`
}

// bootcTestImage is a tiny image: busybox as /bin/sh and friends (cat is a hard link), the
// stand-in as /usr/bin/bootc, and whiteouts for the unpacker to honour.
func bootcTestImage(t *testing.T, recDir string, labels map[string]string) v1.Image {
	t.Helper()
	bb := staticBusybox(t)
	dir := func(n string) tarEntry { return tarEntry{name: n, typ: tar.TypeDir, mode: 0o755} }
	sym := func(n, to string) tarEntry { return tarEntry{name: n, typ: tar.TypeSymlink, mode: 0o777, link: to} }
	file := func(n, body string) tarEntry {
		return tarEntry{name: n, typ: tar.TypeReg, mode: 0o644, body: []byte(body)}
	}
	base := tarLayer(t, dir("bin/"), tarEntry{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, body: bb},
		tarEntry{name: "bin/cat", typ: tar.TypeLink, link: "bin/busybox"},
		sym("bin/sh", "busybox"), sym("bin/tr", "busybox"), sym("bin/id", "busybox"), sym("bin/ls", "busybox"),
		sym("bin/pwd", "busybox"), sym("bin/stat", "busybox"),
		dir("etc/"), file("etc/junk", "deleted by the next layer\n"), file("etc/os-release", "ID=stand-in\n"),
		dir("opt/"), dir("opt/a/"), file("opt/a/x", "hidden by an opaque whiteout\n"),
		// An image whose /var/tmp is a symlink to /tmp must not get the host's /var/tmp bound
		// onto the host's /tmp.
		dir("var/"), sym("var/tmp", "/tmp"), dir("usr/"), dir("usr/bin/"))
	top := tarLayer(t, file("etc/.wh.junk", ""), file("opt/a/.wh..wh..opq", ""), file("opt/a/y", "new\n"),
		tarEntry{name: "usr/bin/bootc", typ: tar.TypeReg, mode: 0o755, body: []byte(standInBootc(recDir))})
	img, err := mutate.AppendLayers(empty.Image, base, top)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// bootcRep records formatted log lines.
type bootcRep struct {
	mu   sync.Mutex
	logs []string
}

func (r *bootcRep) Progress(float64, string) {}
func (r *bootcRep) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
func (r *bootcRep) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

var bootcTestDisks = []Disk{{Name: "vdz", Serial: "SLATE-BOOTC-TEST", Bytes: 64 << 30}, {Name: "sdz", Serial: "OTHER", Bytes: 32 << 30}}

func runBootcTask(t *testing.T, token, scratchParent string, p agentproto.InstallBootcParams) (Outcome, *bootcRep, error) {
	t.Helper()
	reg := NewRegistry()
	RegisterBootc(reg, &Client{Token: token}, BootcOptions{
		Disks: func() ([]Disk, error) { return bootcTestDisks, nil }, DevDir: "/dev", ScratchParent: scratchParent})
	params, _ := json.Marshal(p)
	rep := &bootcRep{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := reg.runners[agentproto.KindInstallBootc].Run(ctx, agentproto.Task{ID: "t-bootc", Kind: agentproto.KindInstallBootc, Params: params}, rep)
	return out, rep, err
}

// hostMountPoints lists the host's system mount points (/, /dev, /proc, /sys, /run and what is
// below them, except the folders where other tests make their own mounts). The install binds
// these recursively into its scratch root; a propagation mistake on unmount would take them
// away from the host, which is what the comparison catches. Mounts other tests of the same run
// make and remove (network namespaces under /run/netns, tmpfs under temp folders) are left
// out: comparing the whole table failed whenever another package created a namespace meanwhile.
func hostMountPoints(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) <= 4 {
			continue
		}
		p := unescapeMount(f[4])
		if systemMount(p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func systemMount(p string) bool {
	if p == "/" {
		return true
	}
	for _, skip := range []string{"/run/netns", "/run/slate-", "/tmp", "/var/tmp"} {
		if p == skip || strings.HasPrefix(p, skip+"/") {
			return false
		}
	}
	for _, sys := range []string{"/dev", "/proc", "/sys", "/run"} {
		if p == sys || strings.HasPrefix(p, sys+"/") {
			return true
		}
	}
	return false
}

func mountTable(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 2 {
			m[unescapeMount(f[1])] = f[2]
		}
	}
	return m
}

func assertScratchGone(t *testing.T, parent string) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("scratch parent %s still holds %v: the scratch directory must be removed", parent, ents)
	}
	if left, _ := mountsUnder(parent); len(left) != 0 {
		t.Errorf("still mounted under %s: %v", parent, left)
	}
}

// TestBootcInstallContract runs the install-bootc task for real (pull, unpack into a tmpfs,
// bind mounts, chroot, exec) with the stand-in as bootc, and checks what bootc was given.
func TestBootcInstallContract(t *testing.T) {
	testenv.RequireRoot(t)
	reg := newBootcTestRegistry(t)
	recRoot, err := os.MkdirTemp("/run", "slate-bootc-contract-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(recRoot) })
	img := bootcTestImage(t, recRoot, map[string]string{BootcLabel: "1"})
	digest := reg.push(t, "plant/hmi", "pushed", img)
	keys := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBootcContractTestKey operator@plant"
	before := hostMountPoints(t)
	hostMounts := mountTable(t, "/proc/self/mounts")

	t.Run("installs", func(t *testing.T) {
		scratchParent := t.TempDir()
		t0 := time.Now()
		out, rep, err := runBootcTask(t, bootcTestToken, scratchParent, agentproto.InstallBootcParams{
			Image: reg.host + "/plant/hmi", Digest: digest, TargetImgref: "plant/hmi:1.4",
			Target: DiskTarget{Serial: "SLATE-BOOTC-TEST"}, Kargs: []string{"console=ttyS0,115200n8", "quiet"},
			RootSSHAuthorizedKeys: keys, Release: "hmi@1.4"})
		if err != nil {
			t.Fatalf("install-bootc: %v\nlog:\n%s", err, rep.text())
		}
		t.Logf("install-bootc with the stand-in took %v", time.Since(t0).Round(time.Millisecond))
		read := func(n string) string {
			b, err := os.ReadFile(filepath.Join(recRoot, n))
			if err != nil {
				t.Errorf("the stand-in did not record %s: %v", n, err)
			}
			return string(b)
		}

		// argv, against bootc-install-to-disk(8).
		want := []string{"install", "to-disk",
			"--source-imgref", "registry:" + reg.host + "/plant/hmi@" + digest,
			"--target-imgref", reg.host + "/plant/hmi:1.4",
			"--skip-fetch-check", "--wipe",
			"--karg", "console=ttyS0,115200n8", "--karg", "quiet",
			"--root-ssh-authorized-keys", "/etc/slate/root_ssh_authorized_keys",
			"/dev/vdz"}
		if got := strings.Split(strings.TrimSuffix(read("argv"), "\n"), "\n"); !slices.Equal(got, want) {
			t.Errorf("argv:\n got %q\nwant %q", got, want)
		}
		// The whole environment: nothing of the test process leaks in.
		env := strings.Split(strings.TrimSuffix(read("env"), "\n"), "\n")
		slices.Sort(env)
		wantEnv := []string{"BOOTC_SKIP_SELINUX_HOST_CHECK=1", "HOME=/root", "LANG=C.UTF-8",
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		if !slices.Equal(env, wantEnv) {
			t.Errorf("environment:\n got %q\nwant %q", env, wantEnv)
		}
		if got := strings.TrimSpace(read("uid")); got != "0" {
			t.Errorf("bootc ran as uid %s, want root", got)
		}
		if got := strings.TrimSpace(read("pwd")); got != "/" {
			t.Errorf("bootc ran in %s, want /", got)
		}
		// Mounts, as bootc sees them from inside its chroot.
		inside := mountTable(t, filepath.Join(recRoot, "mounts"))
		if inside["/"] != "tmpfs" {
			t.Errorf("the image's root is on %q, want a tmpfs (mounts: %v)", inside["/"], inside)
		}
		for _, p := range []string{"/dev", "/proc", "/sys", "/run", "/var/lib/containers", "/var/tmp"} {
			if _, ok := inside[p]; !ok {
				t.Errorf("%s is not mounted inside the chroot (mounts: %v)", p, inside)
			}
		}
		for p, fstype := range map[string]string{"/proc": "proc", "/sys": "sysfs", "/dev": hostMounts["/dev"]} {
			if inside[p] != fstype {
				t.Errorf("%s inside is %q, want %q (the host's own)", p, inside[p], fstype)
			}
		}
		for _, sub := range []string{"/dev/pts", "/dev/shm", "/sys/fs/cgroup"} {
			if _, onHost := hostMounts[sub]; onHost {
				if _, ok := inside[sub]; !ok {
					t.Errorf("%s is mounted on the host but not inside: the binds must be recursive", sub)
				}
			}
		}
		if strings.TrimSpace(read("devnull")) != "char" {
			t.Error("/dev/null is not a character device inside: /dev is not the host's")
		}
		// bootc takes a path as the host's own when statvfs gives the same f_fsid for it and for
		// /proc/1/root/<path> (is_same_as_host, crates/mount/src/mount.rs); otherwise it tries
		// to bind-mount it from PID 1's mount namespace itself. In the deploy environment PID 1
		// is the agent, whose root is this host's.
		fsid := strings.Split(strings.TrimSpace(read("fsid")), "\n")
		if len(fsid) != 4 {
			t.Errorf("fsid record: %q", fsid)
		}
		for _, l := range fsid {
			f := strings.Fields(l)
			if len(f) != 2 {
				t.Errorf("fsid record line %q", l)
				continue
			}
			var st unix.Statfs_t
			if err := unix.Statfs(f[0], &st); err != nil {
				t.Fatal(err)
			}
			// busybox prints f_fsid as one 64-bit hex number, val[0] high.
			host := fmt.Sprintf("%x", uint64(uint32(st.Fsid.Val[0]))<<32|uint64(uint32(st.Fsid.Val[1])))
			if f[1] != host {
				t.Errorf("%s inside has f_fsid %s, the host's %s: bootc would not take it as the host's own", f[0], f[1], host)
			}
		}
		// Files Slate writes for bootc.
		if got := read("keys"); got != keys+"\n" {
			t.Errorf("authorized keys file: got %q", got)
		}
		var auth struct {
			Auths map[string]struct{ Auth string } `json:"auths"`
		}
		if err := json.Unmarshal([]byte(read("auth.json")), &auth); err != nil {
			t.Errorf("/etc/ostree/auth.json: %v", err)
		}
		if got := auth.Auths[reg.host].Auth; got != base64.StdEncoding.EncodeToString([]byte("slate-agent:"+bootcTestToken)) {
			t.Errorf("pull secret for %s: got %q", reg.host, got)
		}
		if rc := read("registries.conf"); !strings.Contains(rc, fmt.Sprintf("location = %q", reg.host)) || !strings.Contains(rc, "insecure = true") {
			t.Errorf("registries.conf.d drop-in:\n%s", rc)
		}
		// The unpacked layers.
		if _, err := os.Stat(filepath.Join(recRoot, "junk")); err == nil {
			t.Error("/etc/junk is in the image's root although the top layer whites it out")
		}
		if got := strings.Fields(read("opaque")); !slices.Equal(got, []string{"y"}) {
			t.Errorf("/opt/a holds %v, want only y (the lower layer's x is under an opaque whiteout)", got)
		}
		// Output streamed to the task log; the result names what was installed.
		for _, l := range []string{"bootc: Installing image: docker://stand-in", "bootc: progress on stderr"} {
			if !strings.Contains(rep.text(), l) {
				t.Errorf("task log lacks %q:\n%s", l, rep.text())
			}
		}
		var res map[string]any
		json.Unmarshal(out.Result, &res)
		if res["target_imgref"] != reg.host+"/plant/hmi:1.4" || res["release"] != "hmi@1.4" {
			t.Errorf("result: %s", out.Result)
		}
		assertScratchGone(t, scratchParent)
		if after := hostMountPoints(t); !slices.Equal(before, after) {
			t.Errorf("the host's mounts changed:\nbefore %v\nafter  %v", before, after)
		}
		for _, p := range []string{"/tmp", "/var/tmp"} {
			if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
				t.Errorf("host %s is no longer a directory: %v", p, err)
			}
		}
	})

	t.Run("bootc fails", func(t *testing.T) {
		scratchParent := t.TempDir()
		_, rep, err := runBootcTask(t, bootcTestToken, scratchParent, agentproto.InstallBootcParams{
			Image: reg.host + "/plant/hmi", Digest: digest, TargetImgref: "plant/hmi:1.4",
			Target: DiskTarget{Serial: "SLATE-BOOTC-TEST"}, Kargs: []string{"slate.test.fail"}, Release: "hmi@1.4"})
		if err == nil {
			t.Fatal("bootc exited 3, yet the task succeeded")
		}
		t.Logf("failed: %v", err)
		for _, s := range []string{"exit status 3", "error: Installing to disk: Creating rootfs: stand-in failure", "/dev/vdz"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q lacks %q", err, s)
			}
		}
		if !strings.Contains(rep.text(), "bootc: error: Installing to disk") {
			t.Errorf("bootc's error is not in the task log:\n%s", rep.text())
		}
		// Without keys, no --root-ssh-authorized-keys.
		if argv, _ := os.ReadFile(filepath.Join(recRoot, "argv")); strings.Contains(string(argv), "--root-ssh-authorized-keys") {
			t.Errorf("argv without keys still passes the option:\n%s", argv)
		}
		assertScratchGone(t, scratchParent)
		if after := hostMountPoints(t); !slices.Equal(before, after) {
			t.Errorf("the host's mounts changed:\nbefore %v\nafter  %v", before, after)
		}
	})
}

// TestBootcInstallRefusals: what must not be installed is refused before anything is
// unpacked or mounted (so this needs no root).
func TestBootcInstallRefusals(t *testing.T) {
	reg := newBootcTestRegistry(t)
	okDigest := reg.push(t, "plant/hmi", "1.4", bootcTestImage(t, "/run/unused", map[string]string{BootcLabel: "1"}))
	plainDigest := reg.push(t, "plant/plain", "1", bootcTestImage(t, "/run/unused", map[string]string{"org.opencontainers.image.title": "plain"}))
	fake := "sha256:" + strings.Repeat("ab", 32)
	reg.swap["/v2/plant/hmi/manifests/"+fake] = "/v2/plant/hmi/manifests/" + okDigest
	params := func(repo, digest string) agentproto.InstallBootcParams {
		return agentproto.InstallBootcParams{Image: reg.host + "/" + repo, Digest: digest, TargetImgref: "plant/hmi:1.4",
			Target: DiskTarget{Serial: "SLATE-BOOTC-TEST"}, Release: "hmi@1.4"}
	}
	for _, c := range []struct {
		name, token string
		p           agentproto.InstallBootcParams
		want        []string
	}{
		{"no bootc label", bootcTestToken, params("plant/plain", plainDigest), []string{"not a bootc image", "containers.bootc=1"}},
		{"digest mismatch", bootcTestToken, params("plant/hmi", fake), []string{"does not match requested digest", fake}},
		{"no token", "", params("plant/hmi", okDigest), []string{"refused this machine's agent token", "HTTP 401"}},
		{"wrong token", "sla_not-this-one", params("plant/hmi", okDigest), []string{"refused this machine's agent token", "HTTP 401"}},
		{"unknown digest", bootcTestToken, params("plant/hmi", "sha256:"+strings.Repeat("cd", 32)), []string{"not in Slate's registry", "HTTP 404"}},
		{"unknown disk", bootcTestToken, func() agentproto.InstallBootcParams {
			p := params("plant/hmi", okDigest)
			p.Target.Serial = "NOPE"
			return p
		}(), []string{"NOPE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			scratchParent := t.TempDir()
			_, rep, err := runBootcTask(t, c.token, scratchParent, c.p)
			if err == nil {
				t.Fatalf("installed anyway; log:\n%s", rep.text())
			}
			t.Logf("refused: %v", err)
			for _, s := range c.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			assertScratchGone(t, scratchParent)
		})
	}
}

// TestBootcParams checks argv building and the validation of what Slate sends.
func TestBootcParams(t *testing.T) {
	d := "sha256:" + strings.Repeat("0f", 32)
	p := agentproto.InstallBootcParams{Image: "10.0.0.1:8080/plant/hmi", Digest: d, TargetImgref: "plant/hmi:1.4"}
	r, err := bootcRefsOf(p)
	if err != nil {
		t.Fatal(err)
	}
	got := bootcArgv(r, nil, "", "/dev/nvme0n1")
	want := []string{"install", "to-disk", "--source-imgref", "registry:10.0.0.1:8080/plant/hmi@" + d,
		"--target-imgref", "10.0.0.1:8080/plant/hmi:1.4", "--skip-fetch-check", "--wipe", "/dev/nvme0n1"}
	if !slices.Equal(got, want) {
		t.Errorf("argv:\n got %q\nwant %q", got, want)
	}
	for _, c := range []struct {
		name string
		mod  func(*agentproto.InstallBootcParams)
		want string
	}{
		{"docker hub", func(p *agentproto.InstallBootcParams) { p.Image = "plant/hmi" }, "registry host"},
		{"no repo", func(p *agentproto.InstallBootcParams) { p.Image = "10.0.0.1:8080" }, "registry host"},
		{"bad digest", func(p *agentproto.InstallBootcParams) { p.Digest = "sha256:1234" }, "digest"},
		{"no target", func(p *agentproto.InstallBootcParams) { p.TargetImgref = "" }, "target_imgref"},
		{"target without tag", func(p *agentproto.InstallBootcParams) { p.TargetImgref = "plant/hmi" }, "target_imgref"},
		{"target with a host", func(p *agentproto.InstallBootcParams) { p.TargetImgref = "10.0.0.1:8080/plant/hmi:1" }, "target_imgref"},
		{"karg option", func(p *agentproto.InstallBootcParams) { p.Kargs = []string{"--wipe"} }, "kernel argument"},
		{"empty karg", func(p *agentproto.InstallBootcParams) { p.Kargs = []string{""} }, "kernel argument"},
	} {
		q := p
		c.mod(&q)
		if _, err := bootcRefsOf(q); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error about %s", c.name, err, c.want)
		}
	}
}
