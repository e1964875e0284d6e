package ui_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// progressWatch records, across the navigation that ends an upload, the last progress line the
// page showed (sessionStorage outlives the page).
const progressWatch = `(() => {
  const st = document.getElementById("upload-status");
  new MutationObserver(() => { if (st.textContent.startsWith("Uploading")) sessionStorage.setItem("seen", st.textContent); })
    .observe(st, {childList: true, characterData: true, subtree: true});
  return true;
})()`

// TestReleaseUploadInChromium: in a real browser (1366×768), the upload form shows the upload's
// progress while a 24 MiB disk image streams into the registry, then fills the new image into the
// draft form; a file that is not a disk image comes back as a red refusal at the file field.
func TestReleaseUploadInChromium(t *testing.T) {
	s := newSite(t)
	img := diskImage(t, "start=2048, size=1M, type=linux, name=\"root\"\nsize=1M, type=linux, name=\"slate-config\"\n")
	// Incompressible filler after the partitions, so the upload takes several progress events.
	pad := make([]byte, 20<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range pad {
		pad[i] = byte(r.Uint32())
	}
	dir := t.TempDir()
	good, junk := filepath.Join(dir, "plant-os.img"), filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(good, append(img, pad...), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(junk, []byte("not a disk image\n"), 0o644)

	br, cancel := browser(t)
	defer cancel()
	if err := chromedp.Run(br, chromedp.EmulateViewport(1366, 768)); err != nil {
		t.Fatal(err)
	}
	login(t, br, s.srv.URL, "tom", "tech-pass-01")
	fill := func(file string) chromedp.Tasks {
		return chromedp.Tasks{
			chromedp.SetValue(`#upload-repo`, "plant/os", chromedp.ByID),
			chromedp.SetValue(`#upload-tag`, "2026.12.1", chromedp.ByID),
			chromedp.SetUploadFiles(`#upload-file`, []string{file}, chromedp.ByID),
			chromedp.Click(`#upload-form button[type=submit]`, chromedp.ByQuery),
		}
	}
	var invalid string
	if err := chromedp.Run(br,
		chromedp.Navigate(s.srv.URL+"/releases"),
		waitJS(`document.readyState === "complete" && !!document.getElementById("upload-form")`),
		fill(junk),
		waitJS(`!!document.querySelector(".flash.error") && document.querySelector(".flash.error").textContent.includes("is not a GPT disk image")`),
		chromedp.AttributeValue(`#upload-file`, "aria-invalid", &invalid, nil, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	shot(t, br, "releases-upload-refused-1366")
	if invalid != "true" {
		t.Fatalf("the refusal is not tied to the file field (aria-invalid=%q)", invalid)
	}

	var seen, image, kind string
	var ok bool
	if err := chromedp.Run(br,
		chromedp.Navigate(s.srv.URL+"/releases"),
		waitJS(`document.readyState === "complete" && !!document.getElementById("upload-form")`),
		chromedp.Evaluate(progressWatch, &ok),
		fill(good),
		waitJS(`location.search.includes("uploaded=") && document.readyState === "complete"`),
		chromedp.Evaluate(`sessionStorage.getItem("seen") || ""`, &seen),
		chromedp.Value(`#image`, &image, chromedp.ByID),
		chromedp.Value(`#kind`, &kind, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	shot(t, br, "releases-upload-done-1366")
	if !strings.HasPrefix(seen, "Uploading: ") || !strings.Contains(seen, " MiB)") {
		t.Fatalf("no upload progress was shown (last status %q)", seen)
	}
	if !strings.HasPrefix(image, "plant/os@sha256:") || kind != "disk" {
		t.Fatalf("draft form after the upload: image %q kind %q", image, kind)
	}
	t.Logf("last progress line: %s; image %s", seen, image)
}
