package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sys/unix"

	"slate/agent/agentproto"
)

// The install-bootc task (agentproto.KindInstallBootc) installs a bootc release by running
// the image's own `bootc install to-disk` in a chroot made from the image (no podman in the
// deploy environment). bootc is not installable where Slate is built, so this path is
// contract-tested (bootctask_test.go, docs/images.md), not run against a real bootc.

// BootcLabel is the label every bootc image carries
// (https://github.com/bootc-dev/bootc/blob/main/docs/src/bootc-images.md).
const BootcLabel = "containers.bootc"

// Paths inside the image's root that Slate writes before bootc runs. They live in the
// scratch copy of the image only, never on the installed system.
const (
	bootcKeysPath = "/etc/slate/root_ssh_authorized_keys"
	// bootc (ostree-ext) reads its pull secret from /run/ostree, /etc/ostree or
	// /usr/lib/ostree (https://github.com/bootc-dev/bootc/blob/main/docs/src/building/secrets.md).
	// /run is the host's, so the image's /etc is where the agent token stays private to this install.
	bootcAuthPath = "/etc/ostree/auth.json"
	// bootc has no --tls-verify=false; a plain-HTTP registry is declared in registries.conf.d
	// (https://github.com/bootc-dev/bootc/blob/main/docs/src/registries-and-offline.md).
	bootcRegistriesConf = "/etc/containers/registries.conf.d/99-slate-registry.conf"
	bootcBinary         = "/usr/bin/bootc"
)

// bootcRefs are the validated references of a task.
type bootcRefs struct {
	source name.Digest // <host>/<repo>@<digest>
	target name.Tag    // <host>/<repo>:<tag>
}

func bootcRefsOf(p agentproto.InstallBootcParams) (bootcRefs, error) {
	host, _, ok := strings.Cut(p.Image, "/")
	if !ok || host == "" {
		return bootcRefs{}, fmt.Errorf("image %q is not <registry host>/<repo>", p.Image)
	}
	src, err := name.NewDigest(p.Image+"@"+p.Digest, name.Insecure)
	if err != nil {
		return bootcRefs{}, fmt.Errorf("image %q digest %q: %w", p.Image, p.Digest, err)
	}
	// Without a '.' or ':' the first component would be read as a Docker Hub path: the
	// image must come from Slate's registry, never from the Internet.
	if src.RegistryStr() != host {
		return bootcRefs{}, fmt.Errorf("image %q does not start with a registry host (host:port): Slate sends its own registry's address", p.Image)
	}
	if p.TargetImgref == "" {
		return bootcRefs{}, errors.New("target_imgref (<repo>:<tag>) is required: it is what the installed system updates from")
	}
	tgt, err := name.NewTag(host+"/"+p.TargetImgref, name.Insecure, name.StrictValidation)
	if err != nil {
		return bootcRefs{}, fmt.Errorf("target_imgref %q is not <repo>:<tag>: %w", p.TargetImgref, err)
	}
	if tgt.RegistryStr() != host {
		return bootcRefs{}, fmt.Errorf("target_imgref %q is not <repo>:<tag> on Slate's registry", p.TargetImgref)
	}
	for _, k := range p.Kargs {
		// bootc's CLI (clap) would read a value starting with '-' as an option.
		if k == "" || strings.HasPrefix(k, "-") || strings.ContainsAny(k, "\x00\n") {
			return bootcRefs{}, fmt.Errorf("kernel argument %q is not valid: it must be non-empty, on one line, and not start with '-'", k)
		}
	}
	return bootcRefs{source: src, target: tgt}, nil
}

