package dhcp

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type leaseState uint8

const (
	stOffered leaseState = iota + 1
	stBound
	stReleased
	stDeclined
)

// lease is the in-memory state of one address. Memory is bounded by the pool size (plus the
// reservations of known machines): every lease holds an address.
type lease struct {
	mac      string // raw hardware address bytes; "" for a quarantined address
	ip       uint32
	state    leaseState
	expires  time.Time
	hostname string
	relay    string
	reserved bool // the machine's fixed address: never given to another MAC
}

// pool allocates addresses of one range. One mutex: allocation is microseconds and the
// durable write happens later, in the group commit.
type pool struct {
	cfg   *poolConfig
	mu    sync.Mutex
	byIP  map[uint32]*lease
	byMAC map[string]*lease
	next  uint32 // lowest address never handed out (fresh addresses first, reuse after)
	// noExpiredBefore caches "no reusable lease until then", so an exhausted pool does not
	// scan every lease for every DISCOVER of a flood.
	noExpiredBefore time.Time
	// nearFull remembers that the pool crossed the warning threshold, so the crossing is
	// logged once, not once per lease.
	nearFull atomic.Bool
	// claims are the reserved addresses another client held when their machine asked, by
	// address: the holder keeps its address until it next renews (then it is NAKed and moves),
	// and the machine is served a pool address meanwhile — never a NAK loop.
	claims map[uint32]claim
}

// claim is a known machine waiting for its reserved address.
type claim struct {
	mac   string
	since time.Time
}

// errReservedForOther refuses a holder's renewal of an address reserved for another machine.
var errReservedForOther = errors.New("address is reserved for another machine")

var errExhausted = errors.New("pool exhausted")

// gate decides whether a client that holds no address in the pool may take a new one: nil
// admits every client. used counts the addresses in use (a scan of the pool: call it only
// when needed); size is the pool's size. Called with the pool locked, so the check and the
// allocation are one step.
type gate func(used func() int, size int) error

// used counts the addresses held (bound, offered, quarantined, or reserved). Caller holds p.mu.
func (p *pool) used(now time.Time) int {
	n := 0
	for _, l := range p.byIP {
		if p.cfg.inRange(l.ip) && !l.free(now) {
			n++
		}
	}
	return n
}

func (p *pool) size() int { return int(p.cfg.last - p.cfg.first + 1) }

// admit runs g for a new address. Caller holds p.mu.
func (p *pool) admit(g gate, now time.Time) error {
	if g == nil {
		return nil
	}
	return g(func() int { return p.used(now) }, p.size())
}

func newPool(cfg *poolConfig) *pool {
	return &pool{cfg: cfg, byIP: map[uint32]*lease{}, byMAC: map[string]*lease{}, next: cfg.first, claims: map[uint32]claim{}}
}

func (l *lease) free(now time.Time) bool {
	return l == nil || ((l.state == stReleased || !now.Before(l.expires)) && !l.reserved)
}

// take gives ip to mac, detaching it from a previous holder. Caller holds p.mu.
func (p *pool) take(mac string, ip uint32) *lease {
	if old := p.byIP[ip]; old != nil && old.mac != mac {
		if p.byMAC[old.mac] == old {
			delete(p.byMAC, old.mac)
		}
	}
	if old := p.byMAC[mac]; old != nil && old.ip != ip {
		// The client moves to another address: its old one becomes free at once.
		delete(p.byIP, old.ip)
	}
	l := &lease{mac: mac, ip: ip}
	p.byIP[ip] = l
	p.byMAC[mac] = l
	return l
}

