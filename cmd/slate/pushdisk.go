package main

import (
	"bufio"
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

	"slate/image/disk"
)

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
	br := bufio.NewReaderSize(f, disk.HeadSize)
	head, _ := br.Peek(disk.HeadSize) // shorter for a small file: CheckHead says what is missing
	media, err := disk.CheckHead(path, head)
	if err != nil {
		return nil, err
	}
	l := &fileLayer{path: path, media: types.MediaType(media)}
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
