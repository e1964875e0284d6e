package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"slate/dhcp"
)

// DHCPView is what the API and UI read of DHCP: the stored leases and the running server's
// state. The appliance's adapter implements it (the DHCP server is built after the API).
type DHCPView interface {
	DHCPLeases(ctx context.Context, iface string) ([]dhcp.Lease, error)
	// DHCPStatus is every served interface's pools, rogue servers and reservation conflicts;
	// running is false when Slate serves DHCP nowhere.
	DHCPStatus() (ifaces []dhcp.InterfaceStatus, running bool)
	// DHCPWarnings are the DHCP warnings (a pool nearly full, a reservation taken).
	DHCPWarnings() []string
}

// SetDHCP sets the DHCP view (the appliance's adapter).
func (s *Server) SetDHCP(v DHCPView) { s.dhcp = v }

// LeaseList is GET /leases.
type LeaseList struct {
	Items []dhcp.LeaseRow `json:"items"`
	Total int             `json:"total"`
}

// DHCPStatus is GET /dhcp/status.
type DHCPStatus struct {
	Running    bool                   `json:"running"`
	Interfaces []dhcp.InterfaceStatus `json:"interfaces"`
	Warnings   []string               `json:"warnings"`
}

func (s *Server) leaseRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/leases", Summary: "DHCP leases (filter: interface, mac, state = bound, expired, released or declined)", Roles: all, handler: s.listLeases},
		{Method: "GET", Path: "/dhcp/status", Summary: "DHCP per interface: pool usage (used, free, reserve, warning), rogue DHCP servers seen, reserved addresses taken by another client", Roles: all, handler: s.dhcpStatus},
	}
}

func (s *Server) listLeases(c echo.Context) error {
	if s.dhcp == nil {
		return problem(http.StatusServiceUnavailable, "the DHCP view is not set up yet: retry in a moment")
	}
	f, err := dhcp.ParseLeaseFilter(c.QueryParam("interface"), c.QueryParam("mac"), c.QueryParam("state"))
	var fe *dhcp.FilterError
	if errors.As(err, &fe) {
		return problem(http.StatusBadRequest, "%s", fe.Error())
	}
	rows, err := dhcp.ListLeases(c.Request().Context(), s.dhcp, f, time.Now())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, LeaseList{Items: rows, Total: len(rows)})
}

func (s *Server) dhcpStatus(c echo.Context) error {
	if s.dhcp == nil {
		return problem(http.StatusServiceUnavailable, "the DHCP view is not set up yet: retry in a moment")
	}
	ifaces, running := s.dhcp.DHCPStatus()
	out := DHCPStatus{Running: running, Interfaces: ifaces, Warnings: s.dhcp.DHCPWarnings()}
	if out.Interfaces == nil {
		out.Interfaces = []dhcp.InterfaceStatus{}
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	return c.JSON(http.StatusOK, out)
}
