package ui

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"slate/inventory"
	"slate/lifecycle"
)

func (u *UI) releasesView(c echo.Context, s session, status int, fl *flash) error {
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
	}{ld, rs})
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
		return u.releasesView(c, s, http.StatusUnprocessableEntity, &flash{"error", "Not created: " + errText(err)})
	}
	return c.Redirect(http.StatusSeeOther, "/releases?ok="+url.QueryEscape("Created draft "+r.Name+"@"+r.Version+"."))
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
		return u.releasesView(c, s, http.StatusConflict, &flash{"error", errText(err)})
	}
	return c.Redirect(http.StatusSeeOther, "/releases?ok="+url.QueryEscape(r.Name+"@"+r.Version+" is now "+r.State+"."))
}
