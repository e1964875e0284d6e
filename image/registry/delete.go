package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrImageInUse is what deleting an image a release uses answers.
var ErrImageInUse = errors.New("image in use")

// ErrNoSuchImage is what deleting a manifest the registry does not hold answers.
var ErrNoSuchImage = errors.New("no such image")

// DeleteReport is what a manifest delete removed.
type DeleteReport struct {
	Repo   string   `json:"repo"`
	Digest string   `json:"digest"`
	Tags   []string `json:"tags_removed"` // the tags that pointed at it
}

// Protected answers, for a manifest "repo@sha256:<hex>", who needs it ("" for nobody): the
// releases that use an image. It is asked while deletes and pushes are held off.
type Protected func(ctx context.Context) (map[string]string, error)

// DeleteManifest removes the manifest repo@digest and the tags that point at it, unless
// protected names it or an index it names lists it (ErrImageInUse, naming who uses it). Its
// blobs stay until the next garbage collection removes what nothing references any more.
// Pushes are held off meanwhile, as during GC.
func (r *Registry) DeleteManifest(ctx context.Context, repo, dgst string, protected Protected) (DeleteReport, error) {
	rep := DeleteReport{Repo: repo, Digest: dgst, Tags: []string{}}
	d, err := digest.Parse(dgst)
	if err != nil || d.Algorithm() != digest.SHA256 {
		return rep, fmt.Errorf("%w: digest %q is not sha256:<64 hex digits>", ErrNoSuchImage, dgst)
	}
	named, err := reference.WithName(repo)
	if err != nil {
		return rep, fmt.Errorf("%w: repository %q is not a valid name: %v", ErrNoSuchImage, repo, err)
	}
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	ok, err := r.HasManifest(ctx, repo, dgst)
	if err != nil {
		return rep, fmt.Errorf("registry: look up %s@%s: %w", repo, dgst, err)
	}
	if !ok {
		return rep, fmt.Errorf("%w: the registry holds no manifest %s@%s", ErrNoSuchImage, repo, dgst)
	}
	users, err := protected(ctx)
	if err != nil {
		return rep, fmt.Errorf("registry: which releases use %s@%s: %w (nothing was deleted)", repo, dgst, err)
	}
	var why []string
	for img, who := range users {
		irepo, idigest, _ := strings.Cut(img, "@")
		if irepo != repo {
			continue
		}
		if idigest == dgst {
			why = append(why, who)
			continue
		}
		// An index keeps its children: a multi-platform release needs them all.
		if ms, _, err := r.closure(irepo, idigest); err == nil && ms[dgst] {
			why = append(why, who+" (as part of "+img+")")
		}
	}
	if len(why) > 0 {
		slices.Sort(why)
		return rep, fmt.Errorf("%w: %s@%s is used by %s: retire the release (and move its machines to another) before deleting its image",
			ErrImageInUse, repo, dgst, strings.Join(why, "; "))
	}
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: r.root, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return rep, fmt.Errorf("registry: open storage %s: %w", r.root, err)
	}
	rp, err := ns.Repository(ctx, named)
	if err != nil {
		return rep, fmt.Errorf("registry: repository %s: %w", repo, err)
	}
	tags, err := rp.Tags(ctx).Lookup(ctx, v1.Descriptor{Digest: d})
	if err != nil {
		return rep, fmt.Errorf("registry: tags of %s@%s: %w (nothing was deleted)", repo, dgst, err)
	}
	slices.Sort(tags)
	for _, t := range tags {
		if err := rp.Tags(ctx).Untag(ctx, t); err != nil {
			return rep, fmt.Errorf("registry: untag %s:%s: %w (tags %v were removed, the manifest stays: run it again)", repo, t, err, rep.Tags)
		}
		rep.Tags = append(rep.Tags, t)
	}
	ms, err := rp.Manifests(ctx)
	if err != nil {
		return rep, fmt.Errorf("registry: manifests of %s: %w", repo, err)
	}
	if err := ms.Delete(ctx, d); err != nil {
		return rep, fmt.Errorf("registry: delete %s@%s: %w (its tags %v were removed)", repo, dgst, err, rep.Tags)
	}
	r.mu.Lock()
	for k := range r.scopes {
		if strings.HasPrefix(k, repo+"@") {
			delete(r.scopes, k)
		}
	}
	r.mu.Unlock()
	r.log.Info("registry: manifest deleted", "repo", repo, "digest", dgst, "tags", rep.Tags)
	return rep, nil
}
