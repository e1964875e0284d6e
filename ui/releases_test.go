package ui_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"slate/appliance"
	"slate/internal/testenv"
	"slate/inventory"
	"slate/lifecycle"
)

// diskImage makes a 4 MiB disk image with sfdisk's GPT and the given partition lines.
func diskImage(t *testing.T, parts string) []byte {
	t.Helper()
	sfdisk := testenv.RequireCommand(t, "sfdisk", "fdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sfdisk, "--quiet", p)
	cmd.Stdin = strings.NewReader("label: gpt\n" + parts)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// upload posts the upload form as a browser does: the token, repository and tag, then the file.
func upload(t *testing.T, cl *http.Client, base, csrf, repo, tag, file string, data []byte) (*http.Response, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("csrf", csrf)
	w.WriteField("repo", repo)
	w.WriteField("tag", tag)
	fw, _ := w.CreateFormFile("image", file)
	fw.Write(data)
	w.Close()
	req, _ := http.NewRequest("POST", base+"/releases/upload", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	r, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return r, readAll(r)
}

// TestReleaseUploadFromBrowser: an operator uploads a GPT disk image with slate-config from the
// releases page; it lands in the registry (by digest, tagged, audited) and is offered for a
// draft. A file that is not a GPT disk image and one without slate-config are refused naming
// what is missing, at the file field, storing nothing; so are a forged token and an auditor.
func TestReleaseUploadFromBrowser(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	good := diskImage(t, "start=2048, size=1M, type=linux, name=\"root\"\nsize=1M, type=linux, name=\"slate-config\"\n")
	bare := diskImage(t, "start=2048, size=1M, type=linux, name=\"root\"\n")

	tom := formClient(t, s, "tom", "tech-pass-01")
	r, _ := tom.Get(s.srv.URL + "/releases")
	page := readAll(r)
	if !strings.Contains(page, `action="/releases/upload"`) || !strings.Contains(page, `enctype="multipart/form-data"`) || !strings.Contains(page, "/ui/static/upload.js") {
		t.Fatal("the releases page has no upload form with its progress script")
	}
	csrf := between(page, `name="csrf" value="`, `"`)
	tags := func() int {
		ts, err := s.a.Images.Tags(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(ts)
	}

	for _, bad := range []struct {
		name string
		data []byte
		want string
	}{
		{"junk.img", []byte("not a disk image at all"), "is not a GPT disk image"},
		{"bare.img", bare, `no GPT partition named &#34;slate-config&#34;`},
	} {
		r, page := upload(t, tom, s.srv.URL, csrf, "plant/os", "1", bad.name, bad.data)
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, bad.want) ||
			!strings.Contains(page, `id="upload-file" name="image" type="file" required accept=".img,.raw,.gz,.zst,application/octet-stream" style="width:100%" aria-invalid="true" aria-describedby="flash"`) ||
			!strings.Contains(page, `class="flash error"`) {
			t.Fatalf("%s: %d\n%.3000s", bad.name, r.StatusCode, between(page, "<main", "</main>"))
		}
		if !strings.Contains(page, `value="plant/os"`) || !strings.Contains(page, `value="1"`) {
			t.Fatalf("%s: the refusal lost the typed repository and tag", bad.name)
		}
		if n := tags(); n != 0 {
			t.Fatalf("%s: the registry holds %d tags after a refused upload", bad.name, n)
		}
	}
	if r, _ := upload(t, tom, s.srv.URL, "forged", "plant/os", "1", "disk.img", good); r.StatusCode != http.StatusForbidden || tags() != 0 {
		t.Fatalf("forged token: %d, %d tags", r.StatusCode, tags())
	}
	aud := formClient(t, s, "aud", "readonly-pw-01")
	r, _ = aud.Get(s.srv.URL + "/releases")
	audPage := readAll(r)
	if strings.Contains(audPage, `action="/releases/upload"`) {
		t.Fatal("an auditor is offered the upload form")
	}
	if r, _ := upload(t, aud, s.srv.URL, between(audPage, `name="csrf" value="`, `"`), "plant/os", "1", "disk.img", good); r.StatusCode != http.StatusForbidden || tags() != 0 {
		t.Fatalf("auditor's upload: %d, %d tags", r.StatusCode, tags())
	}

	r, _ = upload(t, tom, s.srv.URL, csrf, "plant/os", "2026.12.1", "disk.img", good)
	loc := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "uploaded=plant%2Fos%40sha256%3A") {
		t.Fatalf("upload: %d %q", r.StatusCode, loc)
	}
	ts, _ := s.a.Images.Tags(ctx)
	if len(ts) != 1 || ts[0].Repo != "plant/os" || ts[0].Tag != "2026.12.1" {
		t.Fatalf("registry tags %+v", ts)
	}
	img := "plant/os@" + ts[0].Digest
	if _, comp, err := s.a.Images.DiskLayer(ctx, "plant/os", ts[0].Digest); err != nil || comp != "" {
		t.Fatalf("the upload is not a one-layer raw disk artifact: %q %v", comp, err)
	}
	r, _ = tom.Get(s.srv.URL + loc)
	page = readAll(r)
	if !strings.Contains(page, `value="`+img+`"`) || !strings.Contains(page, `<option value="disk" selected>`) || !strings.Contains(page, "Disk image uploaded") {
		t.Fatalf("the uploaded image is not offered for a draft:\n%.4000s", between(page, "<main", "</main>"))
	}
	// A link cannot prefill the form with an image the registry does not hold.
	r, _ = tom.Get(s.srv.URL + "/releases?uploaded=" + url.QueryEscape("plant/evil@sha256:"+strings.Repeat("ab", 32)))
	if page := readAll(r); strings.Contains(page, "plant/evil") {
		t.Fatal("a link put an image into the draft form")
	}
	evs, err := s.a.Store.ListAudit(ctx, inventory.AuditFilter{Action: "registry.push"})
	if err != nil || len(evs) != 1 || evs[0].Actor != "tom" || evs[0].Subject != img {
		t.Fatalf("audit: %+v %v", evs, err)
	}
	// The registry list offers it for picking; a draft made by picking names it.
	if !strings.Contains(page, `<option value="`+img+`">plant/os:2026.12.1`) {
		t.Fatal("the registry's images are not offered for picking")
	}
	r, _ = tom.PostForm(s.srv.URL+"/releases", url.Values{"csrf": {csrf}, "name": {"plant-os"}, "version": {"1"}, "kind": {"disk"}, "image_pick": {img}})
	if readAll(r); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("draft from a picked image: %d", r.StatusCode)
	}
	if rel, err := s.a.Store.GetRelease(ctx, "plant-os@1"); err != nil || rel.ImageRef+"@"+rel.ImageDigest != img {
		t.Fatalf("draft %+v %v", rel, err)
	}
}

// TestReleaseDraftFormChecks: a draft naming a digest the registry lacks is refused when saved,
// at the image field, keeping what was typed; BIOS and firmware rows are checked row by row,
// the refusal tied to the bad cell; good rows become the release's profile and baseline.
func TestReleaseDraftFormChecks(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	tom := formClient(t, s, "tom", "tech-pass-01")
	r, _ := tom.Get(s.srv.URL + "/releases")
	csrf := between(readAll(r), `name="csrf" value="`, `"`)
	post := func(v url.Values) (*http.Response, string) {
		v.Set("csrf", csrf)
		r, err := tom.PostForm(s.srv.URL+"/releases", v)
		if err != nil {
			t.Fatal(err)
		}
		return r, readAll(r)
	}
	missing := "plant/hmi@sha256:" + strings.Repeat("ab", 32)
	r, page := post(url.Values{"name": {"hmi"}, "version": {"1"}, "kind": {"bootc"}, "image": {missing}, "notes": {"typed notes"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "not in Slate&#39;s registry") ||
		!strings.Contains(page, `aria-invalid="true" aria-describedby="flash image-hint"`) || !strings.Contains(page, `value="typed notes"`) {
		t.Fatalf("missing digest: %d\n%.3000s", r.StatusCode, between(page, "<main", "</main>"))
	}
	if _, err := s.a.Store.GetRelease(ctx, "hmi@1"); err == nil {
		t.Fatal("a draft naming a missing image was saved")
	}
	for _, tc := range []struct {
		name  string
		v     url.Values
		field string
		want  string
	}{
		{"bad BIOS name", url.Values{"bios_key": {"Proc Virt"}, "bios_value": {"Disabled"}}, "bios-key-0", "is not an attribute name"},
		{"BIOS without value", url.Values{"bios_key": {"", "BootMode"}, "bios_value": {"", ""}}, "bios-value-0", "BootMode has no value"},
		{"firmware without URL", url.Values{"fw_component": {"BIOS"}, "fw_version_row": {"2.1"}, "fw_url": {"ftp://x/y"}}, "fw-url-0", "http(s) URL"},
		{"firmware without version", url.Values{"fw_component": {"BMC"}, "fw_version_row": {""}, "fw_url": {"http://10.0.0.5/bmc.bin"}}, "fw-version-0", "needs the version"},
	} {
		tc.v.Set("name", "hmi")
		tc.v.Set("version", "2")
		r, page := post(tc.v)
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, tc.want) || !strings.Contains(page, `id="`+tc.field+`"`) ||
			!strings.Contains(between(page, `id="`+tc.field+`"`, ">"), `aria-invalid="true"`) {
			t.Fatalf("%s: %d\n%.4000s", tc.name, r.StatusCode, between(page, "<main", "</main>"))
		}
	}
	r, page = post(url.Values{"name": {"hmi"}, "version": {"3"}, "bios_key": {"ProcVirtualization", "BootRetries", ""}, "bios_value": {"Disabled", "3", ""},
		"fw_name": {"line3"}, "fw_component": {"BIOS", ""}, "fw_version_row": {"2.1.0", ""}, "fw_url": {"http://10.0.0.5/fw/bios.bin", ""}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("good rows: %d\n%.3000s", r.StatusCode, between(page, "<main", "</main>"))
	}
	rel, err := s.a.Store.GetRelease(ctx, "hmi@3")
	comps, _ := rel.FirmwareBaseline["components"].([]any)
	if err != nil || rel.BIOSProfile["ProcVirtualization"] != "Disabled" || rel.BIOSProfile["BootRetries"] != float64(3) || len(comps) != 1 || rel.FirmwareBaseline["name"] != "line3" {
		t.Fatalf("release %+v %v", rel, err)
	}
}

// TestReleaseDeleteRetireUsedBy: a draft is deleted from the page (audited), an approved one is
// not; retiring needs name@version typed (a wrong one leaves it approved); the page says how
// many machines use each release.
func TestReleaseDeleteRetireUsedBy(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	draft, err := s.a.Releases.Create(ctx, "tom", lifecycle.NewRelease{Name: "hmi", Version: "1", Kind: lifecycle.KindBootc})
	if err != nil {
		t.Fatal(err)
	}
	used, err := s.a.Releases.Create(ctx, "tom", lifecycle.NewRelease{Name: "hmi", Version: "2", Kind: lifecycle.KindBootc})
	if err != nil {
		t.Fatal(err)
	}
	ms, _, _ := s.a.Store.ListMachines(ctx, inventory.MachineFilter{})
	var press string
	for _, m := range ms {
		if m.Name == "press-01" {
			press = m.ID
		}
	}
	ref := "hmi@2"
	if _, err := s.a.Lifecycle.Update(ctx, "test", press, inventory.MachinePatch{DesiredRelease: &ref}); err != nil {
		t.Fatal(err)
	}
	tom := formClient(t, s, "tom", "tech-pass-01")
	r, _ := tom.Get(s.srv.URL + "/releases")
	page := readAll(r)
	csrf := between(page, `name="csrf" value="`, `"`)
	if !strings.Contains(between(page, `id="release-`+used.ID+`"`, "</tr>"), "1 machine") || !strings.Contains(between(page, `id="release-`+draft.ID+`"`, "</tr>"), "0 machines") {
		t.Fatalf("used-by counts:\n%.3000s", between(page, "<tbody>", "</tbody>"))
	}
	// A draft a machine is assigned is not deleted; a free one is.
	r, _ = tom.PostForm(s.srv.URL+"/releases/"+used.ID+"/delete", url.Values{"csrf": {csrf}})
	if page := readAll(r); r.StatusCode != http.StatusConflict || !strings.Contains(page, "assigned to 1 machine") {
		t.Fatalf("deleting an assigned draft: %d", r.StatusCode)
	}
	r, _ = tom.PostForm(s.srv.URL+"/releases/"+draft.ID+"/delete", url.Values{"csrf": {csrf}})
	if readAll(r); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete draft: %d", r.StatusCode)
	}
	if _, err := s.a.Store.GetRelease(ctx, draft.ID); err == nil {
		t.Fatal("the deleted draft is still there")
	}
	evs, err := s.a.Store.ListAudit(ctx, inventory.AuditFilter{Action: "release.delete"})
	if err != nil || len(evs) != 2 || evs[0].Outcome != "ok" || evs[0].Actor != "tom" || evs[1].Outcome != "refused" {
		t.Fatalf("audit: %+v %v", evs, err)
	}

	// Retire: an approved release needs its name typed.
	// (Approval needs an image in the registry; the state is set directly, as approval would.)
	rel, err := s.a.Store.GetRelease(ctx, used.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		return tx.SetReleaseState(ctx, rel.ID, lifecycle.ReleaseApproved, "admin")
	}); err != nil {
		t.Fatal(err)
	}
	r, _ = tom.Get(s.srv.URL + "/releases")
	page = readAll(r)
	if !strings.Contains(page, `action="/releases/`+rel.ID+`/retire"`) || !strings.Contains(page, `id="retire-`+rel.ID+`" name="confirm"`) {
		t.Fatal("no typed confirmation offered to retire")
	}
	for _, typed := range []string{"", "hmi@1", "hmi"} {
		r, page := func() (*http.Response, string) {
			r, _ := tom.PostForm(s.srv.URL+"/releases/"+rel.ID+"/retire", url.Values{"csrf": {csrf}, "confirm": {typed}})
			return r, readAll(r)
		}()
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "type hmi@2 exactly") ||
			!strings.Contains(between(page, `id="retire-`+rel.ID+`"`, ">"), `aria-invalid="true"`) {
			t.Fatalf("retire typed %q: %d", typed, r.StatusCode)
		}
		if got, _ := s.a.Store.GetRelease(ctx, rel.ID); got.State != lifecycle.ReleaseApproved {
			t.Fatalf("retired with %q typed", typed)
		}
	}
	r, _ = tom.PostForm(s.srv.URL+"/releases/"+rel.ID+"/retire", url.Values{"csrf": {csrf}, "confirm": {"hmi@2"}})
	if readAll(r); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("retire: %d", r.StatusCode)
	}
	if got, _ := s.a.Store.GetRelease(ctx, rel.ID); got.State != lifecycle.ReleaseRetired {
		t.Fatalf("state %s after a confirmed retire", got.State)
	}
}

