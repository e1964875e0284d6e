package dhcp

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// ifaceServer serves one interface.
type ifaceServer struct {
	s        *Server
	cfg      *compiled
	log      *slog.Logger
	pools    []*pool
	server   netip.Addr
	serverIP net.IP
	conn67   net.PacketConn
	limiter  *rateLimiter
	pinger   *pinger // nil unless ping_check

	discoveryBudget *tokenBucket
	// newLeaseBudget bounds new addresses for unknown MACs (nil: no limit).
	newLeaseBudget *tokenBucket

	refuseMu   sync.Mutex
	refuseLast time.Time
	refuseN    int

	exhaustMu   sync.Mutex
	exhaustLast time.Time
	exhaustN    int

	rogueMu   sync.Mutex
	rogues    []RogueServer
	probeDone bool
	probeMAC  net.HardwareAddr
}

// result is what handling one packet produced: a reply to send to dst, and lease changes that
// must be durable before it is sent.
type result struct {
	reply   *dhcpv4.DHCPv4
	dst     *net.UDPAddr
	changes []LeaseChange
}

// zero4 is a fresh 0.0.0.0 (replies own their fields; nothing shared between packets).
func zero4() net.IP { return net.IP{0, 0, 0, 0} }

func (ifs *ifaceServer) drop(reason string) {
	ifs.s.m.drops.WithLabelValues(ifs.cfg.Name, reason).Inc()
}

// handleRaw parses and handles one packet. Bad input is dropped with a counted reason; this is
// the fuzz target's entry point.
func (ifs *ifaceServer) handleRaw(ctx context.Context, b []byte, port int, peer net.Addr) result {
	// The parser clamps hlen to 16, hiding a packet that lies about its hardware address
	// length (Kea drops hlen > 16 too): look at the raw byte.
	if len(b) > 2 && b[2] > 16 {
		ifs.drop("bad_hlen")
		ifs.log.Debug("DHCP packet dropped", "from", addrString(peer), "reason", fmt.Sprintf("hardware address length %d > 16", b[2]))
		return result{}
	}
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		ifs.drop("malformed")
		ifs.log.Debug("malformed DHCP packet dropped", "from", addrString(peer), "len", len(b), "err", err)
		return result{}
	}
	return ifs.handle(ctx, m, port, peer)
}

