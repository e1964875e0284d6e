package pxe

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	good := []string{"ipxe.efi", "undionly.kpxe", "pxelinux.cfg/default", "a/b/c.bin", "x-1_2.3"}
	for _, n := range good {
		if got, err := cleanName(n); err != nil || got != n {
			t.Errorf("cleanName(%q) = %q, %v; want it accepted unchanged", n, got, err)
		}
	}
	bad := map[string]string{
		"":                        "empty",
		"../etc/passwd":           "..",
		"a/../../b":               "..",
		"..":                      "..",
		"/etc/passwd":             "absolute",
		"a\\..\\b":                "backslash",
		"ipxe.efi\x00.txt":        "NUL",
		strings.Repeat("a", 256):  "limit",
		"a//b":                    "empty",
		"./ipxe.efi":              "empty",
		"dir/":                    "empty",
		"ipxe efi":                "printable",
		"caf\xc3\xa9":             "printable",
		"line\nbreak":             "printable",
		strings.Repeat("a/", 200): "limit",
	}
	for n, why := range bad {
		_, err := cleanName(n)
		if !errors.Is(err, ErrBadName) {
			t.Errorf("cleanName(%q) accepted; want refused (%s)", n, why)
			continue
		}
		if !strings.Contains(err.Error(), why) {
			t.Errorf("cleanName(%q) error %q does not say %q", n, err, why)
		}
	}
}

// FuzzCleanName checks the sanitizer's promise for any input: no panic, and whatever it
// accepts stays inside the served root when joined to it.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"ipxe.efi", "../x", "a/b", "/abs", "a\\b", "a\x00b", "..", ".", "a/./b", "a/b/..", "....//", "%2e%2e/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := cleanName(name)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("cleanName(%q) error %v is not ErrBadName", name, err)
			}
			return
		}
		if got != name {
			t.Fatalf("cleanName(%q) rewrote the name to %q; it must accept or refuse, not rewrite", name, got)
		}
		if len(got) > maxNameLen || strings.ContainsAny(got, "\\\x00") || strings.HasPrefix(got, "/") || !fs.ValidPath(got) {
			t.Fatalf("cleanName accepted %q", got)
		}
		root := "/srv/root"
		j := filepath.Join(root, got)
		if !strings.HasPrefix(j, root+"/") {
			t.Fatalf("cleanName accepted %q, which escapes %s as %s", got, root, j)
		}
	})
}
