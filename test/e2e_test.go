package test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"slate/internal/testenv"
	"slate/inventory"
	"slate/lab"
)

// Media types of a disk-image release's single layer (an OCI artifact, not a container).
const (
	diskMediaGzip = "application/vnd.slate.disk.image.raw.v1+gzip"
	diskMediaRaw  = "application/vnd.slate.disk.image.raw.v1"
)

// buildTestImage runs scripts/mktestimage.sh for a release and returns the raw image.
func buildTestImage(t *testing.T, release string) []byte {
	t.Helper()
	testenv.RequireCommand(t, "syslinux", "syslinux")
	testenv.RequireCommand(t, "mcopy", "mtools")
	testenv.RequireCommand(t, "mkfs.fat", "dosfstools")
	agent := filepath.Join(t.TempDir(), "slate-agent")
	build := exec.Command("go", "build", "-trimpath", "-o", agent, "../cmd/slate-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // the image has no C library
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build slate-agent: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "disk.img")
	cmd := exec.Command("../scripts/mktestimage.sh", out, release)
	cmd.Env = append(os.Environ(), "AGENT="+agent, "DEPLOYENV=../assets/deployenv")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mktestimage: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pushDiskImage wraps a raw disk image as a one-layer OCI artifact (as a build pipeline
// would), pushes it with skopeo into Slate's registry and returns the manifest digest the
// registry has.
func pushDiskImage(t *testing.T, host, creds, repo, tag string, raw []byte, compress bool) string {
	t.Helper()
	skopeo := testenv.RequireCommand(t, "skopeo", "skopeo")
	blob, media := raw, types.MediaType(diskMediaRaw)
	if compress {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(raw)
		zw.Close()
		blob, media = buf.Bytes(), diskMediaGzip
	}
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(blob, media))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	dst := "docker://" + host + "/" + repo + ":" + tag
	if out, err := execOut(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", creds, "oci:"+dir, dst); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	got, err := execOut(skopeo, "inspect", "--tls-verify=false", "--creds", creds, "--raw", dst)
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, got)
	}
	d, err := execOut(skopeo, "manifest-digest", writeTemp(t, got))
	if err != nil || strings.TrimSpace(d) != want.String() {
		t.Fatalf("registry manifest digest %q (%v), pushed %s", d, err, want)
	}
	return want.String()
}

func apiDo(t *testing.T, method, url, token string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(rb)
}

func writeTemp(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte(s), 0o644)
	return p
}

// phases reads a machine's transitions from the audit log: the states in order and when
// each was entered.
func phases(t *testing.T, ls *labSlate, id string) ([]string, []time.Time) {
	t.Helper()
	var ev struct{ Items []inventory.AuditEvent }
	apiGet(t, ls.base, ls.token, "/api/v1/machines/"+id+"/audit?limit=500", &ev)
	var states []string
	var at []time.Time
	for j := len(ev.Items) - 1; j >= 0; j-- {
		e := ev.Items[j]
		if e.Action == "machine.transition" && e.Outcome == "ok" {
			states = append(states, fmt.Sprint(e.Details["to"]))
			at = append(at, e.At)
		}
	}
	return states, at
}

func phaseTable(states []string, at []time.Time, since time.Time) string {
	var b strings.Builder
	prev := since
	for i, s := range states {
		fmt.Fprintf(&b, "  %-14s +%-6s (at %s)\n", s, at[i].Sub(prev).Round(time.Second), at[i].Sub(since).Round(time.Second))
		prev = at[i]
	}
	return b.String()
}

// setDesired assigns the release a machine should run.
func setDesired(t *testing.T, ls *labSlate, id, release string) {
	t.Helper()
	if st, b := apiDo(t, "PATCH", ls.base+"/api/v1/machines/"+id, ls.token, map[string]string{"desired_release": release}); st != 200 {
		t.Fatalf("set desired release %s: %d %s", release, st, b)
	}
}

