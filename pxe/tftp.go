package pxe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"time"
	_ "unsafe" // go:linkname, see handlePacket

	"github.com/pin/tftp/v3"
	"golang.org/x/net/ipv4"

	"slate/assets"
)

// Option tunes a TFTP or HTTP server; tests inject the clock and the iPXE files.
type Option func(*options)

type options struct {
	ipxe fs.FS
	now  func() time.Time
}

// WithIPXE replaces the embedded iPXE binaries (tests, or a host that keeps them elsewhere).
func WithIPXE(fsys fs.FS) Option { return func(o *options) { o.ipxe = fsys } }

// WithClock injects the clock used for durations and token lifetimes.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func buildOptions(opts []Option) options {
	o := options{ipxe: assets.IPXE(), now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// TFTP is Slate's read-only TFTP server: the embedded iPXE binaries, then the files of the
// optional configured folder. Everything else, and every write, is refused and logged.
type TFTP struct {
	cfg   Config
	log   *slog.Logger
	bins  *binarySet
	extra *os.Root // nil when no folder is configured
	slots chan struct{}
	now   func() time.Time
}

// NewTFTP checks the configuration and loads the iPXE binaries. Missing binaries are not
// fatal (a dev build may lack them): they are logged here and refused clearly when asked for.
func NewTFTP(cfg Config, log *slog.Logger, opts ...Option) (*TFTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	bins, err := loadBinaries(o.ipxe)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "tftp")
	t := &TFTP{cfg: cfg, log: log, bins: bins, slots: make(chan struct{}, cfg.TFTPMaxTransfers), now: o.now}
	if len(bins.missing) > 0 {
		log.Warn("iPXE binaries missing from this build; they will be refused", "missing", bins.missing,
			"fix", "run `make assets` (Debian package ipxe) and rebuild")
	}
	if cfg.TFTPDir != "" {
		st, err := os.Stat(cfg.TFTPDir)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("pxe config tftp_dir %q: not a readable folder (%v): create it or leave tftp_dir empty", cfg.TFTPDir, err)
		}
		if t.extra, err = os.OpenRoot(cfg.TFTPDir); err != nil {
			return nil, fmt.Errorf("pxe config tftp_dir %q: %w", cfg.TFTPDir, err)
		}
	}
	return t, nil
}

// Run listens on the configured address and serves until ctx ends.
func (t *TFTP) Run(ctx context.Context) error {
	conn, err := ListenTFTP(t.cfg.TFTPListen)
	if err != nil {
		return err
	}
	return t.Serve(ctx, conn)
}

// ListenTFTP opens the TFTP server's UDP socket with packet info (destination address,
// interface) turned on at once. pin/tftp turns it on only when Serve starts: a request queued
// before that carries no packet info, and the library then caps its blksize at 512.
func ListenTFTP(addr string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("tftp listen address %q: %w (want host:port, e.g. 0.0.0.0:69)", addr, err)
	}
	conn, err := net.ListenUDP("udp4", a)
	if err != nil {
		return nil, fmt.Errorf("tftp: listen on %s: %w (port 69 needs root or CAP_NET_BIND_SERVICE)", addr, err)
	}
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tftp: enable packet info on %s: %w", addr, err)
	}
	return conn, nil
}

