package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// probeMarker is what iPXE prints once it runs: proof that the guest got from the firmware
// through a real-mode → protected-mode kernel entry, where a broken KVM hangs.
const probeMarker = "iPXE initialising devices"

// bootProbe boots ipxe.lkrn (a tiny Linux-boot-protocol image shipped by the ipxe package)
// with the given accelerator and reports whether it printed its banner within timeout.
// Checking that /dev/kvm exists is not enough: on hosts like this one it opens, but guests
// hang as soon as they leave the BIOS (LAB.md).
func bootProbe(ctx context.Context, qemu, lkrn, accel string, timeout time.Duration) (bool, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", accel, "-nographic", "-monitor", "none",
		"-serial", "stdio", "-nic", "none", "-m", "128", "-no-reboot", "-kernel", lkrn)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return false, "", fmt.Errorf("start the KVM probe: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if strings.Contains(out.String(), probeMarker) {
				cmd.Process.Kill()
				<-done
				return true, out.String(), nil
			}
		case <-done:
			return strings.Contains(out.String(), probeMarker), out.String(), nil
		}
	}
}

// lockedBuffer is a bytes.Buffer QEMU writes to while the prober reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
