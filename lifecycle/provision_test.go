package lifecycle

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

type fakeImages struct{}

func (fakeImages) DiskLayer(ctx context.Context, repo, digest string) (string, string, error) {
	return "sha256:" + strings.Repeat("ab", 32), "zstd", nil
}

// TestProvisionDiskRelease: a ready machine with an approved disk release gets an install
// task; once installed it is rebooted and boots from its disk; the node's report of the
// release makes it deployed. A failed install fails the machine.
func TestProvisionDiskRelease(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	var rel inventory.Release
	s.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		rel, err = tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "1", Kind: KindDisk, ImageRef: "plant/hmi",
			ImageDigest: "sha256:" + strings.Repeat("cd", 32), CreatedBy: "olga"})
		if err != nil {
			return err
		}
		return tx.SetReleaseState(ctx, rel.ID, ReleaseApproved, "omar")
	})
	var m inventory.Machine
	s.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: "hmi-1", MACs: []string{"52:54:00:00:aa:01"}, State: Ready})
		if err != nil {
			return err
		}
		d := "hmi@1"
		_, err = tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{DesiredRelease: &d})
		return err
	})
	r := NewReconciler(s, l, nil, slog.New(slog.DiscardHandler), 0)
	r.Installer = &Installer{Releases: s, Images: fakeImages{}, PublicURL: "http://10.99.0.1:8080"}
	if err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetMachine(ctx, m.ID)
	task, ok, _ := s.LatestTask(ctx, m.ID, string(agentproto.KindInstallImage))
	if got.State != Provisioning || !ok {
		t.Fatalf("state %s, install task %v", got.State, ok)
	}
	var p map[string]any
	json.Unmarshal(task.Params, &p)
	if p["blob_url"] != "http://10.99.0.1:8080/v2/plant/hmi/blobs/sha256:"+strings.Repeat("ab", 32) || p["compression"] != "zstd" {
		t.Fatalf("install params: %v", p)
	}
	if bp, _ := PlanBoot(ctx, s, "52:54:00:00:aa:01"); bp.Action != BootDeploy {
		t.Fatalf("before the install, boot %s", bp.Action)
	}
	// The agent installs.
	s.ClaimNextTask(ctx, m.ID, 3)
	if _, _, err := s.FinishTask(ctx, m.ID, task.ID, inventory.TaskOutcome{State: inventory.TaskSucceeded, Result: []byte(`{}`)}, nil); err != nil {
		t.Fatal(err)
	}
	if bp, _ := PlanBoot(ctx, s, "52:54:00:00:aa:01"); bp.Action != BootLocalDisk {
		t.Fatalf("after the install, boot %s, want local-disk", bp.Action)
	}
	r.ReconcileOnce(ctx)
	reboot, ok, _ := s.LatestTask(ctx, m.ID, string(agentproto.KindReboot))
	if !ok || reboot.State != inventory.TaskPending {
		t.Fatalf("no reboot queued: %+v", reboot)
	}
	s.ClaimNextTask(ctx, m.ID, 3)
	s.FinishTask(ctx, m.ID, reboot.ID, inventory.TaskOutcome{State: inventory.TaskSucceeded}, nil)
	r.ReconcileOnce(ctx)
	if got, _ = s.GetMachine(ctx, m.ID); got.State != Provisioning || !strings.Contains(r.Why(m.ID), "report") {
		t.Fatalf("before the node reports: %s %q", got.State, r.Why(m.ID))
	}
	// The node reports what it booted (as the agent API's heartbeat records it).
	s.Update(ctx, func(tx *inventory.Tx) error {
		b := "hmi@1"
		_, err := tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{BootedRelease: &b})
		return err
	})
	r.ReconcileOnce(ctx)
	if got, _ = s.GetMachine(ctx, m.ID); got.State != Deployed {
		t.Fatalf("after the report: %s", got.State)
	}
	if ts, _ := s.ListTasks(ctx, m.ID, 10); len(ts) != 2 {
		t.Fatalf("tasks: %d, want install + reboot only", len(ts))
	}
}

func TestFailedInstallFailsTheMachine(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	var m inventory.Machine
	var task inventory.Task
	s.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		if m, err = tx.CreateMachine(ctx, inventory.NewMachine{Name: "x", State: Provisioning}); err != nil {
			return err
		}
		task, err = tx.CreateTask(ctx, "slate", m.ID, string(agentproto.KindInstallImage), nil)
		return err
	})
	s.ClaimNextTask(ctx, m.ID, 3)
	_, _, err := s.FinishTask(ctx, m.ID, task.ID, inventory.TaskOutcome{State: inventory.TaskFailed, Message: "image digest mismatch"},
		func(ctx context.Context, tx *inventory.Tx, t inventory.Task) error {
			cur, _ := tx.GetMachine(ctx, m.ID)
			return TaskHook{}.TaskFinished(ctx, tx, cur, t)
		})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetMachine(ctx, m.ID)
	if got.State != Failed || !strings.Contains(got.FailedReason, "digest mismatch") || got.FailedTask != task.ID {
		t.Fatalf("after a failed install: %+v", got)
	}
}

