package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"slate/inventory"
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
		if err != nil || cur.State != Ready {
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
