// Package api is Slate's JSON API under /api/v1: authentication, the role matrix (data,
// enforced on every route), and thin handlers over inventory/ and lifecycle/.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"slate/authguard"
	"slate/inventory"
	"slate/lifecycle"
)

// Deps is what the API needs from the rest of Slate.
type Deps struct {
	Store     *inventory.Store
	Lifecycle *lifecycle.Machines
	Releases  *lifecycle.Releases
	Secrets   *inventory.SecretBox
	Logger    *slog.Logger
	Metrics   prometheus.Registerer
	// Warnings returns operational warnings to show (e.g. another DHCP server seen).
	Warnings func() []string
	// Decommission confirms wipes and verifies certificates.
	Decommission Decommissioner
	// Subscribe follows machine changes (live progress).
	Subscribe func() (<-chan string, func())
	// Why says what a machine waits for.
	Why func(machineID string) string
	// TaskQueued wakes a machine's waiting agent when a task is queued for it.
	TaskQueued func(machineID string)
	// TokenTTL is how long an API token lives.
	TokenTTL time.Duration
	// Registry garbage-collects the embedded registry.
	Registry RegistryCollector
	// Guard checks passwords (shared with the UI and the registry, so one bound and one
	// back-off cover every way in).
	Guard *authguard.Guard
}

// Route is one entry of the API: the role matrix is the Roles column.
type Route struct {
	Method  string
	Path    string // echo syntax, relative to /api/v1
	Summary string
	Roles   []string // nil: public
	Body    any      // example body type, for the OpenAPI description
	handler echo.HandlerFunc
}

// Public reports whether the route needs no authentication.
func (r Route) Public() bool { return r.Roles == nil }

var all = []string{inventory.RoleAdmin, inventory.RoleOperator, inventory.RoleAuditor}
var writers = []string{inventory.RoleAdmin, inventory.RoleOperator}

// readersOfAudit read the audit log and verify its chain, read-only. Operators are among
// them: the technician who enrolls, moves and decommissions machines needs their history
// (who did what, when, and why) and already sees each machine's events; hiding the rest of
// the log from them protected nothing and made the role matrix inconsistent. Every
// audit-reading route (here, in the UI and via the CLI) uses this one set.
var readersOfAudit = all
var adminOnly = []string{inventory.RoleAdmin}

// Server is the API.
type Server struct {
	d      Deps
	routes []Route
	extra  []Route
	dhcp   DHCPView
}

