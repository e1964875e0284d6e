// Package dhcp is Slate's DHCPv4 server: authoritative (address pools, reservations from the
// inventory, leases durably stored by group commit) or proxyDHCP (boot options only, beside the
// plant's own server), with the PXE / iPXE / UEFI HTTP boot decision. Nothing answers on an
// interface the configuration does not name.
package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Mode is what Slate does on one interface.
type Mode string

const (
	ModeAuthoritative Mode = "authoritative"
	ModeProxy         Mode = "proxy"
	ModeOff           Mode = "off"
)

// Config is the DHCP part of Slate's configuration. An empty Config answers nothing.
type Config struct {
	Interfaces []InterfaceConfig `yaml:"interfaces"`
}

// Pool is one address range and what clients leasing from it are told.
type Pool struct {
	// Range is "first-last", both inclusive, e.g. "10.99.0.100-10.99.0.199".
	Range     string        `yaml:"range"`
	Netmask   string        `yaml:"netmask"`
	Gateway   string        `yaml:"gateway"`
	DNS       []string      `yaml:"dns"`
	Domain    string        `yaml:"domain"`
	LeaseTime time.Duration `yaml:"lease_time"`
}

// Boot says where the boot files are. TFTP files come from the interface address (next-server,
// option 66); HTTP URLs are built on URL.
type Boot struct {
	// URL is the public base URL of Slate's HTTP boot service, e.g. http://10.99.0.1:8080.
	URL string `yaml:"boot_url"`
	// BIOSFile is the TFTP file for BIOS PXE (default undionly.kpxe).
	BIOSFile string `yaml:"bios_file"`
	// UEFIFile is the TFTP file for x64 UEFI PXE: ipxe.efi (default) or snponly.efi.
	UEFIFile string `yaml:"uefi_file"`
	// ARM64File is the iPXE binary for ARM64 UEFI; empty means none is installed, and ARM64
	// clients get no offer (with a log line saying so).
	ARM64File string `yaml:"arm64_file"`
	// ScriptPath is the path (under URL) of the script an iPXE client is sent to
	// (default /boot/auto.ipxe); it chains to the machine's own script.
	ScriptPath string `yaml:"script_path"`
	// BinaryPath is the path (under URL) where UEFI HTTP boot finds the iPXE binaries
	// (default /boot/ipxe).
	BinaryPath string `yaml:"binary_path"`
}

// RateLimit bounds how many packets one MAC may send per window before being ignored.
type RateLimit struct {
	PerMAC int           `yaml:"per_mac"` // default 20
	Window time.Duration `yaml:"window"`  // default 10s
}

// NewLeases guards a pool against starvation by clients Slate does not know (a flood of
// invented MACs): they get new addresses at a bounded rate, and never the pool's reserve, which
// is kept for machines in the inventory. Known machines are limited by neither.
type NewLeases struct {
	// PerMinute is how many new addresses unknown MACs get per minute on the interface
	// (default 10; -1: no limit). A client keeping or renewing its address takes none.
	PerMinute float64 `yaml:"per_minute"`
	// Burst is how many they may get at once before the rate applies (default 20).
	Burst int `yaml:"burst"`
	// ReservePercent of every pool is given to known machines only (default 20; -1: none).
	ReservePercent int `yaml:"reserve_percent"`
}