// bootcArgv is the command line Slate gives bootc
// (https://github.com/bootc-dev/bootc/blob/main/docs/src/man/bootc-install-to-disk.8.md).
//
//   - --source-imgref: bootc then fetches the image itself instead of looking for podman's
//     container storage, and no longer requires podman (it "still has to be run inside a
//     chroot created from the container image"; docs/src/bootc-install.md).
//   - --skip-fetch-check: the check would prove only that the installer, holding the agent
//     token Slate put in the chroot, can fetch the target; the installed system never has that
//     token, and older bootc ran the check by default and failed when the tag does not exist yet.
//   - --wipe: the chosen disk is Slate's to overwrite; without it bootc refuses a disk with
//     partitions on it.
func bootcArgv(r bootcRefs, kargs []string, keysPath, dev string) []string {
	argv := []string{"install", "to-disk",
		"--source-imgref", "registry:" + r.source.String(),
		"--target-imgref", r.target.String(),
		"--skip-fetch-check",
		"--wipe"}
	for _, k := range kargs {
		argv = append(argv, "--karg", k)
	}
	if keysPath != "" {
		argv = append(argv, "--root-ssh-authorized-keys", keysPath)
	}
	return append(argv, dev)
}

// bootcEnv is bootc's whole environment: nothing of the agent's leaks in.
//
//   - HOME: bootc sets it when unset, because containers/common (its image fetching) fails
//     without it; set it plainly rather than rely on that.
//   - BOOTC_SKIP_SELINUX_HOST_CHECK: the deploy environment runs without SELinux; older bootc
//     refused to install an SELinux-labelled image from such a host unless this is set (newer
//     bootc only warns). osbuild sets it for the same reason
//     (https://github.com/osbuild/osbuild/blob/main/stages/org.osbuild.bootc.install-to-filesystem).
//
// No `container=` and no /run/.containerenv: bootc reads those only to find podman's
// storage, which --source-imgref replaces.
func bootcEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"LANG=C.UTF-8",
		"BOOTC_SKIP_SELINUX_HOST_CHECK=1",
	}
}

// bootcHostMounts are the host paths bind-mounted (recursively) into the image's root: what
// `podman run --privileged --pid=host -v /dev:/dev -v /var/lib/containers:/var/lib/containers`
// gives bootc in its documented invocation (docs/src/bootc-install.md). bootc also insists
// that /dev, /var/lib/containers, /var/tmp and /run/udev are the host's own mounts: it
// compares each with /proc/1/root/<path> and otherwise bind-mounts them from PID 1's mount
// namespace itself, which fails when the host has no such directory
// (ensure_mirrored_host_mount in crates/lib/src/install.rs). /proc and /sys are whole, so
// that /proc/1/root, efivarfs (boot entries) and selinuxfs are where bootc looks.
func bootcHostMounts() []string {
	return []string{"/dev", "/proc", "/sys", "/run", "/var/lib/containers", "/var/tmp"}
}

// BootcOptions is how the install-bootc runner meets the machine.
type BootcOptions struct {
	// Disks lists the machine's disks (SysDisks in the deploy environment).
	Disks func() ([]Disk, error)
	// DevDir is where the disks' nodes are (/dev).
	DevDir string
	// ScratchParent holds the fresh directory, with a tmpfs mounted on it, where the image's
	// root is unpacked for the run and removed afterwards (default os.TempDir()).
	ScratchParent string
	Log           *slog.Logger
}

// RegisterBootc adds the install-bootc task.
func RegisterBootc(r *Registry, c *Client, o BootcOptions) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ScratchParent == "" {
		o.ScratchParent = os.TempDir()
	}
	if o.DevDir == "" {
		o.DevDir = "/dev"
	}
	b := &bootcInstaller{c: c, o: o}
	r.Register(agentproto.KindInstallBootc, RunnerFunc(b.run))
}

type bootcInstaller struct {
	c *Client
	o BootcOptions
}

