package appliance_test

import (
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"slate/agent/agentproto"
	"slate/image/registry"
	"slate/internal/testenv"
	"slate/inventory"
)

// pushIndex pushes a two-platform index (untagged) into repo and returns its digest and its
// children's digests.
func (h *harness) pushIndex(repo string) (string, []string) {
	h.t.Helper()
	idx, err := random.Index(2<<10, 1, 2)
	if err != nil {
		h.t.Fatal(err)
	}
	d, _ := idx.Digest()
	ref, err := name.ParseReference(strings.TrimPrefix(h.srv.URL, "http://")+"/"+repo+"@"+d.String(), name.Insecure)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuth(&authn.Basic{Username: "olga", Password: "pass-operator-01"})); err != nil {
		h.t.Fatalf("push %s: %v", ref, err)
	}
	im, _ := idx.IndexManifest()
	var kids []string
	for _, m := range im.Manifests {
		kids = append(kids, m.Digest.String())
	}
	return d.String(), kids
}

// pushTagged pushes a small random image under repo:tag and returns its digest and its layer's.
func (h *harness) pushTagged(repo, tag string) (string, string) {
	h.t.Helper()
	img, err := random.Image(4<<10, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	d, _ := img.Digest()
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()
	ref, err := name.ParseReference(strings.TrimPrefix(h.srv.URL, "http://")+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "olga", Password: "pass-operator-01"})); err != nil {
		h.t.Fatalf("push %s: %v", ref, err)
	}
	return d.String(), ld.String()
}

