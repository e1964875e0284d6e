package test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"slate/internal/testenv"
)

func ociLayout(t *testing.T) (dir, digest string) {
	t.Helper()
	img, err := random.Image(256<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return dir, d.String()
}

// TestRegistryPushAndReleaseApproval pushes with skopeo into the embedded registry, then
// walks a release through draft → approved with four-eyes, and checks every refusal.
func TestRegistryPushAndReleaseApproval(t *testing.T) {
	skopeo := testenv.RequireCommand(t, "skopeo", "skopeo")
	dir := t.TempDir()
	s := startServe(t, dir, "SLATE_ADMIN_PASSWORD=images-pw-0001", "SLATE_FOUR_EYES=true")
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "SLATE_SERVER=http://" + s.addr}
	pw := filepath.Join(t.TempDir(), "pw")
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(t, env, args...)
		if err != nil {
			t.Fatalf("slate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	os.WriteFile(pw, []byte("images-pw-0001\n"), 0o600)
	mustRun("login", "--password-file", pw)
	os.WriteFile(pw, []byte("pass-word-0001\n"), 0o600)
	mustRun("user", "add", "olga", "--role", "operator", "--password-file", pw)
	mustRun("user", "add", "omar", "--role", "operator", "--password-file", pw)
	mustRun("user", "add", "aldo", "--role", "auditor", "--password-file", pw)

	src, digest := ociLayout(t)
	dst := "docker://" + s.addr + "/plant/hmi:1.0"
	copyWith := func(creds string) (string, error) {
		args := []string{"copy", "--dest-tls-verify=false", "oci:" + src, dst}
		if creds != "" {
			args = append([]string{"copy", "--dest-tls-verify=false", "--dest-creds", creds}, args[2:]...)
		}
		out, err := execOut(skopeo, args...)
		return out, err
	}
	if out, err := copyWith(""); err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("push without credentials must be refused: %v\n%s", err, out)
	}
	if out, err := copyWith("aldo:pass-word-0001"); err == nil || !strings.Contains(strings.ToLower(out), "denied") {
		t.Fatalf("push as auditor must be refused: %v\n%s", err, out)
	}
	if out, err := copyWith("olga:pass-word-0001"); err != nil {
		t.Fatalf("push as operator: %v\n%s", err, out)
	}
	out, err := execOut(skopeo, "inspect", "--tls-verify=false", "--creds", "aldo:pass-word-0001", "--format", "{{.Digest}}", "docker://"+s.addr+"/plant/hmi:1.0")
	if err != nil || strings.TrimSpace(out) != digest {
		t.Fatalf("pull back as auditor: %v %q, want %s", err, out, digest)
	}

	// podman push works too (a build pipeline's other tool): an image imported into podman's
	// own storage (a throw-away root, vfs) is pushed with an operator's credentials and its
	// digest is in the registry afterwards; without credentials it is refused.
	t.Run("podman push", func(t *testing.T) {
		podman := testenv.RequireCommand(t, "podman", "podman")
		// podman wants a runroot path under 50 characters: t.TempDir() is longer.
		store, err := os.MkdirTemp("", "pm")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(store) })
		pm := func(args ...string) (string, error) {
			return execOut(podman, append([]string{"--root", store + "/root", "--runroot", store + "/run", "--storage-driver", "vfs",
				"--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)...)
		}
		rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
		if out, err := execOut("tar", "-C", "../scripts", "-cf", rootfs, "."); err != nil {
			t.Fatalf("tar: %v %s", err, out)
		}
		if out, err := pm("import", rootfs, "localhost/plant/podman:1"); err != nil {
			t.Fatalf("podman import: %v\n%s", err, out)
		}
		dest := "docker://" + s.addr + "/plant/podman:1"
		if out, err := pm("push", "--tls-verify=false", "localhost/plant/podman:1", dest); err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
			t.Fatalf("podman push without credentials must be refused: %v\n%s", err, out)
		}
		df := filepath.Join(t.TempDir(), "digest")
		if out, err := pm("push", "--tls-verify=false", "--creds", "olga:pass-word-0001", "--digestfile", df, "localhost/plant/podman:1", dest); err != nil {
			t.Fatalf("podman push as operator: %v\n%s", err, out)
		}
		pushed, _ := os.ReadFile(df)
		out, err := execOut(skopeo, "inspect", "--tls-verify=false", "--creds", "aldo:pass-word-0001", "--format", "{{.Digest}}", dest)
		if err != nil || strings.TrimSpace(out) != strings.TrimSpace(string(pushed)) || len(pushed) == 0 {
			t.Fatalf("registry has %q (%v), podman pushed %q", out, err, pushed)
		}
	})

	// Releases: the author cannot approve their own release; a missing image cannot be approved.
	olga := append(env[:0:0], env...)
	olga[0] = "XDG_CONFIG_HOME=" + t.TempDir()
	omar := append(env[:0:0], env...)
	omar[0] = "XDG_CONFIG_HOME=" + t.TempDir()
	runAs := func(e []string, args ...string) (string, error) { return run(t, e, args...) }
	for _, e := range [][]string{olga, omar} {
		user := map[bool]string{true: "olga", false: "omar"}[e[0] == olga[0]]
		if out, err := runAs(e, "login", "--username", user, "--password-file", pw); err != nil {
			t.Fatal(out)
		}
	}
	// slate registry push-disk: a raw (or compressed) disk image becomes a one-layer OCI
	// artifact; an image without the slate-config partition, or not a disk image at all, is
	// refused before anything is sent.
	t.Run("push-disk", func(t *testing.T) {
		sfdisk := testenv.RequireCommand(t, "sfdisk", "fdisk")
		mk := func(parts string) string {
			p := filepath.Join(t.TempDir(), "disk.img")
			os.WriteFile(p, make([]byte, 4<<20), 0o644)
			cmd := exec.Command(sfdisk, "--quiet", p)
			cmd.Stdin = strings.NewReader("label: gpt\n" + parts)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v %s", err, out)
			}
			return p
		}
		good := mk("start=2048, size=1M, type=linux, name=\"root\"\nsize=1M, type=linux, name=\"slate-config\"\n")
		bare := mk("start=2048, size=1M, type=linux, name=\"root\"\n")
		junk := filepath.Join(t.TempDir(), "junk.img")
		os.WriteFile(junk, []byte("not a disk"), 0o644)
		for f, want := range map[string]string{bare: `no GPT partition named "slate-config"`, junk: "is not a GPT disk image"} {
			if out, err := runAs(olga, "registry", "push-disk", "--repo", "plant/disk", "--tag", "bad", f); err == nil || !strings.Contains(out, want) {
				t.Fatalf("push-disk %s: %v\n%s", filepath.Base(f), err, out)
			}
		}
		aldo := append(env[:0:0], env...)
		aldo[0] = "XDG_CONFIG_HOME=" + t.TempDir()
		if out, err := runAs(aldo, "login", "--username", "aldo", "--password-file", pw); err != nil {
			t.Fatal(out)
		}
		if out, err := runAs(aldo, "registry", "push-disk", "--repo", "plant/disk", "--tag", "1", good); err == nil {
			t.Fatalf("an auditor pushed: %s", out)
		}
		out, err := runAs(olga, "registry", "push-disk", "--repo", "plant/disk", "--tag", "1", good)
		if err != nil {
			t.Fatalf("push-disk: %v\n%s", err, out)
		}
		i := strings.Index(out, "plant/disk@sha256:")
		if i < 0 {
			t.Fatalf("no digest printed:\n%s", out)
		}
		d := strings.Fields(out[i+len("plant/disk@"):])[0]
		got, err := execOut(skopeo, "inspect", "--tls-verify=false", "--creds", "aldo:pass-word-0001", "--raw", "docker://"+s.addr+"/plant/disk:1")
		if err != nil || !strings.Contains(got, "application/vnd.slate.disk.image.raw.v1") {
			t.Fatalf("manifest: %v %s", err, got)
		}
		if md, err := execOut(skopeo, "manifest-digest", writeTemp(t, got)); err != nil || strings.TrimSpace(md) != d {
			t.Fatalf("registry digest %q (%v), printed %s", md, err, d)
		}
	})

	if out, err := runAs(olga, "release", "create", "--name", "line3-hmi", "--version", "1", "--image", "plant/hmi@"+digest, "--karg", "quiet"); err != nil {
		t.Fatal(out)
	}
	if out, err := runAs(olga, "release", "approve", "line3-hmi@1"); err == nil || !strings.Contains(out, "four-eyes") {
		t.Fatalf("self-approval must be refused: %v\n%s", err, out)
	}
	if out, err := runAs(omar, "release", "approve", "line3-hmi@1"); err != nil || !strings.Contains(out, "now approved") {
		t.Fatalf("approval by a second operator: %v\n%s", err, out)
	}
	if out, err := runAs(omar, "release", "approve", "line3-hmi@1"); err == nil || !strings.Contains(out, "only a draft") {
		t.Fatalf("an approved release is immutable: %v\n%s", err, out)
	}
	missing := "sha256:" + strings.Repeat("ab", 32)
	// A draft naming an image the registry lacks is refused when it is written, not later at approval.
	if out, err := runAs(olga, "release", "create", "--name", "line3-hmi", "--version", "2", "--image", "plant/hmi@"+missing); err == nil || !strings.Contains(out, "not in Slate's registry") {
		t.Fatalf("a draft naming an image the registry lacks: %v\n%s", err, out)
	}
	if out, err := runAs(omar, "release", "approve", "line3-hmi@2"); err == nil {
		t.Fatalf("the refused draft exists and was approved: %s", out)
	}
	runAs(olga, "release", "create", "--name", "line3-hmi", "--version", "3")
	if out, err := runAs(omar, "release", "approve", "line3-hmi@3"); err == nil || !strings.Contains(out, "no image digest") {
		t.Fatalf("approving a release without a digest: %v\n%s", err, out)
	}
	// slate release delete: a draft goes (audited); an approved release is refused (retire it).
	runAs(olga, "release", "create", "--name", "line3-hmi", "--version", "4")
	if out, err := runAs(olga, "release", "delete", "line3-hmi@1"); err == nil || !strings.Contains(out, "only a draft can be deleted") {
		t.Fatalf("deleting an approved release: %v\n%s", err, out)
	}
	if out, err := runAs(olga, "release", "delete", "line3-hmi@4"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("deleting a draft: %v\n%s", err, out)
	}
	if out, err := runAs(olga, "release", "show", "line3-hmi@4"); err == nil {
		t.Fatalf("the deleted draft is still there: %s", out)
	}
	if out, err := runAs(olga, "release", "create", "--name", "x", "--version", "1", "--image", "plant/hmi@sha256:short"); err == nil || !strings.Contains(out, "64 hex") {
		t.Fatalf("bad digest: %v\n%s", err, out)
	}
	out = mustRun("release", "list")
	if !strings.Contains(out, "approved") || !strings.Contains(out, "omar") || !strings.Contains(out, "draft") {
		t.Fatalf("release list:\n%s", out)
	}
	audit := mustRun("audit", "list", "--action", "release.")
	if !strings.Contains(audit, "release.approve") || !strings.Contains(audit, "refused") || !strings.Contains(audit, "release.create") || !strings.Contains(audit, "release.delete") {
		t.Fatalf("release audit:\n%s", audit)
	}

	// The registry itself refuses a manifest whose blobs are missing and a blob whose digest lies.
	tok := apiToken(t, s.addr, "olga", "pass-word-0001")
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + missing + `","size":10},"layers":[]}`
	st, body := regDo(t, "PUT", "http://"+s.addr+"/v2/plant/hmi/manifests/broken", tok, "application/vnd.oci.image.manifest.v1+json", []byte(manifest))
	if st != 400 || !strings.Contains(body, "BLOB_UNKNOWN") {
		t.Fatalf("manifest for a missing blob: %d %s", st, body)
	}
	st, _ = regDo(t, "POST", "http://"+s.addr+"/v2/plant/hmi/blobs/uploads/", tok, "", nil)
	if st != 202 {
		t.Fatalf("start upload: %d", st)
	}
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/v2/plant/hmi/blobs/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + s.addr + loc
	}
	st, body = regDo(t, "PUT", loc+sep+"digest="+missing, tok, "application/octet-stream", []byte("these bytes do not hash to that digest"))
	if st != 400 || !strings.Contains(body, "DIGEST_INVALID") {
		t.Fatalf("blob with a lying digest: %d %s", st, body)
	}

	// Garbage collection from the CLI: admins only; the tagged, released image stays.
	if out, err := runAs(olga, "registry", "gc", "--dry-run"); err == nil || !strings.Contains(out, "may not") {
		t.Fatalf("an operator's registry gc: %v\n%s", err, out)
	}
	if out := mustRun("registry", "gc", "--dry-run"); !strings.Contains(out, "Would remove (dry run) 0 manifests") {
		t.Fatalf("registry gc --dry-run:\n%s", out)
	}
	if out := mustRun("registry", "gc"); !strings.Contains(out, "Removed 0 manifests") || !strings.Contains(out, "kept 3 manifests") { // the released one, the tagged podman and push-disk images
		t.Fatalf("registry gc:\n%s", out)
	}
	if out, err := execOut(skopeo, "inspect", "--tls-verify=false", "--creds", "aldo:pass-word-0001", "--format", "{{.Digest}}", "docker://"+s.addr+"/plant/hmi:1.0"); err != nil || strings.TrimSpace(out) != digest {
		t.Fatalf("pull after garbage collection: %v %q", err, out)
	}

	// Deleting images: never through the registry API (skopeo delete, even as admin); through
	// `slate registry rm` for admins only, refused for a release's image (naming the release)
	// and by tag, audited.
	scratch := "docker://" + s.addr + "/plant/scratch:1"
	if out, err := execOut(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", "olga:pass-word-0001", "oci:"+src, scratch); err != nil {
		t.Fatalf("push scratch: %v\n%s", err, out)
	}
	if out, err := execOut(skopeo, "delete", "--tls-verify=false", "--creds", "admin:images-pw-0001", "docker://"+s.addr+"/plant/scratch@"+digest); err == nil ||
		!strings.Contains(out, "slate registry rm") {
		t.Fatalf("skopeo delete as admin must be refused, pointing at slate registry rm: %v\n%s", err, out)
	}
	if out, err := runAs(olga, "registry", "rm", "plant/scratch@"+digest); err == nil || !strings.Contains(out, "may not") {
		t.Fatalf("an operator's registry rm: %v\n%s", err, out)
	}
	if out, err := run(t, env, "registry", "rm", "plant/hmi@"+digest); err == nil || !strings.Contains(out, "line3-hmi@1 (approved)") {
		t.Fatalf("registry rm of an approved release's image: %v\n%s", err, out)
	}
	if out, err := run(t, env, "registry", "rm", "plant/scratch:1"); err == nil || !strings.Contains(out, "never by tag") {
		t.Fatalf("registry rm by tag: %v\n%s", err, out)
	}
	if out := mustRun("registry", "rm", "plant/scratch@"+digest); !strings.Contains(out, "Deleted plant/scratch@"+digest+" and its tags 1") {
		t.Fatalf("registry rm:\n%s", out)
	}
	if out, err := execOut(skopeo, "inspect", "--tls-verify=false", "--creds", "aldo:pass-word-0001", scratch); err == nil {
		t.Fatalf("the deleted image is still there:\n%s", out)
	}
	if out, err := execOut(skopeo, "inspect", "--tls-verify=false", "--creds", "aldo:pass-word-0001", "--format", "{{.Digest}}", "docker://"+s.addr+"/plant/hmi:1.0"); err != nil || strings.TrimSpace(out) != digest {
		t.Fatalf("the release's image after registry rm: %v %q", err, out)
	}
	if audit := mustRun("audit", "list", "--action", "registry.delete"); strings.Count(audit, "registry.delete") != 2 || !strings.Contains(audit, "refused") {
		t.Fatalf("registry.delete audit:\n%s", audit)
	}
}

func regDo(t *testing.T, method, url, tok, ctype string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func execOut(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
