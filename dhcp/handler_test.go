package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestDORAOptionsAndLease(t *testing.T) {
	u := newUnit(t, authIface())
	mac := mustMAC("02:00:00:00:00:01")
	off := u.do(packet(dhcpv4.MessageTypeDiscover, mac, dhcpv4.WithOption(dhcpv4.OptHostName("node-1"))))
	r := off.reply
	if r == nil || r.YourIPAddr.String() != "10.77.0.100" {
		t.Fatalf("offer: %+v", r)
	}
	if len(off.changes) != 0 {
		t.Fatal("an OFFER must not be written to the store")
	}
	if r.TransactionID != (dhcpv4.TransactionID{1, 2, 3, 4}) || r.OpCode != dhcpv4.OpcodeBootReply {
		t.Fatalf("reply header: %+v", r)
	}
	if r.SubnetMask().String() != "ffffff00" || r.Router()[0].String() != "10.77.0.1" || r.DNS()[0].String() != "10.77.0.1" ||
		r.DomainName() != "plant.test" || r.IPAddressLeaseTime(0) != time.Hour || !r.ServerIdentifier().Equal(net.IPv4(10, 77, 0, 1)) {
		t.Fatalf("offer options: %s", r.Summary())
	}
	if r.BootFileName != "" || off.dst.String() != "255.255.255.255:68" {
		t.Fatalf("plain client got boot file %q / dst %s", r.BootFileName, off.dst)
	}
	ip := dora(t, u, mac, dhcpv4.WithOption(dhcpv4.OptHostName("node-1")))
	row := u.store.rows[mac.String()]
	if row.IP.String() != ip.String() || row.State != "bound" || row.Hostname != "node-1" || row.Iface != "eth9" ||
		!row.ExpiresAt.Equal(u.clk.Now().Add(time.Hour)) {
		t.Fatalf("stored lease: %+v", row)
	}
	// Renewal: unicast from the client's address, no option 50.
	u.clk.Add(30 * time.Minute)
	ren := u.do(packet(dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(ip)))
	if ren.reply == nil || ren.reply.MessageType() != dhcpv4.MessageTypeAck || ren.dst.String() != ip.String()+":68" {
		t.Fatalf("renew: %+v", ren)
	}
	u.commit(t, ren)
	if got := u.store.rows[mac.String()].ExpiresAt; !got.Equal(u.clk.Now().Add(time.Hour)) {
		t.Fatalf("renew did not extend the lease: %v", got)
	}
	// Release keeps the address for this client: it comes back.
	rel := u.do(packet(dhcpv4.MessageTypeRelease, mac, dhcpv4.WithClientIP(ip)))
	if rel.reply != nil || len(rel.changes) != 1 || rel.changes[0].Lease.State != "released" {
		t.Fatalf("release: %+v", rel)
	}
	u.commit(t, rel)
	other := dora(t, u, mustMAC("02:00:00:00:00:02"))
	if other.Equal(ip) {
		t.Fatal("a released address went to another client while fresh ones were free")
	}
	if again := dora(t, u, mac); !again.Equal(ip) {
		t.Fatalf("after release got %s, want %s back", again, ip)
	}
}

func TestRestartRestoresLeases(t *testing.T) {
	u := newUnit(t, authIface())
	macs := []net.HardwareAddr{mustMAC("02:00:00:00:00:01"), mustMAC("02:00:00:00:00:02")}
	var ips []net.IP
	for _, m := range macs {
		ips = append(ips, dora(t, u, m))
	}
	// A new server on the same store: same addresses, and no one else gets them.
	u2 := newUnit(t, authIface())
	u2.store = u.store
	u2.s.opts.Store = u.store
	if err := u2.ifs.prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	newcomer := dora(t, u2, mustMAC("02:00:00:00:00:03"))
	for i, m := range macs {
		if got := dora(t, u2, m); !got.Equal(ips[i]) {
			t.Fatalf("%s: after restart got %s, want %s", m, got, ips[i])
		}
		if newcomer.Equal(ips[i]) {
			t.Fatalf("newcomer got %s, still leased to %s", newcomer, m)
		}
	}
}