// InterfaceConfig is Slate's DHCP service on one network interface.
type InterfaceConfig struct {
	Name string `yaml:"name"`
	Mode Mode   `yaml:"mode"`
	// ServerAddress is this interface's IPv4 address: server identifier, next-server and TFTP
	// server. Empty: the interface's first IPv4 address at start-up.
	ServerAddress string `yaml:"server_address"`
	// Pool serves clients on the link (authoritative mode only).
	Pool *Pool `yaml:"pool"`
	// RelayPools serve requests relayed (giaddr set) from other subnets: the pool whose subnet
	// holds giaddr answers.
	RelayPools []Pool `yaml:"relay_pools"`
	// Discovery answers unknown MACs and records those that PXE boot as discovered machines.
	// Off, only machines already in the inventory are answered.
	Discovery bool `yaml:"discovery"`
	// Allow, when not empty, is the only MAC prefixes answered; Deny prefixes are never answered.
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
	// PingCheck pings an address before offering it to a new client, and quarantines it when
	// something answers. Off by default: every fresh offer waits PingTimeout (default 500ms).
	PingCheck   bool          `yaml:"ping_check"`
	PingTimeout time.Duration `yaml:"ping_timeout"`
	// DeclineQuarantine is how long a DECLINEd address is kept out of the pool (default 10m).
	DeclineQuarantine time.Duration `yaml:"decline_quarantine"`
	// OfferHold is how long an offered address waits for the client's REQUEST (default 30s).
	OfferHold time.Duration `yaml:"offer_hold"`
	RateLimit RateLimit     `yaml:"rate_limit"`
	NewLeases NewLeases     `yaml:"new_leases"`
	Boot      Boot          `yaml:"boot"`
	// RogueProbe is how long the start-up probe listens for other DHCP servers (default 2s;
	// negative disables it).
	RogueProbe time.Duration `yaml:"rogue_probe"`
}

// Validate checks the whole configuration; the error names the field (interfaces[i].field).
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, ic := range c.Interfaces {
		p := fmt.Sprintf("interfaces[%d]", i)
		if ic.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required (the network interface to serve, e.g. eth1)", p))
		} else if seen[ic.Name] {
			errs = append(errs, fmt.Errorf("%s.name: interface %q is configured twice", p, ic.Name))
		}
		seen[ic.Name] = true
		if ic.Name != "" {
			p = fmt.Sprintf("interfaces[%d](%s)", i, ic.Name)
		}
		if _, err := ic.compile(); err != nil {
			errs = append(errs, fmt.Errorf("%s.%w", p, err))
		}
	}
	return errors.Join(errs...)
}

// compiled is an InterfaceConfig checked and parsed, with defaults filled in.
type compiled struct {
	InterfaceConfig
	server     netip.Addr
	pool       *poolConfig
	relayPools []*poolConfig
	allow      []macPrefix
	deny       []macPrefix
}

type poolConfig struct {
	first, last uint32 // host order
	netmask     net.IPMask
	subnet      netip.Prefix
	gateway     netip.Addr
	dns         []net.IP
	domain      string
	leaseTime   time.Duration
	label       string
}