func (h *harness) machine(name, mac string) inventory.Machine {
	h.t.Helper()
	st, b := h.do("POST", "/api/v1/machines", h.tok["operator"], map[string]any{"name": name, "macs": []string{mac}})
	if st != 201 {
		h.t.Fatalf("enroll %s: %d %s", name, st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)
	return m
}

// TestAgentTokenPullsOnlyItsInstall: with real skopeo, a machine's agent token pulls its
// install's image (an index: the index, both children and their blobs) while the install
// task runs — as a Bearer token and as the password of Basic auth, as bootc's auth.json
// sends it — and nothing else: not another repository's image, not another image of the same
// repository (manifest or blob), not by tag, not the catalog, not before the task runs, not
// after it finished, and never with a node token.
func TestAgentTokenPullsOnlyItsInstall(t *testing.T) {
	skopeo := testenv.RequireCommand(t, "skopeo", "skopeo")
	h := newHarness(t)
	ctx := context.Background()
	host := strings.TrimPrefix(h.srv.URL, "http://")
	release, kids := h.pushIndex("plant/hmi")
	sibling, siblingLayer := h.pushTagged("plant/hmi", "old")
	other, otherLayer := h.pushTagged("plant/other", "1")

	m := h.machine("press-7", "52:54:00:5c:00:07")
	agentTok, err := h.a.Store.IssueAgentToken(ctx, m.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var nodeTok string
	if err := h.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		nodeTok, err = tx.IssueNodeToken(ctx, m.ID, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// A second machine's install of another image must not widen this machine's scope.
	m2 := h.machine("press-8", "52:54:00:5c:00:08")
	params := func(repo, d string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"image": host + "/" + repo, "digest": d, "target_imgref": repo + ":1", "release": "hmi@1"})
		return b
	}
	if _, err := h.a.Store.CreateTask(ctx, "test", m2.ID, string(agentproto.KindInstallBootc), params("plant/other", other)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := h.a.Store.ClaimNextTask(ctx, m2.ID, 3, string(agentproto.KindInstallBootc)); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}

	pull := func(cred []string, ref string, all bool) (string, error) {
		args := []string{"copy", "--src-tls-verify=false"}
		args = append(args, cred...)
		if all {
			args = append(args, "--all")
		}
		args = append(args, "docker://"+host+"/"+ref, "oci:"+filepath.Join(t.TempDir(), "oci"))
		out, err := exec.Command(skopeo, args...).CombinedOutput()
		return string(out), err
	}
	// skopeo answers a Basic challenge with Basic credentials only: the token is the password
	// (as bootc's auth.json sends it). The agent's own client (go-containerregistry) sends it as
	// a Bearer token: ggcrPull.
	basic := []string{"--src-creds", "slate-agent:" + agentTok}
	bearer := basic
	refused := func(what string, cred []string, ref string) {
		t.Helper()
		out, err := pull(cred, ref, false)
		if err == nil || !strings.Contains(strings.ToLower(out), "denied") {
			t.Fatalf("%s: %s must be refused (denied): %v\n%s", what, ref, err, out)
		}
	}
	raw := func(tok, path string) (int, string) {
		t.Helper()
		st, b, _ := h.raw("GET", path, tok, "", nil)
		return st, string(b)
	}

	// Before the install task runs: nothing.
	refused("before the install", bearer, "plant/hmi@"+release)
	if st, b := raw(agentTok, "/v2/plant/hmi/manifests/"+release); st != 403 || !strings.Contains(b, `"DENIED"`) || !strings.Contains(b, "no install task") {
		t.Fatalf("before the install: %d %s", st, b)
	}

	task, err := h.a.Store.CreateTask(ctx, "test", m.ID, string(agentproto.KindInstallBootc), params("plant/hmi", release))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := h.a.Store.ClaimNextTask(ctx, m.ID, 3, string(agentproto.KindInstallBootc)); !ok || err != nil || got.ID != task.ID {
		t.Fatalf("claim: %+v %v %v", got, ok, err)
	}

	// During the install: its image, whole (index, children, blobs), by Bearer and by Basic.
	if out, err := pull(basic, "plant/hmi@"+release, true); err != nil {
		t.Fatalf("skopeo pull of the install's image: %v\n%s", err, out)
	}
	if err := ggcrPull(host+"/plant/hmi@"+release, agentTok); err != nil {
		t.Fatalf("pull of the install's image with the token as Bearer: %v", err)
	}
	if err := ggcrPull(host+"/plant/other@"+other, agentTok); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("pull of another repository's image with the token as Bearer: %v", err)
	}
	// A per-boot token is bound to the address that fetched the boot script: the same
	// machine's token, presented from anywhere else (here the test's 127.0.0.1), pulls nothing.
	if err := h.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		_, err := tx.ExpectBoot(ctx, m.ID, "test", "bound-token check", time.Hour)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boundTok, err := h.a.Store.IssueBootToken(ctx, inventory.BootTokenRequest{MachineID: m.ID, MAC: "52:54:00:5c:00:07",
		Source: netip.MustParseAddr("10.99.0.9"), TTL: time.Hour, Activation: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcrPull(host+"/plant/hmi@"+release, boundTok); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("a token bound to 10.99.0.9, presented from 127.0.0.1 as Bearer, must pull nothing: %v", err)
	}
	if out, err := pull([]string{"--src-creds", "slate-agent:" + boundTok}, "plant/hmi@"+release, false); err == nil {
		t.Fatalf("a token bound to 10.99.0.9, presented from 127.0.0.1 as a password, must pull nothing:\n%s", out)
	}
	if out, err := pull(bearer, "plant/hmi@"+kids[1], false); err != nil {
		t.Fatalf("pull of a child of the install's index: %v\n%s", err, out)
	}
	// … and nothing else.
	refused("another repository", bearer, "plant/other@"+other)
	refused("another image of the repository", bearer, "plant/hmi@"+sibling)
	refused("by tag", bearer, "plant/hmi:old")
	for path, want := range map[string]string{
		"/v2/plant/hmi/blobs/" + siblingLayer:  "outside it",
		"/v2/plant/other/blobs/" + otherLayer:  "outside it",
		"/v2/plant/hmi/blobs/" + otherLayer:    "outside it", // a blob of the other repository, asked through this one
		"/v2/_catalog":                         "outside it",
		"/v2/plant/hmi/tags/list":              "outside it",
		"/v2/plant/hmi/manifests/old":          "not by digest",
		"/v2/plant/hmi/referrers/" + release:   "outside it",
		"/v2/plant/other/manifests/" + other:   "outside it",
		"/v2/plant/hmi/manifests/" + sibling:   "outside it",
		"/v2/plant/hmi/manifests/" + kids[0]:   "", // allowed: the index's child
		"/v2/":                                 "", // allowed: the version check
		"/v2/plant/hmi/manifests/" + release:   "",
		"/v2/plant/hmi/manifests/" + kids[1]:   "",
		"/v2/plant/hmi/manifests/" + other:     "outside it", // the other machine's image, not this one's
		"/v2/plant/other/manifests/" + release: "outside it",
	} {
		st, b := raw(agentTok, path)
		if want == "" {
			if st != 200 {
				t.Fatalf("GET %s during the install: %d %s", path, st, b)
			}
			continue
		}
		if st != 403 || !strings.Contains(b, `"DENIED"`) || !strings.Contains(b, want) || !strings.Contains(b, "plant/hmi@"+release) {
			t.Fatalf("GET %s during the install: %d %s, want 403 naming the scope and %q", path, st, b, want)
		}
	}
	// Machine tokens never write, even into their own image's repository.
	if st, b, _ := h.raw("POST", "/v2/plant/hmi/blobs/uploads/", agentTok, "", nil); st != 403 || !strings.Contains(b2s(b), "never write") {
		t.Fatalf("upload with an agent token: %d %s", st, b)
	}
	// A node token of the same machine gets nothing, even while the install runs.
	refused("node token during the install", []string{"--src-creds", "slate-agent:" + nodeTok}, "plant/hmi@"+release)
	if st, b := raw(nodeTok, "/v2/plant/hmi/manifests/"+release); st != 403 || !strings.Contains(b, "node token pulls nothing") {
		t.Fatalf("node token: %d %s", st, b)
	}

	// After the install: nothing, by either way of sending the token (no remembered access).
	if _, _, err := h.a.Store.FinishTask(ctx, m.ID, task.ID, inventory.TaskOutcome{State: inventory.TaskSucceeded}, nil); err != nil {
		t.Fatal(err)
	}
	refused("after the install", basic, "plant/hmi@"+release)
	if err := ggcrPull(host+"/plant/hmi@"+release, agentTok); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("pull with the token as Bearer after the install: %v", err)
	}
	refused("node token after the install", []string{"--src-creds", "slate-agent:" + nodeTok}, "plant/hmi@"+release)

	// A disk-image install: the agent fetches the one layer at the task's blob_url with its
	// token as Bearer (agent/installtask.go); the other repository's image is now in scope, the
	// earlier install's image is not.
	if _, _, err := h.a.Store.FinishTask(ctx, m2.ID, mustClaimed(t, h, m2.ID), inventory.TaskOutcome{State: inventory.TaskSucceeded}, nil); err != nil {
		t.Fatal(err)
	}
	diskParams, _ := json.Marshal(map[string]any{"blob_url": h.srv.URL + "/v2/plant/other/blobs/" + otherLayer, "digest": otherLayer,
		"image_digest": other, "release": "other@1"})
	if _, err := h.a.Store.CreateTask(ctx, "test", m.ID, string(agentproto.KindInstallImage), diskParams); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := h.a.Store.ClaimNextTask(ctx, m.ID, 3, string(agentproto.KindInstallImage)); !ok || err != nil {
		t.Fatalf("claim install-image: %v %v", ok, err)
	}
	if st, b := raw(agentTok, "/v2/plant/other/blobs/"+otherLayer); st != 200 {
		t.Fatalf("install-image blob fetch: %d %s", st, b)
	}
	if st, b := raw(agentTok, "/v2/plant/hmi/manifests/"+release); st != 403 || !strings.Contains(b, "plant/other@"+other) {
		t.Fatalf("the earlier install's image during a later install: %d %s", st, b)
	}

	// Users are unchanged: an auditor pulls anything, by tag too.
	if out, err := pull([]string{"--src-creds", "aldo:pass-auditor-01"}, "plant/other:1", false); err != nil {
		t.Fatalf("auditor pull: %v\n%s", err, out)
	}
}

