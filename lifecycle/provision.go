package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"slate/inventory"
	"slate/redfish"
)

// Task kinds of provisioning.
const (
	TaskInstallImage = "install-image"
	TaskReboot       = "reboot"
)

// DiskImages finds the disk image layer of a release's manifest in Slate's registry.
type DiskImages interface {
	DiskLayer(ctx context.Context, repo, manifestDigest string) (layerDigest, compression string, err error)
}

// ReleaseReader reads releases.
type ReleaseReader interface {
	GetRelease(ctx context.Context, ref string) (inventory.Release, error)
}

// Installer is what the reconciler needs to install releases; nil disables it.
type Installer struct {
	Releases ReleaseReader
	Images   DiskImages
	// PublicURL is how machines reach Slate (the blob URL in the install task).
	PublicURL string
}

// releaseMatches says whether what a node reports as booted is this release (its id,
// name@version, or its image digest).
func releaseMatches(booted string, r inventory.Release) bool {
	if booted == "" {
		return false
	}
	return booted == r.ID || booted == r.Name+"@"+r.Version || booted == r.ImageDigest
}

func (r *Reconciler) stepReady(ctx context.Context, m inventory.Machine) error {
	if m.DesiredRelease == "" {
		r.explain(m.ID, "ready: assign a release to provision it")
		return nil
	}
	p := r.Installer
	if p == nil {
		r.explain(m.ID, "ready: provisioning is not configured")
		return nil
	}
	rel, err := p.Releases.GetRelease(ctx, m.DesiredRelease)
	if err != nil {
		r.explain(m.ID, "desired release "+m.DesiredRelease+" not found")
		return nil
	}
	if rel.State != ReleaseApproved {
		r.explain(m.ID, fmt.Sprintf("desired release %s@%s is %s: only an approved release is installed", rel.Name, rel.Version, rel.State))
		return nil
	}
	if rel.Kind != KindDisk {
		r.explain(m.ID, fmt.Sprintf("release %s@%s is a bootc image: its install-to-disk is not available yet", rel.Name, rel.Version))
		return nil
	}
	if len(rel.BIOSProfile) > 0 && m.BMC != nil && r.machines.dial != nil {
		// Configure first: the release's BIOS profile, applied and verified over Redfish.
		if _, err := r.machines.Transition(ctx, m.ID, Configuring, "slate", fmt.Sprintf("applying the BIOS profile of %s@%s", rel.Name, rel.Version)); err != nil {
			return err
		}
		r.startConfigure(m, rel)
		return nil
	}
	return r.startInstall(ctx, m, rel, Ready)
}

// startInstall queues the install task and moves the machine (from ready or configuring) to
// provisioning, in one transaction.
func (r *Reconciler) startInstall(ctx context.Context, m inventory.Machine, rel inventory.Release, from string) error {
	p := r.Installer
	if r.atLimit(ctx, m, TaskInstallImage, r.MaxInstalls, "installs") {
		return nil
	}
	layer, comp, err := p.Images.DiskLayer(ctx, rel.ImageRef, rel.ImageDigest)
	if err != nil {
		r.explain(m.ID, "cannot read the release's image: "+err.Error())
		return err
	}
	params, _ := json.Marshal(map[string]any{
		"blob_url":    strings.TrimRight(p.PublicURL, "/") + "/v2/" + rel.ImageRef + "/blobs/" + layer,
		"digest":      layer,
		"compression": comp,
		"target":      map[string]any{"serial": m.Labels["install-disk-serial"]},
		"release":     rel.Name + "@" + rel.Version,
	})
	err = r.store.Update(ctx, func(tx *inventory.Tx) error {
		cur, err := tx.GetMachine(ctx, m.ID)
		if err != nil || cur.State != from {
			return err
		}
		if _, err := tx.CreateTask(ctx, "slate", m.ID, TaskInstallImage, params); err != nil {
			return err
		}
		_, err = TransitionTx(ctx, tx, m.ID, Provisioning, "slate", fmt.Sprintf("installing release %s@%s", rel.Name, rel.Version), "")
		return err
	})
	if err != nil {
		return err
	}
	r.explain(m.ID, "installing "+rel.Name+"@"+rel.Version)
	r.notify(m.ID)
	return nil
}