func (ic InterfaceConfig) compile() (*compiled, error) {
	c := &compiled{InterfaceConfig: ic}
	switch ic.Mode {
	case ModeAuthoritative, ModeProxy, ModeOff:
	case "":
		return nil, errors.New("mode: required: authoritative, proxy or off")
	default:
		return nil, fmt.Errorf("mode: %q is not authoritative, proxy or off", ic.Mode)
	}
	if ic.ServerAddress != "" {
		a, err := netip.ParseAddr(ic.ServerAddress)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("server_address: %q is not an IPv4 address", ic.ServerAddress)
		}
		c.server = a
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = 500 * time.Millisecond
	}
	if c.PingTimeout < 0 || c.PingTimeout > 5*time.Second {
		return nil, fmt.Errorf("ping_timeout: %s is outside 0…5s", c.PingTimeout)
	}
	if c.DeclineQuarantine == 0 {
		c.DeclineQuarantine = 10 * time.Minute
	}
	if c.DeclineQuarantine < 0 {
		return nil, errors.New("decline_quarantine: must not be negative")
	}
	if c.OfferHold == 0 {
		c.OfferHold = 30 * time.Second
	}
	if c.OfferHold < 0 {
		return nil, errors.New("offer_hold: must not be negative")
	}
	if c.RateLimit.PerMAC == 0 {
		c.RateLimit.PerMAC = 20
	}
	if c.RateLimit.Window == 0 {
		c.RateLimit.Window = 10 * time.Second
	}
	if c.RateLimit.PerMAC < 0 || c.RateLimit.Window < 0 {
		return nil, errors.New("rate_limit: per_mac and window must not be negative")
	}
	nl := &c.NewLeases
	if nl.PerMinute == 0 {
		nl.PerMinute = 10
	}
	if nl.Burst == 0 {
		nl.Burst = 20
	}
	if nl.ReservePercent == 0 {
		nl.ReservePercent = 20
	}
	if (nl.PerMinute < 0 && nl.PerMinute != -1) || nl.Burst < 0 {
		return nil, fmt.Errorf("new_leases: per_minute %v and burst %d must be positive (per_minute -1: no limit)", nl.PerMinute, nl.Burst)
	}
	if nl.ReservePercent < -1 || nl.ReservePercent > 90 {
		return nil, fmt.Errorf("new_leases.reserve_percent: %d is outside 0…90 (-1: no reserve)", nl.ReservePercent)
	}
	if c.RogueProbe == 0 {
		c.RogueProbe = 2 * time.Second
	}
	for i, s := range ic.Allow {
		mp, err := parseMACPrefix(s)
		if err != nil {
			return nil, fmt.Errorf("allow[%d]: %w", i, err)
		}
		c.allow = append(c.allow, mp)
	}
	for i, s := range ic.Deny {
		mp, err := parseMACPrefix(s)
		if err != nil {
			return nil, fmt.Errorf("deny[%d]: %w", i, err)
		}
		c.deny = append(c.deny, mp)
	}
	b := &c.Boot
	if b.BIOSFile == "" {
		b.BIOSFile = "undionly.kpxe"
	}
	if b.UEFIFile == "" {
		b.UEFIFile = "ipxe.efi"
	}
	if b.ScriptPath == "" {
		b.ScriptPath = "/boot/auto.ipxe"
	}
	if b.BinaryPath == "" {
		b.BinaryPath = "/boot/ipxe"
	}
	if b.URL != "" {
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("boot.boot_url: %q is not an http(s) URL such as http://10.99.0.1:8080", b.URL)
		}
		b.URL = strings.TrimRight(b.URL, "/")
	}
	for name, f := range map[string]string{"bios_file": b.BIOSFile, "uefi_file": b.UEFIFile, "arm64_file": b.ARM64File} {
		if len(f) > 127 || strings.ContainsAny(f, "\x00 ") {
			return nil, fmt.Errorf("boot.%s: %q is not a usable file name (no spaces, at most 127 bytes)", name, f)
		}
	}
	if ic.Mode == ModeOff {
		return c, nil
	}
	if ic.Mode == ModeProxy && (ic.Pool != nil || len(ic.RelayPools) > 0) {
		return nil, errors.New("pool: proxy mode hands out no addresses: remove pool and relay_pools")
	}
	if ic.Mode == ModeAuthoritative {
		if ic.Pool == nil && len(ic.RelayPools) == 0 {
			return nil, errors.New("pool: authoritative mode needs a pool (range, netmask, …)")
		}
		if ic.Pool != nil {
			pc, err := ic.Pool.compile()
			if err != nil {
				return nil, fmt.Errorf("pool.%w", err)
			}
			pc.label = "local"
			c.pool = pc
		}
		for i := range ic.RelayPools {
			pc, err := ic.RelayPools[i].compile()
			if err != nil {
				return nil, fmt.Errorf("relay_pools[%d].%w", i, err)
			}
			pc.label = fmt.Sprintf("relay%d", i)
			c.relayPools = append(c.relayPools, pc)
		}
		all := c.pools()
		for i := range all {
			for j := i + 1; j < len(all); j++ {
				if all[i].first <= all[j].last && all[j].first <= all[i].last {
					return nil, fmt.Errorf("relay_pools: ranges %s and %s overlap", all[i].label, all[j].label)
				}
			}
		}
	}
	if ic.Mode == ModeProxy && b.URL == "" {
		return nil, errors.New("boot.boot_url: proxy mode only sends boot options, so it needs the boot URL")
	}
	return c, nil
}

func (c *compiled) pools() []*poolConfig {
	var out []*poolConfig
	if c.pool != nil {
		out = append(out, c.pool)
	}
	return append(out, c.relayPools...)
}

