package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/redfish"
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
// name@version, or its image digest) — and, when the installer's record names a digest, that
// it is this release's.
func releaseMatches(m inventory.Machine, r inventory.Release) bool {
	booted := m.BootedRelease
	if booted == "" || (m.BootedDigest != "" && m.BootedDigest != r.ImageDigest) {
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
	if _, _, err := releaseBaseline(rel); err != nil {
		r.explain(m.ID, fmt.Sprintf("release %s@%s has a malformed firmware baseline: %v: retire it and create one with a valid baseline", rel.Name, rel.Version, err))
		return nil
	}
	if r.needsConfigure(m, rel) {
		// Configure first: the release's firmware baseline and BIOS profile, applied and
		// verified over Redfish. It is the install's first step, so it waits for a slot too:
		// a configured machine left waiting would be configured again on every pass.
		if r.atLimit(ctx, m, r.MaxInstalls, "installs", agentproto.KindInstallImage, agentproto.KindInstallBootc) {
			return nil
		}
		if _, err := r.machines.Transition(ctx, m.ID, Configuring, "slate", configureWhat(rel)); err != nil {
			return err
		}
		r.startConfigure(m, rel)
		return nil
	}
	if len(rel.FirmwareBaseline) > 0 {
		return r.installSkippingFirmware(ctx, m, rel)
	}
	return r.startInstall(ctx, m, rel, Ready)
}

// installParams builds the install task of a release: a disk image streamed onto the disk,
// or bootc's install-to-disk from Slate's registry.
func (r *Reconciler) installParams(ctx context.Context, m inventory.Machine, rel inventory.Release) (agentproto.TaskKind, []byte, error) {
	p := r.Installer
	if rel.Kind == KindBootc {
		host, err := registryHostOf(p.PublicURL)
		if err != nil {
			return "", nil, err
		}
		b, err := bootcInstallParams(rel, m, host)
		return agentproto.KindInstallBootc, b, err
	}
	layer, comp, err := p.Images.DiskLayer(ctx, rel.ImageRef, rel.ImageDigest)
	if err != nil {
		return "", nil, fmt.Errorf("cannot read the release's image: %w", err)
	}
	b, err := json.Marshal(agentproto.InstallImageParams{
		BlobURL:     strings.TrimRight(p.PublicURL, "/") + "/v2/" + rel.ImageRef + "/blobs/" + layer,
		Digest:      layer,
		Compression: comp,
		Target:      installTarget(m),
		Release:     rel.Name + "@" + rel.Version,
		ImageDigest: rel.ImageDigest,
	})
	return agentproto.KindInstallImage, b, err
}

// startInstall queues the install task and moves the machine to provisioning (from ready or
// configuring), in one transaction. A deployed machine moves to updating, or rolling-back
// when the release is one it ran before; its running system is asked to reboot first (the
// reboot is queued ahead of the install, so the node takes it and the deploy environment
// then takes the install).
func (r *Reconciler) startInstall(ctx context.Context, m inventory.Machine, rel inventory.Release, from string) error {
	if r.atLimit(ctx, m, r.MaxInstalls, "installs", agentproto.KindInstallImage, agentproto.KindInstallBootc) {
		return nil
	}
	kind, params, err := r.installParams(ctx, m, rel)
	if err != nil {
		r.explain(m.ID, "cannot install "+rel.Name+"@"+rel.Version+": "+err.Error())
		return err
	}
	onto, err := r.previewTarget(ctx, m)
	if err != nil {
		// Nothing starts: the technician fixes the rule (labels) or the machine.
		r.explain(m.ID, fmt.Sprintf("cannot install %s@%s: %v: set the install-disk-* labels", rel.Name, rel.Version, err))
		return nil
	}
	to, why := Provisioning, fmt.Sprintf("installing release %s@%s%s", rel.Name, rel.Version, onto)
	if from == Deployed {
		to, why = Updating, fmt.Sprintf("updating from %s to %s@%s%s", m.BootedRelease, rel.Name, rel.Version, onto)
		if r.ranBefore(ctx, m, rel) {
			to, why = RollingBack, fmt.Sprintf("rolling back from %s to %s@%s%s", m.BootedRelease, rel.Name, rel.Version, onto)
		}
	}
	err = r.store.Update(ctx, func(tx *inventory.Tx) error {
		cur, err := tx.GetMachine(ctx, m.ID)
		if err != nil || cur.State != from {
			return err
		}
		if from == Deployed && !r.hasBMC(m) {
			if _, err := tx.CreateTask(ctx, "slate", m.ID, string(agentproto.KindReboot), json.RawMessage(`{}`)); err != nil {
				return err
			}
			// The node reboots into the network boot: that boot is Slate's, expect it.
			if _, err := r.machines.ExpectBootTx(ctx, tx, "slate", m.ID, "reboot task queued: the running system reboots into the deploy environment"); err != nil {
				return err
			}
		}
		if _, err := tx.CreateTask(ctx, "slate", m.ID, string(kind), params); err != nil {
			return err
		}
		if from == to {
			// an adopted machine an operator moved to provisioning is there already
			return nil
		}
		_, err = TransitionTx(ctx, tx, m.ID, to, "slate", why, "")
		return err
	})
	if err != nil {
		return err
	}
	r.explain(m.ID, why)
	r.notify(m.ID)
	if (from == Deployed || from == Provisioning) && r.hasBMC(m) {
		// The running system is power-cycled into the network boot by its BMC: the operator
		// asked for it by giving the deployed machine a release (or by moving an adopted one
		// to provisioning).
		return r.netboot(ctx, m, true)
	}
	return nil
}

// installTarget is the machine's install rule, from its labels: install-disk-serial or
// install-disk-wwn, else install-disk-min-gb and install-disk-ssd=true for the smallest
// matching non-removable disk.
func installTarget(m inventory.Machine) agentproto.DiskTarget {
	t := agentproto.DiskTarget{Serial: m.Labels["install-disk-serial"], WWN: m.Labels["install-disk-wwn"],
		SSD: m.Labels["install-disk-ssd"] == "true"}
	if gb, err := strconv.ParseFloat(m.Labels["install-disk-min-gb"], 64); err == nil && gb > 0 {
		t.MinBytes = int64(gb * 1e9)
	}
	return t
}

// previewTarget says, from the machine's newest facts, which disk the install rule chooses
// (" onto nvme0n1 (serial …, 256 MiB)"); an error when none matches. Without facts (never
// inspected) the agent decides alone.
func (r *Reconciler) previewTarget(ctx context.Context, m inventory.Machine) (string, error) {
	fr, ok := r.store.(interface {
		LatestFacts(ctx context.Context, machineID string) (inventory.Facts, error)
	})
	if !ok {
		return "", nil
	}
	f, err := fr.LatestFacts(ctx, m.ID)
	if err != nil {
		return "", nil
	}
	var doc agentproto.Facts
	if json.Unmarshal(f.Doc, &doc) != nil || len(doc.Disks) == 0 {
		return "", nil
	}
	d, err := agentproto.ChooseDisk(doc.Disks, installTarget(m))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(" onto %s (serial %s, %d MiB)", d.Name, d.Serial, d.SizeBytes>>20), nil
}

// hasBMC says whether Slate can drive the machine's power and boot through a BMC.
func (r *Reconciler) hasBMC(m inventory.Machine) bool { return m.BMC != nil && r.machines.dial != nil }

// ranBefore says whether the machine had this release installed before (then going to it
// is a roll-back): an earlier install task of it succeeded.
func (r *Reconciler) ranBefore(ctx context.Context, m inventory.Machine, rel inventory.Release) bool {
	ts, err := r.store.ListTasks(ctx, m.ID, 200)
	if err != nil {
		return false
	}
	for _, t := range ts {
		if !kindOf(t).Installs() || t.State != inventory.TaskSucceeded {
			continue
		}
		if installedRelease(t) == rel.Name+"@"+rel.Version {
			return true
		}
	}
	return false
}

// installedRelease is the release (name@version) an install task's params name, "" for
// another kind or unreadable params.
func installedRelease(t inventory.Task) string {
	switch kindOf(t) {
	case agentproto.KindInstallImage:
		var p agentproto.InstallImageParams
		if json.Unmarshal(t.Params, &p) == nil {
			return p.Release
		}
	case agentproto.KindInstallBootc:
		var p agentproto.InstallBootcParams
		if json.Unmarshal(t.Params, &p) == nil {
			return p.Release
		}
	}
	return ""
}

// stepDeployed starts an update (or roll-back) when the machine should run another release
// than the one its node reports.
func (r *Reconciler) stepDeployed(ctx context.Context, m inventory.Machine) error {
	if m.DesiredRelease == "" || r.Installer == nil {
		if m.BootedRelease == "" {
			// "running " and nothing: say what is missing instead.
			r.explain(m.ID, "deployed: its node has not reported which release it runs (is slate-agent running on it?)")
		} else {
			r.explain(m.ID, "running "+m.BootedRelease)
		}
		return nil
	}
	rel, err := r.Installer.Releases.GetRelease(ctx, m.DesiredRelease)
	if err != nil {
		r.explain(m.ID, "running "+m.BootedRelease+"; desired release "+m.DesiredRelease+" not found")
		return nil
	}
	if releaseMatches(m, rel) {
		r.explain(m.ID, "running "+rel.Name+"@"+rel.Version+", as desired")
		return nil
	}
	if rel.State != ReleaseApproved {
		r.explain(m.ID, fmt.Sprintf("running %s; desired release %s@%s is %s: only an approved release is installed", m.BootedRelease, rel.Name, rel.Version, rel.State))
		return nil
	}
	return r.startInstall(ctx, m, rel, Deployed)
}

func (r *Reconciler) stepProvisioning(ctx context.Context, m inventory.Machine) error {
	ts, err := r.store.ListTasks(ctx, m.ID, 50)
	if err != nil {
		return err
	}
	// ts is newest first: the install is the newest install task, and a reboot counts only
	// if it came after it (an update's first reboot, out of the old system, comes before).
	install, reboot := -1, -1
	for i := range ts {
		if kindOf(ts[i]).Installs() && install < 0 {
			install = i
		}
		if kindOf(ts[i]) == agentproto.KindReboot && reboot < 0 && install < 0 {
			reboot = i
		}
	}
	if install >= 0 && ts[install].State == inventory.TaskPending {
		if t, ok := openTask(ts, agentproto.KindReboot); ok {
			r.explain(m.ID, "waiting for the running system to take its reboot task ("+t.State+"): is its slate-agent node running?")
			return nil
		}
	}
	if r.following(ctx, ts, m, agentproto.KindInstallImage, "installing") || r.following(ctx, ts, m, agentproto.KindInstallBootc, "installing (bootc)") ||
		r.following(ctx, ts, m, agentproto.KindReboot, "rebooting into the installed system") {
		return nil
	}
	if r.Installer != nil && install >= 0 && ts[install].State == inventory.TaskSucceeded {
		if rel, err := r.Installer.Releases.GetRelease(ctx, m.DesiredRelease); err == nil && releaseMatches(m, rel) {
			_, err := r.machines.Transition(ctx, m.ID, Deployed, "slate", fmt.Sprintf("the node reports release %s@%s (digest %s)", rel.Name, rel.Version, rel.ImageDigest))
			return err
		}
	}
	switch {
	case install < 0 && m.State == Provisioning && r.fromAdopted(ctx, m):
		return r.installAdopted(ctx, m)
	case install < 0:
		r.explain(m.ID, m.State+": no install task (moved here by hand?): move it back to ready to install again")
	case ts[install].State == inventory.TaskSucceeded && reboot < 0:
		// The disk next (a one-time boot through the BMC), then the agent reboots itself.
		r.bootNext(ctx, m, redfish.BootDisk)
		if err := r.store.Update(ctx, func(tx *inventory.Tx) error {
			_, err := tx.CreateTask(ctx, "slate", m.ID, string(agentproto.KindReboot), nil)
			return err
		}); err != nil {
			return err
		}
		r.explain(m.ID, "installed: rebooting into the installed system")
		r.notify(m.ID)
	case m.BootedDigest != "" && m.BootedRelease != "":
		r.explain(m.ID, fmt.Sprintf("installed: the node reports %s (digest %s), not the desired release yet", m.BootedRelease, m.BootedDigest))
	default:
		r.explain(m.ID, "installed: waiting for the node to report the release it booted")
	}
	return nil
}

// installedFromDisk says whether the newest install of a machine being installed succeeded
// (it must then boot from its disk, not the deploy environment again).
func installedFromDisk(ctx context.Context, r Reader, m inventory.Machine) bool {
	lt, ok := r.(interface {
		LatestTask(ctx context.Context, machineID, kind string) (inventory.Task, bool, error)
	})
	if !ok || (m.State != Provisioning && m.State != Updating && m.State != RollingBack) {
		return false
	}
	img, okImg, err1 := lt.LatestTask(ctx, m.ID, string(agentproto.KindInstallImage))
	bc, okBc, err2 := lt.LatestTask(ctx, m.ID, string(agentproto.KindInstallBootc))
	if err1 != nil || err2 != nil {
		return false
	}
	t := img
	if !okImg || (okBc && bc.CreatedAt.After(img.CreatedAt)) {
		t = bc
	}
	return (okImg || okBc) && t.State == inventory.TaskSucceeded
}

// startConfigure applies a release's firmware baseline and BIOS profile in the background
// (update tasks, resets and verification take minutes); one at a time per machine.
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
	r.explain(m.ID, configureWhat(rel))
	go func() {
		defer func() {
			r.mu.Lock()
			delete(r.configuring, m.ID)
			r.mu.Unlock()
			r.MachineChanged(m.ID)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute+firmwareTimeout(rel))
		defer cancel()
		// Firmware before the BIOS profile: a BIOS firmware update may restore BIOS defaults,
		// which would undo a profile applied before it.
		if len(rel.FirmwareBaseline) > 0 {
			if err := r.applyFirmware(ctx, m, rel); err != nil {
				r.log.Warn("firmware baseline not applied", "machine", m.ID, "err", err)
				r.machines.Fail(ctx, m.ID, "slate", "firmware baseline not applied: "+err.Error(), "")
				return
			}
		}
		if len(rel.BIOSProfile) > 0 {
			r.explain(m.ID, fmt.Sprintf("applying the BIOS profile of %s@%s through the BMC", rel.Name, rel.Version))
			res, err := r.applyBIOS(ctx, m, rel)
			if err != nil {
				r.log.Warn("BIOS profile not applied", "machine", m.ID, "err", err)
				r.machines.Fail(ctx, m.ID, "slate", "BIOS profile not applied: "+err.Error(), "")
				return
			}
			if aerr := r.store.Update(ctx, func(tx *inventory.Tx) error {
				_, e := tx.Audit(ctx, "slate", "bios.apply", m.ID, "ok", map[string]any{"profile": res.Profile, "state": res.State})
				return e
			}); aerr != nil {
				r.log.Error("audit of an applied BIOS profile not saved", "machine", m.ID, "err", aerr)
			}
		}
		if err := r.startInstall(ctx, m, rel, Configuring); err != nil {
			r.log.Warn("install after configure", "machine", m.ID, "err", err)
		}
	}()
}

