package appliance_test

import (
	"encoding/json"
	"strings"
	"testing"

	"slate/inventory"
	"slate/lifecycle"
	"slate/redfish/redfishtest"
)

// TestEnrollByBMC enrolls a machine from its BMC address alone: Slate reads the system over
// Redfish (DMTF's rack-server mockup with real semantics), matches it with the machine DHCP
// discovered by MAC, pins the certificate, and powers it on with a one-time PXE boot.
func TestEnrollByBMC(t *testing.T) {
	h := newHarness(t)
	// off: --power-on powers it on (a running machine is left alone, see lifecycle's tests)
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PowerState: "Off"})
	sys := bmc.Get("/redfish/v1/Systems/437XR1138R2")
	serial, _ := sys["SerialNumber"].(string)
	uuid, _ := sys["UUID"].(string)
	if serial == "" || uuid == "" {
		t.Fatalf("mockup system lacks serial/UUID: %v", sys)
	}
	// A wrong password: 422 (the request's credentials are wrong; the BMC did not fail),
	// naming the BMC once and its refusal, with one hint, and nothing written.
	m0, a0 := h.counts()
	st, b := h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"bmc_address": bmc.URL, "bmc_username": "admin", "bmc_password": "wrong"})
	if st != 422 || strings.Count(string(b), bmc.URL) != 1 || !strings.Contains(string(b), "refused the credentials") ||
		strings.Count(string(b), "(check") != 1 {
		t.Fatalf("wrong BMC password: %d %s", st, b)
	}
	if m1, a1 := h.counts(); m1 != m0 || a1 != a0 {
		t.Fatalf("a failed BMC enrollment wrote something: machines %d→%d audit %d→%d", m0, m1, a0, a1)
	}

	st, b = h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"name": "rack-1", "bmc_address": bmc.URL,
		"bmc_username": "admin", "bmc_password": "password", "power_on": true})
	if st != 201 {
		t.Fatalf("enroll by BMC: %d %s", st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)
	if m.Serial != serial || !strings.EqualFold(m.SystemUUID, uuid) || len(m.MACs) == 0 || m.BMC == nil || m.BMC.TLSFingerprint == "" {
		t.Fatalf("machine from BMC: %+v (bmc %+v)", m, m.BMC)
	}
	sys = bmc.Get("/redfish/v1/Systems/437XR1138R2")
	boot, _ := sys["Boot"].(map[string]any)
	if sys["PowerState"] != "On" {
		t.Fatalf("machine not powered on: %v", sys["PowerState"])
	}
	if boots := bmc.Boots(); len(boots) == 0 || boots[len(boots)-1] != "Pxe" {
		t.Fatalf("the power-on did not boot from the network: boots %v, override %v", boots, boot)
	}
	ev, _ := h.a.Store.ListAudit(t.Context(), inventory.AuditFilter{Subject: m.ID})
	var actions []string
	for _, e := range ev {
		actions = append(actions, e.Action+":"+e.Outcome)
	}
	// The power-on arms the expected boot first: its script fetch gets the agent token.
	if strings.Join(actions, ",") != "bmc.boot-once:ok,boot.expected:ok,machine.enroll:ok" {
		t.Fatalf("audit: %v", actions)
	}
	// The same BMC again is the same machine: refused, not duplicated.
	st, b = h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"bmc_address": bmc.URL, "bmc_username": "admin", "bmc_password": "password"})
	if st != 409 || !strings.Contains(string(b), "rack-1") {
		t.Fatalf("second enrollment of the same BMC: %d %s", st, b)
	}
}

// TestEnrollByBMCMatchesDiscoveredMachine: DHCP saw the NIC first; the BMC enrollment accepts
// that machine instead of creating a second one.
func TestEnrollByBMCMatchesDiscoveredMachine(t *testing.T) {
	h := newHarness(t)
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t)})
	var mac string
	for _, p := range []string{"/redfish/v1/Systems/437XR1138R2/EthernetInterfaces/12446A3B0411", "/redfish/v1/Systems/437XR1138R2/EthernetInterfaces/12446A3B8890"} {
		if d := bmc.Get(p); d != nil {
			if v, _ := d["MACAddress"].(string); v != "" {
				mac = v
				break
			}
		}
	}
	if mac == "" {
		t.Fatal("mockup has no NIC MAC")
	}
	d, _, err := h.a.Lifecycle.RecordDiscovered(t.Context(), mac, "x86_64-efi", "PXEClient:Arch:00007", "br0")
	if err != nil {
		t.Fatal(err)
	}
	st, b := h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"bmc_address": bmc.URL, "bmc_username": "admin", "bmc_password": "password"})
	if st != 201 {
		t.Fatalf("%d %s", st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)
	if m.ID != d.ID || m.State != "enrolled" || m.BMC == nil {
		t.Fatalf("want the discovered machine %s accepted with its BMC, got %+v", d.ID, m)
	}
}

// TestProvisionRefusedWithoutPublicURL: a Slate without public_url cannot install (machines
// could not fetch the image): `slate machine provision` (PATCH desired_release) is refused
// with 409 and the reason, instead of answering that the machine "should now run" it.
func TestProvisionRefusedWithoutPublicURL(t *testing.T) {
	h := newHarness(t) // the harness sets no public_url
	ctx := t.Context()
	var m inventory.Machine
	if err := h.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		rel, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "1", Kind: lifecycle.KindDisk, ImageRef: "plant/hmi",
			ImageDigest: "sha256:" + strings.Repeat("1", 64), CreatedBy: "olga"})
		if err != nil {
			return err
		}
		if err := tx.SetReleaseState(ctx, rel.ID, lifecycle.ReleaseApproved, "omar"); err != nil {
			return err
		}
		m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: "hmi-1", MACs: []string{"52:54:00:00:aa:19"}, State: lifecycle.Ready})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st, b := h.do("PATCH", "/api/v1/machines/"+m.ID, h.tok["operator"], map[string]string{"desired_release": "hmi@1"})
	if st != 409 || !strings.Contains(string(b), "public_url") {
		t.Fatalf("provision without public_url: %d %s", st, b)
	}
}
