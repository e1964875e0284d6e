package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// events streams server-sent events: "machine" with the id of each machine that changed (its
// state, a task's progress, new log lines). Clients then read what they show.
func (s *Server) events(c echo.Context) error {
	if s.d.Subscribe == nil {
		return problem(http.StatusNotFound, "live events are off")
	}
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	w.Flush()
	ch, cancel := s.d.Subscribe()
	defer cancel()
	want := c.QueryParam("machine")
	tick := time.NewTicker(20 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-c.Request().Context().Done():
			return nil
		case id := <-ch:
			if want != "" && id != want {
				continue
			}
			fmt.Fprintf(w, "event: machine\ndata: %s\n\n", id)
			w.Flush()
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			w.Flush()
		}
	}
}
