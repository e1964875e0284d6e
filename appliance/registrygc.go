package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"slate/image/registry"
	"slate/inventory"
	"slate/lifecycle"
)

// registryGC garbage-collects the embedded registry for the API and the UI: tagged images
// and the image of every release stay, whatever the release's state (a retired release may
// still be rolled back to, a draft is about to be approved); each run is audited.
type registryGC struct {
	store *inventory.Store
	reg   *registry.Registry
	log   *slog.Logger
}

func (g registryGC) CollectGarbage(ctx context.Context, actor string, dryRun bool) (registry.GCReport, error) {
	rs, err := g.store.ListReleases(ctx, "")
	if err != nil {
		return registry.GCReport{}, err
	}
	var keep []string
	for _, r := range rs {
		if r.ImageRef != "" && r.ImageDigest != "" {
			keep = append(keep, r.ImageRef+"@"+r.ImageDigest)
		}
	}
	rep, err := g.reg.GC(ctx, registry.GCOptions{Keep: keep, DryRun: dryRun})
	details := map[string]any{"dry_run": dryRun, "manifests_removed": len(rep.Manifests), "blobs_removed": len(rep.Blobs),
		"bytes_freed": rep.BytesFreed, "manifests": rep.Manifests, "releases_kept": len(keep)}
	outcome := "ok"
	if err != nil {
		outcome, details["error"] = "failed", err.Error()
	}
	if aerr := g.store.Audit(ctx, actor, "registry.gc", "registry", outcome, details); aerr != nil && err == nil {
		return rep, aerr
	}
	return rep, err
}

// DeleteImage removes one manifest (and the tags pointing at it) for an admin, unless a
// release uses it, and audits the attempt whatever its outcome. Which releases protect their
// image: drafts and approved ones always; a retired one while a machine (not retired) still
// runs it or is assigned it (a retired release nobody uses may lose its image: the admin's
// explicit, audited decision). Garbage collection is stricter — it keeps every release's
// image — so it never removes what this refuses.
func (g registryGC) DeleteImage(ctx context.Context, actor, repo, digest string) (registry.DeleteReport, error) {
	subject := repo + "@" + digest
	rep, err := g.reg.DeleteManifest(ctx, repo, digest, g.protectedImages)
	details := map[string]any{"repo": repo, "digest": digest, "tags_removed": rep.Tags}
	outcome := "ok"
	switch {
	case errors.Is(err, registry.ErrImageInUse):
		outcome, details["reason"] = "refused", err.Error()
		err = inventory.Errorf(inventory.ErrConflict, "%s", err.Error())
	case errors.Is(err, registry.ErrNoSuchImage):
		outcome, details["reason"] = "refused", err.Error()
		err = inventory.Errorf(inventory.ErrNotFound, "%s", err.Error())
	case err != nil:
		outcome, details["error"] = "failed", err.Error()
	}
	if aerr := g.store.Audit(ctx, actor, "registry.delete", subject, outcome, details); aerr != nil {
		if err == nil {
			return rep, fmt.Errorf("%s was deleted but its audit event was not written: %w", subject, aerr)
		}
		g.log.Error("registry delete: audit event not written", "image", subject, "err", aerr)
	}
	return rep, err
}

// protectedImages maps each "repo@digest" a release needs to the releases that need it.
func (g registryGC) protectedImages(ctx context.Context) (map[string]string, error) {
	rs, err := g.store.ListReleases(ctx, "")
	if err != nil {
		return nil, err
	}
	var machines []inventory.Machine
	for off := 0; ; off += 1000 {
		page, total, err := g.store.ListMachines(ctx, inventory.MachineFilter{Limit: 1000, Offset: off, IncludeRetired: true})
		if err != nil {
			return nil, err
		}
		machines = append(machines, page...)
		if len(page) == 0 || off+len(page) >= total {
			break
		}
	}
	out := map[string]string{}
	for _, r := range rs {
		if r.ImageRef == "" || r.ImageDigest == "" {
			continue
		}
		ref := r.Name + "@" + r.Version
		why := ""
		if r.State != lifecycle.ReleaseRetired {
			why = "release " + ref + " (" + r.State + ")"
		} else {
			for _, m := range machines {
				if m.State == lifecycle.Retired {
					continue
				}
				if m.DesiredRelease == r.ID || m.DesiredRelease == ref || m.BootedRelease == r.ID || m.BootedRelease == ref ||
					m.BootedDigest == r.ImageDigest || m.BootedRelease == r.ImageDigest {
					why = "retired release " + ref + " (machine " + m.Name + " is assigned or runs it)"
					break
				}
			}
		}
		if why == "" {
			continue
		}
		k := r.ImageRef + "@" + r.ImageDigest
		if out[k] != "" {
			why = out[k] + ", " + why
		}
		out[k] = why
	}
	return out, nil
}
