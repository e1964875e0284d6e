package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"slate/image/disk"
)

// ErrNotDiskImage is what pushing a file that is not a Slate disk image answers (no GPT, no
// slate-config partition).
var ErrNotDiskImage = errors.New("not a Slate disk image")

// ErrTooLarge is what pushing more than the allowed size answers.
var ErrTooLarge = errors.New("image too large")

// PushReport is what a disk-image push stored.
type PushReport struct {
	Repo      string `json:"repo"`
	Tag       string `json:"tag"`
	Digest    string `json:"digest"` // the manifest's: what a release pins
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"` // the layer as stored (compressed or not)
}

// PushDisk stores a disk image read from src as the one-layer OCI artifact `slate registry
// push-disk` pushes, tagged repo:tag. The stream goes straight into the registry's upload
// folder while it is hashed (images are gigabytes: nothing holds it whole); its head is
// checked first (disk.CheckHead) so a wrong file is refused before anything is stored. More
// than limit bytes (0: no limit) is refused with ErrTooLarge and the upload is cancelled.
func (r *Registry) PushDisk(ctx context.Context, repo, tag, name string, src io.Reader, limit int64) (PushReport, error) {
	rep := PushReport{Repo: repo, Tag: tag}
	named, err := reference.WithName(repo)
	if err != nil {
		return rep, fmt.Errorf("%w: repository %q is not a valid name (lower-case words separated by '/', e.g. plant/os): %v", ErrNotDiskImage, repo, err)
	}
	if _, err := reference.WithTag(named, tag); err != nil {
		return rep, fmt.Errorf("%w: tag %q is not valid (letters, digits, '.', '_', '-'; at most 128): %v", ErrNotDiskImage, tag, err)
	}
	br := bufio.NewReaderSize(src, disk.HeadSize)
	head, err := br.Peek(disk.HeadSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return rep, fmt.Errorf("read %s: %w", name, err)
	}
	media, err := disk.CheckHead(name, head)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrNotDiskImage, err)
	}
	rep.MediaType = media
	// A push is a write: a garbage collection must not sweep its blobs before the manifest lands.
	if !r.gcMu.TryRLock() {
		return rep, ErrGCRunning
	}
	defer r.gcMu.RUnlock()
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: r.root, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, drv)
	if err != nil {
		return rep, fmt.Errorf("registry: open storage %s: %w", r.root, err)
	}
	rp, err := ns.Repository(ctx, named)
	if err != nil {
		return rep, fmt.Errorf("registry: repository %s: %w", repo, err)
	}
	layer, err := r.putBlob(ctx, rp, br, media, limit)
	if err != nil {
		return rep, err
	}
	rep.Size = layer.Size
	config, err := r.putBlob(ctx, rp, strings.NewReader("{}"), v1.MediaTypeImageConfig, 0)
	if err != nil {
		return rep, err
	}
	m, err := ocischema.FromStruct(ocischema.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config: config, Layers: []v1.Descriptor{layer}})
	if err != nil {
		return rep, fmt.Errorf("registry: build the manifest: %w", err)
	}
	ms, err := rp.Manifests(ctx)
	if err != nil {
		return rep, fmt.Errorf("registry: manifests of %s: %w", repo, err)
	}
	d, err := ms.Put(ctx, m)
	if err != nil {
		return rep, fmt.Errorf("registry: store the manifest of %s:%s: %w", repo, tag, err)
	}
	if err := rp.Tags(ctx).Tag(ctx, tag, v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d}); err != nil {
		return rep, fmt.Errorf("registry: tag %s:%s: %w (the image is stored as %s@%s)", repo, tag, err, repo, d)
	}
	rep.Digest = d.String()
	r.log.Info("registry: disk image pushed", "repo", repo, "tag", tag, "digest", rep.Digest, "media", media, "bytes", rep.Size)
	return rep, nil
}

type limitedReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more than allowed says the stream is too long (not just exactly the limit).
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: more than %d bytes (the configured upload limit; push larger images with `slate registry push-disk`, or raise the limit)", ErrTooLarge, l.limit)
		}
		return l.r.Read(p)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// putBlob streams src into a blob upload while hashing it, and commits it under its digest;
// on any failure the upload is cancelled, so nothing half-written stays.
func (r *Registry) putBlob(ctx context.Context, rp distribution.Repository, src io.Reader, media string, limit int64) (v1.Descriptor, error) {
	if limit > 0 {
		src = &limitedReader{r: src, left: limit, limit: limit}
	}
	bw, err := rp.Blobs(ctx).Create(ctx)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("registry: start an upload: %w", err)
	}
	dg := digest.SHA256.Digester()
	n, err := io.Copy(io.MultiWriter(bw, dg.Hash()), src)
	if err != nil {
		if cerr := bw.Cancel(ctx); cerr != nil {
			r.log.Warn("registry: cancel a failed upload", "err", cerr)
		}
		if errors.Is(err, ErrTooLarge) {
			return v1.Descriptor{}, err
		}
		return v1.Descriptor{}, fmt.Errorf("registry: upload interrupted after %d bytes: %w", n, err)
	}
	desc, err := bw.Commit(ctx, v1.Descriptor{MediaType: media, Digest: dg.Digest(), Size: n})
	if err != nil {
		if cerr := bw.Cancel(ctx); cerr != nil {
			r.log.Warn("registry: cancel a failed upload", "err", cerr)
		}
		return v1.Descriptor{}, fmt.Errorf("registry: store the blob: %w", err)
	}
	desc.MediaType = media
	return desc, nil
}

// ImageTag is one tag of a repository in the registry and the manifest it points at.
type ImageTag struct {
	Repo   string `json:"repo"`
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
}

// Tags lists every repository's tags with their manifest digests, sorted, for picking an image
// when writing a release.
func (r *Registry) Tags(ctx context.Context) ([]ImageTag, error) {
	out := []ImageTag{}
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: r.root, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, drv)
	if err != nil {
		return nil, fmt.Errorf("registry: open storage %s: %w", r.root, err)
	}
	var repos []string
	err = ns.(distribution.RepositoryEnumerator).Enumerate(ctx, func(name string) error {
		repos = append(repos, name)
		return nil
	})
	if err != nil && !isPathNotFound(err) {
		return nil, fmt.Errorf("registry: list repositories: %w", err)
	}
	for _, name := range repos {
		named, err := reference.WithName(name)
		if err != nil {
			continue
		}
		rp, err := ns.Repository(ctx, named)
		if err != nil {
			return nil, fmt.Errorf("registry: repository %s: %w", name, err)
		}
		tags, err := rp.Tags(ctx).All(ctx)
		if err != nil {
			if isPathNotFound(err) || errors.As(err, new(distribution.ErrRepositoryUnknown)) {
				continue // a repository with manifests but no tags
			}
			return nil, fmt.Errorf("registry: tags of %s: %w", name, err)
		}
		for _, t := range tags {
			d, err := rp.Tags(ctx).Get(ctx, t)
			if err != nil {
				continue // removed meanwhile
			}
			out = append(out, ImageTag{Repo: name, Tag: t, Digest: d.Digest.String()})
		}
	}
	slices.SortFunc(out, func(a, b ImageTag) int {
		if a.Repo != b.Repo {
			if a.Repo < b.Repo {
				return -1
			}
			return 1
		}
		if a.Tag < b.Tag {
			return -1
		}
		if a.Tag > b.Tag {
			return 1
		}
		return 0
	})
	return out, nil
}

func isPathNotFound(err error) bool { return errors.As(err, new(driver.PathNotFoundError)) }
