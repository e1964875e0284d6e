package ui

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"slate/dhcp"
)

// DHCPView is what the leases page reads of DHCP (the appliance's adapter, shared with the API).
type DHCPView interface {
	DHCPLeases(ctx context.Context, iface string) ([]dhcp.Lease, error)
	DHCPStatus() (ifaces []dhcp.InterfaceStatus, running bool)
	DHCPWarnings() []string
}

// SetDHCP sets the DHCP view (the DHCP server is built after the UI).
func (u *UI) SetDHCP(v DHCPView) { u.dhcp = v }

// leasesData is the leases page.
type leasesData struct {
	layoutData
	Running    bool
	Interfaces []dhcp.InterfaceStatus
	Leases     []dhcp.LeaseRow
	Filter     map[string]string
	States     []string
}

func (u *UI) leases(c echo.Context, s session) error {
	ld := u.layout(c, s, "Leases", "leases")
	d := leasesData{layoutData: ld, States: dhcp.ListStates(), Leases: []dhcp.LeaseRow{},
		Filter: map[string]string{"interface": c.QueryParam("interface"), "mac": c.QueryParam("mac"), "state": c.QueryParam("state")}}
	if u.dhcp == nil {
		return u.errorPage(c, s, http.StatusServiceUnavailable, "The DHCP view is not set up yet: reload in a moment.")
	}
	d.Interfaces, d.Running = u.dhcp.DHCPStatus()
	f, err := dhcp.ParseLeaseFilter(d.Filter["interface"], d.Filter["mac"], d.Filter["state"])
	var fe *dhcp.FilterError
	if errors.As(err, &fe) {
		// Not the value itself: a link must not make Slate show words it did not write.
		d.Flash = &flash{Kind: "error", Text: "The " + fe.Field + " filter is not valid: want " + fe.Want + ".", Field: fe.Field}
		return u.render(c, http.StatusBadRequest, "leases", d)
	}
	if d.Leases, err = dhcp.ListLeases(c.Request().Context(), u.dhcp, f, time.Now()); err != nil {
		return err
	}
	return u.render(c, http.StatusOK, "leases", d)
}
