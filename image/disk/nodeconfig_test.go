package disk

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"slate/internal/testenv"
)

// gptFile makes a disk image file with sfdisk's GPT and the given partition lines.
func gptFile(t *testing.T, mib int, parts string) string {
	t.Helper()
	sfdisk := testenv.RequireCommand(t, "sfdisk", "fdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(int64(mib) << 20)
	f.Close()
	cmd := exec.Command(sfdisk, "--quiet", p)
	cmd.Stdin = strings.NewReader("label: gpt\n" + parts)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return p
}

func TestNodeConfigPartition(t *testing.T) {
	p := gptFile(t, 8, "start=2048, size=4M, type=uefi, name=\"ESP\"\nsize=1M, type=linux, name=\"slate-config\"\n")
	f, _ := os.Open(p)
	parts, err := GPTPartitions(f)
	f.Close()
	if err != nil || len(parts) != 2 || parts[0].Name != "ESP" || parts[1].Name != NodeConfigPartition ||
		parts[1].Start != (2048+8192)*512 || parts[1].Size != 1<<20 {
		t.Fatalf("partitions %+v, %v", parts, err)
	}
	// Old contents of the partition must not survive: fill it with junk first.
	junk := bytes.Repeat([]byte{'x'}, 1<<20)
	f, _ = os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt(junk, parts[1].Start)
	f.Close()
	want := NodeConfig{URL: "http://10.0.0.1:8080", Token: "sln_abc", Machine: "m-1", Release: "plant-os@1", Digest: "sha256:00"}
	if err := WriteNodeConfig(p, want); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got, err := ParseNodeConfig(b[parts[1].Start : parts[1].Start+parts[1].Size])
	if err != nil || got != want {
		t.Fatalf("read back %+v, %v", got, err)
	}
	// The partition device form (here: a file holding just the partition).
	pd := filepath.Join(t.TempDir(), "part")
	os.WriteFile(pd, b[parts[1].Start:parts[1].Start+parts[1].Size], 0o600)
	if got, err := ReadNodeConfig(pd); err != nil || got != want {
		t.Fatalf("ReadNodeConfig %+v, %v", got, err)
	}

	t.Run("image without the partition", func(t *testing.T) {
		p := gptFile(t, 8, "start=2048, size=4M, type=uefi, name=\"ESP\"\n")
		before, _ := os.ReadFile(p)
		err := WriteNodeConfig(p, want)
		if err == nil || !strings.Contains(err.Error(), `no GPT partition named "slate-config"`) {
			t.Fatalf("err = %v", err)
		}
		after, _ := os.ReadFile(p)
		if !bytes.Equal(before, after) {
			t.Fatal("the disk changed")
		}
	})
	t.Run("no GPT", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "blank")
		os.WriteFile(p, make([]byte, 1<<20), 0o600)
		if err := WriteNodeConfig(p, want); err == nil || !strings.Contains(err.Error(), "no GPT") {
			t.Fatalf("err = %v", err)
		}
	})
	for name, b := range map[string][]byte{"empty": make([]byte, 512), "junk": junk, "no token": []byte(`{"url":"http://x"}`)} {
		if _, err := ParseNodeConfig(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
