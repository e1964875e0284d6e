package dhcp

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestListLeasesFilters: states as listed (a bound lease past its end is expired, a
// quarantined address has no MAC), each filter, and bad filters naming their field.
func TestListLeasesFilters(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	st := newMemStore()
	st.CommitLeases(context.Background(), []LeaseChange{
		{Lease: Lease{MAC: "02:00:00:00:00:01", IP: mustAddr("10.0.0.10"), Iface: "eth1", State: "bound", ExpiresAt: now.Add(time.Hour)}},
		{Lease: Lease{MAC: "02:00:00:00:00:02", IP: mustAddr("10.0.0.11"), Iface: "eth1", State: "bound", ExpiresAt: now.Add(-time.Second)}},
		{Lease: Lease{MAC: "02:00:00:00:00:03", IP: mustAddr("10.1.0.10"), Iface: "eth2", State: "released", ExpiresAt: now}},
		{Lease: Lease{MAC: DeclinedKey("eth2", mustAddr("10.1.0.11")), IP: mustAddr("10.1.0.11"), Iface: "eth2", State: "declined", ExpiresAt: now.Add(time.Hour)}},
	})
	list := func(iface, mac, state string) []LeaseRow {
		t.Helper()
		f, err := ParseLeaseFilter(iface, mac, state)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := ListLeases(context.Background(), st, f, now)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	if n := len(list("", "", "")); n != 4 {
		t.Fatalf("all: %d rows", n)
	}
	if r := list("", "", "expired"); len(r) != 1 || r[0].MAC != "02:00:00:00:00:02" {
		t.Fatalf("expired: %+v", r)
	}
	if r := list("", "", "bound"); len(r) != 1 || r[0].MAC != "02:00:00:00:00:01" {
		t.Fatalf("bound: %+v", r)
	}
	if r := list("eth2", "", "declined"); len(r) != 1 || r[0].MAC != "" || r[0].IP != "10.1.0.11" {
		t.Fatalf("declined on eth2: %+v", r)
	}
	if r := list("", "02-00-00-00-00-03", ""); len(r) != 1 || r[0].State != "released" {
		t.Fatalf("by MAC in dash form: %+v", r)
	}
	for _, bad := range [][4]string{{"eth1;rm", "", "", "interface"}, {"", "zz:zz", "", "mac"}, {"", "", "offered", "state"}} {
		_, err := ParseLeaseFilter(bad[0], bad[1], bad[2])
		var fe *FilterError
		if !errors.As(err, &fe) || fe.Field != bad[3] {
			t.Fatalf("filter %v: err %v, want one naming %s", bad, err, bad[3])
		}
	}
}
