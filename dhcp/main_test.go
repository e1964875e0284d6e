package dhcp

import (
	"os"
	"runtime"
	"testing"
)

// TestMain pins the main goroutine to the main OS thread. testenv.Netns.Do switches a locked
// thread into a namespace and lets it die with its goroutine; when that thread is the main
// thread, Go cannot end it and parks it instead, so the whole process then appears to live in
// the test namespace and that namespace's cleanup (kill every pid in it) kills the test binary.
func TestMain(m *testing.M) {
	runtime.LockOSThread()
	os.Exit(m.Run())
}
