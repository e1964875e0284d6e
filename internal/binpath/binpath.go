// Package binpath finds a Slate binary installed beside another (bin/slate-lab next to
// bin/slate), so split binaries built together run together.
package binpath

import (
	"fmt"
	"os"
	"path/filepath"
)

// Sibling returns name beside self when it is an executable file there, else name on PATH.
// stat and lookPath are injected for tests (os.Stat-based Executable and exec.LookPath).
func Sibling(self, name string, executable func(string) error, lookPath func(string) (string, error)) (string, error) {
	beside := filepath.Join(filepath.Dir(self), name)
	if executable(beside) == nil {
		return beside, nil
	}
	if p, err := lookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no %s binary next to %s or on PATH: build it with `make build` (bin/%s), or `go build -o %s ./cmd/%s`",
		name, self, name, beside, name)
}

// Executable says whether path is a regular file someone may execute.
func Executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}
