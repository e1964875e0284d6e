package lifecycle

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"slate/agent/agentproto"
	"slate/inventory"
)

// TestInstallTargetShownBeforeItRuns: the install rule (machine labels) is evaluated on the
// machine's facts: the transition says which disk it chose; a rule no disk satisfies starts
// nothing and says why.
func TestInstallTargetShownBeforeItRuns(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	s.Update(ctx, func(tx *inventory.Tx) error {
		rel, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "1", Kind: KindDisk, ImageRef: "plant/hmi",
			ImageDigest: "sha256:" + strings.Repeat("cd", 32), CreatedBy: "olga"})
		if err != nil {
			return err
		}
		return tx.SetReleaseState(ctx, rel.ID, ReleaseApproved, "omar")
	})
	doc, _ := json.Marshal(agentproto.Facts{Disks: []agentproto.Disk{
		{Name: "sda", Serial: "HDD-1", SizeBytes: 4e12, Rotational: true},
		{Name: "nvme0n1", Serial: "NV-1", SizeBytes: 960e9},
		{Name: "sdb", Serial: "USB-1", SizeBytes: 32e9, Removable: true},
		{Name: "vda", Serial: "V-1", SizeBytes: 120e9},
	}})
	r := NewReconciler(s, l, nil, slog.New(slog.DiscardHandler), 0)
	r.Installer = &Installer{Releases: s, Images: fakeImages{}, PublicURL: "http://slate"}
	for i, c := range []struct {
		labels map[string]string
		want   string // in the provisioning transition's reason, or in the explanation
		starts bool
	}{
		{map[string]string{}, "onto vda (serial V-1", true},
		{map[string]string{"install-disk-min-gb": "500", "install-disk-ssd": "true"}, "onto nvme0n1 (serial NV-1", true},
		{map[string]string{"install-disk-min-gb": "1000"}, "onto sda (serial HDD-1", true},
		{map[string]string{"install-disk-serial": "NV-1"}, "onto nvme0n1", true},
		{map[string]string{"install-disk-min-gb": "1000", "install-disk-ssd": "true"}, "no disk on this machine matches the install rule (the smallest non-removable solid-state disk of at least 1000 GB)", false},
		{map[string]string{"install-disk-wwn": "eui.0"}, "the disk with WWN eui.0", false},
	} {
		m := newMachine(t, s, "target-"+string(rune('a'+i)), Ready)
		s.Update(ctx, func(tx *inventory.Tx) error {
			if _, _, err := tx.PutFacts(ctx, m.ID, doc, inventory.FactFields{}); err != nil {
				return err
			}
			d := "hmi@1"
			labels := c.labels
			_, err := tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{DesiredRelease: &d, Labels: &labels})
			return err
		})
		r.ReconcileOnce(ctx)
		got, _ := s.GetMachine(ctx, m.ID)
		if !c.starts {
			if got.State != Ready || !strings.Contains(r.Why(m.ID), c.want) {
				t.Errorf("labels %v: %s, %q", c.labels, got.State, r.Why(m.ID))
			}
			continue
		}
		ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Action: "machine.transition", Limit: 1})
		if got.State != Provisioning || len(ev) == 0 || !strings.Contains(ev[0].Details["reason"].(string), c.want) {
			t.Errorf("labels %v: %s, %+v", c.labels, got.State, ev)
		}
	}
}
