// Command benchserve runs Slate's TFTP server and /boot/ HTTP handler alone, for
// test/bench/tftp.sh and test/bench/http.sh: the same code `slate serve` mounts, without the
// database (machine scripts answer "unknown machine"; files, binaries and artifacts are real).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"slate/pxe"
)

type noPlanner struct{}

func (noPlanner) BootPlan(ctx context.Context, mac string) (pxe.Plan, error) {
	return pxe.Plan{}, fmt.Errorf("benchserve has no inventory: %w", pxe.ErrUnknownMachine)
}

type noTokens struct{}

func (noTokens) IssueBootToken(ctx context.Context, machineID, mac string, src netip.Addr, ttl time.Duration) (string, error) {
	return "", errors.New("benchserve issues no agent tokens")
}

func main() {
	tftpAddr := flag.String("tftp", "", "TFTP listen address (empty: no TFTP)")
	httpAddr := flag.String("http", "", "HTTP listen address (empty: no HTTP)")
	dataDir := flag.String("data", "", "data dir (deployenv/, artifacts/)")
	tftpDir := flag.String("tftp-dir", "", "extra TFTP folder")
	logFile := flag.String("log", "", "log file (default stderr)")
	flag.Parse()
	out := os.Stderr
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchserve:", err)
			os.Exit(1)
		}
		defer f.Close()
		out = f
	}
	log := slog.New(slog.NewTextHandler(out, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := pxe.Config{TFTPListen: *tftpAddr, TFTPDir: *tftpDir, DataDir: *dataDir}
	errc := make(chan error, 2)
	if *tftpAddr != "" {
		t, err := pxe.NewTFTP(cfg, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchserve:", err)
			os.Exit(1)
		}
		go func() { errc <- t.Run(ctx) }()
	}
	if *httpAddr != "" {
		h, err := pxe.NewHTTP(cfg, noPlanner{}, noTokens{}, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchserve:", err)
			os.Exit(1)
		}
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchserve:", err)
			os.Exit(1)
		}
		mux := http.NewServeMux()
		mux.Handle("/boot/", h)
		srv := &http.Server{Handler: mux}
		go func() { <-ctx.Done(); srv.Close() }()
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "benchserve:", err)
			os.Exit(1)
		}
	}
}
