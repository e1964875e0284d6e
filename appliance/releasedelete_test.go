package appliance_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"slate/inventory"
)

// TestReleaseDraftAPI: a draft naming an image the registry lacks is refused when created
// (not only at approval); DELETE /api/v1/releases/{id} removes a draft (audited), refuses an
// approved release, a draft a machine is assigned and an auditor; used_by counts the machines.
func TestReleaseDraftAPI(t *testing.T) {
	h := newHarness(t)
	op, ad := h.tok["operator"], h.tok["admin"]
	digest := h.pushUntagged("plant/hmi")
	missing := "sha256:" + strings.Repeat("ab", 32)
	st, b := h.do("POST", "/api/v1/releases", op, map[string]any{"name": "hmi", "version": "0", "kind": "bootc", "image_ref": "plant/hmi", "image_digest": missing})
	if st != http.StatusUnprocessableEntity || !strings.Contains(string(b), "not in Slate's registry") {
		t.Fatalf("draft naming a missing image: %d %s", st, b)
	}
	create := func(version string) inventory.Release {
		t.Helper()
		st, b := h.do("POST", "/api/v1/releases", op, map[string]any{"name": "hmi", "version": version, "kind": "bootc", "image_ref": "plant/hmi", "image_digest": digest})
		if st != http.StatusCreated {
			t.Fatalf("create %s: %d %s", version, st, b)
		}
		var r inventory.Release
		json.Unmarshal(b, &r)
		return r
	}
	free, assigned, approved := create("1"), create("2"), create("3")
	if st, b := h.do("POST", "/api/v1/releases/"+approved.ID+"/approve", ad, nil); st != 200 {
		t.Fatalf("approve: %d %s", st, b)
	}
	st, b = h.do("POST", "/api/v1/machines", op, map[string]any{"name": "m1", "macs": []string{"52:54:00:00:b0:01"}})
	if st != 201 {
		t.Fatalf("enroll: %d %s", st, b)
	}
	id := between(string(b), `"id":"`, `"`)
	// (The harness has no public_url, so the API refuses assignments: set it in the store.)
	ref := "hmi@2"
	if err := h.a.Store.Update(context.Background(), func(tx *inventory.Tx) error {
		_, err := tx.UpdateMachine(context.Background(), id, inventory.MachinePatch{DesiredRelease: &ref})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var got inventory.Release
	st, b = h.do("GET", "/api/v1/releases/hmi@2", op, nil)
	if json.Unmarshal(b, &got); st != 200 || got.UsedBy != 1 || !strings.Contains(string(b), `"used_by":1`) {
		t.Fatalf("used_by of the assigned draft: %d %s", st, b)
	}
	if st, b := h.do("DELETE", "/api/v1/releases/hmi@2", op, nil); st != http.StatusConflict || !strings.Contains(string(b), "assigned to 1 machine") {
		t.Fatalf("deleting a draft a machine is assigned: %d %s", st, b)
	}
	// Approving a release a machine is assigned answers its count too.
	st, b = h.do("POST", "/api/v1/releases/hmi@2/approve", ad, nil)
	if st != 200 || !strings.Contains(string(b), `"used_by":1`) {
		t.Fatalf("approve answer: %d %s", st, b)
	}
	st, b = h.do("GET", "/api/v1/releases", op, nil)
	if st != 200 || strings.Count(string(b), `"used_by":0`) != 2 || strings.Count(string(b), `"used_by":1`) != 1 {
		t.Fatalf("list used_by: %s", b)
	}

	for _, tc := range []struct {
		name, tok, id string
		want          int
		says          string
	}{
		{"auditor", h.tok["auditor"], free.ID, http.StatusForbidden, ""},
		{"approved", op, approved.ID, http.StatusConflict, "only a draft can be deleted"},
		{"approved and assigned", op, assigned.ID, http.StatusConflict, "only a draft can be deleted"},
		{"unknown", op, "hmi@9", http.StatusNotFound, ""},
	} {
		if st, b := h.do("DELETE", "/api/v1/releases/"+tc.id, tc.tok, nil); st != tc.want || !strings.Contains(string(b), tc.says) {
			t.Fatalf("%s: %d %s", tc.name, st, b)
		}
	}
	if st, b := h.do("DELETE", "/api/v1/releases/hmi@1", op, nil); st != http.StatusNoContent {
		t.Fatalf("delete draft: %d %s", st, b)
	}
	if st, _ := h.do("GET", "/api/v1/releases/"+free.ID, op, nil); st != http.StatusNotFound {
		t.Fatalf("deleted draft still answers %d", st)
	}
	for _, keep := range []string{assigned.ID, approved.ID} {
		if st, _ := h.do("GET", "/api/v1/releases/"+keep, op, nil); st != 200 {
			t.Fatalf("refused delete removed %s: %d", keep, st)
		}
	}
	st, b = h.do("GET", "/api/v1/audit?action=release.delete", ad, nil)
	if st != 200 || !strings.Contains(string(b), `"outcome":"ok"`) || !strings.Contains(string(b), `"outcome":"refused"`) {
		t.Fatalf("audit: %d %.2000s", st, b)
	}
}
