package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// BIOSProfile is data: BIOS attribute → value, versioned in the store.
type BIOSProfile struct {
	Name       string         `json:"name"`
	Version    string         `json:"version,omitempty"`
	Attributes map[string]any `json:"attributes"`
}

// BIOSChange is one attribute whose value is not the profile's.
type BIOSChange struct {
	Attribute string `json:"attribute"`
	Current   any    `json:"current"`
	Want      any    `json:"want"`
}

// BIOSDiff compares a profile with what the BMC reports.
type BIOSDiff struct {
	Changes []BIOSChange `json:"changes"`
	// Unknown are profile attributes the BMC does not have (another model, another firmware).
	Unknown []string `json:"unknown,omitempty"`
	// Pending are changes already staged on the BMC by someone else; they take at the next
	// reset together with the profile's.
	Pending map[string]any `json:"pending,omitempty"`
}

// BIOS result states.
const (
	BIOSUnchanged = "unchanged" // the BMC already matches the profile
	BIOSStaged    = "staged"    // written to the settings object; takes at the next reset
	BIOSApplied   = "applied"   // verified after the reset: every attribute took
	BIOSFailed    = "failed"    // nothing or not everything took: see Mismatched / the error
)

// BIOSResult is what happened to a profile. It is "applied" only when every attribute was read
// back with the profile's value.
type BIOSResult struct {
	Profile    string       `json:"profile"`
	State      string       `json:"state"`
	Diff       BIOSDiff     `json:"diff"`
	Mismatched []BIOSChange `json:"mismatched,omitempty"`
	Messages   []string     `json:"messages,omitempty"`
}

type biosDoc struct {
	biosModel
	uri           string
	settingsURI   string // "" when the BMC has no @Redfish.Settings: PATCH Bios itself
	applyTimes    []string
	resetTarget   string
	settingsMsgs  []string
	settingsFails []string
}

func (c *Client) bios(ctx context.Context, op string) (*biosDoc, error) {
	var sys struct{ Bios link }
	if _, err := c.get(ctx, op, c.systemURI, &sys); err != nil {
		return nil, err
	}
	if sys.Bios.ID == "" {
		return nil, &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the system has no Bios resource: %w", ErrUnsupported)}
	}
	var raw json.RawMessage
	if _, err := c.get(ctx, op, sys.Bios.ID, &raw); err != nil {
		return nil, err
	}
	b := &biosDoc{uri: sys.Bios.ID}
	if err := c.decode(op, b.uri, raw, &b.biosModel); err != nil {
		return nil, err
	}
	var extra struct {
		Settings struct {
			SettingsObject      link
			SupportedApplyTimes []string
			Messages            []struct {
				MessageID         string `json:"MessageId"`
				Message           string
				RelatedProperties []string
			}
		} `json:"@Redfish.Settings"`
		Actions struct {
			Reset struct {
				Target string `json:"target"`
			} `json:"#Bios.ResetBios"`
		}
	}
	if err := c.decode(op, b.uri, raw, &extra); err != nil {
		return nil, err
	}
	b.settingsURI, b.applyTimes, b.resetTarget = extra.Settings.SettingsObject.ID, extra.Settings.SupportedApplyTimes, extra.Actions.Reset.Target
	for _, m := range extra.Settings.Messages {
		b.settingsMsgs = append(b.settingsMsgs, fmt.Sprintf("%s %s %v", m.MessageID, m.Message, m.RelatedProperties))
		if containsFold(m.MessageID, "SettingsFailed") {
			b.settingsFails = append(b.settingsFails, m.RelatedProperties...)
		}
	}
	if b.Attributes == nil {
		return nil, &Error{BMC: c.cfg.Address, Op: op, Path: b.uri, Err: fmt.Errorf("the Bios resource has no Attributes: %w", ErrBadReply)}
	}
	return b, nil
}

// BIOSAttributes reads the current attribute values.
func (c *Client) BIOSAttributes(ctx context.Context) (map[string]any, error) {
	b, err := c.bios(ctx, "read BIOS attributes")
	if err != nil {
		return nil, err
	}
	return map[string]any(b.Attributes), nil
}

// sameValue compares through JSON, so a profile's 0 (int) equals the BMC's 0 (float64).
func sameValue(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func diffBIOS(current, pending map[string]any, p BIOSProfile) BIOSDiff {
	d := BIOSDiff{Changes: []BIOSChange{}}
	names := make([]string, 0, len(p.Attributes))
	for k := range p.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		cur, ok := current[k]
		if !ok {
			d.Unknown = append(d.Unknown, k)
			continue
		}
		if !sameValue(cur, p.Attributes[k]) {
			d.Changes = append(d.Changes, BIOSChange{Attribute: k, Current: cur, Want: p.Attributes[k]})
		}
	}
	for k, v := range pending {
		if cur, ok := current[k]; ok && !sameValue(cur, v) {
			if _, mine := p.Attributes[k]; !mine {
				if d.Pending == nil {
					d.Pending = map[string]any{}
				}
				d.Pending[k] = v
			}
		}
	}
	return d
}

func (c *Client) pending(ctx context.Context, op string, b *biosDoc) map[string]any {
	if b.settingsURI == "" {
		return nil
	}
	var s struct{ Attributes map[string]any }
	if _, err := c.get(ctx, op, b.settingsURI, &s); err != nil {
		c.log.Warn("bmc pending BIOS settings unreadable", "err", err)
		return nil
	}
	return s.Attributes
}

