// Command wipebench measures Slate's overwrite and verification throughput on one block device
// (a loop device in test/bench/wipe.sh), through the same Probe → MakePlan → Execute path the
// agent uses. It destroys the device's data.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"slate/wipe"
)

func main() {
	dev := flag.String("dev", "", "block device to overwrite (its data is destroyed)")
	pattern := flag.String("pattern", "zero", "zero, fixed or aes-ctr")
	verify := flag.String("verify", "full", "full or sample")
	buf := flag.Int("buffer-mib", 8, "I/O buffer size in MiB")
	flag.Parse()
	if err := run(*dev, wipe.Pattern(*pattern), wipe.VerifyMode(*verify), *buf<<20); err != nil {
		fmt.Fprintln(os.Stderr, "wipebench:", err)
		os.Exit(1)
	}
}

func run(dev string, pattern wipe.Pattern, verify wipe.VerifyMode, buf int) error {
	if dev == "" {
		return fmt.Errorf("-dev is required")
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	drives, err := wipe.Probe(ctx, log, dev)
	if err != nil {
		return err
	}
	pol := wipe.DefaultPolicy()
	pol.Pattern, pol.Verify = pattern, verify
	pol.MinLevel[drives[0].Media] = wipe.LevelClear
	pol.PreferPurge = false
	plan, err := wipe.MakePlan("bench", drives, pol, time.Now())
	if err != nil {
		return err
	}
	auth := wipe.Authorization{TaskID: "bench", MachineID: "bench", PlanDigest: plan.Digest(), ConfirmedBy: "wipebench"}
	phaseStart := map[string]time.Time{}
	phaseBytes := map[string]uint64{}
	var order []string
	res, err := wipe.Execute(ctx, auth, plan, wipe.Options{Log: log, BufferSize: buf, Progress: func(p wipe.Progress) {
		if _, ok := phaseStart[p.Phase]; !ok {
			phaseStart[p.Phase] = time.Now()
			order = append(order, p.Phase)
		}
		phaseBytes[p.Phase] = p.Done
	}})
	if err != nil {
		return err
	}
	r := res[0]
	if r.Status != wipe.StatusSanitized {
		return fmt.Errorf("wipe of %s: %s %v", dev, r.Status, r.Errors)
	}
	// A phase ends where the next begins.
	for i, ph := range order {
		if ph != "overwrite" && ph != "verify" {
			continue
		}
		end := r.End
		if i+1 < len(order) {
			end = phaseStart[order[i+1]]
		}
		secs := end.Sub(phaseStart[ph]).Seconds()
		fmt.Printf("slate %s %s: %d bytes in %.2f s = %.0f MB/s\n", pattern, ph, phaseBytes[ph], secs, float64(phaseBytes[ph])/secs/1e6)
	}
	total := r.End.Sub(r.Start).Seconds()
	fmt.Printf("slate %s overwrite+verify total: %.2f s\n", pattern, total)
	return nil
}
