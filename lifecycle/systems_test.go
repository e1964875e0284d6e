package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"slate/inventory"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

// The four blades of DMTF's public-bladed mockup: one Redfish service, four computer systems
// (their serial numbers equal their ids).
var blades = []string{"529QB9450R6", "529QB9451R6", "529QB9452R6", "529QB9453R6"}

func bladedBMC(t *testing.T, power string) *redfishtest.Server {
	t.Helper()
	return redfishtest.New(t, redfishtest.Options{Mockup: filepath.Join(redfishtest.MockupDir(t), "public-bladed"), PowerState: power})
}

func bladeSetup(t *testing.T) (*inventory.Store, *Machines, *inventory.SecretBox) {
	t.Helper()
	s, l, _ := setup(t)
	l.SetBMCDialer(fastDialer)
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	return s, l, box
}

func bladeReq(bmc *redfishtest.Server) EnrollRequest {
	return EnrollRequest{BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"}
}

// writes are the requests that could change a machine: everything but reads and the
// session's own login and logout.
func writes(bmc *redfishtest.Server) []string {
	var out []string
	for _, r := range bmc.Requests() {
		if r.Method == "GET" || strings.HasPrefix(r.Path, "/redfish/v1/SessionService/Sessions") {
			continue
		}
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

func machineCount(t *testing.T, s *inventory.Store) int {
	t.Helper()
	_, n, err := s.ListMachines(context.Background(), inventory.MachineFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Before: Slate drove the first system behind a BMC whatever the technician meant, so blades
// 2–4 of a chassis could not be enrolled. A service with several systems and no choice is now
// refused with the list; nothing is stored.
func TestEnrollBladeChassisWithoutChoiceIsRefusedWithTheSystems(t *testing.T) {
	s, l, box := bladeSetup(t)
	bmc := bladedBMC(t, "")
	_, err := l.Enroll(context.Background(), box, "op", bladeReq(bmc))
	var sce *SystemChoiceError
	if !errors.As(err, &sce) || !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("enroll without a system choice: want a SystemChoiceError (invalid request), got %v", err)
	}
	if len(sce.Systems) != 4 {
		t.Fatalf("the refusal lists %d systems, want 4: %+v", len(sce.Systems), sce.Systems)
	}
	for _, id := range blades {
		if !strings.Contains(err.Error(), id+" (serial "+id+", model SX1000, power On)") {
			t.Errorf("the refusal does not list system %s with its serial, model and power: %v", id, err)
		}
	}
	if n := machineCount(t, s); n != 0 {
		t.Fatalf("a refused enrollment stored %d machines", n)
	}
	// a system id the BMC does not have: refused with the list too
	r := bladeReq(bmc)
	r.SystemID = "Blade9"
	if _, err := l.Enroll(context.Background(), box, "op", r); !errors.As(err, &sce) || !strings.Contains(err.Error(), `no computer system "Blade9"`) {
		t.Fatalf("unknown system id: %v", err)
	}
	// a serial none of them has
	r = bladeReq(bmc)
	r.Serial = "NOPE"
	if _, err := l.Enroll(context.Background(), box, "op", r); !errors.As(err, &sce) || !strings.Contains(err.Error(), "none of its 4 computer systems") {
		t.Fatalf("serial that matches no system: %v", err)
	}
	if n := machineCount(t, s); n != 0 {
		t.Fatalf("refused enrollments stored %d machines", n)
	}
}

// Blade 3 by its id, blade 2 by its serial: each machine keeps its system id, and the
// reconciler's later BMC calls (the power-on for inspection) reach that blade and no other.
func TestEnrollBladeByIDAndBySerialDrivesThatBlade(t *testing.T) {
	s, l, box := bladeSetup(t)
	ctx := context.Background()
	bmc := bladedBMC(t, "Off")
	r := bladeReq(bmc)
	r.Name, r.SystemID = "blade3", blades[2]
	m3, err := l.Enroll(ctx, box, "op", r)
	if err != nil {
		t.Fatal(err)
	}
	if m3.BMC == nil || m3.BMC.SystemID != blades[2] || m3.Serial != blades[2] || m3.Model != "SX1000" {
		t.Fatalf("blade 3 by id: %+v bmc %+v", m3, m3.BMC)
	}
	r = bladeReq(bmc)
	r.Name, r.Serial = "blade2", blades[1]
	m2, err := l.Enroll(ctx, box, "op", r)
	if err != nil {
		t.Fatal(err)
	}
	if m2.BMC == nil || m2.BMC.SystemID != blades[1] {
		t.Fatalf("blade 2 by serial: bmc %+v", m2.BMC)
	}
	cred, err := s.BMCCredentials(ctx, box, m3.ID)
	if err != nil || cred.SystemID != blades[2] {
		t.Fatalf("stored credentials of blade 3: %+v %v", cred.BMCInfo, err)
	}
	before := len(writes(bmc))
	if before != 0 {
		t.Fatalf("enrollment without power_on wrote to the BMC: %v", writes(bmc))
	}
	rec := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	if err := rec.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w := writes(bmc)
	touched := map[string]bool{}
	for _, x := range w {
		for _, id := range blades {
			if strings.Contains(x, "/Systems/"+id) {
				touched[id] = true
			}
		}
	}
	if !touched[blades[2]] || !touched[blades[1]] || touched[blades[0]] || touched[blades[3]] {
		t.Fatalf("power-on for inspection went to the wrong systems: %v", w)
	}
	for _, id := range []string{blades[1], blades[2]} {
		if bmc.Get("/redfish/v1/Systems/" + id)["PowerState"] != "On" {
			t.Errorf("system %s not powered on", id)
		}
	}
	for _, id := range []string{blades[0], blades[3]} {
		if bmc.Get("/redfish/v1/Systems/" + id)["PowerState"] != "Off" {
			t.Errorf("system %s, not enrolled, was powered", id)
		}
	}
}

// All systems: one machine each, named prefix-id, in one transaction; when one of them
// cannot be enrolled (it is already a machine) none is.
func TestEnrollAllBlades(t *testing.T) {
	s, l, box := bladeSetup(t)
	ctx := context.Background()
	bmc := bladedBMC(t, "")
	// blade 4 already belongs to a machine: enrolling all must refuse, and store nothing new
	r := bladeReq(bmc)
	r.Name, r.SystemID = "taken", blades[3]
	if _, err := l.Enroll(ctx, box, "op", r); err != nil {
		t.Fatal(err)
	}
	all := bladeReq(bmc)
	all.Name, all.AllSystems = "chassis1", true
	if _, err := l.EnrollAll(ctx, box, "op", all); !errors.Is(err, inventory.ErrConflict) || !strings.Contains(err.Error(), "no system was enrolled") {
		t.Fatalf("enroll all with one blade taken: %v", err)
	}
	if n := machineCount(t, s); n != 1 {
		t.Fatalf("a refused enroll-all left %d machines, want the 1 enrolled before", n)
	}
	// a fresh Slate and chassis: every blade is free
	s, l, box = bladeSetup(t)
	bmc = bladedBMC(t, "")
	all = bladeReq(bmc)
	all.Name, all.AllSystems = "chassis1", true
	got, err := l.EnrollAll(ctx, box, "op", all)
	if err != nil {
		t.Fatal(err)
	}
	var names, systems []string
	for _, m := range got {
		names = append(names, m.Name)
		if m.BMC != nil {
			systems = append(systems, m.BMC.SystemID)
		}
		if m.Serial == "" || m.State != Enrolled {
			t.Errorf("machine %s: serial %q state %s", m.Name, m.Serial, m.State)
		}
	}
	want := []string{"chassis1-" + blades[0], "chassis1-" + blades[1], "chassis1-" + blades[2], "chassis1-" + blades[3]}
	if !slices.Equal(names, want) || !slices.Equal(systems, blades) {
		t.Fatalf("enroll all: names %v systems %v", names, systems)
	}
	ev, err := s.ListAudit(ctx, inventory.AuditFilter{Action: "machine.enroll-all"})
	if err != nil || len(ev) != 1 || ev[0].Subject != bmc.URL {
		t.Fatalf("enroll-all audit: %+v %v", ev, err)
	}
	if w := writes(bmc); len(w) != 0 {
		t.Fatalf("enroll all without power_on wrote to the BMC: %v", w)
	}
}

// The session for the chosen blade is a second dial: when it fails, the enrollment fails
// naming the BMC (no panic on the session that never opened), and nothing is stored.
func TestEnrollBladeSecondDialFails(t *testing.T) {
	s, l, box := bladeSetup(t)
	bmc := bladedBMC(t, "")
	calls := 0
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
		calls++
		if calls > 1 {
			return nil, errors.New("BMC " + address + ": connection refused")
		}
		return fastDialer(ctx, address, user, password, profile, fingerprint, system)
	})
	r := bladeReq(bmc)
	r.SystemID = blades[2]
	_, err := l.Enroll(context.Background(), box, "op", r)
	if !errors.Is(err, ErrBMC) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("second dial failed: %v", err)
	}
	if n := machineCount(t, s); n != 0 {
		t.Fatalf("stored %d machines", n)
	}
}

// Matching a system by what the technician knows: a MAC of one of its NICs, its SMBIOS UUID
// (in any case), its serial; a match that fits several systems is refused listing just those.
func TestChooseSystemByMatch(t *testing.T) {
	systems := []redfish.SystemInfo{
		{ID: "Node1", URI: "/redfish/v1/Systems/Node1", Serial: "S1", UUID: "aaaa-1", MACs: []string{"52:54:00:00:00:01"}},
		{ID: "Node2", URI: "/redfish/v1/Systems/Node2", Serial: "S2", UUID: "aaaa-2", MACs: []string{"52:54:00:00:00:02", "52:54:00:00:00:03"}},
		{ID: "Node3", URI: "/redfish/v1/Systems/Node3", Serial: "S2", UUID: "aaaa-3"},
	}
	for _, c := range []struct {
		name string
		r    EnrollRequest
		want string
	}{
		{"mac", EnrollRequest{MACs: []string{"52:54:00:00:00:03"}}, "Node2"},
		{"uuid", EnrollRequest{SystemUUID: "AAAA-3"}, "Node3"},
		{"serial", EnrollRequest{Serial: "s1"}, "Node1"},
		{"uri", EnrollRequest{SystemID: "/redfish/v1/Systems/Node3/"}, "Node3"},
	} {
		got, err := chooseSystem(&c.r, systems)
		if err != nil || got.ID != c.want {
			t.Errorf("%s: got %s %v, want %s", c.name, got.ID, err, c.want)
		}
	}
	_, err := chooseSystem(&EnrollRequest{Serial: "S2"}, systems)
	var sce *SystemChoiceError
	if !errors.As(err, &sce) || len(sce.Systems) != 2 || sce.Systems[0].ID != "Node2" || sce.Systems[1].ID != "Node3" {
		t.Fatalf("a serial two systems share: %v", err)
	}
	if _, err := chooseSystem(&EnrollRequest{MACs: []string{"52:54:00:00:00:09"}}, systems); !errors.As(err, &sce) || len(sce.Systems) != 3 {
		t.Fatalf("a MAC no system has: %v", err)
	}
}
