package pxe

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"slate/internal/testenv"
)

// startTFTP runs Slate's TFTP server on a loopback port and returns its port.
func startTFTP(t *testing.T, cfg Config) (int, *logBuf) {
	t.Helper()
	log, lb := newLog()
	srv, err := NewTFTP(cfg, log, WithIPXE(ipxeFS(t)))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ListenTFTP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("tftp Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("tftp server did not stop within 20 s")
		}
		srv.Close()
	})
	return conn.LocalAddr().(*net.UDPAddr).Port, lb
}

// tftpHPA fetches name with the tftp-hpa client (plain RFC 1350: 512-byte blocks, no options).
func tftpHPA(t *testing.T, port int, name, out string) (string, error) {
	t.Helper()
	cmd := exec.Command(testenv.RequireCommand(t, "tftp", "tftp-hpa"), "-m", "binary", "127.0.0.1", strconv.Itoa(port), "-c", "get", name, out)
	b, err := cmd.CombinedOutput()
	if err == nil && strings.Contains(string(b), "Error") {
		err = &exec.ExitError{}
	}
	return string(b), err
}

func TestTFTPServesIPXEBinariesToRealClients(t *testing.T) {
	dir := t.TempDir()
	extra := filepath.Join(dir, "extra")
	os.MkdirAll(filepath.Join(extra, "pxelinux.cfg"), 0o755)
	writeFile(t, filepath.Join(extra, "pxelinux.cfg", "default"), []byte("DEFAULT slate\n"))
	port, lb := startTFTP(t, Config{TFTPDir: extra})

	for _, name := range []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"} {
		out := filepath.Join(dir, name)
		if msg, err := tftpHPA(t, port, name, out); err != nil {
			t.Fatalf("tftp-hpa get %s: %v\n%s", name, err, msg)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, readAsset(t, name)) {
			t.Fatalf("tftp-hpa got %d bytes of %s, want the embedded %d bytes", len(got), name, len(readAsset(t, name)))
		}
	}
	// curl negotiates blksize and tsize (RFC 2348/2349), as UEFI firmware does.
	curl := testenv.RequireCommand(t, "curl", "curl")
	out := filepath.Join(dir, "curl-ipxe.efi")
	if b, err := exec.Command(curl, "-sS", "--tftp-blksize", "1468", "-o", out, "tftp://127.0.0.1:"+strconv.Itoa(port)+"/ipxe.efi").CombinedOutput(); err != nil {
		t.Fatalf("curl tftp get ipxe.efi: %v\n%s", err, b)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, readAsset(t, "ipxe.efi")) {
		t.Fatalf("curl got %d bytes of ipxe.efi, want %d", len(got), len(readAsset(t, "ipxe.efi")))
	}
	// A file of the configured folder, in a sub-folder.
	out = filepath.Join(dir, "default")
	if msg, err := tftpHPA(t, port, "pxelinux.cfg/default", out); err != nil {
		t.Fatalf("tftp-hpa get pxelinux.cfg/default: %v\n%s", err, msg)
	}
	if got, _ := os.ReadFile(out); string(got) != "DEFAULT slate\n" {
		t.Fatalf("got %q from the tftp_dir file", got)
	}

	// One log line per transfer: client, file, bytes, duration, result.
	for _, name := range []string{"undionly.kpxe", "ipxe.efi", "snponly.efi", "pxelinux.cfg/default"} {
		m := lb.waitFind("tftp transfer", map[string]any{"file": name, "result": "ok"})
		if m == nil {
			t.Fatalf("no ok transfer log line for %s:\n%s", name, lb)
		}
		if !strings.HasPrefix(m["client"].(string), "127.0.0.1:") || m["bytes"] == nil || m["duration"] == nil {
			t.Fatalf("transfer log line lacks client/bytes/duration: %v", m)
		}
	}
	m := lb.waitFind("tftp transfer", map[string]any{"file": "ipxe.efi", "result": "ok"})
	if int(m["bytes"].(float64)) != len(readAsset(t, "ipxe.efi")) {
		t.Fatalf("log says %v bytes for ipxe.efi, want %d", m["bytes"], len(readAsset(t, "ipxe.efi")))
	}
}

