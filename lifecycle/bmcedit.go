package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"slate/inventory"
	"slate/redfish"
)

// BMCChange is an operator's change of a machine's BMC. Empty fields keep the stored value
// (an empty password keeps the stored password). TLSFingerprint is the certificate the
// operator confirmed: it must be the one the BMC presents when Slate connects to store the
// change, so a certificate is pinned only after someone saw its fingerprint (see ProbeBMC).
type BMCChange struct {
	Address        string `json:"address,omitempty"`
	Username       string `json:"username,omitempty"`
	Password       string `json:"password,omitempty"`
	VendorProfile  string `json:"vendor_profile,omitempty"`
	TLSFingerprint string `json:"tls_fingerprint,omitempty"`
}

// BMCProbe is what a BMC presents now, beside what Slate has pinned for it.
type BMCProbe struct {
	MachineID string `json:"machine_id"`
	Address   string `json:"address"`
	// Pinned is the stored fingerprint ("" when none is pinned yet).
	Pinned string `json:"pinned_fingerprint"`
	// Presented is the fingerprint of the certificate the BMC presents now ("" over plain HTTP).
	Presented string `json:"presented_fingerprint"`
	// Changed: the BMC presents a certificate other than the pinned one; storing it needs the
	// operator's confirmation (tls_fingerprint equal to Presented).
	Changed bool `json:"changed"`
}

// ErrFingerprintNotConfirmed marks a BMC change refused because the certificate the BMC
// presents is not the one the operator confirmed (the API answers 409).
var ErrFingerprintNotConfirmed = errors.New("the BMC's certificate is not the one confirmed")

// fingerprinted is what a BMC session tells of the certificate it was held to
// (redfish.Client does; test doubles need not).
type fingerprinted interface{ Fingerprint() string }

// machineReader reads a machine outside a write transaction (inventory.Store does).
type machineReader interface {
	GetMachine(ctx context.Context, idOrName string) (inventory.Machine, error)
}

// currentBMC reads a machine and the BMC settings a change starts from (stored ones, or none).
func (l *Machines) currentBMC(ctx context.Context, box *inventory.SecretBox, idOrName string) (inventory.Machine, inventory.BMCCredentials, error) {
	var m inventory.Machine
	var err error
	if r, ok := l.store.(machineReader); ok {
		// a probe writes nothing: it must not wait for, or fail with, the write path
		m, err = r.GetMachine(ctx, idOrName)
	} else {
		err = l.store.Update(ctx, func(tx *inventory.Tx) error {
			var err error
			m, err = tx.GetMachine(ctx, idOrName)
			return err
		})
	}
	if err != nil {
		return m, inventory.BMCCredentials{}, err
	}
	if m.BMC == nil {
		return m, inventory.BMCCredentials{}, nil
	}
	st, ok := l.store.(CredentialsReader)
	if !ok {
		return m, inventory.BMCCredentials{}, errors.New("this store cannot read BMC credentials")
	}
	if box == nil {
		return m, inventory.BMCCredentials{}, errors.New("no secret key loaded to read the BMC password")
	}
	cred, err := st.BMCCredentials(ctx, box, m.ID)
	return m, cred, err
}

// merge applies a change over the stored settings.
func (ch BMCChange) merge(cur inventory.BMCCredentials) (inventory.BMCCredentials, error) {
	out := cur
	if v := strings.TrimSpace(ch.Address); v != "" {
		out.Address = v
	}
	if v := strings.TrimSpace(ch.Username); v != "" {
		out.Username = v
	}
	if ch.Password != "" {
		out.Password = ch.Password
	}
	// "auto" keeps the stored profile (detected at enrollment): a change is not a detection
	if v := strings.TrimSpace(ch.VendorProfile); v != "" && v != "auto" {
		out.VendorProfile = v
	}
	if out.VendorProfile == "" {
		out.VendorProfile = "generic"
	}
	if _, err := redfish.VendorByName(out.VendorProfile); err != nil {
		return out, inventory.Errorf(inventory.ErrInvalid, "vendor_profile: %v", err)
	}
	if out.Address == "" {
		return out, inventory.Errorf(inventory.ErrInvalid, "the machine has no BMC yet: give its address, username and password")
	}
	if out.Username == "" {
		return out, inventory.Errorf(inventory.ErrInvalid, "username is needed with a BMC address")
	}
	return out, nil
}

// ProbeBMC connects to a machine's BMC (with the change's settings over the stored ones),
// reads the certificate it presents now, and compares it with the pinned one. Nothing is
// stored: this is the first step of a re-pin, whose second step names the fingerprint.
func (l *Machines) ProbeBMC(ctx context.Context, box *inventory.SecretBox, idOrName string, ch BMCChange) (BMCProbe, error) {
	if l.dial == nil {
		return BMCProbe{}, errors.New("probe BMC: no BMC support configured")
	}
	m, cur, err := l.currentBMC(ctx, box, idOrName)
	if err != nil {
		return BMCProbe{}, err
	}
	next, err := ch.merge(cur)
	if err != nil {
		return BMCProbe{}, err
	}
	p := BMCProbe{MachineID: m.ID, Address: next.Address, Pinned: cur.TLSFingerprint}
	// Held to nothing, so whatever certificate is presented is read, not refused.
	c, err := l.dial(ctx, next.Address, next.Username, next.Password, next.VendorProfile, "", next.SystemID)
	if err != nil {
		return p, &bmcError{fmt.Errorf("machine %s: probe its BMC: %w", m.Name, err)}
	}
	defer c.Close(context.WithoutCancel(ctx))
	if f, ok := c.(fingerprinted); ok {
		p.Presented = f.Fingerprint()
	}
	p.Changed = p.Presented != p.Pinned
	return p, nil
}

