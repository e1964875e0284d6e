package appliance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"slate/api"
	"slate/image/registry"
	"slate/inventory"
)

// pushUntagged pushes a small random image by digest (no tag) into repo and returns the digest.
func (h *harness) pushUntagged(repo string) string {
	h.t.Helper()
	img, err := random.Image(4<<10, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	d, _ := img.Digest()
	ref, err := name.ParseReference(strings.TrimPrefix(h.srv.URL, "http://")+"/"+repo+"@"+d.String(), name.Insecure)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "olga", Password: "pass-operator-01"})); err != nil {
		h.t.Fatalf("push %s: %v", ref, err)
	}
	return d.String()
}

// TestRegistryGCIsAdminOnlyReportsAndIsAudited: an untagged image a release references
// survives, an untagged image nothing references goes; operators and auditors are refused;
// dry run and real run are both audited with their counts.
func TestRegistryGCIsAdminOnlyReportsAndIsAudited(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	released := h.pushUntagged("plant/hmi")
	garbage := h.pushUntagged("plant/hmi")
	st, b := h.do("POST", "/api/v1/releases", h.tok["operator"], map[string]any{"name": "hmi", "version": "1", "kind": "bootc",
		"image_ref": "plant/hmi", "image_digest": released})
	if st != 201 {
		t.Fatalf("create release: %d %s", st, b)
	}
	rt := slices.IndexFunc(h.a.API.Routes(), func(r api.Route) bool { return r.Method == "POST" && r.Path == "/registry/gc" })
	if rt < 0 || fmt.Sprint(h.a.API.Routes()[rt].Roles) != "[admin]" {
		t.Fatalf("POST /registry/gc is not in the role matrix as admin-only")
	}
	for _, role := range []string{"operator", "auditor"} {
		if st, b := h.do("POST", "/api/v1/registry/gc", h.tok[role], map[string]bool{"dry_run": true}); st != 403 {
			t.Fatalf("%s: %d %s", role, st, b)
		}
	}
	var dry, real registry.GCReport
	st, b = h.do("POST", "/api/v1/registry/gc", h.tok["admin"], map[string]bool{"dry_run": true})
	if err := json.Unmarshal(b, &dry); st != 200 || err != nil || !dry.DryRun ||
		fmt.Sprint(dry.Manifests) != "[plant/hmi@"+garbage+"]" || len(dry.Blobs) != 3 || dry.BytesFreed <= 0 {
		t.Fatalf("dry run: %d %s", st, b)
	}
	if ok, _ := h.a.Images.HasManifest(ctx, "plant/hmi", garbage); !ok {
		t.Fatal("the dry run removed the manifest")
	}
	st, b = h.do("POST", "/api/v1/registry/gc", h.tok["admin"], map[string]bool{"dry_run": false})
	if err := json.Unmarshal(b, &real); st != 200 || err != nil || real.DryRun ||
		fmt.Sprint(real.Manifests) != fmt.Sprint(dry.Manifests) || fmt.Sprint(real.Blobs) != fmt.Sprint(dry.Blobs) || real.BytesFreed != dry.BytesFreed {
		t.Fatalf("real run: %d %s\n dry run was %+v", st, b, dry)
	}
	if ok, _ := h.a.Images.HasManifest(ctx, "plant/hmi", garbage); ok {
		t.Fatal("the unreferenced manifest is still there")
	}
	if ok, _ := h.a.Images.HasManifest(ctx, "plant/hmi", released); !ok {
		t.Fatal("the release's image was collected")
	}
	if st, b := h.do("POST", "/api/v1/registry/gc", h.tok["admin"], map[string]any{"dry_run": "yes"}); st != 400 {
		t.Fatalf("bad body: %d %s", st, b)
	}
	st, b = h.do("GET", "/api/v1/audit?action=registry.gc", h.tok["auditor"], nil)
	var ev struct{ Items []inventory.AuditEvent }
	json.Unmarshal(b, &ev)
	if st != 200 || len(ev.Items) != 2 {
		t.Fatalf("registry.gc audit: %d %s", st, b)
	}
	run, rehearsal := ev.Items[0], ev.Items[1] // newest first
	if run.Actor != "admin" || run.Outcome != "ok" || run.Details["dry_run"] != false || run.Details["manifests_removed"] != float64(1) ||
		run.Details["blobs_removed"] != float64(3) || run.Details["bytes_freed"] != float64(real.BytesFreed) || rehearsal.Details["dry_run"] != true {
		t.Fatalf("audit events: %+v / %+v", run, rehearsal)
	}
	st, b = h.do("GET", "/api/v1/audit?action=api.refused", h.tok["auditor"], nil)
	json.Unmarshal(b, &ev)
	if st != 200 || len(ev.Items) != 2 || !strings.Contains(ev.Items[0].Subject, "/registry/gc") {
		t.Fatalf("refused GC attempts are not audited: %s", b)
	}
}