// TestReleaseUploadSizeLimit: with image_upload_limit_mib set, a larger image is refused (413)
// naming the limit and the way around it, and nothing is stored; one within it is stored.
func TestReleaseUploadSizeLimit(t *testing.T) {
	cfg := appliance.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.ImageUploadLimitMiB = 3
	a, err := appliance.New(context.Background(), cfg, appliance.Options{AdminPassword: "first-pass-01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	s := &site{a, srv}
	if _, err := a.Store.AddUser(context.Background(), "test", "tom", "tech-pass-01", inventory.RoleOperator, "Tom Technician"); err != nil {
		t.Fatal(err)
	}
	img := diskImage(t, "start=2048, size=1M, type=linux, name=\"root\"\nsize=1M, type=linux, name=\"slate-config\"\n") // 4 MiB
	tom := formClient(t, s, "tom", "tech-pass-01")
	r, _ := tom.Get(srv.URL + "/releases")
	page := readAll(r)
	csrf := between(page, `name="csrf" value="`, `"`)
	if !strings.Contains(page, "at most 3.0 MiB") {
		t.Fatal("the upload form does not say the limit")
	}
	r, page = upload(t, tom, srv.URL, csrf, "plant/os", "1", "disk.img", img)
	if ts, _ := a.Images.Tags(context.Background()); r.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(page, "more than 3145728 bytes") ||
		!strings.Contains(page, "push-disk") || len(ts) != 0 {
		t.Fatalf("over the limit: %d, %d tags\n%.2000s", r.StatusCode, len(ts), between(page, "<main", "</main>"))
	}
	r, _ = upload(t, tom, srv.URL, csrf, "plant/os", "1", "disk.img", img[:3<<20])
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("within the limit: %d", r.StatusCode)
	}
}
