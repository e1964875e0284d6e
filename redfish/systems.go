package redfish

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// SystemInfo is one computer system behind a Redfish service, as much as a technician needs
// to tell the systems of a blade chassis or multi-node server apart and Slate needs to match
// one with what the technician knows (a MAC, a serial, a system UUID).
type SystemInfo struct {
	// ID is the last segment of the system's URI (what Config.System and enrollment's
	// system_id take; the Id property says the same on every service seen).
	ID           string   `json:"id"`
	URI          string   `json:"uri"`
	Name         string   `json:"name,omitempty"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Model        string   `json:"model,omitempty"`
	Serial       string   `json:"serial,omitempty"`
	UUID         string   `json:"uuid,omitempty"` // lower-case
	PowerState   string   `json:"power_state,omitempty"`
	MACs         []string `json:"macs,omitempty"` // host NICs, normalized (read only when asked)
}

func (s SystemInfo) String() string {
	f := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	return fmt.Sprintf("%s (serial %s, model %s, power %s)", s.ID, f(s.Serial), f(s.Model), f(s.PowerState))
}

// Systems lists every computer system the service has, with their identities, whichever
// system this client controls; withMACs reads their host NICs too (a GET per NIC: only when a
// MAC is to be matched). It only reads.
func (c *Client) Systems(ctx context.Context, withMACs bool) ([]SystemInfo, error) {
	const op = "list systems"
	uris, err := c.members(ctx, op, c.systemsURI)
	if err != nil {
		return nil, err
	}
	out := make([]SystemInfo, 0, len(uris))
	for _, uri := range uris {
		var s struct {
			computerSystem
			EthernetInterfaces link
		}
		if _, err := c.get(ctx, op, uri, &s); err != nil {
			return nil, err
		}
		// the URI's last segment, not the Id property: it is what Config.System matches
		id := path.Base(strings.TrimRight(uri, "/"))
		si := SystemInfo{ID: id, URI: uri, Name: s.Name, Manufacturer: s.Manufacturer, Model: s.Model,
			Serial: strings.TrimSpace(s.SerialNumber), UUID: strings.ToLower(s.UUID), PowerState: s.PowerState}
		if withMACs && s.EthernetInterfaces.ID != "" {
			nics, err := c.members(ctx, op, s.EthernetInterfaces.ID)
			if err != nil {
				return nil, err
			}
			for _, n := range nics {
				var e ethernetInterface
				if _, err := c.get(ctx, op, n, &e); err != nil {
					return nil, err
				}
				for _, m := range []string{NormalizeMAC(e.MACAddress), NormalizeMAC(e.PermanentMACAddress)} {
					if m != "" && !containsString(si.MACs, m) {
						si.MACs = append(si.MACs, m)
					}
				}
			}
		}
		out = append(out, si)
	}
	return out, nil
}

func containsString(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