// badClientHW says why a request's client hardware address cannot be a real client's, or "".
// Such addresses would otherwise take a lease (an all-zero or broadcast MAC is shared by every
// forger) or a discovery record.
func badClientHW(m *dhcpv4.DHCPv4) string {
	mac := m.ClientHWAddr
	if m.HWType == iana.HWTypeEthernet && len(mac) != 6 {
		return fmt.Sprintf("Ethernet hardware address of %d bytes (want 6)", len(mac))
	}
	zero, bcast := true, true
	for _, c := range mac {
		zero = zero && c == 0
		bcast = bcast && c == 0xff
	}
	switch {
	case zero:
		return "all-zero hardware address"
	case bcast:
		return "broadcast hardware address"
	case m.HWType == iana.HWTypeEthernet && mac[0]&1 != 0:
		return "multicast hardware address"
	}
	return ""
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func (ifs *ifaceServer) handle(ctx context.Context, m *dhcpv4.DHCPv4, port int, peer net.Addr) result {
	if m.OpCode != dhcpv4.OpcodeBootRequest {
		ifs.drop("not_request")
		return result{}
	}
	mac := m.ClientHWAddr
	if len(mac) == 0 || len(m.ClientIPAddr) != 4 || len(m.GatewayIPAddr) != 4 {
		ifs.drop("malformed")
		return result{}
	}
	if reason := badClientHW(m); reason != "" {
		ifs.drop("bad_chaddr")
		ifs.log.Debug("DHCP packet dropped", "from", addrString(peer), "reason", reason, "mac", mac.String())
		return result{}
	}
	mt := m.MessageType()
	if mt == dhcpv4.MessageTypeNone {
		ifs.drop("bootp_unsupported")
		return result{}
	}
	ifs.s.m.requests.WithLabelValues(ifs.cfg.Name, mt.String()).Inc()
	if ifs.probeMAC != nil && string(ifs.probeMAC) == string(mac) {
		return result{} // our own rogue probe, looped back
	}
	for _, p := range ifs.cfg.deny {
		if p.match(mac) {
			ifs.drop("denied")
			return result{}
		}
	}
	if len(ifs.cfg.allow) > 0 {
		ok := false
		for _, p := range ifs.cfg.allow {
			ok = ok || p.match(mac)
		}
		if !ok {
			ifs.drop("not_allowed")
			return result{}
		}
	}
	now := ifs.s.now()
	if !ifs.limiter.allow(mac, now) {
		ifs.drop("rate_limited")
		return result{}
	}
	if ifs.cfg.Mode == ModeProxy {
		return ifs.proxy(ctx, m, mt, port, peer, now)
	}
	if port != dhcpv4.ServerPort {
		return result{}
	}
	return ifs.authoritative(ctx, m, mt, now)
}

// lookup asks the directory about mac and applies the discovery rule: unknown MACs are
// answered only when discovery is on.
func (ifs *ifaceServer) lookup(ctx context.Context, mac net.HardwareAddr) (Machine, bool, bool) {
	machine, known, err := ifs.s.opts.Directory.LookupMAC(ctx, mac)
	if err != nil {
		ifs.log.Warn("machine lookup failed: not answering", "mac", mac.String(), "err", err)
		ifs.drop("directory_error")
		return Machine{}, false, false
	}
	if !known && !ifs.cfg.Discovery {
		ifs.drop("unknown_mac")
		return Machine{}, false, false
	}
	return machine, known, true
}

func (ifs *ifaceServer) discover(ctx context.Context, m *dhcpv4.DHCPv4, boot BootAnswer, now time.Time) {
	if !ifs.discoveryBudget.take(now) {
		ifs.drop("discovery_rate")
		return
	}
	d := Discovery{MAC: m.ClientHWAddr, Interface: ifs.cfg.Name, Arch: boot.Arch, VendorClass: m.ClassIdentifier(), Hostname: sanitizeHostname(m.HostName())}
	if err := ifs.s.opts.Directory.RecordDiscovered(ctx, d); err != nil {
		ifs.log.Warn("recording discovered machine failed", "mac", m.ClientHWAddr.String(), "err", err)
		return
	}
	ifs.log.Info("machine discovered", "mac", m.ClientHWAddr.String(), "arch", boot.Arch, "vendor_class", d.VendorClass)
}

func (ifs *ifaceServer) nak(m *dhcpv4.DHCPv4, why string) result {
	ifs.log.Info("DHCP NAK", "mac", m.ClientHWAddr.String(), "requested", m.RequestedIPAddress(), "ciaddr", m.ClientIPAddr, "reason", why)
	r := ifs.newReply(m, dhcpv4.MessageTypeNak)
	r.Options.Update(dhcpv4.OptMessage(why))
	return result{reply: r, dst: ifs.dest(m, true)}
}

// newReply builds a reply by hand: dhcpv4.NewReplyFromRequest draws a random xid from
// crypto/rand only to overwrite it, 15 % of the server's CPU under load.
func (ifs *ifaceServer) newReply(m *dhcpv4.DHCPv4, mt dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        m.HWType,
		TransactionID: m.TransactionID,
		Flags:         m.Flags,
		ClientIPAddr:  m.ClientIPAddr,
		YourIPAddr:    zero4(),
		ServerIPAddr:  zero4(),
		GatewayIPAddr: m.GatewayIPAddr,
		ClientHWAddr:  m.ClientHWAddr,
		Options:       dhcpv4.Options{},
	}
	if mt == dhcpv4.MessageTypeNak || mt == dhcpv4.MessageTypeOffer {
		r.ClientIPAddr = zero4()
	}
	r.Options.Update(dhcpv4.OptMessageType(mt))
	r.Options.Update(dhcpv4.OptServerIdentifier(ifs.serverIP))
	if v := m.Options.Get(dhcpv4.OptionClientIdentifier); v != nil {
		r.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionClientIdentifier, v)) // RFC 6842
	}
	if v := m.Options.Get(dhcpv4.OptionRelayAgentInformation); v != nil && !m.GatewayIPAddr.IsUnspecified() {
		r.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, v)) // RFC 3046: echo to the relay
	}
	return r
}

