package dhcp

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzHandle feeds arbitrary bytes to the packet handler of an authoritative and a proxy
// interface, on port 67 and 4011. Nothing may panic, and every reply must serialise and parse
// back. Regression inputs live in testdata/fuzz/FuzzHandle.
func FuzzHandle(f *testing.F) {
	mac := mustMAC("52:54:00:12:34:01")
	relay := func(m *dhcpv4.DHCPv4) {
		m.GatewayIPAddr = net.IPv4(10, 88, 5, 1).To4()
		m.Options.Update(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("sw1"))))
	}
	ipxe := dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionEtherboot, []byte{1}))
	for _, m := range []*dhcpv4.DHCPv4{
		packet(dhcpv4.MessageTypeDiscover, mac),
		packet(dhcpv4.MessageTypeDiscover, mac, pxe(0)),
		packet(dhcpv4.MessageTypeDiscover, mac, pxe(7), ipxe),
		packet(dhcpv4.MessageTypeDiscover, mac, pxe(11)),
		packet(dhcpv4.MessageTypeDiscover, mac, relay),
		packet(dhcpv4.MessageTypeRequest, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 100))),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1)))),
		packet(dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 100))),
		packet(dhcpv4.MessageTypeDecline, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 100)))),
		packet(dhcpv4.MessageTypeRelease, mac, dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 100))),
		packet(dhcpv4.MessageTypeInform, mac, dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 7))),
	} {
		f.Add(m.ToBytes())
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 6, 0})
	ic := authIface()
	ic.RateLimit = RateLimit{PerMAC: 1 << 30, Window: time.Hour} // the fuzzer repeats MACs: let it reach the handlers
	ic.RelayPools = []Pool{{Range: "10.88.5.10-10.88.5.20", Netmask: "255.255.255.0", LeaseTime: time.Hour}}
	auth := newUnit(f, ic)
	proxy := newUnit(f, InterfaceConfig{Name: "eth9", Mode: ModeProxy, ServerAddress: "10.77.0.1", Discovery: true,
		RateLimit: RateLimit{PerMAC: 1 << 30, Window: time.Hour}, Boot: Boot{URL: "http://10.77.0.1:8080"}})
	peer := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 100), Port: 68}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, u := range []*unit{auth, proxy} {
			for _, port := range []int{67, pxePort} {
				r := u.ifs.handleRaw(context.Background(), b, port, peer)
				if r.reply == nil {
					continue
				}
				if r.dst == nil {
					t.Fatalf("reply without a destination: %s", r.reply.Summary())
				}
				if _, err := dhcpv4.FromBytes(r.reply.ToBytes()); err != nil {
					t.Fatalf("reply does not parse back: %v", err)
				}
				if err := u.store.CommitLeases(context.Background(), r.changes); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
