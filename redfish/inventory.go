package redfish

import (
	"context"
	"net"
	"strings"
)

// Inventory is what the BMC says about the machine, read out of band. It is enough to match a
// machine enrolled by BMC address with the one DHCP sees (by MAC, UUID or serial).
type Inventory struct {
	BMC           string `json:"bmc"`
	VendorProfile string `json:"vendor_profile"`
	Fingerprint   string `json:"fingerprint,omitempty"`
	SystemURI     string `json:"system_uri"`
	Manufacturer  string `json:"manufacturer"`
	Model         string `json:"model"`
	SKU           string `json:"sku,omitempty"`
	Serial        string `json:"serial"`
	// UUID is lower-case, as DHCP option 97 and SMBIOS tools print it.
	UUID        string `json:"uuid"`
	AssetTag    string `json:"asset_tag,omitempty"`
	BIOSVersion string `json:"bios_version,omitempty"`
	PowerState  string `json:"power_state"`
	BMCFirmware string `json:"bmc_firmware"`
	BMCModel    string `json:"bmc_model,omitempty"`
	NICs        []NIC  `json:"nics"`
	// BMCMACs are the BMC's own interfaces: never a host NIC to match DHCP with.
	BMCMACs []string `json:"bmc_macs,omitempty"`
}

// NIC is one host network interface the BMC reports.
type NIC struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// MAC is normalized (lower-case, colon-separated).
	MAC       string `json:"mac"`
	Permanent string `json:"permanent_mac,omitempty"`
	Link      string `json:"link,omitempty"`
}

// MACs are the host MAC addresses, current and permanent, normalized.
func (inv Inventory) MACs() []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range inv.NICs {
		for _, m := range []string{n.MAC, n.Permanent} {
			if m != "" && !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// NormalizeMAC returns the lower-case colon form, or "" when s is not a MAC address.
func NormalizeMAC(s string) string {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return ""
	}
	if hw.String() == "00:00:00:00:00:00" {
		return ""
	}
	return hw.String()
}

// Inventory reads the system, its NICs and the BMC's firmware.
func (c *Client) Inventory(ctx context.Context) (Inventory, error) {
	const op = "read inventory"
	s, err := c.system(ctx, op)
	if err != nil {
		return Inventory{}, err
	}
	inv := Inventory{
		BMC: c.cfg.Address, VendorProfile: c.vendor.Name(), Fingerprint: c.Fingerprint(), SystemURI: c.systemURI,
		Manufacturer: s.Manufacturer, Model: s.Model, SKU: s.SKU, Serial: s.SerialNumber, UUID: strings.ToLower(s.UUID),
		AssetTag: s.AssetTag, BIOSVersion: s.BiosVersion, PowerState: s.PowerState, NICs: []NIC{},
	}
	var links struct{ EthernetInterfaces link }
	if _, err := c.get(ctx, op, c.systemURI, &links); err != nil {
		return Inventory{}, err
	}
	if links.EthernetInterfaces.ID != "" {
		members, err := c.members(ctx, op, links.EthernetInterfaces.ID)
		if err != nil {
			return Inventory{}, err
		}
		for _, m := range members {
			var e ethernetInterface
			if _, err := c.get(ctx, op, m, &e); err != nil {
				return Inventory{}, err
			}
			n := NIC{ID: e.ID, Name: e.Name, MAC: NormalizeMAC(e.MACAddress), Permanent: NormalizeMAC(e.PermanentMACAddress), Link: e.LinkStatus}
			if n.MAC == "" && n.Permanent == "" {
				continue // VLANs and host interfaces without their own address
			}
			if n.MAC == "" {
				n.MAC = n.Permanent
			}
			if n.Permanent == n.MAC {
				n.Permanent = ""
			}
			inv.NICs = append(inv.NICs, n)
		}
	}
	mgr, err := c.manager(ctx, op)
	if err != nil {
		return Inventory{}, err
	}
	if mgr != "" {
		var m struct {
			FirmwareVersion    string
			Model              string
			EthernetInterfaces link
		}
		if _, err := c.get(ctx, op, mgr, &m); err != nil {
			return Inventory{}, err
		}
		inv.BMCFirmware, inv.BMCModel = m.FirmwareVersion, m.Model
		if m.EthernetInterfaces.ID != "" {
			// the BMC's own MACs help tell its DHCP requests from the host's; not fatal when absent
			if members, err := c.members(ctx, op, m.EthernetInterfaces.ID); err == nil {
				for _, uri := range members {
					var e ethernetInterface
					if _, err := c.get(ctx, op, uri, &e); err == nil {
						if mac := NormalizeMAC(e.MACAddress); mac != "" {
							inv.BMCMACs = append(inv.BMCMACs, mac)
						}
					}
				}
			}
		}
	}
	return inv, nil
}
