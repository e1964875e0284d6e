package disk

import (
	"bytes"
	"compress/gzip"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestCheckHead: raw, gzip and zstd images with slate-config pass with their media type; one
// without it, a GPT-less file and a cut gzip head are refused naming what is missing.
func TestCheckHead(t *testing.T) {
	read := func(p string) []byte { b, _ := os.ReadFile(p); return b }
	good := read(gptFile(t, 4, "start=2048, size=1M, type=linux, name=\"root\"\nsize=1M, type=linux, name=\"slate-config\"\n"))
	bare := read(gptFile(t, 4, "start=2048, size=1M, type=linux, name=\"root\"\n"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(good)
	zw.Close()
	enc, _ := zstd.NewWriter(nil)
	zst := enc.EncodeAll(good, nil)
	for _, tc := range []struct {
		name string
		head []byte
		want string
	}{
		{"raw", good[:HeadSize], MediaType},
		{"gzip", gz.Bytes(), MediaType + "+gzip"},
		{"zstd", zst, MediaType + "+zstd"},
	} {
		if got, err := CheckHead(tc.name, tc.head); err != nil || got != tc.want {
			t.Fatalf("%s: %q %v", tc.name, got, err)
		}
	}
	for _, tc := range []struct {
		name string
		head []byte
		says string
	}{
		{"bare", bare[:HeadSize], `no GPT partition named "slate-config"`},
		{"text", []byte("#!/bin/sh\necho not a disk\n"), "is not a GPT disk image"},
		{"gzip-junk", []byte{0x1f, 0x8b, 0, 0}, "gzip header"},
	} {
		if _, err := CheckHead(tc.name, tc.head); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}
