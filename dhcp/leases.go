package dhcp

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Lease states as listed (the API, CLI and UI): the stored states, plus expired for a bound
// lease past its end (its address may go to another client).
const (
	ListBound    = LeaseBound
	ListExpired  = "expired"
	ListReleased = LeaseReleased
	ListDeclined = LeaseDeclined
)

// ListStates are the states a lease list can be filtered by.
func ListStates() []string { return []string{ListBound, ListExpired, ListReleased, ListDeclined} }

// LeaseFilter selects leases; empty fields match everything.
type LeaseFilter struct {
	Interface string
	MAC       string // canonical form (net.HardwareAddr.String)
	State     string
}

// FilterError is a bad filter value; Field names the parameter.
type FilterError struct {
	Field, Value, Want string
}

func (e *FilterError) Error() string {
	return fmt.Sprintf("%s %q is not valid: want %s", e.Field, e.Value, e.Want)
}

// ParseLeaseFilter checks the filter values given by a user.
func ParseLeaseFilter(iface, mac, state string) (LeaseFilter, error) {
	f := LeaseFilter{Interface: iface, State: state}
	if iface != "" && (len(iface) > 15 || strings.ContainsFunc(iface, func(r rune) bool {
		return !(r == '-' || r == '.' || r == '_' || r == ':' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
	})) {
		return f, &FilterError{Field: "interface", Value: iface, Want: "an interface name (at most 15 letters, digits, '-', '.', '_', ':')"}
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return f, &FilterError{Field: "mac", Value: mac, Want: "a MAC address such as 52:54:00:12:34:56"}
		}
		f.MAC = hw.String()
	}
	if state != "" && !slices.Contains(ListStates(), state) {
		return f, &FilterError{Field: "state", Value: state, Want: "one of " + strings.Join(ListStates(), ", ")}
	}
	return f, nil
}

// LeaseRow is one lease as listed.
type LeaseRow struct {
	MAC       string    `json:"mac,omitempty"` // empty for a quarantined (declined) address
	IP        string    `json:"ip"`
	Interface string    `json:"interface"`
	Hostname  string    `json:"hostname,omitempty"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
	RelayInfo string    `json:"relay_info,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// LeaseSource is where the stored leases are read (the read half of LeaseStore).
type LeaseSource interface {
	DHCPLeases(ctx context.Context, iface string) ([]Lease, error)
}

// ListLeases reads the stored leases and keeps those f selects, as of now.
func ListLeases(ctx context.Context, src LeaseSource, f LeaseFilter, now time.Time) ([]LeaseRow, error) {
	ls, err := src.DHCPLeases(ctx, f.Interface)
	if err != nil {
		return nil, err
	}
	out := []LeaseRow{}
	for _, l := range ls {
		r := LeaseRow{MAC: l.MAC, IP: l.IP.String(), Interface: l.Iface, Hostname: l.Hostname, State: l.State,
			ExpiresAt: l.ExpiresAt, RelayInfo: l.RelayInfo, UpdatedAt: l.UpdatedAt}
		if strings.HasPrefix(r.MAC, DeclinedKeyPrefix) {
			r.MAC = ""
		}
		if r.State == LeaseBound && !now.Before(l.ExpiresAt) {
			r.State = ListExpired
		}
		if (f.MAC != "" && r.MAC != f.MAC) || (f.State != "" && r.State != f.State) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
