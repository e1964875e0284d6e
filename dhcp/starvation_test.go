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

// syncBuf is a log sink the server's workers may write to concurrently.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// starveIface is a 100-address pool with the default new-lease limits (10/min, burst 20,
// 20 % reserve).
func starveIface() InterfaceConfig {
	ic := authIface()
	ic.Pool.Range = "10.77.0.100-10.77.0.199"
	ic.NewLeases = NewLeases{}
	return ic
}

func randomMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xee, byte(i >> 16), byte(i >> 8), byte(i), 0x01}
}

// offered sends one DISCOVER and REQUEST for mac and reports whether it got an address.
func tryDORA(t *testing.T, u *unit, mac net.HardwareAddr) bool {
	t.Helper()
	off := u.do(packet(dhcpv4.MessageTypeDiscover, mac))
	if off.reply == nil {
		return false
	}
	dora(t, u, mac) // the offer is the client's now: REQUEST binds it
	return true
}

// TestNewLeaseRateStopsRandomMACs: the report's attack, 96 random MACs in 14 s against a
// 100-address pool. With the default limits only the burst and the rate get through, a known
// machine still gets an address, and the refusals are counted; the same flood with the limits
// off takes 96 addresses (what happened before).
func TestNewLeaseRateStopsRandomMACs(t *testing.T) {
	flood := func(u *unit) int {
		got := 0
		for i := range 96 {
			if tryDORA(t, u, randomMAC(i)) {
				got++
			}
			u.clk.Add(14 * time.Second / 96)
		}
		return got
	}
	t.Run("limits off: the pool is emptied", func(t *testing.T) {
		ic := starveIface()
		ic.NewLeases = NewLeases{PerMinute: -1, ReservePercent: -1}
		u := newUnit(t, ic)
		if got := flood(u); got != 96 {
			t.Fatalf("%d of 96 leased without limits", got)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		u := newUnit(t, starveIface())
		got := flood(u)
		// burst 20, plus 10/min over 14 s = 2.3
		if got < 20 || got > 23 {
			t.Fatalf("%d of 96 random MACs got an address, want the burst of 20 plus at most 3", got)
		}
		if n := counterValue(u.s.m.drops.WithLabelValues("eth9", "new_lease_rate")); n != float64(96-got) {
			t.Fatalf("new_lease_rate drops %v, want %d", n, 96-got)
		}
		known := mustMAC("52:54:00:00:00:42")
		u.dir.Add(known, Machine{ID: "m-42", State: "ready"})
		if !tryDORA(t, u, known) {
			t.Fatal("a known machine got no address during the flood")
		}
		// A client that already has its address keeps it: renewing takes no new-lease token.
		ack := u.do(packet(dhcpv4.MessageTypeRequest, randomMAC(0), dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 100))))
		if ack.reply == nil || ack.reply.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("renewal of an existing lease refused: %+v", ack.reply)
		}
	})
}

// TestNewLeaseRequestCannotSkipDiscover: a REQUEST for a free address it was never offered
// (INIT-REBOOT) is a new lease too; an unknown MAC does not get round the limit that way.
func TestNewLeaseRequestCannotSkipDiscover(t *testing.T) {
	ic := starveIface()
	ic.NewLeases = NewLeases{PerMinute: 1, Burst: 1}
	u := newUnit(t, ic)
	if !tryDORA(t, u, randomMAC(1)) {
		t.Fatal("the first unknown MAC got nothing")
	}
	r := u.do(packet(dhcpv4.MessageTypeRequest, randomMAC(2), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 150)))))
	if r.reply == nil || r.reply.MessageType() != dhcpv4.MessageTypeNak || len(r.changes) != 0 {
		t.Fatalf("a REQUEST past the new-lease limit got %+v", r)
	}
	u.clk.Add(time.Minute)
	r = u.do(packet(dhcpv4.MessageTypeRequest, randomMAC(2), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 150)))))
	if r.reply == nil || r.reply.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("a REQUEST once the rate allows it got %+v", r.reply)
	}
}