func (b *bootcInstaller) run(ctx context.Context, t agentproto.Task, rep Reporter) (_ Outcome, err error) {
	var p agentproto.InstallBootcParams
	dec := json.NewDecoder(bytes.NewReader(t.Params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: params: %w", err)
	}
	refs, err := bootcRefsOf(p)
	if err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: %w", err)
	}
	ds, err := b.o.Disks()
	if err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: list disks: %w", err)
	}
	d, err := ChooseDisk(ds, p.Target)
	if err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: %w", err)
	}
	dev := filepath.Join(b.o.DevDir, d.Name)
	rep.Logf("installing %s (%s) onto %s (%s, %d bytes) with the image's own bootc", p.Release, refs.source, dev, d.Serial, d.Bytes)

	rep.Progress(0.02, "pulling "+p.Release)
	img, err := b.pull(ctx, refs.source)
	if err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: %w", err)
	}
	rep.Logf("pulled manifest %s: a bootc image (%s=1)", refs.source.DigestStr(), BootcLabel)

	s, err := newScratch(b.o.ScratchParent)
	if err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: %w", err)
	}
	defer func() {
		if cerr := s.close(); cerr != nil {
			// The disk is what matters: a scratch area left mounted costs RAM until the next
			// boot, so it fails only a run that failed anyway, and is logged otherwise.
			b.o.Log.Error("install-bootc: scratch area not cleaned up", "dir", s.dir, "err", cerr)
			rep.Logf("warning: %v", cerr)
			if err != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()

	rep.Progress(0.05, "unpacking "+p.Release)
	n, err := unpackImage(ctx, img, s.dir, func(n int64) {
		rep.Progress(0.3, fmt.Sprintf("unpacking %s: %d MiB", p.Release, n>>20))
	})
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w: the image's root does not fit into the scratch tmpfs (half the machine's RAM); give the machine more RAM or make the image smaller", err)
		}
		return Outcome{}, fmt.Errorf("install-bootc: unpack %s: %w", refs.source, err)
	}
	rep.Logf("unpacked the image's root file system (%d MiB) into %s", n>>20, s.dir)
	keys, err := b.configure(s.dir, refs, p.RootSSHAuthorizedKeys)
	if err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: prepare the image's root: %w", err)
	}
	if err := s.bindHost(bootcHostMounts()); err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: %w", err)
	}

	argv := bootcArgv(refs, p.Kargs, keys, dev)
	rep.Progress(0.4, "bootc install to-disk "+dev)
	rep.Logf("running %s %s (chroot %s)", bootcBinary, strings.Join(argv, " "), s.dir)
	if err := runChrooted(ctx, s.dir, bootcBinary, argv, bootcEnv(), rep); err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: bootc install to-disk %s: %w", dev, err)
	}
	rep.Progress(1, "installed "+p.Release)
	rep.Logf("bootc installed %s onto %s; the system follows %s", p.Release, dev, refs.target)
	out, err := json.Marshal(agentproto.InstallBootcResult{Disk: installedDisk(d), Release: p.Release,
		SourceImgref: "registry:" + refs.source.String(), TargetImgref: refs.target.String()})
	if err != nil {
		return Outcome{}, fmt.Errorf("install-bootc: encode the result: %w", err)
	}
	b.o.Log.Info("bootc image installed", "release", p.Release, "disk", dev, "image", refs.source.String())
	return Outcome{Result: out}, nil
}

