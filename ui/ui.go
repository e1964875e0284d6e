// Package ui is the technician's web pages: server-rendered, all assets embedded (plant
// networks are offline), cookie sessions with CSRF-protected forms, live updates by
// server-sent events. It holds no business logic: it calls inventory/ and lifecycle/.
package ui

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"slate/authguard"
	"slate/inventory"
	"slate/lifecycle"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

const (
	sessionCookie = "slate_session"
	preCookie     = "slate_pre"
	sessionTTL    = 12 * time.Hour
)

// Deps is what the UI needs.
type Deps struct {
	Store     *inventory.Store
	Lifecycle *lifecycle.Machines
	Releases  *lifecycle.Releases
	Secrets   *inventory.SecretBox
	Hub       *Hub
	Logger    *slog.Logger
	// CSRFKey signs form tokens; derive it from a persisted secret so forms survive restarts.
	CSRFKey  []byte
	Warnings func() []string
	// Facts returns the newest hardware facts document of a machine ("" when none).
	Facts func(ctx context.Context, machineID string) (string, error)
	// Decommission confirms wipes and verifies certificates.
	Decommission Decommissioner
	// Why says what a machine waits for (the reconciler's explanation).
	Why func(machineID string) string
	// Vendors lists the BMC vendor profiles offered on the enroll form.
	Vendors []string
	// Registry garbage-collects the embedded registry (admins, from the releases page).
	Registry RegistryCollector
	// Guard checks passwords (the same one as the API's: one bound, one back-off).
	Guard *authguard.Guard
}

// UI serves the pages.
type UI struct {
	d     Deps
	pages map[string]*template.Template
	login *template.Template
}

// New parses the templates.
func New(d Deps) (*UI, error) {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Guard == nil {
		d.Guard = authguard.New(d.Store, authguard.Config{}, nil, d.Logger)
	}
	if len(d.Vendors) == 0 {
		d.Vendors = []string{"auto", "generic", "dell", "hpe", "supermicro", "lenovo"}
	}
	funcs := template.FuncMap{
		"ago":       ago,
		"hasPrefix": strings.HasPrefix,
		"bytes":     humanBytes,
		"json": func(v any) string {
			b, _ := json.Marshal(v)
			return string(b)
		},
	}
	u := &UI{d: d, pages: map[string]*template.Template{}}
	for _, p := range []string{"machines", "machine", "enroll", "audit", "users", "error", "releases", "certificates"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", p, err)
		}
		u.pages[p] = t
	}
	t, err := template.New("login").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/login.html")
	if err != nil {
		return nil, err
	}
	u.login = t
	return u, nil
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.Format("2006-01-02")
}

// SetServices adds what is built after the UI: the reconciler's explanations and the
// decommissioning service.
func (u *UI) SetServices(why func(string) string, d Decommissioner) {
	u.d.Why, u.d.Decommission = why, d
}

// Mount registers the pages on e.
func (u *UI) Mount(e *echo.Echo) {
	sub, _ := fs.Sub(staticFS, "static")
	static := http.StripPrefix("/ui/static/", http.FileServer(http.FS(sub)))
	e.GET("/ui/static/*", echo.WrapHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		static.ServeHTTP(w, r)
	})))
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/machines") })
	e.GET("/login", u.loginPage)
	e.POST("/login", u.loginPost)
	e.POST("/logout", u.page(roleAny, u.logout))
	e.GET("/machines", u.page(roleAny, u.machines))
	e.GET("/machines/new", u.page(roleWrite, u.enrollPage))
	e.POST("/machines", u.page(roleWrite, u.enrollPost))
	e.GET("/machines/:id", u.page(roleAny, u.machine))
	e.POST("/machines/:id/transition", u.page(roleWrite, u.transitionPost))
	e.POST("/machines/:id/decommission", u.page(roleWrite, u.decommissionPost))
	e.POST("/machines/:id/release", u.page(roleWrite, u.releaseSetPost))
	e.POST("/machines/:id/wipe/confirm", u.page(roleWrite, u.wipeConfirmPost))
	e.GET("/machines/:id/report.pdf", u.page(roleAny, u.reportFile))
	e.GET("/certificates", u.page(roleAny, u.certificates))
	e.GET("/certificates/:file", u.page(roleAny, u.certificateFile))
	e.GET("/releases", u.page(roleAny, u.releases))
	e.POST("/releases", u.page(roleWrite, u.releasePost))
	e.POST("/releases/:id/:verb", u.page(roleWrite, u.releaseAction))
	e.POST("/registry/gc", u.page(roleAdmin, u.registryGCPost))
	e.GET("/audit", u.page(roleAudit, u.audit))
	e.GET("/users", u.page(roleAdmin, u.users))
	e.POST("/users", u.page(roleAdmin, u.usersPost))
	e.POST("/users/:username/unlock", u.page(roleAdmin, u.unlockUser))
	e.GET("/ui/events", u.page(roleAny, u.events))
}

