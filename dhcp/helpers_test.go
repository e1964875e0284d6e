package dhcp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// memStore is an in-memory LeaseStore for unit tests (the SQLite one is tested in inventory/
// and in the network tests).
type memStore struct {
	mu      sync.Mutex
	rows    map[string]Lease
	commits int
}

func newMemStore() *memStore { return &memStore{rows: map[string]Lease{}} }

func (s *memStore) DHCPLeases(_ context.Context, iface string) ([]Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Lease
	for _, l := range s.rows {
		if l.Iface == iface || iface == "" { // "" is every interface, as in the inventory
			out = append(out, l)
		}
	}
	return out, nil
}

// row reads one row under the lock (for tests where the server's writer runs concurrently).
func (s *memStore) row(key string) (Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.rows[key]
	return l, ok
}

func (s *memStore) CommitLeases(_ context.Context, ch []LeaseChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits++
	for _, c := range ch {
		if c.Delete {
			delete(s.rows, c.Lease.MAC)
			continue
		}
		for k, r := range s.rows {
			if r.Iface == c.Lease.Iface && r.IP == c.Lease.IP && k != c.Lease.MAC {
				delete(s.rows, k)
			}
		}
		s.rows[c.Lease.MAC] = c.Lease
	}
	return nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type unit struct {
	s     *Server
	ifs   *ifaceServer
	dir   *MemDirectory
	store *memStore
	clk   *clock
	reg   *prometheus.Registry
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("DHCP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newUnit builds a server for one interface without sockets: tests call handle directly.
func newUnit(t testing.TB, ic InterfaceConfig) *unit {
	t.Helper()
	u := &unit{dir: NewMemDirectory(), store: newMemStore(), clk: &clock{t: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)},
		reg: prometheus.NewRegistry()}
	s, err := New(Config{Interfaces: []InterfaceConfig{ic}}, Options{Store: u.store, Directory: u.dir, Logger: testLogger(t),
		Registerer: u.reg, Now: u.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	u.s, u.ifs = s, s.ifaces[0]
	if err := u.ifs.prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	return u
}

func authIface() InterfaceConfig {
	return InterfaceConfig{Name: "eth9", Mode: ModeAuthoritative, ServerAddress: "10.77.0.1", Discovery: true,
		Pool: &Pool{Range: "10.77.0.100-10.77.0.109", Netmask: "255.255.255.0", Gateway: "10.77.0.1",
			DNS: []string{"10.77.0.1"}, Domain: "plant.test", LeaseTime: time.Hour},
		Boot: Boot{URL: "http://10.77.0.1:8080"},
		// The handler tests lease to many unknown MACs; the new-lease limits have their own.
		NewLeases: NewLeases{PerMinute: -1, ReservePercent: -1}}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func packet(mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	m := &dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootRequest, HWType: 1, TransactionID: dhcpv4.TransactionID{1, 2, 3, 4},
		ClientIPAddr: zero4(), YourIPAddr: zero4(), ServerIPAddr: zero4(), GatewayIPAddr: zero4(), ClientHWAddr: mac,
		Options: dhcpv4.Options{}}
	m.Options.Update(dhcpv4.OptMessageType(mt))
	for _, f := range mods {
		f(m)
	}
	// Round-trip through bytes so tests see what a socket would deliver.
	p, err := dhcpv4.FromBytes(m.ToBytes())
	if err != nil {
		panic(err)
	}
	return p
}

func pxe(arch uint16) dhcpv4.Modifier {
	return func(m *dhcpv4.DHCPv4) {
		m.Options.Update(dhcpv4.OptClassIdentifier("PXEClient:Arch:" + pad5(arch) + ":UNDI:003016"))
		m.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(arch >> 8), byte(arch)}))
	}
}

func pad5(v uint16) string {
	b := []byte("00000")
	for i := 4; i >= 0 && v > 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b)
}

func (u *unit) do(m *dhcpv4.DHCPv4) result {
	return u.ifs.handle(context.Background(), m, dhcpv4.ServerPort, &net.UDPAddr{IP: net.IPv4zero, Port: 68})
}

// commit applies a result's changes the way the group commit would.
func (u *unit) commit(t testing.TB, r result) {
	t.Helper()
	if err := u.store.CommitLeases(context.Background(), r.changes); err != nil {
		t.Fatal(err)
	}
}

func dora(t testing.TB, u *unit, mac net.HardwareAddr, mods ...dhcpv4.Modifier) net.IP {
	t.Helper()
	off := u.do(packet(dhcpv4.MessageTypeDiscover, mac, mods...))
	if off.reply == nil || off.reply.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("%s: no OFFER: %+v", mac, off)
	}
	ip := off.reply.YourIPAddr
	ack := u.do(packet(dhcpv4.MessageTypeRequest, mac, append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1))))...))
	if ack.reply == nil || ack.reply.MessageType() != dhcpv4.MessageTypeAck || !ack.reply.YourIPAddr.Equal(ip) {
		t.Fatalf("%s: no ACK for %s: %+v", mac, ip, ack.reply)
	}
	if len(ack.changes) != 1 || ack.changes[0].Lease.State != LeaseBound {
		t.Fatalf("%s: ACK without a bound lease change: %+v", mac, ack.changes)
	}
	u.commit(t, ack)
	return ip
}

func counterValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			panic(err)
		}
		sum += d.GetCounter().GetValue() + d.GetGauge().GetValue()
	}
	return sum
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
