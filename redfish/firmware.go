package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Firmware is one component of the BMC's firmware inventory.
type Firmware struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Version    string `json:"version"`
	Updateable bool   `json:"updateable"`
	SoftwareID string `json:"software_id,omitempty"`
	URI        string `json:"uri"`
}

// FirmwareBaseline is data, like a BIOS profile: component → version and the image that has it.
type FirmwareBaseline struct {
	Name       string           `json:"name"`
	Version    string           `json:"version,omitempty"`
	Components []FirmwareTarget `json:"components"`
}

// FirmwareTarget is one component of a baseline.
type FirmwareTarget struct {
	Component string `json:"component"` // inventory Id (or Name)
	Version   string `json:"version"`
	ImageURI  string `json:"image_uri"` // served by Slate
}

// FirmwareStep is one update a baseline needs.
type FirmwareStep struct {
	Component  string `json:"component"`
	Current    string `json:"current"`
	Want       string `json:"want"`
	ImageURI   string `json:"image_uri"`
	Updateable bool   `json:"updateable"`
	Missing    bool   `json:"missing,omitempty"` // the BMC lists no such component
}

// FirmwareUpdate is one component update: by URI (SimpleUpdate) or by pushing the image.
type FirmwareUpdate struct {
	Component string // inventory Id (or Name) whose version is checked
	Version   string // expected after the update
	ImageURI  string // SimpleUpdate: the BMC fetches this
	// Image opens the image for a multipart push (MultipartHttpPushUri), with its size.
	Image    func() (io.ReadCloser, int64, error)
	Filename string
	Targets  []string // optional Redfish Targets (URIs of inventory items)
}

// FileImage opens a local file as a push image.
func FileImage(p string) func() (io.ReadCloser, int64, error) {
	return func() (io.ReadCloser, int64, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, st.Size(), nil
	}
}

// Firmware update states.
const (
	FirmwareCurrent = "current" // already at the version: nothing sent
	FirmwareUpdated = "updated" // task completed and the new version is reported
)

// FirmwareResult is what an update did.
type FirmwareResult struct {
	Component string   `json:"component"`
	Before    string   `json:"before"`
	After     string   `json:"after"`
	Task      string   `json:"task,omitempty"`
	State     string   `json:"state"`
	Messages  []string `json:"messages,omitempty"`
}

type updateService struct {
	simpleTarget string
	multipart    string
	inventory    string
}

func (c *Client) updateService(ctx context.Context, op string) (*updateService, error) {
	if c.updateURI == "" {
		return nil, &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC has no UpdateService: %w", ErrUnsupported)}
	}
	var raw json.RawMessage
	if _, err := c.get(ctx, op, c.updateURI, &raw); err != nil {
		return nil, err
	}
	u := &updateService{}
	var extra struct {
		Actions struct {
			Simple struct {
				Target string `json:"target"`
			} `json:"#UpdateService.SimpleUpdate"`
		}
		MultipartHTTPPushURI string `json:"MultipartHttpPushUri"`
		FirmwareInventory    link
	}
	if err := c.decode(op, c.updateURI, raw, &extra); err != nil {
		return nil, err
	}
	u.simpleTarget, u.multipart, u.inventory = extra.Actions.Simple.Target, extra.MultipartHTTPPushURI, extra.FirmwareInventory.ID
	return u, nil
}

// Firmware lists the firmware inventory.
func (c *Client) Firmware(ctx context.Context) ([]Firmware, error) {
	return c.firmware(ctx, "read firmware inventory")
}

func (c *Client) firmware(ctx context.Context, op string) ([]Firmware, error) {
	u, err := c.updateService(ctx, op)
	if err != nil {
		return nil, err
	}
	members, err := c.members(ctx, op, u.inventory)
	if err != nil {
		return nil, err
	}
	out := make([]Firmware, 0, len(members))
	for _, m := range members {
		var si softwareInventory
		if _, err := c.get(ctx, op, m, &si); err != nil {
			return nil, err
		}
		out = append(out, Firmware{ID: si.ID, Name: si.Name, Version: si.Version, Updateable: si.Updateable, SoftwareID: si.SoftwareID, URI: m})
	}
	return out, nil
}

func findFirmware(inv []Firmware, component string) (Firmware, bool) {
	for _, f := range inv {
		if f.ID == component {
			return f, true
		}
	}
	for _, f := range inv {
		if f.Name == component {
			return f, true
		}
	}
	return Firmware{}, false
}

