package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/wipe"
)

// AutoWipeActor is who confirms a wipe under a pre-approved policy (Reconciler.AutoConfirmWipe).
const AutoWipeActor = "slate (pre-approved wipe policy)"

// slatePlan turns the plan an agent proposed into Slate's own: only the agent's probe of each
// drive (identity and capabilities) is used; the policy, the methods, levels and verification
// come from Slate's configuration, and every drive is checked against what inspection saw.
// The agent's policy and choices are ignored, so a lying agent cannot pick a weaker technique.
func slatePlan(ctx context.Context, tx *inventory.Tx, m inventory.Machine, proposed json.RawMessage, policy wipe.Policy, now time.Time) (wipe.Plan, []string, error) {
	var in wipe.Plan
	if err := json.Unmarshal(proposed, &in); err != nil {
		return wipe.Plan{}, nil, inventory.Errorf(inventory.ErrInvalid, "wipe plan of machine %s is not a plan: %v", m.Name, err)
	}
	if in.MachineID != m.ID {
		return wipe.Plan{}, nil, inventory.Errorf(inventory.ErrInvalid, "wipe plan names machine %q, not %s", in.MachineID, m.ID)
	}
	var ignored []string
	if a, b := mustJSON(in.Policy), mustJSON(policy); a != b {
		ignored = append(ignored, "the agent's policy (Slate's configured policy is used)")
	}
	drives := make([]wipe.DriveInfo, 0, len(in.Drives))
	for _, d := range in.Drives {
		drives = append(drives, d.Drive)
	}
	p, err := wipe.MakePlan(m.ID, drives, policy, now)
	if err != nil {
		return wipe.Plan{}, nil, fmt.Errorf("plan the wipe of machine %s with Slate's policy: %w", m.Name, err)
	}
	for i, d := range in.Drives {
		if s := p.Drives[i]; d.Method != s.Method || d.Level != s.Level || d.Blocked != s.Blocked {
			ignored = append(ignored, fmt.Sprintf("%s: the agent proposed %s/%s (blocked %v), Slate plans %s/%s (blocked %v)",
				d.Drive.Path, d.Level, d.Method, d.Blocked, s.Level, s.Method, s.Blocked))
		}
	}
	if err := compareWithInspection(ctx, tx, m, &p); err != nil {
		return wipe.Plan{}, nil, err
	}
	return p, ignored, nil
}

// compareWithInspection marks planned drives inspection never saw, and inspected disks the
// plan leaves out (they would not be wiped, yet the machine would be certified).
func compareWithInspection(ctx context.Context, tx *inventory.Tx, m inventory.Machine, p *wipe.Plan) error {
	f, err := tx.LatestFacts(ctx, m.ID)
	if errors.Is(err, inventory.ErrNotFound) {
		p.Discrepancies = append(p.Discrepancies, "the machine was never inspected: Slate cannot check the plan's drives against its hardware")
		return nil
	}
	if err != nil {
		return err
	}
	var facts agentproto.Facts
	if err := json.Unmarshal(f.Doc, &facts); err != nil {
		p.Discrepancies = append(p.Discrepancies, fmt.Sprintf("the machine's facts (version %d) cannot be read: %v", f.Version, err))
		return nil
	}
	used := make([]bool, len(facts.Disks))
	for i := range p.Drives {
		d := &p.Drives[i].Drive
		found := false
		for j, k := range facts.Disks {
			if !used[j] && sameDisk(*d, k) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			p.Drives[i].Discrepancy = fmt.Sprintf("inspection (facts version %d) saw no disk with serial %q and %d bytes", f.Version, d.Serial, d.SizeBytes)
		}
	}
	for j, k := range facts.Disks {
		if !used[j] && !k.Removable {
			p.Discrepancies = append(p.Discrepancies, fmt.Sprintf("inspection saw disk %s (serial %q, %d bytes), which the plan does not list: it would not be wiped", k.Name, k.Serial, k.SizeBytes))
		}
	}
	return nil
}

// sameDisk says a probed drive is an inspected disk: same size, and the same serial or WWN;
// a disk without a serial (virtio) is known by its kernel name.
func sameDisk(d wipe.DriveInfo, k agentproto.Disk) bool {
	if k.SizeBytes < 0 || uint64(k.SizeBytes) != d.SizeBytes {
		return false
	}
	ds, ks := strings.TrimSpace(d.Serial), strings.TrimSpace(k.Serial)
	switch {
	case ds != "" && ks != "":
		return strings.EqualFold(ds, ks)
	case d.WWN != "" && k.WWN != "" && strings.EqualFold(d.WWN, k.WWN):
		return true
	default:
		return d.Name == k.Name
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v) // plain structs: cannot fail
	return string(b)
}
