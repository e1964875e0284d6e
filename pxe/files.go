package pxe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"slate/assets"
)

// ipxeBinary is one iPXE build held in memory (the embedded copy is in the Slate binary already).
type ipxeBinary struct {
	name string
	data []byte
	etag string
}

// binarySet is the fixed set of iPXE builds Slate serves, by bare name.
type binarySet struct {
	files   map[string]*ipxeBinary
	missing []string
}

// loadBinaries reads the known iPXE builds from fsys (the embedded assets in production).
func loadBinaries(fsys fs.FS) (*binarySet, error) {
	s := &binarySet{files: map[string]*ipxeBinary{}}
	for _, n := range assets.IPXENames() {
		b, err := fs.ReadFile(fsys, n)
		if errors.Is(err, fs.ErrNotExist) {
			if slices.Contains(assets.RequiredIPXE(), n) {
				s.missing = append(s.missing, n)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read embedded iPXE binary %s: %w", n, err)
		}
		sum := sha256.Sum256(b)
		s.files[n] = &ipxeBinary{name: n, data: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return s, nil
}

// get returns the named build, or an error saying how to get it when this build lacks it.
func (s *binarySet) get(name string) (*ipxeBinary, bool, error) {
	if b, ok := s.files[name]; ok {
		return b, true, nil
	}
	if slices.Contains(assets.IPXENames(), name) {
		return nil, true, assets.ErrIPXEMissing(name)
	}
	return nil, false, nil
}

func (b *ipxeBinary) reader() *bytes.Reader { return bytes.NewReader(b.data) }