// Role sets for pages.
var (
	roleAny   = []string{inventory.RoleAdmin, inventory.RoleOperator, inventory.RoleAuditor}
	roleWrite = []string{inventory.RoleAdmin, inventory.RoleOperator}
	roleAudit = []string{inventory.RoleAdmin, inventory.RoleAuditor}
	roleAdmin = []string{inventory.RoleAdmin}
)

// Can says which parts of the UI the user sees.
type Can struct{ Write, Audit, Admin bool }

func canFor(role string) Can {
	return Can{Write: slices.Contains(roleWrite, role), Audit: slices.Contains(roleAudit, role), Admin: role == inventory.RoleAdmin}
}

type flash struct{ Kind, Text string }

type session struct {
	user  inventory.User
	token string
}

func (u *UI) csrfFor(tok string) string {
	m := hmac.New(sha256.New, u.d.CSRFKey)
	m.Write([]byte(tok))
	return hex.EncodeToString(m.Sum(nil))
}

type handler func(c echo.Context, s session) error

// page authenticates by session cookie, checks the role, and checks CSRF on every POST.
func (u *UI) page(roles []string, h handler) echo.HandlerFunc {
	return func(c echo.Context) error {
		ck, err := c.Cookie(sessionCookie)
		if err != nil || ck.Value == "" {
			return u.toLogin(c)
		}
		usr, err := u.d.Store.UserForToken(c.Request().Context(), ck.Value, "session")
		if err != nil {
			return u.toLogin(c)
		}
		s := session{user: usr, token: ck.Value}
		if c.Request().Method == http.MethodPost {
			if !hmac.Equal([]byte(c.FormValue("csrf")), []byte(u.csrfFor(ck.Value))) {
				u.d.Logger.Warn("ui: form refused: bad CSRF token", "user", usr.Username, "path", c.Request().URL.Path)
				return u.errorPage(c, s, http.StatusForbidden, "This form expired or did not come from Slate. Reload the page and try again.")
			}
		}
		if !slices.Contains(roles, usr.Role) {
			if c.Request().Method == http.MethodPost {
				_ = u.d.Store.Audit(c.Request().Context(), usr.Username, "ui.refused", "POST "+c.Request().URL.Path, "refused",
					map[string]any{"role": usr.Role})
			}
			return u.errorPage(c, s, http.StatusForbidden, fmt.Sprintf("Your role (%s) may not open this page.", usr.Role))
		}
		return h(c, s)
	}
}

func (u *UI) toLogin(c echo.Context) error {
	if c.Request().Method != http.MethodGet || c.Request().Header.Get("X-Partial") != "" || c.Path() == "/ui/events" {
		return echo.NewHTTPError(http.StatusUnauthorized, "log in again")
	}
	return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
}

type layoutData struct {
	Title, Nav, CSRF string
	User             inventory.User
	Can              Can
	Flash            *flash
	Warnings         []string
}

func (u *UI) layout(c echo.Context, s session, title, nav string) layoutData {
	ld := layoutData{Title: title, Nav: nav, CSRF: u.csrfFor(s.token), User: s.user, Can: canFor(s.user.Role)}
	if f := c.QueryParam("ok"); f != "" {
		ld.Flash = &flash{"ok", f}
	}
	if u.d.Warnings != nil {
		ld.Warnings = u.d.Warnings()
	}
	return ld
}

func (u *UI) render(c echo.Context, status int, page string, data any) error {
	var buf bytes.Buffer
	if err := u.pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("render %s: %w", page, err)
	}
	c.Response().Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	c.Response().Header().Set("X-Frame-Options", "DENY")
	return c.HTMLBlob(status, buf.Bytes())
}

func (u *UI) errorPage(c echo.Context, s session, status int, msg string) error {
	return u.render(c, status, "error", struct {
		layoutData
		Status     int
		StatusText string
		Message    string
	}{u.layout(c, s, http.StatusText(status), ""), status, http.StatusText(status), msg})
}

