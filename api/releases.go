package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"slate/lifecycle"
)

func (s *Server) releaseRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/releases", Summary: "List releases (filter: state)", Roles: all, handler: s.listReleases},
		{Method: "POST", Path: "/releases", Summary: "Create a draft release (image pinned by digest, BIOS profile, firmware baseline)", Roles: writers, Body: lifecycle.NewRelease{}, handler: s.createRelease},
		{Method: "GET", Path: "/releases/:id", Summary: "One release (id or name@version)", Roles: all, handler: s.getRelease},
		{Method: "POST", Path: "/releases/:id/approve", Summary: "Approve a draft release (four-eyes when configured)", Roles: writers, handler: s.approveRelease},
		{Method: "DELETE", Path: "/releases/:id", Summary: "Delete a draft release no machine is assigned (others are retired, never deleted); audited", Roles: writers, handler: s.deleteRelease},
		{Method: "POST", Path: "/releases/:id/retire", Summary: "Retire a release", Roles: writers, Body: reasonRequest{}, handler: s.retireRelease},
	}
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) listReleases(c echo.Context) error {
	st := c.QueryParam("state")
	if st != "" && st != lifecycle.ReleaseDraft && st != lifecycle.ReleaseApproved && st != lifecycle.ReleaseRetired {
		return problem(http.StatusBadRequest, "state must be draft, approved or retired")
	}
	rs, err := s.d.Store.ListReleases(c.Request().Context(), st)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": rs})
}

func (s *Server) createRelease(c echo.Context) error {
	var n lifecycle.NewRelease
	if err := decode(c, &n); err != nil {
		return err
	}
	r, err := s.d.Releases.Create(c.Request().Context(), actor(c), n)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/api/v1/releases/"+r.ID)
	return c.JSON(http.StatusCreated, r)
}

func (s *Server) getRelease(c echo.Context) error {
	r, err := s.d.Store.GetReleaseWithUse(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) approveRelease(c echo.Context) error {
	r, err := s.d.Releases.Approve(c.Request().Context(), actor(c), c.Param("id"))
	if err != nil {
		return err
	}
	return s.releaseJSON(c, r.ID)
}

func (s *Server) retireRelease(c echo.Context) error {
	var req reasonRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return problem(http.StatusUnprocessableEntity, "reason is required")
	}
	r, err := s.d.Releases.Retire(c.Request().Context(), actor(c), c.Param("id"), req.Reason)
	if err != nil {
		return err
	}
	return s.releaseJSON(c, r.ID)
}

func (s *Server) deleteRelease(c echo.Context) error {
	if _, err := s.d.Releases.Delete(c.Request().Context(), actor(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// releaseJSON answers a release after a change, read again with its used_by count (the
// change committed; the count is what a technician weighs next, e.g. before retiring).
func (s *Server) releaseJSON(c echo.Context, id string) error {
	r, err := s.d.Store.GetReleaseWithUse(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}
