package pxe

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/inventory"
	"slate/lifecycle"
)

// dbSnapshot counts the rows of every table and reads the audit chain head: two equal
// snapshots mean nothing was written between them.
func dbSnapshot(t *testing.T, dbPath string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tb := range tables {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM "` + tb + `"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%d ", tb, n)
	}
	var head sql.NullString
	db.QueryRow(`SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&head)
	b.WriteString("head=" + head.String)
	return b.String()
}

func deployMachine(t *testing.T, env *httpEnv, mac string) string {
	t.Helper()
	id := env.machine(t, mac, lifecycle.Provisioning)
	env.planner.set(mac, Plan{MachineID: id, State: lifecycle.Provisioning, Action: ActionDeploy, Task: "install"})
	return id
}

// The attacker on the segment asks for the script of a machine in a deploy state that
// nobody is booting: no token, a console message saying what to do, and no database write.
// The same machine, once a technician announces its boot, gets one token, once.
func TestScriptFetchWithoutExpectedBootGetsNoTokenAndWritesNothing(t *testing.T) {
	env := newHTTPEnv(t, true)
	mac := "52:54:00:b0:00:01"
	id := deployMachine(t, env, mac)
	dbPath := filepath.Join(filepath.Dir(env.data), "slate.db")
	before := dbSnapshot(t, dbPath)
	for i := 0; i < 3; i++ {
		resp, s := env.get(t, "/boot/machine/"+mac+".ipxe?platform=efi")
		if resp.StatusCode != http.StatusOK || strings.Contains(s, "slate.token") || strings.Contains(s, "\nkernel ") {
			t.Fatalf("unexpected boot got a deploy script (status %d):\n%s", resp.StatusCode, s)
		}
		if !strings.Contains(s, "does not expect machine "+id+" to boot now") || !strings.Contains(s, "slate machine expect-boot "+id) {
			t.Fatalf("the console does not say why and what to do:\n%s", s)
		}
	}
	if after := dbSnapshot(t, dbPath); after != before {
		t.Fatalf("a fetch that issued no token wrote to the database:\nbefore %s\nafter  %s", before, after)
	}
	if env.log.waitFind("deploy script fetched while no boot is expected: no agent token", map[string]any{"mac": mac, "machine": id}) == nil {
		t.Fatalf("the refused fetch is not logged:\n%s", env.log)
	}

	// The good path: announced, one token; the second fetch gets none (single use).
	env.expect(t, id)
	_, s := env.get(t, "/boot/machine/"+mac+".ipxe?platform=efi")
	m := tokenRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("an expected boot got no token:\n%s", s)
	}
	if owner, err := env.tokenOwner(m[1]); err != nil || owner != id {
		t.Fatalf("token owner %q (%v), want %s", owner, err, id)
	}
	if _, ok, _ := env.store.BootExpected(context.Background(), id); ok {
		t.Fatal("the expectation survived the token it gave")
	}
	mid := dbSnapshot(t, dbPath)
	_, s2 := env.get(t, "/boot/machine/"+mac+".ipxe?platform=efi")
	if strings.Contains(s2, "slate.token") {
		t.Fatalf("a second fetch of the script got a token too:\n%s", s2)
	}
	if after := dbSnapshot(t, dbPath); after != mid {
		t.Fatalf("the refused second fetch wrote to the database:\nbefore %s\nafter  %s", mid, after)
	}
}

// An expectation not used within its window expires: the fetch after it gets no token.
func TestExpiredBootExpectationGivesNoToken(t *testing.T) {
	env := newHTTPEnv(t, true)
	mac := "52:54:00:b0:00:02"
	id := deployMachine(t, env, mac)
	env.expect(t, id)
	*env.now = env.now.Add(lifecycle.DefaultBootWindow + time.Second)
	if _, s := env.get(t, "/boot/machine/"+mac+".ipxe"); strings.Contains(s, "slate.token") {
		t.Fatalf("a boot expected %s ago got a token:\n%s", lifecycle.DefaultBootWindow, s)
	}
	// Inside the window it works.
	env.expect(t, id)
	*env.now = env.now.Add(lifecycle.DefaultBootWindow - time.Second)
	if _, s := env.get(t, "/boot/machine/"+mac+".ipxe"); !strings.Contains(s, "slate.token") {
		t.Fatalf("a boot inside its window got no token:\n%s", s)
	}
}

// With Slate as the authoritative DHCP server, the fetch must come from the address Slate
// leased to the MAC: from elsewhere (the attacker), no token, nothing written, and the
// expectation stays for the real machine.
func TestScriptFetchFromAnotherAddressThanTheLeaseIsRefused(t *testing.T) {
	env := newHTTPEnv(t, true)
	log, lb := newLog()
	h, err := NewHTTP(Config{DataDir: env.data, PublicURL: "http://10.99.0.1:8080"}, env.planner, storeTokens{store: env.store, requireLease: true}, log, WithIPXE(ipxeFS(t)))
	if err != nil {
		t.Fatal(err)
	}
	env.srv.Config.Handler = h
	ctx := context.Background()
	mac := "52:54:00:b0:00:03"
	id := deployMachine(t, env, mac)
	env.expect(t, id)
	dbPath := filepath.Join(filepath.Dir(env.data), "slate.db")

	// No lease at all (authoritative mode): refused.
	before := dbSnapshot(t, dbPath)
	if _, s := env.get(t, "/boot/machine/"+mac+".ipxe"); strings.Contains(s, "slate.token") || !strings.Contains(s, "not the address Slate leased") {
		t.Fatalf("a fetch with no lease got a token:\n%s", s)
	}
	if after := dbSnapshot(t, dbPath); after != before {
		t.Fatalf("the refused fetch (no lease) wrote to the database:\nbefore %s\nafter  %s", before, after)
	}
	// Slate leased 10.99.0.57 to the MAC; the fetch comes from 127.0.0.1.
	lease := inventory.Lease{MAC: mac, IP: netip.MustParseAddr("10.99.0.57"), Iface: "br0", State: inventory.LeaseBound, ExpiresAt: env.now.Add(time.Hour)}
	if err := env.store.CommitLeases(ctx, []inventory.LeaseChange{{Lease: lease}}); err != nil {
		t.Fatal(err)
	}
	before = dbSnapshot(t, dbPath)
	if _, s := env.get(t, "/boot/machine/"+mac+".ipxe"); strings.Contains(s, "slate.token") {
		t.Fatalf("a fetch from another address than the lease got a token:\n%s", s)
	}
	if after := dbSnapshot(t, dbPath); after != before {
		t.Fatalf("the refused fetch wrote to the database:\nbefore %s\nafter  %s", before, after)
	}
	if lb.waitFind("deploy script fetched from an address Slate did not lease to the MAC: no agent token", map[string]any{"remote": "127.0.0.1"}) == nil ||
		!strings.Contains(lb.String(), "10.99.0.57") {
		t.Fatalf("the refusal is not logged with both addresses:\n%s", lb)
	}
	if _, ok, _ := env.store.BootExpected(ctx, id); !ok {
		t.Fatal("the attacker's refused fetch consumed the real machine's expectation")
	}
	// The machine at its leased address (here: the lease says 127.0.0.1) gets its token.
	lease.IP = netip.MustParseAddr("127.0.0.1")
	if err := env.store.CommitLeases(ctx, []inventory.LeaseChange{{Lease: lease}}); err != nil {
		t.Fatal(err)
	}
	if _, s := env.get(t, "/boot/machine/"+mac+".ipxe"); !strings.Contains(s, "slate.token") {
		t.Fatalf("the fetch from the leased address got no token:\n%s", s)
	}
}
