package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"slate/lifecycle"
)

func (s *Server) mediaRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/machines/:id/media", Summary: "What the machine's virtual CD holds, as its BMC reports it", Roles: all, handler: s.mediaStatus},
		{Method: "POST", Path: "/machines/:id/media/insert", Summary: `Insert an ISO Slate serves into the machine's virtual CD through its BMC ("image": "deploy" or a URL under <public_url>/boot/); "boot": true also boots it once from CD (a running machine only with "force": true)`, Roles: writers, Body: lifecycle.MediaRequest{}, handler: s.insertMedia},
		{Method: "POST", Path: "/machines/:id/media/eject", Summary: "Eject the machine's virtual CD through its BMC", Roles: writers, handler: s.ejectMedia},
	}
}

func (s *Server) mediaStatus(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	r, err := s.d.Lifecycle.MediaStatus(ctx, s.d.Secrets, s.d.Store, m.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) insertMedia(c echo.Context) error {
	var req lifecycle.MediaRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	r, err := s.d.Lifecycle.InsertMedia(ctx, s.d.Secrets, s.d.Store, actor(c), m.ID, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) ejectMedia(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	r, err := s.d.Lifecycle.EjectMedia(ctx, s.d.Secrets, s.d.Store, actor(c), m.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}
