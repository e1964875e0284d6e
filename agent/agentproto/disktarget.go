package agentproto

import (
	"fmt"
	"sort"
	"strings"
)

// DiskTarget is the install rule that chooses the disk a release is written to: by serial or
// WWN, else the smallest non-removable disk of at least MinBytes (solid-state only with SSD).
// Slate evaluates it on the machine's facts to show the disk before the install; the agent
// evaluates it again on the disks it sees.
type DiskTarget struct {
	Serial   string `json:"serial,omitempty"`
	WWN      string `json:"wwn,omitempty"`
	MinBytes int64  `json:"min_bytes,omitempty"`
	SSD      bool   `json:"ssd,omitempty"`
}

// String says the rule in words, for logs and the machine page.
func (t DiskTarget) String() string {
	switch {
	case t.Serial != "":
		return "the disk with serial " + t.Serial
	case t.WWN != "":
		return "the disk with WWN " + t.WWN
	}
	var b strings.Builder
	b.WriteString("the smallest non-removable ")
	if t.SSD {
		b.WriteString("solid-state ")
	}
	b.WriteString("disk")
	if t.MinBytes > 0 {
		fmt.Fprintf(&b, " of at least %d GB", t.MinBytes/1e9)
	}
	return b.String()
}

// ChooseDisk applies the rule to a machine's disks.
func ChooseDisk(disks []Disk, t DiskTarget) (Disk, error) {
	var cands []Disk
	for _, d := range disks {
		switch {
		case t.Serial != "" && d.Serial == t.Serial, t.WWN != "" && d.WWN == t.WWN:
			return d, nil
		case t.Serial == "" && t.WWN == "" && !d.Removable && !d.ReadOnly && d.SizeBytes >= t.MinBytes && (!t.SSD || !d.Rotational):
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		return Disk{}, fmt.Errorf("no disk on this machine matches the install rule (%s)", t)
	}
	sort.Slice(cands, func(i, j int) bool {
		return cands[i].SizeBytes < cands[j].SizeBytes || (cands[i].SizeBytes == cands[j].SizeBytes && cands[i].Name < cands[j].Name)
	})
	return cands[0], nil
}