// TestInstallLimit: with MaxInstalls 1, a second ready machine waits while the first installs.
func TestInstallLimit(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	s.Update(ctx, func(tx *inventory.Tx) error {
		rel, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "1", Kind: KindDisk, ImageRef: "plant/hmi",
			ImageDigest: "sha256:" + strings.Repeat("cd", 32), CreatedBy: "olga"})
		if err != nil {
			return err
		}
		if err := tx.SetReleaseState(ctx, rel.ID, ReleaseApproved, "omar"); err != nil {
			return err
		}
		for _, n := range []string{"a", "b"} {
			m, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: n, State: Ready})
			if err != nil {
				return err
			}
			d := "hmi@1"
			if _, err := tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{DesiredRelease: &d}); err != nil {
				return err
			}
		}
		return nil
	})
	r := NewReconciler(s, l, nil, slog.New(slog.DiscardHandler), 0)
	r.Installer = &Installer{Releases: s, Images: fakeImages{}, PublicURL: "http://slate"}
	r.MaxInstalls = 1
	r.ReconcileOnce(ctx)
	r.ReconcileOnce(ctx)
	a, _ := s.GetMachine(ctx, "a")
	b, _ := s.GetMachine(ctx, "b")
	if a.State != Provisioning || b.State != Ready || !strings.Contains(r.Why(b.ID), "limit 1") {
		t.Fatalf("a %s, b %s (%q): want one install at a time", a.State, b.State, r.Why(b.ID))
	}
}

// TestConfigureBIOSThenInstall: a release with a BIOS profile is applied through the
// machine's BMC (DMTF mockup with real semantics), verified, then installed; a profile the BMC
// refuses fails the machine with the reason.
func TestConfigureBIOSThenInstall(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	l.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
		return redfish.Dial(ctx, address, user, password, profile, fingerprint, slog.New(slog.DiscardHandler))
	})
	for i, prof := range []map[string]any{{"ProcHyperthreading": "Disabled"}, {"NoSuchAttribute": "x"}} {
		bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t)})
		var rel inventory.Release
		s.Update(ctx, func(tx *inventory.Tx) error {
			var err error
			rel, err = tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: string(rune('1' + i)), Kind: KindDisk, ImageRef: "plant/hmi",
				ImageDigest: "sha256:" + strings.Repeat("cd", 32), BIOSProfile: prof, CreatedBy: "olga"})
			if err != nil {
				return err
			}
			return tx.SetReleaseState(ctx, rel.ID, ReleaseApproved, "omar")
		})
		if i == 1 { // the same mockup again: free its NIC MACs and serial from the first machine
			s.Update(ctx, func(tx *inventory.Tx) error {
				first, _ := tx.GetMachine(ctx, "cfg-1")
				none, blank := []string{}, ""
				_, err := tx.UpdateMachine(ctx, first.ID, inventory.MachinePatch{MACs: &none, Serial: &blank, SystemUUID: &blank})
				return err
			})
		}
		m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "cfg-" + rel.Version, MACs: []string{"52:54:00:00:cf:0" + rel.Version},
			BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
		if err != nil {
			t.Fatal(err)
		}
		ref := "hmi@" + rel.Version
		s.Update(ctx, func(tx *inventory.Tx) error {
			if err := tx.SetMachineState(ctx, m.ID, Ready, "", "", ""); err != nil {
				return err
			}
			_, err := tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{DesiredRelease: &ref})
			return err
		})
		r := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
		r.Installer = &Installer{Releases: s, Images: fakeImages{}, PublicURL: "http://slate"}
		r.ReconcileOnce(ctx)
		want := Provisioning
		if i == 1 {
			want = Failed
		}
		var got inventory.Machine
		for range 300 {
			got, _ = s.GetMachine(ctx, m.ID)
			if got.State == want {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got.State != want {
			t.Fatalf("profile %v: machine %s (%s), want %s", prof, got.State, got.FailedReason, want)
		}
		// The BIOS reset is a network boot Slate started (the machine boots the deploy
		// environment again); a refused profile resets nothing and expects nothing.
		if e, ok, _ := s.BootExpected(ctx, m.ID); (i == 0) != (ok && strings.Contains(e.Reason, "BIOS")) {
			t.Fatalf("profile %v: expected boot %v %+v", prof, ok, e)
		}
		if i == 0 {
			bios := bmc.Get("/redfish/v1/Systems/437XR1138R2/Bios")
			if attrs, _ := bios["Attributes"].(map[string]any); attrs["ProcHyperthreading"] != "Disabled" {
				t.Fatalf("BIOS after configure: %v", attrs["ProcHyperthreading"])
			}
			if _, ok, _ := s.LatestTask(ctx, m.ID, string(agentproto.KindInstallImage)); !ok {
				t.Fatal("no install task after configure")
			}
		} else if !strings.Contains(got.FailedReason, "NoSuchAttribute") || got.FailedFrom != Configuring {
			t.Fatalf("failed configure: %q from %s", got.FailedReason, got.FailedFrom)
		}
	}
}
