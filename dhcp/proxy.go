package dhcp

import (
	"context"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// proxy answers network-boot clients with boot options only (PXE proxyDHCP): an OFFER without
// an address on port 67, and an ACK to the boot server discovery REQUEST on port 4011.
func (ifs *ifaceServer) proxy(ctx context.Context, m *dhcpv4.DHCPv4, mt dhcpv4.MessageType, port int, peer net.Addr, now time.Time) result {
	br := bootRequestFrom(m, "")
	if first := DecideBoot(br, ifs.cfg.Boot); first.Kind == BootNone && !first.Refuse {
		ifs.drop("not_netboot")
		return result{}
	}
	machine, known, ok := ifs.lookup(ctx, m.ClientHWAddr)
	if !ok {
		return result{}
	}
	br.MachineState = machine.State
	boot := DecideBoot(br, ifs.cfg.Boot)
	if boot.Refuse || boot.Kind == BootNone {
		ifs.log.Info("network boot refused: no proxy offer", "mac", m.ClientHWAddr.String(), "machine", machine.ID, "reason", boot.Reason)
		ifs.drop("boot_refused")
		return result{}
	}
	var r *dhcpv4.DHCPv4
	dst := ifs.dest(m, true)
	switch {
	case port == dhcpv4.ServerPort && mt == dhcpv4.MessageTypeDiscover:
		if !known {
			ifs.discover(ctx, m, boot, now)
		}
		r = ifs.newReply(m, dhcpv4.MessageTypeOffer)
	case port == dhcpv4.ServerPort && mt == dhcpv4.MessageTypeRequest:
		// Only a REQUEST naming us is ours; the others select the plant server's offer.
		if sid := m.ServerIdentifier(); sid == nil || !sid.Equal(ifs.serverIP) {
			return result{}
		}
		r = ifs.newReply(m, dhcpv4.MessageTypeAck)
	case port == pxePort && (mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform):
		r = ifs.newReply(m, dhcpv4.MessageTypeAck)
		if u, ok := peer.(*net.UDPAddr); ok && !u.IP.IsUnspecified() {
			dst = u
		}
	default:
		return result{}
	}
	r.GatewayIPAddr = zero4()
	ifs.bootOptions(r, boot)
	if boot.VendorClass == "" {
		boot.VendorClass = "PXEClient"
	}
	r.Options.Update(dhcpv4.OptClassIdentifier(boot.VendorClass))
	if boot.VendorClass == "PXEClient" && !br.IPXE {
		// PXE_DISCOVERY_CONTROL = 8: boot the file named here, skip boot server discovery.
		r.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{6, 1, 8, 255}))
	}
	if v := m.Options.Get(dhcpv4.OptionClientMachineIdentifier); v != nil {
		r.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, v)) // PXE spec: echo the UUID
	}
	return result{reply: r, dst: dst}
}
