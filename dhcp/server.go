package dhcp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// PXE boot server discovery port (PXE 2.1): proxyDHCP REQUESTs arrive here.
const pxePort = 4011

// Options are the server's collaborators. Store and Directory are required for an
// authoritative interface; Directory for a proxy one.
type Options struct {
	Store      LeaseStore
	Directory  Directory
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are kept but not exported
	Now        func() time.Time
	Rand       io.Reader // for the rogue probe's MAC and xid
	// Workers handle parsed packets (default 4×GOMAXPROCS); QueueLen packets wait for them
	// (default 2048): past that, packets are dropped and counted, never piled up.
	Workers  int
	QueueLen int
	// CommitLinger makes the lease writer, when under load (its previous batch held more than
	// one lease), wait this long for more leases before committing (default 2ms; negative:
	// never). At low load a lease is committed at once. MaxBatch caps a batch (default 1024).
	CommitLinger time.Duration
	MaxBatch     int
	// ListenPacket opens a UDP socket bound to the interface (SO_BINDTODEVICE) on port; tests
	// swap it to open sockets inside their network namespace.
	ListenPacket func(iface string, port int) (net.PacketConn, error)
	// ListenICMP opens the raw ICMP socket for ping_check (default ListenICMP).
	ListenICMP func(iface string) (net.PacketConn, error)
}

// Server is Slate's DHCP server over every configured interface.
type Server struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	m      *metrics
	ifaces []*ifaceServer
	queue  chan job
	commit *committer
	bufs   sync.Pool
	run    atomic.Bool
	ready  chan struct{}
}

// Ready is closed once every interface's sockets are open (after the rogue probe).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// New checks the configuration and builds the server; Run starts it.
func New(cfg Config, o Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dhcp config: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Workers <= 0 {
		o.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 2048
	}
	if o.CommitLinger == 0 {
		o.CommitLinger = 2 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.ListenPacket == nil {
		o.ListenPacket = ListenInterface
	}
	if o.ListenICMP == nil {
		o.ListenICMP = ListenICMP
	}
	s := &Server{opts: o, log: o.Logger.With("component", "dhcp"), now: o.Now, ready: make(chan struct{})}
	s.bufs.New = func() any { b := make([]byte, 2048); return &b }
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("dhcp metrics: %w", err)
	}
	s.m = m
	for _, ic := range cfg.Interfaces {
		c, _ := ic.compile() // validated above
		if c.Mode == ModeOff {
			continue
		}
		if o.Directory == nil {
			return nil, fmt.Errorf("dhcp: interface %s: no machine directory given", c.Name)
		}
		if c.Mode == ModeAuthoritative && o.Store == nil {
			return nil, fmt.Errorf("dhcp: interface %s is authoritative but no lease store was given", c.Name)
		}
		ifs := &ifaceServer{s: s, cfg: c, log: s.log.With("iface", c.Name), limiter: newRateLimiter(c.RateLimit)}
		ifs.discoveryBudget = newTokenBucket(50, 50)
		if nl := c.NewLeases; nl.PerMinute > 0 {
			ifs.newLeaseBudget = newTokenBucket(nl.PerMinute/60, float64(nl.Burst))
		}
		for _, pc := range c.pools() {
			p := newPool(pc)
			ifs.pools = append(ifs.pools, p)
			if err := m.watchPool(reg, c.Name, p, s.now); err != nil {
				return nil, fmt.Errorf("dhcp metrics: %w", err)
			}
		}
		s.ifaces = append(s.ifaces, ifs)
	}
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "slate_dhcp_queue_depth", Help: "Packets waiting for a DHCP worker.",
	}, func() float64 { return float64(len(s.queue)) })); err != nil {
		return nil, fmt.Errorf("dhcp metrics: %w", err)
	}
	s.queue = make(chan job, o.QueueLen)
	s.commit = newCommitter(o.Store, o.CommitLinger, o.MaxBatch, s.m, s.log)
	return s, nil
}