// New builds the API.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.TokenTTL == 0 {
		d.TokenTTL = 12 * time.Hour
	}
	if d.Guard == nil {
		d.Guard = authguard.New(d.Store, authguard.Config{}, nil, d.Logger)
	}
	s := &Server{d: d}
	s.routes = []Route{
		{Method: "POST", Path: "/auth/token", Summary: "Log in: trade a username and password for a bearer token", Body: loginRequest{}, handler: s.login},
		{Method: "DELETE", Path: "/auth/token", Summary: "Log out: revoke the presented token", Roles: all, handler: s.logout},
		{Method: "GET", Path: "/me", Summary: "The authenticated user", Roles: all, handler: s.me},
		{Method: "GET", Path: "/openapi.json", Summary: "This API's OpenAPI 3 description", Roles: all, handler: s.openapi},
		{Method: "GET", Path: "/lifecycle", Summary: "Lifecycle states and allowed transitions", Roles: all, handler: s.lifecycleTable},
		{Method: "GET", Path: "/machines", Summary: "List machines (filter: state, label, q, include_retired; sort: name, state, release, ip, updated with dir asc|desc; paging: limit, offset; total also in X-Total-Count)", Roles: all, handler: s.listMachines},
		{Method: "POST", Path: "/machines", Summary: "Enroll a machine by MAC, serial and/or BMC; behind a BMC with several systems pick one (system_id, or a MAC/serial/system_uuid match) or enroll all_systems (answers {machines: [...]}); adopt: true takes a running machine as it is (no power change)", Roles: writers, Body: lifecycle.EnrollRequest{}, handler: s.enroll},
		{Method: "GET", Path: "/machines/:id", Summary: "One machine", Roles: all, handler: s.getMachine},
		{Method: "PATCH", Path: "/machines/:id", Summary: "Update a machine's descriptive fields", Roles: writers, Body: inventory.MachinePatch{}, handler: s.updateMachine},
		{Method: "POST", Path: "/machines/:id/bmc/probe", Summary: "Connect to a machine's BMC (stored settings, or the ones in the body) and show the certificate it presents beside the pinned one: the first step of a re-pin", Roles: writers, Body: lifecycle.BMCChange{}, handler: s.probeBMC},
		{Method: "PUT", Path: "/machines/:id/bmc", Summary: "Change a machine's BMC address, credentials, vendor profile or pinned certificate; a new certificate is pinned only with tls_fingerprint equal to the one the BMC presents (see bmc/probe)", Roles: writers, Body: lifecycle.BMCChange{}, handler: s.setBMC},
		{Method: "POST", Path: "/machines/:id/transition", Summary: "Move a machine to another lifecycle state (or retry a failed one); to decommissioning only with confirm_name equal to the machine's name", Roles: writers, Body: transitionRequest{}, handler: s.transition},
		{Method: "GET", Path: "/machines/:id/audit", Summary: "Audit events about one machine", Roles: readersOfAudit, handler: s.machineAudit},
		{Method: "POST", Path: "/machines/:id/expect-boot", Summary: "Announce that you will power the machine on by hand: its network boot is expected (and gets an agent token) for the boot window", Roles: writers, handler: s.expectBoot},
		{Method: "GET", Path: "/audit", Summary: "List audit events, newest first", Roles: readersOfAudit, handler: s.listAudit},
		{Method: "GET", Path: "/audit/verify", Summary: "Walk the audit hash chain", Roles: readersOfAudit, handler: s.verifyAudit},
		{Method: "GET", Path: "/users", Summary: "List users", Roles: adminOnly, handler: s.listUsers},
		{Method: "POST", Path: "/users", Summary: "Create a user", Roles: adminOnly, Body: userRequest{}, handler: s.createUser},
		{Method: "POST", Path: "/users/:username/unlock", Summary: "Unlock an account locked after repeated failed logins", Roles: adminOnly, handler: s.unlockUser},
	}
	s.routes = append(s.routes, s.accountRoutes()...)
	s.routes = append(s.routes, s.releaseRoutes()...)
	s.routes = append(s.routes, s.taskRoutes()...)
	s.routes = append(s.routes, s.decommissionRoutes()...)
	s.routes = append(s.routes, s.registryRoutes()...)
	s.routes = append(s.routes, s.mediaRoutes()...)
	s.routes = append(s.routes, s.leaseRoutes()...)
	s.routes = append(s.routes, Route{Method: "GET", Path: "/events", Summary: "Server-sent events: the id of each machine that changes (?machine=ID to follow one)", Roles: all, handler: s.events})
	return s
}

// Handle adds a route owned by another part of Slate (e.g. DHCP status), under the same
// authentication and role matrix. Call before Mount.
func (s *Server) Handle(method, path, summary string, roles []string, h echo.HandlerFunc) {
	s.extra = append(s.extra, Route{Method: method, Path: path, Summary: summary, Roles: roles, handler: h})
}

// SetWhy sets the explanation source (the reconciler is built after the API).
func (s *Server) SetWhy(f func(machineID string) string) { s.d.Why = f }

// SetDecommission sets the decommissioning service (built after the API).
func (s *Server) SetDecommission(d Decommissioner) { s.d.Decommission = d }

// SetTaskQueued sets who is woken when a task is queued.
func (s *Server) SetTaskQueued(f func(machineID string)) { s.d.TaskQueued = f }

