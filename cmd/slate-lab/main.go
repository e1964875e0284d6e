// Command slate-lab runs the QEMU lab (network namespace, bridge, VMs and a virtual Redfish BMC
// per VM). It is a binary of its own so the production appliance, `slate`, does not link the
// lab: `slate lab …` execs the slate-lab installed next to it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

var version = "dev"

// command is one lab verb.
type command struct {
	name    string
	summary string
	usage   string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv is everything a command may touch from outside: only cmd/ reads flags and env.
type cliEnv struct {
	stdout, stderr io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cliEnv{stdout: os.Stdout, stderr: os.Stderr}
	if err := dispatch(ctx, env, labCommands(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "slate lab:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, env *cliEnv, cmds []*command, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printHelp(env.stdout, cmds)
		if len(args) == 0 {
			return errors.New("a command is needed: up, status or down")
		}
		return nil
	}
	if args[0] == "version" {
		fmt.Fprintln(env.stdout, "slate-lab", version)
		return nil
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	printHelp(env.stderr, cmds)
	return fmt.Errorf("unknown command %q (see `slate lab --help`)", args[0])
}

func printHelp(w io.Writer, cmds []*command) {
	fmt.Fprintln(w, "The QEMU lab: VMs with virtual Redfish BMCs and Slate in a network namespace.")
	fmt.Fprintf(w, "\nUsage: slate lab <command> [flags]   (or slate-lab <command> [flags])\n\nCommands:\n")
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-8s %s\n           %s\n", c.name, c.summary, c.usage)
	}
	fmt.Fprintln(w, "\nRun `slate lab <command> --help` for a command's flags.")
}
