package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"slate/internal/binpath"
)

// labCommand is `slate lab up|status|down`. The QEMU lab is a binary of its own, slate-lab, so
// the production appliance does not link it; `slate lab` execs the slate-lab built beside it.
func labCommand() *command {
	return &command{name: "lab", summary: "the QEMU lab: VMs with virtual Redfish BMCs and Slate in a network namespace (runs slate-lab)",
		usage: "up|status|down [flags]", run: runLab}
}

func runLab(ctx context.Context, env *cliEnv, args []string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("slate lab: find this binary to find slate-lab beside it: %w", err)
	}
	bin, err := binpath.Sibling(self, "slate-lab", binpath.Executable, exec.LookPath)
	if err != nil {
		return fmt.Errorf("slate lab needs the lab binary: %w", err)
	}
	// Exec rather than a child process: Ctrl-C and SIGTERM reach the lab itself, which tears
	// down what it built, and its exit status is the command's.
	if err := syscall.Exec(bin, append([]string{bin}, args...), env.environ()); err != nil {
		return fmt.Errorf("slate lab: exec %s: %w", bin, err)
	}
	return nil
}
