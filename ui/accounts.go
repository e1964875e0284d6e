package ui

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// accountPage is "my account": change your password, revoke your other sessions and tokens.
func (u *UI) accountPage(c echo.Context, s session) error {
	return u.accountView(c, s, http.StatusOK, nil)
}

func (u *UI) accountView(c echo.Context, s session, status int, fl *flash) error {
	ld := u.layout(c, s, "My account", "account")
	if fl != nil {
		ld.Flash = fl
	}
	return u.render(c, status, "account", struct {
		layoutData
		MinPassword int
	}{ld, minPasswordLength})
}

func (u *UI) accountPasswordPost(c echo.Context, s session) error {
	newPW := c.FormValue("new_password")
	if newPW != c.FormValue("new_password2") {
		return u.accountView(c, s, http.StatusUnprocessableEntity, &flash{Kind: "error", Text: "Not changed: the two new passwords differ.", Field: "new_password2"})
	}
	// The current session is kept: the person changing the password stays logged in here.
	if _, err := u.d.Store.ChangePassword(c.Request().Context(), s.user.Username, c.FormValue("current_password"), newPW, s.token); err != nil {
		field := "new_password"
		if strings.Contains(err.Error(), "current password") {
			field = "current_password"
		}
		return u.accountView(c, s, statusFor(err, http.StatusUnprocessableEntity), &flash{Kind: "error", Text: "Not changed: " + errText(err), Field: field})
	}
	return c.Redirect(http.StatusSeeOther, withFlash("/account", "password-changed"))
}

func (u *UI) accountRevokePost(c echo.Context, s session) error {
	if _, err := u.d.Store.RevokeUserTokens(c.Request().Context(), s.user.Username, s.user.Username, s.token); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, withFlash("/account", "my-tokens-revoked"))
}

// userAction is an admin's action on one account, from the users page. Each form carries
// CSRF (checked by page) and a confirmation: the typed username for delete, a ticked box
// for the others.
func (u *UI) userAction(c echo.Context, s session) error {
	ctx := c.Request().Context()
	name, verb := c.Param("username"), c.Param("verb")
	refuse := func(status int, msg string) error {
		return u.usersView(c, s, status, &flash{Kind: "error", Text: msg})
	}
	if verb == "delete" {
		if strings.TrimSpace(c.FormValue("confirm_name")) != name {
			return refuse(http.StatusUnprocessableEntity, "Not deleted: type the username "+name+" exactly to confirm.")
		}
	} else if c.FormValue("confirm") != "yes" {
		return refuse(http.StatusUnprocessableEntity, "Nothing changed: tick the confirmation box.")
	}
	var err error
	var code string
	switch verb {
	case "disable":
		err, code = u.d.Store.SetUserDisabled(ctx, s.user.Username, name, true), "user-disabled"
	case "enable":
		err, code = u.d.Store.SetUserDisabled(ctx, s.user.Username, name, false), "user-enabled"
	case "delete":
		err, code = u.d.Store.DeleteUser(ctx, s.user.Username, name), "user-deleted"
	case "password":
		_, err = u.d.Store.ResetPassword(ctx, s.user.Username, name, c.FormValue("password"))
		code = "user-password-set"
	case "revoke-tokens":
		_, err = u.d.Store.RevokeUserTokens(ctx, s.user.Username, name, "")
		code = "user-tokens-revoked"
	default:
		return u.errorPage(c, s, http.StatusNotFound, "No such user action.")
	}
	if err != nil {
		return refuse(statusFor(err, http.StatusConflict), "Not done ("+verb+" "+name+"): "+errText(err))
	}
	u.d.Logger.Info("ui: user action", "action", verb, "user", name, "by", s.user.Username)
	return c.Redirect(http.StatusSeeOther, withFlash("/users", code)+"#u-"+url.PathEscape(name))
}
