package kmod

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The virtio-net device appears only once virtio_pci is loaded, as on a real machine: the
// loader must take a second pass and load virtio_net with its dependencies, each once, in order.
func TestLoadForDevicesFollowsNewDevices(t *testing.T) {
	ix, err := LoadIndex("testdata/modules")
	if err != nil {
		t.Fatal(err)
	}
	sys := t.TempDir()
	pci := filepath.Join(sys, "devices/pci0000:00/0000:00:03.0")
	write(t, pci+"/modalias", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n")
	write(t, filepath.Join(sys, "devices/platform/serial8250/modalias"), "platform:serial8250\n")
	link := func(dev, bus string) {
		t.Helper()
		os.MkdirAll(filepath.Join(sys, "bus", bus, "devices"), 0o755)
		if err := os.Symlink(dev, filepath.Join(sys, "bus", bus, "devices", filepath.Base(dev))); err != nil {
			t.Fatal(err)
		}
	}
	link(pci, "pci")
	link(filepath.Join(sys, "devices/platform/serial8250"), "platform")
	var order []string
	l := &Loader{Dir: "/lib/modules/x", Sys: sys, Index: ix, Load: func(p string) error {
		order = append(order, ModuleName(p))
		if ModuleName(p) == "virtio_pci" {
			write(t, pci+"/virtio0/modalias", "virtio:d00000001v00001AF4\n")
			link(pci+"/virtio0", "virtio")
		}
		if !strings.HasPrefix(p, "/lib/modules/x/kernel/") {
			t.Errorf("path %s", p)
		}
		return nil
	}}
	loaded, errs := l.LoadForDevices(context.Background(), 5)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := []string{"virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci", "failover", "net_failover", "virtio_net"}
	if !slices.Equal(order, want) {
		t.Fatalf("load order %v, want %v", order, want)
	}
	if !slices.Equal(loaded, []string{"virtio_net", "virtio_pci"}) {
		t.Fatalf("loaded %v", loaded)
	}
	if err := l.LoadModule("efivarfs"); err != nil || order[len(order)-1] != "efivarfs" {
		t.Fatalf("efivarfs: %v %v", err, order)
	}
	if err := l.LoadModule("nope"); err == nil {
		t.Fatal("unknown module loaded")
	}
}

func TestMatchAndBadIndex(t *testing.T) {
	ix, err := LoadIndex("testdata/modules")
	if err != nil {
		t.Fatal(err)
	}
	if got := ix.Match("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"); !slices.Equal(got, []string{"ahci"}) {
		t.Fatalf("ahci match: %v", got)
	}
	if got := ix.Match("pci:v00008086d00001234sv0sd0bc03sc00i00"); len(got) != 0 {
		t.Fatalf("vga matched %v", got)
	}
	for _, bad := range []string{"alias onlytwo\n", "alias a[ b\n"} {
		if _, err := ParseAliases(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseDeps(strings.NewReader("no colon here\n")); err == nil {
		t.Error("bad modules.dep accepted")
	}
}

func FuzzParseAliases(f *testing.F) {
	f.Add("alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n# c\n")
	f.Add("alias [ x\nalias a b c\n")
	f.Fuzz(func(t *testing.T, s string) {
		as, err := ParseAliases(strings.NewReader(s))
		if err != nil {
			return
		}
		ix := &Index{aliases: as}
		ix.Match("pci:v00001AF4d00001000")
	})
}

func FuzzParseDeps(f *testing.F) {
	f.Add("kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko:\n")
	f.Add(":\n.ko:")
	f.Fuzz(func(t *testing.T, s string) {
		deps, err := ParseDeps(strings.NewReader(s))
		if err != nil {
			return
		}
		ix := &Index{deps: deps}
		for name := range deps {
			ix.Order(name)
		}
	})
}
