package inspect

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"slate/agent/agentproto"
)

// nvmeAdminCmd is struct nvme_passthru_cmd (linux/nvme_ioctl.h), 72 bytes.
type nvmeAdminCmd struct {
	opcode      uint8
	flags       uint8
	rsvd1       uint16
	nsid        uint32
	cdw2, cdw3  uint32
	metadata    uint64
	addr        uint64
	metadataLen uint32
	dataLen     uint32
	cdw10       uint32
	cdw11       uint32
	cdw12       uint32
	cdw13       uint32
	cdw14       uint32
	cdw15       uint32
	timeoutMs   uint32
	result      uint32
}

// nvmeIoctlAdminCmd is _IOWR('N', 0x41, struct nvme_admin_cmd).
const nvmeIoctlAdminCmd = 0xC0484E41

// identifyNVMe sends Identify Controller (opcode 06h, CNS 01h) to a controller character device.
func identifyNVMe(dev string, caps *agentproto.NVMeCaps, keepRaw bool) error {
	f, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	cmd := nvmeAdminCmd{opcode: 0x06, addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), dataLen: 4096, cdw10: 1, timeoutMs: 10000}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(&cmd)))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return fmt.Errorf("NVME_IOCTL_ADMIN_CMD identify: %w", errno)
	}
	if cmd.result != 0 {
		return fmt.Errorf("identify controller: status %#x", cmd.result)
	}
	if keepRaw {
		caps.Raw = buf
	}
	return ParseNVMeIdentify(buf, caps)
}

// sgIOHdr is struct sg_io_hdr (scsi/sg.h) on 64-bit Linux.
type sgIOHdr struct {
	interfaceID    int32
	dxferDirection int32
	cmdLen         uint8
	mxSbLen        uint8
	iovecCount     uint16
	dxferLen       uint32
	dxferp         uintptr
	cmdp           uintptr
	sbp            uintptr
	timeout        uint32
	flags          uint32
	packID         int32
	usrPtr         uintptr
	status         uint8
	maskedStatus   uint8
	msgStatus      uint8
	sbLenWr        uint8
	hostStatus     uint16
	driverStatus   uint16
	resid          int32
	duration       uint32
	info           uint32
}

const (
	sgIO           = 0x2285
	sgDxferFromDev = -3
)

// identifyATA sends IDENTIFY DEVICE (ECh) through ATA PASS-THROUGH (16) — the same CDB
// hdparm -I and sg_sat_identify send: PIO data-in, length in the sector count, one block.
func identifyATA(dev string, keepRaw bool) (*agentproto.ATACaps, string, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	buf := make([]byte, 512)
	sense := make([]byte, 32)
	cdb := []byte{0x85, 4 << 1, 0x0e, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xEC, 0}
	h := sgIOHdr{interfaceID: 'S', dxferDirection: sgDxferFromDev, cmdLen: uint8(len(cdb)), mxSbLen: uint8(len(sense)),
		dxferLen: 512, dxferp: uintptr(unsafe.Pointer(&buf[0])), cmdp: uintptr(unsafe.Pointer(&cdb[0])),
		sbp: uintptr(unsafe.Pointer(&sense[0])), timeout: 10000}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), sgIO, uintptr(unsafe.Pointer(&h)))
	runtime.KeepAlive(buf)
	runtime.KeepAlive(cdb)
	runtime.KeepAlive(sense)
	if errno != 0 {
		return nil, "", fmt.Errorf("SG_IO ATA IDENTIFY: %w", errno)
	}
	// CHECK CONDITION with ATA status return (sense key 0, "ATA pass through information
	// available") is normal when CK_COND is set; anything else with no data is a refusal.
	if h.status != 0 && h.status != 2 || h.hostStatus != 0 || h.resid == 512 {
		return nil, "", fmt.Errorf("SG_IO ATA IDENTIFY refused: status %#x host %#x driver %#x", h.status, h.hostStatus, h.driverStatus)
	}
	caps, serial, err := ParseATAIdentify(buf)
	if err == nil && keepRaw {
		caps.Raw = buf
	}
	return caps, serial, err
}