// waitBooted waits for a deployed machine to report a release from its disk, and checks the
// VM's console shows the test image's own boot line for it.
func waitDeployedWith(t *testing.T, ls *labSlate, vm lab.VMInfo, release, digest string, timeout time.Duration) inventory.Machine {
	t.Helper()
	m := ls.waitState(t, vm.MAC, "deployed", timeout)
	if m.BootedRelease != release || m.BootedDigest != digest {
		t.Fatalf("%s deployed with booted %q digest %q, want %q %q", vm.Name, m.BootedRelease, m.BootedDigest, release, digest)
	}
	serial, _ := os.ReadFile(vm.SerialLog)
	if !strings.Contains(string(serial), `{"release":"`+release+`"} booted from the local disk`) {
		t.Fatalf("%s: the console shows no boot of %s from the disk", vm.Name, release)
	}
	return m
}

// TestE2EJourney is `make e2e`: two VMs (BIOS and UEFI) enrolled by their BMC address go
// through the whole journey by themselves — powered on by Slate over Redfish, inspected,
// the release's BIOS profile applied, its disk image installed, rebooted from disk, deployed
// once the installed system reports the release and digest. Then the UEFI one is updated to
// release 2 and rolled back to release 1 while the BIOS one is decommissioned to retired.
// Every transition is checked in the audit log and the chain verifies.
func TestE2EJourney(t *testing.T) {
	testenv.RequireRoot(t)
	start := time.Now()
	img1 := buildTestImage(t, "plant-os@1")
	img2 := buildTestImage(t, "plant-os@2")
	ls := startLab(t, 2, lab.FirmwareMixed, func(o *lab.Options) {
		o.PowerOn = false // Slate powers them on through their BMCs
		// boot_timeout: a power-on whose boot stalls (seen once in about five runs: the BIOS VM
		// stayed in iPXE after the decommission power-cycle) is retried by Slate itself after
		// 90 s, as a plant's would be after 15 min, instead of failing the 3-minute wait.
		o.SlateSettings = map[string]any{"reconcile_interval": "1s", "boot_timeout": "90s"}
	})
	info := ls.l.Info()
	t.Logf("phase: lab up + 2 images built in %s", time.Since(start).Round(time.Second))

	host := strings.TrimPrefix(ls.base, "http://")
	creds := "admin:journey-pw-1"
	digest1 := pushDiskImage(t, host, creds, "plant/os", "1", img1, true)
	// Release 2 the way an operator without OCI tooling does it: slate registry push-disk.
	raw2 := filepath.Join(t.TempDir(), "plant-os-2.img")
	os.WriteFile(raw2, img2, 0o644)
	out, err := run(t, []string{"SLATE_SERVER=" + ls.base, "SLATE_TOKEN=" + ls.token}, "registry", "push-disk", "--repo", "plant/os", "--tag", "2", raw2)
	i := strings.Index(out, "plant/os@sha256:")
	if err != nil || i < 0 {
		t.Fatalf("slate registry push-disk: %v\n%s", err, out)
	}
	digest2 := strings.Fields(out[i+len("plant/os@"):])[0]
	bios := map[string]any{"ProcVirtualization": "Disabled"} // the lab BMCs default to Enabled: applying it takes a reset
	for v, d := range map[string]string{"1": digest1, "2": digest2} {
		var rel inventory.Release
		if st, b := apiPost(t, ls.base, ls.token, "/api/v1/releases", map[string]any{"name": "plant-os", "version": v, "kind": "disk",
			"image_ref": "plant/os", "image_digest": d, "bios_profile": bios, "notes": "e2e"}, &rel); st != 201 {
			t.Fatalf("create release %s: %d %s", v, st, b)
		}
		if st, b := apiPost(t, ls.base, ls.token, "/api/v1/releases/"+rel.ID+"/approve", nil, nil); st != 200 {
			t.Fatalf("approve release %s: %d %s", v, st, b)
		}
	}
	t.Logf("phase: 2 releases pushed and approved at %s", time.Since(start).Round(time.Second))

	// Enroll both by BMC address only: Slate learns MAC, UUID and serial from Redfish.
	ids := make([]string, len(info.VMs))
	journeyStart := time.Now()
	for i, vm := range info.VMs {
		var m inventory.Machine
		st, b := apiPost(t, ls.base, ls.token, "/api/v1/machines", map[string]any{"name": fmt.Sprintf("e2e-%s", vm.Firmware),
			"bmc_address": vm.BMC, "bmc_username": info.BMCUser, "bmc_password": info.BMCPassword}, &m)
		if st != 201 {
			t.Fatalf("enroll %s by BMC: %d %s", vm.Name, st, b)
		}
		if len(m.MACs) == 0 || m.MACs[0] != vm.MAC {
			t.Fatalf("enrolled by BMC without the VM's MAC: %v, want %s", m.MACs, vm.MAC)
		}
		ids[i] = m.ID
		setDesired(t, ls, m.ID, "plant-os@1")
	}

	var wg sync.WaitGroup
	for i, vm := range info.VMs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run("deploy-"+vm.Firmware, func(t *testing.T) {
				waitDeployedWith(t, ls, vm, "plant-os@1", digest1, 15*time.Minute)
				states, at := phases(t, ls, ids[i])
				t.Logf("%s (%s) enrolled by BMC → deployed in %s:\n%s", vm.Name, vm.Firmware, time.Since(journeyStart).Round(time.Second),
					phaseTable(states, at, journeyStart))
				if got := strings.Join(states, ","); got != "inspecting,ready,configuring,provisioning,deployed" {
					t.Errorf("journey in the audit log: %s", got)
				}
			})
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// The BIOS profile was applied through the BMC and verified.
	for i, id := range ids {
		var ev struct{ Items []inventory.AuditEvent }
		apiGet(t, ls.base, ls.token, "/api/v1/machines/"+id+"/audit?limit=500", &ev)
		applied := false
		for _, e := range ev.Items {
			applied = applied || (e.Action == "bios.apply" && e.Outcome == "ok")
		}
		if !applied {
			t.Errorf("%s: no bios.apply in the audit log", info.VMs[i].Name)
		}
		// ProcVirtualization=Disabled reached the machine: its last power-on hid VT-x.
		q, _ := os.ReadFile(info.VMs[i].QEMULog)
		ons := strings.Split(string(q), "power on:")
		if last := ons[len(ons)-1]; len(ons) < 2 || !strings.Contains(last, "-vmx") {
			t.Errorf("%s: the last power-on does not carry the BIOS profile (no -vmx): %.300s", info.VMs[i].Name, last)
		}
	}

	uefi, biosVM := 0, 1
	if info.VMs[0].Firmware != lab.FirmwareUEFI {
		uefi, biosVM = 1, 0
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		t.Run("update-and-roll-back-"+info.VMs[uefi].Firmware, func(t *testing.T) {
			vm, id := info.VMs[uefi], ids[uefi]
			for _, step := range []struct{ rel, digest, via string }{{"plant-os@2", digest2, "updating"}, {"plant-os@1", digest1, "rolling-back"}} {
				t0 := time.Now()
				before, _ := phases(t, ls, id)
				setDesired(t, ls, id, step.rel)
				ls.waitState(t, vm.MAC, step.via, 2*time.Minute)
				waitDeployedWith(t, ls, vm, step.rel, step.digest, 10*time.Minute)
				states, at := phases(t, ls, id)
				t.Logf("%s → %s in %s:\n%s", vm.Name, step.rel, time.Since(t0).Round(time.Second), phaseTable(states[len(before):], at[len(before):], t0))
				if got := strings.Join(states[len(before):], ","); got != step.via+",deployed" {
					t.Errorf("%s: transitions %s", step.rel, got)
				}
			}
		})
	}()
	go func() {
		defer wg.Done()
		t.Run("decommission-"+info.VMs[biosVM].Firmware, func(t *testing.T) {
			decommissionVM(t, ls, info.VMs[biosVM], biosVM)
			states, _ := phases(t, ls, ids[biosVM])
			if got := strings.Join(states, ","); !strings.HasSuffix(got, "deployed,decommissioning,sanitized,retired") {
				t.Errorf("decommission in the audit log: %s", got)
			}
		})
	}()
	wg.Wait()
	// The audit chain verifies, through the CLI as an operator would run it.
	out, err = run(t, []string{"SLATE_SERVER=" + ls.base, "SLATE_TOKEN=" + ls.token}, "audit", "verify")
	if err != nil || !strings.Contains(out, "audit chain intact") {
		t.Fatalf("slate audit verify: %v\n%s", err, out)
	}
	t.Logf("phase: whole e2e %s; audit verify: %s", time.Since(start).Round(time.Second), strings.TrimSpace(out))
}
