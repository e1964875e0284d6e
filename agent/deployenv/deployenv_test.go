package deployenv

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"slate/internal/testenv"
)

func TestParseModinfo(t *testing.T) {
	m, err := ParseModinfo([]byte("license=GPL\x00depends=libahci,libata\x00alias=pci:v*d*sv*sd*bc01sc06i01*\x00softdep=pre: crc32c post: x\x00name=ahci\x00"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "ahci" || !slices.Equal(m.Depends, []string{"libahci", "libata"}) || len(m.Aliases) != 1 || !slices.Equal(m.SoftPre, []string{"crc32c"}) {
		t.Fatalf("%+v", m)
	}
	if _, err := ParseModinfo([]byte("alias=a b\x00")); err == nil {
		t.Fatal("alias with a space accepted")
	}
}

func FuzzParseModinfo(f *testing.F) {
	f.Add([]byte("depends=a,b\x00alias=x*\x00softdep=pre: c\x00name=m\x00"))
	f.Add([]byte("=\x00depends=,\x00softdep=post:"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseModinfo(b) })
}

// fakeModule writes a relocatable ELF with a .modinfo section, as a .ko is, using the Go
// toolchain's assembler-free path: objcopy is not needed, we build the ELF by hand.
func fakeModule(t *testing.T, path, modinfo string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, minimalELF(".modinfo", []byte(modinfo)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Same inputs, same bytes; the archive holds /init, the modules with their dependencies, and
// an index the agent's loader reads.
func TestBuildIsReproducibleAndComplete(t *testing.T) {
	dir := t.TempDir()
	mods := filepath.Join(dir, "lib/modules/6.1.0-test")
	fakeModule(t, mods+"/kernel/drivers/ata/ahci.ko", "depends=libahci,libata\x00alias=pci:v*d*sv*sd*bc01sc06i01*\x00name=ahci\x00")
	fakeModule(t, mods+"/kernel/drivers/ata/libahci.ko", "depends=libata\x00name=libahci\x00")
	fakeModule(t, mods+"/kernel/drivers/ata/libata.ko", "depends=\x00name=libata\x00")
	fakeModule(t, mods+"/kernel/drivers/net/unused.ko", "name=unused\x00")
	os.WriteFile(mods+"/modules.builtin", []byte("kernel/drivers/tty/serial.ko\n"), 0o644)
	agentBin := filepath.Join(dir, "agent")
	os.WriteFile(agentBin, minimalELF(".text", []byte{0xc3}), 0o755)

	build := func() []byte {
		var b bytes.Buffer
		res, err := Build(&b, Options{ModulesDir: mods, Release: "6.1.0-test", Agent: agentBin, Modules: []string{"ahci", "serial"}, Epoch: 1700000000})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Modules, []string{"libata", "libahci", "ahci"}) {
			t.Fatalf("modules %v", res.Modules)
		}
		return b.Bytes()
	}
	a, b := build(), build()
	if sha256.Sum256(a) != sha256.Sum256(b) {
		t.Fatal("two builds of the same inputs differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	// GNU cpio, a real peer, must unpack it as the kernel does.
	cpio := testenv.RequireCommand(t, "cpio", "cpio")
	{
		out := t.TempDir()
		cmd := exec.Command(cpio, "-idm", "--quiet")
		cmd.Dir, cmd.Stdin = out, bytes.NewReader(raw)
		if o, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(o), "mknod") {
			t.Fatalf("cpio: %v %s", err, o)
		}
		dep, err := os.ReadFile(filepath.Join(out, "lib/modules/6.1.0-test/modules.dep"))
		if err != nil || !strings.Contains(string(dep), "kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko") {
			t.Fatalf("modules.dep: %q %v", dep, err)
		}
		if st, err := os.Stat(filepath.Join(out, "init")); err != nil || st.Mode()&0o111 == 0 || st.ModTime().Unix() != 1700000000 {
			t.Fatalf("init: %v %v", st, err)
		}
	}
	for _, want := range []string{"TRAILER!!!", "\x00init\x00", "modules.alias", "alias pci:v*d*sv*sd*bc01sc06i01* ahci", "lib/modules/6.1.0-test/kernel/drivers/ata/libata.ko", "dev/console"} {
		if !bytes.Contains(raw, []byte(strings.TrimPrefix(want, "\x00"))) {
			t.Errorf("archive lacks %q", want)
		}
	}
	if bytes.Contains(raw, []byte("unused.ko")) {
		t.Error("a module nobody asked for was included")
	}
	// A missing module is an error naming it; a dynamic agent is refused.
	if _, err := Build(io.Discard, Options{ModulesDir: mods, Agent: agentBin, Modules: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing module: %v", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	var miss *ErrMissing
	if _, err := Check(dir); !errors.As(err, &miss) || !strings.Contains(err.Error(), "make deploy-env") {
		t.Fatalf("%v", err)
	}
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(dir, "initrd.gz"), []byte("ii"), 0o644)
	os.WriteFile(filepath.Join(dir, "KERNEL"), []byte("linux-image-x\n"), 0o644)
	in, err := Check(dir)
	if err != nil || in.KernelBytes != 1 || in.InitrdBytes != 2 || in.Kernel != "linux-image-x" {
		t.Fatalf("%+v %v", in, err)
	}
}
