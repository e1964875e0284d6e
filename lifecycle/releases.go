package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"slate/inventory"
)

// Release states.
const (
	ReleaseDraft    = "draft"
	ReleaseApproved = "approved"
	ReleaseRetired  = "retired"
)

// Release kinds.
const (
	KindBootc = "bootc"
	KindDisk  = "disk"
)

// ImageIndex answers whether the appliance's registry holds a manifest.
type ImageIndex interface {
	HasManifest(ctx context.Context, repo, digest string) (bool, error)
}

// Releases manages versioned system states: draft → approved → retired, every step audited.
type Releases struct {
	store Store
	index ImageIndex
	// FourEyes requires the approver to be someone other than the author.
	FourEyes bool
}

// NewReleases returns the release service.
func NewReleases(store Store, index ImageIndex, fourEyes bool) *Releases {
	return &Releases{store: store, index: index, FourEyes: fourEyes}
}

// NewRelease is what an author gives.
type NewRelease struct {
	Name             string         `json:"name"`
	Version          string         `json:"version"`
	Kind             string         `json:"kind"`
	ImageRef         string         `json:"image_ref"`
	ImageDigest      string         `json:"image_digest"`
	BIOSProfile      map[string]any `json:"bios_profile,omitempty"`
	FirmwareBaseline map[string]any `json:"firmware_baseline,omitempty"`
	KernelArgs       string         `json:"kernel_args,omitempty"`
	Notes            string         `json:"notes,omitempty"`
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	repoRE   = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)
	digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

// Validate checks a draft.
func (n *NewRelease) Validate() error {
	n.Name, n.Version = strings.TrimSpace(n.Name), strings.TrimSpace(n.Version)
	if !nameRE.MatchString(n.Name) {
		return inventory.Errorf(inventory.ErrInvalid, "release name %q: use lower-case letters, digits, '.', '_' or '-'", n.Name)
	}
	if n.Version == "" || len(n.Version) > 64 {
		return inventory.Errorf(inventory.ErrInvalid, "release version is required (at most 64 characters)")
	}
	if n.Kind == "" {
		n.Kind = KindBootc
	}
	if n.Kind != KindBootc && n.Kind != KindDisk {
		return inventory.Errorf(inventory.ErrInvalid, "release kind %q must be bootc or disk", n.Kind)
	}
	if n.ImageRef != "" && !repoRE.MatchString(n.ImageRef) {
		return inventory.Errorf(inventory.ErrInvalid, "image_ref %q is not a repository name like plant/hmi", n.ImageRef)
	}
	if n.ImageDigest != "" && !digestRE.MatchString(n.ImageDigest) {
		return inventory.Errorf(inventory.ErrInvalid, "image_digest %q must be sha256:<64 hex digits>", n.ImageDigest)
	}
	// A baseline that does not parse would only show up when a machine is configured, long
	// after the author could have fixed it.
	if len(n.FirmwareBaseline) > 0 {
		if _, err := parseBaseline(n.Name, n.Version, n.FirmwareBaseline); err != nil {
			return inventory.Errorf(inventory.ErrInvalid, "firmware_baseline: %v", err)
		}
	}
	return nil
}

// Create records a draft release.
func (r *Releases) Create(ctx context.Context, actor string, n NewRelease) (inventory.Release, error) {
	if err := n.Validate(); err != nil {
		return inventory.Release{}, err
	}
	// A draft naming an image the registry lacks would only be refused at approval, by
	// someone else, later: say so to its author now.
	if n.ImageDigest != "" && n.ImageRef == "" {
		return inventory.Release{}, inventory.Errorf(inventory.ErrInvalid, "image_digest %s without image_ref: give the image as REPO@sha256:DIGEST", n.ImageDigest)
	}
	if n.ImageDigest != "" && r.index != nil {
		ok, err := r.index.HasManifest(ctx, n.ImageRef, n.ImageDigest)
		if err != nil {
			return inventory.Release{}, fmt.Errorf("look up image %s@%s in Slate's registry: %w", n.ImageRef, n.ImageDigest, err)
		}
		if !ok {
			return inventory.Release{}, inventory.Errorf(inventory.ErrInvalid, "image %s@%s is not in Slate's registry: push it first (upload it on the releases page, `slate registry push-disk`, or skopeo copy … docker://<slate>/%s), or pick one the registry lists", n.ImageRef, n.ImageDigest, n.ImageRef)
		}
	}
	var out inventory.Release
	err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		out, err = tx.CreateRelease(ctx, inventory.Release{Name: n.Name, Version: n.Version, Kind: n.Kind, ImageRef: n.ImageRef,
			ImageDigest: n.ImageDigest, BIOSProfile: n.BIOSProfile, FirmwareBaseline: n.FirmwareBaseline, KernelArgs: n.KernelArgs,
			Notes: n.Notes, CreatedBy: actor})
		if err != nil {
			return err
		}
		_, err = tx.Audit(ctx, actor, "release.create", out.ID, "ok", map[string]any{"name": out.Name, "version": out.Version,
			"image": out.ImageRef + "@" + out.ImageDigest, "kind": out.Kind})
		return err
	})
	return out, err
}

