// Command qemucheck is the init-side half of wipe's QEMU test (wipe/qemu_test.go): inside a VM
// booted from a tiny initramfs it probes every disk, plans with the default policy, executes,
// and prints each result and signed certificate on the serial console for the host to check.
// It is not shipped: the agent's `wipe` task does this for real.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"slate/wipe"
	"slate/wipe/cert"
)

func main() {
	if err := run(); err != nil {
		fmt.Println("QEMUCHECK-ERROR", err)
	}
	fmt.Println("QEMUCHECK-END")
}

func run() error {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	drives, err := wipe.Probe(ctx, log)
	if err != nil {
		return err
	}
	plan, err := wipe.MakePlan("qemu-vm", drives, wipe.DefaultPolicy(), time.Now())
	if err != nil {
		return err
	}
	pj, _ := json.Marshal(plan)
	fmt.Println("PLAN", base64.StdEncoding.EncodeToString(pj))
	auth := wipe.Authorization{TaskID: "qemu-task", MachineID: "qemu-vm", PlanDigest: plan.Digest(), ConfirmedBy: "qemu-test"}
	results, err := wipe.Execute(ctx, auth, plan, wipe.Options{Log: log, Tool: "Slate wipe qemucheck"})
	if err != nil {
		return err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	fmt.Println("PUBKEY", base64.StdEncoding.EncodeToString(pub))
	for _, r := range results {
		rj, _ := json.Marshal(r)
		fmt.Println("RESULT", base64.StdEncoding.EncodeToString(rj))
		c, err := cert.IssueCertificate("cert-"+r.Drive.Name, r, auth, cert.CertMeta{}, "Slate wipe qemucheck", time.Now())
		if err != nil {
			fmt.Println("NOCERT", r.Drive.Path, err)
			continue
		}
		signed, err := cert.Sign(c, priv)
		if err != nil {
			return err
		}
		fmt.Println("CERT", base64.StdEncoding.EncodeToString(signed))
	}
	return nil
}
