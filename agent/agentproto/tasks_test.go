package agentproto

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"slate/wipe"
)

// The wire forms below are what Slate and slate-agent exchanged before the contract moved
// here (install-image params and every result were maps then, encoded with sorted keys; the
// other params were structs of the same fields). A deploy environment built earlier reads and
// writes exactly these bytes, so the structs must keep producing them.
const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestTaskDocumentsKeepTheOldWireForm(t *testing.T) {
	for _, c := range []struct {
		name   string
		doc    any
		golden string
	}{
		{"install-image params", InstallImageParams{BlobURL: "http://10.0.0.1:8080/v2/plant/hmi/blobs/" + digestA, Digest: digestA,
			Compression: "zstd", Target: DiskTarget{Serial: "S3Z9NB0K", MinBytes: 1 << 30}, Release: "hmi@1.4", ImageDigest: digestB},
			`{"blob_url":"http://10.0.0.1:8080/v2/plant/hmi/blobs/` + digestA + `","compression":"zstd","digest":"` + digestA +
				`","image_digest":"` + digestB + `","release":"hmi@1.4","target":{"serial":"S3Z9NB0K","min_bytes":1073741824}}`},
		// An uncompressed layer: the old map always carried the key, empty.
		{"install-image params, uncompressed", InstallImageParams{BlobURL: "http://s/v2/r/blobs/" + digestA, Digest: digestA,
			Release: "r@1", ImageDigest: digestB},
			`{"blob_url":"http://s/v2/r/blobs/` + digestA + `","compression":"","digest":"` + digestA + `","image_digest":"` + digestB +
				`","release":"r@1","target":{}}`},
		{"install-bootc params", InstallBootcParams{Image: "10.0.0.1:8080/plant/hmi", Digest: digestA, TargetImgref: "plant/hmi:1.4",
			Target: DiskTarget{WWN: "0x5000"}, Kargs: []string{"quiet", "console=ttyS0"}, RootSSHAuthorizedKeys: "ssh-ed25519 AAAA op\n", Release: "hmi@1.4"},
			`{"image":"10.0.0.1:8080/plant/hmi","digest":"` + digestA + `","target_imgref":"plant/hmi:1.4","target":{"wwn":"0x5000"},` +
				`"kargs":["quiet","console=ttyS0"],"root_ssh_authorized_keys":"ssh-ed25519 AAAA op\n","release":"hmi@1.4"}`},
		{"install-bootc params, plain", InstallBootcParams{Image: "h:1/r", Digest: digestA, TargetImgref: "r:1", Release: "r@1"},
			`{"image":"h:1/r","digest":"` + digestA + `","target_imgref":"r:1","target":{},"release":"r@1"}`},
		{"wait params", WaitParams{Seconds: 1.5, Fail: "drill"}, `{"seconds":1.5,"fail":"drill"}`},
		{"wait params, no failure", WaitParams{Seconds: 2}, `{"seconds":2}`},
		{"wait result", WaitResult{WaitedSeconds: 1.5}, `{"waited_seconds":1.5}`},
		{"wipe-plan params", WipePlanParams{}, `{}`},
		{"install-image result", InstallImageResult{Disk: InstalledDisk{Name: "sda", Serial: "S1", WWN: "0x5", Bytes: 4096, Rotational: true},
			Result:  ImageWrite{Written: 1024, DiskBytes: 4096, RawSHA256: "ab", StreamSHA: "cd", GPTRepaired: true},
			Release: "hmi@1.4", ImageDigest: digestB},
			`{"disk":{"Name":"sda","Serial":"S1","WWN":"0x5","Bytes":4096,"Removable":false,"Rotational":true},"image_digest":"` + digestB +
				`","release":"hmi@1.4","result":{"written":1024,"disk_bytes":4096,"raw_sha256":"ab","stream_sha256":"cd","gpt_repaired":true}}`},
		{"install-bootc result", InstallBootcResult{Disk: InstalledDisk{Name: "vda", Bytes: 8}, Release: "hmi@1.4",
			SourceImgref: "registry:h:1/plant/hmi@" + digestA, TargetImgref: "h:1/plant/hmi:1.4"},
			`{"disk":{"Name":"vda","Serial":"","WWN":"","Bytes":8,"Removable":false,"Rotational":false},"release":"hmi@1.4",` +
				`"source_imgref":"registry:h:1/plant/hmi@` + digestA + `","target_imgref":"h:1/plant/hmi:1.4"}`},
		{"task", Task{ID: "t-1", Kind: KindWipePlan, Params: json.RawMessage(`{}`), Attempts: 2},
			`{"id":"t-1","kind":"wipe-plan","params":{},"attempts":2}`},
	} {
		got, err := json.Marshal(c.doc)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != c.golden {
			t.Errorf("%s: the wire form changed (a deploy environment built before would read something else):\n got %s\nwant %s", c.name, got, c.golden)
		}
		// The old bytes decode strictly into the struct: no field was renamed or dropped.
		v := newOf(c.doc)
		dec := json.NewDecoder(strings.NewReader(c.golden))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Errorf("%s: the old wire form no longer decodes: %v", c.name, err)
		}
	}
}

