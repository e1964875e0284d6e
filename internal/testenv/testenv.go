// Package testenv holds what tests share: root and tool checks, and network namespaces the
// test creates (tests send traffic only there or on loopback).
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireRoot fails the test when not root: CI runs as root, so a root test must run there
// rather than skip silently.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces, loop devices, QEMU taps): run it as root, as CI does")
	}
}

// RequireCommand fails the test when a tool is missing, naming the Debian package.
func RequireCommand(t testing.TB, name, debPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make deps` (Debian package %s)", name, debPackage)
	}
	return p
}

var nsCounter atomic.Int64

// Netns is a network namespace created for one test and deleted after it.
type Netns struct{ Name string }

// NewNetns creates a fresh namespace with loopback up.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	RequireRoot(t)
	// Interface-name length (15) bounds namespace names used as prefixes by tests: keep the
	// counter whole so names never collide, and shorten the prefix instead.
	if len(prefix) > 3 {
		prefix = prefix[:3]
	}
	name := fmt.Sprintf("s%d%s%d", os.Getpid()%10000, prefix, nsCounter.Add(1))
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		// Kill anything still running inside, then drop the namespace.
		out, _ := exec.Command("ip", "netns", "pids", name).Output()
		self := fmt.Sprint(os.Getpid())
		for _, pid := range strings.Fields(string(out)) {
			if pid != self { // never the test itself, whichever thread went in
				exec.Command("kill", "-9", pid).Run()
			}
		}
		time.Sleep(50 * time.Millisecond)
		exec.Command("ip", "netns", "del", name).Run()
	})
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return &Netns{Name: name}
}

// Run runs a command and fails the test if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Exec runs a command inside the namespace and returns its combined output.
func (n *Netns) Exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Command builds (does not start) a command that runs inside the namespace.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Veth links namespace a (interface ifA, address addrA in CIDR form, may be empty) with
// namespace b (ifB, addrB).
func Veth(t testing.TB, a *Netns, ifA, addrA string, b *Netns, ifB, addrB string) {
	t.Helper()
	Run(t, "ip", "-n", a.Name, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b.Name)
	for _, x := range []struct {
		ns       *Netns
		ifc, adr string
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		if x.adr != "" {
			Run(t, "ip", "-n", x.ns.Name, "addr", "add", x.adr, "dev", x.ifc)
		}
		Run(t, "ip", "-n", x.ns.Name, "link", "set", x.ifc, "up")
	}
}

// Do runs fn on an OS thread switched into the namespace. Sockets fn opens stay in that
// namespace after it returns, which is how an in-process server listens inside one. The
// thread is switched back before it is released, so no other goroutine (nor the process's
// main thread) is left inside.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		f, err := os.Open("/var/run/netns/" + n.Name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Could not go back: keep the thread locked so it dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
