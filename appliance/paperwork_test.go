package appliance_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/appliance"
	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
)

// The person fields start from wipe.certificate_file: the machine page's form is prefilled
// with them, and an API confirmation that gives only a name takes the rest from there (and
// stores the merged person with the confirmation). A certificate file whose person lacks the
// title does not make a confirmation without one pass.
func TestWipePersonDefaultsFromConfiguration(t *testing.T) {
	for _, c := range []struct {
		name, meta string
		status     int
	}{
		{"complete defaults", `{"person":{"name":"Werk 4 IT","title":"Sanitization officer","organization":"Werk 4 GmbH","location":"Halle 2","phone":"+49 711 555-0"}}`, 201},
		{"defaults without title", `{"person":{"name":"Werk 4 IT","organization":"Werk 4 GmbH","location":"Halle 2"}}`, 422},
	} {
		t.Run(c.name, func(t *testing.T) {
			metaFile := filepath.Join(t.TempDir(), "cert.json")
			if err := os.WriteFile(metaFile, []byte(c.meta), 0o600); err != nil {
				t.Fatal(err)
			}
			h := newHarnessIn(t, t.TempDir(), appliance.Options{}, func(cfg *appliance.Config) { cfg.Wipe.CertificateFile = metaFile })
			ctx := context.Background()
			var m inventory.Machine
			if err := h.a.Store.Update(ctx, func(tx *inventory.Tx) error {
				var err error
				m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: "press-4", MACs: []string{"52:54:00:00:44:01"}, State: lifecycle.Decommissioning})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			plan, err := wipe.MakePlan(m.ID, []wipe.DriveInfo{{Name: "vda", Path: "/dev/vda", Transport: wipe.TransportVirtio, Media: wipe.MediaVirtual,
				Model: "QEMU HARDDISK", Serial: "VD-0001", SizeBytes: 1 << 30, LogicalBlockSize: 512, PhysicalBlockSize: 512}}, wipe.DefaultPolicy(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			pj, _ := json.Marshal(plan)
			task, err := h.a.Store.CreateTask(ctx, "test", m.ID, string(agentproto.KindWipePlan), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := h.a.Store.ClaimNextTask(ctx, m.ID, 3); err != nil {
				t.Fatal(err)
			}
			if _, _, err := h.a.Store.FinishTask(ctx, m.ID, task.ID, inventory.TaskOutcome{State: inventory.TaskSucceeded, Result: pj}, nil); err != nil {
				t.Fatal(err)
			}
			// The form is prefilled from the file.
			req, _ := http.NewRequest("GET", h.srv.URL+"/machines/"+m.ID, nil)
			req.AddCookie(&http.Cookie{Name: "slate_session", Value: h.uiSession("olga").token})
			st, page, _ := h.send(req)
			if st != 200 || !strings.Contains(string(page), `name="person_organization" value="Werk 4 GmbH"`) || !strings.Contains(string(page), `name="person_name" value="Werk 4 IT"`) {
				t.Fatalf("machine page: %d, form not prefilled from wipe.certificate_file", st)
			}
			st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/wipe/confirm", h.tok["operator"], map[string]any{"plan_digest": plan.Digest(), "machine_name": "press-4",
				"person": map[string]string{"name": "Olga Weber"}})
			if st != c.status {
				t.Fatalf("confirm with only a name: %d %s, want %d", st, b, c.status)
			}
			if st != 201 {
				if !strings.Contains(string(b), "person.title") || strings.Contains(string(b), "person.organization") {
					t.Fatalf("refusal does not name exactly the missing title: %s", b)
				}
				return
			}
			var wt inventory.Task
			json.Unmarshal(b, &wt)
			var stored []byte
			if err := h.a.Store.Update(ctx, func(tx *inventory.Tx) error {
				var err error
				stored, _, err = tx.WipePerson(ctx, wt.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			var p wipe.Person
			json.Unmarshal(stored, &p)
			if p != (wipe.Person{Name: "Olga Weber", Title: "Sanitization officer", Organization: "Werk 4 GmbH", Location: "Halle 2", Phone: "+49 711 555-0"}) {
				t.Fatalf("stored person %+v", p)
			}
		})
	}
}
