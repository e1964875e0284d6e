package redfish_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"slate/redfish/redfishtest"
)

// Systems lists every computer system behind the service, whichever one the client drives,
// with what a technician tells them apart by and what enrollment matches them with: four blades
// on public-bladed (their serials, model and power), the rack server's one with its host MACs
// (and not the BMC's own). It only reads.
func TestSystemsListsEveryComputerSystem(t *testing.T) {
	ctx := context.Background()
	s := redfishtest.New(t, redfishtest.Options{Mockup: filepath.Join(redfishtest.MockupDir(t), "public-bladed")})
	c := connect(t, s, nil)
	got, err := c.Systems(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, si := range got {
		ids = append(ids, si.ID)
		if si.Serial != si.ID || si.Model != "SX1000" || si.PowerState != "On" || si.URI != "/redfish/v1/Systems/"+si.ID {
			t.Errorf("system %+v", si)
		}
	}
	if want := []string{"529QB9450R6", "529QB9451R6", "529QB9452R6", "529QB9453R6"}; !slices.Equal(ids, want) {
		t.Fatalf("systems %v, want %v", ids, want)
	}
	r := rackmount(t, redfishtest.Options{})
	rc := connect(t, r, nil)
	got, err = rc.Systems(ctx, true)
	if err != nil || len(got) != 1 {
		t.Fatalf("rackmount systems: %+v %v", got, err)
	}
	inv, err := rc.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0].MACs) == 0 || !slices.Equal(got[0].MACs, inv.MACs()) || got[0].UUID != inv.UUID || got[0].Serial != inv.Serial {
		t.Fatalf("rackmount system %+v, inventory MACs %v UUID %s", got[0], inv.MACs(), inv.UUID)
	}
	for _, q := range append(s.Requests(), r.Requests()...) {
		if q.Method != "GET" && q.Path != "/redfish/v1/SessionService/Sessions" && !slices.Contains([]string{"DELETE"}, q.Method) {
			t.Fatalf("listing systems sent %s %s", q.Method, q.Path)
		}
	}
}
