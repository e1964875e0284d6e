// Command dhcpbench runs Slate's DHCP server alone, for test/bench/dhcp.sh: one authoritative
// interface, leases durably in a fresh SQLite store (synchronous=FULL, group commit), an
// in-memory machine directory with discovery on. Run it inside the benchmark's namespace.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"slate/appliance"
	"slate/dhcp"
	"slate/inventory"
)

func main() {
	iface := flag.String("iface", "", "interface to serve (required)")
	server := flag.String("server", "", "this interface's IPv4 address (required)")
	rng := flag.String("range", "", "pool, first-last (required)")
	mask := flag.String("netmask", "255.255.0.0", "pool netmask")
	db := flag.String("db", "", "SQLite lease store path (required; use a fresh file)")
	lease := flag.Duration("lease", time.Hour, "lease time")
	sync := flag.String("sync", "FULL", "SQLite synchronous pragma")
	workers := flag.Int("workers", 0, "handler goroutines (0: default)")
	verbose := flag.Bool("v", false, "log at info level")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *iface == "" || *server == "" || *rng == "" || *db == "" {
		fmt.Fprintln(os.Stderr, "dhcpbench: -iface, -server, -range and -db are required")
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dhcpbench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := inventory.Open(ctx, *db, inventory.Options{Synchronous: *sync})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhcpbench:", err)
		os.Exit(1)
	}
	defer store.Close()
	cfg := dhcp.Config{Interfaces: []dhcp.InterfaceConfig{{
		Name: *iface, Mode: dhcp.ModeAuthoritative, ServerAddress: *server, Discovery: true, RogueProbe: -1,
		Pool: &dhcp.Pool{Range: *rng, Netmask: *mask, LeaseTime: *lease},
	}}}
	reg := prometheus.NewRegistry()
	srv, err := dhcp.New(cfg, dhcp.Options{Store: appliance.DHCPLeases{Store: store}, Directory: dhcp.NewMemDirectory(), Logger: log, Workers: *workers, Registerer: reg})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhcpbench:", err)
		os.Exit(1)
	}
	go func() {
		<-srv.Ready()
		fmt.Println("ready")
	}()
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "dhcpbench:", err)
		os.Exit(1)
	}
	ls, err := store.DHCPLeases(context.Background(), *iface)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhcpbench:", err)
		os.Exit(1)
	}
	fmt.Printf("leases stored: %d\n", len(ls))
	// What the server counted, for reading a run: drops by reason and the group commits.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			switch {
			case m.Counter != nil:
				fmt.Printf("%s{%s} %g\n", mf.GetName(), strings.Join(labels, ","), m.GetCounter().GetValue())
			case m.Histogram != nil:
				h := m.GetHistogram()
				fmt.Printf("%s count=%d mean=%.6g\n", mf.GetName(), h.GetSampleCount(), h.GetSampleSum()/float64(max(1, h.GetSampleCount())))
			}
		}
	}
}
