package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// seedMachines inserts n machines directly (one transaction): node-00000…, every 10th
// retired, every 7th with an ip label, releases cycling through three.
func seedMachines(tb testing.TB, s *Store, n int) {
	tb.Helper()
	ctx := context.Background()
	err := s.Update(ctx, func(tx *Tx) error {
		for i := range n {
			state := "deployed"
			if i%10 == 0 {
				state = "retired"
			} else if i%3 == 0 {
				state = "ready"
			}
			labels := "{}"
			if i%7 == 0 {
				labels = fmt.Sprintf(`{"ip":"10.0.%d.%d"}`, i/256%256, i%256)
			}
			_, err := tx.tx.ExecContext(ctx, `INSERT INTO machines(id, name, labels, state, desired_release, created_at, updated_at)
				VALUES (?,?,?,?,?,?,?)`, fmt.Sprintf("m-%05d", i), fmt.Sprintf("node-%05d", i), labels, state,
				fmt.Sprintf("rel@%d", i%3), int64(i), int64(n-i))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func names(ms []Machine) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

func TestListMachinesPageTwoSortFilterInSQL(t *testing.T) {
	s := openTest(t)
	seedMachines(t, s, 250)
	ctx := context.Background()

	// Page 2 of 50 by name, retired hidden: 225 visible; page 2 starts after 50 non-retired.
	ms, total, err := s.ListMachines(ctx, MachineFilter{Limit: 50, Offset: 50})
	if err != nil {
		t.Fatal(err)
	}
	if total != 225 {
		t.Fatalf("total without retired = %d, want 225", total)
	}
	// Non-retired names in order: skip every 10th. Index 50 of that list is node-00056
	// (0..55 holds 6 retired ones: 0,10,…,50).
	if len(ms) != 50 || ms[0].Name != "node-00056" || ms[49].Name != "node-00111" {
		t.Fatalf("page 2 = %d machines, %s … %s; want 50, node-00056 … node-00111", len(ms), ms[0].Name, ms[len(ms)-1].Name)
	}
	for _, m := range ms {
		if m.State == "retired" {
			t.Fatalf("retired machine %s listed by default", m.Name)
		}
	}
	// With retired: all 250, page 2 is exactly 50..99.
	ms, total, err = s.ListMachines(ctx, MachineFilter{Limit: 50, Offset: 50, IncludeRetired: true})
	if err != nil || total != 250 || ms[0].Name != "node-00050" || ms[49].Name != "node-00099" {
		t.Fatalf("with retired: total %d, %v…; err %v", total, names(ms)[:1], err)
	}
	// Asking for the retired state lists them without the toggle.
	_, total, err = s.ListMachines(ctx, MachineFilter{State: "retired"})
	if err != nil || total != 25 {
		t.Fatalf("state=retired: total %d, err %v; want 25", total, err)
	}
	// Descending by name, the first page starts at the end.
	ms, _, err = s.ListMachines(ctx, MachineFilter{Limit: 3, Sort: "name", Desc: true})
	if err != nil || strings.Join(names(ms), ",") != "node-00249,node-00248,node-00247" {
		t.Fatalf("name desc = %v, err %v", names(ms), err)
	}
	// By updated (seeded in reverse): oldest change first is the last machine.
	ms, _, err = s.ListMachines(ctx, MachineFilter{Limit: 2, Sort: "updated"})
	if err != nil || strings.Join(names(ms), ",") != "node-00249,node-00248" {
		t.Fatalf("updated asc = %v, err %v", names(ms), err)
	}
	// By release, ties by name: rel@0 first (i%3==0, not retired: 3, 6, 9, 12…).
	ms, _, err = s.ListMachines(ctx, MachineFilter{Limit: 3, Sort: "release"})
	if err != nil || strings.Join(names(ms), ",") != "node-00003,node-00006,node-00009" {
		t.Fatalf("release asc = %v, err %v", names(ms), err)
	}
	// By IP descending: machines with an ip label come before those without (NULL sorts last
	// descending); 10.0.0.98 > 10.0.0.91 as text.
	ms, _, err = s.ListMachines(ctx, MachineFilter{Limit: 2, Sort: "ip", Desc: true})
	if err != nil || ms[0].Labels["ip"] == "" || ms[0].Labels["ip"] < ms[1].Labels["ip"] {
		t.Fatalf("ip desc = %v, err %v", names(ms), err)
	}
	// State filter and free text combine with paging.
	ms, total, err = s.ListMachines(ctx, MachineFilter{State: "ready", Query: "node-001", Limit: 5, Offset: 5})
	if err != nil || total != 30 || len(ms) != 5 || ms[0].Name != "node-00117" {
		t.Fatalf("ready+q page 2: total %d, %v, err %v", total, names(ms), err)
	}
	// A sort key that is not one refuses, naming the keys: never interpolated into SQL.
	_, _, err = s.ListMachines(ctx, MachineFilter{Sort: "name; DROP TABLE machines"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "name, state, release, ip, updated") {
		t.Fatalf("bad sort: err %v, want ErrInvalid naming the keys", err)
	}
}

// TestListMachinesUsesIndexes checks the plan of each sorted page: an index walk, never a
// temporary B-tree sorting every machine (what makes 10,000 machines slow).
func TestListMachinesUsesIndexes(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for _, key := range MachineSortKeys() {
		expr, _ := machineSortSQL(key)
		order := expr
		if key != "name" {
			order += ", name"
		}
		rows, err := s.read.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT `+machineCols+` FROM machines WHERE state <> 'retired' ORDER BY `+order+` LIMIT 50 OFFSET 50`)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "INDEX") {
			t.Errorf("sort %s: plan %q sorts the table instead of walking an index", key, p)
		}
	}
}

// TestListMachines10kIsBounded seeds 10,000 machines and bounds a deep page's time (generous
// for a loaded CI host: an unindexed sort of 10,000 rows with every column is what it catches).
func TestListMachines10kIsBounded(t *testing.T) {
	s := openTest(t)
	seedMachines(t, s, 10000)
	ctx := context.Background()
	for _, key := range MachineSortKeys() {
		start := time.Now()
		ms, total, err := s.ListMachines(ctx, MachineFilter{Sort: key, Desc: true, Limit: 200, Offset: 5000})
		took := time.Since(start)
		if err != nil || total != 9000 || len(ms) != 200 {
			t.Fatalf("sort %s: %d of %d, err %v", key, len(ms), total, err)
		}
		if took > 2*time.Second {
			t.Errorf("sort %s: page of 200 at offset 5000 took %v, want < 2s", key, took)
		}
	}
}

func BenchmarkMachineList10k(b *testing.B) {
	s, err := Open(context.Background(), b.TempDir()+"/slate.db", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seedMachines(b, s, 10000)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		key := MachineSortKeys()[i%len(MachineSortKeys())]
		if _, _, err := s.ListMachines(ctx, MachineFilter{Sort: key, Limit: 50, Offset: 4000}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSavedFiltersPerUser(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for _, u := range []string{"anna", "ben"} {
		if err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.tx.ExecContext(ctx, `INSERT INTO users(username, password_hash, role, created_at) VALUES (?, 'x', 'operator', 0)`, u)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveFilter(ctx, "anna", "Hall 3 failed", "state=failed&q=hall3"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveFilter(ctx, "anna", "Hall 3 failed", "state=failed&q=hall3&sort=ip"); err != nil {
		t.Fatalf("saving under the same name replaces: %v", err)
	}
	if err := s.SaveFilter(ctx, "anna", "  ", "q=x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty name: err %v, want ErrInvalid", err)
	}
	fa, _ := s.ListFilters(ctx, "anna")
	fb, _ := s.ListFilters(ctx, "ben")
	if len(fa) != 1 || fa[0].Query != "state=failed&q=hall3&sort=ip" || len(fb) != 0 {
		t.Fatalf("anna %v, ben %v", fa, fb)
	}
	// Ben cannot delete Anna's filter.
	if err := s.DeleteFilter(ctx, "ben", "Hall 3 failed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ben deletes anna's filter: err %v, want ErrNotFound", err)
	}
	if err := s.DeleteFilter(ctx, "anna", "Hall 3 failed"); err != nil {
		t.Fatal(err)
	}
	if fa, _ := s.ListFilters(ctx, "anna"); len(fa) != 0 {
		t.Fatalf("after delete: %v", fa)
	}
}
