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
	"unicode"

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
	minPasswordLength = inventory.MinPasswordLength
	sessionCookie     = "slate_session"
	preCookie         = "slate_pre"
	sessionTTL        = 12 * time.Hour
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
	// Images takes disk images uploaded on the releases page and lists the registry's tags
	// for picking a draft's image (nil: no upload, no list).
	Images ImageStore
	// UploadLimit caps one uploaded disk image in bytes (0: no cap).
	UploadLimit int64
	// SessionIdle ends a session not used for this long (0: 30 minutes).
	SessionIdle time.Duration
	// Guard checks passwords (the same one as the API's: one bound, one back-off).
	Guard *authguard.Guard
	// LastSeen is when a machine's agent last called (nil or false: never since start).
	LastSeen func(machineID string) (time.Time, bool)
}

// UI serves the pages.
type UI struct {
	d     Deps
	dhcp  DHCPView
	pages map[string]*template.Template
	login *template.Template
}

// New parses the templates.
func New(d Deps) (*UI, error) {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.SessionIdle == 0 {
		d.SessionIdle = 30 * time.Minute
	}
	if d.Guard == nil {
		d.Guard = authguard.New(d.Store, authguard.Config{}, nil, d.Logger)
	}
	if len(d.Vendors) == 0 {
		d.Vendors = []string{"auto", "generic", "dell", "hpe", "supermicro", "lenovo", "sushy"}
	}
	funcs := template.FuncMap{
		"ago":       ago,
		"hasPrefix": strings.HasPrefix,
		// fieldFlash reports whether the page's banner is about the named form field.
		"fieldFlash": func(f *flash, field string) bool { return f != nil && f.Kind != "ok" && f.Field == field },
		"bytes":      humanBytes,
		// problem splits a failure into a plain sentence and the error chain behind it.
		"problem": describe,
		"detail":  detailText,
		"json": func(v any) string {
			b, _ := json.Marshal(v)
			return string(b)
		},
	}
	u := &UI{d: d, pages: map[string]*template.Template{}}
	for _, p := range []string{"machines", "machine", "enroll", "audit", "users", "error", "releases", "certificates", "account", "bmc", "leases"} {
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
	e.POST("/machines/bulk", u.page(roleWrite, u.bulkPost))
	e.POST("/machines/filters", u.page(roleAny, u.filterSavePost))
	e.POST("/machines/filters/delete", u.page(roleAny, u.filterDeletePost))
	e.GET("/machines/:id", u.page(roleAny, u.machine))
	e.POST("/machines/:id/transition", u.page(roleWrite, u.transitionPost))
	e.POST("/machines/:id/expect-boot", u.page(roleWrite, u.expectBootPost))
	e.POST("/machines/:id/media/:verb", u.page(roleWrite, u.mediaPost))
	e.POST("/machines/:id/decommission", u.page(roleWrite, u.decommissionPost))
	e.POST("/machines/:id/release", u.page(roleWrite, u.releaseSetPost))
	e.POST("/machines/:id/identity", u.page(roleWrite, u.identityPost))
	e.POST("/machines/:id/bmc", u.page(roleWrite, u.bmcPost))
	e.POST("/machines/:id/wipe/confirm", u.page(roleWrite, u.wipeConfirmPost))
	e.GET("/machines/:id/report.pdf", u.page(roleAny, u.reportFile))
	e.GET("/certificates", u.page(roleAny, u.certificates))
	e.GET("/leases", u.page(roleAny, u.leases))
	e.GET("/certificates/:file", u.page(roleAny, u.certificateFile))
	e.GET("/releases", u.page(roleAny, u.releases))
	e.POST("/releases", u.page(roleWrite, u.releasePost))
	e.POST("/releases/:id/:verb", u.page(roleWrite, u.releaseAction))
	// The upload checks its CSRF token itself, from the stream: parsing the form first would
	// buffer the whole image.
	e.POST("/releases/upload", u.streamPage(roleWrite, u.releaseUpload))
	e.POST("/registry/gc", u.page(roleAdmin, u.registryGCPost))
	e.POST("/registry/delete", u.page(roleAdmin, u.registryDeletePost))
	e.GET("/audit", u.page(roleAudit, u.audit))
	e.GET("/users", u.page(roleAdmin, u.users))
	e.POST("/users", u.page(roleAdmin, u.usersPost))
	e.POST("/users/:username/:verb", u.page(roleAdmin, u.userAction))
	e.GET("/account", u.page(roleAny, u.accountPage))
	e.POST("/account/password", u.page(roleAny, u.accountPasswordPost))
	e.POST("/account/revoke-tokens", u.page(roleAny, u.accountRevokePost))
	e.POST("/users/:username/unlock", u.page(roleAdmin, u.unlockUser))
	e.GET("/ui/events", u.page(roleAny, u.events))
}

// Role sets for pages.
var (
	roleAny   = []string{inventory.RoleAdmin, inventory.RoleOperator, inventory.RoleAuditor}
	roleWrite = []string{inventory.RoleAdmin, inventory.RoleOperator}
	// roleAudit matches the API's readers of the audit log: operators need the history of
	// what they work on (see api.readersOfAudit).
	roleAudit = []string{inventory.RoleAdmin, inventory.RoleOperator, inventory.RoleAuditor}
	roleAdmin = []string{inventory.RoleAdmin}
)

// AuditRoles are the roles that open the audit log page (tests compare them with the API's).
func AuditRoles() []string { return slices.Clone(roleAudit) }

// Can says which parts of the UI the user sees.
type Can struct{ Write, Audit, Admin bool }

func canFor(role string) Can {
	return Can{Write: slices.Contains(roleWrite, role), Audit: slices.Contains(roleAudit, role), Admin: role == inventory.RoleAdmin}
}

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
func (u *UI) page(roles []string, h handler) echo.HandlerFunc { return u.pageWith(roles, h, true) }

// streamPage is page for a handler that reads a multipart body as a stream and checks the
// CSRF token from it itself, before it stores anything (releaseUpload).
func (u *UI) streamPage(roles []string, h handler) echo.HandlerFunc {
	return u.pageWith(roles, h, false)
}

func (u *UI) pageWith(roles []string, h handler, formCSRF bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		ck, err := c.Cookie(sessionCookie)
		if err != nil || ck.Value == "" {
			return u.toLogin(c, false)
		}
		usr, err := u.d.Store.SessionUser(c.Request().Context(), ck.Value, u.d.SessionIdle)
		if usr.Username == "" {
			if err != nil && !errors.Is(err, inventory.ErrNotFound) {
				u.d.Logger.Error("ui: cannot check the session; sending to the login page", "path", c.Request().URL.Path, "err", err)
			}
			return u.toLogin(c, true)
		}
		if err != nil {
			// Valid session whose last use could not be noted: serve the page, say why in the log.
			u.d.Logger.Warn("ui: session use not recorded", "user", usr.Username, "err", err)
		}
		s := session{user: usr, token: ck.Value}
		if c.Request().Method == http.MethodPost && formCSRF {
			if !hmac.Equal([]byte(c.FormValue("csrf")), []byte(u.csrfFor(ck.Value))) {
				u.d.Logger.Warn("ui: form refused: bad CSRF token", "user", usr.Username, "path", c.Request().URL.Path)
				return u.errorPage(c, s, http.StatusForbidden, "This form expired or did not come from Slate. Reload the page and try again.")
			}
		}
		if !slices.Contains(roles, usr.Role) {
			if c.Request().Method == http.MethodPost {
				if err := u.d.Store.Audit(c.Request().Context(), usr.Username, "ui.refused", "POST "+c.Request().URL.Path, "refused",
					map[string]any{"role": usr.Role}); err != nil {
					u.d.Logger.Error("ui: audit of a refused form not saved", "user", usr.Username, "path", c.Request().URL.Path, "err", err)
				}
			}
			return u.errorPage(c, s, http.StatusForbidden, fmt.Sprintf("Your role (%s) may not open this page.", usr.Role))
		}
		return h(c, s)
	}
}