func (r *Reconciler) applyBIOS(ctx context.Context, m inventory.Machine, rel inventory.Release) (redfish.BIOSResult, error) {
	c, err := r.dialMachineBMC(ctx, m)
	if err != nil {
		return redfish.BIOSResult{}, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	// Applying a profile that changes anything resets the machine through its BMC; it then
	// boots the deploy environment again (it is configuring) and needs a token: expect it.
	if err := r.store.Update(ctx, func(tx *inventory.Tx) error {
		_, err := r.machines.ExpectBootTx(ctx, tx, "slate", m.ID, "reset through its BMC to apply the BIOS profile")
		return err
	}); err != nil {
		return redfish.BIOSResult{}, fmt.Errorf("recording the expected boot before the BIOS reset: %w", err)
	}
	res, err := c.ApplyBIOS(ctx, redfish.BIOSProfile{Name: rel.Name + "@" + rel.Version, Attributes: rel.BIOSProfile})
	if len(res.Diff.Changes) == 0 || len(res.Diff.Unknown) > 0 {
		// Nothing to change, or refused before staging: no reset, so no boot to expect.
		if ferr := r.store.Update(ctx, func(tx *inventory.Tx) error { return tx.ForgetBootExpectation(ctx, m.ID) }); ferr != nil {
			r.log.Warn("withdraw the expected boot (no BIOS reset happened)", "machine", m.ID, "err", ferr)
		}
	}
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
