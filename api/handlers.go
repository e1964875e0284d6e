package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"slate/authguard"
	"slate/inventory"
	"slate/lifecycle"
	"slate/redfish"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type tokenResponse struct {
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"`
	Role      string `json:"role"`
}

func (s *Server) login(c echo.Context) error {
	var req loginRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	u, err := s.d.Guard.Check(ctx, req.Username, req.Password, c.RealIP(), "api")
	if err != nil {
		return loginRefused(c, err)
	}
	var tok string
	err = s.d.Store.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		if tok, err = tx.IssueToken(ctx, u.Username, "api", s.d.TokenTTL); err != nil {
			return err
		}
		if err := tx.RecordLogin(ctx, u.Username); err != nil {
			return err
		}
		_, err = tx.Audit(ctx, u.Username, "auth.login", "user:"+u.Username, "ok", map[string]any{"remote": c.RealIP(), "via": "api"})
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenResponse{Token: tok, ExpiresIn: int(s.d.TokenTTL.Seconds()), Role: u.Role})
}

// loginRefused answers a refused login: 429 with Retry-After when throttled, 403 for a
// locked account (saying how to unlock), 401 for wrong credentials.
func loginRefused(c echo.Context, err error) error {
	var th *authguard.ThrottledError
	switch {
	case errors.As(err, &th):
		c.Response().Header().Set("Retry-After", strconv.Itoa(th.Seconds()))
		return problem(http.StatusTooManyRequests, "%s", th.Error())
	case errors.Is(err, inventory.ErrLocked), errors.Is(err, inventory.ErrDisabled):
		return problem(http.StatusForbidden, "%s", err.Error())
	case errors.Is(err, inventory.ErrNotFound):
		return problem(http.StatusUnauthorized, "wrong username or password")
	}
	return err
}

func (s *Server) unlockUser(c echo.Context) error {
	name := c.Param("username")
	if err := s.d.Store.UnlockUser(c.Request().Context(), actor(c), name); err != nil {
		return err
	}
	s.d.Guard.Unlocked(name)
	return c.JSON(http.StatusOK, map[string]any{"username": name, "locked": false})
}

func (s *Server) logout(c echo.Context) error {
	tok := strings.TrimSpace(strings.TrimPrefix(c.Request().Header.Get("Authorization"), "Bearer "))
	ctx := c.Request().Context()
	err := s.d.Store.Update(ctx, func(tx *inventory.Tx) error {
		if err := tx.RevokeToken(ctx, tok); err != nil {
			return err
		}
		_, err := tx.Audit(ctx, actor(c), "auth.logout", "user:"+actor(c), "ok", nil)
		return err
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) me(c echo.Context) error {
	u, _ := UserFrom(c)
	return c.JSON(http.StatusOK, u)
}

func (s *Server) lifecycleTable(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"states": lifecycle.States(), "transitions": lifecycle.Table()})
}

// MachineList is a page of machines.
type MachineList struct {
	Items   []inventory.Machine `json:"items"`
	Total   int                 `json:"total"`
	Limit   int                 `json:"limit"`
	Offset  int                 `json:"offset"`
	Counts  map[string]int      `json:"counts_by_state"`
	Warning []string            `json:"warnings,omitempty"`
}

func intParam(c echo.Context, name string, def, maxV int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxV {
		return 0, problem(http.StatusBadRequest, "query parameter %s must be a whole number from 0 to %d", name, maxV)
	}
	return n, nil
}

// listOptions reads sort, dir and include_retired of a machine listing; an error names the
// parameter and what it accepts.
func listOptions(q url.Values) (sortKey string, desc, includeRetired bool, err error) {
	sortKey = q.Get("sort")
	if sortKey != "" && !slices.Contains(inventory.MachineSortKeys(), sortKey) {
		return "", false, false, fmt.Errorf("query parameter sort must be one of %s, not %q", strings.Join(inventory.MachineSortKeys(), ", "), sortKey)
	}
	switch q.Get("dir") {
	case "", "asc":
	case "desc":
		desc = true
	default:
		return "", false, false, fmt.Errorf("query parameter dir must be asc or desc, not %q", q.Get("dir"))
	}
	if v := q.Get("include_retired"); v != "" {
		if includeRetired, err = strconv.ParseBool(v); err != nil {
			return "", false, false, fmt.Errorf("query parameter include_retired must be true or false, not %q", v)
		}
	}
	return sortKey, desc, includeRetired, nil
}