func (p Pool) compile() (*poolConfig, error) {
	a, b, ok := strings.Cut(p.Range, "-")
	if !ok {
		return nil, fmt.Errorf("range: %q: want first-last, e.g. 10.99.0.100-10.99.0.199", p.Range)
	}
	first, err1 := netip.ParseAddr(strings.TrimSpace(a))
	last, err2 := netip.ParseAddr(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || !first.Is4() || !last.Is4() {
		return nil, fmt.Errorf("range: %q: both ends must be IPv4 addresses", p.Range)
	}
	pc := &poolConfig{first: ip4u(first), last: ip4u(last), domain: p.Domain, leaseTime: p.LeaseTime}
	if pc.first > pc.last {
		return nil, fmt.Errorf("range: %q: first address is after the last", p.Range)
	}
	if pc.last-pc.first >= 1<<20 {
		return nil, fmt.Errorf("range: %q: more than 1,048,576 addresses", p.Range)
	}
	m, err := netip.ParseAddr(p.Netmask)
	if err != nil || !m.Is4() {
		return nil, fmt.Errorf("netmask: %q is not a dotted IPv4 netmask such as 255.255.255.0", p.Netmask)
	}
	mb := m.As4()
	mask := net.IPMask(mb[:])
	ones, bits := mask.Size()
	if bits == 0 {
		return nil, fmt.Errorf("netmask: %q is not contiguous", p.Netmask)
	}
	pc.netmask = mask
	pc.subnet = netip.PrefixFrom(first, ones).Masked()
	if !pc.subnet.Contains(last) {
		return nil, fmt.Errorf("range: %q does not fit in one %s subnet", p.Range, pc.subnet)
	}
	if p.Gateway != "" {
		g, err := netip.ParseAddr(p.Gateway)
		if err != nil || !g.Is4() || !pc.subnet.Contains(g) {
			return nil, fmt.Errorf("gateway: %q is not an IPv4 address in %s", p.Gateway, pc.subnet)
		}
		pc.gateway = g
	}
	for i, d := range p.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("dns[%d]: %q is not an IPv4 address", i, d)
		}
		b := a.As4()
		pc.dns = append(pc.dns, net.IP(b[:]))
	}
	if pc.leaseTime == 0 {
		pc.leaseTime = time.Hour
	}
	if pc.leaseTime < 2*time.Second || pc.leaseTime > 365*24*time.Hour {
		return nil, fmt.Errorf("lease_time: %s is outside 2s…1y", pc.leaseTime)
	}
	return pc, nil
}

func (p *poolConfig) inRange(ip uint32) bool { return ip >= p.first && ip <= p.last }

func ip4u(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func u2addr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

func u2ip(u uint32) net.IP {
	b := make(net.IP, 4)
	binary.BigEndian.PutUint32(b, u)
	return b
}

// macPrefix is a MAC prefix such as "52:54:00" or a full MAC.
type macPrefix []byte

func parseMACPrefix(s string) (macPrefix, error) {
	parts := strings.FieldsFunc(strings.TrimSpace(s), func(r rune) bool { return r == ':' || r == '-' })
	if len(parts) == 0 || len(parts) > 6 {
		return nil, fmt.Errorf("%q is not a MAC prefix such as 52:54:00", s)
	}
	out := make(macPrefix, len(parts))
	for i, p := range parts {
		var v byte
		if len(p) != 2 {
			return nil, fmt.Errorf("%q is not a MAC prefix such as 52:54:00", s)
		}
		for _, r := range p {
			v <<= 4
			switch {
			case r >= '0' && r <= '9':
				v |= byte(r - '0')
			case r >= 'a' && r <= 'f':
				v |= byte(r-'a') + 10
			case r >= 'A' && r <= 'F':
				v |= byte(r-'A') + 10
			default:
				return nil, fmt.Errorf("%q is not a MAC prefix such as 52:54:00", s)
			}
		}
		out[i] = v
	}
	return out, nil
}

func (p macPrefix) match(mac net.HardwareAddr) bool {
	if len(mac) < len(p) {
		return false
	}
	for i := range p {
		if mac[i] != p[i] {
			return false
		}
	}
	return true
}