func TestDeclineQuarantine(t *testing.T) {
	u := newUnit(t, authIface())
	mac := mustMAC("02:00:00:00:00:01")
	ip := dora(t, u, mac)
	d := u.do(packet(dhcpv4.MessageTypeDecline, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))))
	if len(d.changes) != 1 || d.changes[0].Lease.State != "declined" || !strings.HasPrefix(d.changes[0].Lease.MAC, "declined:") {
		t.Fatalf("decline: %+v", d)
	}
	u.commit(t, d)
	if _, ok := u.store.rows[mac.String()]; ok {
		t.Fatal("the client's row must go: its address is quarantined")
	}
	if next := dora(t, u, mac); next.Equal(ip) {
		t.Fatal("declined address offered again during quarantine")
	}
	if st := u.s.Status()[0].Pools[0]; st.Quarantined != 1 || st.Bound != 1 {
		t.Fatalf("status: %+v", st)
	}
}

func TestReservationUnknownAndLists(t *testing.T) {
	ic := authIface()
	ic.Discovery = false
	ic.Deny = []string{"02:de:ad"}
	u := newUnit(t, ic)
	known := mustMAC("52:54:00:00:00:01")
	u.dir.Add(known, Machine{ID: "m1", State: "ready", ReservedIP: netip.MustParseAddr("10.77.0.50"), Hostname: "rack1-n1"})
	if r := u.do(packet(dhcpv4.MessageTypeDiscover, mustMAC("02:00:00:00:00:09"))); r.reply != nil {
		t.Fatal("unknown MAC answered with discovery off")
	}
	ip := dora(t, u, known)
	if ip.String() != "10.77.0.50" {
		t.Fatalf("reserved machine got %s", ip)
	}
	if u.store.rows[known.String()].Hostname != "rack1-n1" {
		t.Fatalf("hostname from the inventory not stored: %+v", u.store.rows[known.String()])
	}
	// Asking for another address is refused: the machine must use its reservation.
	n := u.do(packet(dhcpv4.MessageTypeRequest, known, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 101)))))
	if n.reply == nil || n.reply.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("want NAK, got %+v", n.reply)
	}
	u.dir.Add(mustMAC("02:de:ad:00:00:01"), Machine{ID: "m2", State: "ready"})
	if r := u.do(packet(dhcpv4.MessageTypeDiscover, mustMAC("02:de:ad:00:00:01"))); r.reply != nil {
		t.Fatal("denied MAC answered")
	}
	if counterValue(u.s.m.drops.WithLabelValues("eth9", "denied")) != 1 || counterValue(u.s.m.drops.WithLabelValues("eth9", "unknown_mac")) != 1 {
		t.Fatal("drop reasons not counted")
	}
	ic.Allow = []string{"52:54:00"}
	ic.Discovery = true
	u = newUnit(t, ic)
	if r := u.do(packet(dhcpv4.MessageTypeDiscover, mustMAC("02:00:00:00:00:09"))); r.reply != nil {
		t.Fatal("MAC outside the allow list answered")
	}
	dora(t, u, mustMAC("52:54:00:00:00:07"))
}

