package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"slate/inventory"
	"slate/redfish"
)

// MediaBMC is what virtual media needs of a BMC (redfish.Client implements it). It is not
// part of BMC: most callers never touch media, and their fakes need not either.
type MediaBMC interface {
	InsertMedia(ctx context.Context, image string) error
	EjectMedia(ctx context.Context) error
	MediaStatus(ctx context.Context) (redfish.MediaState, error)
}

// DeployImage names the deploy environment's ISO in a media request.
const DeployImage = "deploy"

// DeployISOPath is where Slate serves the deploy ISO (pxe.DeployISO under /boot/deploy/).
const DeployISOPath = "/boot/deploy/deploy.iso"

// ErrNoPublicURL: Slate does not know the address a BMC would fetch its ISO from.
var ErrNoPublicURL = errors.New("public_url is not set")

// MediaRequest asks for an ISO in a machine's virtual CD. Image is "deploy" (the deploy
// environment's ISO) or the URL of an ISO this Slate serves (under <public_url>/boot/). Boot
// also sets a one-time boot from CD and powers the machine on; Force allows that for a
// machine that runs (it is restarted).
type MediaRequest struct {
	Image string `json:"image"`
	Boot  bool   `json:"boot,omitempty"`
	Force bool   `json:"force,omitempty"`
}

// MediaResult is what the virtual CD holds after a media request, and whether a boot from it
// was started.
type MediaResult struct {
	MachineID string `json:"machine_id"`
	redfish.MediaState
	Booted bool `json:"booted,omitempty"`
}

// SetMediaBase sets the URL BMCs reach Slate at (public_url): media images are served under
// it. "" makes every insert fail with what to set.
func (l *Machines) SetMediaBase(publicURL string) { l.mediaBase = strings.TrimRight(publicURL, "/") }

// SetDeployISOCheck sets what tells whether the deploy ISO is there to be served: an insert of
// "deploy" is refused with its error rather than sent to a BMC that would fail to fetch it.
func (l *Machines) SetDeployISOCheck(f func() error) { l.deployISO = f }

// MediaImageURL turns a media request's image into the URL the BMC fetches. Only ISOs this
// Slate serves are accepted: the BMC reaches into the plant network on Slate's say-so, so an
// operator account must not make it fetch (or, through a BMC bug, post to) arbitrary hosts.
func (l *Machines) MediaImageURL(image string) (string, error) {
	if l.mediaBase == "" {
		return "", inventory.Errorf(ErrNoPublicURL, "virtual media: %v, so no BMC could fetch an ISO from Slate: set public_url (how machines and BMCs reach this Slate, e.g. http://10.0.0.5:8080) and restart Slate", ErrNoPublicURL)
	}
	image = strings.TrimSpace(image)
	if image == "" || image == DeployImage {
		if l.deployISO != nil {
			if err := l.deployISO(); err != nil {
				return "", inventory.Errorf(inventory.ErrConflict, "virtual media: %v", err)
			}
		}
		return l.mediaBase + DeployISOPath, nil
	}
	u, err := url.Parse(image)
	if err != nil || !strings.HasPrefix(image, l.mediaBase+"/boot/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Path, "..") {
		return "", inventory.Errorf(inventory.ErrInvalid, "image %q: give %q (the deploy environment's ISO) or the URL of an ISO Slate serves, under %s/boot/ (e.g. %s/boot/artifacts/<name>.iso)",
			image, DeployImage, l.mediaBase, l.mediaBase)
	}
	return image, nil
}

// mediaClient dials the machine's BMC and checks it can do virtual media.
func (l *Machines) mediaClient(ctx context.Context, box *inventory.SecretBox, st CredentialsReader, machineID string) (MediaBMC, BMC, inventory.BMCCredentials, error) {
	if l.dial == nil {
		return nil, nil, inventory.BMCCredentials{}, errors.New("virtual media: no BMC support configured")
	}
	cred, err := st.BMCCredentials(ctx, box, machineID)
	if errors.Is(err, inventory.ErrNotFound) {
		return nil, nil, cred, inventory.Errorf(inventory.ErrConflict, "machine %s has no BMC: virtual media is driven through one (give the machine its BMC address and credentials first)", machineID)
	}
	if err != nil {
		return nil, nil, cred, err
	}
	c, err := l.dial(ctx, cred.Address, cred.Username, cred.Password, cred.VendorProfile, cred.TLSFingerprint, cred.SystemID)
	if err != nil {
		return nil, nil, cred, &bmcError{fmt.Errorf("machine %s: BMC %s: %w", machineID, cred.Address, err)}
	}
	mc, ok := c.(MediaBMC)
	if !ok {
		c.Close(context.WithoutCancel(ctx))
		return nil, nil, cred, fmt.Errorf("machine %s: this BMC driver has no virtual media", machineID)
	}
	return mc, c, cred, nil
}