// pull fetches the image's manifest and config from Slate's registry with the agent token,
// and checks that it is the digest asked for and a bootc image. Layers are read later, while
// unpacking, and go-containerregistry verifies each against its digest.
func (b *bootcInstaller) pull(ctx context.Context, ref name.Digest) (v1.Image, error) {
	var auth authn.Authenticator = authn.Anonymous
	if b.c.Token != "" {
		auth = &authn.Bearer{Token: b.c.Token}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH})}
	if b.c.HTTP != nil && b.c.HTTP.Transport != nil {
		opts = append(opts, remote.WithTransport(b.c.HTTP.Transport))
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil && strings.Contains(err.Error(), "does not match requested digest") {
		// go-containerregistry checks what it fetched by digest.
		return nil, fmt.Errorf("pull %s: the registry served another manifest than the release pins, refusing to install it: %w", ref, err)
	}
	if err != nil {
		return nil, pullError(ref, err)
	}
	if desc.Digest.String() != ref.DigestStr() {
		return nil, fmt.Errorf("pull %s: the registry served manifest %s, not the release's digest: refusing to install it", ref, desc.Digest)
	}
	img, err := desc.Image() // an index resolves to this machine's platform
	if err != nil {
		return nil, pullError(ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, pullError(ref, err)
	}
	if v := cfg.Config.Labels[BootcLabel]; v != "1" {
		return nil, fmt.Errorf("%s is not a bootc image (its config has no label %s=1): build it FROM a bootc base image, or make the release kind disk", ref, BootcLabel)
	}
	if cfg.Architecture != "" && cfg.Architecture != runtime.GOARCH {
		return nil, fmt.Errorf("%s is built for %s, this machine is %s: push an image for %s", ref, cfg.Architecture, runtime.GOARCH, runtime.GOARCH)
	}
	return img, nil
}

func pullError(ref name.Digest, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("pull %s: Slate's registry refused this machine's agent token (HTTP %d): the token may have expired with a reboot; power-cycle the machine into the deploy environment again: %w", ref, te.StatusCode, err)
		case http.StatusNotFound:
			return fmt.Errorf("pull %s: not in Slate's registry (HTTP 404): push the image again or assign another release: %w", ref, err)
		}
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}

// configure writes, into the image's root, the pull secret and registry setting bootc needs to
// fetch the image again from Slate's plain-HTTP registry, and the root SSH keys file. It
// returns the keys' path inside the root ("" without keys).
func (b *bootcInstaller) configure(dir string, r bootcRefs, keys string) (string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	host := r.source.RegistryStr()
	write := func(p string, data []byte, mode fs.FileMode) error {
		rel := strings.TrimPrefix(p, "/")
		if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
			return err
		}
		_ = root.Remove(rel) // the image's own file of that name, if any
		return root.WriteFile(rel, data, mode)
	}
	conf := fmt.Sprintf("# Written by slate-agent for bootc install: Slate's registry speaks plain HTTP.\n[[registry]]\nlocation = %q\ninsecure = true\n", host)
	if err := write(bootcRegistriesConf, []byte(conf), 0o644); err != nil {
		return "", err
	}
	if b.c.Token != "" {
		// Slate's registry takes an agent token as a Basic password (as `podman login -p <token>`
		// sends it); auth.json has no field for a raw bearer token.
		cred := base64.StdEncoding.EncodeToString([]byte("slate-agent:" + b.c.Token))
		auth, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": cred}}})
		if err := write(bootcAuthPath, auth, 0o600); err != nil {
			return "", err
		}
	}
	if strings.TrimSpace(keys) == "" {
		return "", nil
	}
	if !strings.HasSuffix(keys, "\n") {
		keys += "\n"
	}
	if err := write(bootcKeysPath, []byte(keys), 0o600); err != nil {
		return "", err
	}
	return bootcKeysPath, nil
}

// scratch is a tmpfs holding the image's root and the host mounts bound into it. A tmpfs
// of its own means one unmount frees everything, and nothing is ever removed recursively
// from a tree that may still have the host's /dev or /run bound into it.
type scratch struct {
	dir    string
	mounts []string // bound mount points, in order
}