// Serve serves on an open socket until ctx ends, then waits for running transfers (each is
// bounded by the timeout and retries). It runs on the calling goroutine, and so does the
// opening of each transfer's socket: a caller locked into a network namespace keeps every
// socket there.
func (t *TFTP) Serve(ctx context.Context, conn *net.UDPConn) error {
	srv := tftp.NewServer(t.read, t.write)
	srv.SetTimeout(t.cfg.TFTPTimeout)
	srv.SetRetries(t.cfg.TFTPRetries)
	if t.cfg.TFTPMaxBlockSize > 0 {
		srv.SetBlockSize(t.cfg.TFTPMaxBlockSize)
	}
	t.log.Info("tftp serving", "addr", conn.LocalAddr().String(), "dir", t.cfg.TFTPDir)
	err := t.serveRequests(ctx, srv, conn)
	// No new transfers start now; wait for the running ones (each bounded by its timeout
	// and retries).
	srv.Shutdown()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// handlePacket is pin/tftp v3.1.0's request dispatch, which its Serve loop calls for each
// datagram. Slate runs that loop itself because the library's loop drops the sender's address
// when it refuses a packet (malformed packets were logged with client=""). The signature is
// that of v3.1.0 (pinned in go.mod); TestTFTPRefusesAndLogs and every transfer test run
// through it, so a library change that breaks it fails them.
//
//go:linkname handlePacket github.com/pin/tftp/v3.(*Server).handlePacket
func handlePacket(s *tftp.Server, localAddr net.IP, remoteAddr *net.UDPAddr, buffer []byte, n, maxBlockLen int, listener chan []byte) error

// serveRequests reads requests from conn until ctx ends, as the library's Serve does for an
// IPv4 socket with packet info (the local address answers come from, and the interface MTU
// that bounds blksize), and logs a refused request with its sender.
func (t *TFTP) serveRequests(ctx context.Context, srv *tftp.Server, conn *net.UDPConn) error {
	pc := ipv4.NewPacketConn(conn)
	if err := pc.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		return fmt.Errorf("tftp: enable packet info on %s: %w", conn.LocalAddr(), err)
	}
	go func() {
		<-ctx.Done()
		conn.Close() // ends ReadFrom; srv.Shutdown (Serve's caller) waits for the transfers
	}()
	for {
		buf := make([]byte, tftpDatagram)
		n, cm, src, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			t.log.Warn("tftp read failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		from, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		var local net.IP
		maxSz := 512
		if cm != nil {
			local = cm.Dst
			if ifi, err := net.InterfaceByIndex(cm.IfIndex); err == nil {
				maxSz = ifi.MTU - 28 // IPv4 and UDP headers
			}
		}
		if err := handlePacket(srv, local, from, buf, n, maxSz, nil); err != nil {
			t.log.Warn("tftp packet refused", "client", from.String(), "len", n, "err", err)
		}
	}
}

// tftpDatagram is the largest request read, as in the library (a 512-byte block's packet).
const tftpDatagram = 516

// Close releases the configured folder.
func (t *TFTP) Close() error {
	if t.extra != nil {
		return t.extra.Close()
	}
	return nil
}

// errReadOnly is what a writing client is told.
var errReadOnly = errors.New("read-only: this is Slate's TFTP server, it takes no writes")

func (t *TFTP) write(filename string, wt io.WriterTo) error {
	client := ""
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		a := it.RemoteAddr()
		client = a.String()
	}
	t.log.Warn("tftp transfer", "client", client, "file", quoteName(filename), "op", "write", "bytes", 0,
		"duration", time.Duration(0), "result", "refused", "reason", "write request (server is read-only)")
	return errReadOnly
}

// read serves one read request: sanitise, find, send, and log one line.
func (t *TFTP) read(filename string, rf io.ReaderFrom) error {
	start := t.now()
	ot, _ := rf.(tftp.OutgoingTransfer)
	client := ""
	if ot != nil {
		a := ot.RemoteAddr()
		client = a.String()
	}
	refuse := func(reason string, err error) error {
		t.log.Warn("tftp transfer", "client", client, "file", quoteName(filename), "op", "read", "bytes", 0,
			"duration", t.now().Sub(start), "result", "refused", "reason", reason)
		return err
	}
	name, err := cleanName(filename)
	if err != nil {
		return refuse(err.Error(), errors.New("access violation: file name refused"))
	}
	select {
	case t.slots <- struct{}{}:
		defer func() { <-t.slots }()
	default:
		return refuse(fmt.Sprintf("%d transfers already running (tftp_max_transfers)", cap(t.slots)), errors.New("server busy, try again"))
	}
	r, size, closeFn, err := t.open(name)
	if err != nil {
		return refuse(err.Error(), errors.New("file not found"))
	}
	defer closeFn()
	if ot != nil {
		ot.SetSize(size)
	}
	n, err := rf.ReadFrom(r)
	attrs := []any{"client", client, "file", name, "op", "read", "bytes", n, "size", size, "duration", t.now().Sub(start)}
	if err != nil {
		t.log.Warn("tftp transfer", append(attrs, "result", "failed", "err", err)...)
		return err
	}
	t.log.Info("tftp transfer", append(attrs, "result", "ok")...)
	return nil
}

// open finds name in the served set: the embedded iPXE builds first, then the folder.
func (t *TFTP) open(name string) (io.Reader, int64, func(), error) {
	b, known, err := t.bins.get(name)
	if err != nil {
		return nil, 0, nil, err
	}
	if known {
		return b.reader(), int64(len(b.data)), func() {}, nil
	}
	if t.extra == nil {
		return nil, 0, nil, fmt.Errorf("%q is not an iPXE binary and no tftp_dir is configured", name)
	}
	f, err := t.extra.Open(name)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("not in tftp_dir: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, nil, fmt.Errorf("%q in tftp_dir is not a regular file", name)
	}
	// One read syscall per 64 KiB instead of one per block.
	return bufio.NewReaderSize(f, 64<<10), st.Size(), func() { f.Close() }, nil
}