// MediaStatus reads what the machine's virtual CD holds. The Media methods take a machine id
// (the caller resolves names).
func (l *Machines) MediaStatus(ctx context.Context, box *inventory.SecretBox, st CredentialsReader, id string) (MediaResult, error) {
	mc, c, _, err := l.mediaClient(ctx, box, st, id)
	if err != nil {
		return MediaResult{}, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	ms, err := mc.MediaStatus(ctx)
	if err != nil {
		return MediaResult{}, &bmcError{fmt.Errorf("machine %s: %w", id, err)}
	}
	return MediaResult{MachineID: id, MediaState: ms}, nil
}

// InsertMedia puts an ISO Slate serves into the machine's virtual CD, audited
// (bmc.media-insert). With r.Boot it then boots the machine from it once (see
// PowerOnForNetboot: the boot is expected, so the deploy environment gets its token). A
// machine that runs is left alone, nothing inserted, unless r.Force.
func (l *Machines) InsertMedia(ctx context.Context, box *inventory.SecretBox, st CredentialsReader, actor, id string, r MediaRequest) (MediaResult, error) {
	image, err := l.MediaImageURL(r.Image)
	if err != nil {
		return MediaResult{}, err
	}
	mc, c, cred, err := l.mediaClient(ctx, box, st, id)
	if err != nil {
		return MediaResult{}, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if r.Boot && !r.Force {
		// Checked before anything changes: a refused boot leaves the CD as it was too.
		ps, err := c.PowerState(ctx)
		if err != nil {
			return MediaResult{}, &bmcError{fmt.Errorf("machine %s: read the power state: %w", id, err)}
		}
		if ps != redfish.PowerOff {
			return MediaResult{}, fmt.Errorf("machine %s: its BMC reports power %q: not booted from virtual media, nothing inserted (%s; to restart it now, ask again with force): %w",
				id, ps, RunningReason, ErrMachineRunning)
		}
	}
	ierr := mc.InsertMedia(ctx, image)
	if err := l.auditBMC(ctx, actor, "bmc.media-insert", id, ierr, map[string]any{"image": image, "bmc": cred.Address, "boot": r.Boot}); err != nil {
		return MediaResult{}, err
	}
	if ierr != nil {
		return MediaResult{}, &bmcError{fmt.Errorf("machine %s: insert %s: %w", id, image, ierr)}
	}
	out := MediaResult{MachineID: id, MediaState: redfish.MediaState{Image: image, Inserted: true}}
	if ms, err := mc.MediaStatus(ctx); err == nil {
		out.MediaState = ms
	}
	if r.Boot {
		if err := l.PowerOnForNetboot(ctx, box, st, actor, id, redfish.BootCD, r.Force); err != nil {
			return out, fmt.Errorf("machine %s: %s is inserted, but the boot from it failed: %w", id, image, err)
		}
		out.Booted = true
	}
	if l.notify != nil {
		l.notify.MachineChanged(id)
	}
	return out, nil
}

// EjectMedia empties the machine's virtual CD, audited (bmc.media-eject).
func (l *Machines) EjectMedia(ctx context.Context, box *inventory.SecretBox, st CredentialsReader, actor, id string) (MediaResult, error) {
	mc, c, cred, err := l.mediaClient(ctx, box, st, id)
	if err != nil {
		return MediaResult{}, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	eerr := mc.EjectMedia(ctx)
	if err := l.auditBMC(ctx, actor, "bmc.media-eject", id, eerr, map[string]any{"bmc": cred.Address}); err != nil {
		return MediaResult{}, err
	}
	if eerr != nil {
		return MediaResult{}, &bmcError{fmt.Errorf("machine %s: eject: %w", id, eerr)}
	}
	out := MediaResult{MachineID: id}
	if ms, err := mc.MediaStatus(ctx); err == nil {
		out.MediaState = ms
	}
	if l.notify != nil {
		l.notify.MachineChanged(id)
	}
	return out, nil
}

// auditBMC records a BMC action and its outcome. A lost record fails the request: the BMC
// acted (or failed) and the caller must hear that the log does not say so.
func (l *Machines) auditBMC(ctx context.Context, actor, action, machineID string, opErr error, details map[string]any) error {
	outcome := "ok"
	if opErr != nil {
		outcome = "failed"
		details["error"] = opErr.Error()
	}
	err := l.store.Update(ctx, func(tx *inventory.Tx) error {
		_, err := tx.Audit(ctx, actor, action, machineID, outcome, details)
		return err
	})
	if err != nil {
		return errors.Join(opErr, fmt.Errorf("machine %s: %s through BMC was not audited: %w", machineID, action, err))
	}
	return nil
}

// mediaTarget is BootCD when the machine's virtual CD holds this Slate's deploy ISO, "" when
// not, or when it cannot tell (no virtual media on the BMC, a read that failed: the network
// boot stays, as before virtual media existed).
func (l *Machines) mediaTarget(ctx context.Context, c BMC, machineID string) redfish.BootTarget {
	mc, ok := c.(MediaBMC)
	if !ok || l.mediaBase == "" {
		return ""
	}
	ms, err := mc.MediaStatus(ctx)
	if err != nil || !ms.Inserted || ms.Image != l.mediaBase+DeployISOPath {
		return ""
	}
	return redfish.BootCD
}

// ejectDeployISO ejects the machine's virtual CD when it holds this Slate's deploy ISO, audited
// as Slate's (bmc.media-eject, failed ones too). The error is for the caller's log: the
// one-time disk boot is already set, so it is not fatal.
func (l *Machines) ejectDeployISO(ctx context.Context, c BMC, machineID string) error {
	if l.mediaTarget(ctx, c, machineID) == "" {
		return nil
	}
	err := c.(MediaBMC).EjectMedia(ctx)
	details := map[string]any{"image": l.mediaBase + DeployISOPath, "reason": "installed: the deploy ISO is not needed any more"}
	if aerr := l.auditBMC(ctx, "slate", "bmc.media-eject", machineID, err, details); aerr != nil {
		return aerr
	}
	return err
}
