package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"slate/image/registry"
	"slate/inventory"
	"slate/lifecycle"
)

// RegistryCollector garbage-collects the embedded registry, keeping tagged images and every
// release's image, and audits the run.
type RegistryCollector interface {
	CollectGarbage(ctx context.Context, actor string, dryRun bool) (registry.GCReport, error)
	// DeleteImage removes one manifest and its tags unless a release uses it; audited.
	DeleteImage(ctx context.Context, actor, repo, digest string) (registry.DeleteReport, error)
}

func (u *UI) releasesView(c echo.Context, s session, status int, fl *flash) error {
	return u.releasesPage(c, s, status, fl, nil)
}

func (u *UI) releasesPage(c echo.Context, s session, status int, fl *flash, gc *registry.GCReport) error {
	rs, err := u.d.Store.ListReleases(c.Request().Context(), "")
	if err != nil {
		return err
	}
	ld := u.layout(c, s, "Releases", "releases")
	if fl != nil {
		ld.Flash = fl
	}
	return u.render(c, status, "releases", struct {
		layoutData
		Releases []inventory.Release
		GC       *registry.GCReport
	}{ld, rs, gc})
}

func (u *UI) releases(c echo.Context, s session) error {
	return u.releasesView(c, s, http.StatusOK, nil)
}

func (u *UI) releasePost(c echo.Context, s session) error {
	n := lifecycle.NewRelease{Name: c.FormValue("name"), Version: c.FormValue("version"), Kind: c.FormValue("kind"),
		KernelArgs: strings.TrimSpace(c.FormValue("kernel_args")), Notes: strings.TrimSpace(c.FormValue("notes"))}
	if img := strings.TrimSpace(c.FormValue("image")); img != "" {
		n.ImageRef, n.ImageDigest, _ = strings.Cut(img, "@")
	}
	r, err := u.d.Releases.Create(c.Request().Context(), s.user.Username, n)
	if err != nil {
		return u.releasesView(c, s, statusFor(err, http.StatusUnprocessableEntity), &flash{Kind: "error", Text: "Not created: " + errText(err)})
	}
	u.d.Logger.Info("ui: draft release created", "release", r.Name+"@"+r.Version, "by", s.user.Username)
	return c.Redirect(http.StatusSeeOther, withFlash("/releases", "release-created"))
}

func (u *UI) releaseAction(c echo.Context, s session) error {
	ctx := c.Request().Context()
	var r inventory.Release
	var err error
	switch c.Param("verb") {
	case "approve":
		r, err = u.d.Releases.Approve(ctx, s.user.Username, c.Param("id"))
	case "retire":
		r, err = u.d.Releases.Retire(ctx, s.user.Username, c.Param("id"), "retired from the web UI")
	default:
		return u.errorPage(c, s, http.StatusNotFound, "No such release action.")
	}
	if err != nil {
		return u.releasesView(c, s, statusFor(err, http.StatusConflict), &flash{Kind: "error", Text: errText(err)})
	}
	u.d.Logger.Info("ui: release state changed", "release", r.Name+"@"+r.Version, "state", r.State, "by", s.user.Username)
	return c.Redirect(http.StatusSeeOther, withFlash("/releases", "release-changed"))
}

// registryGCPost runs (or rehearses) a registry garbage collection and shows its report on
// the releases page: the report is the answer, so there is no redirect.
func (u *UI) registryGCPost(c echo.Context, s session) error {
	if u.d.Registry == nil {
		return u.errorPage(c, s, http.StatusServiceUnavailable, "This Slate has no registry to collect.")
	}
	dry := c.FormValue("dry_run") != ""
	rep, err := u.d.Registry.CollectGarbage(c.Request().Context(), s.user.Username, dry)
	if err != nil {
		u.d.Logger.Error("ui: registry garbage collection failed", "user", s.user.Username, "err", err)
		return u.releasesView(c, s, statusFor(err, http.StatusInternalServerError), &flash{Kind: "error", Text: "Garbage collection failed: " + errText(err)})
	}
	verb := "Removed"
	if dry {
		verb = "Dry run: would remove"
	}
	msg := fmt.Sprintf("%s %s and %s, %s.", verb, plural(len(rep.Manifests), "manifest"), plural(len(rep.Blobs), "blob"), humanBytes(rep.BytesFreed))
	return u.releasesPage(c, s, http.StatusOK, &flash{Kind: "ok", Text: msg}, &rep)
}

// registryDeletePost deletes one image for an admin: the image is typed twice (a digest is
// long; a slip must not delete another image), and a release's image is refused by name.
func (u *UI) registryDeletePost(c echo.Context, s session) error {
	if u.d.Registry == nil {
		return u.errorPage(c, s, http.StatusServiceUnavailable, "This Slate has no registry.")
	}
	img := strings.TrimSpace(c.FormValue("image"))
	if img == "" || strings.TrimSpace(c.FormValue("confirm_image")) != img {
		return u.releasesView(c, s, http.StatusUnprocessableEntity, &flash{Kind: "error", Text: "Not deleted: type the image (REPO@sha256:…) in both fields."})
	}
	repo, digest, ok := strings.Cut(img, "@")
	if !ok || repo == "" {
		return u.releasesView(c, s, http.StatusUnprocessableEntity, &flash{Kind: "error", Text: "Not deleted: " + img + " is not REPO@sha256:DIGEST (images are deleted by digest, never by tag)."})
	}
	rep, err := u.d.Registry.DeleteImage(c.Request().Context(), s.user.Username, repo, digest)
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, inventory.ErrConflict):
			status = http.StatusConflict
		case errors.Is(err, inventory.ErrNotFound):
			status = http.StatusNotFound
		default:
			u.d.Logger.Error("ui: registry delete failed", "user", s.user.Username, "image", img, "err", err)
		}
		return u.releasesView(c, s, status, &flash{Kind: "error", Text: "Not deleted: " + errText(err)})
	}
	msg := "Deleted " + rep.Repo + "@" + rep.Digest
	if len(rep.Tags) > 0 {
		msg += " and its tags " + strings.Join(rep.Tags, ", ")
	}
	return u.releasesView(c, s, http.StatusOK, &flash{Kind: "ok", Text: msg + "; its blobs are freed by the next garbage collection."})
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
