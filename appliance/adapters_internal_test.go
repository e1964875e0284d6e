package appliance

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"slate/dhcp"
	"slate/inventory"
	"slate/lifecycle"
	"slate/pxe"
)

func openTestStore(t *testing.T) *inventory.Store {
	t.Helper()
	st, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "slate.db"), inventory.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestDHCPLeasesAdapter: dhcp's own lease rows go through the inventory and come back whole
// (both packages speak the same states and quarantine keys), a delete deletes, and a row the
// inventory refuses is an error, never a silent success: the DHCP server sends its ACKs only
// when CommitLeases returns nil.
func TestDHCPLeasesAdapter(t *testing.T) {
	ctx := context.Background()
	d := DHCPLeases{openTestStore(t)}
	ip := netip.MustParseAddr("10.9.0.7")
	if dhcp.LeaseBound != inventory.LeaseBound || dhcp.LeaseReleased != inventory.LeaseReleased ||
		dhcp.LeaseDeclined != inventory.LeaseDeclined || dhcp.DeclinedKey("eth1", ip) != inventory.DeclinedKey("eth1", ip) {
		t.Fatal("dhcp and inventory disagree on lease states or quarantine keys")
	}
	exp := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	bound := dhcp.Lease{MAC: "52:54:00:00:30:01", IP: netip.MustParseAddr("10.9.0.5"), Iface: "eth1", Hostname: "press-1",
		State: dhcp.LeaseBound, ExpiresAt: exp, RelayInfo: "1=6574683031"}
	declined := dhcp.Lease{MAC: dhcp.DeclinedKey("eth1", ip), IP: ip, Iface: "eth1", State: dhcp.LeaseDeclined, ExpiresAt: exp}
	if err := d.CommitLeases(ctx, []dhcp.LeaseChange{{Lease: bound}, {Lease: declined}}); err != nil {
		t.Fatal(err)
	}
	rows, err := d.DHCPLeases(ctx, "eth1")
	if err != nil || len(rows) != 2 {
		t.Fatalf("leases read back: %+v, %v", rows, err)
	}
	byMAC := map[string]dhcp.Lease{}
	for _, r := range rows {
		byMAC[r.MAC] = r
	}
	got := byMAC[bound.MAC]
	if got.IP != bound.IP || got.Hostname != bound.Hostname || got.State != bound.State || !got.ExpiresAt.Equal(exp) ||
		got.RelayInfo != bound.RelayInfo || got.UpdatedAt.IsZero() {
		t.Fatalf("bound lease came back as %+v, want %+v", got, bound)
	}
	if byMAC[declined.MAC].State != dhcp.LeaseDeclined {
		t.Fatalf("quarantine row came back as %+v", byMAC[declined.MAC])
	}
	if err := d.CommitLeases(ctx, []dhcp.LeaseChange{{Lease: dhcp.Lease{MAC: bound.MAC}, Delete: true}}); err != nil {
		t.Fatal(err)
	}
	if rows, _ := d.DHCPLeases(ctx, "eth1"); len(rows) != 1 || rows[0].MAC != declined.MAC {
		t.Fatalf("after deleting the bound lease: %+v", rows)
	}
	// The bad case: a state the inventory does not store fails the whole batch.
	bad := dhcp.Lease{MAC: "52:54:00:00:30:02", IP: netip.MustParseAddr("10.9.0.6"), Iface: "eth1", State: "offered", ExpiresAt: exp}
	if err := d.CommitLeases(ctx, []dhcp.LeaseChange{{Lease: bound}, {Lease: bad}}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("commit of a lease in state offered: %v, want inventory.ErrInvalid", err)
	}
	if rows, _ := d.DHCPLeases(ctx, "eth1"); len(rows) != 1 {
		t.Fatalf("a refused batch left rows behind: %+v", rows)
	}
}

// TestLifecyclePlannerAdapter: pxe gets lifecycle's decision for a known MAC, ErrUnknownMachine
// for an unknown one, and a plain error (pxe answers 503, iPXE retries) when the store fails:
// a broken database must not read as "unknown machine".
func TestLifecyclePlannerAdapter(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	var id string
	if err := st.Update(ctx, func(tx *inventory.Tx) error {
		m, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: "press-1", MACs: []string{"52:54:00:00:31:01"}, State: lifecycle.Inspecting})
		id = m.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p := lifecyclePlanner{machines: st}
	plan, err := p.BootPlan(ctx, "52:54:00:00:31:01")
	if err != nil || plan.MachineID != id || plan.State != lifecycle.Inspecting || plan.Action != pxe.ActionDeploy {
		t.Fatalf("inspecting machine: %+v, %v; want deploy for %s", plan, err, id)
	}
	if _, err := p.BootPlan(ctx, "52:54:00:00:31:99"); !errors.Is(err, pxe.ErrUnknownMachine) {
		t.Fatalf("unknown MAC: %v, want pxe.ErrUnknownMachine", err)
	}
	st.Close()
	if _, err := p.BootPlan(ctx, "52:54:00:00:31:01"); err == nil || errors.Is(err, pxe.ErrUnknownMachine) {
		t.Fatalf("closed store: %v, want an error that is not ErrUnknownMachine", err)
	}
}
