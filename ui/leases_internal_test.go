package ui

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"slate/dhcp"
)

// TestLeasesTemplateShowsPoolWarningRogueAndConflict renders the page with a nearly full
// pool, a rogue server and a reservation taken by another client (states a unit cannot reach
// without a running DHCP server on a segment): each is shown, the holder's hostname escaped.
func TestLeasesTemplateShowsPoolWarningRogueAndConflict(t *testing.T) {
	u, err := New(Deps{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d := leasesData{Running: true, Filter: map[string]string{}, States: dhcp.ListStates(), Interfaces: []dhcp.InterfaceStatus{{
		Name: "eth1", Mode: dhcp.ModeAuthoritative, Server: "10.9.0.1", ProbeDone: true,
		Pools:                []dhcp.PoolStatus{{Range: "10.9.0.100-10.9.0.109", Size: 10, Used: 9, Free: 1, Reserve: 2, Fixed: 1, Percent: 90, Warning: true}},
		RogueServers:         []dhcp.RogueServer{{Interface: "eth1", ServerID: "10.9.0.254", From: "10.9.0.254:67", OfferedIP: "10.9.0.77", SeenAt: now}},
		ReservationConflicts: []dhcp.ReservationConflict{{Interface: "eth1", ReservedIP: "10.9.0.100", MAC: "52:54:00:00:10:01", HolderMAC: "02:00:00:00:00:09", HolderHostname: "<img src=x>", Since: now}},
	}}}
	var buf bytes.Buffer
	if err := u.pages["leases"].ExecuteTemplate(&buf, "content", d); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"90 %", "nearly exhausted", "Another DHCP server answers", "10.9.0.254", "offered 10.9.0.77",
		"Reserved address <span class=\"mono\">10.9.0.100</span>", "02:00:00:00:00:09", "&lt;img src=x&gt;"} {
		if !strings.Contains(page, want) {
			t.Fatalf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<img src=x>") {
		t.Fatal("holder hostname reached the page as markup")
	}
	// A clean segment after the probe says so; no probe says it was not run.
	d.Interfaces[0].RogueServers, d.Interfaces[0].Pools[0].Warning = nil, false
	buf.Reset()
	u.pages["leases"].ExecuteTemplate(&buf, "content", d)
	if !strings.Contains(buf.String(), "no other DHCP server answered") || strings.Contains(buf.String(), "nearly exhausted") {
		t.Fatalf("clean segment:\n%s", buf.String())
	}
}
