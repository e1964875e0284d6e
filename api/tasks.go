package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"slate/agent/agentproto"
)

func (s *Server) taskRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/machines/:id/facts", Summary: "Newest hardware facts of a machine (?version=N for an older one)", Roles: all, handler: s.machineFacts},
		{Method: "GET", Path: "/machines/:id/tasks", Summary: "Tasks of a machine, newest first", Roles: all, handler: s.machineTasks},
		{Method: "POST", Path: "/machines/:id/tasks", Summary: "Queue a task for a machine's agent (" + manualKindList() + ")", Roles: writers, Body: taskRequest{}, handler: s.createTask},
		{Method: "GET", Path: "/tasks/:id", Summary: "One task with its log lines (?after=SEQ for the next ones)", Roles: all, handler: s.getTask},
		{Method: "POST", Path: "/tasks/:id/cancel", Summary: "Cancel a pending or running task", Roles: writers, Body: reasonRequest{}, handler: s.cancelTask},
	}
}

type taskRequest struct {
	Kind   string          `json:"kind"`
	Params json.RawMessage `json:"params,omitempty"`
}

func (s *Server) machineFacts(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if v := c.QueryParam("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return problem(http.StatusBadRequest, "version must be a positive whole number")
		}
		f, err := s.d.Store.FactsVersion(ctx, m.ID, n)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, f)
	}
	f, err := s.d.Store.LatestFacts(ctx, m.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, f)
}

func (s *Server) machineTasks(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	ts, err := s.d.Store.ListTasks(ctx, m.ID, 100)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": ts})
}

func (s *Server) createTask(c echo.Context) error {
	var req taskRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	// Wipes and installs go through their own, confirmed, flows.
	if !agentproto.TaskKind(req.Kind).Manual() {
		return problem(http.StatusUnprocessableEntity, "kind %q cannot be queued by hand (one of: %s)", req.Kind, manualKindList())
	}
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	t, err := s.d.Store.CreateTask(ctx, actor(c), m.ID, req.Kind, req.Params)
	if err != nil {
		return err
	}
	if s.d.TaskQueued != nil {
		s.d.TaskQueued(m.ID)
	}
	return c.JSON(http.StatusCreated, t)
}

func (s *Server) getTask(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.d.Store.GetTask(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	after, _ := strconv.ParseInt(c.QueryParam("after"), 10, 64)
	logs, err := s.d.Store.TaskLogs(ctx, t.ID, after, 1000)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"task": t, "logs": logs})
}

func (s *Server) cancelTask(c echo.Context) error {
	var req reasonRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return problem(http.StatusUnprocessableEntity, "reason is required")
	}
	t, err := s.d.Store.CancelTask(c.Request().Context(), actor(c), c.Param("id"), req.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

// manualKindList names the kinds an operator may queue, for the refusal.
func manualKindList() string {
	var names []string
	for _, k := range agentproto.ManualKinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}
