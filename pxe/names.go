package pxe

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// maxNameLen is the longest file name Slate accepts from a network client. TFTP requests
// fit in one 512-byte datagram anyway; 255 matches a file name component on Linux.
const maxNameLen = 255

// ErrBadName marks a file name refused before any file system access.
var ErrBadName = errors.New("file name refused")

// cleanName checks a file name a boot client asked for (TFTP or HTTP) and returns it as a
// slash-separated path relative to the served root. It accepts only what a legitimate boot
// client sends: printable ASCII, relative, no "." or ".." elements, no empty elements, no
// backslashes (Windows-style separators and escape tricks), at most 255 bytes. It never
// touches the file system; opening through os.Root afterwards also stops symlink escapes.
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty name", ErrBadName)
	case len(name) > maxNameLen:
		return "", fmt.Errorf("%w: name is %d bytes, the limit is %d", ErrBadName, len(name), maxNameLen)
	case strings.IndexByte(name, 0) >= 0:
		return "", fmt.Errorf("%w: name contains a NUL byte", ErrBadName)
	case strings.IndexByte(name, '\\') >= 0:
		return "", fmt.Errorf("%w: name contains a backslash", ErrBadName)
	case name[0] == '/':
		return "", fmt.Errorf("%w: absolute path", ErrBadName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("%w: byte 0x%02x at offset %d is not printable ASCII", ErrBadName, c, i)
		}
	}
	for _, el := range strings.Split(name, "/") {
		switch el {
		case "..":
			return "", fmt.Errorf("%w: name contains a .. element", ErrBadName)
		case "", ".":
			return "", fmt.Errorf("%w: name has empty or . elements or a trailing slash", ErrBadName)
		}
	}
	if !fs.ValidPath(name) {
		return "", fmt.Errorf("%w: name has empty or . elements or a trailing slash", ErrBadName)
	}
	return name, nil
}

// quoteName makes a refused name safe to log: quoted, and cut so a hostile client cannot
// flood the log with one request.
func quoteName(name string) string {
	const keep = 80
	if len(name) > keep {
		return fmt.Sprintf("%q…(%d bytes)", name[:keep], len(name))
	}
	return fmt.Sprintf("%q", name)
}