// Approve makes a draft release deployable. It needs an image digest that the registry holds,
// and, with four-eyes on, an approver other than the author. Refusals are audited.
func (r *Releases) Approve(ctx context.Context, actor, ref string) (inventory.Release, error) {
	var out inventory.Release
	var refusal error
	err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		rel, err := tx.GetRelease(ctx, ref)
		if err != nil {
			return err
		}
		out = rel
		switch {
		case rel.State != ReleaseDraft:
			refusal = inventory.Errorf(inventory.ErrConflict, "release %s@%s is %s; only a draft can be approved", rel.Name, rel.Version, rel.State)
		case rel.ImageDigest == "" || rel.ImageRef == "":
			refusal = inventory.Errorf(inventory.ErrInvalid, "release %s@%s has no image digest: a release pins its image by digest", rel.Name, rel.Version)
		case r.FourEyes && rel.CreatedBy == actor:
			refusal = inventory.Errorf(inventory.ErrConflict, "four-eyes approval: %s wrote release %s@%s, so another operator or admin must approve it", actor, rel.Name, rel.Version)
		}
		if refusal == nil && r.index != nil {
			ok, err := r.index.HasManifest(ctx, rel.ImageRef, rel.ImageDigest)
			if err != nil {
				return err
			}
			if !ok {
				refusal = inventory.Errorf(inventory.ErrInvalid, "image %s@%s is not in Slate's registry: push it first (skopeo copy … docker://<slate>/%s)", rel.ImageRef, rel.ImageDigest, rel.ImageRef)
			}
		}
		if refusal != nil {
			return refusal
		}
		if err := tx.SetReleaseState(ctx, rel.ID, ReleaseApproved, actor); err != nil {
			return err
		}
		if _, err := tx.Audit(ctx, actor, "release.approve", rel.ID, "ok", map[string]any{"name": rel.Name, "version": rel.Version,
			"digest": rel.ImageDigest, "author": rel.CreatedBy}); err != nil {
			return err
		}
		out, err = tx.GetRelease(ctx, rel.ID)
		return err
	})
	if refusal != nil {
		if aerr := r.store.Update(ctx, func(tx *inventory.Tx) error {
			_, e := tx.Audit(ctx, actor, "release.approve", out.ID, "refused", map[string]any{"reason": refusal.Error()})
			return e
		}); aerr != nil {
			// The refusal stands; that its record was lost must not be silent.
			err = errors.Join(err, fmt.Errorf("the refusal was not audited: %w", aerr))
		}
	}
	return out, err
}

// Retire withdraws a release from new deployments (machines running it keep it).
func (r *Releases) Retire(ctx context.Context, actor, ref, reason string) (inventory.Release, error) {
	var out inventory.Release
	err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		rel, err := tx.GetRelease(ctx, ref)
		if err != nil {
			return err
		}
		if rel.State == ReleaseRetired {
			return inventory.Errorf(inventory.ErrConflict, "release %s@%s is already retired", rel.Name, rel.Version)
		}
		if err := tx.SetReleaseState(ctx, rel.ID, ReleaseRetired, ""); err != nil {
			return err
		}
		if _, err := tx.Audit(ctx, actor, "release.retire", rel.ID, "ok", map[string]any{"reason": reason}); err != nil {
			return err
		}
		out, err = tx.GetRelease(ctx, rel.ID)
		return err
	})
	return out, err
}

// Delete removes a draft release no machine is assigned (approved and retired releases are
// history: they are retired, never deleted). Refusals are audited like approvals'.
func (r *Releases) Delete(ctx context.Context, actor, ref string) (inventory.Release, error) {
	var out inventory.Release
	err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		out, err = tx.DeleteDraftRelease(ctx, ref)
		if err != nil {
			return err
		}
		_, err = tx.Audit(ctx, actor, "release.delete", out.ID, "ok", map[string]any{"name": out.Name, "version": out.Version,
			"image": out.ImageRef + "@" + out.ImageDigest, "author": out.CreatedBy})
		return err
	})
	if errors.Is(err, inventory.ErrConflict) && out.ID != "" {
		if aerr := r.store.Update(ctx, func(tx *inventory.Tx) error {
			_, e := tx.Audit(ctx, actor, "release.delete", out.ID, "refused", map[string]any{"reason": err.Error()})
			return e
		}); aerr != nil {
			err = errors.Join(err, fmt.Errorf("the refusal was not audited: %w", aerr))
		}
	}
	return out, err
}
