package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"slate/agent/agentproto"
	"slate/image/disk"
	"slate/internal/testenv"
)

func TestChooseDisk(t *testing.T) {
	disks := []Disk{{Name: "sda", Serial: "BIG", Bytes: 4 << 40}, {Name: "nvme0n1", Serial: "N1", WWN: "eui.1", Bytes: 512 << 30},
		{Name: "sdb", Serial: "USB", Bytes: 32 << 30, Removable: true}, {Name: "vda", Serial: "V", Bytes: 64 << 30}}
	for _, c := range []struct {
		t    DiskTarget
		want string
	}{{DiskTarget{Serial: "N1"}, "nvme0n1"}, {DiskTarget{WWN: "eui.1"}, "nvme0n1"}, {DiskTarget{MinBytes: 100 << 30}, "nvme0n1"},
		{DiskTarget{}, "vda"}, {DiskTarget{Serial: "USB"}, "sdb"}} {
		d, err := ChooseDisk(disks, c.t)
		if err != nil || d.Name != c.want {
			t.Errorf("%+v: got %s %v, want %s", c.t, d.Name, err, c.want)
		}
	}
	if _, err := ChooseDisk(disks, DiskTarget{MinBytes: 8 << 40}); err == nil {
		t.Error("no disk is that large, yet one was chosen")
	}
	if _, err := ChooseDisk(disks, DiskTarget{Serial: "NOPE"}); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("unknown serial: %v", err)
	}
}

type recRep struct{ logs []string }

func (r *recRep) Progress(float64, string)        {}
func (r *recRep) Logf(format string, args ...any) { r.logs = append(r.logs, format) }
func (r *recRep) lines() string                   { return strings.Join(r.logs, "\n") }

// TestInstallImageOnLoopDevice fetches a blob with the agent token and writes it onto the
// disk the rule chooses; a wrong digest fails the task and leaves nothing bootable.
func TestInstallImageOnLoopDevice(t *testing.T) {
	testenv.RequireRoot(t)
	sfdisk := testenv.RequireCommand(t, "sfdisk", "fdisk")
	// A GPT image with a data partition and the slate-config partition the node reads.
	mk := func(parts string) ([]byte, string) {
		p := filepath.Join(t.TempDir(), "img")
		os.WriteFile(p, make([]byte, 3<<20), 0o600)
		cmd := exec.Command(sfdisk, "--quiet", p)
		cmd.Stdin = strings.NewReader("label: gpt\n" + parts)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v %s", err, out)
		}
		img, _ := os.ReadFile(p)
		rand.Read(img[1<<20 : 3<<19]) // the data partition's contents
		sum := sha256.Sum256(img)
		return img, "sha256:" + hex.EncodeToString(sum[:])
	}
	img, digest := mk("start=2048, size=512K, type=linux, name=\"root\"\nsize=512K, type=linux, name=\"slate-config\"\n")
	bare, bareDigest := mk("start=2048, size=1M, type=linux, name=\"root\"\n")
	tokenStatus := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sla_machine-token" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/agent/v1/tasks/t-1/node-token" && r.Method == "POST":
			w.WriteHeader(tokenStatus)
			json.NewEncoder(w).Encode(agentproto.NodeToken{Token: "sln_node-token", MachineID: "m-1"})
		case strings.HasPrefix(r.URL.Path, "/v2/") && strings.HasSuffix(r.URL.Path, bareDigest):
			w.Write(bare)
		case strings.HasPrefix(r.URL.Path, "/v2/"):
			w.Write(img)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "disk")
	os.WriteFile(file, make([]byte, 8<<20), 0o600)
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	name := filepath.Base(dev)
	reg := NewRegistry()
	RegisterInstall(reg, &Client{Base: srv.URL, Token: "sla_machine-token"}, func() ([]Disk, error) {
		return []Disk{{Name: name, Serial: "LOOP", Bytes: 8 << 20}}, nil
	}, "/dev", slog.New(slog.DiscardHandler))
	run := func(d string) (Outcome, *recRep, error) {
		p, _ := json.Marshal(agentproto.InstallImageParams{BlobURL: srv.URL + "/v2/plant/hmi/blobs/" + d, Digest: d, Target: DiskTarget{Serial: "LOOP"},
			Release: "hmi@1", ImageDigest: "sha256:manifest"})
		rep := &recRep{}
		o, err := reg.runners[agentproto.KindInstallImage].Run(context.Background(), agentproto.Task{ID: "t-1", Kind: agentproto.KindInstallImage, Params: p}, rep)
		return o, rep, err
	}
	bootSectorsZero := func() bool {
		raw, _ := os.ReadFile(file)
		return bytes.Equal(raw[:1<<20], make([]byte, 1<<20))
	}
	o, rep, err := run(digest)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, rep.lines())
	}
	raw, _ := os.ReadFile(file)
	if !bytes.Equal(raw[1<<20:3<<19], img[1<<20:3<<19]) || !strings.Contains(string(o.Result), digest[7:]) {
		t.Fatalf("disk does not hold the image (result %s)", o.Result)
	}
	nc, err := disk.ParseNodeConfig(raw[3<<19 : 2<<20])
	want := disk.NodeConfig{URL: srv.URL, Token: "sln_node-token", Machine: "m-1", Release: "hmi@1", Digest: "sha256:manifest"}
	if err != nil || nc != want {
		t.Fatalf("node config on disk %+v, %v", nc, err)
	}
	if _, _, err := run("sha256:" + strings.Repeat("1", 64)); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("wrong digest: %v", err)
	}
	if !bootSectorsZero() {
		t.Fatal("a failed install left the image's first MiB on the disk")
	}
	// An image without the slate-config partition: written and verified, but its system could
	// never report, so the install fails and the disk is not left bootable.
	if _, _, err := run(bareDigest); err == nil || !strings.Contains(err.Error(), `no GPT partition named "slate-config"`) {
		t.Fatalf("image without slate-config: %v", err)
	}
	if !bootSectorsZero() {
		t.Fatal("install without a node config left the disk bootable")
	}
	// Slate refusing the node token (the task is no longer running): failed, not bootable.
	tokenStatus = http.StatusConflict
	if _, _, err := run(digest); err == nil || !strings.Contains(err.Error(), "node token") {
		t.Fatalf("node token refused: %v", err)
	}
	if !bootSectorsZero() {
		t.Fatal("install without a node token left the disk bootable")
	}
}
