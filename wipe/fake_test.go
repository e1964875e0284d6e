package wipe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/internal/testenv"
)

// newLoop attaches a loop device with direct I/O over a fresh image filled with "secret" data
// (random bytes), so a wipe that skipped a block is caught by verification.
func newLoop(t *testing.T, size int64) (dev, img string) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "losetup", "mount")
	img = filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("losetup", "--direct-io=on", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v\n%s", err, out)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev, img
}

// fakeSys lays out a sysfs/dev tree describing one drive whose device node is a symlink to a
// real loop device: the probe sees an NVMe/ATA disk, the data path hits real blocks.
type fakeSys struct {
	root, sys, dev, mountinfo, swaps string
}

func newFakeSys(t *testing.T) *fakeSys {
	root := t.TempDir()
	fs := &fakeSys{root: root, sys: filepath.Join(root, "sys"), dev: filepath.Join(root, "dev"),
		mountinfo: filepath.Join(root, "mountinfo"), swaps: filepath.Join(root, "swaps")}
	for _, d := range []string{fs.sys + "/block", fs.dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(fs.mountinfo, nil, 0o644)
	os.WriteFile(fs.swaps, []byte("Filename Type Size Used Priority\n"), 0o644)
	return fs
}

func (fs *fakeSys) addDisk(t *testing.T, name, target string, size uint64, attrs map[string]string) {
	t.Helper()
	base := map[string]string{"size": fmt.Sprint(size / 512), "queue/logical_block_size": "512",
		"queue/physical_block_size": "512", "queue/rotational": "0", "removable": "0", "dev": "259:0"}
	for k, v := range attrs {
		base[k] = v
	}
	for k, v := range base {
		p := filepath.Join(fs.sys, "block", name, k)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if target != "" {
		if err := os.Symlink(target, filepath.Join(fs.dev, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func (fs *fakeSys) prober(c Commander, log *slog.Logger) Prober {
	return Prober{SysRoot: fs.sys, DevRoot: fs.dev, MountInfo: fs.mountinfo, Swaps: fs.swaps,
		Open: func(path string) (Commander, io.Closer, error) {
			return loggedCommander{next: c, log: log, device: path}, io.NopCloser(nil), nil
		}, Log: log}
}

// commandLog records what the logged commander printed, to check every command is logged.
type commandLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *commandLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *commandLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// fakeNVMe answers like an NVMe controller; by default like QEMU 7.2's (OACS 0x10a: Format
// supported; SANICAP 0 and FNA 0; Sanitize rejected as an invalid opcode).
type fakeNVMe struct {
	mu       sync.Mutex
	oacs     uint16
	sanicap  uint32
	fna      uint8
	nsze     uint64
	sanitize func(action NVMeSanitizeAction) uint32 // NVMe status
	format   func(ses uint8) uint32
	logs     [][]byte // successive Sanitize Status logs; the last one repeats
	sent     []NVMeAdminCmd
}

func qemuNVMe(size uint64) *fakeNVMe {
	return &fakeNVMe{oacs: 0x10a, nsze: size / 512,
		sanitize: func(NVMeSanitizeAction) uint32 { return 0x01 },
		format:   func(uint8) uint32 { return 0 }}
}

func sanitizeLog(status uint16, progress uint16) []byte {
	b := make([]byte, 512)
	binary.LittleEndian.PutUint16(b[0:2], progress)
	binary.LittleEndian.PutUint16(b[2:4], status)
	return b
}

func (f *fakeNVMe) NVMeAdmin(ctx context.Context, cmd NVMeAdminCmd, data []byte) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, cmd)
	switch cmd.Opcode {
	case nvmeOpIdentify:
		clear(data)
		if cmd.CDW10 == 1 {
			copy(data[4:], "deadbeef            ")
			copy(data[24:], "QEMU NVMe Ctrl                          ")
			copy(data[64:], "7.2.0   ")
			binary.LittleEndian.PutUint16(data[256:], f.oacs)
			binary.LittleEndian.PutUint32(data[328:], f.sanicap)
			binary.LittleEndian.PutUint32(data[516:], 1)
			data[524] = f.fna
		} else {
			binary.LittleEndian.PutUint64(data[0:], f.nsze)
			data[130] = 9 // LBAF0: 512-byte blocks
		}
		return 0, nil
	case nvmeOpSanitize:
		if st := f.sanitize(NVMeSanitizeAction(cmd.CDW10 & 7)); st != 0 {
			return 0, &NVMeStatusError{Status: st}
		}
		return 0, nil
	case nvmeOpFormatNVM:
		if st := f.format(uint8(cmd.CDW10 >> 9 & 7)); st != 0 {
			return 0, &NVMeStatusError{Status: st}
		}
		return 0, nil
	case nvmeOpGetLogPage:
		if len(f.logs) == 0 {
			copy(data, sanitizeLog(0, 0))
			return 0, nil
		}
		copy(data, f.logs[0])
		if len(f.logs) > 1 {
			f.logs = f.logs[1:]
		}
		return 0, nil
	}
	return 0, &NVMeStatusError{Status: 0x01}
}

func (f *fakeNVMe) SCSI(ctx context.Context, cdb []byte, dir Dir, data []byte, timeout time.Duration) (SCSIReply, error) {
	return SCSIReply{}, fmt.Errorf("SG_IO on an NVMe namespace: %w", os.ErrInvalid)
}

// ataSense builds descriptor sense carrying an ATA Status Return descriptor.
func ataSense(key uint8, errReg, status uint8, count uint16, lba uint64) []byte {
	return []byte{0x72, key, 0x00, 0x1D, 0, 0, 0, 14,
		0x09, 0x0C, 0x01, errReg, byte(count >> 8), byte(count), byte(lba >> 24), byte(lba),
		byte(lba >> 32), byte(lba >> 8), byte(lba >> 40), byte(lba >> 16), 0x40, status}
}

// fakeATA answers ATA PASS-THROUGH like a SATA drive behind libata; by default like QEMU's
// AHCI disk (no Security, no SANITIZE feature set: those commands are aborted).
type fakeATA struct {
	mu       sync.Mutex
	identify []byte
	onCmd    func(cdb []byte, data []byte) (sense []byte, ok bool) // nil → abort
	sent     [][]byte
}

func ataIdentifyData(sectors uint64, rotation uint16, w59, w82, w128 uint16) []byte {
	b := make([]byte, 512)
	put := func(w int, v uint16) { binary.LittleEndian.PutUint16(b[2*w:], v) }
	putStr := func(w, n int, s string) {
		s = fmt.Sprintf("%-*s", 2*n, s)
		for i := 0; i < n; i++ {
			b[2*(w+i)], b[2*(w+i)+1] = s[2*i+1], s[2*i]
		}
	}
	putStr(10, 10, "QM00005")
	putStr(23, 4, "2.5+")
	putStr(27, 20, "QEMU HARDDISK")
	put(49, 1<<9)
	put(59, w59)
	put(60, uint16(sectors))
	put(61, uint16(sectors>>16))
	put(82, w82|0x4000)
	put(83, 0x4000|1<<10)
	put(100, uint16(sectors))
	put(101, uint16(sectors>>16))
	put(128, w128)
	put(217, rotation)
	return b
}

func (f *fakeATA) NVMeAdmin(ctx context.Context, cmd NVMeAdminCmd, data []byte) (uint32, error) {
	return 0, fmt.Errorf("nvme ioctl on a SCSI disk: %w", os.ErrInvalid)
}

func (f *fakeATA) SCSI(ctx context.Context, cdb []byte, dir Dir, data []byte, timeout time.Duration) (SCSIReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, append([]byte(nil), cdb...))
	if cdb[0] == 0x85 && cdb[14] == ataCmdIdentify {
		copy(data, f.identify)
		return SCSIReply{}, nil
	}
	if f.onCmd != nil {
		if sense, ok := f.onCmd(cdb, data); ok {
			return SCSIReply{Status: 2, DriverStatus: 0x08, Sense: sense}, nil
		}
	}
	// ABORTED COMMAND, ATA status ERR|DRDY, error ABRT: what libata returns for a command
	// the device rejected.
	return SCSIReply{Status: 2, DriverStatus: 0x08, Sense: ataSense(0x0B, 0x04, 0x51, 0, 0)}, nil
}

// fakeSCSI answers like a SAS drive: INQUIRY, VPD 80h, REPORT SUPPORTED OPERATION CODES for
// SANITIZE service actions, SANITIZE, REQUEST SENSE.
type fakeSCSI struct {
	mu         sync.Mutex
	supported  map[SCSISanitizeAction]bool
	onSanitize func(cdb, params []byte)
	senses     [][]byte // successive REQUEST SENSE answers; the last repeats
	sent       [][]byte
}

func (f *fakeSCSI) NVMeAdmin(ctx context.Context, cmd NVMeAdminCmd, data []byte) (uint32, error) {
	return 0, fmt.Errorf("nvme ioctl on a SCSI disk: %w", os.ErrInvalid)
}

func (f *fakeSCSI) SCSI(ctx context.Context, cdb []byte, dir Dir, data []byte, timeout time.Duration) (SCSIReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, append([]byte(nil), cdb...))
	switch cdb[0] {
	case scsiOpInquiry:
		clear(data)
		if cdb[1]&1 == 1 {
			copy(data, append([]byte{0, 0x80, 0, 8}, "SAS12345"...))
		} else {
			data[4] = 91
			copy(data[8:], "SEAGATE ST4000NM0025    0004")
		}
	case scsiOpRSOC:
		clear(data)
		data[1] = 1 // not supported
		if f.supported[SCSISanitizeAction(cdb[5])] {
			data[1] = 3
		}
	case scsiOpSanitize:
		f.onSanitize(cdb, data)
	case scsiOpRequestSens:
		clear(data)
		copy(data, f.senses[0])
		if len(f.senses) > 1 {
			f.senses = f.senses[1:]
		}
	default:
		return SCSIReply{Status: 2, DriverStatus: 8, Sense: []byte{0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0}}, nil
	}
	return SCSIReply{}, nil
}
