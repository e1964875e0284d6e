package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"slate/image/registry"
)

// RegistryCollector garbage-collects the embedded registry, keeping tagged images and every
// release's image, and audits the run.
type RegistryCollector interface {
	CollectGarbage(ctx context.Context, actor string, dryRun bool) (registry.GCReport, error)
	// DeleteImage removes one manifest and its tags unless a release uses it; audited.
	DeleteImage(ctx context.Context, actor, repo, digest string) (registry.DeleteReport, error)
}

func (s *Server) registryRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/registry/gc", Summary: "Garbage-collect the registry: remove manifests no tag or release references, then unreferenced blobs (dry_run: only report); pushes get 503 meanwhile",
			Roles: adminOnly, Body: gcRequest{}, handler: s.registryGC},
		{Method: "DELETE", Path: "/registry/manifests/:digest", Summary: "Delete the image ?repo=REPO@digest and the tags pointing at it (its blobs go at the next gc); refused (409, naming the release) for an image a draft or approved release, or a retired release a machine still uses, needs. Audited. The registry's own /v2/ DELETE is disabled",
			Roles: adminOnly, handler: s.registryDelete},
	}
}

type gcRequest struct {
	DryRun bool `json:"dry_run"`
}

func (s *Server) registryGC(c echo.Context) error {
	var req gcRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if s.d.Registry == nil {
		return problem(http.StatusServiceUnavailable, "this Slate has no registry to collect")
	}
	rep, err := s.d.Registry.CollectGarbage(c.Request().Context(), actor(c), req.DryRun)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}

func (s *Server) registryDelete(c echo.Context) error {
	repo, digest := c.QueryParam("repo"), c.Param("digest")
	if repo == "" {
		return problem(http.StatusBadRequest, "name the repository: DELETE /api/v1/registry/manifests/%s?repo=REPO", digest)
	}
	if s.d.Registry == nil {
		return problem(http.StatusServiceUnavailable, "this Slate has no registry")
	}
	rep, err := s.d.Registry.DeleteImage(c.Request().Context(), actor(c), repo, digest)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}