func TestDiscoveryAndBoot(t *testing.T) {
	u := newUnit(t, authIface())
	mac := mustMAC("52:54:00:12:34:01")
	off := u.do(packet(dhcpv4.MessageTypeDiscover, mac, pxe(7)))
	r := off.reply
	if r == nil || r.BootFileName != "ipxe.efi" || !r.ServerIPAddr.Equal(net.IPv4(10, 77, 0, 1)) || r.TFTPServerName() != "10.77.0.1" ||
		r.BootFileNameOption() != "ipxe.efi" {
		t.Fatalf("UEFI PXE offer: %+v", r)
	}
	d := u.dir.Discovered()
	if len(d) != 1 || d[0].MAC.String() != mac.String() || !strings.Contains(d[0].Arch, "7") {
		t.Fatalf("discovered: %+v", d)
	}
	// iPXE now (option 175): the script, never the binary.
	ipxe := u.do(packet(dhcpv4.MessageTypeDiscover, mac, pxe(7), dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionEtherboot, []byte{1, 1, 1})),
		dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))))
	if ipxe.reply == nil || ipxe.reply.BootFileName != "http://10.77.0.1:8080/boot/auto.ipxe" {
		t.Fatalf("iPXE offer: %+v", ipxe.reply)
	}
	// HTTP boot.
	h := u.do(packet(dhcpv4.MessageTypeDiscover, mustMAC("52:54:00:12:34:02"), func(m *dhcpv4.DHCPv4) {
		m.Options.Update(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003001"))
		m.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 16}))
	}))
	if h.reply == nil || h.reply.ClassIdentifier() != "HTTPClient" || h.reply.BootFileName != "http://10.77.0.1:8080/boot/ipxe/ipxe.efi" {
		t.Fatalf("HTTP boot offer: %+v", h.reply)
	}
	// ARM64 without a binary: no offer at all.
	if a := u.do(packet(dhcpv4.MessageTypeDiscover, mustMAC("52:54:00:12:34:03"), pxe(11))); a.reply != nil {
		t.Fatal("ARM64 without binary got an offer")
	}
	if d := u.dir.Discovered(); d[len(d)-1].MAC.String() != "52:54:00:12:34:03" {
		t.Fatalf("the ARM64 machine Slate cannot boot yet was not recorded: %+v", d)
	}
	// Retired: address, but no boot file.
	u.dir.Add(mustMAC("52:54:00:12:34:04"), Machine{ID: "m4", State: "retired"})
	ret := u.do(packet(dhcpv4.MessageTypeDiscover, mustMAC("52:54:00:12:34:04"), pxe(0)))
	if ret.reply == nil || ret.reply.BootFileName != "" || ret.reply.Options.Has(dhcpv4.OptionBootfileName) {
		t.Fatalf("retired machine: %+v", ret.reply)
	}
}

func TestRelayOption82(t *testing.T) {
	ic := authIface()
	ic.RelayPools = []Pool{{Range: "10.88.5.10-10.88.5.20", Netmask: "255.255.255.0", Gateway: "10.88.5.1", LeaseTime: time.Hour}}
	u := newUnit(t, ic)
	mac := mustMAC("02:00:00:00:00:01")
	relay := func(m *dhcpv4.DHCPv4) {
		m.GatewayIPAddr = net.IPv4(10, 88, 5, 1).To4()
		m.HopCount = 1
		m.Options.Update(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("sw1/port7")),
			dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(2), []byte{0xaa, 0xbb})))
	}
	off := u.do(packet(dhcpv4.MessageTypeDiscover, mac, relay))
	if off.reply == nil || off.reply.YourIPAddr.String() != "10.88.5.10" || off.dst.String() != "10.88.5.1:67" ||
		!off.reply.GatewayIPAddr.Equal(net.IPv4(10, 88, 5, 1)) || off.reply.RelayAgentInfo() == nil || off.reply.Router()[0].String() != "10.88.5.1" {
		t.Fatalf("relayed offer: %+v dst %v", off.reply, off.dst)
	}
	ip := dora(t, u, mac, relay)
	if got := u.store.rows[mac.String()].RelayInfo; got != "1=7377312f706f727437;2=aabb" || ip.String() != "10.88.5.10" {
		t.Fatalf("relay info %q ip %s", got, ip)
	}
	// The client renews straight to the server (no relay): its lease is found by ciaddr.
	ren := u.do(packet(dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(ip)))
	if ren.reply == nil || ren.reply.MessageType() != dhcpv4.MessageTypeAck || ren.dst.String() != "10.88.5.10:68" {
		t.Fatalf("direct renewal of a relayed lease: %+v", ren)
	}
	// A relay from a subnet with no pool is not answered.
	if r := u.do(packet(dhcpv4.MessageTypeDiscover, mac, func(m *dhcpv4.DHCPv4) { m.GatewayIPAddr = net.IPv4(10, 99, 9, 1).To4() })); r.reply != nil {
		t.Fatal("answered a relay with no pool")
	}
}

