package wipe

import (
	"context"
	"errors"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ioctls pass Go structs' memory to the kernel: their layout must be the kernel's.
func TestIoctlStructLayouts(t *testing.T) {
	var n NVMeAdminCmd
	if s := unsafe.Sizeof(n); s != 72 {
		t.Fatalf("nvme_passthru_cmd is 72 bytes, Go struct %d", s)
	}
	for name, got := range map[string][2]uintptr{
		"nsid": {unsafe.Offsetof(n.NSID), 4}, "metadata": {unsafe.Offsetof(n.Metadata), 16}, "addr": {unsafe.Offsetof(n.Addr), 24},
		"data_len": {unsafe.Offsetof(n.DataLen), 36}, "cdw10": {unsafe.Offsetof(n.CDW10), 40}, "timeout_ms": {unsafe.Offsetof(n.TimeoutMs), 64},
		"result": {unsafe.Offsetof(n.Result), 68},
	} {
		if got[0] != got[1] {
			t.Errorf("nvme_passthru_cmd.%s at %d, kernel has it at %d", name, got[0], got[1])
		}
	}
	var h sgIOHdr
	if s := unsafe.Sizeof(h); s != 88 {
		t.Fatalf("sg_io_hdr is 88 bytes on 64-bit Linux, Go struct %d", s)
	}
	for name, got := range map[string][2]uintptr{
		"dxfer_len": {unsafe.Offsetof(h.DxferLen), 12}, "dxferp": {unsafe.Offsetof(h.Dxferp), 16}, "cmdp": {unsafe.Offsetof(h.Cmdp), 24},
		"sbp": {unsafe.Offsetof(h.Sbp), 32}, "timeout": {unsafe.Offsetof(h.Timeout), 40}, "usr_ptr": {unsafe.Offsetof(h.UsrPtr), 56},
		"status": {unsafe.Offsetof(h.Status), 64}, "host_status": {unsafe.Offsetof(h.HostStatus), 68}, "resid": {unsafe.Offsetof(h.Resid), 72},
		"info": {unsafe.Offsetof(h.Info), 80},
	} {
		if got[0] != got[1] {
			t.Errorf("sg_io_hdr.%s at %d, kernel has it at %d", name, got[0], got[1])
		}
	}
}

// The real ioctl path on a device that is neither NVMe nor SCSI (a loop device): the kernel
// refuses, and Slate reads that as "unsupported" rather than crashing or succeeding.
func TestRealIoctlsOnLoopDeviceAreUnsupported(t *testing.T) {
	dev, _ := newLoop(t, 1<<20)
	d, err := OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.NVMeAdmin(context.Background(), NVMeIdentifyController(), make([]byte, 4096))
	if err == nil || !isUnsupported(err) || !(errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL)) {
		t.Fatalf("NVMe identify on a loop device: %v", err)
	}
	_, err = runATA(context.Background(), d, ATAIdentify(), DirIn, make([]byte, 512), 5*time.Second)
	if err == nil || !isUnsupported(err) {
		t.Fatalf("SG_IO on a loop device: %v", err)
	}
}
