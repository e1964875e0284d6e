package inventory

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "slate.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustMachine(t *testing.T, s *Store, n NewMachine) Machine {
	t.Helper()
	var m Machine
	err := s.Update(context.Background(), func(tx *Tx) error {
		var err error
		m, err = tx.CreateMachine(context.Background(), n)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// seedAt writes rows that are valid at schema version v, so the upgrade path has data to carry.
func seedAt(t *testing.T, s *Store, v int) {
	t.Helper()
	ctx := context.Background()
	if v >= 1 {
		// Raw SQL, as the Slate of that version wrote it (today's code expects newer columns).
		for _, q := range []string{
			`INSERT INTO machines(id, name, serial, state, created_at, updated_at) VALUES ('m-seed', 'seed-1', 'SEED1', 'enrolled', 0, 0)`,
			`INSERT INTO machine_macs(mac, machine_id) VALUES ('52:54:00:aa:00:01', 'm-seed')`,
			`INSERT INTO users(username, password_hash, role, created_at) VALUES ('seeduser', '` + HashPassword("password123") + `', 'operator', 0)`,
		} {
			if _, err := s.write.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v >= 2 {
		if _, err := s.write.ExecContext(ctx, `INSERT INTO facts(machine_id, version, doc, created_at) VALUES ('m-seed',1,'{}',0)`); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMigrationsFromEmptyAndFromEveryVersion(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 3 {
		t.Fatalf("want at least 3 migrations, have %d", len(ms))
	}
	for from := 0; from <= len(ms); from++ {
		path := filepath.Join(t.TempDir(), "db")
		ctx := context.Background()
		old, err := OpenAt(ctx, path, Options{}, from)
		if err != nil {
			t.Fatalf("build database at version %d: %v", from, err)
		}
		if v, _ := old.SchemaVersion(ctx); v != from {
			t.Fatalf("OpenAt(%d) gave version %d", from, v)
		}
		seedAt(t, old, from)
		old.Close()
		s, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatalf("upgrade from version %d: %v", from, err)
		}
		if v, _ := s.SchemaVersion(ctx); v != len(ms) {
			t.Fatalf("upgrade from %d reached version %d, want %d", from, v, len(ms))
		}
		if from >= 1 {
			m, err := s.GetMachine(ctx, "seed-1")
			if err != nil || m.Serial != "SEED1" || len(m.MACs) != 1 {
				t.Fatalf("upgrade from %d lost the seeded machine: %+v %v", from, m, err)
			}
			if _, err := s.Authenticate(ctx, "seeduser", "password123"); err != nil {
				t.Fatalf("upgrade from %d lost the seeded user: %v", from, err)
			}
		}
		if err := s.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
		if rep, _ := s.VerifyAudit(ctx); !rep.OK {
			t.Fatalf("audit chain broken after upgrade from %d: %+v", from, rep)
		}
		s.Close()
	}
}

func TestNewerDatabaseRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.write.Exec(`INSERT INTO schema_migrations(version, name, applied_at) VALUES (999, 'future', 0)`)
	s.Close()
	_, err = Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "schema version 999") {
		t.Fatalf("want a refusal naming version 999, got %v", err)
	}
}

func TestMachineConflictsWriteNothing(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	mustMachine(t, s, NewMachine{Name: "a", MACs: []string{"52:54:00:00:00:0A"}, Serial: "S-A", State: "enrolled"})
	cases := []struct {
		name string
		n    NewMachine
		want string
	}{
		{"duplicate MAC", NewMachine{Name: "b", MACs: []string{"52:54:00:00:00:0a"}, State: "enrolled"}, "MAC 52:54:00:00:00:0a already belongs"},
		{"duplicate serial", NewMachine{Name: "c", Serial: "S-A", State: "enrolled"}, `serial "S-A"`},
		{"duplicate name", NewMachine{Name: "a", State: "enrolled"}, `name "a"`},
		{"bad MAC", NewMachine{Name: "d", MACs: []string{"52:54:00"}, State: "enrolled"}, "not a MAC address"},
	}
	for _, c := range cases {
		err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.CreateMachine(ctx, c.n)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.name, err, c.want)
		}
	}
	_, total, err := s.ListMachines(ctx, MachineFilter{})
	if err != nil || total != 1 {
		t.Fatalf("refused creations left rows behind: total=%d err=%v", total, err)
	}
	var macs int
	s.read.QueryRow(`SELECT COUNT(*) FROM machine_macs`).Scan(&macs)
	if macs != 1 {
		t.Fatalf("refused creations left %d MAC rows, want 1", macs)
	}
}

func TestListFilters(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	mustMachine(t, s, NewMachine{Name: "hmi-1", MACs: []string{"52:54:00:00:01:01"}, Vendor: "Dell", State: "ready", Labels: map[string]string{"line": "3"}})
	mustMachine(t, s, NewMachine{Name: "hmi-2", Serial: "XYZ%", State: "deployed", Labels: map[string]string{"line": "4"}})
	mustMachine(t, s, NewMachine{Name: "db-1", State: "deployed"})
	check := func(f MachineFilter, want ...string) {
		t.Helper()
		ms, total, err := s.ListMachines(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Name)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") || total != len(want) {
			t.Errorf("filter %+v: got %v (total %d), want %v", f, got, total, want)
		}
	}
	check(MachineFilter{State: "deployed"}, "db-1", "hmi-2")
	check(MachineFilter{Label: "line=3"}, "hmi-1")
	check(MachineFilter{Label: "line"}, "hmi-1", "hmi-2")
	check(MachineFilter{Query: "01:01"}, "hmi-1")
	check(MachineFilter{Query: "dell"}, "hmi-1")
	check(MachineFilter{Query: "%"}, "hmi-2") // LIKE wildcards are literal
	check(MachineFilter{Query: "HMI"}, "hmi-1", "hmi-2")
	ms, total, _ := s.ListMachines(ctx, MachineFilter{Limit: 1, Offset: 1})
	if total != 3 || len(ms) != 1 || ms[0].Name != "hmi-1" {
		t.Errorf("paging: got %d items of %d", len(ms), total)
	}
}