// newOf returns a pointer to a new zero value of doc's type.
func newOf(doc any) any {
	switch doc.(type) {
	case InstallImageParams:
		return new(InstallImageParams)
	case InstallBootcParams:
		return new(InstallBootcParams)
	case WaitParams:
		return new(WaitParams)
	case WaitResult:
		return new(WaitResult)
	case WipePlanParams:
		return new(WipePlanParams)
	case InstallImageResult:
		return new(InstallImageResult)
	case InstallBootcResult:
		return new(InstallBootcResult)
	case Task:
		return new(Task)
	}
	panic("newOf: add the type")
}

// TestTheOldWireFormIsCaught shows the golden comparison failing for the mistake it guards
// against: a renamed field (the bad case) next to the real struct (the good one).
func TestTheOldWireFormIsCaught(t *testing.T) {
	type renamed struct {
		BlobURL string `json:"blob"`
	}
	bad, _ := json.Marshal(renamed{BlobURL: "x"})
	good, _ := json.Marshal(InstallImageParams{BlobURL: "x"})
	if bytes.Contains(bad, []byte(`"blob_url"`)) || !bytes.Contains(good, []byte(`"blob_url":"x"`)) {
		t.Fatalf("bad %s, good %s", bad, good)
	}
	dec := json.NewDecoder(strings.NewReader(`{"blob_url":"x"}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(new(renamed)); err == nil {
		t.Fatal("a renamed field decodes the old form without error: the strict decode would not catch it")
	}
}

// TestWipeDocumentsKeepTheirKeys: the wipe documents are wipe's types; their top-level keys
// are part of this contract too.
func TestWipeDocumentsKeepTheirKeys(t *testing.T) {
	keys := func(v any) []string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	if got := keys(WipeParams{}); !slices.Equal(got, []string{"authorization", "plan"}) {
		t.Errorf("wipe params keys %v", got)
	}
	if got := keys(WipeResult{}); !slices.Equal(got, []string{"machine_id", "plan_digest", "results", "sanitized"}) {
		t.Errorf("wipe result keys %v", got)
	}
	p := wipe.DefaultPolicy()
	b, err := json.Marshal(WipePlanParams{Policy: &p})
	if err != nil || !bytes.HasPrefix(b, []byte(`{"policy":{`)) {
		t.Errorf("wipe-plan params with a policy: %s %v", b, err)
	}
	var plan WipePlanResult
	plan.MachineID, plan.CreatedAt = "m-1", time.Unix(0, 0).UTC()
	if got := keys(plan); !slices.Contains(got, "machine_id") {
		t.Errorf("wipe plan keys %v", got)
	}
}

// TestTaskKinds pins each kind's wire name and what it may do: the names are stored in the
// tasks table and sent to deploy environments already built, so they never change.
func TestTaskKinds(t *testing.T) {
	want := map[TaskKind]string{KindInspect: "inspect", KindReboot: "reboot", KindPowerOff: "poweroff", KindWait: "wait",
		KindInstallImage: "install-image", KindInstallBootc: "install-bootc", KindWipePlan: "wipe-plan", KindWipe: "wipe"}
	if len(Kinds()) != len(want) {
		t.Fatalf("Kinds() = %v: every kind is listed once", Kinds())
	}
	for _, k := range Kinds() {
		if string(k) != want[k] {
			t.Errorf("kind %q, want %q", k, want[k])
		}
		if !k.Known() {
			t.Errorf("%s not Known", k)
		}
		// Only an install leaves a system behind (and may ask for a node token).
		if got := k == KindInstallImage || k == KindInstallBootc; k.Installs() != got {
			t.Errorf("%s.Installs() = %v", k, k.Installs())
		}
		// An operator queues by hand only what erases nothing and installs nothing.
		if got := k == KindInspect || k == KindReboot || k == KindPowerOff || k == KindWait; k.Manual() != got {
			t.Errorf("%s.Manual() = %v", k, k.Manual())
		}
	}
	for _, bad := range []TaskKind{"", "Wipe", "wipe ", "install", "format-disk"} {
		if bad.Known() || bad.Manual() || bad.Installs() {
			t.Errorf("%q is not a kind, yet Known/Manual/Installs = %v/%v/%v", bad, bad.Known(), bad.Manual(), bad.Installs())
		}
	}
	if got := ManualKinds(); !slices.Equal(got, []TaskKind{KindInspect, KindReboot, KindPowerOff, KindWait}) {
		t.Errorf("ManualKinds() = %v", got)
	}
}
