package lifecycle

import (
	"context"
	"strings"
	"testing"

	"slate/agent/agentproto"
	"slate/inventory"
)

type wireImages struct{ compression string }

func (w wireImages) DiskLayer(ctx context.Context, repo, digest string) (string, string, error) {
	return "sha256:" + strings.Repeat("a", 64), w.compression, nil
}

// TestInstallParamsWireForm: the install params Slate queues are byte for byte what it queued
// before they were agentproto structs (the goldens are the old code's output, install-image's
// a map with sorted keys then), so deploy environments built earlier read them unchanged.
func TestInstallParamsWireForm(t *testing.T) {
	a, b := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	m := inventory.Machine{ID: "m-1", Labels: map[string]string{"install-disk-serial": "S3Z9NB0K"}}
	disk := inventory.Release{Name: "hmi", Version: "1.4", Kind: KindDisk, ImageRef: "plant/hmi", ImageDigest: b}
	for _, c := range []struct {
		compression string
		golden      string
	}{
		{"zstd", `{"blob_url":"http://10.0.0.1:8080/v2/plant/hmi/blobs/` + a + `","compression":"zstd","digest":"` + a +
			`","image_digest":"` + b + `","release":"hmi@1.4","target":{"serial":"S3Z9NB0K"}}`},
		// Uncompressed: the key is still sent, empty.
		{"", `{"blob_url":"http://10.0.0.1:8080/v2/plant/hmi/blobs/` + a + `","compression":"","digest":"` + a +
			`","image_digest":"` + b + `","release":"hmi@1.4","target":{"serial":"S3Z9NB0K"}}`},
	} {
		r := &Reconciler{Installer: &Installer{Images: wireImages{c.compression}, PublicURL: "http://10.0.0.1:8080/"}}
		kind, got, err := r.installParams(context.Background(), m, disk)
		if err != nil || kind != agentproto.KindInstallImage || string(got) != c.golden {
			t.Errorf("install-image params (compression %q):\n got %s %s %v\nwant %s %s", c.compression, kind, got, err, agentproto.KindInstallImage, c.golden)
		}
	}

	bootc := inventory.Release{Name: "hmi", Version: "1.4", Kind: KindBootc, ImageRef: "plant/hmi", ImageDigest: b,
		KernelArgs: "quiet console=ttyS0", Labels: map[string]string{"root_ssh_authorized_keys": "ssh-ed25519 AAAA op\n"}}
	r := &Reconciler{Installer: &Installer{PublicURL: "http://10.0.0.1:8080"}}
	kind, got, err := r.installParams(context.Background(), m, bootc)
	want := `{"image":"10.0.0.1:8080/plant/hmi","digest":"` + b + `","target_imgref":"plant/hmi:1.4","target":{"serial":"S3Z9NB0K"},` +
		`"kargs":["quiet","console=ttyS0"],"root_ssh_authorized_keys":"ssh-ed25519 AAAA op\n","release":"hmi@1.4"}`
	if err != nil || kind != agentproto.KindInstallBootc || string(got) != want {
		t.Errorf("install-bootc params:\n got %s %s %v\nwant %s %s", kind, got, err, agentproto.KindInstallBootc, want)
	}
}

// TestInstalledReleaseReadsOnlyInstalls: the roll-back check reads the release from an
// install's params by its kind's struct; another kind's params naming a release do not count.
func TestInstalledReleaseReadsOnlyInstalls(t *testing.T) {
	for _, c := range []struct {
		kind   agentproto.TaskKind
		params string
		want   string
	}{
		{agentproto.KindInstallImage, `{"blob_url":"http://s/v2/r/blobs/x","release":"hmi@1.4"}`, "hmi@1.4"},
		{agentproto.KindInstallBootc, `{"image":"h:1/r","release":"hmi@1.5"}`, "hmi@1.5"},
		{agentproto.KindWait, `{"seconds":1,"release":"hmi@1.4"}`, ""},
		{agentproto.KindInstallImage, `{"release":`, ""},
	} {
		got := installedRelease(inventory.Task{Kind: string(c.kind), Params: []byte(c.params)})
		if got != c.want {
			t.Errorf("%s %s: %q, want %q", c.kind, c.params, got, c.want)
		}
	}
}