func TestTFTPRefusesAndLogs(t *testing.T) {
	dir := t.TempDir()
	extra := filepath.Join(dir, "extra")
	os.MkdirAll(extra, 0o755)
	writeFile(t, filepath.Join(dir, "secret"), []byte("secret"))
	if err := os.Symlink(filepath.Join(dir, "secret"), filepath.Join(extra, "escape")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(extra, "subdir"), 0o755)
	port, lb := startTFTP(t, Config{TFTPDir: extra})

	cases := map[string]string{
		"../secret":      "..",
		"/etc/passwd":    "absolute",
		"a\\..\\secret":  "backslash",
		"not-there.efi":  "not in tftp_dir",
		"escape":         "not in tftp_dir", // symlink out of the folder: os.Root refuses it
		"subdir":         "not a regular file",
		"ipxe-arm64.efi": "not embedded", // Debian 12's package has no arm64 build
		"x/../../secret": "..",
		"pxe\x01lf":      "printable",
	}
	for name, reason := range cases {
		msg, err := tftpHPA(t, port, name, filepath.Join(dir, "out"))
		if err == nil {
			t.Errorf("tftp-hpa got %q; want it refused (%s): %s", name, reason, msg)
			continue
		}
		found := false
		for _, m := range lb.lines("tftp transfer") {
			if m["result"] == "refused" && strings.Contains(m["reason"].(string), reason) && m["client"] != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("no refused log line saying %q for %q:\n%s", reason, name, lb)
		}
	}

	// Names over 255 bytes and NUL bytes need a raw request: clients do not send them.
	long := strings.Repeat("a", 300)
	if op, _ := rawRRQ(t, port, long, nil); op != 5 {
		t.Errorf("a 300-byte name got opcode %d; want ERROR (5)", op)
	}
	if lb.find("tftp transfer", map[string]any{"result": "refused", "reason": "file name refused: name is 300 bytes, the limit is 255"}) == nil {
		t.Errorf("no refused log line for the 300-byte name:\n%s", lb)
	}

	// Writes are refused with an ERROR and a log line.
	src := filepath.Join(dir, "up")
	writeFile(t, src, []byte("data"))
	b, _ := exec.Command("tftp", "-m", "binary", "127.0.0.1", strconv.Itoa(port), "-c", "put", src, "up").CombinedOutput()
	if !strings.Contains(string(b), "read-only") {
		t.Errorf("tftp put: want the read-only error, got %q", b)
	}
	if lb.find("tftp transfer", map[string]any{"op": "write", "result": "refused"}) == nil {
		t.Errorf("no refused log line for the write request:\n%s", lb)
	}
	if _, err := os.Stat(filepath.Join(extra, "up")); err == nil {
		t.Error("a write request created a file")
	}

	// A malformed packet is logged, and the server keeps serving.
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0, 9, 'x'})
	c.Write([]byte{0, 1, 'n', 'o', '-', 'n', 'u', 'l'}) // an RRQ without its terminators
	sender := c.LocalAddr().String()
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(lb.lines("tftp packet refused")) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Each line names the sender (they said client="" before: the library's loop drops it).
	if refused := lb.lines("tftp packet refused"); len(refused) != 2 || refused[0]["client"] != sender || refused[1]["client"] != sender {
		t.Errorf("want two refused-packet lines naming the sender %s:\n%s", sender, lb)
	}
	if msg, err := tftpHPA(t, port, "undionly.kpxe", filepath.Join(dir, "after")); err != nil {
		t.Fatalf("server stopped serving after bad requests: %v %s", err, msg)
	}
}

// TestTFTPOptions pins down what pin/tftp v3.1.0 negotiates: blksize and tsize are
// acknowledged; timeout and windowsize (RFC 2349 / RFC 7440) are silently dropped from the
// OACK, so the client keeps its own timeout and a window of one block.
func TestTFTPOptions(t *testing.T) {
	port, _ := startTFTP(t, Config{TFTPMaxBlockSize: 1468})
	op, opts := rawRRQ(t, port, "ipxe.efi", []string{"blksize", "8192", "tsize", "0", "timeout", "2", "windowsize", "16"})
	if op != 6 {
		t.Fatalf("got opcode %d, want OACK (6)", op)
	}
	if opts["blksize"] != "1468" {
		t.Errorf("blksize: server acknowledged %q, want it capped to tftp_max_block_size 1468 (%v)", opts["blksize"], opts)
	}
	if opts["tsize"] != strconv.Itoa(len(readAsset(t, "ipxe.efi"))) {
		t.Errorf("tsize: got %q, want %d", opts["tsize"], len(readAsset(t, "ipxe.efi")))
	}
	if _, ok := opts["windowsize"]; ok {
		t.Errorf("windowsize acknowledged (%v): pin/tftp learnt RFC 7440; update docs/netboot.md", opts)
	}
	if _, ok := opts["timeout"]; ok {
		t.Errorf("timeout acknowledged (%v): pin/tftp learnt the RFC 2349 timeout; update docs/netboot.md", opts)
	}
}

// rawRRQ sends one read request and returns the first reply's opcode and, for an OACK, its
// options. The transfer is then abandoned (the server times it out).
func rawRRQ(t *testing.T, port int, name string, opts []string) (uint16, map[string]string) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := []byte{0, 1}
	p = append(p, name...)
	p = append(p, 0)
	p = append(p, "octet"...)
	p = append(p, 0)
	for _, o := range opts {
		p = append(p, o...)
		p = append(p, 0)
	}
	if _, err := c.WriteToUDP(p, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no reply to RRQ %q: %v", name, err)
	}
	op := binary.BigEndian.Uint16(buf[:2])
	out := map[string]string{}
	if op == 6 {
		f := bytes.Split(buf[2:n], []byte{0})
		for i := 0; i+1 < len(f); i += 2 {
			out[string(f[i])] = string(f[i+1])
		}
		// Tell the server to stop rather than let it retry for the whole timeout.
		c.WriteToUDP([]byte{0, 5, 0, 8, 'b', 'y', 'e', 0}, from)
	}
	return op, out
}
