package appliance_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slate/appliance"
	"slate/inventory"
	"slate/pxe"
	"slate/redfish/redfishtest"
)

// Virtual media through the API, against DMTF's public-telemetry mockup (a manager's CD with
// InsertMedia/EjectMedia): auditors read what is inserted but change nothing; an operator
// boots the machine from the deploy ISO; Slate serves that ISO with its URL patched in; the
// agent booted from it gets its token by MAC exactly once; eject empties the drive.
func TestVirtualMediaThroughTheAPI(t *testing.T) {
	dir := t.TempDir()
	de := filepath.Join(dir, "deployenv")
	os.MkdirAll(de, 0o755)
	for _, f := range []string{"vmlinuz", "initrd.gz"} {
		os.WriteFile(filepath.Join(de, f), []byte("x"), 0o644)
	}
	iso := append(bytes.Repeat([]byte{7}, 8192), []byte(pxe.ISOArgsMarker+strings.Repeat("_", pxe.ISOArgsLen-len(pxe.ISOArgsMarker)))...)
	os.WriteFile(filepath.Join(de, pxe.DeployISO), iso, 0o644)
	h := newHarnessIn(t, dir, appliance.Options{}, func(c *appliance.Config) { c.PublicURL = "http://127.0.0.1:8080" })
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t), PowerState: "Off"})
	mac := "52:54:00:ee:0d:01"
	st, b := h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"name": "cd-1", "macs": []string{mac},
		"bmc_address": bmc.URL, "bmc_username": "admin", "bmc_password": "password"})
	if st != 201 {
		t.Fatalf("enroll: %d %s", st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)

	st, b = h.do("GET", "/api/v1/machines/cd-1/media", h.tok["auditor"], nil)
	if st != 200 || !strings.Contains(string(b), `"inserted":true`) || !strings.Contains(string(b), "/Managers/1/VirtualMedia/CD1") {
		t.Fatalf("status as auditor: %d %s", st, b)
	}
	cdBefore := bmc.Get("/redfish/v1/Managers/1/VirtualMedia/CD1")["Image"]
	if st, b = h.do("POST", "/api/v1/machines/cd-1/media/insert", h.tok["auditor"], map[string]any{"image": "deploy"}); st != 403 {
		t.Fatalf("auditor insert: %d %s", st, b)
	}
	if st, b = h.do("POST", "/api/v1/machines/cd-1/media/insert", h.tok["operator"], map[string]any{"image": "http://203.0.113.9/x.iso"}); st != 422 {
		t.Fatalf("foreign image: %d %s", st, b)
	}
	if ev, _ := h.a.Store.ListAudit(t.Context(), inventory.AuditFilter{Subject: m.ID, Action: "bmc.media-insert"}); len(ev) != 0 ||
		len(bmc.Boots()) != 0 || bmc.Get("/redfish/v1/Managers/1/VirtualMedia/CD1")["Image"] != cdBefore {
		t.Fatalf("a refused request reached the BMC or was audited as done: %+v", ev)
	}
	// The agent's token request before anyone asked for the boot: refused.
	if st, b, _ := h.raw("GET", "/boot/media-token/"+mac, "", "", nil); st != 409 {
		t.Fatalf("token before the boot: %d %s", st, b)
	}
	// Without the ISO on disk, the insert is refused saying what to build, and the BMC is not asked.
	isoPath := filepath.Join(de, pxe.DeployISO)
	os.Rename(isoPath, isoPath+".away")
	if st, b = h.do("POST", "/api/v1/machines/cd-1/media/insert", h.tok["operator"], map[string]any{"image": "deploy", "boot": true}); st != 409 ||
		!strings.Contains(string(b), "make deploy-iso") || len(bmc.Boots()) != 0 {
		t.Fatalf("insert without the ISO: %d %s", st, b)
	}
	os.Rename(isoPath+".away", isoPath)
	st, b = h.do("POST", "/api/v1/machines/cd-1/media/insert", h.tok["operator"], map[string]any{"image": "deploy", "boot": true})
	want := "http://127.0.0.1:8080/boot/deploy/deploy.iso"
	if st != 200 || !strings.Contains(string(b), `"booted":true`) || !strings.Contains(string(b), want) {
		t.Fatalf("insert and boot: %d %s", st, b)
	}
	if boots := bmc.Boots(); len(boots) != 1 || boots[0] != "Cd" {
		t.Fatalf("boots %v", boots)
	}
	if d := bmc.Get("/redfish/v1/Managers/1/VirtualMedia/CD1"); d["Image"] != want {
		t.Fatalf("CD1 %v", d)
	}
	// What the BMC fetches: the ISO with Slate's URL where the placeholder was.
	st, body, _ := h.raw("GET", "/boot/deploy/deploy.iso", "", "", nil)
	if st != 200 || len(body) != len(iso) || !bytes.Contains(body, []byte("slate.url=http://127.0.0.1:8080 console=ttyS0 ")) {
		t.Fatalf("ISO: %d %d bytes", st, len(body))
	}
	// The deploy environment booted from it asks by MAC: one token, owned by the machine.
	st, tb, hdr := h.raw("GET", "/boot/media-token/"+mac, "", "", nil)
	tok := strings.TrimSpace(string(tb))
	if st != 200 || hdr.Get("Slate-Machine") != m.ID || !strings.HasPrefix(tok, "sla_") {
		t.Fatalf("token: %d %s", st, tb)
	}
	if st, _, _ := h.raw("GET", "/boot/media-token/"+mac, "", "", nil); st != 409 {
		t.Fatalf("a second token for one boot: %d", st)
	}
	st, b = h.do("POST", "/api/v1/machines/cd-1/media/eject", h.tok["operator"], nil)
	if st != 200 || strings.Contains(string(b), `"inserted":true`) {
		t.Fatalf("eject: %d %s", st, b)
	}
	ev, _ := h.a.Store.ListAudit(t.Context(), inventory.AuditFilter{Subject: m.ID})
	var actions []string
	for _, e := range ev {
		actions = append(actions, e.Actor+":"+e.Action+":"+e.Outcome)
	}
	got := strings.Join(actions, ",")
	for _, w := range []string{"olga:bmc.media-eject:ok", "slate:agent.token-issued:ok", "olga:bmc.boot-once:ok", "olga:bmc.media-insert:ok"} {
		if !strings.Contains(got, w) {
			t.Fatalf("audit lacks %s: %s", w, got)
		}
	}
}