// PlanFirmware lists the updates a baseline needs; an empty plan means the machine matches it.
func (c *Client) PlanFirmware(ctx context.Context, b FirmwareBaseline) ([]FirmwareStep, error) {
	inv, err := c.firmware(ctx, "plan firmware baseline")
	if err != nil {
		return nil, err
	}
	steps := []FirmwareStep{}
	for _, t := range b.Components {
		f, ok := findFirmware(inv, t.Component)
		if ok && f.Version == t.Version {
			continue
		}
		steps = append(steps, FirmwareStep{Component: t.Component, Current: f.Version, Want: t.Version, ImageURI: t.ImageURI, Updateable: f.Updateable, Missing: !ok})
	}
	return steps, nil
}

// UpdateFirmware installs one component, follows the BMC's task to its end (bounded by
// TaskTimeout) and checks the inventory then reports the new version. A component that only
// shows its new version after a reset gives ErrNotApplied with the task's outcome: reset, then
// PlanFirmware to verify.
func (c *Client) UpdateFirmware(ctx context.Context, up FirmwareUpdate) (FirmwareResult, error) {
	const op = "update firmware"
	res := FirmwareResult{Component: up.Component}
	fail := func(err error) (FirmwareResult, error) {
		res.State = "failed"
		return res, c.errf(op, err)
	}
	if up.Component == "" || up.Version == "" {
		return fail(fmt.Errorf("a firmware update needs the component and the version it brings"))
	}
	u, err := c.updateService(ctx, op)
	if err != nil {
		return fail(err)
	}
	inv, err := c.firmware(ctx, op)
	if err != nil {
		return fail(err)
	}
	f, ok := findFirmware(inv, up.Component)
	if !ok {
		return fail(fmt.Errorf("the BMC lists no firmware component %q: %w", up.Component, ErrUnsupported))
	}
	res.Before = f.Version
	if f.Version == up.Version {
		res.State, res.After = FirmwareCurrent, f.Version
		return res, nil
	}
	if !f.Updateable {
		return fail(fmt.Errorf("component %q is not updateable through Redfish: %w", up.Component, ErrUnsupported))
	}
	var rep *reply
	switch {
	case up.ImageURI != "" && u.simpleTarget != "":
		body := map[string]any{"ImageURI": up.ImageURI}
		if len(up.Targets) > 0 {
			body["Targets"] = up.Targets
		}
		c.log.Info("bmc firmware update by SimpleUpdate", "component", up.Component, "image", up.ImageURI)
		rep, err = c.post(ctx, op, u.simpleTarget, body)
	case up.Image != nil && u.multipart != "":
		c.log.Info("bmc firmware update by multipart push", "component", up.Component)
		rep, err = c.pushMultipart(ctx, op, u.multipart, up)
	default:
		return fail(fmt.Errorf("no way to deliver the image: SimpleUpdate=%t (image URI given: %t), MultipartHttpPushUri=%t (image given: %t): %w",
			u.simpleTarget != "", up.ImageURI != "", u.multipart != "", up.Image != nil, ErrUnsupported))
	}
	if err != nil {
		return fail(err)
	}
	res.Task = taskLocation(rep)
	if res.Task != "" {
		st, err := c.followTask(ctx, op, res.Task)
		if st != nil && st.Message != "" {
			res.Messages = append(res.Messages, st.Message)
		}
		if err != nil {
			return fail(err)
		}
	}
	inv, err = c.firmware(ctx, op)
	if err != nil {
		return fail(err)
	}
	f, _ = findFirmware(inv, up.Component)
	res.After = f.Version
	if f.Version != up.Version {
		res.State = "pending"
		return res, &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("component %q reports version %q, not %q: %w", up.Component, f.Version, up.Version, ErrNotApplied),
			Hint: "some components activate only after a reset: reset the system (or the BMC), then check with PlanFirmware"}
	}
	res.State = FirmwareUpdated
	return res, nil
}

// taskLocation is the task a 202 reply points at. The Task in the body names the task
// resource itself; Location may instead be a task monitor (DSP0266), which answers with the
// same Task, so it is used only when the body has none.
func taskLocation(rep *reply) string {
	if rep == nil {
		return ""
	}
	var t struct {
		ID        string `json:"@odata.id"`
		TaskState string
	}
	if _, err := decodeTolerant(rep.body, &t); err == nil && t.TaskState != "" && t.ID != "" {
		return t.ID
	}
	if loc := rep.header.Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil && u.Path != "" {
			return u.Path
		}
	}
	return ""
}

