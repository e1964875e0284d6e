package ui

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
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

// ImageStore is the registry as the releases page uses it: disk images uploaded from the
// browser are pushed into it, and its tags are offered when a draft is written.
type ImageStore interface {
	PushDisk(ctx context.Context, repo, tag, name string, src io.Reader, limit int64) (registry.PushReport, error)
	Tags(ctx context.Context) ([]registry.ImageTag, error)
}

// draftForm is what the new-draft form shows: empty, prefilled from an upload, or what the
// author typed when it was refused (so nothing typed is lost).
type draftForm struct {
	Name, Version, Kind, Image, KernelArgs, Notes string
	BIOS                                          []biosRow
	FW                                            []fwRow
	FWName, FWVersion                             string
	// UploadRepo and UploadTag keep what was typed into the upload form when it is refused.
	UploadRepo, UploadTag string
}

type biosRow struct{ Key, Value string }
type fwRow struct{ Component, Version, URL string }

// emptyRows are offered below what was typed: a technician adds attributes without JavaScript.
const emptyRows = 3

func (f *draftForm) pad() {
	for range emptyRows {
		f.BIOS = append(f.BIOS, biosRow{})
		f.FW = append(f.FW, fwRow{})
	}
}

func (u *UI) releasesPage(c echo.Context, s session, status int, fl *flash, gc *registry.GCReport) error {
	return u.releasesPageWith(c, s, status, fl, gc, nil)
}

func (u *UI) releasesPageWith(c echo.Context, s session, status int, fl *flash, gc *registry.GCReport, form *draftForm) error {
	ctx := c.Request().Context()
	rs, err := u.d.Store.ListReleases(ctx, "")
	if err != nil {
		return err
	}
	ld := u.layout(c, s, "Releases", "releases")
	if fl != nil {
		ld.Flash = fl
	}
	var tags []registry.ImageTag
	var tagsErr string
	if u.d.Images != nil {
		if tags, err = u.d.Images.Tags(ctx); err != nil {
			u.d.Logger.Error("ui: list registry tags", "err", err)
			tagsErr = "The registry's images cannot be listed (see Slate's log); type the image instead."
		}
	}
	if form == nil {
		form = &draftForm{Kind: lifecycle.KindBootc}
		// After an upload the image is offered for a draft: only when the registry holds it,
		// so a link cannot prefill the form with an image that is not there.
		if up := c.QueryParam("uploaded"); up != "" {
			for _, t := range tags {
				if t.Repo+"@"+t.Digest == up {
					form.Image, form.Kind, form.Version = up, lifecycle.KindDisk, t.Tag
				}
			}
		}
	}
	form.pad()
	return u.render(c, status, "releases", struct {
		layoutData
		Releases    []inventory.Release
		GC          *registry.GCReport
		Tags        []registry.ImageTag
		TagsErr     string
		Form        *draftForm
		CanUpload   bool
		UploadLimit int64
	}{ld, rs, gc, tags, tagsErr, form, u.d.Images != nil, u.d.UploadLimit})
}

func (u *UI) releases(c echo.Context, s session) error {
	return u.releasesView(c, s, http.StatusOK, nil)
}

var biosKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]{0,127}$`)

// biosValue types a BIOS attribute the way Redfish does: true/false, integers, else a string.
func biosValue(v string) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n
	}
	return v
}

// parseDraftForm reads the form; a refusal names the field (its id) it is about.
func parseDraftForm(c echo.Context) (draftForm, lifecycle.NewRelease, *flash) {
	f := draftForm{Name: c.FormValue("name"), Version: c.FormValue("version"), Kind: c.FormValue("kind"),
		Image: strings.TrimSpace(c.FormValue("image")), KernelArgs: strings.TrimSpace(c.FormValue("kernel_args")),
		Notes: strings.TrimSpace(c.FormValue("notes")), FWName: strings.TrimSpace(c.FormValue("fw_name")), FWVersion: strings.TrimSpace(c.FormValue("fw_version"))}
	if f.Image == "" {
		f.Image = strings.TrimSpace(c.FormValue("image_pick")) // the registry list, when nothing was typed
	}
	n := lifecycle.NewRelease{Name: f.Name, Version: f.Version, Kind: f.Kind, KernelArgs: f.KernelArgs, Notes: f.Notes}
	if f.Image != "" {
		var ok bool
		n.ImageRef, n.ImageDigest, ok = strings.Cut(f.Image, "@")
		if !ok || n.ImageRef == "" || n.ImageDigest == "" {
			return f, n, &flash{Kind: "error", Text: "Not created: the image must be REPO@sha256:DIGEST (pick one from the registry list, or upload one above).", Field: "image"}
		}
	}
	form := c.Request().Form
	keys, vals := form["bios_key"], form["bios_value"]
	var refusal *flash
	bios := map[string]any{}
	for i := range max(len(keys), len(vals)) {
		k, v := strings.TrimSpace(at(keys, i)), strings.TrimSpace(at(vals, i))
		if k == "" && v == "" {
			continue
		}
		f.BIOS = append(f.BIOS, biosRow{k, v})
		row := len(f.BIOS) - 1
		switch {
		case refusal != nil:
		case !biosKeyRE.MatchString(k):
			refusal = &flash{Kind: "error", Text: fmt.Sprintf("Not created: BIOS attribute %q is not an attribute name (letters, digits, '_', '.'; as the BMC lists them, e.g. ProcVirtualization).", k), Field: fmt.Sprintf("bios-key-%d", row)}
		case v == "":
			refusal = &flash{Kind: "error", Text: fmt.Sprintf("Not created: BIOS attribute %s has no value.", k), Field: fmt.Sprintf("bios-value-%d", row)}
		case bios[k] != nil:
			refusal = &flash{Kind: "error", Text: fmt.Sprintf("Not created: BIOS attribute %s is given twice.", k), Field: fmt.Sprintf("bios-key-%d", row)}
		default:
			bios[k] = biosValue(v)
		}
	}
	comps, cvers, curls := form["fw_component"], form["fw_version_row"], form["fw_url"]
	var components []any
	for i := range max(len(comps), len(cvers), len(curls)) {
		comp, ver, uri := strings.TrimSpace(at(comps, i)), strings.TrimSpace(at(cvers, i)), strings.TrimSpace(at(curls, i))
		if comp == "" && ver == "" && uri == "" {
			continue
		}
		f.FW = append(f.FW, fwRow{comp, ver, uri})
		row := len(f.FW) - 1
		pu, perr := url.Parse(uri)
		switch {
		case refusal != nil:
		case comp == "":
			refusal = &flash{Kind: "error", Text: "Not created: a firmware row needs the component (as the BMC's firmware inventory names it, e.g. BIOS or BMC).", Field: fmt.Sprintf("fw-component-%d", row)}
		case ver == "":
			refusal = &flash{Kind: "error", Text: fmt.Sprintf("Not created: firmware component %s needs the version it must run.", comp), Field: fmt.Sprintf("fw-version-%d", row)}
		case uri == "" || perr != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "":
			refusal = &flash{Kind: "error", Text: fmt.Sprintf("Not created: firmware component %s needs the http(s) URL of its update image, which the BMC downloads.", comp), Field: fmt.Sprintf("fw-url-%d", row)}
		default:
			components = append(components, map[string]any{"component": comp, "version": ver, "image_uri": uri})
		}
	}
	if refusal != nil {
		return f, n, refusal
	}
	if len(bios) > 0 {
		n.BIOSProfile = bios
	}
	if len(components) > 0 {
		n.FirmwareBaseline = map[string]any{"components": components}
		if f.FWName != "" {
			n.FirmwareBaseline["name"] = f.FWName
		}
		if f.FWVersion != "" {
			n.FirmwareBaseline["version"] = f.FWVersion
		}
	} else if f.FWName != "" || f.FWVersion != "" {
		return f, n, &flash{Kind: "error", Text: "Not created: a firmware baseline needs at least one component row.", Field: "fw-component-0"}
	}
	return f, n, nil
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// draftField says which form field a refusal from lifecycle is about.
func draftField(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "release name"):
		return "name"
	case strings.Contains(msg, "release version"):
		return "version"
	case strings.Contains(msg, "kind"):
		return "kind"
	case strings.Contains(msg, "image"):
		return "image"
	case strings.Contains(msg, "firmware_baseline"):
		return "fw-component-0"
	case strings.Contains(msg, "already exists"):
		return "version"
	}
	return ""
}

func (u *UI) releasePost(c echo.Context, s session) error {
	form, n, refusal := parseDraftForm(c)
	if refusal != nil {
		return u.releasesPageWith(c, s, http.StatusUnprocessableEntity, refusal, nil, &form)
	}
	r, err := u.d.Releases.Create(c.Request().Context(), s.user.Username, n)
	if err != nil {
		return u.releasesPageWith(c, s, statusFor(err, http.StatusUnprocessableEntity), &flash{Kind: "error", Text: "Not created: " + errText(err), Field: draftField(err)}, nil, &form)
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
		// Retiring withdraws a release from every new install: the technician types which one.
		cur, gerr := u.d.Store.GetRelease(ctx, c.Param("id"))
		if gerr != nil {
			return u.releasesView(c, s, statusFor(gerr, http.StatusNotFound), &flash{Kind: "error", Text: "Not retired: " + errText(gerr)})
		}
		if strings.TrimSpace(c.FormValue("confirm")) != cur.Name+"@"+cur.Version {
			return u.releasesView(c, s, http.StatusUnprocessableEntity, &flash{Kind: "error",
				Text: fmt.Sprintf("Not retired: type %s@%s exactly to confirm.", cur.Name, cur.Version), Field: "retire-" + cur.ID})
		}
		r, err = u.d.Releases.Retire(ctx, s.user.Username, cur.ID, "retired from the web UI")
	case "delete":
		r, err = u.d.Releases.Delete(ctx, s.user.Username, c.Param("id"))
		if err == nil {
			u.d.Logger.Info("ui: draft release deleted", "release", r.Name+"@"+r.Version, "by", s.user.Username)
			return c.Redirect(http.StatusSeeOther, withFlash("/releases", "release-deleted"))
		}
	default:
		return u.errorPage(c, s, http.StatusNotFound, "No such release action.")
	}
	if err != nil {
		return u.releasesView(c, s, statusFor(err, http.StatusConflict), &flash{Kind: "error", Text: errText(err)})
	}
	u.d.Logger.Info("ui: release state changed", "release", r.Name+"@"+r.Version, "state", r.State, "by", s.user.Username)
	return c.Redirect(http.StatusSeeOther, withFlash("/releases", "release-changed"))
}

// maxField bounds the text fields of the upload form (a repository name, a tag, the token).
const maxField = 1024

// releaseUpload streams a disk image from the browser into the registry. The multipart body
// is read part by part, in order — the CSRF token, the repository and the tag come before the
// file — so the file is never parsed into memory or a temporary file: it goes straight into the
// registry's upload folder (PushDisk), checked (GPT, slate-config) from its first MiB.
func (u *UI) releaseUpload(c echo.Context, s session) error {
	if u.d.Images == nil {
		return u.errorPage(c, s, http.StatusServiceUnavailable, "This Slate has no registry to upload into.")
	}
	ctx := c.Request().Context()
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return u.releasesView(c, s, http.StatusBadRequest, &flash{Kind: "error", Text: "Not uploaded: the form did not arrive as a file upload (multipart/form-data). Reload the page and try again.", Field: "upload-file"})
	}
	fields := map[string]string{}
	// A refusal keeps what was typed: only the file has to be chosen again.
	refuse := func(status int, fl *flash) error {
		return u.releasesPageWith(c, s, status, fl, nil, &draftForm{Kind: lifecycle.KindBootc, UploadRepo: fields["repo"], UploadTag: fields["tag"]})
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return u.releasesView(c, s, http.StatusBadRequest, &flash{Kind: "error", Text: "Not uploaded: the upload was interrupted (" + err.Error() + "). Try again.", Field: "upload-file"})
		}
		if p.FormName() != "image" {
			b, err := io.ReadAll(io.LimitReader(p, maxField+1))
			if err != nil || len(b) > maxField {
				return u.releasesView(c, s, http.StatusBadRequest, &flash{Kind: "error", Text: "Not uploaded: field " + p.FormName() + " is too long or was cut off.", Field: "upload-file"})
			}
			fields[p.FormName()] = strings.TrimSpace(string(b))
			continue
		}
		// The token is checked before a byte of the file is stored.
		if !hmac.Equal([]byte(fields["csrf"]), []byte(u.csrfFor(s.token))) {
			u.d.Logger.Warn("ui: upload refused: bad CSRF token", "user", s.user.Username)
			return u.errorPage(c, s, http.StatusForbidden, "This form expired or did not come from Slate. Reload the page and try again.")
		}
		repo, tag := fields["repo"], fields["tag"]
		if repo == "" || tag == "" {
			field := "upload-repo"
			if repo != "" {
				field = "upload-tag"
			}
			return refuse(http.StatusUnprocessableEntity, &flash{Kind: "error", Text: "Not uploaded: give the repository (e.g. plant/os) and the tag (e.g. the release version) before the file.", Field: field})
		}
		if p.FileName() == "" {
			return refuse(http.StatusUnprocessableEntity, &flash{Kind: "error", Text: "Not uploaded: choose a disk image file (raw, .gz or .zst).", Field: "upload-file"})
		}
		rep, err := u.d.Images.PushDisk(ctx, repo, tag, p.FileName(), p, u.d.UploadLimit)
		if err != nil {
			// The browser is still sending: read the rest (up to the limit) so it gets this page
			// instead of a reset connection.
			if _, derr := io.Copy(io.Discard, io.LimitReader(p, max(u.d.UploadLimit, 1<<30))); derr != nil {
				u.d.Logger.Debug("ui: drain a refused upload", "err", derr)
			}
			status, field := http.StatusInternalServerError, "upload-file"
			switch {
			case errors.Is(err, registry.ErrNotDiskImage):
				status = http.StatusUnprocessableEntity
				if strings.Contains(err.Error(), "repository") {
					field = "upload-repo"
				} else if strings.Contains(err.Error(), "tag ") {
					field = "upload-tag"
				}
			case errors.Is(err, registry.ErrTooLarge):
				status = http.StatusRequestEntityTooLarge
			case errors.Is(err, registry.ErrGCRunning):
				status = http.StatusServiceUnavailable
			default:
				u.d.Logger.Error("ui: disk image upload failed", "user", s.user.Username, "repo", repo, "tag", tag, "err", err)
			}
			u.d.Logger.Info("ui: disk image upload refused", "user", s.user.Username, "repo", repo, "tag", tag, "file", p.FileName(), "reason", err)
			return refuse(status, &flash{Kind: "error", Text: "Not uploaded: " + err.Error(), Field: field})
		}
		if err := u.d.Store.Audit(ctx, s.user.Username, "registry.push", rep.Repo+"@"+rep.Digest, "ok",
			map[string]any{"repo": rep.Repo, "tag": rep.Tag, "digest": rep.Digest, "media_type": rep.MediaType, "bytes": rep.Size, "file": p.FileName(), "via": "web UI"}); err != nil {
			// The image is stored; that its record was lost must not be silent.
			u.d.Logger.Error("ui: audit of a disk image upload not saved", "user", s.user.Username, "image", rep.Repo+"@"+rep.Digest, "err", err)
		}
		u.d.Logger.Info("ui: disk image uploaded", "user", s.user.Username, "image", rep.Repo+"@"+rep.Digest, "tag", rep.Tag, "bytes", rep.Size)
		return c.Redirect(http.StatusSeeOther, withFlash("/releases?uploaded="+url.QueryEscape(rep.Repo+"@"+rep.Digest), "image-uploaded")+"#new-draft")
	}
	return refuse(http.StatusUnprocessableEntity, &flash{Kind: "error", Text: "Not uploaded: choose a disk image file (raw, .gz or .zst).", Field: "upload-file"})
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