func (r *Reconciler) stepProvisioning(ctx context.Context, m inventory.Machine) error {
	ts, err := r.store.ListTasks(ctx, m.ID, 50)
	if err != nil {
		return err
	}
	if r.following(ts, m, TaskInstallImage, "installing") || r.following(ts, m, TaskReboot, "rebooting into the installed system") {
		return nil
	}
	if r.Installer != nil {
		if rel, err := r.Installer.Releases.GetRelease(ctx, m.DesiredRelease); err == nil && releaseMatches(m.BootedRelease, rel) {
			_, err := r.machines.Transition(ctx, m.ID, Deployed, "slate", fmt.Sprintf("the node reports release %s@%s", rel.Name, rel.Version))
			return err
		}
	}
	var install, reboot *inventory.Task
	for i := range ts {
		if ts[i].Kind == TaskInstallImage && install == nil {
			install = &ts[i]
		}
		if ts[i].Kind == TaskReboot && reboot == nil {
			reboot = &ts[i]
		}
	}
	switch {
	case install == nil:
		r.explain(m.ID, "provisioning: no install task (moved here by hand?): move it back to ready to install again")
	case install.State == inventory.TaskSucceeded && (reboot == nil || reboot.CreatedAt.Before(install.CreatedAt)):
		return r.queue(ctx, m, TaskReboot, "installed: rebooting into the installed system")
	default:
		r.explain(m.ID, "installed: waiting for the node to report the release it booted")
	}
	return nil
}

// installedFromDisk says whether the newest install of a provisioning machine succeeded (it
// must then boot from its disk, not the deploy environment again).
func installedFromDisk(ctx context.Context, r Reader, m inventory.Machine) bool {
	lt, ok := r.(interface {
		LatestTask(ctx context.Context, machineID, kind string) (inventory.Task, bool, error)
	})
	if !ok || m.State != Provisioning {
		return false
	}
	t, ok, err := lt.LatestTask(ctx, m.ID, TaskInstallImage)
	return err == nil && ok && t.State == inventory.TaskSucceeded
}

// startConfigure applies a release's BIOS profile in the background (a BMC reset and the
// verification take minutes); one at a time per machine.
func (r *Reconciler) startConfigure(m inventory.Machine, rel inventory.Release) {
	r.mu.Lock()
	if r.configuring == nil {
		r.configuring = map[string]bool{}
	}
	if r.configuring[m.ID] {
		r.mu.Unlock()
		return
	}
	r.configuring[m.ID] = true
	r.mu.Unlock()
	r.explain(m.ID, fmt.Sprintf("applying the BIOS profile of %s@%s through the BMC", rel.Name, rel.Version))
	go func() {
		defer func() {
			r.mu.Lock()
			delete(r.configuring, m.ID)
			r.mu.Unlock()
			r.MachineChanged(m.ID)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		res, err := r.applyBIOS(ctx, m, rel)
		if err != nil {
			r.log.Warn("BIOS profile not applied", "machine", m.ID, "err", err)
			r.machines.Fail(ctx, m.ID, "slate", "BIOS profile not applied: "+err.Error(), "")
			return
		}
		_ = r.store.Update(ctx, func(tx *inventory.Tx) error {
			_, e := tx.Audit(ctx, "slate", "bios.apply", m.ID, "ok", map[string]any{"profile": res.Profile, "state": res.State})
			return e
		})
		if err := r.startInstall(ctx, m, rel, Configuring); err != nil {
			r.log.Warn("install after configure", "machine", m.ID, "err", err)
		}
	}()
}

func (r *Reconciler) applyBIOS(ctx context.Context, m inventory.Machine, rel inventory.Release) (redfish.BIOSResult, error) {
	if r.box == nil {
		return redfish.BIOSResult{}, fmt.Errorf("no secret key to read the BMC password")
	}
	cred, err := r.store.BMCCredentials(ctx, r.box, m.ID)
	if err != nil {
		return redfish.BIOSResult{}, err
	}
	c, err := r.machines.dial(ctx, cred.Address, cred.Username, cred.Password, cred.VendorProfile, cred.TLSFingerprint)
	if err != nil {
		return redfish.BIOSResult{}, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	res, err := c.ApplyBIOS(ctx, redfish.BIOSProfile{Name: rel.Name + "@" + rel.Version, Attributes: rel.BIOSProfile})
	if err != nil {
		return res, err
	}
	if res.State != redfish.BIOSApplied {
		var diff []string
		for _, c := range res.Mismatched {
			diff = append(diff, fmt.Sprintf("%s is %v, want %v", c.Attribute, c.Current, c.Want))
		}
		return res, fmt.Errorf("BIOS differs in %d attributes after the reset: %s", len(res.Mismatched), strings.Join(diff, "; "))
	}
	return res, nil
}

func (r *Reconciler) stepConfiguring(ctx context.Context, m inventory.Machine) error {
	r.mu.Lock()
	busy := r.configuring[m.ID]
	r.mu.Unlock()
	if busy {
		return nil
	}
	// After a restart: apply again (idempotent: an applied profile changes nothing).
	if r.Installer == nil || m.DesiredRelease == "" {
		r.explain(m.ID, "configuring: no desired release")
		return nil
	}
	rel, err := r.Installer.Releases.GetRelease(ctx, m.DesiredRelease)
	if err != nil {
		return err
	}
	r.startConfigure(m, rel)
	return nil
}
