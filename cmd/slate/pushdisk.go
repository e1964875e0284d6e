package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"slate/image/disk"
)

// Media types of a disk-image release's single layer (docs/images.md).
const diskMediaType = "application/vnd.slate.disk.image.raw.v1"

// fileLayer is a disk image file as the one layer of an OCI artifact: streamed from disk, never
// held in memory (images are gigabytes).
type fileLayer struct {
	path   string
	digest v1.Hash
	size   int64
	media  types.MediaType
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.media, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	return os.Open(l.path)
}

// sniffDiskImage hashes the file and tells its compression from its first bytes; it checks
// that the (decompressed) image has a GPT with the slate-config partition, without which an
// installed system could never report to Slate.
func sniffDiskImage(path string) (*fileLayer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	magic, _ := br.Peek(4)
	l := &fileLayer{path: path, media: diskMediaType}
	// A second handle reads the head (decompressed) for the GPT check.
	hf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer hf.Close()
	var head io.Reader = hf
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		l.media += "+gzip"
		zr, err := gzip.NewReader(hf)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip header: %w", path, err)
		}
		head = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		l.media += "+zstd"
		zr, err := zstd.NewReader(hf)
		if err != nil {
			return nil, fmt.Errorf("%s: zstd header: %w", path, err)
		}
		defer zr.Close()
		head = zr
	}
	first := make([]byte, 1<<20)
	n, _ := io.ReadFull(head, first)
	parts, err := disk.GPTPartitions(bytes.NewReader(first[:n]))
	if err != nil {
		return nil, fmt.Errorf("%s is not a GPT disk image: %w", path, err)
	}
	found := false
	for _, p := range parts {
		found = found || p.Name == disk.NodeConfigPartition
	}
	if !found {
		return nil, fmt.Errorf("%s has no GPT partition named %q: an installed system could not report to Slate, so Slate would refuse to install it (add a 1 MiB partition with that name)", path, disk.NodeConfigPartition)
	}
	h := sha256.New()
	if l.size, err = io.Copy(h, br); err != nil {
		return nil, err
	}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	return l, nil
}

func registryPushDisk(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "registry push-disk", "slate registry push-disk --repo plant/os --tag 1 DISK.img[.gz|.zst]")
	server, _ := apiFlags(fs)
	repo := fs.String("repo", "", "repository in Slate's registry, e.g. plant/os")
	tag := fs.String("tag", "", "tag, e.g. the release version")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *repo == "" || *tag == "" {
		return errors.New("give --repo, --tag and one disk image file (see --help)")
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	u, err := url.Parse(c.server)
	if err != nil || u.Host == "" {
		return fmt.Errorf("server %q is not a URL", c.server)
	}
	var opts []name.Option
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(u.Host+"/"+*repo+":"+*tag, opts...)
	if err != nil {
		return fmt.Errorf("--repo %q / --tag %q: %w", *repo, *tag, err)
	}
	layer, err := sniffDiskImage(fs.Arg(0))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	// Slate's registry takes an API token as the password of any user name.
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: "token", Password: c.token})); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "pushed %s (%s, %d bytes) as %s@%s\nnext: slate release create --name NAME --version %s --kind disk --image %s@%s\n",
		fs.Arg(0), layer.media, layer.size, *repo, d, *tag, *repo, d)
	return nil
}
