package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"slate/agent/agentproto"
	"slate/inventory"
)

// TestUpdateThenRollBack: a deployed machine given another release reboots out of its
// running system (the reboot is queued ahead of the install, so the node takes it), is
// installed in the deploy environment, boots the new release and is deployed again; going
// back to a release it ran before is a roll-back. A node whose disk names another digest
// than the release's is not deployed.
func TestUpdateThenRollBack(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	rels := map[string]inventory.Release{}
	for _, v := range []string{"1", "2"} {
		s.Update(ctx, func(tx *inventory.Tx) error {
			rel, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: v, Kind: KindDisk, ImageRef: "plant/hmi",
				ImageDigest: "sha256:" + strings.Repeat(v, 64), CreatedBy: "olga"})
			if err != nil {
				return err
			}
			rels[v] = rel
			return tx.SetReleaseState(ctx, rel.ID, ReleaseApproved, "omar")
		})
	}
	var m inventory.Machine
	s.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: "hmi-1", MACs: []string{"52:54:00:00:aa:02"}, State: Ready})
		return err
	})
	r := NewReconciler(s, l, nil, slog.New(slog.DiscardHandler), 0)
	r.Installer = &Installer{Releases: s, Images: fakeImages{}, PublicURL: "http://10.99.0.1:8080"}
	set := func(p inventory.MachinePatch) {
		t.Helper()
		if err := s.Update(ctx, func(tx *inventory.Tx) error { _, err := tx.UpdateMachine(ctx, m.ID, p); return err }); err != nil {
			t.Fatal(err)
		}
	}
	str := func(s string) *string { return &s }
	finish := func(kind string) {
		t.Helper()
		task, ok, err := s.ClaimNextTask(ctx, m.ID, 3)
		if err != nil || !ok || task.Kind != kind {
			t.Fatalf("claimed %q (%v %v), want %s", task.Kind, ok, err, kind)
		}
		if _, _, err := s.FinishTask(ctx, m.ID, task.ID, inventory.TaskOutcome{State: inventory.TaskSucceeded, Result: []byte(`{}`)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	state := func() string {
		t.Helper()
		if err := r.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetMachine(ctx, m.ID)
		return got.State
	}
	// deploy installs release v from state from, through the tasks in order.
	deploy := func(v, wantVia string, fromDeployed bool) {
		t.Helper()
		set(inventory.MachinePatch{DesiredRelease: str("hmi@" + v)})
		if st := state(); st != wantVia {
			t.Fatalf("release %s: state %s, want %s (%s)", v, st, wantVia, r.Why(m.ID))
		}
		if bp, _ := PlanBoot(ctx, s, "52:54:00:00:aa:02"); bp.Action != BootDeploy {
			t.Fatalf("release %s: boot %s before the install, want deploy", v, bp.Action)
		}
		if fromDeployed {
			if st := state(); st != wantVia || !strings.Contains(r.Why(m.ID), "reboot task") {
				t.Fatalf("explanation %q", r.Why(m.ID))
			}
			// The reboot Slate queued is a network boot Slate expects (no BMC here).
			if e, ok, err := s.BootExpected(ctx, m.ID); err != nil || !ok || !strings.Contains(e.Reason, "reboot task") {
				t.Fatalf("release %s: the queued reboot armed no expected boot: %+v %v %v", v, e, ok, err)
			}
		} else if _, ok, _ := s.BootExpected(ctx, m.ID); ok {
			t.Fatalf("release %s: a first install (the deploy environment already runs) expects a boot", v)
		}
		if fromDeployed {
			finish(string(agentproto.KindReboot)) // the running node takes its reboot first
		}
		finish(string(agentproto.KindInstallImage))
		if bp, _ := PlanBoot(ctx, s, "52:54:00:00:aa:02"); bp.Action != BootLocalDisk {
			t.Fatalf("release %s: boot %s after the install, want local-disk", v, bp.Action)
		}
		state()
		finish(string(agentproto.KindReboot))
		// A node whose disk record names another digest is not this release.
		set(inventory.MachinePatch{BootedRelease: str("hmi@" + v), BootedDigest: str("sha256:" + strings.Repeat("f", 64))})
		if st := state(); st != wantVia || !strings.Contains(r.Why(m.ID), "not the desired release") {
			t.Fatalf("release %s with a foreign digest: %s %q", v, st, r.Why(m.ID))
		}
		set(inventory.MachinePatch{BootedDigest: str(rels[v].ImageDigest)})
		if st := state(); st != Deployed {
			t.Fatalf("release %s: %s after the node's report (%s)", v, st, r.Why(m.ID))
		}
		if st := state(); st != Deployed || !strings.Contains(r.Why(m.ID), "as desired") {
			t.Fatalf("release %s: deployed machine moved on: %s %q", v, st, r.Why(m.ID))
		}
	}
	deploy("1", Provisioning, false)
	deploy("2", Updating, true)
	deploy("1", RollingBack, true)
	events, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Limit: 100})
	var moves []string
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Action == "machine.transition" {
			moves = append(moves, events[i].Details["to"].(string))
		}
	}
	want := "provisioning deployed updating deployed rolling-back deployed"
	if got := strings.Join(moves, " "); got != want {
		t.Fatalf("transitions %q, want %q", got, want)
	}
}

// TestDesiredReleaseRefusedWithoutInstalls: on a Slate without public_url no install can run
// (machines could not fetch the image), so setting a desired release is refused with that
// reason — before, it was stored and the CLI said the machine "should now run" it. With
// installs available the same request succeeds.
func TestDesiredReleaseRefusedWithoutInstalls(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	var m inventory.Machine
	s.Update(ctx, func(tx *inventory.Tx) error {
		rel, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "1", Kind: KindDisk, ImageRef: "plant/hmi",
			ImageDigest: "sha256:" + strings.Repeat("1", 64), CreatedBy: "olga"})
		if err != nil {
			return err
		}
		if err := tx.SetReleaseState(ctx, rel.ID, ReleaseApproved, "omar"); err != nil {
			return err
		}
		m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: "hmi-1", MACs: []string{"52:54:00:00:aa:09"}, State: Ready})
		return err
	})
	ref := "hmi@1"
	l.SetInstallsUnavailable("public_url is not set")
	_, err := l.Update(ctx, "olga", m.ID, inventory.MachinePatch{DesiredRelease: &ref})
	if !errors.Is(err, ErrCannotInstall) || !strings.Contains(err.Error(), "public_url") {
		t.Fatalf("desired release without installs: %v", err)
	}
	if got, _ := s.GetMachine(ctx, m.ID); got.DesiredRelease != "" {
		t.Fatalf("desired release stored although refused: %q", got.DesiredRelease)
	}
	l.SetInstallsUnavailable("")
	if got, err := l.Update(ctx, "olga", m.ID, inventory.MachinePatch{DesiredRelease: &ref}); err != nil || got.DesiredRelease == "" {
		t.Fatalf("desired release with installs: %+v %v", got, err)
	}
}