// offer picks an address for mac: its current lease, its reservation, the address it asks
// for, a never-used one, then the lease that expired longest ago. fresh says the address is
// new to this client (what ping_check probes).
func (p *pool) offer(mac string, reserved uint32, requested uint32, now time.Time, hold time.Duration, g gate) (l *lease, fresh bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if reserved != 0 {
		cur := p.byIP[reserved]
		if cur == nil || cur.mac == mac || cur.free(now) {
			l := cur
			// Also when the address is kept for mac but mac still holds a pool lease (after a
			// hand-over): take moves it, freeing the pool address.
			if l == nil || l.mac != mac || p.byMAC[mac] != l {
				l = p.take(mac, reserved)
			}
			delete(p.claims, reserved)
			l.reserved = true
			if l.state != stBound || !now.Before(l.expires) {
				l.state, l.expires = stOffered, now.Add(hold)
			}
			return l, false, nil
		}
		// Held by another client inside its lease: serve a pool address and claim the
		// reserved one for the holder's next renewal.
		p.claimLocked(reserved, mac, now)
	}
	if l := p.byMAC[mac]; l != nil && l.state != stDeclined {
		if c, ok := p.claims[l.ip]; ok && c.mac != mac {
			// mac holds an address reserved for another machine: it moves now.
			p.handOverLocked(l.ip, now)
		} else {
			if l.state != stBound || !now.Before(l.expires) {
				l.state, l.expires = stOffered, now.Add(hold)
			}
			return l, false, nil
		}
	}
	if err := p.admit(g, now); err != nil {
		return nil, false, err
	}
	pick := uint32(0)
	if requested != 0 && p.cfg.inRange(requested) && p.byIP[requested].free(now) {
		pick = requested
	}
	for pick == 0 && p.next != 0 && p.next <= p.cfg.last {
		ip := p.next
		p.next++
		if p.next == 0 { // wrapped at 255.255.255.255
			p.next = p.cfg.last + 1
		}
		if p.byIP[ip] == nil {
			pick = ip
		}
	}
	if pick == 0 && !now.Before(p.noExpiredBefore) {
		var oldest *lease
		soonest := time.Time{}
		for _, l := range p.byIP {
			if !p.cfg.inRange(l.ip) || l.reserved {
				continue
			}
			if l.free(now) {
				if oldest == nil || l.expires.Before(oldest.expires) {
					oldest = l
				}
			} else if soonest.IsZero() || l.expires.Before(soonest) {
				soonest = l.expires
			}
		}
		if oldest != nil {
			pick = oldest.ip
		} else {
			p.noExpiredBefore = soonest
		}
	}
	if pick == 0 {
		return nil, false, errExhausted
	}
	l = p.take(mac, pick)
	l.state, l.expires = stOffered, now.Add(hold)
	return l, true, nil
}

// bind turns mac's offer (or lease) on ip into a bound lease; ok is false if ip is not mac's
// to have. A client asking for a free address we never offered it (init-reboot after our
// database was lost) gets it.
//
// A client taking an address it was not offered passes g like a new offer (a REQUEST
// straight away must not get round the limits on DISCOVER); its refusal is returned as err.
func (p *pool) bind(mac string, ip uint32, now time.Time, leaseTime time.Duration, hostname, relay string, g gate) (lease, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.byIP[ip]
	if l == nil || l.mac != mac {
		if !p.cfg.inRange(ip) || !l.free(now) {
			return lease{}, false, nil
		}
		if err := p.admit(g, now); err != nil {
			return lease{}, false, err
		}
		l = p.take(mac, ip)
	}
	if l.state == stDeclined {
		return lease{}, false, nil
	}
	if c, ok := p.claims[ip]; ok && c.mac != mac {
		// The holder's renewal of another machine's reserved address: refused (NAK), and the
		// address is kept for that machine from now on.
		p.handOverLocked(ip, now)
		return lease{}, false, errReservedForOther
	}
	l.state, l.expires, l.hostname, l.relay = stBound, now.Add(leaseTime), hostname, relay
	p.noExpiredBefore = time.Time{}
	return *l, true, nil
}

// claimLocked records that mac's reserved address is held by another client. Caller holds p.mu.
func (p *pool) claimLocked(reserved uint32, mac string, now time.Time) {
	if c, ok := p.claims[reserved]; !ok || c.mac != mac {
		p.claims[reserved] = claim{mac: mac, since: now}
	}
}

// handOverLocked takes a claimed address from its holder and keeps it for the claiming
// machine: a reserved placeholder nobody else can be offered. The claimant keeps its pool
// lease until it renews (then it is NAKed once and moves to its reserved address). Caller
// holds p.mu.
func (p *pool) handOverLocked(ip uint32, now time.Time) {
	c, ok := p.claims[ip]
	if !ok {
		return
	}
	if old := p.byIP[ip]; old != nil && p.byMAC[old.mac] == old {
		delete(p.byMAC, old.mac)
	}
	p.byIP[ip] = &lease{mac: c.mac, ip: ip, state: stOffered, expires: now, reserved: true}
	delete(p.claims, ip)
}

// reservedTaken says whether mac's reserved address is held by another client now, and if so
// records the claim. A reserved machine asking to keep a pool address is ACKed then (NAKing it
// would loop: its DISCOVER would be offered a pool address again); otherwise it is NAKed once
// so it moves to its reserved address.
func (p *pool) reservedTaken(mac string, reserved uint32, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.byIP[reserved]
	if cur == nil || cur.mac == mac || cur.free(now) {
		return false
	}
	p.claimLocked(reserved, mac, now)
	return true
}