func (ifs *ifaceServer) leaseOptions(r *dhcpv4.DHCPv4, p *pool, leaseTime time.Duration, hostname string) {
	r.Options.Update(dhcpv4.OptSubnetMask(p.cfg.netmask))
	if p.cfg.gateway.IsValid() {
		g := p.cfg.gateway.As4()
		r.Options.Update(dhcpv4.OptRouter(net.IP(g[:])))
	}
	if len(p.cfg.dns) > 0 {
		r.Options.Update(dhcpv4.OptDNS(p.cfg.dns...))
	}
	if p.cfg.domain != "" {
		r.Options.Update(dhcpv4.OptDomainName(p.cfg.domain))
	}
	if hostname != "" {
		r.Options.Update(dhcpv4.OptHostName(hostname))
	}
	if leaseTime > 0 {
		r.Options.Update(dhcpv4.OptIPAddressLeaseTime(leaseTime))
		r.Options.Update(dhcpv4.OptRenewTimeValue(leaseTime / 2))
		r.Options.Update(dhcpv4.OptRebindingTimeValue(leaseTime * 7 / 8))
	}
}

func (ifs *ifaceServer) bootOptions(r *dhcpv4.DHCPv4, b BootAnswer) {
	if b.Kind == BootNone {
		return
	}
	r.ServerIPAddr = ifs.serverIP
	r.BootFileName = b.File
	r.Options.Update(dhcpv4.OptBootFileName(b.File))
	if b.Kind == BootTFTP {
		r.Options.Update(dhcpv4.OptTFTPServerName(ifs.server.String()))
	}
	if b.VendorClass == "HTTPClient" {
		r.Options.Update(dhcpv4.OptClassIdentifier("HTTPClient")) // UEFI HTTP boot ignores offers without it
	}
}

