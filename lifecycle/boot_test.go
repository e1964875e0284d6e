package lifecycle

import (
	"context"
	"errors"
	"testing"

	"slate/inventory"
)

func TestPlanBootForEveryState(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	want := map[string]string{Discovered: BootDeploy, Enrolled: BootDeploy, Inspecting: BootDeploy, Ready: BootDeploy,
		Configuring: BootDeploy, Provisioning: BootDeploy, Deployed: BootLocalDisk, Updating: BootDeploy, RollingBack: BootDeploy,
		Decommissioning: BootDeploy, Sanitized: BootPowerOff, Retired: BootPowerOff, Failed: BootDeploy, Adopted: BootLocalDisk}
	for i, st := range States() {
		mac := []string{"02:00:00:00:00:" + string("0123456789abcdef"[i/16]) + string("0123456789abcdef"[i%16])}
		s.Update(ctx, func(tx *inventory.Tx) error {
			_, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: "m-" + st, MACs: mac, State: st})
			return err
		})
		p, err := PlanBoot(ctx, s, mac[0])
		if err != nil {
			t.Fatal(err)
		}
		if p.Action != want[st] || p.State != st {
			t.Errorf("state %s: action %s, want %s", st, p.Action, want[st])
		}
		if (p.Action == BootPowerOff || p.Action == BootNone) && p.Message == "" {
			t.Errorf("state %s: %s without a message for the console", st, p.Action)
		}
	}
	if _, err := PlanBoot(ctx, s, "02:00:00:ff:ff:ff"); !errors.Is(err, ErrUnknownMAC) {
		t.Fatalf("unknown MAC: %v", err)
	}
	_ = l
}

func TestRecordDiscoveredIsIdempotentAndAudited(t *testing.T) {
	s, l, n := setup(t)
	ctx := context.Background()
	for range 3 {
		if _, _, err := l.RecordDiscovered(ctx, "52:54:00:AB:00:01", "x86_64-efi", "PXEClient:Arch:00007", "br0"); err != nil {
			t.Fatal(err)
		}
	}
	ms, total, _ := s.ListMachines(ctx, inventory.MachineFilter{State: Discovered})
	if total != 1 || ms[0].MACs[0] != "52:54:00:ab:00:01" || ms[0].Arch != "x86_64-efi" {
		t.Fatalf("discovered: %+v", ms)
	}
	ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Action: "machine.discover"})
	if len(ev) != 1 || len(n.ids) != 1 {
		t.Fatalf("want one discover event and one notification, got %d and %d", len(ev), len(n.ids))
	}
	if _, _, err := l.RecordDiscovered(ctx, "not-a-mac", "", "", "br0"); err == nil {
		t.Fatal("a bad MAC was recorded")
	}
}
