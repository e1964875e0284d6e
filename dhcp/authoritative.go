package dhcp

import (
	"context"
	"errors"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// authoritative answers a client in authoritative mode, one handler per message type. RELEASE
// and DECLINE need no machine lookup; INFORM, DISCOVER and REQUEST first go through admit (the
// directory, the boot decision, discovery), and DISCOVER and REQUEST then through leasePool.
func (ifs *ifaceServer) authoritative(ctx context.Context, m *dhcpv4.DHCPv4, mt dhcpv4.MessageType, now time.Time) result {
	switch mt {
	case dhcpv4.MessageTypeRelease:
		return ifs.release(m, now)
	case dhcpv4.MessageTypeDecline:
		return ifs.decline(m, now)
	}
	c, ok := ifs.admit(ctx, m, mt, now)
	if !ok {
		return result{}
	}
	if mt == dhcpv4.MessageTypeInform {
		return ifs.inform(m, c)
	}
	if !ifs.leasePool(m, &c, now) {
		return result{}
	}
	switch mt {
	case dhcpv4.MessageTypeDiscover:
		return ifs.offer(m, c, now)
	case dhcpv4.MessageTypeRequest:
		return ifs.request(m, c, now)
	default:
		ifs.drop("unsupported_type")
		return result{}
	}
}

// client is what admit and leasePool learnt about the sender of a DISCOVER, REQUEST or INFORM.
type client struct {
	machine  Machine
	known    bool
	boot     BootAnswer
	p        *pool  // set by leasePool
	g        gate   // the new-lease gate of an unknown MAC
	reserved uint32 // the machine's reserved address in p's subnet, 0 for none
}

func (ifs *ifaceServer) release(m *dhcpv4.DHCPv4, now time.Time) result {
	mac := m.ClientHWAddr
	ip, ok := addrU(m.ClientIPAddr)
	p := ifs.poolFor(ip)
	if !ok || p == nil {
		ifs.drop("release_unknown")
		return result{}
	}
	l, ok := p.release(string(mac), ip, now)
	if !ok {
		ifs.drop("release_unknown")
		return result{}
	}
	ifs.log.Info("lease released", "mac", mac.String(), "ip", u2addr(ip))
	return result{changes: []LeaseChange{{Lease: ifs.row(mac, l, LeaseReleased)}}}
}

func (ifs *ifaceServer) decline(m *dhcpv4.DHCPv4, now time.Time) result {
	mac := m.ClientHWAddr
	ip, ok := addrU(m.RequestedIPAddress())
	p := ifs.poolFor(ip)
	if !ok || p == nil || !p.decline(string(mac), ip, now, ifs.cfg.DeclineQuarantine) {
		ifs.drop("decline_unknown")
		return result{}
	}
	ifs.log.Warn("address declined by client (in use by another host?): quarantined", "mac", mac.String(), "ip", u2addr(ip), "for", ifs.cfg.DeclineQuarantine)
	return result{changes: []LeaseChange{{Lease: ifs.quarantineRow(ip, now)}}}
}

// quarantineRow is the stored row of an address kept out of the pool (declined, or answering
// the ping check).
func (ifs *ifaceServer) quarantineRow(ip uint32, now time.Time) Lease {
	return Lease{MAC: DeclinedKey(ifs.cfg.Name, u2addr(ip)), IP: u2addr(ip), Iface: ifs.cfg.Name,
		State: LeaseDeclined, ExpiresAt: now.Add(ifs.cfg.DeclineQuarantine)}
}

// admit asks the directory about the client, decides its boot, records an unknown network-boot
// client as discovered and refuses one Slate cannot boot; false: no answer.
func (ifs *ifaceServer) admit(ctx context.Context, m *dhcpv4.DHCPv4, mt dhcpv4.MessageType, now time.Time) (client, bool) {
	machine, known, ok := ifs.lookup(ctx, m.ClientHWAddr)
	if !ok {
		return client{}, false
	}
	boot := DecideBoot(bootRequestFrom(m, machine.State), ifs.cfg.Boot)
	if mt == dhcpv4.MessageTypeDiscover && !known && (boot.Kind != BootNone || boot.Refuse) {
		// Recorded even when Slate cannot boot it (an ARM64 machine before its binary is
		// installed): the technician should see the machine exists.
		ifs.discover(ctx, m, boot, now)
	}
	if boot.Refuse {
		ifs.log.Info("network boot refused: no offer", "mac", m.ClientHWAddr.String(), "machine", machine.ID, "reason", boot.Reason)
		ifs.drop("boot_refused")
		return client{}, false
	}
	return client{machine: machine, known: known, boot: boot}, true
}

// inform answers DHCPINFORM: options only, no lease.
func (ifs *ifaceServer) inform(m *dhcpv4.DHCPv4, c client) result {
	r := ifs.newReply(m, dhcpv4.MessageTypeAck)
	if p := ifs.poolFor(ipU(m.ClientIPAddr)); p != nil {
		ifs.leaseOptions(r, p, 0, c.machine.Hostname)
	}
	ifs.bootOptions(r, c.boot)
	return result{reply: r, dst: ifs.dest(m, false)}
}

// leasePool picks the pool a DISCOVER or REQUEST leases from (the relay's subnet, the client's
// current address, else the interface's own pool) and the client's gate and reservation in it;
// false: no pool, no answer.
func (ifs *ifaceServer) leasePool(m *dhcpv4.DHCPv4, c *client, now time.Time) bool {
	if !m.GatewayIPAddr.IsUnspecified() {
		c.p = ifs.poolFor(ipU(m.GatewayIPAddr))
		if c.p == nil {
			ifs.drop("no_pool_for_relay")
			return false
		}
	} else if cp := ifs.poolFor(ipU(m.ClientIPAddr)); cp != nil {
		c.p = cp // a renewal sent straight to us, also for a lease of a relayed subnet
	} else if len(ifs.pools) > 0 && ifs.cfg.pool != nil {
		c.p = ifs.pools[0]
	} else {
		ifs.drop("no_pool")
		return false
	}
	if !c.known {
		c.g = ifs.unknownGate(now)
	}
	if c.machine.ReservedIP.Is4() && c.p.cfg.subnet.Contains(c.machine.ReservedIP) {
		c.reserved = ip4u(c.machine.ReservedIP)
	}
	return true
}

// offer answers DISCOVER: an address held for OfferHold (not stored), checked by ping when
// fresh; addresses that answer the ping are quarantined and stored as such.
func (ifs *ifaceServer) offer(m *dhcpv4.DHCPv4, c client, now time.Time) result {
	mac, p := m.ClientHWAddr, c.p
	key := string(mac)
	requested, _ := addrU(m.RequestedIPAddress())
	var changes []LeaseChange
	var l *lease
	var fresh bool
	for try := 0; ; try++ {
		var err error
		l, fresh, err = p.offer(key, c.reserved, requested, now, ifs.cfg.OfferHold, c.g)
		if errors.Is(err, errExhausted) {
			ifs.exhausted(p, mac)
			return result{changes: changes}
		}
		if err != nil {
			ifs.refused(p, mac, err)
			return result{changes: changes}
		}
		if !fresh || ifs.pinger == nil || try >= 3 || !ifs.pinger.inUse(u2addr(l.ip)) {
			break
		}
		// Someone already uses it (a static address inside the pool): keep it out, as if
		// declined, and try the next one.
		ifs.log.Warn("ping check: address answers ping, quarantined", "mac", mac.String(), "ip", u2addr(l.ip), "for", ifs.cfg.DeclineQuarantine)
		ifs.drop("ping_check_in_use")
		p.decline(key, l.ip, now, ifs.cfg.DeclineQuarantine)
		changes = append(changes, LeaseChange{Lease: ifs.quarantineRow(l.ip, now)})
		requested = 0
	}
	if fresh {
		ifs.watchUsage(p, now)
	}
	r := ifs.newReply(m, dhcpv4.MessageTypeOffer)
	r.YourIPAddr = u2ip(l.ip)
	ifs.leaseOptions(r, p, p.cfg.leaseTime, c.machine.Hostname)
	ifs.bootOptions(r, c.boot)
	return result{reply: r, dst: ifs.dest(m, false), changes: changes}
}

// request answers REQUEST (selecting, renewing, rebinding): binds the address and returns the
// ACK with the lease row; the ACK leaves only after the row is committed.
func (ifs *ifaceServer) request(m *dhcpv4.DHCPv4, c client, now time.Time) result {
	mac, p := m.ClientHWAddr, c.p
	key := string(mac)
	sid := m.ServerIdentifier()
	if sid != nil && !sid.Equal(ifs.serverIP) {
		p.forget(key) // the client took another server's offer
		return result{}
	}
	ip, hasReq := addrU(m.RequestedIPAddress())
	if !hasReq {
		ip, hasReq = addrU(m.ClientIPAddr) // renewing or rebinding
	}
	if !hasReq {
		return ifs.nak(m, "request names no address")
	}
	if !p.cfg.subnet.Contains(u2addr(ip)) {
		if sid == nil && m.ClientIPAddr.IsUnspecified() {
			return ifs.nak(m, "requested address is not on this network")
		}
		ifs.drop("request_other_network")
		return result{}
	}
	if c.reserved != 0 && ip != c.reserved {
		if !p.reservedTaken(key, c.reserved, now) {
			return ifs.nak(m, "machine has a reserved address")
		}
		// Another client holds the reservation: keep what was offered (a NAK here would
		// loop, the next DISCOVER being offered a pool address again); the address is
		// reclaimed at the holder's next renewal.
		ifs.log.Info("reserved address held by another client: serving a pool address until the holder renews",
			"mac", mac.String(), "machine", c.machine.ID, "reserved", u2addr(c.reserved), "ip", u2addr(ip))
	}
	hostname := c.machine.Hostname
	if hostname == "" {
		hostname = sanitizeHostname(m.HostName())
	}
	relay := relayInfo(m)
	held := p.holds(key, ip)
	l, ok, err := p.bind(key, ip, now, p.cfg.leaseTime, hostname, relay, c.g)
	if errors.Is(err, errReservedForOther) {
		return ifs.nak(m, "address is reserved for another machine")
	}
	if err != nil {
		ifs.refused(p, mac, err)
		return ifs.nak(m, "no new address for this client now")
	}
	if !ok {
		return ifs.nak(m, "address is not this client's")
	}
	if !held {
		ifs.watchUsage(p, now)
	}
	r := ifs.newReply(m, dhcpv4.MessageTypeAck)
	r.YourIPAddr = u2ip(ip)
	ifs.leaseOptions(r, p, p.cfg.leaseTime, c.machine.Hostname)
	ifs.bootOptions(r, c.boot)
	return result{reply: r, dst: ifs.dest(m, false),
		changes: []LeaseChange{{Lease: ifs.row(mac, l, LeaseBound)}}}
}