// dest is where a reply goes (RFC 2131 §4.1): to the relay, to the client's address when it
// has one, else broadcast (Slate does not write ARP entries for unicast to a client that has
// no address yet; broadcast reaches every client).
func (ifs *ifaceServer) dest(m *dhcpv4.DHCPv4, nak bool) *net.UDPAddr {
	if !m.GatewayIPAddr.IsUnspecified() {
		return &net.UDPAddr{IP: m.GatewayIPAddr, Port: dhcpv4.ServerPort}
	}
	if !nak && !m.ClientIPAddr.IsUnspecified() {
		return &net.UDPAddr{IP: m.ClientIPAddr, Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

func (ifs *ifaceServer) row(mac net.HardwareAddr, l lease, state string) Lease {
	return Lease{MAC: mac.String(), IP: u2addr(l.ip), Iface: ifs.cfg.Name, Hostname: l.hostname,
		State: state, ExpiresAt: l.expires, RelayInfo: l.relay}
}

// poolFor is the pool whose subnet holds ip.
func (ifs *ifaceServer) poolFor(ip uint32) *pool {
	if ip == 0 {
		return nil
	}
	a := u2addr(ip)
	for _, p := range ifs.pools {
		if p.cfg.subnet.Contains(a) {
			return p
		}
	}
	return nil
}

// exhausted reports an empty pool: a metric every time, a log line at most every 10 s.
func (ifs *ifaceServer) exhausted(p *pool, mac net.HardwareAddr) {
	ifs.drop("pool_exhausted")
	ifs.s.m.exhausted.WithLabelValues(ifs.cfg.Name, p.cfg.label).Inc()
	now := ifs.s.now()
	ifs.exhaustMu.Lock()
	ifs.exhaustN++
	if now.Sub(ifs.exhaustLast) < 10*time.Second && !ifs.exhaustLast.IsZero() {
		ifs.exhaustMu.Unlock()
		return
	}
	n := ifs.exhaustN
	ifs.exhaustN, ifs.exhaustLast = 0, now
	ifs.exhaustMu.Unlock()
	st := p.status(now)
	ifs.log.Warn("DHCP pool exhausted: no address to offer (widen the range, shorten lease_time, or find who is flooding)",
		"pool", st.Range, "size", st.Size, "bound", st.Bound, "offered", st.Offered, "quarantined", st.Quarantined,
		"mac", mac.String(), "refused_since_last_report", n)
}

var (
	errNewLeaseRate = errors.New("new-lease rate for unknown machines reached (new_leases.per_minute/burst)")
	errPoolReserve  = errors.New("only the reserve kept for known machines is left (new_leases.reserve_percent)")
)

// unknownGate is the gate for a MAC not in the inventory: it gets a new address only at the
// interface's new-lease rate, and never one of the pool's reserve, so a flood of invented MACs
// cannot take the addresses the plant's own machines need.
func (ifs *ifaceServer) unknownGate(now time.Time) gate {
	pct := ifs.cfg.NewLeases.ReservePercent
	return func(used func() int, size int) error {
		// The token bucket first: it is cheap, and refuses most of a flood before the scan.
		if ifs.newLeaseBudget != nil && !ifs.newLeaseBudget.take(now) {
			return errNewLeaseRate
		}
		if pct > 0 && used() >= size-(size*pct+99)/100 {
			return errPoolReserve
		}
		return nil
	}
}

// refused reports an unknown MAC refused a new address: a metric every time, a log line at
// most every 10 s (a flood must not flood the log too).
func (ifs *ifaceServer) refused(p *pool, mac net.HardwareAddr, why error) {
	reason := "new_lease_rate"
	if errors.Is(why, errPoolReserve) {
		reason = "pool_reserve"
	}
	ifs.drop(reason)
	now := ifs.s.now()
	ifs.refuseMu.Lock()
	ifs.refuseN++
	if !ifs.refuseLast.IsZero() && now.Sub(ifs.refuseLast) < 10*time.Second {
		ifs.refuseMu.Unlock()
		return
	}
	n := ifs.refuseN
	ifs.refuseN, ifs.refuseLast = 0, now
	ifs.refuseMu.Unlock()
	st := p.status(now)
	ifs.log.Warn("DHCP: no new address for an unknown machine (enrol it, or find who sends DISCOVERs from many MACs)",
		"reason", why.Error(), "mac", mac.String(), "pool", st.Range, "used", st.Bound+st.Offered+st.Quarantined, "size", st.Size,
		"refused_since_last_report", n)
}

// nearFullAt is the pool usage from which Slate warns (log and UI).
const nearFullAt = 0.9

// watchUsage logs a pool crossing the warning threshold, once per crossing each way.
func (ifs *ifaceServer) watchUsage(p *pool, now time.Time) {
	st := p.status(now)
	full := st.Utilisation >= nearFullAt
	if p.nearFull.Swap(full) == full {
		return
	}
	if full {
		ifs.log.Warn("DHCP pool nearly exhausted: new machines may soon get no address (widen the range, shorten lease_time, or find who is flooding)",
			"pool", st.Range, "used", st.Bound+st.Offered+st.Quarantined, "size", st.Size, "utilisation", st.Utilisation)
	} else {
		ifs.log.Info("DHCP pool usage back below the warning level", "pool", st.Range, "utilisation", st.Utilisation)
	}
}

func addrU(ip net.IP) (uint32, bool) {
	u := ipU(ip)
	return u, u != 0
}

func ipU(ip net.IP) uint32 {
	v4 := ip.To4()
	if v4 == nil {
		return 0
	}
	return uint32(v4[0])<<24 | uint32(v4[1])<<16 | uint32(v4[2])<<8 | uint32(v4[3])
}

// relayInfo renders option 82 for the lease row: "<sub-option>=<hex>;…".
func relayInfo(m *dhcpv4.DHCPv4) string {
	ri := m.RelayAgentInfo()
	if ri == nil {
		return ""
	}
	var codes []int
	for c := range ri.Options {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d=%x", c, ri.Options[uint8(c)]))
	}
	return strings.Join(parts, ";")
}

func sanitizeHostname(h string) string {
	var b strings.Builder
	for _, r := range h {
		if b.Len() >= 63 {
			break
		}
		if r == '-' || r == '.' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// rateLimiter counts packets per MAC in fixed windows. Its table has a fixed number of slots
// (a MAC hashing to a taken slot evicts the older one), so a flood of random MACs cannot grow
// memory.
type rateLimiter struct {
	limit  int
	window time.Duration
	seed   maphash.Seed
	shards [16]struct {
		mu    sync.Mutex
		slots [512]rlSlot
	}
}

type rlSlot struct {
	mac   [16]byte
	n     uint8
	count int
	start time.Time
}

func newRateLimiter(c RateLimit) *rateLimiter {
	return &rateLimiter{limit: c.PerMAC, window: c.Window, seed: maphash.MakeSeed()}
}

func (r *rateLimiter) allow(mac net.HardwareAddr, now time.Time) bool {
	h := maphash.Bytes(r.seed, mac)
	sh := &r.shards[h%16]
	var k [16]byte
	n := copy(k[:], mac)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := &sh.slots[(h/16)%512]
	if s.mac != k || s.n != uint8(n) || now.Sub(s.start) >= r.window {
		*s = rlSlot{mac: k, n: uint8(n), count: 1, start: now}
		return true
	}
	s.count++
	return s.count <= r.limit
}

// tokenBucket bounds a rate (discoveries recorded per second) with a burst.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst}
}

func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
