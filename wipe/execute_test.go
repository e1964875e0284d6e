package wipe

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const testSize = 64 << 20

var d0time = time.Unix(1_800_000_000, 0)

type harness struct {
	t     *testing.T
	dev   string
	fs    *fakeSys
	log   *commandLog
	p     Prober
	mu    sync.Mutex
	progs []Progress
}

func newHarness(t *testing.T, name string, c Commander, attrs map[string]string) *harness {
	dev, _ := newLoop(t, testSize)
	fs := newFakeSys(t)
	fs.addDisk(t, name, dev, testSize, attrs)
	h := &harness{t: t, dev: dev, fs: fs, log: &commandLog{}}
	h.p = fs.prober(c, slog.New(slog.NewTextHandler(h.log, nil)))
	return h
}

func (h *harness) probe() DriveInfo {
	h.t.Helper()
	d, err := h.p.Probe(context.Background(), h.fs.dev+"/"+strings.TrimPrefix(h.fs.sys, h.fs.sys)+nameOf(h.fs))
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func nameOf(fs *fakeSys) string {
	ents, _ := os.ReadDir(fs.sys + "/block")
	return ents[0].Name()
}

func (h *harness) options() Options {
	usage := h.p
	usage.Open, usage.TCG = nil, nil
	return Options{
		Log:              h.p.Log,
		Open:             h.p.Open,
		Reprobe:          func(ctx context.Context, d DriveInfo) (DriveInfo, error) { return usage.Probe(ctx, d.Name) },
		PollInterval:     5 * time.Millisecond,
		BufferSize:       1 << 20,
		Tool:             "Slate wipe test",
		ProgressInterval: time.Nanosecond,
		Progress: func(p Progress) {
			h.mu.Lock()
			h.progs = append(h.progs, p)
			h.mu.Unlock()
		},
	}
}

func (h *harness) plan(pol Policy) Plan {
	h.t.Helper()
	p, err := MakePlan("m-1", []DriveInfo{h.probe()}, pol, time.Unix(1_800_000_000, 0))
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func authFor(p Plan) Authorization {
	return Authorization{TaskID: "task-9", MachineID: p.MachineID, PlanDigest: p.Digest(), ConfirmedBy: "alice"}
}

func (h *harness) run(p Plan, opts Options) Result {
	h.t.Helper()
	res, err := Execute(context.Background(), authFor(p), p, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(res) != 1 {
		h.t.Fatalf("%d results for one drive", len(res))
	}
	return res[0]
}

// fillDevice writes b repeated (nil: random data) over the whole loop device, as a drive's
// own erase would.
func fillDevice(t *testing.T, dev string, b byte, random bool) {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{b}, 1<<20)
	for off := 0; off < testSize; off += len(buf) {
		if random {
			rand.Read(buf)
		}
		if _, err := f.WriteAt(buf, int64(off)); err != nil {
			t.Error(err)
		}
	}
	f.Sync()
	unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKFLSBUF, 0)
}

// mustBeCertifiable: a good run passes the check the certificate issuer (slate/wipe/cert)
// applies before it signs anything.
func mustBeCertifiable(t *testing.T, res Result) {
	t.Helper()
	if err := Certifiable(res); err != nil {
		t.Fatalf("certificate refused for a good run: %v", err)
	}
}

func requireNoCertificate(t *testing.T, res Result) {
	t.Helper()
	if res.Status == StatusSanitized {
		t.Fatalf("status sanitized for a run that must fail: %+v", res)
	}
	if err := Certifiable(res); err == nil {
		t.Fatal("a failed/interrupted run is certifiable")
	}
}

// QEMU's NVMe controller: Sanitize unsupported, Format supported. The plan must Purge by
// Format NVM (user data erase), the command must be the one nvme-cli sends (plus Slate's long
// timeout), and the result verified by sampling.
func TestQEMUNVMeFormatsAndCertifies(t *testing.T) {
	fake := qemuNVMe(testSize)
	h := newHarness(t, "nvme0n1", fake, nil)
	fake.format = func(ses uint8) uint32 { fillDevice(t, h.dev, 0, false); return 0 }
	p := h.plan(DefaultPolicy())
	dp := p.Drives[0]
	if dp.Blocked || dp.Method != MethodNVMeFormatUserData || dp.Level != LevelPurge || dp.Drive.Media != MediaNVMe {
		t.Fatalf("plan for QEMU NVMe: %+v", dp)
	}
	if dp.Drive.Serial != "deadbeef" || dp.Drive.NVMe.Controller.OACS != 0x10a {
		t.Fatalf("probe: %+v", dp.Drive)
	}
	res := h.run(p, h.options())
	if res.Status != StatusSanitized || !res.Verification.Passed {
		t.Fatalf("result: %+v", res)
	}
	var format *NVMeAdminCmd
	for i, c := range fake.sent {
		if c.Opcode == nvmeOpFormatNVM {
			format = &fake.sent[i]
		}
		if c.Opcode == nvmeOpSanitize {
			t.Fatal("sanitize sent to a controller whose SANICAP is 0")
		}
	}
	if format == nil || format.CDW10 != 1<<9 || format.NSID != 1 || format.TimeoutMs != 3600_000 {
		t.Fatalf("format command: %+v", format)
	}
	if !strings.Contains(h.log.String(), "opcode=0x80") {
		t.Fatalf("format command not logged:\n%s", h.log.String())
	}
	if res.Verification.Subsections != 1000 || res.Verification.BytesRead < testSize/10 {
		t.Fatalf("verification: %+v", res.Verification)
	}
	mustBeCertifiable(t, res)
	if res.Level != LevelPurge || res.Drive.Serial != "deadbeef" {
		t.Fatalf("result for the certificate: %+v", res)
	}
}

// A controller that advertises crypto Sanitize but rejects it (invalid opcode) falls back to
// the next purge method, and the certificate records the rejected attempt.
func TestNVMeUnsupportedSanitizeFallsBack(t *testing.T) {
	fake := qemuNVMe(testSize)
	fake.sanicap = 1
	h := newHarness(t, "nvme0n1", fake, nil)
	fake.format = func(ses uint8) uint32 { fillDevice(t, h.dev, 0, false); return 0 }
	p := h.plan(DefaultPolicy())
	if p.Drives[0].Method != MethodNVMeSanitizeCrypto {
		t.Fatalf("plan: %+v", p.Drives[0])
	}
	res := h.run(p, h.options())
	if res.Status != StatusSanitized || res.Method != MethodNVMeFormatUserData || len(res.Attempts) != 1 ||
		!strings.Contains(res.Attempts[0], "invalid command opcode") {
		t.Fatalf("result: %+v", res)
	}
	mustBeCertifiable(t, res)
}

// A controller that accepts Format but leaves the data: verification fails, no certificate.
func TestLyingFormatGetsNoCertificate(t *testing.T) {
	fake := qemuNVMe(testSize)
	h := newHarness(t, "nvme0n1", fake, nil)
	p := h.plan(DefaultPolicy())
	res := h.run(p, h.options())
	if res.Verification.Passed || res.Verification.Mismatches == 0 {
		t.Fatalf("verification passed on untouched data: %+v", res.Verification)
	}
	requireNoCertificate(t, res)
}

// No purge method at all on NVMe media, where policy requires Purge: blocked, not downgraded.
func TestNVMeWithoutPurgeIsBlocked(t *testing.T) {
	fake := qemuNVMe(testSize)
	fake.oacs = 0
	h := newHarness(t, "nvme0n1", fake, nil)
	p := h.plan(DefaultPolicy())
	if !p.Drives[0].Blocked || p.Drives[0].Remedy == "" || p.Runnable() {
		t.Fatalf("plan: %+v", p.Drives[0])
	}
	if _, err := Execute(context.Background(), authFor(p), p, h.options()); err == nil {
		t.Fatal("a blocked plan ran")
	}
}

// NVMe Sanitize crypto erase: progress comes from the Sanitize Status log, and verification
// compares sampled blocks before and after.
func TestNVMeSanitizeCryptoPolledAndVerified(t *testing.T) {
	fake := qemuNVMe(testSize)
	fake.sanicap = 1
	h := newHarness(t, "nvme0n1", fake, nil)
	fake.sanitize = func(a NVMeSanitizeAction) uint32 {
		if a != NVMeSanitizeCryptoErase {
			return 0x02
		}
		fillDevice(t, h.dev, 0, true)
		fake.logs = [][]byte{sanitizeLog(2, 0x4000), sanitizeLog(2, 0xC000), sanitizeLog(1, 0xFFFF)}
		return 0
	}
	p := h.plan(DefaultPolicy())
	res := h.run(p, h.options())
	if res.Status != StatusSanitized || res.Method != MethodNVMeSanitizeCrypto {
		t.Fatalf("result: %+v", res)
	}
	if !strings.Contains(res.Verification.Method, "before and after") {
		t.Fatalf("verification: %+v", res.Verification)
	}
	var sawDriveProgress bool
	for _, pr := range h.progs {
		if pr.Phase == "purge" && pr.Total == 65536 && pr.Done == 0xC000 {
			sawDriveProgress = true
		}
	}
	if !sawDriveProgress {
		t.Fatalf("no progress from the sanitize status log: %+v", h.progs)
	}
	// Same drive, but the "crypto erase" leaves the data as it was: must fail.
	fillDevice(t, h.dev, 0, true)
	fake.sanitize = func(NVMeSanitizeAction) uint32 { fake.logs = [][]byte{sanitizeLog(1, 0)}; return 0 }
	p = h.plan(DefaultPolicy())
	res = h.run(p, h.options())
	requireNoCertificate(t, res)
}

// A restart mid-sanitize (context cancelled) leaves the drive "interrupted": no certificate.
func TestInterruptedSanitizeGetsNoCertificate(t *testing.T) {
	fake := qemuNVMe(testSize)
	fake.sanicap = 2
	fake.sanitize = func(NVMeSanitizeAction) uint32 { fake.logs = [][]byte{sanitizeLog(2, 100)}; return 0 }
	h := newHarness(t, "nvme0n1", fake, nil)
	p := h.plan(DefaultPolicy())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := Execute(ctx, authFor(p), p, h.options())
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != StatusInterrupted {
		t.Fatalf("status %q, want interrupted", res[0].Status)
	}
	requireNoCertificate(t, res[0])
}

// QEMU's AHCI disk: no Security or SANITIZE feature set. As a rotational disk (Clear allowed)
// it is overwritten and verified; as an SSD (Purge required) it is blocked.
func TestQEMUAHCIDisk(t *testing.T) {
	fake := &fakeATA{identify: ataIdentifyData(testSize/512, 0, 0, 0, 0)}
	h := newHarness(t, "sda", fake, map[string]string{"device/vendor": "ATA", "queue/rotational": "1"})
	p := h.plan(DefaultPolicy())
	dp := p.Drives[0]
	if dp.Blocked || dp.Method != MethodOverwrite || dp.Drive.Media != MediaHDD || dp.Drive.Model != "QEMU HARDDISK" {
		t.Fatalf("plan: %+v", dp)
	}
	res := h.run(p, h.options())
	if res.Status != StatusSanitized || res.BytesWritten != testSize {
		t.Fatalf("result: %+v", res)
	}
	for _, c := range fake.sent {
		if c[14] != ataCmdIdentify {
			t.Fatalf("command %x sent to a drive without security/sanitize", c)
		}
	}
	mustBeCertifiable(t, res)

	ssd := &fakeATA{identify: ataIdentifyData(testSize/512, 1, 0, 0, 0)}
	h2 := newHarness(t, "sdb", ssd, map[string]string{"device/vendor": "ATA"})
	p2 := h2.plan(DefaultPolicy())
	if !p2.Drives[0].Blocked || p2.Drives[0].Drive.Media != MediaSSD {
		t.Fatalf("SSD without purge not blocked: %+v", p2.Drives[0])
	}
}

// A frozen SSD is blocked with the unfreeze remedy, not silently overwritten.
func TestFrozenATAIsReportedWithRemedy(t *testing.T) {
	fake := &fakeATA{identify: ataIdentifyData(testSize/512, 1, 0, 1<<1, 1|1<<3|1<<5)}
	h := newHarness(t, "sda", fake, map[string]string{"device/vendor": "ATA"})
	p := h.plan(DefaultPolicy())
	dp := p.Drives[0]
	if !dp.Blocked || !strings.Contains(dp.Reason, "frozen") || !strings.Contains(dp.Remedy, "suspend") {
		t.Fatalf("frozen drive plan: %+v", dp)
	}
	if !dp.Drive.ATA.SecurityFrozen || !dp.Drive.ATA.EnhancedErase {
		t.Fatalf("identify: %+v", dp.Drive.ATA)
	}
}

// ATA SANITIZE CRYPTO SCRAMBLE, polled with SANITIZE STATUS EXT.
func TestATASanitizeCryptoScramble(t *testing.T) {
	fake := &fakeATA{identify: ataIdentifyData(testSize/512, 1, 1<<12|1<<13, 0, 0)}
	h := newHarness(t, "sda", fake, map[string]string{"device/vendor": "ATA"})
	polls := 0
	fake.onCmd = func(cdb, data []byte) ([]byte, bool) {
		if cdb[14] != ataCmdSanitize {
			return nil, false
		}
		switch cdb[4] {
		case 0x11:
			fillDevice(t, h.dev, 0, true)
			return ataSense(0x01, 0, 0x50, 0, 0), true
		case 0x00:
			polls++
			if polls < 2 {
				return ataSense(0x01, 0, 0x50, 1<<14, 0x8000), true
			}
			return ataSense(0x01, 0, 0x50, 1<<15, 0), true
		}
		return nil, false
	}
	p := h.plan(DefaultPolicy())
	if p.Drives[0].Method != MethodATASanitizeCrypto {
		t.Fatalf("plan: %+v", p.Drives[0])
	}
	res := h.run(p, h.options())
	if res.Status != StatusSanitized {
		t.Fatalf("result: %+v", res)
	}
	want := ATASanitize(ATASanitizeCryptoScramble, 1, 0).CDB()
	found := false
	for _, c := range fake.sent {
		found = found || bytes.Equal(c, want)
	}
	if !found || polls < 2 {
		t.Fatalf("crypto scramble %x not sent or not polled (%d polls): %x", want, polls, fake.sent)
	}
}

// ATA enhanced security erase: set password, erase prepare, erase unit, in that order.
func TestATASecurityEraseSequence(t *testing.T) {
	fake := &fakeATA{identify: ataIdentifyData(testSize/512, 1, 0, 1<<1, 1|1<<5)}
	h := newHarness(t, "sda", fake, map[string]string{"device/vendor": "ATA"})
	var seq []byte
	var eraseData []byte
	fake.onCmd = func(cdb, data []byte) ([]byte, bool) {
		switch cdb[14] {
		case ataCmdSecuritySetPassword, ataCmdSecurityErasePrep:
		case ataCmdSecurityEraseUnit:
			eraseData = append([]byte(nil), data...)
			fillDevice(t, h.dev, 0, false)
		default:
			return nil, false
		}
		seq = append(seq, cdb[14])
		return ataSense(0x01, 0, 0x50, 0, 0), true
	}
	p := h.plan(DefaultPolicy())
	if p.Drives[0].Method != MethodATASecurityEnhanced {
		t.Fatalf("plan: %+v", p.Drives[0])
	}
	res := h.run(p, h.options())
	if res.Status != StatusSanitized {
		t.Fatalf("result: %+v", res)
	}
	if !bytes.Equal(seq, []byte{0xF1, 0xF3, 0xF4}) {
		t.Fatalf("security command sequence %x", seq)
	}
	want, _ := ATASecurityPasswordBlock(ataSecurityPassword, false, true)
	if !bytes.Equal(eraseData, want) {
		t.Fatal("erase unit password block is not the enhanced one")
	}
}

// Mounted drives are blocked in the plan, and refused at execution if mounted after planning.
func TestMountedDriveRefused(t *testing.T) {
	fake := qemuNVMe(testSize)
	h := newHarness(t, "nvme0n1", fake, map[string]string{"nvme0n1p1/partition": "1", "nvme0n1p1/dev": "259:1"})
	fake.format = func(uint8) uint32 { t.Error("format sent to a mounted drive"); return 0 }
	p := h.plan(DefaultPolicy())
	if p.Drives[0].Blocked {
		t.Fatalf("unmounted drive blocked: %+v", p.Drives[0])
	}
	os.WriteFile(h.fs.mountinfo, []byte("36 25 259:1 / /data rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw\n"), 0o644)
	res := h.run(p, h.options())
	if res.Status != StatusFailed || !strings.Contains(strings.Join(res.Errors, " "), "refusing") {
		t.Fatalf("mounted drive not refused: %+v", res)
	}
	requireNoCertificate(t, res)
	p2 := h.plan(DefaultPolicy())
	if !p2.Drives[0].Blocked || !p2.Drives[0].Drive.Mounted {
		t.Fatalf("mounted drive planned: %+v", p2.Drives[0])
	}
	os.WriteFile(h.fs.mountinfo, []byte("36 25 259:1 / / rw - ext4 /dev/nvme0n1p1 rw\n"), 0o644)
	if d := h.probe(); !d.BootDevice {
		t.Fatalf("root filesystem's drive not marked as the boot device: %+v", d)
	}
}

func TestExecuteNeedsMatchingAuthorization(t *testing.T) {
	p := Plan{MachineID: "m-1", Policy: DefaultPolicy(), Drives: []DrivePlan{{Method: MethodOverwrite}}}
	good := authFor(p)
	for name, a := range map[string]Authorization{
		"empty":         {},
		"no task":       {MachineID: "m-1", PlanDigest: good.PlanDigest, ConfirmedBy: "alice"},
		"other machine": {TaskID: "t", MachineID: "m-2", PlanDigest: good.PlanDigest, ConfirmedBy: "alice"},
		"other plan":    {TaskID: "t", MachineID: "m-1", PlanDigest: strings.Repeat("0", 64), ConfirmedBy: "alice"},
	} {
		if _, err := Execute(context.Background(), a, p, Options{}); !errors.Is(err, ErrNotAuthorized) {
			t.Errorf("%s: err %v, want ErrNotAuthorized", name, err)
		}
	}
	// The confirmed plan changed afterwards (a drive swapped): the digest no longer matches.
	p.Drives[0].Method = MethodNVMeFormatUserData
	if _, err := Execute(context.Background(), good, p, Options{}); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("modified plan ran: %v", err)
	}
}

var _ io.Closer = (*os.File)(nil)
