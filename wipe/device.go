package wipe

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Dir is a SCSI data transfer direction.
type Dir int32

// Values of sg_io_hdr.dxfer_direction.
const (
	DirNone Dir = -1
	DirOut  Dir = -2
	DirIn   Dir = -3
)

// SCSIReply is what came back from one SG_IO command.
type SCSIReply struct {
	Status       uint8
	HostStatus   uint16
	DriverStatus uint16
	Sense        []byte
	Resid        int32
}

// Commander sends raw commands to one drive. The real one is an open device node; tests use
// fakes that answer like QEMU or like a drive with every feature.
type Commander interface {
	// NVMeAdmin sends an admin command with data (in or out per the opcode) and returns the
	// completion's result dword; an NVMe status becomes *NVMeStatusError.
	NVMeAdmin(ctx context.Context, cmd NVMeAdminCmd, data []byte) (uint32, error)
	// SCSI sends a CDB through SG_IO.
	SCSI(ctx context.Context, cdb []byte, dir Dir, data []byte, timeout time.Duration) (SCSIReply, error)
}

// NVMeStatusError is a non-zero NVMe completion status.
type NVMeStatusError struct{ Status uint32 }

func (e *NVMeStatusError) Error() string {
	sct, sc := e.Status>>8&0x7, e.Status&0xFF
	what := ""
	if sct == 0 {
		switch sc {
		case 0x01:
			what = " (invalid command opcode: the drive does not support this command)"
		case 0x02:
			what = " (invalid field in command: the drive does not support this option)"
		case 0x1D:
			what = " (sanitize in progress)"
		case 0x1E:
			what = " (sanitize failed)"
		case 0x20:
			what = " (namespace is write protected)"
		}
	}
	return fmt.Sprintf("nvme status 0x%03x%s", e.Status, what)
}

// Unsupported is true for the statuses a controller returns for a command or field it lacks
// (QEMU's answer to Sanitize).
func (e *NVMeStatusError) Unsupported() bool {
	sct, sc := e.Status>>8&0x7, e.Status&0xFF
	return sct == 0 && (sc == 0x01 || sc == 0x02)
}

// isUnsupported tells whether err means the drive lacks the command.
func isUnsupported(err error) bool {
	var ne *NVMeStatusError
	if errors.As(err, &ne) {
		return ne.Unsupported()
	}
	var se *SCSIError
	if errors.As(err, &se) {
		return se.Sense.Unsupported() || se.ATAAborted
	}
	return errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)
}

// SCSIError is a SCSI command that ended with CHECK CONDITION or a transport error.
type SCSIError struct {
	CDB        []byte
	Reply      SCSIReply
	Sense      SCSISense
	ATA        ATAResult
	ATAAborted bool
}

func (e *SCSIError) Error() string {
	if e.ATAAborted {
		return fmt.Sprintf("ata command %02x aborted by the drive (error 0x%02x, status 0x%02x): unsupported or refused", e.CDB[14], e.ATA.Error, e.ATA.Status)
	}
	return fmt.Sprintf("scsi command %02x failed: status 0x%02x host 0x%x driver 0x%x sense key 0x%x asc/ascq %02x/%02x",
		e.CDB[0], e.Reply.Status, e.Reply.HostStatus, e.Reply.DriverStatus, e.Sense.Key, e.Sense.ASC, e.Sense.ASCQ)
}

// scsiCheck turns a reply into nil or *SCSIError. An ATA pass-through with CK_COND returns
// CHECK CONDITION with sense key RECOVERED ERROR / "ATA pass through information available"
// on success, which is not a failure; the ATA status register's ERR bit is.
func scsiCheck(cdb []byte, r SCSIReply) (ATAResult, error) {
	ata, hasATA := ParseATASense(r.Sense)
	sense, _ := ParseSCSISense(r.Sense)
	if r.HostStatus != 0 || r.DriverStatus&^0x08 != 0 { // DRIVER_SENSE (08h) only says sense is there
		return ata, &SCSIError{CDB: cdb, Reply: r, Sense: sense, ATA: ata}
	}
	if hasATA && ata.Status&0x01 != 0 {
		return ata, &SCSIError{CDB: cdb, Reply: r, Sense: sense, ATA: ata, ATAAborted: ata.Error&0x04 != 0}
	}
	if r.Status == 0 || (sense.Key == 0x1 && sense.ASC == 0x00 && sense.ASCQ == 0x1D) || (hasATA && sense.Key <= 1) {
		return ata, nil
	}
	return ata, &SCSIError{CDB: cdb, Reply: r, Sense: sense, ATA: ata}
}

// sgIOHdr is Linux's struct sg_io_hdr (include/scsi/sg.h) on 64-bit platforms.
type sgIOHdr struct {
	InterfaceID    int32
	DxferDirection int32
	CmdLen         uint8
	MxSbLen        uint8
	IovecCount     uint16
	DxferLen       uint32
	Dxferp         unsafe.Pointer
	Cmdp           unsafe.Pointer
	Sbp            unsafe.Pointer
	Timeout        uint32
	Flags          uint32
	PackID         int32
	UsrPtr         unsafe.Pointer
	Status         uint8
	MaskedStatus   uint8
	MsgStatus      uint8
	SbLenWr        uint8
	HostStatus     uint16
	DriverStatus   uint16
	Resid          int32
	Duration       uint32
	Info           uint32
}