func b2s(b []byte) string { return string(b) }

// mustClaimed returns the id of the machine's running task.
func mustClaimed(t *testing.T, h *harness, machineID string) string {
	t.Helper()
	ts, err := h.a.Store.RunningTasks(context.Background(), machineID)
	if err != nil || len(ts) != 1 {
		t.Fatalf("running tasks of %s: %+v %v", machineID, ts, err)
	}
	return ts[0].ID
}

// ggcrPull reads an index, its children and all their blobs the way the agent's client does
// (go-containerregistry, the token as Bearer).
func ggcrPull(ref, tok string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	opt := remote.WithAuth(&authn.Bearer{Token: tok})
	desc, err := remote.Get(r, opt)
	if err != nil {
		return err
	}
	var imgs []v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, m := range im.Manifests {
			img, err := idx.Image(m.Digest)
			if err != nil {
				return err
			}
			imgs = append(imgs, img)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return err
		}
		imgs = append(imgs, img)
	}
	for _, img := range imgs {
		if _, err := img.RawConfigFile(); err != nil {
			return err
		}
		ls, err := img.Layers()
		if err != nil {
			return err
		}
		for _, l := range ls {
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// TestRegistryDeleteOnlyThroughTheAdminPath: /v2/ DELETE is refused for every caller (admin
// included, with real skopeo), manifests, tags and blobs alike; the admin API deletes an
// unreferenced image with its tags, audited with who; it refuses (and audits) the image of an
// approved release and a child of it, names the release, and refuses operators and auditors.
// A retired release's image may go once no machine uses it, not while one is assigned it.
func TestRegistryDeleteOnlyThroughTheAdminPath(t *testing.T) {
	skopeo := testenv.RequireCommand(t, "skopeo", "skopeo")
	h := newHarness(t)
	ctx := context.Background()
	host := strings.TrimPrefix(h.srv.URL, "http://")
	released, kids := h.pushIndex("plant/hmi")
	loose, looseLayer := h.pushTagged("plant/hmi", "scratch")
	present := func(repo, d string) bool { ok, _ := h.a.Images.HasManifest(ctx, repo, d); return ok }

	st, b := h.do("POST", "/api/v1/releases", h.tok["operator"], map[string]any{"name": "hmi", "version": "1", "kind": "bootc",
		"image_ref": "plant/hmi", "image_digest": released})
	if st != 201 {
		t.Fatalf("create release: %d %s", st, b)
	}
	if st, b := h.do("POST", "/api/v1/releases/hmi@1/approve", h.tok["operator"], nil); st != 200 {
		t.Fatalf("approve: %d %s", st, b)
	}

	// The registry API deletes nothing, whoever asks.
	for _, creds := range []string{"admin:first-pass-01", "olga:pass-operator-01"} {
		for _, d := range []string{released, loose} {
			out, err := exec.Command(skopeo, "delete", "--tls-verify=false", "--creds", creds, "docker://"+host+"/plant/hmi@"+d).CombinedOutput()
			if err == nil || !present("plant/hmi", d) {
				t.Fatalf("skopeo delete as %s: %v, image present %v\n%s", creds, err, present("plant/hmi", d), out)
			}
		}
	}
	for _, path := range []string{"/v2/plant/hmi/manifests/" + loose, "/v2/plant/hmi/manifests/scratch", "/v2/plant/hmi/blobs/" + looseLayer} {
		for _, role := range []string{"admin", "operator", "auditor"} {
			st, b, _ := h.raw("DELETE", path, h.tok[role], "", nil)
			if st != 405 || !strings.Contains(string(b), "UNSUPPORTED") || !strings.Contains(string(b), "slate registry rm") {
				t.Fatalf("DELETE %s as %s: %d %s", path, role, st, b)
			}
		}
	}
	// Cancelling an upload in progress deletes no content and stays a push: an operator may.
	st, _, hdr := h.raw("POST", "/v2/plant/hmi/blobs/uploads/", h.tok["operator"], "", nil)
	if st != 202 {
		t.Fatalf("start upload: %d", st)
	}
	loc := strings.TrimPrefix(hdr.Get("Location"), h.srv.URL)
	if st, b, _ := h.raw("DELETE", loc, h.tok["operator"], "", nil); st != 204 {
		t.Fatalf("cancel upload %s: %d %s", hdr.Get("Location"), st, b)
	}
	if st, _, _ := h.raw("DELETE", "/v2/plant/hmi/manifests/"+loose, "", "", nil); st != 401 {
		t.Fatalf("anonymous DELETE: %d", st)
	}
	if !present("plant/hmi", loose) {
		t.Fatal("a /v2/ DELETE removed the image")
	}
	if st, b, _ := h.raw("GET", "/v2/plant/hmi/blobs/"+looseLayer, h.tok["auditor"], "", nil); st != 200 {
		t.Fatalf("a /v2/ DELETE removed the blob: %d %s", st, b)
	}

	del := func(role, repo, d string) (int, []byte) {
		return h.do("DELETE", "/api/v1/registry/manifests/"+url.PathEscape(d)+"?repo="+url.QueryEscape(repo), h.tok[role], nil)
	}
	for _, role := range []string{"operator", "auditor"} {
		if st, b := del(role, "plant/hmi", loose); st != 403 || !present("plant/hmi", loose) {
			t.Fatalf("%s delete: %d %s", role, st, b)
		}
	}
	for _, d := range []string{released, kids[0]} {
		st, b := del("admin", "plant/hmi", d)
		if st != 409 || !strings.Contains(string(b), "release hmi@1 (approved)") || !present("plant/hmi", d) {
			t.Fatalf("delete of the approved release's image %s: %d %s", d, st, b)
		}
	}
	if st, b := del("admin", "plant/hmi", "sha256:"+strings.Repeat("0", 64)); st != 404 {
		t.Fatalf("delete of a missing image: %d %s", st, b)
	}
	st, b = del("admin", "plant/hmi", loose)
	var rep registry.DeleteReport
	if err := json.Unmarshal(b, &rep); st != 200 || err != nil || strings.Join(rep.Tags, ",") != "scratch" || present("plant/hmi", loose) {
		t.Fatalf("delete of an unreferenced image: %d %s, present %v", st, b, present("plant/hmi", loose))
	}
	if out, err := exec.Command(skopeo, "inspect", "--tls-verify=false", "--creds", "aldo:pass-auditor-01", "docker://"+host+"/plant/hmi:scratch").CombinedOutput(); err == nil {
		t.Fatalf("the deleted image's tag still resolves:\n%s", out)
	}
	evs, err := h.a.Store.ListAudit(ctx, inventory.AuditFilter{Action: "registry.delete"})
	if err != nil || len(evs) != 4 {
		t.Fatalf("registry.delete audit: %d events, %v: %+v", len(evs), err, evs)
	}
	if e := evs[0]; e.Actor != "admin" || e.Outcome != "ok" || e.Subject != "plant/hmi@"+loose {
		t.Fatalf("the delete's audit event: %+v", e)
	}
	if e := evs[2]; e.Actor != "admin" || e.Outcome != "refused" || !strings.Contains(e.Details["reason"].(string), "hmi@1") {
		t.Fatalf("the refusal's audit event: %+v", e)
	}

	// Garbage collection agrees: the release's image stays, the deleted image's blobs go (its
	// manifest, config and layer).
	var gc registry.GCReport
	st, b = h.do("POST", "/api/v1/registry/gc", h.tok["admin"], map[string]bool{"dry_run": false})
	if err := json.Unmarshal(b, &gc); st != 200 || err != nil || len(gc.Manifests) != 0 || len(gc.Blobs) != 3 || !present("plant/hmi", released) {
		t.Fatalf("gc after the delete: %d %s", st, b)
	}

	// A retired release protects its image while a machine is assigned it, not after.
	m := h.machine("press-9", "52:54:00:5c:00:09")
	if err := h.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		_, err := tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{DesiredRelease: ptr("hmi@1")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if st, b := h.do("POST", "/api/v1/releases/hmi@1/retire", h.tok["operator"], map[string]string{"reason": "replaced"}); st != 200 {
		t.Fatalf("retire: %d %s", st, b)
	}
	if st, b := del("admin", "plant/hmi", released); st != 409 || !strings.Contains(string(b), "machine press-9") {
		t.Fatalf("delete of a retired release's image a machine is assigned: %d %s", st, b)
	}
	if err := h.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		_, err := tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{DesiredRelease: ptr("")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if st, b := del("admin", "plant/hmi", released); st != 200 || present("plant/hmi", released) {
		t.Fatalf("delete of a retired release's image nobody uses: %d %s", st, b)
	}
}

func ptr[T any](v T) *T { return &v }
