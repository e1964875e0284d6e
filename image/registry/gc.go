package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// GCOptions say what a garbage collection keeps besides tagged manifests, and whether it
// only reports.
type GCOptions struct {
	// Keep lists manifests to keep although no tag points at them, as "repo@sha256:<hex>":
	// the images of releases, in every state (a retired release may still be rolled back to).
	Keep []string
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
}

// GCReport is what a garbage collection removed, or in a dry run would remove.
type GCReport struct {
	DryRun        bool     `json:"dry_run"`
	Manifests     []string `json:"manifests_removed"` // repo@digest
	ManifestsKept int      `json:"manifests_kept"`
	Blobs         []string `json:"blobs_removed"` // digests (layers, configs, manifests' own blobs)
	BlobsKept     int      `json:"blobs_kept"`
	BytesFreed    int64    `json:"bytes_freed"` // sum of the removed blobs' sizes
}

// ErrGCRunning is what a push is told while a garbage collection holds the registry.
var ErrGCRunning = errors.New("registry garbage collection in progress, retry")

// GC removes from the registry every manifest that no tag points at and o.Keep does not
// list (nor a kept index references), then every blob that no remaining manifest
// references: layers of removed images, and blobs uploaded without a manifest. Pushes are
// held off meanwhile: the write requests in flight finish first, new ones are answered 503
// until GC returns.
//
// A push is several requests (blobs, then the manifest): blobs a client uploaded before GC
// started, whose manifest it had not yet sent, are unreferenced and removed; that client's
// manifest upload then fails with MANIFEST_BLOB_UNKNOWN and the push must be repeated.
func (r *Registry) GC(ctx context.Context, o GCOptions) (GCReport, error) {
	rep := GCReport{DryRun: o.DryRun, Manifests: []string{}, Blobs: []string{}}
	keep := map[string]bool{}
	for _, k := range o.Keep {
		keep[k] = true
	}
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: r.root, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return rep, fmt.Errorf("registry garbage collection: open storage %s: %w", r.root, err)
	}
	v2 := filepath.Join(r.root, "docker", "registry", "v2")
	for _, d := range []string{"repositories", "blobs"} {
		if _, err := os.Stat(filepath.Join(v2, d)); errors.Is(err, os.ErrNotExist) {
			return rep, nil // nothing was ever pushed: nothing to collect (and MarkAndSweep would fail on the missing folder)
		}
	}

	// Step 1: decide, repository by repository, which manifests stay.
	var repoNames []string
	if err := ns.(distribution.RepositoryEnumerator).Enumerate(ctx, func(name string) error {
		repoNames = append(repoNames, name)
		return nil
	}); err != nil {
		return rep, fmt.Errorf("registry garbage collection: list repositories: %w", err)
	}
	type doomed struct {
		repo   string
		digest digest.Digest
		tags   []string
	}
	var remove []doomed
	mark := map[digest.Digest]bool{} // every blob a remaining manifest needs (as MarkAndSweep marks)
	for _, name := range repoNames {
		named, err := reference.WithName(name)
		if err != nil {
			return rep, fmt.Errorf("registry garbage collection: repository %q: %w", name, err)
		}
		repo, err := ns.Repository(ctx, named)
		if err != nil {
			return rep, fmt.Errorf("registry garbage collection: repository %s: %w", name, err)
		}
		ms, err := repo.Manifests(ctx)
		if err != nil {
			return rep, fmt.Errorf("registry garbage collection: manifests of %s: %w", name, err)
		}
		var all []digest.Digest
		have := map[digest.Digest]bool{}
		err = ms.(distribution.ManifestEnumerator).Enumerate(ctx, func(d digest.Digest) error {
			all = append(all, d)
			have[d] = true
			return nil
		})
		if err != nil && !errors.As(err, new(driver.PathNotFoundError)) {
			return rep, fmt.Errorf("registry garbage collection: list manifests of %s: %w", name, err)
		}
		tags, err := repo.Tags(ctx).All(ctx)
		if err != nil && !errors.As(err, new(distribution.ErrRepositoryUnknown)) {
			return rep, fmt.Errorf("registry garbage collection: tags of %s: %w", name, err)
		}
		kept := map[digest.Digest]bool{}
		for _, tag := range tags {
			if desc, err := repo.Tags(ctx).Get(ctx, tag); err == nil {
				kept[desc.Digest] = true
			}
		}
		for _, d := range all {
			if keep[name+"@"+d.String()] {
				kept[d] = true
			}
		}
		// A kept index keeps the manifests it lists (a multi-platform image's children are
		// untagged by nature).
		queue := make([]digest.Digest, 0, len(kept))
		for d := range kept {
			if have[d] {
				queue = append(queue, d)
			}
		}
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			m, err := ms.Get(ctx, d)
			if err != nil {
				return rep, fmt.Errorf("registry garbage collection: read kept manifest %s@%s: %w (nothing was removed)", name, d, err)
			}
			for _, ref := range m.References() {
				if !kept[ref.Digest] && have[ref.Digest] {
					kept[ref.Digest] = true
					queue = append(queue, ref.Digest)
				}
			}
		}
		slices.Sort(all)
		for _, d := range all {
			if !kept[d] {
				remove = append(remove, doomed{name, d, tags})
				rep.Manifests = append(rep.Manifests, name+"@"+d.String())
				continue
			}
			rep.ManifestsKept++
			if err := markReferences(ctx, ms, d, mark); err != nil {
				return rep, fmt.Errorf("registry garbage collection: manifest %s@%s: %w (nothing was removed)", name, d, err)
			}
		}
		// MarkAndSweep walks every repository's layer links and fails where there are none
		// (a repository holding only manifests): give it the empty folder distribution would
		// have made.
		layers := filepath.Join(v2, "repositories", filepath.FromSlash(name), "_layers")
		if err := os.MkdirAll(layers, 0o755); err != nil {
			return rep, fmt.Errorf("registry garbage collection: %w", err)
		}
	}

	// The blobs as they are, with their sizes, to report what the sweep frees.
	size := map[digest.Digest]int64{}
	var before []digest.Digest
	if err := ns.Blobs().Enumerate(ctx, func(d digest.Digest) error {
		before = append(before, d)
		return nil
	}); err != nil {
		return rep, fmt.Errorf("registry garbage collection: list blobs: %w", err)
	}
	for _, d := range before {
		desc, err := ns.BlobStatter().Stat(ctx, d)
		if err != nil {
			return rep, fmt.Errorf("registry garbage collection: blob %s: %w", d, err)
		}
		size[d] = desc.Size
	}
	if o.DryRun {
		for _, d := range before {
			if !mark[d] {
				rep.Blobs = append(rep.Blobs, d.String())
				rep.BytesFreed += size[d]
			}
		}
		rep.BlobsKept = len(before) - len(rep.Blobs)
		slices.Sort(rep.Blobs)
		r.log.Info("registry garbage collection (dry run)", "manifests", len(rep.Manifests), "blobs", len(rep.Blobs), "bytes", rep.BytesFreed)
		return rep, nil
	}

	vacuum := storage.NewVacuum(ctx, drv)
	for _, m := range remove {
		if err := vacuum.RemoveManifest(m.repo, m.digest, m.tags); err != nil {
			return rep, fmt.Errorf("registry garbage collection: remove manifest %s@%s: %w", m.repo, m.digest, err)
		}
	}
	// Step 2: distribution's own mark and sweep removes the blobs nothing references any more
	// (untagged manifests were already decided above, so it must not remove any itself).
	if err := storage.MarkAndSweep(ctx, drv, ns, storage.GCOpts{DryRun: false, RemoveUntagged: false, Quiet: true}); err != nil {
		return rep, fmt.Errorf("registry garbage collection: sweep blobs: %w (%d manifests were removed; run it again)", err, len(remove))
	}
	after := map[digest.Digest]bool{}
	if err := ns.Blobs().Enumerate(ctx, func(d digest.Digest) error {
		after[d] = true
		return nil
	}); err != nil && !errors.As(err, new(driver.PathNotFoundError)) {
		return rep, fmt.Errorf("registry garbage collection: list blobs after the sweep: %w", err)
	}
	for _, d := range before {
		if !after[d] {
			rep.Blobs = append(rep.Blobs, d.String())
			rep.BytesFreed += size[d]
		}
		if after[d] == mark[d] {
			continue
		}
		// The plan (also what a dry run reports) and distribution's sweep disagree.
		r.log.Warn("registry garbage collection: the sweep differs from the plan", "blob", d.String(), "planned_keep", mark[d], "kept", after[d])
	}
	rep.BlobsKept = len(after)
	slices.Sort(rep.Blobs)
	r.log.Info("registry garbage collection", "manifests", len(rep.Manifests), "blobs", len(rep.Blobs), "bytes", rep.BytesFreed)
	return rep, nil
}

// markReferences marks a manifest's blob and, recursively, what it references, the way
// storage.MarkAndSweep does (a reference that is a manifest of the repository is followed).
func markReferences(ctx context.Context, ms distribution.ManifestService, d digest.Digest, mark map[digest.Digest]bool) error {
	mark[d] = true
	m, err := ms.Get(ctx, d)
	if err != nil {
		return err
	}
	for _, ref := range m.References() {
		if mark[ref.Digest] {
			continue
		}
		mark[ref.Digest] = true
		if ok, _ := ms.Exists(ctx, ref.Digest); ok {
			if err := markReferences(ctx, ms, ref.Digest, mark); err != nil {
				return err
			}
		}
	}
	return nil
}

// holdOffGC lets a write request through unless a garbage collection runs or waits to run;
// the returned func ends the request's hold.
func (r *Registry) holdOffGC(w http.ResponseWriter) (func(), bool) {
	if r.gcMu.TryRLock() {
		return r.gcMu.RUnlock, true
	}
	w.Header().Set("Retry-After", "30")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":%q}]}`+"\n", ErrGCRunning.Error())
	return nil, false
}