const sgIO = 0x2285

// DeviceFile is a Commander on an open block device node (/dev/nvme0n1, /dev/sda).
type DeviceFile struct {
	f *os.File
}

// OpenDevice opens a drive for commands (read-write: SG_IO writes and NVMe admin commands need it).
func OpenDevice(path string) (*DeviceFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s for commands: %w", path, err)
	}
	return &DeviceFile{f: f}, nil
}

func (d *DeviceFile) Close() error { return d.f.Close() }

// Fd exposes the descriptor for go-tcg-storage's drive wrappers.
func (d *DeviceFile) Fd() uintptr { return d.f.Fd() }

func (d *DeviceFile) NVMeAdmin(ctx context.Context, cmd NVMeAdminCmd, data []byte) (uint32, error) {
	if len(data) > 0 {
		cmd.Addr = uint64(uintptr(unsafe.Pointer(&data[0])))
		cmd.DataLen = uint32(len(data))
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(&cmd)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return 0, fmt.Errorf("nvme admin opcode 0x%02x on %s: %w", cmd.Opcode, d.f.Name(), errno)
	}
	if r != 0 {
		return cmd.Result, &NVMeStatusError{Status: uint32(r)}
	}
	return cmd.Result, nil
}

func (d *DeviceFile) SCSI(ctx context.Context, cdb []byte, dir Dir, data []byte, timeout time.Duration) (SCSIReply, error) {
	sense := make([]byte, 64)
	cdbCopy := append([]byte(nil), cdb...)
	h := sgIOHdr{InterfaceID: 'S', DxferDirection: int32(dir), CmdLen: uint8(len(cdbCopy)), MxSbLen: uint8(len(sense)),
		Cmdp: unsafe.Pointer(&cdbCopy[0]), Sbp: unsafe.Pointer(&sense[0]), Timeout: uint32(timeout / time.Millisecond)}
	if len(data) > 0 {
		h.Dxferp = unsafe.Pointer(&data[0])
		h.DxferLen = uint32(len(data))
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), sgIO, uintptr(unsafe.Pointer(&h)))
	runtime.KeepAlive(data)
	runtime.KeepAlive(cdbCopy)
	runtime.KeepAlive(sense)
	if errno != 0 {
		return SCSIReply{}, fmt.Errorf("SG_IO opcode 0x%02x on %s: %w", cdb[0], d.f.Name(), errno)
	}
	return SCSIReply{Status: h.Status, HostStatus: h.HostStatus, DriverStatus: h.DriverStatus,
		Sense: sense[:h.SbLenWr], Resid: h.Resid}, nil
}

// loggedCommander logs every command before it is sent and its outcome, as the safety
// section requires (an auditor can replay what touched the drive).
type loggedCommander struct {
	next   Commander
	log    *slog.Logger
	device string
}

func (l loggedCommander) NVMeAdmin(ctx context.Context, cmd NVMeAdminCmd, data []byte) (uint32, error) {
	l.log.InfoContext(ctx, "nvme admin command", "device", l.device, "opcode", fmt.Sprintf("0x%02x", cmd.Opcode),
		"nsid", cmd.NSID, "cdw10", fmt.Sprintf("0x%08x", cmd.CDW10), "cdw11", fmt.Sprintf("0x%08x", cmd.CDW11),
		"bytes", hex.EncodeToString(cmd.Bytes()))
	res, err := l.next.NVMeAdmin(ctx, cmd, data)
	if err != nil {
		l.log.WarnContext(ctx, "nvme admin command failed", "device", l.device, "opcode", fmt.Sprintf("0x%02x", cmd.Opcode), "err", err)
	}
	return res, err
}

func (l loggedCommander) SCSI(ctx context.Context, cdb []byte, dir Dir, data []byte, timeout time.Duration) (SCSIReply, error) {
	l.log.InfoContext(ctx, "scsi command", "device", l.device, "cdb", hex.EncodeToString(cdb), "dir", int(dir), "len", len(data))
	r, err := l.next.SCSI(ctx, cdb, dir, data, timeout)
	if err != nil {
		l.log.WarnContext(ctx, "scsi command failed", "device", l.device, "cdb", hex.EncodeToString(cdb), "err", err)
	}
	return r, err
}

// runATA sends one ATA command and checks the result.
func runATA(ctx context.Context, c Commander, a ATACommand, dir Dir, data []byte, timeout time.Duration) (ATAResult, error) {
	cdb := a.CDB()
	r, err := c.SCSI(ctx, cdb, dir, data, timeout)
	if err != nil {
		return ATAResult{}, err
	}
	return scsiCheck(cdb, r)
}

// runSCSI sends one SCSI command and checks the result.
func runSCSI(ctx context.Context, c Commander, cdb []byte, dir Dir, data []byte, timeout time.Duration) (SCSIReply, error) {
	r, err := c.SCSI(ctx, cdb, dir, data, timeout)
	if err != nil {
		return r, err
	}
	_, err = scsiCheck(cdb, r)
	return r, err
}
