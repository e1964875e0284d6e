// Command slate is the appliance: `slate serve` runs it; the other subcommands are its CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

var version = "dev"

// command is one CLI verb. Groups ("machine") hold sub-commands ("list", "show", …).
type command struct {
	name    string
	summary string
	usage   string // arguments, for help
	run     func(ctx context.Context, env *cliEnv, args []string) error
	subs    []*command
}

// cliEnv is everything a command may touch from outside: only cmd/ reads flags and env.
type cliEnv struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
	environ        func() []string
}

func commands() []*command {
	return []*command{
		serveCommand(),
		loginCommand(),
		machineCommands(),
		auditCommands(),
		userCommands(),
		releaseCommands(),
		registryCommands(),
		bmcCommands(),
		certCommands(),
		leaseCommands(),
		labCommand(),
		{name: "version", summary: "print the version", run: func(ctx context.Context, env *cliEnv, args []string) error {
			fmt.Fprintln(env.stdout, "slate", version)
			return nil
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cliEnv{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv, environ: os.Environ}
	if err := dispatch(ctx, env, commands(), os.Args[1:], "slate"); err != nil {
		var w errWarning
		if errors.As(err, &w) {
			fmt.Fprintln(os.Stderr, "slate: warning:", w.msg)
			os.Exit(exitWarning)
		}
		fmt.Fprintln(os.Stderr, "slate:", err)
		os.Exit(1)
	}
}

// Exit statuses: 0 done, 1 failed (nothing or not all of it was done, and the message says
// which), 3 done but with a warning the operator must act on (a machine enrolled, but not
// powered on as asked). Scripts tell a partial success from a success by the status alone.
const exitWarning = 3

// errWarning marks a command that did what it mainly does (and printed that) but not all
// that was asked: the message says what is missing and what to do; the exit status is 3.
type errWarning struct{ msg string }

func (e errWarning) Error() string { return e.msg }

// errUsage marks an error that printed its own help.
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func dispatch(ctx context.Context, env *cliEnv, cmds []*command, args []string, path string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printHelp(env.stdout, path, cmds)
		if len(args) == 0 {
			return errUsage{"a command is needed"}
		}
		return nil
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		if len(c.subs) > 0 {
			return dispatch(ctx, env, c.subs, args[1:], path+" "+c.name)
		}
		return c.run(ctx, env, args[1:])
	}
	printHelp(env.stderr, path, cmds)
	return fmt.Errorf("unknown command %q (see `%s --help`)", args[0], path)
}

func printHelp(w io.Writer, path string, cmds []*command) {
	if path == "slate" {
		fmt.Fprintln(w, "Slate carries bare-metal machines from first power-on to decommissioning, the immutable way.")
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\nCommands:\n", path)
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		name := c.name
		if len(c.subs) > 0 {
			var s []string
			for _, sc := range c.subs {
				s = append(s, sc.name)
			}
			name += " " + strings.Join(s, "|")
		}
		fmt.Fprintf(w, "  %-40s %s\n", name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `%s <command> --help` for a command's flags.\n", path)
	if path == "slate" {
		fmt.Fprintln(w, "\nExit status: 0 done; 1 failed (the message says what was not done); 3 done, but with a warning to act on\n"+
			"(e.g. a machine enrolled but not powered on as asked: the warning says why and what to do).")
	}
}
