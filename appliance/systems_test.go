package appliance_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"slate/inventory"
	"slate/lifecycle"
	"slate/redfish/redfishtest"
)

// The API against a blade chassis (DMTF public-bladed): no system chosen → 422 whose body
// lists the systems (id, serial, model, power) to choose from; system_id → that blade, its id
// in the answer; all_systems → one machine per blade; adopt → adopted, nothing written to
// the BMC.
func TestEnrollBladeChassisThroughAPI(t *testing.T) {
	h := newHarness(t)
	bladed := filepath.Join(redfishtest.MockupDir(t), "public-bladed")
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: bladed})
	body := func(more map[string]any) map[string]any {
		b := map[string]any{"bmc_address": bmc.URL, "bmc_username": "admin", "bmc_password": "password"}
		for k, v := range more {
			b[k] = v
		}
		return b
	}
	m0, _ := h.counts()
	st, b := h.do("POST", "/api/v1/machines", h.tok["operator"], body(nil))
	var p struct {
		Detail  string
		Systems []struct {
			ID, Serial, Model string
			PowerState        string `json:"power_state"`
		}
	}
	json.Unmarshal(b, &p)
	if st != 422 || len(p.Systems) != 4 || p.Systems[2].ID != "529QB9452R6" || p.Systems[2].Model != "SX1000" || p.Systems[2].PowerState != "On" {
		t.Fatalf("several systems, no choice: %d %s", st, b)
	}
	if m1, _ := h.counts(); m1 != m0 {
		t.Fatalf("a refused enrollment stored machines: %d → %d", m0, m1)
	}
	st, b = h.do("POST", "/api/v1/machines", h.tok["operator"], body(map[string]any{"name": "blade3", "system_id": "529QB9452R6"}))
	var m inventory.Machine
	json.Unmarshal(b, &m)
	if st != 201 || m.BMC == nil || m.BMC.SystemID != "529QB9452R6" || m.Serial != "529QB9452R6" {
		t.Fatalf("system_id: %d %s", st, b)
	}
	// by serial
	st, b = h.do("POST", "/api/v1/machines", h.tok["operator"], body(map[string]any{"name": "blade2", "serial": "529QB9451R6"}))
	json.Unmarshal(b, &m)
	if st != 201 || m.BMC == nil || m.BMC.SystemID != "529QB9451R6" {
		t.Fatalf("serial match: %d %s", st, b)
	}
	ch2 := redfishtest.New(t, redfishtest.Options{Mockup: bladed})
	for _, id := range []string{"529QB9450R6", "529QB9451R6", "529QB9452R6", "529QB9453R6"} {
		ch2.Set("/redfish/v1/Systems/"+id, map[string]any{"SerialNumber": "CH2-" + id})
	}
	st, b = h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"name": "ch2", "all_systems": true,
		"bmc_address": ch2.URL, "bmc_username": "admin", "bmc_password": "password"})
	var all struct{ Machines []inventory.Machine }
	json.Unmarshal(b, &all)
	if st != 201 || len(all.Machines) != 4 || all.Machines[3].Name != "ch2-529QB9453R6" || all.Machines[3].BMC.SystemID != "529QB9453R6" {
		t.Fatalf("all_systems: %d %s", st, b)
	}
	rack := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "On"})
	st, b = h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"name": "hmi-9", "adopt": true,
		"bmc_address": rack.URL, "bmc_username": "admin", "bmc_password": "password"})
	json.Unmarshal(b, &m)
	if st != 201 || m.State != lifecycle.Adopted {
		t.Fatalf("adopt: %d %s", st, b)
	}
	for _, q := range rack.Requests() {
		if q.Method != "GET" && !strings.HasPrefix(q.Path, "/redfish/v1/SessionService/Sessions") {
			t.Fatalf("adopt sent %s %s to the BMC", q.Method, q.Path)
		}
	}
}