func (s *Server) listMachines(c echo.Context) error {
	limit, err := intParam(c, "limit", 100, 1000)
	if err != nil {
		return err
	}
	offset, err := intParam(c, "offset", 0, 1<<30)
	if err != nil {
		return err
	}
	state := c.QueryParam("state")
	if state != "" && !lifecycle.ValidState(state) {
		return problem(http.StatusBadRequest, "state %q is not a lifecycle state (%s)", state, strings.Join(lifecycle.States(), ", "))
	}
	if limit == 0 {
		limit = 100
	}
	f := inventory.MachineFilter{State: state, Label: c.QueryParam("label"), Query: c.QueryParam("q"), Limit: limit, Offset: offset}
	if f.Sort, f.Desc, f.IncludeRetired, err = listOptions(c.QueryParams()); err != nil {
		return problem(http.StatusBadRequest, "%s", err.Error())
	}
	ctx := c.Request().Context()
	items, total, err := s.d.Store.ListMachines(ctx, f)
	if err != nil {
		return err
	}
	// The total is in the body and in a header, for clients that page without parsing it.
	c.Response().Header().Set("X-Total-Count", strconv.Itoa(total))
	counts, err := s.d.Store.CountByState(ctx)
	if err != nil {
		return err
	}
	out := MachineList{Items: items, Total: total, Limit: limit, Offset: offset, Counts: counts}
	if s.d.Warnings != nil {
		out.Warning = s.d.Warnings()
	}
	return c.JSON(http.StatusOK, out)
}

// MachineView is a machine with what it waits for.
type MachineView struct {
	inventory.Machine
	Why string `json:"why,omitempty"`
	// BootExpected is set while a network boot of the machine is expected (only such a boot
	// gets an agent token).
	BootExpected *inventory.BootExpectation `json:"boot_expected,omitempty"`
}

