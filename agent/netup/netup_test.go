package netup

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/internal/testenv"
)

// When re-executed inside the client namespace, the test binary runs Up and prints the leases:
// the whole process then lives in the namespace, as the deploy environment's agent does.
func TestMain(m *testing.M) {
	if os.Getenv("NETUP_HELPER") == "1" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		leases, err := Up(ctx, Options{IncludeVirtual: true, CarrierWait: 2 * time.Second, DHCPTimeout: 10 * time.Second})
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		json.NewEncoder(os.Stdout).Encode(leases)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A real dnsmasq answers on one veth; a second veth has no carrier. Up must configure the
// first (address and default route, as `ip` shows them) and give up on the second in time.
func TestUpWithDnsmasq(t *testing.T) {
	testenv.RequireRoot(t)
	dnsmasq := testenv.RequireCommand(t, "dnsmasq", "dnsmasq")
	srv := testenv.NewNetns(t, "nus")
	cli := testenv.NewNetns(t, "nuc")
	testenv.Veth(t, srv, "s0", "10.77.0.1/24", cli, "c0", "")
	testenv.Veth(t, srv, "s1", "", cli, "c1", "")
	srv.Exec(t, "ip", "link", "set", "s1", "down") // c1 keeps no carrier

	dir := t.TempDir()
	d := srv.Command(dnsmasq, "--no-daemon", "--user=root", "--port=0", "--interface=s0", "--bind-interfaces",
		"--dhcp-range=10.77.0.50,10.77.0.60,255.255.255.0,1h", "--dhcp-option=3,10.77.0.1", "--no-ping",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"), "--log-dhcp")
	// dnsmasq writes its log to a file (not a Go buffer the test reads while it writes).
	dlog, err := os.Create(filepath.Join(dir, "dnsmasq.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer dlog.Close()
	d.Stdout, d.Stderr = dlog, dlog
	logText := func() string { b, _ := os.ReadFile(dlog.Name()); return string(b) }
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })

	start := time.Now()
	cmd := cli.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NETUP_HELPER=1")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("helper: %v\n%s\ndnsmasq:\n%s", err, stderr, logText())
	}
	var leases []Lease
	if err := json.Unmarshal(out, &leases); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("DHCP on 2 interfaces took %s", time.Since(start).Round(time.Millisecond))
	if len(leases) != 1 || leases[0].Iface != "c0" || !strings.HasPrefix(leases[0].IP.String(), "10.77.0.") ||
		leases[0].CIDR()[len(leases[0].CIDR())-3:] != "/24" || leases[0].Router.String() != "10.77.0.1" || leases[0].Duration != time.Hour {
		t.Fatalf("leases: %+v", leases)
	}
	if addr := cli.Exec(t, "ip", "-4", "addr", "show", "c0"); !strings.Contains(addr, leases[0].CIDR()) {
		t.Fatalf("c0 lacks %s:\n%s", leases[0].CIDR(), addr)
	}
	if rt := cli.Exec(t, "ip", "-4", "route", "show", "default"); !strings.Contains(rt, "via 10.77.0.1 dev c0") {
		t.Fatalf("default route: %q", rt)
	}
	// The server saw our MAC.
	if mac := strings.TrimSpace(cli.Exec(t, "cat", "/sys/class/net/c0/address")); !strings.Contains(logText(), mac) {
		t.Fatalf("dnsmasq did not log %s:\n%s", mac, logText())
	}
}

func TestInterfacesSkipsLoopbackAndVirtual(t *testing.T) {
	sys := t.TempDir()
	for _, n := range []string{"lo", "eth0", "veth0", "eno1"} {
		os.MkdirAll(filepath.Join(sys, "class/net", n), 0o755)
	}
	os.MkdirAll(filepath.Join(sys, "class/net/eth0/device"), 0o755)
	os.MkdirAll(filepath.Join(sys, "class/net/eno1/device"), 0o755)
	got, err := Interfaces(sys, false)
	if err != nil || strings.Join(got, ",") != "eno1,eth0" {
		t.Fatalf("%v %v", got, err)
	}
	got, _ = Interfaces(sys, true)
	if strings.Join(got, ",") != "eno1,eth0,veth0" {
		t.Fatalf("with virtual: %v", got)
	}
	if _, err := Interfaces(filepath.Join(sys, "nope"), false); err == nil {
		t.Fatal("missing sysfs accepted")
	}
}
