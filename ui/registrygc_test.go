package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"slate/inventory"
	"slate/lifecycle"
)

// formClient logs a user in through the login form and returns a client with the session.
func formClient(t *testing.T, s *site, user, pw string) *http.Client {
	t.Helper()
	cl := &http.Client{Jar: &cookieJar{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := cl.Get(s.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	csrf := between(readAll(r), `name="csrf" value="`, `"`)
	r, err = cl.PostForm(s.srv.URL+"/login", url.Values{"csrf": {csrf}, "username": {user}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login %s: %d", user, r.StatusCode)
	}
	return cl
}

// TestRegistryGCForm: the releases page offers admins (only) the garbage-collection form;
// a dry run reports without removing, a real run removes and reports, both audited; the
// form needs its CSRF token like every other.
func TestRegistryGCForm(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	img, err := random.Image(4<<10, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ref, _ := name.ParseReference(strings.TrimPrefix(s.srv.URL, "http://")+"/plant/old@"+d.String(), name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "tom", Password: "tech-pass-01"})); err != nil {
		t.Fatal(err)
	}
	present := func() bool { ok, _ := s.a.Images.HasManifest(ctx, "plant/old", d.String()); return ok }

	tom := formClient(t, s, "tom", "tech-pass-01")
	r, _ := tom.Get(s.srv.URL + "/releases")
	page := readAll(r)
	if strings.Contains(page, "Garbage-collect registry") {
		t.Fatal("an operator is offered the garbage-collection form")
	}
	csrf := between(page, `name="csrf" value="`, `"`)
	r, _ = tom.PostForm(s.srv.URL+"/registry/gc", url.Values{"csrf": {csrf}})
	if readAll(r); r.StatusCode != http.StatusForbidden || !present() {
		t.Fatalf("operator's garbage collection: %d, image present %v", r.StatusCode, present())
	}

	admin := formClient(t, s, "admin", "first-pass-01")
	r, _ = admin.Get(s.srv.URL + "/releases")
	page = readAll(r)
	if !strings.Contains(page, `action="/registry/gc"`) || !strings.Contains(page, `name="dry_run"`) {
		t.Fatal("the admin's releases page has no garbage-collection form with a dry-run box")
	}
	csrf = between(page, `name="csrf" value="`, `"`)
	r, _ = admin.PostForm(s.srv.URL+"/registry/gc", url.Values{"csrf": {"forged"}, "dry_run": {"1"}})
	if readAll(r); r.StatusCode != http.StatusForbidden {
		t.Fatalf("forged CSRF: %d", r.StatusCode)
	}
	r, _ = admin.PostForm(s.srv.URL+"/registry/gc", url.Values{"csrf": {csrf}, "dry_run": {"1"}})
	page = readAll(r)
	if r.StatusCode != http.StatusOK || !strings.Contains(page, "Dry run: would remove 1 manifest and 3 blobs") ||
		!strings.Contains(page, "plant/old@"+d.String()) || !present() {
		t.Fatalf("dry run: %d, image present %v\n%.3000s", r.StatusCode, present(), between(page, "<main", "</main>"))
	}
	r, _ = admin.PostForm(s.srv.URL+"/registry/gc", url.Values{"csrf": {csrf}})
	page = readAll(r)
	if r.StatusCode != http.StatusOK || !strings.Contains(page, "Removed 1 manifest and 3 blobs") || present() {
		t.Fatalf("real run: %d, image present %v\n%.3000s", r.StatusCode, present(), between(page, "<main", "</main>"))
	}
	evs, err := s.a.Store.ListAudit(ctx, inventory.AuditFilter{Action: "registry.gc"})
	if err != nil || len(evs) != 2 || evs[0].Actor != "admin" || evs[0].Details["dry_run"] != false || evs[1].Details["dry_run"] != true {
		t.Fatalf("audit: %+v %v", evs, err)
	}
}

// TestRegistryDeleteForm: the releases page offers admins (only) the delete form; it needs
// its CSRF token and the image typed twice; an approved release's image is refused naming the
// release; an unreferenced image is deleted; both are audited with the admin's name.
func TestRegistryDeleteForm(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	push := func(repo string) string {
		img, err := random.Image(4<<10, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		ref, _ := name.ParseReference(strings.TrimPrefix(s.srv.URL, "http://")+"/"+repo+"@"+d.String(), name.Insecure)
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "tom", Password: "tech-pass-01"})); err != nil {
			t.Fatal(err)
		}
		return repo + "@" + d.String()
	}
	loose, released := push("plant/old"), push("plant/hmi")
	present := func(img string) bool {
		repo, d, _ := strings.Cut(img, "@")
		ok, _ := s.a.Images.HasManifest(ctx, repo, d)
		return ok
	}
	repo, d, _ := strings.Cut(released, "@")
	if _, err := s.a.Releases.Create(ctx, "tom", lifecycle.NewRelease{Name: "hmi", Version: "1", Kind: lifecycle.KindBootc, ImageRef: repo, ImageDigest: d}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.a.Releases.Approve(ctx, "tom", "hmi@1"); err != nil {
		t.Fatal(err)
	}

	tom := formClient(t, s, "tom", "tech-pass-01")
	r, _ := tom.Get(s.srv.URL + "/releases")
	page := readAll(r)
	if strings.Contains(page, `action="/registry/delete"`) {
		t.Fatal("an operator is offered the delete form")
	}
	csrf := between(page, `name="csrf" value="`, `"`)
	r, _ = tom.PostForm(s.srv.URL+"/registry/delete", url.Values{"csrf": {csrf}, "image": {loose}, "confirm_image": {loose}})
	if readAll(r); r.StatusCode != http.StatusForbidden || !present(loose) {
		t.Fatalf("operator's delete: %d, image present %v", r.StatusCode, present(loose))
	}

	admin := formClient(t, s, "admin", "first-pass-01")
	r, _ = admin.Get(s.srv.URL + "/releases")
	page = readAll(r)
	if !strings.Contains(page, `action="/registry/delete"`) || !strings.Contains(page, `name="confirm_image"`) {
		t.Fatal("the admin's releases page has no delete form with a confirmation field")
	}
	csrf = between(page, `name="csrf" value="`, `"`)
	for _, c := range []struct {
		form   url.Values
		status int
		want   string
	}{
		{url.Values{"csrf": {"forged"}, "image": {loose}, "confirm_image": {loose}}, http.StatusForbidden, ""},
		{url.Values{"csrf": {csrf}, "image": {loose}}, http.StatusUnprocessableEntity, "in both fields"},
		{url.Values{"csrf": {csrf}, "image": {loose}, "confirm_image": {released}}, http.StatusUnprocessableEntity, "in both fields"},
		{url.Values{"csrf": {csrf}, "image": {"plant/old:latest"}, "confirm_image": {"plant/old:latest"}}, http.StatusUnprocessableEntity, "never by tag"},
		{url.Values{"csrf": {csrf}, "image": {released}, "confirm_image": {released}}, http.StatusConflict, "release hmi@1 (approved)"},
	} {
		r, _ = admin.PostForm(s.srv.URL+"/registry/delete", c.form)
		page = readAll(r)
		if r.StatusCode != c.status || !strings.Contains(page, c.want) || !present(loose) || !present(released) {
			t.Fatalf("%v: %d, images present %v %v\n%.2000s", c.form, r.StatusCode, present(loose), present(released), between(page, "<main", "</main>"))
		}
	}
	r, _ = admin.PostForm(s.srv.URL+"/registry/delete", url.Values{"csrf": {csrf}, "image": {loose}, "confirm_image": {loose}})
	page = readAll(r)
	if r.StatusCode != http.StatusOK || !strings.Contains(page, "Deleted "+loose) || present(loose) {
		t.Fatalf("delete: %d, image present %v\n%.2000s", r.StatusCode, present(loose), between(page, "<main", "</main>"))
	}
	evs, err := s.a.Store.ListAudit(ctx, inventory.AuditFilter{Action: "registry.delete"})
	if err != nil || len(evs) != 2 || evs[0].Actor != "admin" || evs[0].Outcome != "ok" || evs[0].Subject != loose ||
		evs[1].Outcome != "refused" || evs[1].Subject != released {
		t.Fatalf("audit: %+v %v", evs, err)
	}
}