func TestAuditChainDetectsTampering(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		tamper  string
		problem string
		seq     int64
	}{
		{"edited details", `UPDATE audit_events SET details = '{"reason":"nothing to see"}' WHERE seq = 3`, "edited", 3},
		{"edited actor", `UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2`, "edited", 2},
		{"deleted event", `DELETE FROM audit_events WHERE seq = 2`, "missing", 3},
		{"re-linked", `UPDATE audit_events SET prev_hash = '` + GenesisHash + `' WHERE seq = 4`, "re-linked", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t)
			for i := range 5 {
				if err := s.Audit(ctx, "tester", "test.event", "subject", "ok", map[string]any{"i": i}); err != nil {
					t.Fatal(err)
				}
			}
			if rep, _ := s.VerifyAudit(ctx); !rep.OK || rep.Events != 5 {
				t.Fatalf("clean chain reported %+v", rep)
			}
			// The triggers refuse edits through SQL...
			if _, err := s.write.Exec(tc.tamper); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("tamper without dropping triggers: got %v, want the append-only refusal", err)
			}
			// ...so an attacker with the file drops them first; the chain still tells.
			for _, q := range []string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`, tc.tamper} {
				if _, err := s.write.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := s.VerifyAudit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.BrokenSeq != tc.seq || !strings.Contains(rep.Problem, tc.problem) {
				t.Fatalf("tampering (%s) reported as %+v, want broken at %d (%s)", tc.name, rep, tc.seq, tc.problem)
			}
		})
	}
}

func TestTokensExpireAndAreHashed(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "db"), Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.AddUser(ctx, "t", "alice", "amber-field-stone-4", RoleAuditor, "Alice"); err != nil {
		t.Fatal(err)
	}
	var tok string
	s.Update(ctx, func(tx *Tx) error { tok, err = tx.IssueToken(ctx, "alice", "api", time.Hour); return err })
	if u, err := s.UserForToken(ctx, tok, "api"); err != nil || u.Role != RoleAuditor {
		t.Fatalf("fresh token: %v %+v", err, u)
	}
	if _, err := s.UserForToken(ctx, tok, "session"); err == nil {
		t.Fatal("an API token was accepted as a UI session")
	}
	var stored string
	s.read.QueryRow(`SELECT token_hash FROM api_tokens`).Scan(&stored)
	if stored == tok || strings.Contains(stored, tok) {
		t.Fatal("the token is stored in clear")
	}
	now = now.Add(2 * time.Hour)
	if _, err := s.UserForToken(ctx, tok, "api"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired token accepted: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alice", "wrong-password"); err == nil {
		t.Fatal("wrong password accepted")
	}
}

func TestBMCPasswordEncryptedAtRest(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	box, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	a := mustMachine(t, s, NewMachine{Name: "a", State: "enrolled"})
	b := mustMachine(t, s, NewMachine{Name: "b", State: "enrolled"})
	if err := s.Update(ctx, func(tx *Tx) error {
		return tx.SetBMC(ctx, box, a.ID, BMCInfo{Address: "https://10.0.0.21", Username: "root"}, "calvin-secret")
	}); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	s.read.QueryRow(`SELECT password_enc FROM bmcs WHERE machine_id = ?`, a.ID).Scan(&raw)
	if strings.Contains(string(raw), "calvin-secret") {
		t.Fatal("BMC password stored in clear")
	}
	c, err := s.BMCCredentials(ctx, box, a.ID)
	if err != nil || c.Password != "calvin-secret" || c.Username != "root" {
		t.Fatalf("decrypt: %+v %v", c, err)
	}
	// A ciphertext moved to another machine's row does not decrypt (bound by AAD).
	s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO bmcs(machine_id, address, password_enc, updated_at) VALUES (?, 'x', ?, 0)`, b.ID, raw)
		return err
	})
	if _, err := s.BMCCredentials(ctx, box, b.ID); err == nil {
		t.Fatal("a password copied to another machine decrypted")
	}
	// The key file is private.
	other, _ := LoadOrCreateKey(filepath.Join(t.TempDir(), "other.key"))
	if _, err := s.BMCCredentials(ctx, other, a.ID); err == nil {
		t.Fatal("decrypted with another key")
	}
}

func TestMachineListedWithBMCNeverExposesPassword(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	box, _ := NewSecretBox(make([]byte, 32))
	m := mustMachine(t, s, NewMachine{Name: "a", State: "enrolled"})
	s.Update(ctx, func(tx *Tx) error {
		return tx.SetBMC(ctx, box, m.ID, BMCInfo{Address: "https://bmc", Username: "u"}, "pw")
	})
	got, _ := s.GetMachine(ctx, "a")
	if got.BMC == nil || got.BMC.Address != "https://bmc" {
		t.Fatalf("BMC not shown: %+v", got.BMC)
	}
	var _ = sql.ErrNoRows
}
