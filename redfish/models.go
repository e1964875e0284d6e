package redfish

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Slate decodes Redfish into its own small models, holding only the properties it uses, and
// decodes them tolerantly. gofish's models (v0.19.0, the version bmclib v2.3.3 pins) fail the
// whole resource when one property they model changed type in a newer schema — ComputerSystem
// v1_21 made OperatingSystem a link where gofish has a string, so every system carrying it
// was unusable. BMC firmware publishes new schema versions every year; a property Slate does
// not read must never matter, and one it does read that arrives in another shape is left
// empty and logged, not fatal for the resource.

// computerSystem is the part of a ComputerSystem Slate reads.
type computerSystem struct {
	ID           string `json:"Id"`
	Name         string
	Manufacturer string
	Model        string
	SKU          string
	SerialNumber string
	UUID         string
	AssetTag     string
	BiosVersion  string
	PowerState   string
	Boot         BootSettings
}

// BootSettings is a system's Boot object as the BMC reports it (the override part).
type BootSettings struct {
	BootSourceOverrideTarget  string
	BootSourceOverrideEnabled string
	BootSourceOverrideMode    string
}

// Boot override enablement values.
const (
	OverrideOnce       = "Once"
	OverrideContinuous = "Continuous"
	OverrideDisabled   = "Disabled"
)

type ethernetInterface struct {
	ID                  string `json:"Id"`
	Name                string
	MACAddress          string
	PermanentMACAddress string
	LinkStatus          string
}

type biosModel struct {
	Attributes map[string]any
}

type virtualMediaModel struct {
	MediaTypes []string
	Image      string
	Inserted   bool
}

type taskModel struct {
	ID              string `json:"Id"`
	TaskState       string
	PercentComplete int
	Messages        []struct{ Message string }
}

type softwareInventory struct {
	ID         string `json:"Id"`
	Name       string
	Version    string
	Updateable bool
	SoftwareID string `json:"SoftwareId"`
}

// decodeTolerant decodes a Redfish document into v. A property whose JSON type does not match
// the model is left at its zero value (encoding/json skips it and decodes the rest); that is
// reported as skipped, for a log line. Only a document that is not JSON at all fails.
func decodeTolerant(b []byte, v any) (skipped string, err error) {
	err = json.Unmarshal(b, v)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s: %s where %s was expected", te.Field, te.Value, te.Type), nil
	}
	return "", err
}