// followTask polls a task until it ends, for at most TaskTimeout.
func (c *Client) followTask(ctx context.Context, op, uri string) (*TaskStatus, error) {
	polls := max(int(c.cfg.TaskTimeout/c.cfg.PollInterval), 1)
	var st *TaskStatus
	for i := 0; i <= polls; i++ {
		var t taskModel
		_, err := c.getDoc(ctx, op, uri, &t, isTaskMonitor)
		switch {
		case err == nil:
			st = &TaskStatus{State: string(t.TaskState), Percent: t.PercentComplete}
			for _, m := range t.Messages {
				if m.Message != "" {
					st.Message = strings.TrimSpace(st.Message + " " + m.Message)
				}
			}
		case isStatus(err, http.StatusNotFound):
			mgr, merr := c.manager(ctx, op)
			if merr != nil {
				return st, merr
			}
			gone, gerr := c.vendor.TaskGone(ctx, c, uri, mgr)
			if gerr != nil {
				return st, gerr
			}
			if gone == nil {
				return st, &Error{BMC: c.cfg.Address, Op: op, Path: uri, Err: fmt.Errorf("the task disappeared before it ended: %w", ErrNotApplied)}
			}
			st = gone
		default:
			return st, err
		}
		if done, ok := st.Done(); done {
			if !ok {
				return st, &Error{BMC: c.cfg.Address, Op: op, Path: uri, Err: fmt.Errorf("task ended %s: %s: %w", st.State, st.Message, ErrNotApplied)}
			}
			return st, nil
		}
		c.log.Debug("bmc task running", "task", uri, "state", st.State, "percent", st.Percent)
		if i < polls {
			if err := c.cfg.Sleep(ctx, c.cfg.PollInterval); err != nil {
				return st, &Error{BMC: c.cfg.Address, Op: op, Err: err}
			}
		}
	}
	return st, &Error{BMC: c.cfg.Address, Op: op, Path: uri, Err: fmt.Errorf("task still %s after %s: %w", st.State, c.cfg.TaskTimeout, ErrTimeout)}
}

// multipartFraming builds the bytes around the image of a multipart push, so the body's exact
// length is known up front: BMCs want Content-Length and reject chunked uploads.
func multipartFraming(params []byte, filename string) (head, tail []byte, ctype string, err error) {
	var buf bytes.Buffer
	sw := &switchWriter{w: &buf}
	mw := multipart.NewWriter(sw)
	ph := textproto.MIMEHeader{}
	ph.Set("Content-Disposition", `form-data; name="UpdateParameters"`)
	ph.Set("Content-Type", "application/json")
	pw, err := mw.CreatePart(ph)
	if err != nil {
		return nil, nil, "", err
	}
	if _, err := pw.Write(params); err != nil {
		return nil, nil, "", err
	}
	fh := textproto.MIMEHeader{}
	fh.Set("Content-Disposition", fmt.Sprintf(`form-data; name="UpdateFile"; filename=%q`, filename))
	fh.Set("Content-Type", "application/octet-stream")
	if _, err := mw.CreatePart(fh); err != nil {
		return nil, nil, "", err
	}
	head = append([]byte(nil), buf.Bytes()...)
	var tb bytes.Buffer
	sw.w = &tb
	if err := mw.Close(); err != nil {
		return nil, nil, "", err
	}
	return head, tb.Bytes(), mw.FormDataContentType(), nil
}

type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

func (c *Client) pushMultipart(ctx context.Context, op, uri string, up FirmwareUpdate) (*reply, error) {
	params := map[string]any{"@Redfish.OperationApplyTime": "Immediate"}
	if len(up.Targets) > 0 {
		params["Targets"] = up.Targets
	} else {
		params["Targets"] = []string{}
	}
	pb, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	name := up.Filename
	if name == "" {
		name = "firmware.bin"
	}
	head, tail, ctype, err := multipartFraming(pb, filepath.Base(path.Clean("/"+name)))
	if err != nil {
		return nil, err
	}
	var opened io.Closer
	defer func() {
		if opened != nil {
			opened.Close()
		}
	}()
	body := func() (io.Reader, int64, error) {
		if opened != nil {
			opened.Close()
		}
		img, size, err := up.Image()
		if err != nil {
			return nil, 0, fmt.Errorf("opening the firmware image: %w", err)
		}
		opened = img
		return io.MultiReader(bytes.NewReader(head), io.LimitReader(img, size), bytes.NewReader(tail)), int64(len(head)) + size + int64(len(tail)), nil
	}
	return c.t.do(ctx, &request{op: op, method: http.MethodPost, path: uri, body: body, ctype: ctype, noRetry: true, timeout: c.cfg.TaskTimeout})
}