// ErrorHTML renders errors of UI paths (for the server's error handler).
func (u *UI) ErrorHTML(c echo.Context, status int, msg string) error {
	if status == http.StatusUnauthorized {
		return c.String(status, msg)
	}
	ck, err := c.Cookie(sessionCookie)
	if err == nil {
		if usr, err := u.d.Store.UserForToken(c.Request().Context(), ck.Value, "session"); err == nil {
			return u.errorPage(c, session{usr, ck.Value}, status, msg)
		}
	}
	return c.String(status, fmt.Sprintf("%d %s: %s", status, http.StatusText(status), msg))
}

// --- login ---

type loginData struct{ CSRF, Error, Username, Next string }

func (u *UI) preToken(c echo.Context) string {
	if ck, err := c.Cookie(preCookie); err == nil && len(ck.Value) == 32 {
		return ck.Value
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	v := hex.EncodeToString(b)
	c.SetCookie(&http.Cookie{Name: preCookie, Value: v, Path: "/login", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.IsTLS()})
	return v
}

func safeNext(n string) string {
	if n == "" || !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.Contains(n, `\`) {
		return "/machines"
	}
	return n
}

func (u *UI) renderLogin(c echo.Context, status int, d loginData) error {
	var buf bytes.Buffer
	if err := u.login.ExecuteTemplate(&buf, "login", d); err != nil {
		return err
	}
	c.Response().Header().Set("X-Frame-Options", "DENY")
	return c.HTMLBlob(status, buf.Bytes())
}

func (u *UI) loginPage(c echo.Context) error {
	pre := u.preToken(c)
	return u.renderLogin(c, http.StatusOK, loginData{CSRF: u.csrfFor("pre:" + pre), Next: safeNext(c.QueryParam("next"))})
}

func (u *UI) loginPost(c echo.Context) error {
	ctx := c.Request().Context()
	pre := u.preToken(c)
	username := strings.TrimSpace(c.FormValue("username"))
	next := safeNext(c.FormValue("next"))
	if !hmac.Equal([]byte(c.FormValue("csrf")), []byte(u.csrfFor("pre:"+pre))) {
		return u.renderLogin(c, http.StatusForbidden, loginData{CSRF: u.csrfFor("pre:" + pre), Error: "The login form expired. Try again.", Username: username, Next: next})
	}
	usr, err := u.d.Guard.Check(ctx, username, c.FormValue("password"), c.RealIP(), "ui")
	if err != nil {
		status, msg := http.StatusUnauthorized, "Wrong username or password."
		var th *authguard.ThrottledError
		switch {
		case errors.As(err, &th):
			c.Response().Header().Set("Retry-After", strconv.Itoa(th.Seconds()))
			status, msg = http.StatusTooManyRequests, fmt.Sprintf("Not checked: %s. Wait %d seconds, then try again.", th.Reason, th.Seconds())
		case errors.Is(err, inventory.ErrLocked):
			status, msg = http.StatusForbidden, "This account is locked after repeated failed logins. Ask an admin to unlock it (Users page, or slate user unlock "+username+")."
		case !errors.Is(err, inventory.ErrNotFound):
			return err
		}
		return u.renderLogin(c, status, loginData{CSRF: u.csrfFor("pre:" + pre), Error: msg, Username: username, Next: next})
	}
	var tok string
	err = u.d.Store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		if tok, err = tx.IssueToken(ctx, usr.Username, "session", sessionTTL); err != nil {
			return err
		}
		_, err = tx.Audit(ctx, usr.Username, "auth.login", "user:"+usr.Username, "ok", map[string]any{"remote": c.RealIP(), "via": "ui"})
		return err
	})
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.IsTLS(), MaxAge: int(sessionTTL.Seconds())})
	return c.Redirect(http.StatusSeeOther, next)
}

func (u *UI) logout(c echo.Context, s session) error {
	ctx := c.Request().Context()
	_ = u.d.Store.Update(ctx, func(tx *inventory.Tx) error {
		if err := tx.RevokeToken(ctx, s.token); err != nil {
			return err
		}
		_, err := tx.Audit(ctx, s.user.Username, "auth.logout", "user:"+s.user.Username, "ok", map[string]any{"via": "ui"})
		return err
	})
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return c.Redirect(http.StatusSeeOther, "/login")
}

// errText turns a domain error into a sentence for a flash message.
func errText(err error) string {
	msg := err.Error()
	for _, p := range []string{"invalid: ", "conflict: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	if errors.Is(err, inventory.ErrNotFound) {
		return "Not found: " + msg
	}
	return msg
}
