package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// PowerState is the system's power as the BMC reports it (On, Off, PoweringOn, PoweringOff, Paused).
type PowerState string

const (
	PowerOn  PowerState = "On"
	PowerOff PowerState = "Off"
)

// system is the computer system as Slate models it, plus its Reset action and the ETag of the read.
type system struct {
	computerSystem
	resetTarget  string
	resetAllowed []string
	bootAllowed  []string
	hasHTTPURI   bool
	etag         string
	raw          map[string]json.RawMessage
}

func (c *Client) system(ctx context.Context, op string) (*system, error) {
	var raw json.RawMessage
	etag, err := c.get(ctx, op, c.systemURI, &raw)
	if err != nil {
		return nil, err
	}
	s := &system{etag: etag}
	if err := c.decode(op, c.systemURI, raw, &s.computerSystem); err != nil {
		return nil, err
	}
	var extra struct {
		Actions struct {
			Reset struct {
				Target     string   `json:"target"`
				Allowed    []string `json:"ResetType@Redfish.AllowableValues"`
				ActionInfo string   `json:"@Redfish.ActionInfo"`
			} `json:"#ComputerSystem.Reset"`
		}
		Boot map[string]json.RawMessage
	}
	_ = json.Unmarshal(raw, &s.raw)
	if err := c.decode(op, c.systemURI, raw, &extra); err != nil {
		return nil, err
	}
	s.resetTarget, s.resetAllowed = extra.Actions.Reset.Target, extra.Actions.Reset.Allowed
	if len(s.resetAllowed) == 0 && extra.Actions.Reset.ActionInfo != "" {
		var info struct {
			Parameters []struct {
				Name            string
				AllowableValues []string
			}
		}
		if _, err := c.get(ctx, op, extra.Actions.Reset.ActionInfo, &info); err == nil {
			for _, p := range info.Parameters {
				if p.Name == "ResetType" {
					s.resetAllowed = p.AllowableValues
				}
			}
		}
	}
	if b, ok := extra.Boot["BootSourceOverrideTarget@Redfish.AllowableValues"]; ok {
		_ = json.Unmarshal(b, &s.bootAllowed)
	}
	_, s.hasHTTPURI = extra.Boot["HttpBootUri"]
	return s, nil
}

// resetType picks the first of the wanted reset types the BMC allows (all when it lists none).
func (s *system) resetType(want ...string) string {
	if len(s.resetAllowed) == 0 {
		return want[0]
	}
	for _, w := range want {
		if slices.Contains(s.resetAllowed, w) {
			return w
		}
	}
	return ""
}

// PowerState reads the system's power state.
func (c *Client) PowerState(ctx context.Context) (PowerState, error) {
	s, err := c.system(ctx, "read power state")
	if err != nil {
		return "", err
	}
	return PowerState(s.PowerState), nil
}

func (c *Client) reset(ctx context.Context, op string, s *system, want ...string) error {
	rt := s.resetType(want...)
	if rt == "" {
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC allows reset types %v, none of %v: %w", s.resetAllowed, want, ErrUnsupported)}
	}
	c.log.Info("bmc reset", "op", op, "type", rt)
	_, err := c.post(ctx, op, s.resetTarget, map[string]string{"ResetType": rt})
	return err
}

// waitPower polls until the state is want or limit has passed (counted in poll intervals, so
// an injected Sleep keeps tests fast).
func (c *Client) waitPower(ctx context.Context, op string, want PowerState, limit time.Duration) error {
	polls := max(int(limit/c.cfg.PollInterval), 1)
	var last PowerState
	for i := 0; i <= polls; i++ {
		s, err := c.system(ctx, op)
		if err != nil {
			return err
		}
		last = PowerState(s.PowerState)
		if last == want {
			return nil
		}
		if i < polls {
			if err := c.cfg.Sleep(ctx, c.cfg.PollInterval); err != nil {
				return &Error{BMC: c.cfg.Address, Op: op, Err: err}
			}
		}
	}
	return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("power is %s, not %s, after %s: %w", last, want, limit, ErrTimeout)}
}

// PowerOn powers the system on; already on is success.
func (c *Client) PowerOn(ctx context.Context) error {
	const op = "power on"
	s, err := c.system(ctx, op)
	if err != nil {
		return err
	}
	if PowerState(s.PowerState) == PowerOn {
		return nil
	}
	if err := c.reset(ctx, op, s, "On", "ForceOn", "PushPowerButton"); err != nil {
		// a BMC that answers 409 "already on" raced us: what counts is the state
		if !isStatus(err, 409) {
			return err
		}
	}
	return c.waitPower(ctx, op, PowerOn, c.cfg.PowerWait)
}

// PowerOff shuts the system down gracefully, waits PowerOffGrace, then forces it off.
func (c *Client) PowerOff(ctx context.Context) error {
	const op = "power off"
	s, err := c.system(ctx, op)
	if err != nil {
		return err
	}
	if PowerState(s.PowerState) == PowerOff {
		return nil
	}
	if s.resetType("GracefulShutdown") != "" {
		if err := c.reset(ctx, op, s, "GracefulShutdown"); err != nil {
			return err
		}
		err := c.waitPower(ctx, op, PowerOff, c.cfg.PowerOffGrace)
		if err == nil {
			return nil
		}
		if !isTimeout(err) {
			return err
		}
		c.log.Warn("bmc graceful shutdown did not finish, forcing power off", "grace", c.cfg.PowerOffGrace)
	}
	if err := c.reset(ctx, op, s, "ForceOff", "PushPowerButton"); err != nil {
		return err
	}
	return c.waitPower(ctx, op, PowerOff, c.cfg.PowerWait)
}

// ForceOff cuts the system's power without a graceful shutdown; already off is success. For
// a machine with nothing left to lose (its disks erased), where waiting PowerOffGrace for an
// OS that may ignore ACPI only delays the caller.
func (c *Client) ForceOff(ctx context.Context) error {
	const op = "force off"
	s, err := c.system(ctx, op)
	if err != nil {
		return err
	}
	if PowerState(s.PowerState) == PowerOff {
		return nil
	}
	if err := c.reset(ctx, op, s, "ForceOff", "PushPowerButton"); err != nil {
		return err
	}
	return c.waitPower(ctx, op, PowerOff, c.cfg.PowerWait)
}

// PowerCycle restarts the system (powers it on when it is off).
func (c *Client) PowerCycle(ctx context.Context) error {
	const op = "power cycle"
	s, err := c.system(ctx, op)
	if err != nil {
		return err
	}
	if PowerState(s.PowerState) == PowerOff {
		return c.PowerOn(ctx)
	}
	if s.resetType("ForceRestart", "PowerCycle") != "" {
		if err := c.reset(ctx, op, s, "ForceRestart", "PowerCycle"); err != nil {
			return err
		}
		return c.waitPower(ctx, op, PowerOn, c.cfg.PowerWait)
	}
	if err := c.reset(ctx, op, s, "ForceOff"); err != nil {
		return err
	}
	if err := c.waitPower(ctx, op, PowerOff, c.cfg.PowerWait); err != nil {
		return err
	}
	return c.PowerOn(ctx)
}

func isTimeout(err error) bool {
	return err != nil && errors.Is(err, ErrTimeout)
}
