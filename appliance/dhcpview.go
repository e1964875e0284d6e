package appliance

import (
	"context"

	"slate/dhcp"
)

// dhcpView is the API's and UI's view of DHCP: leases from the store, the rest from the
// running server. It reads a.dhcp when asked because the server is built after the API and UI.
type dhcpView struct{ a *Appliance }

func (v dhcpView) DHCPLeases(ctx context.Context, iface string) ([]dhcp.Lease, error) {
	return DHCPLeases{v.a.Store}.DHCPLeases(ctx, iface)
}

func (v dhcpView) DHCPStatus() ([]dhcp.InterfaceStatus, bool) {
	if v.a.dhcp == nil {
		return nil, false
	}
	return v.a.dhcp.Status(), true
}

func (v dhcpView) DHCPWarnings() []string {
	if v.a.dhcp == nil {
		return nil
	}
	return v.a.dhcp.Warnings()
}