func TestInformAndNak(t *testing.T) {
	u := newUnit(t, authIface())
	mac := mustMAC("02:00:00:00:00:01")
	inf := u.do(packet(dhcpv4.MessageTypeInform, mac, dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 5))))
	if inf.reply == nil || inf.reply.MessageType() != dhcpv4.MessageTypeAck || !inf.reply.YourIPAddr.IsUnspecified() ||
		inf.reply.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || inf.dst.String() != "10.77.0.5:68" || len(inf.changes) != 0 {
		t.Fatalf("inform: %+v", inf)
	}
	// INIT-REBOOT asking for an address on another network: NAK, broadcast.
	n := u.do(packet(dhcpv4.MessageTypeRequest, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 1, 9)))))
	if n.reply == nil || n.reply.MessageType() != dhcpv4.MessageTypeNak || n.dst.String() != "255.255.255.255:68" {
		t.Fatalf("nak: %+v", n)
	}
	// Selecting another server's offer: silence, and our offer is dropped.
	u.do(packet(dhcpv4.MessageTypeDiscover, mac))
	o := u.do(packet(dhcpv4.MessageTypeRequest, mac, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 2))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 100)))))
	if o.reply != nil || u.s.Status()[0].Pools[0].Offered != 0 {
		t.Fatalf("other server's request: %+v %+v", o.reply, u.s.Status()[0].Pools[0])
	}
}

func TestExhaustionAndExpiryReuse(t *testing.T) {
	ic := authIface()
	ic.Pool.Range = "10.77.0.100-10.77.0.102"
	ic.Pool.LeaseTime = time.Minute
	u := newUnit(t, ic)
	for i := range 3 {
		dora(t, u, net.HardwareAddr{2, 0, 0, 0, 1, byte(i)})
	}
	for i := range 5 {
		if r := u.do(packet(dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0, 0, 0, 2, byte(i)})); r.reply != nil {
			t.Fatalf("offer from an exhausted pool: %v", r.reply.YourIPAddr)
		}
	}
	if got := counterValue(u.s.m.exhausted.WithLabelValues("eth9", "local")); got != 5 {
		t.Fatalf("exhausted metric %v, want 5", got)
	}
	// Leases expire: the one that expired first is reused first.
	u.clk.Add(30 * time.Second)
	r := u.do(packet(dhcpv4.MessageTypeRequest, net.HardwareAddr{2, 0, 0, 0, 1, 1}, dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 101))))
	u.commit(t, r)
	u.clk.Add(45 * time.Second)
	ip := dora(t, u, net.HardwareAddr{2, 0, 0, 0, 3, 0})
	if ip.String() != "10.77.0.100" && ip.String() != "10.77.0.102" {
		t.Fatalf("reused %s, which is still leased", ip)
	}
	ip2 := dora(t, u, net.HardwareAddr{2, 0, 0, 0, 3, 1})
	if ip2.Equal(ip) || ip2.String() == "10.77.0.101" {
		t.Fatalf("second reuse got %s", ip2)
	}
	// The store holds one row per address: the expired owner's row went.
	n := 0
	for _, row := range u.store.rows {
		if row.IP.String() == ip.String() {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d rows for %s", n, ip)
	}
}

func TestRateLimit(t *testing.T) {
	ic := authIface()
	ic.RateLimit = RateLimit{PerMAC: 3, Window: time.Second}
	u := newUnit(t, ic)
	mac := mustMAC("02:00:00:00:00:01")
	answered := 0
	for range 10 {
		if u.do(packet(dhcpv4.MessageTypeDiscover, mac)).reply != nil {
			answered++
		}
	}
	if answered != 3 {
		t.Fatalf("answered %d of 10 in one window, want 3", answered)
	}
	u.clk.Add(time.Second)
	if u.do(packet(dhcpv4.MessageTypeDiscover, mac)).reply == nil {
		t.Fatal("not answered in the next window")
	}
}

