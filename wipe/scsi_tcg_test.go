package wipe

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// A SAS drive reporting SANITIZE BLOCK ERASE: the plan uses it, the CDB is sg_sanitize's,
// progress is read from REQUEST SENSE, and the result is verified by sampling.
func TestSCSISanitizeBlockErase(t *testing.T) {
	fake := &fakeSCSI{supported: map[SCSISanitizeAction]bool{SCSISanitizeBlockErase: true}}
	h := newHarness(t, "sdc", fake, map[string]string{"device/vendor": "SEAGATE", "device/model": "ST4000NM0025", "queue/rotational": "1"})
	fake.onSanitize = func(cdb, _ []byte) {
		fillDevice(t, h.dev, 0, false)
		fake.senses = [][]byte{
			{0x70, 0, 0x02, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x04, 0x1B, 0, 0x80, 0x80, 0x00},
			{0x70, 0, 0x00, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x00, 0x00, 0, 0, 0, 0},
		}
	}
	p := h.plan(DefaultPolicy())
	dp := p.Drives[0]
	if dp.Method != MethodSCSISanitizeBlock || dp.Drive.Serial != "SAS12345" || !dp.Drive.SCSI.SanitizeBlock || dp.Drive.SCSI.SanitizeCrypto {
		t.Fatalf("plan: %+v", dp)
	}
	res := h.run(p, h.options())
	if res.Status != StatusSanitized {
		t.Fatalf("result: %+v", res)
	}
	want := SCSISanitizeCDB(SCSISanitizeBlockErase, true, false, 0)
	var sawCDB, sawProgress bool
	for _, c := range fake.sent {
		sawCDB = sawCDB || bytes.Equal(c, want)
	}
	for _, pr := range h.progs {
		sawProgress = sawProgress || (pr.Phase == "purge" && pr.Done == 0x8000)
	}
	if !sawCDB || !sawProgress {
		t.Fatalf("sanitize CDB sent %v, progress seen %v", sawCDB, sawProgress)
	}
}

// A self-encrypting drive with nothing else: TCG crypto erase, checked before/after.
func TestTCGCryptoErasePlannedAndVerified(t *testing.T) {
	fake := &fakeATA{identify: ataIdentifyData(testSize/512, 1, 0, 0, 0)}
	h := newHarness(t, "sda", fake, map[string]string{"device/vendor": "ATA"})
	d := h.probe()
	d.TCG = &TCGInfo{Opal: true, MediaEncryption: true, BaseComID: 0x1000}
	p, err := MakePlan("m-1", []DriveInfo{d}, DefaultPolicy(), d0time)
	if err != nil {
		t.Fatal(err)
	}
	if p.Drives[0].Method != MethodTCGCryptoErase || p.Drives[0].Verification != "before/after sampling" {
		t.Fatalf("plan: %+v", p.Drives[0])
	}
	opts := h.options()
	called := 0
	opts.TCGErase = func(ctx context.Context, path, psid string) error {
		called++
		fillDevice(t, h.dev, 0, true)
		return nil
	}
	res := h.run(p, opts)
	if res.Status != StatusSanitized || called != 1 {
		t.Fatalf("result: %+v (erase called %d)", res, called)
	}
	// Locking enabled (owned, in use): not planned without its PSID; the SSD is blocked.
	d.TCG.LockingEnabled = true
	p, _ = MakePlan("m-1", []DriveInfo{d}, DefaultPolicy(), d0time)
	if !p.Drives[0].Blocked {
		t.Fatalf("owned SED planned: %+v", p.Drives[0])
	}
}

// Plans travel as JSON to the API/UI and back; the digest is stable across the trip.
func TestPlanJSONRoundTrip(t *testing.T) {
	d := DriveInfo{Name: "nvme0n1", Path: "/dev/nvme0n1", Transport: TransportNVMe, Media: MediaNVMe, SizeBytes: 1 << 30, LogicalBlockSize: 512,
		NVMe: &NVMeInfo{Controller: NVMeController{FormatSupported: true}, NSID: 1}}
	p, err := MakePlan("m-1", []DriveInfo{d}, DefaultPolicy(), d0time)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Digest() != p.Digest() || back.Drives[0].Method != MethodNVMeFormatUserData {
		t.Fatalf("plan changed in JSON: %s", b)
	}
	if !strings.Contains(string(b), `"method":"nvme-format-user-data-erase"`) {
		t.Fatalf("plan JSON: %s", b)
	}
	bad := DefaultPolicy()
	bad.SampleSubsections = 10
	if _, err := MakePlan("m-1", nil, bad, d0time); err == nil {
		t.Fatal("policy below NIST's 1000 subsections accepted")
	}
}
