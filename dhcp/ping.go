package dhcp

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// ListenICMP opens a raw ICMP socket bound to the interface, for ping_check.
func ListenICMP(iface string) (net.PacketConn, error) {
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	rc, err := c.(*net.IPConn).SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), iface) }); err != nil || serr != nil {
		c.Close()
		if serr != nil {
			err = serr
		}
		return nil, err
	}
	return c, nil
}

// pinger asks "is this address already in use?" before an address is offered (ping_check).
// One reader goroutine matches echo replies to the waiting workers by source address.
type pinger struct {
	conn    net.PacketConn
	id      int
	timeout time.Duration
	mu      sync.Mutex
	seq     int
	waiting map[netip.Addr][]chan struct{}
}

func newPinger(conn net.PacketConn, id int, timeout time.Duration) *pinger {
	p := &pinger{conn: conn, id: id & 0xffff, timeout: timeout, waiting: map[netip.Addr][]chan struct{}{}}
	go p.read()
	return p
}

func (p *pinger) read() {
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			return // closed at shutdown
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); !ok || e.ID != p.id {
			continue
		}
		ia, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(ia.IP.To4())
		if !ok {
			continue
		}
		p.mu.Lock()
		for _, ch := range p.waiting[a] {
			close(ch)
		}
		delete(p.waiting, a)
		p.mu.Unlock()
	}
}

// inUse pings a and reports whether anything answered within the timeout. It blocks the
// calling worker for up to the timeout: that is the ≈ cost a boot pays for ping_check.
func (p *pinger) inUse(a netip.Addr) bool {
	ch := make(chan struct{})
	p.mu.Lock()
	p.seq++
	seq := p.seq & 0xffff
	p.waiting[a] = append(p.waiting[a], ch)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		w := p.waiting[a]
		for i := range w {
			if w[i] == ch {
				p.waiting[a] = append(w[:i], w[i+1:]...)
				break
			}
		}
		if len(p.waiting[a]) == 0 {
			delete(p.waiting, a)
		}
		p.mu.Unlock()
	}()
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: seq, Data: []byte("slate-dhcp-ping-check")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return false
	}
	if _, err := p.conn.WriteTo(b, &net.IPAddr{IP: a.AsSlice()}); err != nil {
		return false // unreachable: nobody there to conflict with
	}
	select {
	case <-ch:
		return true
	case <-time.After(p.timeout):
		return false
	}
}
