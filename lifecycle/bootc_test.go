package lifecycle

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"slate/agent/agentproto"
	"slate/inventory"
)

// TestBootcInstallParams: the params Slate builds are exactly what the agent's install-bootc
// task reads (decoded strictly into agentproto.InstallBootcParams).
func TestBootcInstallParams(t *testing.T) {
	digest := "sha256:" + strings.Repeat("cd", 32)
	rel := inventory.Release{Name: "hmi", Version: "1.4", Kind: KindBootc, ImageRef: "plant/hmi", ImageDigest: digest,
		KernelArgs: ` console=ttyS0,115200n8  quiet	systemd.mount-extra="LABEL=data:/data:xfs:defaults,noatime x" `,
		Labels:     map[string]string{"root_ssh_authorized_keys": "ssh-ed25519 AAAA op@plant\n"}}
	m := inventory.Machine{ID: "m-1", Labels: map[string]string{"install-disk-serial": "S3Z9NB0K"}}
	b, err := bootcInstallParams(rel, m, "10.99.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	var p agentproto.InstallBootcParams
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("the agent cannot read %s: %v", b, err)
	}
	want := agentproto.InstallBootcParams{Image: "10.99.0.1:8080/plant/hmi", Digest: digest, TargetImgref: "plant/hmi:1.4",
		Target:                agentproto.DiskTarget{Serial: "S3Z9NB0K"},
		Kargs:                 []string{"console=ttyS0,115200n8", "quiet", `systemd.mount-extra="LABEL=data:/data:xfs:defaults,noatime x"`},
		RootSSHAuthorizedKeys: "ssh-ed25519 AAAA op@plant\n", Release: "hmi@1.4"}
	if p.Image != want.Image || p.Digest != want.Digest || p.TargetImgref != want.TargetImgref || p.Target != want.Target ||
		!slices.Equal(p.Kargs, want.Kargs) || p.RootSSHAuthorizedKeys != want.RootSSHAuthorizedKeys || p.Release != want.Release {
		t.Errorf("params:\n got %+v\nwant %+v", p, want)
	}

	// Without kernel args, keys or a disk label: none sent, and the agent takes the smallest disk.
	plain := rel
	plain.KernelArgs, plain.Labels = "", nil
	b, err = bootcInstallParams(plain, inventory.Machine{ID: "m-2"}, "slate.plant:8080")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, "kargs") || strings.Contains(s, "root_ssh") || !strings.Contains(s, `"target":{}`) {
		t.Errorf("params without extras: %s", s)
	}

	for _, c := range []struct {
		name string
		mod  func(*inventory.Release)
		host string
		want string
	}{
		{"disk release", func(r *inventory.Release) { r.Kind = KindDisk }, "h:1", "not bootc"},
		{"no digest", func(r *inventory.Release) { r.ImageDigest = "" }, "h:1", "by digest"},
		{"no image", func(r *inventory.Release) { r.ImageRef = "" }, "h:1", "by digest"},
		{"unclosed quote", func(r *inventory.Release) { r.KernelArgs = `foo="bar` }, "h:1", "unclosed double quote"},
		{"option as karg", func(r *inventory.Release) { r.KernelArgs = "quiet --wipe" }, "h:1", "starts with '-'"},
		{"no registry host", func(r *inventory.Release) {}, "", "public_url"},
	} {
		r := rel
		c.mod(&r)
		if _, err := bootcInstallParams(r, m, c.host); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error about %q", c.name, err, c.want)
		}
	}
}

func TestRegistryHostOf(t *testing.T) {
	for in, want := range map[string]string{"http://10.99.0.1:8080": "10.99.0.1:8080", "https://slate.plant/": "slate.plant",
		"http://[fd00::1]:8080": "[fd00::1]:8080"} {
		if got, err := registryHostOf(in); err != nil || got != want {
			t.Errorf("%s: got %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "slate.plant:8080", "http://slate.plant/slate"} {
		if got, err := registryHostOf(in); err == nil {
			t.Errorf("%q: got %q, want an error", in, got)
		}
	}
}

func TestImageTag(t *testing.T) {
	for in, want := range map[string]string{"1.4": "1.4", "2026.03-rc1": "2026.03-rc1", "v2.0+build.7": "v2.0-build.7",
		".hidden": "_hidden", "-x": "_x", "": "latest", "ä1": "_1", strings.Repeat("9", 200): strings.Repeat("9", 128)} {
		if got := imageTag(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}