// toLogin sends the browser to the login page; expired says it came with a session that
// is no longer valid (idle, past its lifetime, revoked), so the login page says so.
func (u *UI) toLogin(c echo.Context, expired bool) error {
	if c.Request().Method != http.MethodGet || c.Request().Header.Get("X-Partial") != "" || c.Path() == "/ui/events" {
		if expired {
			return echo.NewHTTPError(http.StatusUnauthorized, "your session expired: log in again")
		}
		return echo.NewHTTPError(http.StatusUnauthorized, "log in again")
	}
	to := "/login?next=" + url.QueryEscape(c.Request().URL.RequestURI())
	if expired {
		to += "&err=session-expired"
	}
	return c.Redirect(http.StatusSeeOther, to)
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
	ld.Flash = flashFromQuery(c.QueryParams())
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
	ld := u.layout(c, s, http.StatusText(status), "")
	// An error page never carries a success banner (a ?ok= left in the URL): it is red.
	ld.Flash = &flash{Kind: "error", Text: msg}
	return u.render(c, status, "error", struct {
		layoutData
		Status     int
		StatusText string
		Message    string
	}{ld, status, http.StatusText(status), msg})
}

// statusFor is the HTTP status of a failed form post: a write the store could not commit is
// a server error (507 disk full, 503 otherwise), never the 4xx of a refused request.
func statusFor(err error, refused int) int {
	switch {
	case inventory.IsDiskFull(err):
		return http.StatusInsufficientStorage
	case errors.Is(err, inventory.ErrStorage):
		return http.StatusServiceUnavailable
	}
	return refused
}

