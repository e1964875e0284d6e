package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

func run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func netnsExists(name string) bool {
	_, err := os.Stat("/var/run/netns/" + name)
	return err == nil
}

// inNetns runs fn on an OS thread switched into the namespace. The thread is never unlocked:
// it ends with the goroutine rather than going back to Go's pool in the wrong namespace.
// Sockets fn opens stay in the namespace, which is how the BMCs listen and the forwarder dials
// there while the process itself stays in the host's namespace.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", ns, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// listenIn opens a TCP listener inside the namespace.
func listenIn(ns, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in namespace %s: %w", addr, ns, err)
	}
	return l, nil
}

// dialIn connects to addr from inside the namespace.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// setupNetwork creates the namespace, the bridge with the lab's addresses, and a tap per VM.
func setupNetwork(ctx context.Context, o Options, taps []string) error {
	ns := o.Namespace
	if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("create network namespace: %w", err)
	}
	steps := [][]string{
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "add", o.Bridge, "type", "bridge"},
		// No STP and no forwarding delay: a VM's DHCP DISCOVER must not be dropped while a
		// port learns.
		{"-n", ns, "link", "set", o.Bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"-n", ns, "addr", "add", o.Address.String(), "dev", o.Bridge},
		{"-n", ns, "addr", "add", o.Address6.String(), "dev", o.Bridge, "nodad"},
		{"-n", ns, "link", "set", o.Bridge, "up"},
	}
	for _, t := range taps {
		steps = append(steps,
			[]string{"-n", ns, "tuntap", "add", "dev", t, "mode", "tap"},
			[]string{"-n", ns, "link", "set", t, "master", o.Bridge},
			[]string{"-n", ns, "link", "set", t, "up"})
	}
	for _, s := range steps {
		if _, err := run(ctx, "ip", s...); err != nil {
			return fmt.Errorf("set up the lab network: %w", err)
		}
	}
	return nil
}
