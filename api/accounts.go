package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

type passwordChangeRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

type passwordResetRequest struct {
	Password string `json:"password"`
}

type revokeResponse struct {
	Revoked int    `json:"revoked"`
	Message string `json:"message"`
}

func (s *Server) accountRoutes() []Route {
	return []Route{
		{Method: "PUT", Path: "/me/password", Summary: "Change your own password (needs the current one); your other sessions and tokens are revoked", Roles: all, Body: passwordChangeRequest{}, handler: s.changeMyPassword},
		{Method: "POST", Path: "/me/revoke-tokens", Summary: "Revoke all your tokens and sessions except the one making this request", Roles: all, handler: s.revokeMyTokens},
		{Method: "POST", Path: "/users/:username/disable", Summary: "Disable a user: no login, its tokens and sessions stop working at once", Roles: adminOnly, handler: s.disableUser},
		{Method: "POST", Path: "/users/:username/enable", Summary: "Enable a disabled user", Roles: adminOnly, handler: s.enableUser},
		{Method: "DELETE", Path: "/users/:username", Summary: "Delete a user (not yourself, not the last enabled admin; the audit log keeps the name)", Roles: adminOnly, handler: s.deleteUser},
		{Method: "PUT", Path: "/users/:username/password", Summary: "Set another user's password (admin reset); all its tokens and sessions are revoked", Roles: adminOnly, Body: passwordResetRequest{}, handler: s.resetPassword},
		{Method: "POST", Path: "/users/:username/revoke-tokens", Summary: "Revoke all tokens and sessions of a user", Roles: adminOnly, handler: s.revokeUserTokens},
	}
}

// presentedToken is the bearer token of the request (kept when a user revokes the others).
func presentedToken(c echo.Context) string {
	return strings.TrimSpace(strings.TrimPrefix(c.Request().Header.Get("Authorization"), "Bearer "))
}

func (s *Server) changeMyPassword(c echo.Context) error {
	var req passwordChangeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	u, _ := UserFrom(c)
	n, err := s.d.Store.ChangePassword(c.Request().Context(), u.Username, req.CurrentPassword, req.NewPassword, presentedToken(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, revokeResponse{Revoked: n, Message: "password changed; your other sessions and tokens were revoked"})
}

func (s *Server) revokeMyTokens(c echo.Context) error {
	u, _ := UserFrom(c)
	n, err := s.d.Store.RevokeUserTokens(c.Request().Context(), u.Username, u.Username, presentedToken(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, revokeResponse{Revoked: n, Message: "all your other tokens and sessions were revoked"})
}

func (s *Server) disableUser(c echo.Context) error {
	if err := s.d.Store.SetUserDisabled(c.Request().Context(), actor(c), c.Param("username"), true); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) enableUser(c echo.Context) error {
	if err := s.d.Store.SetUserDisabled(c.Request().Context(), actor(c), c.Param("username"), false); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) deleteUser(c echo.Context) error {
	if err := s.d.Store.DeleteUser(c.Request().Context(), actor(c), c.Param("username")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) resetPassword(c echo.Context) error {
	var req passwordResetRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	n, err := s.d.Store.ResetPassword(c.Request().Context(), actor(c), c.Param("username"), req.Password)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, revokeResponse{Revoked: n, Message: "password set; all of the user's tokens and sessions were revoked"})
}

func (s *Server) revokeUserTokens(c echo.Context) error {
	n, err := s.d.Store.RevokeUserTokens(c.Request().Context(), actor(c), c.Param("username"), "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, revokeResponse{Revoked: n, Message: "all of the user's tokens and sessions were revoked"})
}
