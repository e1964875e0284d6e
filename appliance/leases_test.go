package appliance_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"slate/api"
	"slate/appliance"
	"slate/dhcp"
	"slate/inventory"
)

// TestLeasesAPI: every role lists leases and reads the DHCP status; nobody without a token
// does; each filter selects; a bad filter is a 400 that names it. The status is the configured
// DHCP server's: its pool with used/free/reserve and the rogue probe's state.
func TestLeasesAPI(t *testing.T) {
	h := newHarnessIn(t, t.TempDir(), appliance.Options{}, func(c *appliance.Config) {
		c.PublicURL = "http://10.88.0.1:8080"
		// Built, never run: the test reads its status, no socket is opened.
		c.DHCP = dhcp.Config{Interfaces: []dhcp.InterfaceConfig{{Name: "slt-test0", Mode: dhcp.ModeAuthoritative, ServerAddress: "10.88.0.1",
			Pool:      &dhcp.Pool{Range: "10.88.0.100-10.88.0.139", Netmask: "255.255.255.0", LeaseTime: time.Hour},
			NewLeases: dhcp.NewLeases{ReservePercent: 10}}}}
	})
	now := time.Now()
	if err := h.a.Store.CommitLeases(context.Background(), []inventory.LeaseChange{
		{Lease: inventory.Lease{MAC: "52:54:00:00:20:01", IP: netip.MustParseAddr("10.88.0.100"), Iface: "slt-test0", Hostname: "press-1", State: "bound", ExpiresAt: now.Add(time.Hour)}},
		{Lease: inventory.Lease{MAC: "52:54:00:00:20:02", IP: netip.MustParseAddr("10.88.0.101"), Iface: "slt-test0", State: "bound", ExpiresAt: now.Add(-time.Minute)}},
		{Lease: inventory.Lease{MAC: "52:54:00:00:20:03", IP: netip.MustParseAddr("10.99.0.5"), Iface: "other1", State: "released", ExpiresAt: now}},
	}); err != nil {
		t.Fatal(err)
	}
	list := func(tok, q string) (int, api.LeaseList, string) {
		t.Helper()
		st, body := h.do("GET", "/api/v1/leases"+q, tok, nil)
		var out api.LeaseList
		json.Unmarshal(body, &out)
		return st, out, string(body)
	}
	for _, role := range []string{"admin", "operator", "auditor"} {
		if st, out, body := list(h.tok[role], ""); st != 200 || out.Total != 3 || len(out.Items) != 3 {
			t.Fatalf("%s lists leases: %d %s", role, st, body)
		}
		if st, _ := h.do("GET", "/api/v1/dhcp/status", h.tok[role], nil); st != 200 {
			t.Fatalf("%s reads DHCP status: %d", role, st)
		}
	}
	if st, _, _ := list("", ""); st != 401 {
		t.Fatalf("leases without a token: %d", st)
	}
	if st, _ := h.do("GET", "/api/v1/dhcp/status", "", nil); st != 401 {
		t.Fatalf("DHCP status without a token: %d", st)
	}
	for q, want := range map[string]string{
		"?interface=other1":                "52:54:00:00:20:03",
		"?mac=52-54-00-00-20-01":           "52:54:00:00:20:01",
		"?state=expired":                   "52:54:00:00:20:02",
		"?interface=slt-test0&state=bound": "52:54:00:00:20:01",
	} {
		st, out, body := list(h.tok["auditor"], q)
		if st != 200 || len(out.Items) != 1 || out.Items[0].MAC != want {
			t.Fatalf("leases%s: %d %s (want only %s)", q, st, body, want)
		}
	}
	for q, field := range map[string]string{"?state=offered": "state", "?mac=nope": "mac", "?interface=a%20b": "interface"} {
		st, _, body := list(h.tok["operator"], q)
		if st != 400 || !strings.Contains(body, field+` \"`) {
			t.Fatalf("leases%s: %d %s (want 400 naming %s)", q, st, body, field)
		}
	}
	st, body := h.do("GET", "/api/v1/dhcp/status", h.tok["auditor"], nil)
	var ds api.DHCPStatus
	if err := json.Unmarshal(body, &ds); err != nil || st != 200 {
		t.Fatalf("status: %d %s", st, body)
	}
	if !ds.Running || len(ds.Interfaces) != 1 || len(ds.Interfaces[0].Pools) != 1 {
		t.Fatalf("status: %s", body)
	}
	p := ds.Interfaces[0].Pools[0]
	if p.Size != 40 || p.Free != 40 || p.Reserve != 4 || p.Warning || ds.Interfaces[0].ProbeDone || ds.Interfaces[0].RogueServers == nil {
		t.Fatalf("pool/rogue status of a server not yet run: %s", body)
	}
}
