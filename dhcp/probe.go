package dhcp

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// probeRogues broadcasts one DISCOVER from a random locally administered MAC and records every
// server that answers: another DHCP server on a segment Slate serves authoritatively means
// clients get whichever answers first. It logs, sets a metric, and Status reports it.
func (ifs *ifaceServer) probeRogues(ctx context.Context) {
	defer func() {
		ifs.rogueMu.Lock()
		ifs.probeDone = true
		ifs.rogueMu.Unlock()
	}()
	var rnd [10]byte
	if _, err := io.ReadFull(ifs.s.opts.Rand, rnd[:]); err != nil {
		ifs.log.Warn("rogue DHCP probe skipped: no randomness", "err", err)
		return
	}
	mac := net.HardwareAddr{rnd[0]&0xfe | 0x02, rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]}
	ifs.probeMAC = mac
	conn, err := ifs.s.opts.ListenPacket(ifs.cfg.Name, dhcpv4.ClientPort)
	if err != nil {
		ifs.log.Warn("rogue DHCP probe skipped: cannot open port 68 (is a DHCP client running on this interface?)", "err", err)
		return
	}
	defer conn.Close()
	var xid dhcpv4.TransactionID
	copy(xid[:], rnd[6:])
	d := &dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootRequest, HWType: 1, TransactionID: xid, Flags: 0x8000,
		ClientIPAddr: zero4(), YourIPAddr: zero4(), ServerIPAddr: zero4(), GatewayIPAddr: zero4(), ClientHWAddr: mac,
		Options: dhcpv4.Options{}}
	d.Options.Update(dhcpv4.OptMessageType(dhcpv4.MessageTypeDiscover))
	if _, err := conn.WriteTo(d.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}); err != nil {
		ifs.log.Warn("rogue DHCP probe: send failed", "err", err)
		return
	}
	deadline := time.Now().Add(ifs.cfg.RogueProbe)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetReadDeadline(deadline)
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			break // deadline
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != xid {
			continue
		}
		sid := m.ServerIdentifier()
		if sid != nil && sid.Equal(ifs.serverIP) {
			continue
		}
		r := RogueServer{Interface: ifs.cfg.Name, From: from.String(), OfferedIP: m.YourIPAddr.String(), SeenAt: ifs.s.now()}
		if sid != nil {
			r.ServerID = sid.String()
		}
		ifs.rogueMu.Lock()
		dup := false
		for _, x := range ifs.rogues {
			dup = dup || (x.ServerID == r.ServerID && x.From == r.From)
		}
		if !dup {
			ifs.rogues = append(ifs.rogues, r)
		}
		count := len(ifs.rogues)
		ifs.rogueMu.Unlock()
		if !dup {
			ifs.s.m.rogues.WithLabelValues(ifs.cfg.Name).Set(float64(count))
			ifs.log.Warn(fmt.Sprintf("another DHCP server answers on %s: clients may get its offers instead of Slate's; switch it off or run Slate in proxy mode", ifs.cfg.Name),
				"server_id", r.ServerID, "from", r.From, "offered_ip", r.OfferedIP)
		}
	}
	ifs.s.m.rogues.WithLabelValues(ifs.cfg.Name).Set(float64(len(ifs.Rogues())))
}

// Rogues is the interface's rogue server list.
func (ifs *ifaceServer) Rogues() []RogueServer {
	ifs.rogueMu.Lock()
	defer ifs.rogueMu.Unlock()
	return append([]RogueServer(nil), ifs.rogues...)
}