func TestProxyMode(t *testing.T) {
	ic := InterfaceConfig{Name: "eth9", Mode: ModeProxy, ServerAddress: "10.77.0.1", Discovery: true, Boot: Boot{URL: "http://10.77.0.1:8080"}}
	u := newUnit(t, ic)
	if r := u.do(packet(dhcpv4.MessageTypeDiscover, mustMAC("02:00:00:00:00:01"))); r.reply != nil {
		t.Fatal("proxy answered a plain DHCP client")
	}
	mac := mustMAC("52:54:00:00:00:01")
	off := u.do(packet(dhcpv4.MessageTypeDiscover, mac, pxe(0), dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}))))
	r := off.reply
	if r == nil || r.MessageType() != dhcpv4.MessageTypeOffer || !r.YourIPAddr.IsUnspecified() || r.BootFileName != "undionly.kpxe" ||
		r.ClassIdentifier() != "PXEClient" || string(r.Options.Get(dhcpv4.OptionVendorSpecificInformation)) != string([]byte{6, 1, 8, 255}) ||
		!r.Options.Has(dhcpv4.OptionClientMachineIdentifier) || r.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Fatalf("proxy offer: %s", r.Summary())
	}
	if len(off.changes) != 0 {
		t.Fatal("proxy wrote a lease")
	}
	peer := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 55), Port: 68}
	ack := u.ifs.handle(context.Background(), packet(dhcpv4.MessageTypeRequest, mac, pxe(7), dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 55))), pxePort, peer)
	if ack.reply == nil || ack.reply.MessageType() != dhcpv4.MessageTypeAck || ack.reply.BootFileName != "ipxe.efi" || ack.dst.String() != peer.String() {
		t.Fatalf("4011 ack: %+v", ack)
	}
	// A REQUEST on 67 for the plant server is not ours.
	if r := u.do(packet(dhcpv4.MessageTypeRequest, mac, pxe(0), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 2))))); r.reply != nil {
		t.Fatal("proxy answered a REQUEST for another server")
	}
}

func TestBadInputDropped(t *testing.T) {
	u := newUnit(t, authIface())
	peer := &net.UDPAddr{IP: net.IPv4zero, Port: 68}
	good := packet(dhcpv4.MessageTypeDiscover, mustMAC("02:00:00:00:00:01")).ToBytes()
	reply := packet(dhcpv4.MessageTypeOffer, mustMAC("02:00:00:00:00:01"))
	reply.OpCode = dhcpv4.OpcodeBootReply
	bootp := packet(dhcpv4.MessageTypeDiscover, mustMAC("02:00:00:00:00:01"))
	bootp.Options = dhcpv4.Options{}
	for name, b := range map[string][]byte{
		"empty": nil, "truncated": good[:100], "no cookie": good[:236], "bad cookie": append(append([]byte{}, good[:236]...), 1, 2, 3, 4),
		"bad option length": append(append([]byte{}, good[:240]...), 53, 200, 1), "reply op": reply.ToBytes(), "bootp": bootp.ToBytes(),
	} {
		if r := u.ifs.handleRaw(context.Background(), b, 67, peer); r.reply != nil || len(r.changes) != 0 {
			t.Errorf("%s: answered", name)
		}
	}
	if counterValue(u.s.m.drops.WithLabelValues("eth9", "malformed")) < 4 {
		t.Fatal("malformed packets not counted")
	}
}

func TestConfigValidation(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("empty config: %v", err)
	}
	good := authIface()
	if err := (Config{Interfaces: []InterfaceConfig{good}}).Validate(); err != nil {
		t.Fatal(err)
	}
	bad := func(f func(*InterfaceConfig)) InterfaceConfig {
		ic := authIface()
		p := *ic.Pool
		ic.Pool = &p
		f(&ic)
		return ic
	}
	cases := map[string]InterfaceConfig{
		"interfaces[0].name":                  bad(func(ic *InterfaceConfig) { ic.Name = "" }),
		"interfaces[0](eth9).mode":            bad(func(ic *InterfaceConfig) { ic.Mode = "auto" }),
		"interfaces[0](eth9).pool.range":      bad(func(ic *InterfaceConfig) { ic.Pool.Range = "10.77.0.9" }),
		"interfaces[0](eth9).pool.netmask":    bad(func(ic *InterfaceConfig) { ic.Pool.Netmask = "255.0.255.0" }),
		"interfaces[0](eth9).pool.gateway":    bad(func(ic *InterfaceConfig) { ic.Pool.Gateway = "10.1.1.1" }),
		"interfaces[0](eth9).pool.dns[0]":     bad(func(ic *InterfaceConfig) { ic.Pool.DNS = []string{"x"} }),
		"interfaces[0](eth9).pool.lease_time": bad(func(ic *InterfaceConfig) { ic.Pool.LeaseTime = time.Millisecond }),
		"interfaces[0](eth9).server_address":  bad(func(ic *InterfaceConfig) { ic.ServerAddress = "::1" }),
		"interfaces[0](eth9).ping_timeout":    bad(func(ic *InterfaceConfig) { ic.PingCheck, ic.PingTimeout = true, time.Minute }),
		"interfaces[0](eth9).deny[0]":         bad(func(ic *InterfaceConfig) { ic.Deny = []string{"zz:00"} }),
		"interfaces[0](eth9).boot.boot_url":   bad(func(ic *InterfaceConfig) { ic.Boot.URL = "ftp://x" }),
		"interfaces[0](eth9).pool:":           bad(func(ic *InterfaceConfig) { ic.Pool = nil }),
	}
	for want, ic := range cases {
		err := (Config{Interfaces: []InterfaceConfig{ic}}).Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error naming %s, got %v", want, err)
		}
	}
	proxy := InterfaceConfig{Name: "eth1", Mode: ModeProxy, Pool: good.Pool, Boot: good.Boot}
	if err := (Config{Interfaces: []InterfaceConfig{proxy}}).Validate(); err == nil || !strings.Contains(err.Error(), "proxy mode hands out no addresses") {
		t.Errorf("proxy with pool: %v", err)
	}
	dup := Config{Interfaces: []InterfaceConfig{good, good}}
	if err := dup.Validate(); err == nil || !strings.Contains(err.Error(), "configured twice") {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := New(Config{Interfaces: []InterfaceConfig{good}}, Options{Directory: NewMemDirectory()}); err == nil {
		t.Error("authoritative without a store accepted")
	}
}