// SetBMC changes a machine's BMC: address, user name, password (stored encrypted), vendor
// profile and pinned certificate. Slate connects with the new settings first, held to the
// fingerprint the change confirms (or, without one, to the stored pin): a change that does
// not reach the BMC, or whose certificate nobody confirmed, is refused and nothing is stored.
// Audited as machine.bmc with the old and new address and fingerprints, never a password.
func (l *Machines) SetBMC(ctx context.Context, box *inventory.SecretBox, actor, idOrName string, ch BMCChange) (inventory.Machine, error) {
	if l.dial == nil {
		return inventory.Machine{}, errors.New("change BMC: no BMC support configured")
	}
	if box == nil {
		return inventory.Machine{}, errors.New("change BMC: no secret key loaded to encrypt the BMC password")
	}
	m, cur, err := l.currentBMC(ctx, box, idOrName)
	if err != nil {
		return inventory.Machine{}, err
	}
	next, err := ch.merge(cur)
	if err != nil {
		return inventory.Machine{}, err
	}
	if next.Password == "" {
		return inventory.Machine{}, inventory.Errorf(inventory.ErrInvalid, "the machine has no BMC password stored: give one")
	}
	want := cur.TLSFingerprint
	if ch.TLSFingerprint != "" {
		want = redfish.NormalizeFingerprint(ch.TLSFingerprint)
	}
	c, err := l.dial(ctx, next.Address, next.Username, next.Password, next.VendorProfile, want, next.SystemID)
	if err != nil {
		if presented, _, ok := redfish.FingerprintMismatch(err); ok {
			return inventory.Machine{}, fmt.Errorf("machine %s: BMC not changed: the BMC at %s presents the certificate %s, not the confirmed %s: "+
				"check the fingerprint on the BMC itself, then confirm it (tls_fingerprint, or slate machine bmc %s --repin): %w",
				m.Name, next.Address, presented, want, m.Name, ErrFingerprintNotConfirmed)
		}
		return inventory.Machine{}, &bmcError{fmt.Errorf("machine %s: BMC not changed: %w", m.Name, err)}
	}
	presented := ""
	if f, ok := c.(fingerprinted); ok {
		presented = f.Fingerprint()
	}
	c.Close(context.WithoutCancel(ctx))
	if want == "" && presented != "" {
		// trust on first use is for enrollment, where nothing was pinned before; a change
		// pins only what the operator saw
		return inventory.Machine{}, fmt.Errorf("machine %s: BMC not changed: the BMC at %s presents the certificate %s, which nobody confirmed: "+
			"check it on the BMC itself, then send it as tls_fingerprint (slate machine bmc %s --repin): %w",
			m.Name, next.Address, presented, m.Name, ErrFingerprintNotConfirmed)
	}
	next.TLSFingerprint = presented
	out := m
	err = l.store.Update(ctx, func(tx *inventory.Tx) error {
		if err := tx.SetBMC(ctx, box, m.ID, next.BMCInfo, next.Password); err != nil {
			return err
		}
		details := map[string]any{
			"old_address": cur.Address, "address": next.Address,
			"old_username": cur.Username, "username": next.Username,
			"old_vendor_profile": cur.VendorProfile, "vendor_profile": next.VendorProfile,
			"old_fingerprint": cur.TLSFingerprint, "fingerprint": next.TLSFingerprint,
			"repinned":         cur.TLSFingerprint != next.TLSFingerprint,
			"password_changed": ch.Password != "" && ch.Password != cur.Password,
		}
		if _, err := tx.Audit(ctx, actor, "machine.bmc", m.ID, "ok", details); err != nil {
			return err
		}
		var err error
		out, err = tx.GetMachine(ctx, m.ID)
		return err
	})
	if err != nil {
		return inventory.Machine{}, err
	}
	if l.notify != nil {
		l.notify.MachineChanged(out.ID)
	}
	return out, nil
}

// bmcDialFailed words a failed connection to a machine's BMC: the BMC named once, and the
// one hint that applies. A changed certificate is not a reachability or credentials problem:
// it says how to re-pin (after checking the new fingerprint on the BMC).
func bmcDialFailed(m inventory.Machine, address string, err error) error {
	name := m.Name
	if name == "" {
		name = m.ID
	}
	if presented, pinned, ok := redfish.FingerprintMismatch(err); ok {
		return &bmcError{fmt.Errorf("machine %s: the BMC at %s presents a different certificate (fingerprint %s, pinned %s): "+
			"if it was replaced on purpose, check the new fingerprint on the BMC itself and re-pin it (slate machine bmc %s --repin, "+
			"or Edit BMC on the machine's page); otherwise something else answers at this address: %w",
			name, address, presented, pinned, name, redfish.ErrFingerprintChanged)}
	}
	var re *redfish.Error
	if errors.As(err, &re) {
		// it names the BMC, what failed and its own hint
		return &bmcError{fmt.Errorf("machine %s: %w", name, err)}
	}
	return &bmcError{fmt.Errorf("machine %s: BMC %s: %w (check that it is reachable)", name, address, err)}
}