// DiffBIOS compares a profile with the BMC's current attributes.
func (c *Client) DiffBIOS(ctx context.Context, p BIOSProfile) (BIOSDiff, error) {
	const op = "diff BIOS profile"
	b, err := c.bios(ctx, op)
	if err != nil {
		return BIOSDiff{}, err
	}
	return diffBIOS(b.Attributes, c.pending(ctx, op, b), p), nil
}

// StageBIOS writes the profile's changes to the @Redfish.Settings object with apply time
// OnReset (or to Bios itself where the BMC has no settings object). Nothing is sent when the
// profile names attributes the BMC does not know: a profile is applied whole or not at all.
func (c *Client) StageBIOS(ctx context.Context, p BIOSProfile) (BIOSResult, error) {
	const op = "stage BIOS profile"
	res := BIOSResult{Profile: p.Name, State: BIOSFailed}
	b, err := c.bios(ctx, op)
	if err != nil {
		return res, err
	}
	res.Diff = diffBIOS(b.Attributes, c.pending(ctx, op, b), p)
	if len(res.Diff.Unknown) > 0 {
		return res, &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("profile %q sets attributes this BMC does not have: %v: %w", p.Name, res.Diff.Unknown, ErrUnsupported),
			Hint: "remove them from the profile or use a profile for this model; nothing was changed"}
	}
	if len(res.Diff.Changes) == 0 {
		res.State = BIOSUnchanged
		return res, nil
	}
	if len(res.Diff.Pending) > 0 {
		c.log.Warn("bmc has other pending BIOS changes that will take at the same reset", "pending", res.Diff.Pending)
	}
	attrs := map[string]any{}
	for _, ch := range res.Diff.Changes {
		attrs[ch.Attribute] = ch.Want
	}
	body := map[string]any{"Attributes": attrs}
	target := b.settingsURI
	if target == "" {
		target = b.uri
	} else if slices.Contains(b.applyTimes, "OnReset") {
		body["@Redfish.SettingsApplyTime"] = map[string]any{"ApplyTime": "OnReset"}
	}
	c.log.Info("bmc staging BIOS profile", "profile", p.Name, "changes", len(attrs), "target", target)
	if err := c.patch(ctx, op, target, body); err != nil {
		return res, err
	}
	if target == b.settingsURI {
		staged := c.pending(ctx, op, b)
		for k, v := range attrs {
			if !sameValue(staged[k], v) {
				res.Mismatched = append(res.Mismatched, BIOSChange{Attribute: k, Current: staged[k], Want: v})
			}
		}
		if len(res.Mismatched) > 0 {
			return res, &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the settings object does not hold %d of the staged values: %w", len(res.Mismatched), ErrNotApplied)}
		}
	}
	res.State = BIOSStaged
	return res, nil
}

// VerifyBIOS checks, after a reset, that every attribute of the profile took.
func (c *Client) VerifyBIOS(ctx context.Context, p BIOSProfile) (BIOSResult, error) {
	const op = "verify BIOS profile"
	res := BIOSResult{Profile: p.Name, State: BIOSFailed}
	b, err := c.bios(ctx, op)
	if err != nil {
		return res, err
	}
	res.Diff = diffBIOS(b.Attributes, nil, p)
	res.Messages = b.settingsMsgs
	res.Mismatched = res.Diff.Changes
	if len(res.Diff.Unknown) > 0 {
		return res, &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("attributes unknown to this BMC: %v: %w", res.Diff.Unknown, ErrUnsupported)}
	}
	if len(res.Mismatched) > 0 {
		return res, &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("%d attributes did not take (%s) %v: %w", len(res.Mismatched), describe(res.Mismatched), b.settingsFails, ErrNotApplied)}
	}
	res.State = BIOSApplied
	res.Mismatched = nil
	return res, nil
}

func describe(ch []BIOSChange) string {
	s := ""
	for i, c := range ch {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s=%v want %v", c.Attribute, c.Current, c.Want)
	}
	return s
}

// ApplyBIOS stages the profile, resets the system so the firmware applies it, and verifies
// every attribute, waiting up to BIOSVerifyTimeout for the firmware to finish POST. The system
// is left powered on.
func (c *Client) ApplyBIOS(ctx context.Context, p BIOSProfile) (BIOSResult, error) {
	res, err := c.StageBIOS(ctx, p)
	if err != nil || res.State == BIOSUnchanged {
		if err == nil {
			res.State = BIOSApplied
		}
		return res, err
	}
	staged := res
	if err := c.PowerCycle(ctx); err != nil {
		staged.State = BIOSStaged
		return staged, err
	}
	polls := max(int(c.cfg.BIOSVerifyTimeout/c.cfg.PollInterval), 1)
	for i := 0; ; i++ {
		res, err = c.VerifyBIOS(ctx, p)
		res.Diff = staged.Diff // what the profile changed; Mismatched is what did not take
		if err == nil || !errors.Is(err, ErrNotApplied) || i >= polls {
			if err != nil && errors.Is(err, ErrNotApplied) {
				c.log.Error("bmc BIOS profile did not take", "profile", p.Name, "mismatched", describe(res.Mismatched))
			}
			return res, err
		}
		if serr := c.cfg.Sleep(ctx, c.cfg.PollInterval); serr != nil {
			return res, &Error{BMC: c.cfg.Address, Op: "verify BIOS profile", Err: serr}
		}
	}
}

// ResetBIOSDefaults asks the BMC to restore BIOS defaults at the next reset.
func (c *Client) ResetBIOSDefaults(ctx context.Context) error {
	const op = "reset BIOS to defaults"
	b, err := c.bios(ctx, op)
	if err != nil {
		return err
	}
	_, err = c.post(ctx, op, b.resetTarget, map[string]any{})
	return err
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
