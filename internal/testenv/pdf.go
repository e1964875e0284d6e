package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// PDF writes a PDF to the test's temporary directory and reads it back with poppler-utils:
// its text (pdftotext -layout) and page count (pdfinfo). A PDF poppler cannot parse fails the
// test: the file must render for the auditor, not only start with %PDF.
func PDF(t testing.TB, pdf []byte) (text string, pages int) {
	t.Helper()
	RequireCommand(t, "pdftotext", "poppler-utils")
	RequireCommand(t, "pdfinfo", "poppler-utils")
	f := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(f, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", f, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v %s", err, out)
	}
	info, err := exec.Command("pdfinfo", f).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v %s", err, info)
	}
	m := regexp.MustCompile(`(?m)^Pages:\s+(\d+)`).FindSubmatch(info)
	if m == nil {
		t.Fatalf("pdfinfo shows no page count: %s", info)
	}
	pages, _ = strconv.Atoi(string(m[1]))
	return string(out), pages
}
