package appliance

import (
	"context"

	"slate/image"
	"slate/inventory"
)

// registryGC garbage-collects the embedded registry for the API and the UI: tagged images
// and the image of every release stay, whatever the release's state (a retired release may
// still be rolled back to, a draft is about to be approved); each run is audited.
type registryGC struct {
	store *inventory.Store
	reg   *image.Registry
}

func (g registryGC) CollectGarbage(ctx context.Context, actor string, dryRun bool) (image.GCReport, error) {
	rs, err := g.store.ListReleases(ctx, "")
	if err != nil {
		return image.GCReport{}, err
	}
	var keep []string
	for _, r := range rs {
		if r.ImageRef != "" && r.ImageDigest != "" {
			keep = append(keep, r.ImageRef+"@"+r.ImageDigest)
		}
	}
	rep, err := g.reg.GC(ctx, image.GCOptions{Keep: keep, DryRun: dryRun})
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
