package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"slate/inventory"
)

// `slate lease list` prints the leases with their filters, --json passes the API's answer
// through, and a bad filter fails with the API's message naming it.
func TestLeaseList(t *testing.T) {
	ctx := context.Background()
	a, srv, token := testSlate(t)
	if err := a.Store.CommitLeases(ctx, []inventory.LeaseChange{
		{Lease: inventory.Lease{MAC: "52:54:00:00:30:01", IP: netip.MustParseAddr("10.7.0.10"), Iface: "eth1", Hostname: "press-7", State: "bound", ExpiresAt: time.Now().Add(time.Hour)}},
		{Lease: inventory.Lease{MAC: "52:54:00:00:30:02", IP: netip.MustParseAddr("10.7.0.11"), Iface: "eth1", State: "released", ExpiresAt: time.Now()}},
	}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		env := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(""), environ: func() []string { return nil },
			getenv: func(k string) string {
				return map[string]string{"SLATE_SERVER": srv.URL, "SLATE_TOKEN": token, "HOME": t.TempDir()}[k]
			}}
		err := dispatch(ctx, env, commands(), args, "slate")
		return out.String() + errOut.String(), err
	}
	out, err := run("lease", "list")
	if err != nil || !strings.Contains(out, "10.7.0.10") || !strings.Contains(out, "press-7") || !strings.Contains(out, "10.7.0.11") || !strings.Contains(out, "2 leases") {
		t.Fatalf("lease list: %v\n%s", err, out)
	}
	out, err = run("lease", "list", "--state", "released", "--mac", "52:54:00:00:30:02", "--interface", "eth1")
	if err != nil || strings.Contains(out, "10.7.0.10") || !strings.Contains(out, "10.7.0.11") {
		t.Fatalf("filtered lease list: %v\n%s", err, out)
	}
	out, err = run("lease", "list", "--json", "--state", "bound")
	var js struct {
		Items []struct{ MAC, State string }
	}
	if err != nil || json.Unmarshal([]byte(out), &js) != nil || len(js.Items) != 1 || js.Items[0].MAC != "52:54:00:00:30:01" {
		t.Fatalf("lease list --json: %v\n%s", err, out)
	}
	if _, err := run("lease", "list", "--state", "leased"); err == nil || !strings.Contains(err.Error(), `state "leased"`) {
		t.Fatalf("bad state filter: %v", err)
	}
}