// TestPoolReserveKeptForKnownMachines: unknown MACs arriving slowly enough for the rate still
// stop at the reserve (20 of 100 addresses), which known machines then get; the UI warning
// appears at 90 % and is logged once per crossing.
func TestPoolReserveKeptForKnownMachines(t *testing.T) {
	u := newUnit(t, starveIface())
	logs := &syncBuf{}
	u.ifs.log = slog.New(slog.NewTextHandler(logs, nil))
	got := 0
	for i := range 96 {
		if tryDORA(t, u, randomMAC(i)) {
			got++
		}
		u.clk.Add(7 * time.Second) // under the 10/min rate: only the reserve stops them
	}
	if got != 80 {
		t.Fatalf("%d unknown MACs got an address, want 80 (the pool minus its 20 %% reserve)", got)
	}
	if n := counterValue(u.s.m.drops.WithLabelValues("eth9", "pool_reserve")); n != 16 {
		t.Fatalf("pool_reserve drops %v, want 16", n)
	}
	if w := u.s.Warnings(); len(w) != 0 {
		t.Fatalf("warning at 80 %%: %q", w)
	}
	for i := range 20 {
		mac := net.HardwareAddr{0x52, 0x54, 0, 0, 1, byte(i)}
		u.dir.Add(mac, Machine{ID: "m", State: "ready"})
		if !tryDORA(t, u, mac) {
			t.Fatalf("known machine %d of 20 got no address from the reserve", i+1)
		}
	}
	w := u.s.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "10.77.0.100-10.77.0.199 on eth9 is 100% used (100 of 100 addresses)") {
		t.Fatalf("warnings at 100 %%: %q", w)
	}
	if n := strings.Count(logs.String(), "DHCP pool nearly exhausted"); n != 1 {
		t.Fatalf("near-exhaustion logged %d times, want once per crossing:\n%s", n, logs.String())
	}
	if st := u.s.Status()[0].Pools[0]; st.Utilisation != 1 {
		t.Fatalf("status %+v", st)
	}
	// The leases run out (1 h): the warning goes; the next crossing is logged again.
	u.clk.Add(2 * time.Hour)
	if w := u.s.Warnings(); len(w) != 0 {
		t.Fatalf("warning after every lease expired: %q", w)
	}
	for i := range 91 {
		mac := net.HardwareAddr{0x52, 0x54, 0, 0, 2, byte(i)}
		u.dir.Add(mac, Machine{ID: "m", State: "ready"})
		tryDORA(t, u, mac)
	}
	if n := strings.Count(logs.String(), "DHCP pool nearly exhausted"); n != 2 {
		t.Fatalf("second crossing: logged %d times, want 2", n)
	}
}

func TestNewLeasesConfig(t *testing.T) {
	for _, nl := range []NewLeases{{PerMinute: -2}, {Burst: -1}, {ReservePercent: 95}, {ReservePercent: -3}} {
		ic := authIface()
		ic.NewLeases = nl
		if err := (Config{Interfaces: []InterfaceConfig{ic}}).Validate(); err == nil || !strings.Contains(err.Error(), "new_leases") {
			t.Errorf("%+v: err = %v", nl, err)
		}
	}
	c, err := starveIface().compile()
	if err != nil || c.NewLeases != (NewLeases{PerMinute: 10, Burst: 20, ReservePercent: 20}) {
		t.Fatalf("defaults %+v, %v", c.NewLeases, err)
	}
}

// TestBogusHardwareAddressDropped: a DISCOVER whose hardware address cannot be a client's
// gets no answer (and takes no lease); the same DISCOVER with a real MAC is answered.
func TestBogusHardwareAddressDropped(t *testing.T) {
	u := newUnit(t, authIface())
	peer := &net.UDPAddr{IP: net.IPv4zero, Port: 68}
	good := packet(dhcpv4.MessageTypeDiscover, mustMAC("02:00:00:00:00:01")).ToBytes()
	hlen255 := bytes.Clone(good)
	hlen255[2] = 255
	otherHW := packet(dhcpv4.MessageTypeDiscover, mustMAC("02:00:00:00:00:02"))
	otherHW.HWType = 6 // IEEE 802: not Ethernet, so only the raw hlen check applies
	otherHW255 := otherHW.ToBytes()
	otherHW255[2] = 200
	short := packet(dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0, 0, 1})
	for name, b := range map[string][]byte{
		"hlen 255":                hlen255,
		"hlen 200, other htype":   otherHW255,
		"all-zero MAC":            packet(dhcpv4.MessageTypeDiscover, net.HardwareAddr{0, 0, 0, 0, 0, 0}).ToBytes(),
		"broadcast MAC":           packet(dhcpv4.MessageTypeDiscover, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}).ToBytes(),
		"multicast MAC":           packet(dhcpv4.MessageTypeDiscover, mustMAC("01:00:5e:00:00:01")).ToBytes(),
		"Ethernet with 4-byte hw": short.ToBytes(),
	} {
		if r := u.ifs.handleRaw(context.Background(), b, 67, peer); r.reply != nil || len(r.changes) != 0 {
			t.Errorf("%s: answered", name)
		}
	}
	if n := counterValue(u.s.m.drops.WithLabelValues("eth9", "bad_hlen")); n != 2 {
		t.Errorf("bad_hlen drops %v, want 2", n)
	}
	if n := counterValue(u.s.m.drops.WithLabelValues("eth9", "bad_chaddr")); n != 4 {
		t.Errorf("bad_chaddr drops %v, want 4", n)
	}
	if r := u.ifs.handleRaw(context.Background(), good, 67, peer); r.reply == nil {
		t.Fatal("a good DISCOVER was not answered")
	}
	if st := u.s.Status()[0].Pools[0]; st.Offered != 1 {
		t.Fatalf("pool %+v: only the good client holds an offer", st)
	}
}
