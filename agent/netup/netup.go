// Package netup brings the deploy environment onto the network: every NIC with carrier gets
// an address by DHCP (insomniacslk/dhcp's nclient4), the first router becomes the default
// route, and leases are renewed while the agent runs (a wipe can take many hours).
package netup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/jsimonetti/rtnetlink/rtnl"
)

// Lease is an address one interface got.
type Lease struct {
	Iface    string
	MAC      string
	IP       net.IP
	Mask     net.IPMask
	Router   net.IP
	Server   net.IP
	Duration time.Duration
}

// CIDR renders the address with its prefix length.
func (l Lease) CIDR() string {
	ones, _ := l.Mask.Size()
	return fmt.Sprintf("%s/%d", l.IP, ones)
}

// Options tune Up.
type Options struct {
	Sys string // /sys (tests: the same, inside a namespace)
	// IncludeVirtual also takes interfaces without a backing device (veth in tests); the deploy
	// environment takes only real NICs.
	IncludeVirtual bool
	// CarrierWait is how long to wait for a link to come up after setting it up (default 10 s).
	CarrierWait time.Duration
	// DHCPTimeout bounds one DHCP exchange (default 20 s).
	DHCPTimeout time.Duration
	Log         *slog.Logger
}

// Interfaces lists the candidate NICs: not loopback, and (unless IncludeVirtual) backed by a
// device, sorted by name.
func Interfaces(sys string, includeVirtual bool) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(sys, "class/net"))
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if name == "lo" {
			continue
		}
		if !includeVirtual {
			if _, err := os.Stat(filepath.Join(sys, "class/net", name, "device")); err != nil {
				continue
			}
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

// Up sets every candidate NIC up, waits for carrier, and runs DHCP on those with one, in
// parallel. It returns the leases got; an error only when none was.
func Up(ctx context.Context, o Options) ([]Lease, error) {
	if o.Sys == "" {
		o.Sys = "/sys"
	}
	if o.CarrierWait <= 0 {
		o.CarrierWait = 10 * time.Second
	}
	if o.DHCPTimeout <= 0 {
		o.DHCPTimeout = 20 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	names, err := Interfaces(o.Sys, o.IncludeVirtual)
	if err != nil {
		return nil, err
	}
	o.Log.Info("bringing up network interfaces", "ifaces", names)
	if len(names) == 0 {
		return nil, errors.New("no network interface found: is the NIC's driver in the deploy environment?")
	}
	rt, err := rtnl.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer rt.Close()
	var mu sync.Mutex
	var leases []Lease
	var errs []error
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := upOne(ctx, rt, &mu, o, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				o.Log.Warn("interface not configured", "iface", name, "err", err)
				return
			}
			leases = append(leases, l)
		}()
	}
	wg.Wait()
	if len(leases) == 0 {
		return nil, fmt.Errorf("no interface got a DHCP lease: %w", errors.Join(errs...))
	}
	slices.SortFunc(leases, func(a, b Lease) int { return strings.Compare(a.Iface, b.Iface) })
	// One default route: the first interface (by name) whose lease has a router.
	for _, l := range leases {
		if l.Router == nil {
			continue
		}
		ifc, err := net.InterfaceByName(l.Iface)
		if err == nil {
			err = rt.RouteAdd(ifc, net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, l.Router)
		}
		if err != nil {
			o.Log.Warn("default route not set", "iface", l.Iface, "router", l.Router, "err", err)
		}
		break
	}
	return leases, nil
}

func upOne(ctx context.Context, rt *rtnl.Conn, mu *sync.Mutex, o Options, name string) (Lease, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return Lease{}, err
	}
	mu.Lock()
	err = rt.LinkUp(ifc)
	mu.Unlock()
	if err != nil {
		return Lease{}, fmt.Errorf("set %s up: %w", name, err)
	}
	deadline := time.Now().Add(o.CarrierWait)
	for readTrim(filepath.Join(o.Sys, "class/net", name, "carrier")) != "1" {
		if time.Now().After(deadline) {
			return Lease{}, fmt.Errorf("%s: no carrier after %s (cable unplugged?)", name, o.CarrierWait)
		}
		select {
		case <-ctx.Done():
			return Lease{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	o.Log.Info("link up, asking DHCP", "iface", name)
	l, err := request(ctx, o, name)
	if err != nil {
		return Lease{}, err
	}
	mu.Lock()
	err = rt.AddrAdd(ifc, &net.IPNet{IP: l.IP, Mask: l.Mask})
	mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrExist) && !strings.Contains(err.Error(), "exists") {
		return Lease{}, fmt.Errorf("add %s to %s: %w", l.CIDR(), name, err)
	}
	o.Log.Info("DHCP lease", "iface", name, "mac", l.MAC, "ip", l.CIDR(), "router", l.Router, "server", l.Server, "lease", l.Duration)
	return l, nil
}

// request runs one DHCP exchange on name.
func request(ctx context.Context, o Options, name string) (Lease, error) {
	c, err := nclient4.New(name, nclient4.WithTimeout(o.DHCPTimeout/4), nclient4.WithRetry(3))
	if err != nil {
		return Lease{}, fmt.Errorf("DHCP on %s: %w", name, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, o.DHCPTimeout)
	defer cancel()
	lease, err := c.Request(ctx, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("slate-agent")))
	if err != nil {
		return Lease{}, fmt.Errorf("DHCP on %s: %w", name, err)
	}
	ack := lease.ACK
	l := Lease{Iface: name, MAC: c.InterfaceAddr().String(), IP: ack.YourIPAddr, Mask: ack.SubnetMask(), Server: ack.ServerIdentifier(),
		Duration: ack.IPAddressLeaseTime(time.Hour)}
	if l.Mask == nil {
		l.Mask = l.IP.DefaultMask()
	}
	if r := ack.Router(); len(r) > 0 {
		l.Router = r[0]
	}
	return l, nil
}

// Renew keeps the leases alive: halfway through each lease it asks again. A lost lease is
// logged; the address stays, as a deploy environment has no one else to talk to.
func Renew(ctx context.Context, o Options, leases []Lease) {
	var wg sync.WaitGroup
	for _, l := range leases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(max(l.Duration/2, 30*time.Second)):
				}
				nl, err := request(ctx, o, l.Iface)
				if err != nil {
					if o.Log != nil {
						o.Log.Warn("DHCP renewal failed", "iface", l.Iface, "err", err)
					}
					continue
				}
				if !nl.IP.Equal(l.IP) && o.Log != nil {
					o.Log.Warn("DHCP renewal gave another address; keeping the first", "iface", l.Iface, "old", l.IP, "new", nl.IP)
				}
				l.Duration = nl.Duration
			}
		}()
	}
	wg.Wait()
}