// ErrorHTML renders errors of UI paths (for the server's error handler).
func (u *UI) ErrorHTML(c echo.Context, status int, msg string) error {
	if status == http.StatusUnauthorized {
		return c.String(status, msg)
	}
	ck, err := c.Cookie(sessionCookie)
	if err == nil {
		// Same idle rule as pages: an idle session gets the plain error, not the layout.
		if usr, _ := u.d.Store.SessionUser(c.Request().Context(), ck.Value, u.d.SessionIdle); usr.Username != "" {
			return u.errorPage(c, session{usr, ck.Value}, status, msg)
		}
	}
	return c.String(status, fmt.Sprintf("%d %s: %s", status, http.StatusText(status), msg))
}

// --- login ---

type loginData struct {
	CSRF, Error, Username, Next string
	Flash                       *flash
}

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

// uiRoutes are the pages a login may return to (the first path segment of Slate's own UI).
func uiRoutes() []string {
	return []string{"/machines", "/releases", "/certificates", "/audit", "/users", "/account"}
}

// safeNext returns n if it is a path of one of Slate's own pages, else the start page. A
// browser drops tabs and newlines and reads '\' as '/', so "/\t/evil" or "/\\evil" would
// leave Slate: any control character, whitespace, backslash, percent-encoding in the path,
// "//" or ".." refuses the value (it arrives decoded once; the path must need no more).
func safeNext(n string) string {
	const home = "/machines"
	if n == "" || len(n) > 2048 {
		return home
	}
	bad := func(s string) bool {
		for _, r := range s {
			if r < 0x20 || r == 0x7f || r == '\\' || unicode.IsSpace(r) || (r >= 0x80 && !unicode.IsPrint(r)) {
				return true
			}
		}
		return strings.Contains(s, "//")
	}
	if bad(n) {
		return home
	}
	path, _, _ := strings.Cut(n, "?")
	path, _, _ = strings.Cut(path, "#")
	if strings.Contains(path, "%") || !strings.HasPrefix(path, "/") {
		return home
	}
	p, err := url.Parse(n)
	if err != nil || p.Scheme != "" || p.Host != "" || p.User != nil || p.Opaque != "" || p.Path != path {
		return home
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == ".." || seg == "." {
			return home
		}
	}
	for _, r := range uiRoutes() {
		if path == r || strings.HasPrefix(path, r+"/") {
			return n
		}
	}
	return home
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
	return u.renderLogin(c, http.StatusOK, loginData{CSRF: u.csrfFor("pre:" + pre), Next: safeNext(c.QueryParam("next")),
		Flash: flashFromQuery(c.QueryParams())})
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
		case errors.Is(err, inventory.ErrDisabled):
			status, msg = http.StatusForbidden, "This account is disabled: ask an admin to enable it."
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
		if err := tx.RecordLogin(ctx, usr.Username); err != nil {
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
	err := u.d.Store.Update(ctx, func(tx *inventory.Tx) error {
		if err := tx.RevokeToken(ctx, s.token); err != nil {
			return err
		}
		_, err := tx.Audit(ctx, s.user.Username, "auth.logout", "user:"+s.user.Username, "ok", map[string]any{"via": "ui"})
		return err
	})
	if err != nil {
		// The session was not revoked: saying "logged out" would leave a live session behind
		// a technician who believes it ended.
		u.d.Logger.Error("ui: logout not saved", "user", s.user.Username, "err", err)
		return u.errorPage(c, s, statusFor(err, http.StatusInternalServerError), "Not logged out: "+errText(err))
	}
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return c.Redirect(http.StatusSeeOther, "/login")
}

// errText turns a domain error into a sentence for a flash message.
func errText(err error) string {
	if errors.Is(err, inventory.ErrStorage) {
		// The database path and driver code are for the log, not the page.
		if inventory.IsDiskFull(err) {
			return "nothing was saved: Slate's data directory is full. Free space on it (see Slate's log), then try again."
		}
		return "nothing was saved: Slate's data directory refused the write (read-only or failing; see Slate's log). Fix it, then try again."
	}
	msg := err.Error()
	for _, p := range []string{"invalid: ", "conflict: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	if errors.Is(err, inventory.ErrNotFound) {
		return "Not found: " + msg
	}
	return msg
}
