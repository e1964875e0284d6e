package lab

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// routerAdvert builds an ICMPv6 Router Advertisement body (RFC 4861 §4.2) announcing prefix
// for stateless autoconfiguration. The checksum is left to the kernel, which computes it for
// raw ICMPv6 sockets.
func routerAdvert(mac net.HardwareAddr, prefix netip.Prefix) []byte {
	b := make([]byte, 0, 64)
	b = append(b, 64, 0)                       // cur hop limit; no M/O flags: SLAAC only
	b = binary.BigEndian.AppendUint16(b, 1800) // router lifetime
	b = binary.BigEndian.AppendUint32(b, 0)    // reachable time: unspecified
	b = binary.BigEndian.AppendUint32(b, 0)    // retrans timer: unspecified
	if len(mac) == 6 {
		b = append(b, 1, 1) // source link-layer address option, 8 bytes
		b = append(b, mac...)
	}
	b = append(b, 3, 4, byte(prefix.Bits()), 0xc0) // prefix information, on-link + autonomous
	b = binary.BigEndian.AppendUint32(b, 86400)    // valid lifetime
	b = binary.BigEndian.AppendUint32(b, 14400)    // preferred lifetime
	b = append(b, 0, 0, 0, 0)
	addr := prefix.Masked().Addr().As16()
	b = append(b, addr[:]...)
	msg := icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: b}}
	out, _ := msg.Marshal(nil)
	return out
}

// runRouterAdverts sends a Router Advertisement on the bridge every few seconds and at once
// when a Router Solicitation arrives, until ctx ends. iPXE waits ≈13 s for IPv6 autoconfig
// when no router answers (LAB.md); this is the whole of what the lab needs from a router.
func runRouterAdverts(ctx context.Context, ns, ifname string, prefix netip.Prefix, log *slog.Logger) error {
	var conn *icmp.PacketConn
	var ifi *net.Interface
	err := inNetns(ns, func() error {
		var err error
		ifi, err = net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		conn, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	})
	if err != nil {
		return fmt.Errorf("router advert socket on %s in %s: %w", ifname, ns, err)
	}
	p := conn.IPv6PacketConn()
	// RFC 4861: hosts drop neighbour discovery packets whose hop limit is not 255.
	if err := p.SetMulticastHopLimit(255); err != nil {
		conn.Close()
		return fmt.Errorf("router advert hop limit: %w", err)
	}
	p.SetHopLimit(255)
	p.SetMulticastInterface(ifi)
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	p.SetICMPFilter(&f)
	msg := routerAdvert(ifi.HardwareAddr, prefix)
	dst := &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: ifname}
	send := func() {
		if _, err := conn.WriteTo(msg, dst); err != nil && ctx.Err() == nil {
			log.Warn("lab: router advert not sent", "err", err)
		}
	}
	solicited := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := conn.ReadFrom(buf); err != nil {
				return
			}
			select {
			case solicited <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		defer conn.Close()
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		send()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				send()
			case <-solicited:
				send()
			}
		}
	}()
	return nil
}