// TestNothingAnswersUnconfigured: no interface configured, or mode off, opens no socket.
func TestNothingAnswersUnconfigured(t *testing.T) {
	for name, cfg := range map[string]Config{
		"empty": {},
		"off":   {Interfaces: []InterfaceConfig{{Name: "eth1", Mode: ModeOff}}},
	} {
		opened := 0
		srv, err := New(cfg, Options{Directory: NewMemDirectory(), ListenPacket: func(string, int) (net.PacketConn, error) {
			opened++
			return nil, errors.New("must not listen")
		}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		<-srv.Ready()
		cancel()
		if err := <-done; err != nil || opened != 0 || len(srv.Status()) != 0 {
			t.Fatalf("%s: Run=%v, sockets opened %d, status %+v", name, err, opened, srv.Status())
		}
	}
}

type failingStore struct {
	memStore
	fail bool
	wait chan struct{}
}

func (f *failingStore) CommitLeases(ctx context.Context, ch []LeaseChange) error {
	if f.wait != nil {
		<-f.wait
	}
	if f.fail {
		return errors.New("disk full")
	}
	return f.memStore.CommitLeases(ctx, ch)
}

// TestGroupCommitACKAfterDurable: a reply leaves only after its batch committed, and never when
// the commit failed.
func TestGroupCommitACKAfterDurable(t *testing.T) {
	u := newUnit(t, authIface())
	st := &failingStore{memStore: *newMemStore(), wait: make(chan struct{})}
	c := newCommitter(st, 0, 16, u.s.m, u.s.log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.run(ctx); close(done) }()
	var mu sync.Mutex
	var sent []int
	row := func(i int) []LeaseChange {
		return []LeaseChange{{Lease: Lease{MAC: fmt.Sprintf("02:00:00:00:00:%02x", i), IP: netip.AddrFrom4([4]byte{10, 77, 0, byte(i)}),
			Iface: "eth9", State: LeaseBound}}}
	}
	for i := range 5 {
		if !c.submit(commitJob{changes: row(i), send: func() { mu.Lock(); sent = append(sent, i); mu.Unlock() }}) {
			t.Fatal("submit refused")
		}
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	if len(sent) != 0 {
		t.Fatalf("replies %v sent before their commit finished", sent)
	}
	mu.Unlock()
	close(st.wait) // the first commit (of at least the first lease) finishes; the rest follow
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(sent)
		mu.Unlock()
		if n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d replies sent", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(st.rows) != 5 {
		t.Fatalf("%d rows stored", len(st.rows))
	}
	st.fail = true
	c.submit(commitJob{changes: row(9), send: func() { mu.Lock(); sent = append(sent, 9); mu.Unlock() }})
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	if len(sent) != 5 {
		t.Fatalf("a reply was sent although its lease was not stored: %v", sent)
	}
	if v := counterValue(u.s.m.drops); v < 1 {
		t.Fatalf("store failure not counted: %v", v)
	}
}
