package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"slate/inventory"
	"slate/redfish"
)

// systemLister is the part of a BMC session that lists every computer system behind it
// (*redfish.Client has it). A BMC without it is taken to have one system.
type systemLister interface {
	Systems(ctx context.Context, withMACs bool) ([]redfish.SystemInfo, error)
}

// listSystems lists the systems behind c (nil when c cannot list them), with their host MACs
// when withMACs (to match one by a MAC).
func listSystems(ctx context.Context, c BMC, withMACs bool) ([]redfish.SystemInfo, error) {
	sl, ok := c.(systemLister)
	if !ok {
		return nil, nil
	}
	systems, err := sl.Systems(ctx, withMACs)
	if err != nil {
		return nil, &bmcError{fmt.Errorf("enroll by BMC: list its computer systems: %w", err)}
	}
	return systems, nil
}

func fingerprintOf(c BMC) string {
	if f, ok := c.(interface{ Fingerprint() string }); ok {
		return f.Fingerprint()
	}
	return ""
}

// SystemChoiceError refuses an enrollment by BMC that does not single out one computer system
// behind a service that has several. It lists the candidates so the technician can choose;
// nothing was stored.
type SystemChoiceError struct {
	BMC     string               `json:"bmc"`
	Reason  string               `json:"reason"`
	Systems []redfish.SystemInfo `json:"systems"`
}

func (e *SystemChoiceError) Error() string {
	list := make([]string, len(e.Systems))
	for i, s := range e.Systems {
		list[i] = s.String()
	}
	return fmt.Sprintf("BMC %s: %s: %s; give one with system_id (slate machine enroll --system ID), name it by its MAC, serial or system_uuid, or enroll every system with all_systems (--all-systems)",
		e.BMC, e.Reason, strings.Join(list, "; "))
}

// Unwrap makes it a bad request: the request must say more, the BMC did not fail.
func (e *SystemChoiceError) Unwrap() error { return inventory.ErrInvalid }

// chooseSystem picks the system r names (SystemID) or matches (MACs, Serial, SystemUUID).
func chooseSystem(r *EnrollRequest, systems []redfish.SystemInfo) (redfish.SystemInfo, error) {
	refuse := func(reason string, list []redfish.SystemInfo) error {
		return &SystemChoiceError{BMC: r.BMCAddress, Reason: reason, Systems: list}
	}
	if r.SystemID != "" {
		want := strings.TrimRight(r.SystemID, "/")
		for _, s := range systems {
			if s.ID == want || strings.TrimRight(s.URI, "/") == want {
				return s, nil
			}
		}
		if len(systems) == 0 {
			// a BMC session that cannot list its systems: the dial with the id checks it
			return redfish.SystemInfo{ID: path.Base(want)}, nil
		}
		return redfish.SystemInfo{}, refuse(fmt.Sprintf("it has no computer system %q; it has", r.SystemID), systems)
	}
	if r.Serial == "" && r.SystemUUID == "" && len(r.MACs) == 0 {
		return redfish.SystemInfo{}, refuse(fmt.Sprintf("it has %d computer systems and the request does not say which one to enroll", len(systems)), systems)
	}
	var hits []redfish.SystemInfo
	for _, s := range systems {
		if (r.Serial != "" && strings.EqualFold(s.Serial, r.Serial)) ||
			(r.SystemUUID != "" && strings.EqualFold(s.UUID, r.SystemUUID)) ||
			slices.ContainsFunc(r.MACs, func(m string) bool { return slices.Contains(s.MACs, m) }) {
			hits = append(hits, s)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return redfish.SystemInfo{}, refuse(fmt.Sprintf("none of its %d computer systems has the MAC, serial or system UUID given", len(systems)), systems)
	}
	return redfish.SystemInfo{}, refuse("several of its computer systems match the MAC, serial or system UUID given", hits)
}

// EnrollAll enrolls every computer system behind one BMC (a blade chassis, a multi-node
// server) as its own machine, in one transaction: all of them, or none. Each is named
// r.Name + "-" + its system id (the id alone without a Name) and keeps its system id for
// every later BMC call. With Adopt they are adopted as they run; with PowerOn each that is off
// is powered into a network boot, and the power-ons that failed come back as a
// *PowerOnsError (the machines are enrolled regardless).
func (l *Machines) EnrollAll(ctx context.Context, box *inventory.SecretBox, actor string, r EnrollRequest) ([]inventory.Machine, error) {
	r.AllSystems = true
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if l.dial == nil {
		return nil, errors.New("enroll all systems: no BMC support configured")
	}
	c, err := l.dialEnrollBMC(ctx, &r, "", "")
	if err != nil {
		return nil, err
	}
	systems, err := listSystems(ctx, c, false)
	fp := fingerprintOf(c)
	c.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	if len(systems) == 0 {
		return nil, &bmcError{fmt.Errorf("enroll by BMC %s: it lists no computer system to enroll: %w", r.BMCAddress, redfish.ErrUnsupported)}
	}
	type one struct {
		req EnrollRequest
		inv redfish.Inventory
	}
	var all []one
	for _, s := range systems {
		q := r
		q.AllSystems, q.MACs, q.Serial, q.Labels = false, nil, "", cloneLabels(r.Labels)
		q.SystemID = s.ID
		q.Name = s.ID
		if r.Name != "" {
			q.Name = r.Name + "-" + s.ID
		}
		if len(q.Name) > 63 {
			return nil, inventory.Errorf(inventory.ErrInvalid, "machine name %q for system %s is longer than 63 characters: give a shorter name prefix", q.Name, s.ID)
		}
		sc, err := l.dialEnrollBMC(ctx, &q, fp, s.ID)
		if err != nil {
			return nil, err
		}
		inv, err := l.foldInventory(ctx, sc, &q)
		sc.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("system %s: %w", s.ID, err)
		}
		all = append(all, one{q, inv})
	}
	state := Enrolled
	if r.Adopt {
		state = Adopted
	}
	var out []inventory.Machine
	err = l.store.Update(ctx, func(tx *inventory.Tx) error {
		out = out[:0]
		for _, o := range all {
			m, err := l.enrollTx(ctx, tx, box, actor, o.req, o.inv, state)
			if err != nil {
				return fmt.Errorf("system %s: %w (no system was enrolled)", o.req.SystemID, err)
			}
			out = append(out, m)
		}
		ids := make([]string, len(all))
		for i, o := range all {
			ids[i] = o.req.SystemID
		}
		_, err := tx.Audit(ctx, actor, "machine.enroll-all", r.BMCAddress, "ok", map[string]any{"systems": ids, "state": state})
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, m := range out {
		if l.notify != nil {
			l.notify.MachineChanged(m.ID)
		}
	}
	if !r.PowerOn {
		return out, nil
	}
	st, ok := l.store.(CredentialsReader)
	if !ok {
		return out, nil
	}
	var failed []error
	for _, m := range out {
		if perr := l.PowerOnForNetboot(ctx, box, st, actor, m.ID, redfish.BootPXE, r.Force); perr != nil {
			failed = append(failed, &PowerOnError{Machine: m, Err: perr})
		}
	}
	if len(failed) > 0 {
		return out, &PowerOnsError{Errs: failed}
	}
	return out, nil
}

// PowerOnsError is EnrollAll's answer when every machine was enrolled (committed) but some of
// the power-ons asked for failed: each is a *PowerOnError.
type PowerOnsError struct{ Errs []error }

func (e *PowerOnsError) Error() string   { return errors.Join(e.Errs...).Error() }
func (e *PowerOnsError) Unwrap() []error { return e.Errs }

func cloneLabels(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