// Routes returns the route table (the role matrix).
func (s *Server) Routes() []Route { return append(slices.Clone(s.routes), s.extra...) }

type ctxKey string

const userKey ctxKey = "user"

// UserFrom returns the authenticated user of a request.
func UserFrom(c echo.Context) (inventory.User, bool) {
	u, ok := c.Get(string(userKey)).(inventory.User)
	return u, ok
}

// Authenticate resolves the bearer token of a request (nil error: authenticated).
func (s *Server) Authenticate(ctx context.Context, r *http.Request) (inventory.User, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return inventory.User{}, errors.New("send Authorization: Bearer <token> (get one from POST /api/v1/auth/token)")
	}
	u, err := s.d.Store.UserForToken(ctx, strings.TrimSpace(tok), "api")
	if err != nil {
		return u, errors.New("token unknown or expired: log in again")
	}
	return u, nil
}

func (s *Server) guard(rt Route) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if rt.Public() {
				return next(c)
			}
			u, err := s.Authenticate(c.Request().Context(), c.Request())
			if err != nil {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="slate"`)
				return problem(http.StatusUnauthorized, "%v", err)
			}
			c.Set(string(userKey), u)
			if !slices.Contains(rt.Roles, u.Role) {
				// Refused privileged actions are audited: someone tried.
				if rt.Method != http.MethodGet {
					if err := s.d.Store.Audit(c.Request().Context(), u.Username, "api.refused", rt.Method+" "+c.Request().URL.Path, "refused",
						map[string]any{"role": u.Role, "needs": rt.Roles}); err != nil {
						s.d.Logger.Error("audit of a refused request not saved", "user", u.Username, "path", c.Request().URL.Path, "err", err)
					}
				}
				return problem(http.StatusForbidden, "role %s may not %s %s (allowed: %s)", u.Role, rt.Method, rt.Path, strings.Join(rt.Roles, ", "))
			}
			return next(c)
		}
	}
}

// Mount registers every API route on e under /api/v1.
func (s *Server) Mount(e *echo.Echo) {
	g := e.Group("/api/v1")
	for _, rt := range s.Routes() {
		g.Add(rt.Method, rt.Path, rt.handler, s.guard(rt))
	}
	// Unknown API paths answer problem+json too, after authentication (so the API's
	// shape is not disclosed to anonymous callers).
	g.Any("/*", func(c echo.Context) error {
		if _, err := s.Authenticate(c.Request().Context(), c.Request()); err != nil {
			return problem(http.StatusUnauthorized, "%v", err)
		}
		return problem(http.StatusNotFound, "no API route %s %s (see /api/v1/openapi.json)", c.Request().Method, c.Request().URL.Path)
	})
}

// ErrorHandler renders every error as problem+json for API paths; ui/ renders its own.
func ErrorHandler(log *slog.Logger, html func(c echo.Context, status int, msg string) error) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, detail := statusOf(err)
		switch {
		case errors.Is(err, inventory.ErrStorage):
			// Loud and specific: the operator reading the log must see that the disk, not a
			// bug, lost this write.
			log.Error("write not saved: storage failure", "method", c.Request().Method, "path", c.Request().URL.Path,
				"status", status, "disk_full", inventory.IsDiskFull(err), "err", err)
		case status >= 500 && status != http.StatusBadGateway:
			log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
			detail = "internal error; see Slate's log"
		default:
			log.Info("request refused", "method", c.Request().Method, "path", c.Request().URL.Path, "status", status, "detail", detail)
		}
		if html != nil && !strings.HasPrefix(c.Request().URL.Path, "/api/") && !strings.HasPrefix(c.Request().URL.Path, "/agent/") {
			_ = html(c, status, detail)
			return
		}
		_ = writeProblem(c, status, detail)
	}
}

func actor(c echo.Context) string {
	if u, ok := UserFrom(c); ok {
		return u.Username
	}
	return "anonymous"
}