func (s *Server) getMachine(c echo.Context) error {
	m, err := s.d.Store.GetMachine(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	v := MachineView{Machine: m}
	if s.d.Why != nil {
		v.Why = s.d.Why(m.ID)
	}
	e, ok, err := s.d.Store.BootExpected(c.Request().Context(), m.ID)
	if err != nil {
		return err
	}
	if ok {
		v.BootExpected = &e
	}
	return c.JSON(http.StatusOK, v)
}

// expectBoot arms the expectation of a machine's network boot that a technician starts by
// hand (a machine without a BMC, or one powered on at the rack).
func (s *Server) expectBoot(c echo.Context) error {
	e, err := s.d.Lifecycle.ExpectBoot(c.Request().Context(), actor(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, e)
}

func (s *Server) enroll(c echo.Context) error {
	var req lifecycle.EnrollRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.AllSystems {
		return s.enrollAll(c, req)
	}
	m, err := s.d.Lifecycle.Enroll(c.Request().Context(), s.d.Secrets, actor(c), req)
	var sce *lifecycle.SystemChoiceError
	if errors.As(err, &sce) {
		return systemChoiceProblem(c, sce)
	}
	out := EnrolledMachine{Machine: m}
	var pe *lifecycle.PowerOnError
	switch {
	case errors.As(err, &pe):
		// Enrolled (committed), but the power-on that was asked for failed: the machine
		// exists, say why it is not booting (the failure is in the audit log too).
		out.Warning = err.Error()
		out.WarningCode = lifecycle.WarningPowerOnFailed
		if errors.Is(err, lifecycle.ErrMachineRunning) {
			out.WarningCode = lifecycle.WarningMachineRunning
		}
		c.Response().Header().Set("Slate-Warning", out.Warning)
	case err != nil:
		// Anything else means nothing was stored, whatever fields m carries.
		return err
	}
	c.Response().Header().Set("Location", "/api/v1/machines/"+m.ID)
	return c.JSON(http.StatusCreated, out)
}

// enrollAll enrolls every computer system behind one BMC (all_systems): one machine each,
// all or none.
func (s *Server) enrollAll(c echo.Context, req lifecycle.EnrollRequest) error {
	ms, err := s.d.Lifecycle.EnrollAll(c.Request().Context(), s.d.Secrets, actor(c), req)
	out := EnrolledMachines{Machines: ms}
	var pe *lifecycle.PowerOnsError
	switch {
	case errors.As(err, &pe):
		out.Warning = err.Error()
		c.Response().Header().Set("Slate-Warning", strings.ReplaceAll(out.Warning, "\n", "; "))
	case err != nil:
		return err
	}
	return c.JSON(http.StatusCreated, out)
}

// EnrolledMachines is the answer to an all_systems enrollment: one machine per computer
// system behind the BMC, and a warning when some power-ons asked for failed.
type EnrolledMachines struct {
	Machines []inventory.Machine `json:"machines"`
	Warning  string              `json:"warning,omitempty"`
}

// SystemChoiceProblem is the 422 answer to an enrollment by a BMC with several computer
// systems that did not single one out: the problem, and the systems to choose from.
type SystemChoiceProblem struct {
	Problem
	Systems []redfish.SystemInfo `json:"systems"`
}

func systemChoiceProblem(c echo.Context, e *lifecycle.SystemChoiceError) error {
	status := http.StatusUnprocessableEntity
	p := SystemChoiceProblem{Problem: Problem{Type: "about:blank", Title: http.StatusText(status), Status: status,
		Detail: e.Error(), Instance: c.Request().URL.Path}, Systems: e.Systems}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(status)
	return json.NewEncoder(c.Response()).Encode(p)
}

// EnrolledMachine is the answer to an enrollment: the machine, and a warning when it was
// enrolled but what was asked besides (powering it on) failed.
type EnrolledMachine struct {
	inventory.Machine
	Warning string `json:"warning,omitempty"`
	// WarningCode says which partial failure Warning is, for clients that act on it:
	// "machine-running" (left alone, not restarted) or "power-on-failed".
	WarningCode string `json:"warning_code,omitempty"`
}

func (s *Server) updateMachine(c echo.Context) error {
	var p inventory.MachinePatch
	if err := decode(c, &p); err != nil {
		var pe *problemError
		if errors.As(err, &pe) && strings.HasPrefix(pe.detail, `unknown field "bmc`) {
			return problem(http.StatusBadRequest, "%s: a machine's BMC is changed with PUT /api/v1/machines/%s/bmc (probe it first with POST …/bmc/probe to see its certificate)", pe.detail, c.Param("id"))
		}
		return err
	}
	m, err := s.d.Lifecycle.Update(c.Request().Context(), actor(c), c.Param("id"), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

type transitionRequest struct {
	To     string `json:"to"` // a state, or "retry" to leave failed for the state it failed in
	Reason string `json:"reason"`
	// ConfirmName must equal the machine's name to start a decommission (it ends in wiping
	// every disk): the same typed confirmation the web UI asks for.
	ConfirmName string `json:"confirm_name,omitempty"`
}

func (s *Server) transition(c echo.Context) error {
	var req transitionRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return problem(http.StatusUnprocessableEntity, "reason is required: say why the machine moves (it goes in the audit log)")
	}
	ctx := c.Request().Context()
	id := c.Param("id")
	var m inventory.Machine
	var err error
	if req.To == lifecycle.Decommissioning {
		if m, err = s.d.Store.GetMachine(ctx, c.Param("id")); err != nil {
			return err
		}
		if strings.TrimSpace(req.ConfirmName) != m.Name {
			return problem(http.StatusUnprocessableEntity, "confirm_name must be the machine's name (%s) to decommission it: decommissioning wipes every disk", m.Name)
		}
		id = m.ID // the machine whose name was confirmed, even if the name is reused meanwhile
	}
	switch {
	case req.To == "retry":
		m, err = s.d.Lifecycle.Retry(ctx, id, actor(c), req.Reason)
	case req.To == lifecycle.Failed:
		m, err = s.d.Lifecycle.Fail(ctx, id, actor(c), req.Reason, "")
	case !lifecycle.ValidState(req.To):
		return problem(http.StatusUnprocessableEntity, "to %q is not a lifecycle state (%s) nor \"retry\"", req.To, strings.Join(lifecycle.States(), ", "))
	default:
		m, err = s.d.Lifecycle.Transition(ctx, id, req.To, actor(c), req.Reason)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

func (s *Server) machineAudit(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	ev, err := s.d.Store.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Limit: 500})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": ev})
}

func (s *Server) listAudit(c echo.Context) error {
	limit, err := intParam(c, "limit", 100, 1000)
	if err != nil {
		return err
	}
	before, err := intParam(c, "before", 0, 1<<62)
	if err != nil {
		return err
	}
	ev, err := s.d.Store.ListAudit(c.Request().Context(), inventory.AuditFilter{Subject: c.QueryParam("subject"),
		Actor: c.QueryParam("actor"), Action: c.QueryParam("action"), Before: int64(before), Limit: limit})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": ev})
}

func (s *Server) verifyAudit(c echo.Context) error {
	rep, err := s.d.Store.VerifyAudit(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}

type userRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
	FullName string `json:"full_name,omitempty"`
}

func (s *Server) listUsers(c echo.Context) error {
	us, err := s.d.Store.ListUsers(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": us})
}

func (s *Server) createUser(c echo.Context) error {
	var req userRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	u, err := s.d.Store.AddUser(c.Request().Context(), actor(c), req.Username, req.Password, req.Role, req.FullName)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, u)
}

// probeBMC shows the certificate a machine's BMC presents now beside the pinned one; nothing
// is stored. An empty body probes with the stored settings.
func (s *Server) probeBMC(c echo.Context) error {
	var ch lifecycle.BMCChange
	if c.Request().ContentLength != 0 {
		if err := decode(c, &ch); err != nil {
			return err
		}
	}
	p, err := s.d.Lifecycle.ProbeBMC(c.Request().Context(), s.d.Secrets, c.Param("id"), ch)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// setBMC changes a machine's BMC; a new certificate needs tls_fingerprint naming it.
func (s *Server) setBMC(c echo.Context) error {
	var ch lifecycle.BMCChange
	if err := decode(c, &ch); err != nil {
		return err
	}
	m, err := s.d.Lifecycle.SetBMC(c.Request().Context(), s.d.Secrets, actor(c), c.Param("id"), ch)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}