// ListenInterface opens the UDP socket a DHCP server needs on one interface: bound to the
// device (SO_BINDTODEVICE), broadcast allowed, and a large receive buffer so a burst of
// clients is queued by the kernel rather than dropped before Slate sees it.
func ListenInterface(iface string, port int) (net.PacketConn, error) {
	c, err := server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: port})
	if err != nil {
		return nil, err
	}
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			// FORCE needs CAP_NET_ADMIN (Slate has it to bind port 67); else the sysctl cap applies.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<20) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
			}
		})
	}
	return c, nil
}

type job struct {
	buf  *[]byte
	n    int
	peer net.Addr
	ifs  *ifaceServer
	conn net.PacketConn
	port int
}

// Run loads the stored leases, probes for rogue DHCP servers, then serves until ctx ends.
// It returns an error only when an interface cannot be served at all.
func (s *Server) Run(ctx context.Context) error {
	if !s.run.CompareAndSwap(false, true) {
		return errors.New("dhcp: Run called twice")
	}
	if len(s.ifaces) == 0 {
		s.log.Info("no interface configured for DHCP: not answering anywhere")
		close(s.ready)
		<-ctx.Done()
		return nil
	}
	for _, ifs := range s.ifaces {
		if err := ifs.prepare(ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	// The probe runs before the listeners, so Slate's own offers cannot be mistaken for a rogue.
	for _, ifs := range s.ifaces {
		if ifs.cfg.Mode == ModeAuthoritative && ifs.cfg.RogueProbe > 0 {
			wg.Go(func() { ifs.probeRogues(ctx) })
		}
	}
	wg.Wait()
	var conns []net.PacketConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	type listener struct {
		ifs  *ifaceServer
		conn net.PacketConn
		port int
	}
	var ls []listener
	for _, ifs := range s.ifaces {
		ports := []int{dhcpv4.ServerPort}
		if ifs.cfg.Mode == ModeProxy {
			ports = append(ports, pxePort)
		}
		for _, port := range ports {
			c, err := s.opts.ListenPacket(ifs.cfg.Name, port)
			if err != nil {
				closeAll()
				return fmt.Errorf("dhcp: listen on %s port %d: %w (does the interface exist, and is another DHCP server bound to it?)", ifs.cfg.Name, port, err)
			}
			conns = append(conns, c)
			ls = append(ls, listener{ifs, c, port})
			if port == dhcpv4.ServerPort {
				ifs.conn67 = c
			}
		}
		if ifs.cfg.Mode == ModeAuthoritative && ifs.cfg.PingCheck {
			c, err := s.opts.ListenICMP(ifs.cfg.Name)
			if err != nil {
				closeAll()
				return fmt.Errorf("dhcp: ping_check on %s: open ICMP socket: %w (needs CAP_NET_RAW; or set ping_check: false)", ifs.cfg.Name, err)
			}
			conns = append(conns, c)
			ifs.pinger = newPinger(c, os.Getpid(), ifs.cfg.PingTimeout)
		}
		ifs.log.Info("DHCP serving", "mode", ifs.cfg.Mode, "server", ifs.server, "pools", len(ifs.pools), "ping_check", ifs.cfg.PingCheck)
	}
	var workers sync.WaitGroup
	for range s.opts.Workers {
		workers.Go(func() {
			for j := range s.queue {
				s.process(ctx, j)
			}
		})
	}
	// The writer outlives the workers, so every lease they hand it is committed at shutdown.
	commitCtx, commitStop := context.WithCancel(context.WithoutCancel(ctx))
	defer commitStop()
	commitDone := make(chan struct{})
	go func() { s.commit.run(commitCtx); close(commitDone) }()
	var readers sync.WaitGroup
	for _, l := range ls {
		readers.Go(func() { s.read(ctx, l.ifs, l.conn, l.port) })
	}
	close(s.ready)
	<-ctx.Done()
	// Wake the readers without closing the sockets: the replies of leases still being
	// committed go out on them.
	for _, c := range conns {
		c.SetReadDeadline(time.Now())
	}
	readers.Wait()
	close(s.queue)
	workers.Wait()
	commitStop()
	<-commitDone
	closeAll()
	return nil
}

func (s *Server) read(ctx context.Context, ifs *ifaceServer, conn net.PacketConn, port int) {
	for {
		bp := s.bufs.Get().(*[]byte)
		n, peer, err := conn.ReadFrom(*bp)
		if err != nil {
			s.bufs.Put(bp)
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			ifs.log.Warn("DHCP read failed", "port", port, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case s.queue <- job{buf: bp, n: n, peer: peer, ifs: ifs, conn: conn, port: port}:
		default:
			// Overload: shed here, before any work, rather than queue without bound.
			s.bufs.Put(bp)
			ifs.drop("queue_full")
		}
	}
}

func (s *Server) process(ctx context.Context, j job) {
	res := j.ifs.handleRaw(ctx, (*j.buf)[:j.n], j.port, j.peer)
	s.bufs.Put(j.buf)
	if res.reply == nil && len(res.changes) == 0 {
		return
	}
	send := func() {}
	if res.reply != nil {
		conn := j.ifs.conn67
		if j.port == pxePort {
			conn = j.conn
		}
		b := res.reply.ToBytes()
		mt := res.reply.MessageType()
		ifs := j.ifs
		send = func() {
			if _, err := conn.WriteTo(b, res.dst); err != nil {
				ifs.log.Warn("DHCP send failed", "mac", res.reply.ClientHWAddr.String(), "to", res.dst.String(), "err", err)
				ifs.drop("send_failed")
				return
			}
			ifs.s.m.replies.WithLabelValues(ifs.cfg.Name, mt.String()).Inc()
			if mt == dhcpv4.MessageTypeOffer || mt == dhcpv4.MessageTypeAck {
				ifs.logReply(res.reply, mt)
			}
		}
	}
	if len(res.changes) == 0 {
		send()
		return
	}
	// The ACK leaves only after its lease is durable.
	if !s.commit.submit(commitJob{changes: res.changes, send: send}) {
		j.ifs.drop("commit_queue_full")
	}
}

// RogueServer is another DHCP server answering on an interface Slate serves authoritatively.
type RogueServer struct {
	Interface string    `json:"interface"`
	ServerID  string    `json:"server_id"`
	From      string    `json:"from"`
	OfferedIP string    `json:"offered_ip,omitempty"`
	SeenAt    time.Time `json:"seen_at"`
}

// InterfaceStatus is one interface's state for the API and UI.
type InterfaceStatus struct {
	Name         string        `json:"name"`
	Mode         Mode          `json:"mode"`
	Server       string        `json:"server"`
	Pools        []PoolStatus  `json:"pools"`
	RogueServers []RogueServer `json:"rogue_servers"`
	ProbeDone    bool          `json:"probe_done"`
	// ReservationConflicts are machines whose reserved address another client holds.
	ReservationConflicts []ReservationConflict `json:"reservation_conflicts"`
}

// Status reports pool utilisation and rogue servers of every served interface.
func (s *Server) Status() []InterfaceStatus {
	now := s.now()
	var out []InterfaceStatus
	for _, ifs := range s.ifaces {
		st := InterfaceStatus{Name: ifs.cfg.Name, Mode: ifs.cfg.Mode}
		st.Pools = []PoolStatus{}
		st.RogueServers = []RogueServer{}
		st.ReservationConflicts = []ReservationConflict{}
		for _, p := range ifs.pools {
			ps := p.status(now)
			if pct := ifs.cfg.NewLeases.ReservePercent; pct > 0 {
				ps.Reserve = (ps.Size*pct + 99) / 100
			}
			st.Pools = append(st.Pools, ps)
			st.ReservationConflicts = append(st.ReservationConflicts, p.conflicts(ifs.cfg.Name)...)
		}
		ifs.rogueMu.Lock()
		if ifs.server.IsValid() {
			st.Server = ifs.server.String()
		}
		st.RogueServers = append(st.RogueServers, ifs.rogues...)
		st.ProbeDone = ifs.probeDone
		ifs.rogueMu.Unlock()
		out = append(out, st)
	}
	return out
}

// Warnings lists the pools at or above the warning level (90 % in use), for the UI and API.
// They are computed when asked, so a warning goes once the pool drains.
func (s *Server) Warnings() []string {
	var out []string
	for _, st := range s.Status() {
		for _, p := range st.Pools {
			if p.Utilisation >= nearFullAt {
				out = append(out, fmt.Sprintf("DHCP pool %s on %s is %.0f%% used (%d of %d addresses): new machines may get no address — widen the range, shorten lease_time, or find who is flooding.",
					p.Range, st.Name, 100*p.Utilisation, p.Bound+p.Offered+p.Quarantined, p.Size))
			}
		}
		for _, c := range st.ReservationConflicts {
			holder := c.HolderMAC
			if c.HolderHostname != "" {
				holder += " (" + c.HolderHostname + ")"
			}
			out = append(out, fmt.Sprintf("Reserved address %s of machine %s on %s is taken by another client, %s: the machine has a pool address until %s next renews, then gets its own.",
				c.ReservedIP, c.MAC, st.Name, holder, holder))
		}
	}
	return out
}

// logReply writes a debug line for an OFFER or ACK sent (checked first: a storm must not pay
// for formatting lines nobody reads).
func (ifs *ifaceServer) logReply(r *dhcpv4.DHCPv4, mt dhcpv4.MessageType) {
	if !ifs.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	ifs.log.Debug("DHCP "+mt.String()+" sent", "mac", r.ClientHWAddr.String(), "ip", r.YourIPAddr.String(),
		"lease_time", r.IPAddressLeaseTime(0), "xid", r.TransactionID.String())
}

// RogueServers lists every other DHCP server the start-up probes saw (the API/UI warning).
func (s *Server) RogueServers() []RogueServer {
	var out []RogueServer
	for _, st := range s.Status() {
		out = append(out, st.RogueServers...)
	}
	return out
}

// prepare resolves the server address and loads the interface's stored leases.
func (ifs *ifaceServer) prepare(ctx context.Context) error {
	a := ifs.cfg.server
	if !a.IsValid() {
		var err error
		if a, err = interfaceIPv4(ifs.cfg.Name); err != nil {
			return fmt.Errorf("dhcp: interface %s: %w (set server_address)", ifs.cfg.Name, err)
		}
	}
	b := a.As4()
	ifs.rogueMu.Lock() // Status may already be reading
	ifs.server, ifs.serverIP = a, net.IP(b[:])
	ifs.rogueMu.Unlock()
	if ifs.cfg.Mode != ModeAuthoritative {
		return nil
	}
	leases, err := ifs.s.opts.Store.DHCPLeases(ctx, ifs.cfg.Name)
	if err != nil {
		return fmt.Errorf("dhcp: interface %s: load leases: %w", ifs.cfg.Name, err)
	}
	n := 0
	for _, l := range leases {
		if !l.IP.Is4() {
			continue
		}
		ip := ip4u(l.IP)
		p := ifs.poolFor(ip)
		if p == nil {
			ifs.log.Warn("stored lease outside every pool: ignored", "mac", l.MAC, "ip", l.IP)
			continue
		}
		st := stBound
		mac := ""
		switch l.State {
		case "released":
			st = stReleased
		case "declined":
			st = stDeclined
		}
		if st != stDeclined {
			hw, err := net.ParseMAC(l.MAC)
			if err != nil {
				ifs.log.Warn("stored lease with a bad MAC: ignored", "mac", l.MAC)
				continue
			}
			mac = string(hw)
		}
		p.restore(mac, ip, st, l.ExpiresAt, l.Hostname, l.RelayInfo)
		n++
	}
	ifs.log.Info("DHCP leases loaded", "count", n)
	return nil
}

func interfaceIPv4(name string) (netip.Addr, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if v4 := n.IP.To4(); v4 != nil {
				return netip.AddrFrom4([4]byte(v4)), nil
			}
		}
	}
	return netip.Addr{}, errors.New("no IPv4 address")
}
