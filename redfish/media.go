package redfish

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
)

type media struct {
	virtualMediaModel
	uri          string
	insertTarget string
	ejectTarget  string
}

// cdrom finds the virtual CD/DVD: through the manager's VirtualMedia (where most BMCs put it),
// else the system's (where newer DMTF mockups put it).
func (c *Client) cdrom(ctx context.Context, op string) (*media, error) {
	var colls []string
	mgr, err := c.manager(ctx, op)
	if err != nil {
		return nil, err
	}
	if mgr != "" {
		var m struct{ VirtualMedia link }
		if _, err := c.get(ctx, op, mgr, &m); err != nil {
			return nil, err
		}
		colls = append(colls, m.VirtualMedia.ID)
	}
	var s struct{ VirtualMedia link }
	if _, err := c.get(ctx, op, c.systemURI, &s); err != nil {
		return nil, err
	}
	colls = append(colls, s.VirtualMedia.ID)
	for _, coll := range colls {
		if coll == "" {
			continue
		}
		members, err := c.members(ctx, op, coll)
		if err != nil {
			return nil, err
		}
		for _, uri := range members {
			m, err := c.readMedia(ctx, op, uri)
			if err != nil {
				return nil, err
			}
			if slices.Contains(m.MediaTypes, "CD") || slices.Contains(m.MediaTypes, "DVD") {
				return m, nil
			}
		}
	}
	return nil, &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC has no virtual CD/DVD: %w", ErrUnsupported),
		Hint: "virtual media may need a licence on this BMC (iDRAC Enterprise, iLO Advanced)"}
}

func (c *Client) readMedia(ctx context.Context, op, uri string) (*media, error) {
	var raw json.RawMessage
	if _, err := c.get(ctx, op, uri, &raw); err != nil {
		return nil, err
	}
	m := &media{uri: uri}
	var acts struct {
		Actions struct {
			Insert struct {
				Target string `json:"target"`
			} `json:"#VirtualMedia.InsertMedia"`
			Eject struct {
				Target string `json:"target"`
			} `json:"#VirtualMedia.EjectMedia"`
		}
	}
	if err := c.decode(op, uri, raw, &m.virtualMediaModel); err != nil {
		return nil, err
	}
	if err := c.decode(op, uri, raw, &acts); err != nil {
		return nil, err
	}
	m.insertTarget, m.ejectTarget = acts.Actions.Insert.Target, acts.Actions.Eject.Target
	return m, nil
}

// InsertMedia attaches an ISO (served by Slate) to the virtual CD, ejecting what was there.
func (c *Client) InsertMedia(ctx context.Context, image string) error {
	const op = "insert virtual media"
	if u, err := url.Parse(image); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("image %q is not an http(s) URL the BMC can fetch", image)}
	}
	m, err := c.cdrom(ctx, op)
	if err != nil {
		return err
	}
	if m.Inserted && m.Image == image {
		return nil
	}
	if m.Inserted {
		if err := c.eject(ctx, op, m); err != nil {
			return err
		}
	}
	if m.insertTarget != "" && !c.vendor.MediaByPatch() {
		var lastErr error
		for _, body := range c.vendor.InsertMediaBodies(image) {
			_, lastErr = c.post(ctx, op, m.insertTarget, body)
			if lastErr == nil || !isStatus(lastErr, 400) {
				break
			}
			c.log.Info("bmc rejected InsertMedia, trying the vendor's next form", "err", lastErr)
		}
		if lastErr != nil {
			return lastErr
		}
	} else if err := c.patch(ctx, op, m.uri, map[string]any{"Image": image, "Inserted": true, "WriteProtected": true}); err != nil {
		return err
	}
	got, err := c.readMedia(ctx, op, m.uri)
	if err != nil {
		return err
	}
	if got.Image != image {
		return &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC reports image %q after inserting %q: %w", got.Image, image, ErrNotApplied)}
	}
	return nil
}

// EjectMedia detaches the virtual CD; nothing inserted is success.
func (c *Client) EjectMedia(ctx context.Context) error {
	const op = "eject virtual media"
	m, err := c.cdrom(ctx, op)
	if err != nil {
		return err
	}
	if !m.Inserted && m.Image == "" {
		return nil
	}
	return c.eject(ctx, op, m)
}

func (c *Client) eject(ctx context.Context, op string, m *media) error {
	if m.ejectTarget != "" && !c.vendor.MediaByPatch() {
		_, err := c.post(ctx, op, m.ejectTarget, map[string]any{})
		return err
	}
	return c.patch(ctx, op, m.uri, map[string]any{"Image": nil, "Inserted": false})
}

// MediaState is what the virtual CD/DVD holds, as the BMC reports it.
type MediaState struct {
	Image    string `json:"image,omitempty"` // the URL the BMC reads the medium from
	Inserted bool   `json:"inserted"`
	Device   string `json:"device"` // the VirtualMedia resource, e.g. /redfish/v1/Managers/1/VirtualMedia/CD1
}

// MediaStatus reads what the virtual CD/DVD holds.
func (c *Client) MediaStatus(ctx context.Context) (MediaState, error) {
	m, err := c.cdrom(ctx, "read virtual media")
	if err != nil {
		return MediaState{}, err
	}
	return MediaState{Image: m.Image, Inserted: m.Inserted, Device: m.uri}, nil
}
