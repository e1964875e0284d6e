package dhcp

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func renew(mac net.HardwareAddr, ip net.IP) *dhcpv4.DHCPv4 {
	return packet(dhcpv4.MessageTypeRequest, mac, func(m *dhcpv4.DHCPv4) { m.ClientIPAddr = ip })
}

// TestReservedAddressHeldByAnother: a machine whose reserved address another client holds gets
// an ACK for the pool address it was offered (the old code NAKed it, and udhcpc looped on
// DISCOVER/OFFER/REQUEST/NAK for as long as the holder renewed); the conflict is reported
// naming the holder; the holder's next renewal is NAKed and it moves; no third client can
// take the address meanwhile; the machine's next renewal moves it to its reservation.
func TestReservedAddressHeldByAnother(t *testing.T) {
	u := newUnit(t, authIface())
	holder := mustMAC("02:00:00:00:0e:01")
	machine := mustMAC("02:00:00:00:0e:02")
	other := mustMAC("02:00:00:00:0e:03")
	hIP := dora(t, u, holder, dhcpv4.WithOption(dhcpv4.OptHostName("squatter")))
	if hIP.String() != "10.77.0.100" {
		t.Fatalf("holder got %s, want the pool's first address", hIP)
	}
	u.dir.Add(machine, Machine{ID: "m-res", State: "ready", ReservedIP: mustAddr("10.77.0.100")})

	// The reserved machine: offered a pool address, and ACKed for it (no NAK).
	mIP := dora(t, u, machine)
	if mIP.Equal(hIP) {
		t.Fatalf("reserved machine was given the holder's address %s", mIP)
	}
	// Its renewal of that pool address is ACKed too while the holder keeps the reservation.
	if r := u.do(renew(machine, mIP)); r.reply == nil || r.reply.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("reserved machine's renewal of %s while the holder keeps its address: %+v", mIP, r.reply)
	}
	st := u.s.Status()
	if len(st[0].ReservationConflicts) != 1 {
		t.Fatalf("conflicts: %+v", st[0].ReservationConflicts)
	}
	c := st[0].ReservationConflicts[0]
	if c.ReservedIP != "10.77.0.100" || c.MAC != machine.String() || c.HolderMAC != holder.String() || c.HolderHostname != "squatter" {
		t.Fatalf("conflict %+v", c)
	}
	if w := strings.Join(u.s.Warnings(), "\n"); !strings.Contains(w, holder.String()) || !strings.Contains(w, "10.77.0.100") {
		t.Fatalf("warnings do not name the holder: %q", w)
	}

	// The holder renews: NAKed, once; a fresh DORA gives it another address.
	r := u.do(renew(holder, hIP))
	if r.reply == nil || r.reply.MessageType() != dhcpv4.MessageTypeNak || !strings.Contains(r.reply.Message(), "reserved for another machine") {
		t.Fatalf("holder's renewal of the reserved address: %+v", r.reply)
	}
	h2 := dora(t, u, holder)
	if h2.Equal(hIP) {
		t.Fatalf("holder got the reserved address %s back", h2)
	}
	// Nobody else is offered it while the machine has not come for it.
	if o := dora(t, u, other); o.String() == "10.77.0.100" {
		t.Fatal("a third client was given the reserved address")
	}
	// The machine's next renewal: NAKed once, and its DISCOVER gets the reservation.
	if r := u.do(renew(machine, mIP)); r.reply == nil || r.reply.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("machine's renewal once its reservation is free: %+v", r.reply)
	}
	if got := dora(t, u, machine); got.String() != "10.77.0.100" {
		t.Fatalf("machine got %s after the holder moved, want its reserved 10.77.0.100", got)
	}
	if cs := u.s.Status()[0].ReservationConflicts; len(cs) != 0 {
		t.Fatalf("conflict still reported after it was resolved: %+v", cs)
	}
	if st := u.s.Status()[0].Pools[0]; st.Fixed != 1 || st.Used != 3 || st.Free != st.Size-3 {
		t.Fatalf("pool status %+v: want 3 used, 1 fixed", st)
	}
}

// recordConn stands in for the interface socket: it records what is sent.
type recordConn struct {
	net.PacketConn
	mu   sync.Mutex
	sent []*dhcpv4.DHCPv4
}

func (c *recordConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, m)
	return len(b), nil
}

func (c *recordConn) count() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.sent) }

// TestOfferAckDebugLog: an OFFER and an ACK sent write a debug line each with the MAC, the
// address, the interface, the lease time and the xid; at info level they write none.
func TestOfferAckDebugLog(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf bytes.Buffer
		var mu sync.Mutex
		u := newUnit(t, authIface())
		u.s.log = slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: level}))
		u.ifs.log = u.s.log.With("iface", u.ifs.cfg.Name)
		conn := &recordConn{}
		u.ifs.conn67 = conn
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { u.s.commit.run(ctx); close(done) }()
		mac := mustMAC("02:00:00:00:0f:01")
		send := func(m *dhcpv4.DHCPv4) {
			b := m.ToBytes()
			bp := &b
			u.s.process(ctx, job{buf: bp, n: len(b), peer: &net.UDPAddr{IP: net.IPv4zero, Port: 68}, ifs: u.ifs, port: dhcpv4.ServerPort})
		}
		xid := dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}
		send(packet(dhcpv4.MessageTypeDiscover, mac, dhcpv4.WithTransactionID(xid)))
		send(packet(dhcpv4.MessageTypeRequest, mac, dhcpv4.WithTransactionID(xid), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 100))),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1)))))
		waitFor(t, "ACK sent after its commit", 5*time.Second, func() (bool, string) { return conn.count() == 2, "" })
		cancel()
		<-done
		mu.Lock()
		out := buf.String()
		mu.Unlock()
		if level == slog.LevelInfo {
			if strings.Contains(out, "DHCP OFFER sent") || strings.Contains(out, "DHCP ACK sent") {
				t.Fatalf("reply lines at info level:\n%s", out)
			}
			continue
		}
		for _, kind := range []string{"OFFER", "ACK"} {
			line := ""
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "DHCP "+kind+" sent") {
					line = l
				}
			}
			for _, want := range []string{"level=DEBUG", "mac=" + mac.String(), "ip=10.77.0.100", "iface=eth9", "lease_time=1h0m0s", "xid=0xdeadbeef"} {
				if !strings.Contains(line, want) {
					t.Fatalf("%s line %q lacks %q; log:\n%s", kind, line, want, out)
				}
			}
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestStatusPoolUsage: used, free, percent, the reserve kept for known machines, and the
// warning from 90 % on (not below).
func TestStatusPoolUsage(t *testing.T) {
	ic := authIface()
	ic.NewLeases.ReservePercent = 20
	u := newUnit(t, ic)
	for i := range 9 {
		mac := net.HardwareAddr{2, 0, 0, 0, 0x11, byte(i)}
		u.dir.Add(mac, Machine{ID: mac.String(), State: "ready"})
		dora(t, u, mac)
		p := u.s.Status()[0].Pools[0]
		if p.Used != i+1 || p.Free != 10-(i+1) || p.Reserve != 2 || p.Warning != (i+1 >= 9) {
			t.Fatalf("after %d leases: %+v", i+1, p)
		}
	}
	if p := u.s.Status()[0].Pools[0]; p.Percent != 90 || len(u.s.Warnings()) != 1 {
		t.Fatalf("at 9 of 10: %+v, warnings %q", p, u.s.Warnings())
	}
}
