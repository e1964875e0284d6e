package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"slate/image"
)

// RegistryCollector garbage-collects the embedded registry, keeping tagged images and every
// release's image, and audits the run.
type RegistryCollector interface {
	CollectGarbage(ctx context.Context, actor string, dryRun bool) (image.GCReport, error)
}

func (s *Server) registryRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/registry/gc", Summary: "Garbage-collect the registry: remove manifests no tag or release references, then unreferenced blobs (dry_run: only report); pushes get 503 meanwhile",
			Roles: adminOnly, Body: gcRequest{}, handler: s.registryGC},
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
