package vbmc

import (
	"context"
	"net/url"
	"testing"
	"time"

	bmclib "github.com/bmc-toolbox/bmclib/v2"
)

// bmclib's generic Redfish provider (the "gofish" driver) is what many provisioning tools use:
// it logs in with a session, trusts only known system/manager ids, and ejects before inserting.
func TestBmclib(t *testing.T) {
	b, m, srv := newServer(t, "")
	fs := files(t)
	u, _ := url.Parse(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := bmclib.NewClient("http://"+u.Hostname(), user, pass, bmclib.WithRedfishPort(u.Port()))
	cl.Registry.Drivers = cl.Registry.For("gofish")
	if err := cl.Open(ctx); err != nil {
		t.Fatalf("bmclib open: %v", err)
	}
	defer cl.Close(ctx)
	if st, err := cl.GetPowerState(ctx); err != nil || st != "Off" && st != "off" {
		t.Fatalf("power state: %q %v", st, err)
	}
	if _, err := cl.SetBootDevice(ctx, "pxe", false, false); err != nil {
		t.Fatalf("set boot device: %v", err)
	}
	if st := b.State(); st.BootTarget != TargetPxe || st.BootEnabled != OverrideOnce {
		t.Fatalf("after SetBootDevice: %+v", st)
	}
	if ok, err := cl.SetPowerState(ctx, "on"); err != nil || !ok {
		t.Fatalf("power on: %v %v", ok, err)
	}
	on, starts, _ := m.snapshot()
	if !on || len(starts) != 1 || starts[0].Target != TargetPxe {
		t.Fatalf("after power on: on=%v starts=%+v", on, starts)
	}
	if ok, err := cl.SetVirtualMedia(ctx, "CD", fs.URL+"/boot.iso"); err != nil || !ok {
		t.Fatalf("virtual media: %v %v", ok, err)
	}
	if st := b.State(); !st.Media.Inserted || st.Media.Image != fs.URL+"/boot.iso" {
		t.Fatalf("media: %+v", st.Media)
	}
	if ok, err := cl.SetPowerState(ctx, "off"); err != nil || !ok {
		t.Fatalf("power off: %v %v", ok, err)
	}
	if on, _, _ := m.snapshot(); on {
		t.Fatal("still on after bmclib power off")
	}
}
