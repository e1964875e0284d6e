package inventory

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

func TestLeasesCommitAndLoad(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "slate.db")
	s, err := Open(ctx, path, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a := Lease{MAC: "02:00:00:00:00:01", IP: netip.MustParseAddr("10.0.0.10"), Iface: "eth1", Hostname: "n1",
		State: LeaseBound, ExpiresAt: now.Add(time.Hour), RelayInfo: "1=aa"}
	b := Lease{MAC: "02:00:00:00:00:02", IP: netip.MustParseAddr("10.0.0.11"), Iface: "eth1", State: LeaseBound, ExpiresAt: now.Add(time.Hour)}
	c := Lease{MAC: "02:00:00:00:00:03", IP: netip.MustParseAddr("10.0.0.10"), Iface: "eth2", State: LeaseBound, ExpiresAt: now}
	if err := s.CommitLeases(ctx, []LeaseChange{{Lease: a}, {Lease: b}, {Lease: c}}); err != nil {
		t.Fatal(err)
	}
	// The address of an expired lease moves to a new client in one batch: the old row goes.
	d := Lease{MAC: "02:00:00:00:00:04", IP: netip.MustParseAddr("10.0.0.11"), Iface: "eth1", State: LeaseBound, ExpiresAt: now.Add(2 * time.Hour)}
	q := Lease{MAC: DeclinedKey("eth1", netip.MustParseAddr("10.0.0.12")), IP: netip.MustParseAddr("10.0.0.12"), Iface: "eth1",
		State: LeaseDeclined, ExpiresAt: now.Add(10 * time.Minute)}
	if err := s.CommitLeases(ctx, []LeaseChange{{Lease: d}, {Lease: q}}); err != nil {
		t.Fatal(err)
	}
	// Reopen: durable across a restart.
	s.Close()
	s, err = Open(ctx, path, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.DHCPLeases(ctx, "eth1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("eth1 rows: %+v", got)
	}
	byMAC := map[string]Lease{}
	for _, l := range got {
		byMAC[l.MAC] = l
	}
	if l := byMAC[a.MAC]; l.IP != a.IP || l.Hostname != "n1" || l.RelayInfo != "1=aa" || !l.ExpiresAt.Equal(a.ExpiresAt) || !l.UpdatedAt.Equal(now) {
		t.Fatalf("row a: %+v", l)
	}
	if _, ok := byMAC[b.MAC]; ok {
		t.Fatal("the evicted lease is still there")
	}
	if l := byMAC[q.MAC]; l.State != LeaseDeclined {
		t.Fatalf("quarantine row: %+v", l)
	}
	all, _ := s.DHCPLeases(ctx, "")
	if len(all) != 4 {
		t.Fatalf("all rows: %d", len(all))
	}
	// The same client twice in one batch (ACK then RELEASE): the last change wins.
	e1 := Lease{MAC: "02:00:00:00:00:05", IP: netip.MustParseAddr("10.0.0.30"), Iface: "eth2", State: LeaseBound, ExpiresAt: now.Add(time.Hour)}
	e2 := e1
	e2.State = LeaseReleased
	if err := s.CommitLeases(ctx, []LeaseChange{{Lease: e1}, {Lease: e2}}); err != nil {
		t.Fatal(err)
	}
	if eth2, _ := s.DHCPLeases(ctx, "eth2"); len(eth2) != 2 || eth2[1].State != LeaseReleased {
		t.Fatalf("eth2 rows: %+v", eth2)
	}
	// Release then delete.
	a.State = LeaseReleased
	if err := s.CommitLeases(ctx, []LeaseChange{{Lease: a}, {Lease: Lease{MAC: d.MAC}, Delete: true}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.DHCPLeases(ctx, "eth1")
	if len(got) != 2 || got[0].State != LeaseReleased {
		t.Fatalf("after release/delete: %+v", got)
	}
	// A bad row fails the whole batch: nothing half-written.
	bad := []LeaseChange{{Lease: Lease{MAC: "02:00:00:00:00:09", IP: netip.MustParseAddr("10.0.0.20"), Iface: "eth1", State: LeaseBound}},
		{Lease: Lease{MAC: "02:00:00:00:00:0a", Iface: "eth1", State: LeaseBound}}}
	if err := s.CommitLeases(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	if err := s.CommitLeases(ctx, []LeaseChange{{Lease: Lease{MAC: "x", IP: netip.MustParseAddr("10.0.0.21"), State: "offered"}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("offered state accepted: %v", err)
	}
	got, _ = s.DHCPLeases(ctx, "eth1")
	if len(got) != 2 {
		t.Fatalf("a failed batch left rows: %+v", got)
	}
}

// BenchmarkCommitLeases measures one durable group commit (synchronous=FULL) of a batch.
func BenchmarkCommitLeases(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			n := 0
			for b.Loop() {
				ch := make([]LeaseChange, batch)
				for i := range ch {
					n++
					ch[i] = LeaseChange{Lease: Lease{MAC: fmt.Sprintf("02:00:00:%02x:%02x:%02x", n>>16&255, n>>8&255, n&255),
						IP: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), Iface: "eth1", State: LeaseBound, ExpiresAt: time.Now()}}
				}
				if err := s.CommitLeases(ctx, ch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
