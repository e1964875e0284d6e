package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"

	"slate/internal/testenv"
)

func sfdiskImage(t *testing.T, parts string) []byte {
	t.Helper()
	sfdisk := testenv.RequireCommand(t, "sfdisk", "fdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sfdisk, "--quiet", p)
	cmd.Stdin = strings.NewReader("label: gpt\n" + parts)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(p)
	return b
}

// uploadsLeft counts unfinished uploads in the registry's storage (a refused push must leave none).
func uploadsLeft(t *testing.T, root string) int {
	n := 0
	filepath.WalkDir(filepath.Join(root, "docker", "registry", "v2", "repositories"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && filepath.Base(filepath.Dir(p)) == "_uploads" {
			n++
		}
		return nil
	})
	return n
}

// TestPushDiskStreamsACheckedImage: a zstd-compressed GPT image with slate-config becomes a
// one-layer artifact (layer = the bytes as sent, media type +zstd) that a client pulls by tag
// and Tags lists; a non-GPT file, an image without slate-config and one over the limit are
// refused storing nothing (no tag, no unfinished upload).
func TestPushDiskStreamsACheckedImage(t *testing.T) {
	f := newGCFixture(t)
	ctx := context.Background()
	raw := sfdiskImage(t, "start=2048, size=1M, type=linux, name=\"root\"\nsize=1M, type=linux, name=\"slate-config\"\n")
	bare := sfdiskImage(t, "start=2048, size=1M, type=linux, name=\"root\"\n")
	enc, _ := zstd.NewWriter(nil)
	zst := enc.EncodeAll(raw, nil)

	for _, bad := range []struct {
		name  string
		data  []byte
		limit int64
		is    error
		says  string
	}{
		{"junk.img", []byte("hello"), 0, ErrNotDiskImage, "is not a GPT disk image"},
		{"bare.img", bare, 0, ErrNotDiskImage, `no GPT partition named "slate-config"`},
		{"big.img", raw, 1 << 20, ErrTooLarge, "more than 1048576 bytes"},
	} {
		_, err := f.reg.PushDisk(ctx, "plant/os", "bad", bad.name, bytes.NewReader(bad.data), bad.limit)
		if !errors.Is(err, bad.is) || !strings.Contains(err.Error(), bad.says) {
			t.Fatalf("%s: %v", bad.name, err)
		}
		if ts, err := f.reg.Tags(ctx); err != nil || len(ts) != 0 {
			t.Fatalf("%s: tags %v %v after a refused push", bad.name, ts, err)
		}
		if n := uploadsLeft(t, f.reg.Root()); n != 0 {
			t.Fatalf("%s: %d unfinished uploads left", bad.name, n)
		}
	}

	rep, err := f.reg.PushDisk(ctx, "plant/os", "2", "disk.img.zst", bytes.NewReader(zst), int64(len(zst)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(zst)
	if rep.MediaType != "application/vnd.slate.disk.image.raw.v1+zstd" || rep.Size != int64(len(zst)) {
		t.Fatalf("report %+v", rep)
	}
	img, err := remote.Image(f.ref("plant/os:2"), auth)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ls, _ := img.Layers()
	if d.String() != rep.Digest || len(ls) != 1 {
		t.Fatalf("pulled %s with %d layers, pushed %s", d, len(ls), rep.Digest)
	}
	ld, _ := ls[0].Digest()
	mt, _ := ls[0].MediaType()
	if ld.Hex != hex.EncodeToString(sum[:]) || string(mt) != rep.MediaType {
		t.Fatalf("layer %s %s, want the bytes as sent", ld, mt)
	}
	if layer, comp, err := f.reg.DiskLayer(ctx, "plant/os", rep.Digest); err != nil || comp != "zstd" || layer != ld.String() {
		t.Fatalf("DiskLayer %s %s %v", layer, comp, err)
	}
	ts, err := f.reg.Tags(ctx)
	if err != nil || len(ts) != 1 || ts[0] != (ImageTag{Repo: "plant/os", Tag: "2", Digest: rep.Digest}) {
		t.Fatalf("tags %+v %v", ts, err)
	}
}