// ReservationConflict is a known machine whose reserved address another client holds.
type ReservationConflict struct {
	Interface      string    `json:"interface"`
	ReservedIP     string    `json:"reserved_ip"`
	MAC            string    `json:"mac"`        // the machine the address is reserved for
	HolderMAC      string    `json:"holder_mac"` // the client that holds it
	HolderHostname string    `json:"holder_hostname,omitempty"`
	Since          time.Time `json:"since"`
}

func (p *pool) conflicts(iface string) []ReservationConflict {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ReservationConflict
	for ip, c := range p.claims {
		rc := ReservationConflict{Interface: iface, ReservedIP: u2addr(ip).String(), MAC: net.HardwareAddr(c.mac).String(), Since: c.since}
		if l := p.byIP[ip]; l != nil {
			rc.HolderMAC, rc.HolderHostname = net.HardwareAddr(l.mac).String(), l.hostname
		}
		out = append(out, rc)
	}
	slices.SortFunc(out, func(a, b ReservationConflict) int { return strings.Compare(a.ReservedIP, b.ReservedIP) })
	return out
}

// holds says whether ip is mac's already (offered, bound or released to it).
func (p *pool) holds(mac string, ip uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.byIP[ip]
	return l != nil && l.mac == mac
}

// release frees mac's lease on ip, keeping the link so the client gets the same address back.
func (p *pool) release(mac string, ip uint32, now time.Time) (lease, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.byIP[ip]
	if l == nil || l.mac != mac || l.state == stDeclined {
		return lease{}, false
	}
	l.state, l.expires = stReleased, now
	p.noExpiredBefore = time.Time{}
	return *l, true
}

// forget drops an offer the client turned down (it chose another server).
func (p *pool) forget(mac string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.byMAC[mac]; l != nil && l.state == stOffered {
		delete(p.byMAC, mac)
		if p.byIP[l.ip] == l {
			delete(p.byIP, l.ip)
		}
		p.noExpiredBefore = time.Time{}
	}
}

// decline quarantines ip, which mac found in use by someone else.
func (p *pool) decline(mac string, ip uint32, now time.Time, quarantine time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.byIP[ip]
	if l == nil || l.mac != mac {
		return false
	}
	if p.byMAC[mac] == l {
		delete(p.byMAC, mac)
	}
	p.byIP[ip] = &lease{ip: ip, state: stDeclined, expires: now.Add(quarantine)}
	return true
}

// restore loads a stored lease at start-up.
func (p *pool) restore(mac string, ip uint32, st leaseState, expires time.Time, hostname, relay string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := &lease{mac: mac, ip: ip, state: st, expires: expires, hostname: hostname, relay: relay}
	if old := p.byIP[ip]; old != nil && p.byMAC[old.mac] == old {
		delete(p.byMAC, old.mac)
	}
	p.byIP[ip] = l
	if mac != "" {
		if old := p.byMAC[mac]; old != nil && p.byIP[old.ip] == old {
			delete(p.byIP, old.ip)
		}
		p.byMAC[mac] = l
	}
}

// PoolStatus is one pool's utilisation, for the API and metrics.
type PoolStatus struct {
	Label       string  `json:"label"`
	Range       string  `json:"range"`
	Size        int     `json:"size"`
	Bound       int     `json:"bound"`
	Offered     int     `json:"offered"`
	Quarantined int     `json:"quarantined"`
	Utilisation float64 `json:"utilisation"` // (bound+offered+quarantined)/size
	// Used is bound+offered+quarantined, Free the rest; Percent is Utilisation×100.
	Used    int     `json:"used"`
	Free    int     `json:"free"`
	Percent float64 `json:"percent"`
	// Fixed counts the machines' fixed (ip= label) addresses inside the range; Reserve is how
	// many addresses are kept for known machines (new_leases.reserve_percent).
	Fixed   int  `json:"fixed"`
	Reserve int  `json:"reserve"`
	Warning bool `json:"warning"` // at or above the warning level (90 %)
}

func (p *pool) status(now time.Time) PoolStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PoolStatus{Label: p.cfg.label, Range: u2addr(p.cfg.first).String() + "-" + u2addr(p.cfg.last).String(),
		Size: int(p.cfg.last - p.cfg.first + 1)}
	for _, l := range p.byIP {
		if !p.cfg.inRange(l.ip) {
			continue
		}
		if l.reserved {
			s.Fixed++
		}
		if !now.Before(l.expires) {
			continue
		}
		switch l.state {
		case stBound:
			s.Bound++
		case stOffered:
			s.Offered++
		case stDeclined:
			s.Quarantined++
		}
	}
	s.Used = s.Bound + s.Offered + s.Quarantined
	s.Free = s.Size - s.Used
	s.Utilisation = float64(s.Used) / float64(s.Size)
	s.Percent = 100 * s.Utilisation
	s.Warning = s.Utilisation >= nearFullAt
	return s
}
