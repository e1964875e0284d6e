package pxe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"slate/assets"
	"slate/internal/testenv"
)

// logBuf captures a server's JSON log lines for assertions.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func newLog() (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// lines returns the log records whose message is msg.
func (l *logBuf) lines(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, ln := range strings.Split(l.buf.String(), "\n") {
		if ln == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(ln), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// find returns the first record with msg whose attributes include every key=value in want.
func (l *logBuf) find(msg string, want map[string]any) map[string]any {
	for _, m := range l.lines(msg) {
		ok := true
		for k, v := range want {
			if m[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return m
		}
	}
	return nil
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// ipxeFS returns the embedded iPXE binaries, failing the test with the fix when this build
// lacks them (`make test` copies them first).
func ipxeFS(t testing.TB) fs.FS {
	t.Helper()
	if m := assets.MissingIPXE(); len(m) > 0 {
		t.Fatalf("this build lacks the iPXE binaries %v: run `make assets` (Debian package ipxe) before `go test ./pxe/`", m)
	}
	return assets.IPXE()
}

func readAsset(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(ipxeFS(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// inNetns runs fn on an OS thread switched into ns and switches the thread back before
// releasing it. testenv.Netns.Do leaves its thread in the namespace for good; when Go happens
// to run that goroutine on the main thread, the process itself is then "in" the namespace, and
// the namespace's cleanup (kill every pid `ip netns pids` lists) kills the test binary.
func inNetns(ns *testenv.Netns, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns.Name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it exits with the goroutine rather than serve others
			// from the wrong namespace.
			errc <- fmt.Errorf("setns back from %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// waitFind is find for lines a server writes just after its client is done (a TFTP server logs
// once it has the last ACK, which the client sends on its way out).
func (l *logBuf) waitFind(msg string, want map[string]any) map[string]any {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := l.find(msg, want); m != nil || time.Now().After(deadline) {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
}
