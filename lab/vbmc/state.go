// Package vbmc is the lab's virtual BMC: a Redfish service for one virtual machine, shaped like
// the rack servers Slate meets in a plant (ids, actions, allowable values, settings objects,
// tasks), so that Slate's Redfish client, gofish, bmclib, sushy and redfishtool all drive it as
// they drive real hardware. What it does to the machine goes through the small Machine
// interface; the lab implements it with QEMU over QMP.
package vbmc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Boot targets and override modes, spelt as Redfish spells them.
const (
	TargetNone     = "None"
	TargetPxe      = "Pxe"
	TargetUefiHTTP = "UefiHttp"
	TargetHdd      = "Hdd"
	TargetCd       = "Cd"

	OverrideDisabled   = "Disabled"
	OverrideOnce       = "Once"
	OverrideContinuous = "Continuous"
)

// bootTargets are the override targets the BMC accepts (and publishes as allowable).
func bootTargets() []string {
	return []string{TargetNone, TargetPxe, TargetUefiHTTP, TargetHdd, TargetCd}
}

func overrideModes() []string { return []string{OverrideDisabled, OverrideOnce, OverrideContinuous} }

func resetTypes() []string {
	return []string{"On", "ForceOn", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"}
}

// biosAttributes are the attributes the BMC knows and the values each may take.
func biosAttributes() map[string][]string {
	return map[string][]string{
		"BootMode":           {"Uefi", "LegacyBios"},
		"SecureBoot":         {"Enabled", "Disabled"},
		"PxeDev1EnDis":       {"Enabled", "Disabled"},
		"ProcVirtualization": {"Enabled", "Disabled"},
	}
}

// BootSpec is everything the machine needs to know to power on: which firmware, what to
// boot first, and the settings a BIOS would apply.
type BootSpec struct {
	// Target is the device booted first: TargetPxe, TargetUefiHTTP, TargetHdd, TargetCd, or
	// TargetNone for the default order (disks, CD, then network).
	Target         string
	UEFI           bool
	SecureBoot     bool
	PXEEnabled     bool
	Virtualization bool
	BIOSVersion    string
	// MediaPath is the local file of the inserted virtual CD; empty when none is inserted.
	MediaPath string
}

// Machine is what the BMC controls. Start is only called when the machine is off.
type Machine interface {
	Powered(ctx context.Context) (bool, error)
	Start(ctx context.Context, spec BootSpec) error
	// Stop is a hard power off (pulling the plug); it returns once the machine is off.
	Stop(ctx context.Context) error
	// Shutdown presses the ACPI power button and returns at once; the guest decides.
	Shutdown(ctx context.Context) error
	// ChangeMedium swaps the virtual CD of a running machine; an empty path ejects.
	ChangeMedium(ctx context.Context, path string) error
}

// Media is the virtual CD.
type Media struct {
	Image          string `json:"image,omitempty"` // the URI the client gave
	Path           string `json:"path,omitempty"`  // where its bytes are on this host
	Inserted       bool   `json:"inserted"`
	WriteProtected bool   `json:"write_protected"`
}

// Firmware is an accepted firmware image waiting for the next reset.
type Firmware struct {
	Source  string `json:"source"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Version string `json:"version"`
}

// State is what the BMC keeps across restarts of the lab.
type State struct {
	BootEnabled string            `json:"boot_enabled"`
	BootTarget  string            `json:"boot_target"`
	Bios        map[string]string `json:"bios"`
	BiosPending map[string]string `json:"bios_pending,omitempty"`
	BiosVersion string            `json:"bios_version"`
	Firmware    *Firmware         `json:"pending_firmware,omitempty"`
	Media       Media             `json:"media"`
	// PoweredOn is the power state last seen; the lab restores it when it comes back up.
	PoweredOn bool `json:"powered_on"`
	// Boots counts power-ons and resets, so a test (or a curious human) sees that one happened.
	Boots int `json:"boots"`
}

// DefaultState is a factory-fresh machine booting in the given mode.
func DefaultState(uefi bool) State {
	mode := "LegacyBios"
	if uefi {
		mode = "Uefi"
	}
	return State{
		BootEnabled: OverrideDisabled,
		BootTarget:  TargetNone,
		Bios: map[string]string{
			"BootMode":           mode,
			"SecureBoot":         "Disabled",
			"PxeDev1EnDis":       "Enabled",
			"ProcVirtualization": "Enabled",
		},
		BiosVersion: "1.0.0",
	}
}

func (s State) clone() State {
	c := s
	c.Bios = cloneMap(s.Bios)
	c.BiosPending = cloneMap(s.BiosPending)
	if s.Firmware != nil {
		f := *s.Firmware
		c.Firmware = &f
	}
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// validate checks a loaded state, so a hand-edited or truncated file is refused clearly
// rather than served.
func (s State) validate() error {
	if !contains(overrideModes(), s.BootEnabled) {
		return fmt.Errorf("boot_enabled %q is not one of %v", s.BootEnabled, overrideModes())
	}
	if !contains(bootTargets(), s.BootTarget) {
		return fmt.Errorf("boot_target %q is not one of %v", s.BootTarget, bootTargets())
	}
	for _, m := range []map[string]string{s.Bios, s.BiosPending} {
		for k, v := range m {
			allowed, ok := biosAttributes()[k]
			if !ok {
				return fmt.Errorf("bios attribute %q is unknown", k)
			}
			if !contains(allowed, v) {
				return fmt.Errorf("bios attribute %s=%q is not one of %v", k, v, allowed)
			}
		}
	}
	for k := range biosAttributes() {
		if _, ok := s.Bios[k]; !ok {
			return fmt.Errorf("bios attribute %s is missing", k)
		}
	}
	if s.BiosVersion == "" {
		return errors.New("bios_version is empty")
	}
	return nil
}

// loadState reads the state file; a missing file yields def.
func loadState(path string, def State) (State, error) {
	if path == "" {
		return def, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read BMC state %s: %w", path, err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("BMC state %s is not valid JSON (delete it to start from factory settings): %w", path, err)
	}
	if err := s.validate(); err != nil {
		return State{}, fmt.Errorf("BMC state %s: %w (delete it to start from factory settings)", path, err)
	}
	return s, nil
}

// saveState writes atomically, so a crash leaves the old or the new state, never half of one.
func saveState(path string, s State) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	// No MkdirAll: when the lab's directory is gone (the lab is being removed), a late write
	// must fail rather than bring the directory back.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save BMC state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save BMC state: %w", err)
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// bumpVersion raises the last number of a dotted version: 1.0.9 → 1.0.10.
func bumpVersion(v string) string {
	parts := strings.Split(v, ".")
	last := len(parts) - 1
	n, err := strconv.Atoi(parts[last])
	if err != nil {
		return v + ".1"
	}
	parts[last] = strconv.Itoa(n + 1)
	return strings.Join(parts, ".")
}
