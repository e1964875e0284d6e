package binpath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSiblingPrefersTheBinaryBesideSelf(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "slate")
	lab := filepath.Join(dir, "slate-lab")
	onPath := func(name string) (string, error) { return "/usr/local/bin/" + name, nil }
	notOnPath := func(name string) (string, error) { return "", errors.New("not found") }

	// Missing beside and on PATH: a clear error that says how to build it.
	_, err := Sibling(self, "slate-lab", Executable, notOnPath)
	if err == nil || !strings.Contains(err.Error(), "make build") || !strings.Contains(err.Error(), lab) {
		t.Fatalf("missing slate-lab: %v", err)
	}
	// Only on PATH: that one.
	if got, err := Sibling(self, "slate-lab", Executable, onPath); err != nil || got != "/usr/local/bin/slate-lab" {
		t.Fatalf("on PATH: %q %v", got, err)
	}
	// Beside but not executable (a half-copied file): not used.
	if err := os.WriteFile(lab, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Sibling(self, "slate-lab", Executable, notOnPath); err == nil {
		t.Fatal("a non-executable file was taken for slate-lab")
	}
	// Beside and executable: preferred over PATH, so binaries built together run together.
	if err := os.Chmod(lab, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := Sibling(self, "slate-lab", Executable, onPath); err != nil || got != lab {
		t.Fatalf("beside: %q %v", got, err)
	}
}
