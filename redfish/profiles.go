package redfish

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Profiles and baselines arrive as JSON (API bodies, the store, releases): these parsers are
// the one way in, so a bad one is refused with the field named before it reaches a BMC.

// ParseBIOSProfile decodes and validates a BIOS profile.
func ParseBIOSProfile(b []byte) (BIOSProfile, error) {
	var p BIOSProfile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return BIOSProfile{}, fmt.Errorf("BIOS profile: %w", err)
	}
	if dec.More() {
		return BIOSProfile{}, errors.New("BIOS profile: trailing data after the JSON object")
	}
	return p, p.Validate()
}

// Validate checks a profile: a name, at least one attribute, scalar values only.
func (p *BIOSProfile) Validate() error {
	p.Name = strings.TrimSpace(p.Name)
	if p.Name == "" {
		return errors.New("BIOS profile: name is empty")
	}
	if len(p.Attributes) == 0 {
		return fmt.Errorf("BIOS profile %q: no attributes", p.Name)
	}
	names := make([]string, 0, len(p.Attributes))
	for k := range p.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if strings.TrimSpace(k) == "" || len(k) > 128 {
			return fmt.Errorf("BIOS profile %q: attribute name %q is empty or too long", p.Name, k)
		}
		switch v := p.Attributes[k].(type) {
		case string, bool, float64, int, int64:
		case json.Number:
			f, err := v.Float64()
			if err != nil {
				return fmt.Errorf("BIOS profile %q: attribute %s: %q is not a number", p.Name, k, v)
			}
			p.Attributes[k] = f
		default:
			return fmt.Errorf("BIOS profile %q: attribute %s has a %T value; BIOS attributes are strings, numbers or booleans", p.Name, k, v)
		}
	}
	return nil
}

// ParseFirmwareBaseline decodes and validates a firmware baseline.
func ParseFirmwareBaseline(b []byte) (FirmwareBaseline, error) {
	var fb FirmwareBaseline
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fb); err != nil {
		return FirmwareBaseline{}, fmt.Errorf("firmware baseline: %w", err)
	}
	if dec.More() {
		return FirmwareBaseline{}, errors.New("firmware baseline: trailing data after the JSON object")
	}
	return fb, fb.Validate()
}

// Validate checks a baseline: a name, components named once each, a version and an http(s) image.
func (b *FirmwareBaseline) Validate() error {
	b.Name = strings.TrimSpace(b.Name)
	if b.Name == "" {
		return errors.New("firmware baseline: name is empty")
	}
	if len(b.Components) == 0 {
		return fmt.Errorf("firmware baseline %q: no components", b.Name)
	}
	seen := map[string]bool{}
	for i, c := range b.Components {
		if strings.TrimSpace(c.Component) == "" {
			return fmt.Errorf("firmware baseline %q: component %d has no name", b.Name, i)
		}
		if seen[c.Component] {
			return fmt.Errorf("firmware baseline %q: component %s listed twice", b.Name, c.Component)
		}
		seen[c.Component] = true
		if strings.TrimSpace(c.Version) == "" {
			return fmt.Errorf("firmware baseline %q: component %s has no version", b.Name, c.Component)
		}
		u, err := url.Parse(c.ImageURI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("firmware baseline %q: component %s: image_uri %q is not an http(s) URL", b.Name, c.Component, c.ImageURI)
		}
	}
	return nil
}