func newScratch(parent string) (*scratch, error) {
	// mountinfo shows resolved absolute paths: close compares with those.
	parent, err := filepath.EvalSymlinks(parent)
	if err == nil {
		parent, err = filepath.Abs(parent)
	}
	if err != nil {
		return nil, fmt.Errorf("scratch area: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "slate-bootc-")
	if err != nil {
		return nil, fmt.Errorf("scratch area: %w", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("mount a tmpfs on %s for the image's root: %w", dir, err)
	}
	// Private: what is mounted below stays in this mount namespace.
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		os.Remove(dir)
		return nil, fmt.Errorf("make %s private: %w", dir, err)
	}
	return &scratch{dir: dir}, nil
}

// bindHost binds each host path (recursively) onto the same path in the image's root.
func (s *scratch) bindHost(paths []string) error {
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, p := range paths {
		if err := ensureHostDir(p); err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, "/")
		if err := ensureMountpoint(root, rel); err != nil {
			return fmt.Errorf("mount point %s in the image's root: %w", p, err)
		}
		dst := filepath.Join(s.dir, rel)
		if err := unix.Mount(p, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s into the image's root: %w", p, err)
		}
		s.mounts = append(s.mounts, dst)
		// Slave: the host's mounts still show inside, but unmounting the copies (ours now,
		// bootc's later) never propagates back and unmounts the host's /dev/pts or /run.
		if err := unix.Mount("", dst, "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("make %s a slave mount: %w", dst, err)
		}
	}
	return nil
}

// close unmounts everything (lazily, so a straggling process cannot keep the host's trees
// bound here) and removes the directory once nothing is mounted below it.
func (s *scratch) close() error {
	var errs []error
	for i := len(s.mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(s.mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", s.mounts[i], err))
		}
	}
	if err := unix.Unmount(s.dir, unix.MNT_DETACH); err != nil {
		errs = append(errs, fmt.Errorf("unmount %s: %w", s.dir, err))
	}
	left, err := mountsUnder(s.dir)
	if err != nil {
		errs = append(errs, err)
	}
	if len(left) > 0 || err != nil {
		errs = append(errs, fmt.Errorf("%s still has mounts %v: left in place (reboot to free it)", s.dir, left))
		return errors.Join(errs...)
	}
	// Never RemoveAll: the directory is empty once its tmpfs is gone.
	if err := os.Remove(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", s.dir, err))
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or below dir in this mount namespace.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of /proc/*/mountinfo fields.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ensureHostDir creates a host directory bootc expects (the deploy environment has no
// /var/lib/containers or /var/tmp of its own).
func ensureHostDir(p string) error {
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	mode := fs.FileMode(0o755)
	if p == "/var/tmp" {
		mode = 0o777 | fs.ModeSticky
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("create %s on the host for bootc: %w", p, err)
	}
	return os.Chmod(p, mode)
}

// ensureMountpoint makes every component of rel a real directory in the image's root. The
// kernel follows symlinks in a mount target from the host's root, so an image whose /var/tmp
// is a symlink to /tmp would otherwise have the host's /var/tmp bound onto the host's /tmp.
func ensureMountpoint(root *os.Root, rel string) error {
	cur := ""
	for part := range strings.SplitSeq(rel, "/") {
		cur = path.Join(cur, part)
		fi, err := root.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case fi.IsDir():
			continue
		default:
			if err := root.Remove(cur); err != nil {
				return err
			}
		}
		if err := root.Mkdir(cur, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// unpackImage writes the image's flattened root file system into dir. mutate.Extract applies
// the layers' whiteouts (.wh.<name> and opaque directories) and drops relative links that
// leave the root; os.Root keeps every write inside dir even when the image holds absolute
// symlinks. Extended attributes are not copied: bootc takes SELinux labels from the image it
// fetches itself, not from the chroot it runs in. It returns the bytes of file content written.
func unpackImage(ctx context.Context, img v1.Image, dir string, progress func(written int64)) (int64, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var written, reported int64
	var links []*tar.Header
	for {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return written, err
		}
		rel := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if rel == "" {
			continue
		}
		if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
			return written, fmt.Errorf("%s: %w", h.Name, err)
		}
		fi, lerr := root.Lstat(rel)
		if lerr == nil && (h.Typeflag != tar.TypeDir || !fi.IsDir()) {
			// Only a directory made for an upper layer's file exists already: that layer's
			// view of the path wins, as in the overlay the image describes.
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if lerr != nil {
				err = root.Mkdir(rel, 0o700)
			}
		case tar.TypeReg:
			var f *os.File
			if f, err = root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
				var n int64
				n, err = io.Copy(f, tr)
				written += n
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if progress != nil && written-reported >= 64<<20 {
				reported = written
				progress(written)
			}
		case tar.TypeSymlink:
			err = root.Symlink(h.Linkname, rel)
		case tar.TypeLink:
			links = append(links, h) // its target may come later in the flattened stream
			continue
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			err = mknodIn(root, rel, h)
		default:
			continue // sockets and the like have no place in an image
		}
		if err == nil {
			err = setOwnerMode(root, rel, h)
		}
		if err != nil {
			return written, fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	for _, h := range links {
		rel := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		target := strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")
		err := root.Link(target, rel)
		if errors.Is(err, fs.ErrNotExist) {
			// An upper layer deleted the target but not this link: in the overlay the link
			// keeps the content, which the flattened stream no longer carries.
			continue
		}
		if err != nil {
			return written, fmt.Errorf("hard link %s → %s: %w", h.Name, h.Linkname, err)
		}
	}
	return written, nil
}

func mknodIn(root *os.Root, rel string, h *tar.Header) error {
	d, err := root.Open(path.Dir(rel))
	if err != nil {
		return err
	}
	defer d.Close()
	mode := uint32(h.Mode & 0o7777)
	switch h.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	return unix.Mknodat(int(d.Fd()), path.Base(rel), mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
}

// setOwnerMode applies the entry's owner, then its mode (chown clears setuid bits).
func setOwnerMode(root *os.Root, rel string, h *tar.Header) error {
	if err := root.Lchown(rel, h.Uid, h.Gid); err != nil {
		return err
	}
	if h.Typeflag == tar.TypeSymlink {
		return nil
	}
	m := h.FileInfo().Mode()
	return root.Chmod(rel, m&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}

// runChrooted runs bin inside root, in a mount namespace of its own (private, so the
// partitions and file systems bootc mounts vanish with it and never reach the agent's),
// in the host's PID namespace (bootc checks it sees the host's PID 1, as with podman's
// --pid=host), as root with every capability (podman's --privileged). Its output goes to the
// task log line by line; the last lines make the error when it fails.
func runChrooted(ctx context.Context, root, bin string, argv, env []string, rep Reporter) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	// Stat through the root: /usr/bin/bootc may be a symlink within the image.
	_, err = r.Stat(strings.TrimPrefix(bin, "/"))
	r.Close()
	if err != nil {
		return fmt.Errorf("the image has no usable %s (is it a bootc image?): %w", bin, err)
	}
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Unshareflags: syscall.CLONE_NEWNS}
	// bootc cleans up (unmounts, closes LUKS) on SIGTERM; SIGKILL only if it does not end.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out := &outputLog{rep: rep}
	stdout, stderr := out.stream(), out.stream()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err = cmd.Run()
	stdout.flush()
	stderr.flush()
	if err != nil {
		if tail := out.last(); tail != "" {
			return fmt.Errorf("%w: %s (bootc's whole output is in the task log)", err, tail)
		}
		return err
	}
	return nil
}

// outputLog sends a command's output to the task log, one line per entry, and keeps the
// last lines for the error message.
type outputLog struct {
	mu   sync.Mutex
	rep  Reporter
	tail []string
}

func (o *outputLog) stream() *outputStream { return &outputStream{o: o} }

func (o *outputLog) line(s string) {
	s = strings.TrimRight(s, "\r")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 { // progress redrawn in place
		s = s[i+1:]
	}
	if strings.TrimSpace(s) == "" {
		return
	}
	o.rep.Logf("bootc: %s", s)
	o.tail = append(o.tail, s)
	if len(o.tail) > 3 {
		o.tail = o.tail[1:]
	}
}

func (o *outputLog) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.tail, " | ")
}

type outputStream struct {
	o       *outputLog
	partial []byte
}

func (s *outputStream) Write(b []byte) (int, error) {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.partial = append(s.partial, b...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.o.line(string(s.partial[:i]))
		s.partial = s.partial[i+1:]
	}
	if len(s.partial) > 64<<10 { // a runaway line still reaches the log
		s.o.line(string(s.partial))
		s.partial = nil
	}
	return len(b), nil
}

func (s *outputStream) flush() {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	if len(s.partial) > 0 {
		s.o.line(string(s.partial))
		s.partial = nil
	}
}
