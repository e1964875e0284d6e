// Package redfish is Slate's out-of-band control of a machine through its BMC: power, one-time
// boot override, virtual media, BIOS profiles, firmware inventory and updates, and the
// inventory that matches a machine enrolled by BMC address to the one DHCP sees.
//
// Resources are decoded into github.com/stmcginnis/gofish models; the wire (TLS pinning,
// sessions, per-call timeouts, bounded retries, reply checks) is this package's, because
// gofish binds one context per connection and neither pins certificates nor logs in again.
// Vendor differences are Vendor profiles (vendor.go), never conditionals in the operations.
package redfish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config is what Slate stores for one BMC, plus tuning that tests shorten.
type Config struct {
	// Address is host, host:port or https://host[:port]; http:// only for lab emulators.
	Address  string
	Username string
	Password string
	// Vendor is the quirk profile; nil detects it from the service root.
	Vendor Vendor
	// System picks the computer system by its URI or id where the service has several (blade
	// chassis, multi-node servers); empty lets the vendor profile pick (the first one).
	System string
	// Fingerprint is the pinned certificate ("sha256:<hex>"); empty means trust on first use:
	// read Client.Fingerprint after Connect and store it with the BMC.
	Fingerprint string

	Timeout           time.Duration // one HTTP attempt (default 20s)
	Retries           int           // extra attempts on transient failures (default 3; -1 for none)
	RetryBackoff      time.Duration // first pause between attempts, doubling (default 1s)
	PowerOffGrace     time.Duration // graceful shutdown wait before ForceOff (default 5m)
	PowerWait         time.Duration // wait for a forced power change to show (default 2m)
	TaskTimeout       time.Duration // firmware update task wait (default 45m)
	BIOSVerifyTimeout time.Duration // wait for BIOS settings to show after a reset (default 20m)
	PollInterval      time.Duration // state, task and BIOS polling (default 5s)
	// Sleep waits d or until ctx ends; tests inject a fast one.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
}

func (c *Config) defaults() {
	set := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	set(&c.Timeout, 20*time.Second)
	set(&c.RetryBackoff, time.Second)
	set(&c.PowerOffGrace, 5*time.Minute)
	set(&c.PowerWait, 2*time.Minute)
	set(&c.TaskTimeout, 45*time.Minute)
	set(&c.BIOSVerifyTimeout, 20*time.Minute)
	set(&c.PollInterval, 5*time.Second)
	switch {
	case c.Retries == 0:
		c.Retries = 3
	case c.Retries < 0:
		c.Retries = 0
	}
	if c.Sleep == nil {
		c.Sleep = sleepCtx
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Client controls one BMC. It is safe for concurrent use; operations on the same machine
// should still be serialized by the caller (a BMC does one reset at a time).
type Client struct {
	cfg    Config
	t      *transport
	vendor Vendor
	log    *slog.Logger

	root        []byte
	systemURI   string
	systemsURI  string // the service root's Systems collection
	managersURI string // the service root's Managers collection ("" when it links none)
	updateURI   string

	mgrMu      sync.Mutex
	managerURI string // found on first use by manager(); "" until then
}

// Controller is everything Slate does through a BMC; *Client implements it. Consumers should
// declare the smaller interface they use (see docs/redfish.md for lifecycle/'s).
type Controller interface {
	PowerState(ctx context.Context) (PowerState, error)
	PowerOn(ctx context.Context) error
	PowerOff(ctx context.Context) error
	PowerCycle(ctx context.Context) error
	SetBootOnce(ctx context.Context, o BootOverride) error
	BootOnceNow(ctx context.Context, o BootOverride) error
	ClearBootOverride(ctx context.Context) error
	InsertMedia(ctx context.Context, image string) error
	EjectMedia(ctx context.Context) error
	BIOSAttributes(ctx context.Context) (map[string]any, error)
	DiffBIOS(ctx context.Context, p BIOSProfile) (BIOSDiff, error)
	StageBIOS(ctx context.Context, p BIOSProfile) (BIOSResult, error)
	VerifyBIOS(ctx context.Context, p BIOSProfile) (BIOSResult, error)
	ApplyBIOS(ctx context.Context, p BIOSProfile) (BIOSResult, error)
	ResetBIOSDefaults(ctx context.Context) error
	Firmware(ctx context.Context) ([]Firmware, error)
	UpdateFirmware(ctx context.Context, u FirmwareUpdate) (FirmwareResult, error)
	PlanFirmware(ctx context.Context, b FirmwareBaseline) ([]FirmwareStep, error)
	Inventory(ctx context.Context) (Inventory, error)
	Fingerprint() string
	Close(ctx context.Context) error
}

var _ Controller = (*Client)(nil)

// Dial is Connect from what Slate stores with a BMC (inventory's bmcs row): address,
// credentials, vendor profile name ("", "auto", "generic", "dell", …) and pinned fingerprint
// ("" on first use: store Client.Fingerprint() afterwards), with default tuning.
func Dial(ctx context.Context, address, username, password, vendorProfile, fingerprint string, log *slog.Logger) (*Client, error) {
	return DialSystem(ctx, address, username, password, vendorProfile, fingerprint, "", log)
}

// DialSystem is Dial for one computer system behind the BMC (its id or URI; "" lets the
// vendor profile pick), as stored with a machine of a blade chassis.
func DialSystem(ctx context.Context, address, username, password, vendorProfile, fingerprint, system string, log *slog.Logger) (*Client, error) {
	v, err := VendorByName(vendorProfile)
	if err != nil {
		return nil, &Error{BMC: address, Op: "connect", Err: err, Hint: "fix the BMC's vendor profile"}
	}
	return Connect(ctx, Config{Address: address, Username: username, Password: password, Vendor: v, Fingerprint: fingerprint, System: system, Logger: log})
}

func baseURL(addr string) (string, error) {
	a := strings.TrimSpace(addr)
	if a == "" {
		return "", errors.New("no BMC address given")
	}
	if !strings.Contains(a, "://") {
		a = "https://" + a
	}
	u, err := url.Parse(a)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("BMC address %q is not host[:port] or https://host[:port]", addr)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Connect reads the service root (pinning or checking the certificate), logs in (a session,
// or Basic auth where the BMC has no session service), picks the vendor profile and finds the
// system and manager. Close it when done: it deletes the session.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	cfg.defaults()
	base, err := baseURL(cfg.Address)
	if err != nil {
		return nil, &Error{BMC: cfg.Address, Op: "connect", Err: err, Hint: "fix the BMC address"}
	}
	log := cfg.Logger.With("bmc", cfg.Address)
	t := newTransport(cfg.Address, base, cfg.Username, cfg.Password, cfg.Fingerprint, cfg.Timeout, cfg.Retries, cfg.RetryBackoff, cfg.Sleep, log)
	c := &Client{cfg: cfg, t: t, log: log}

	rep, err := t.do(ctx, &request{op: "connect", method: http.MethodGet, path: "/redfish/v1/", noAuth: true})
	if err != nil {
		return nil, err
	}
	if err := checkDocument("/redfish/v1/", rep.body); err != nil {
		return nil, &Error{BMC: cfg.Address, Op: "connect", Method: http.MethodGet, Path: "/redfish/v1/", Err: err}
	}
	c.root = rep.body
	var root struct {
		Systems, Managers, UpdateService, SessionService link
		Links                                            struct{ Sessions link }
	}
	if _, err := decodeTolerant(rep.body, &root); err != nil {
		return nil, &Error{BMC: cfg.Address, Op: "connect", Err: fmt.Errorf("service root: %v: %w", err, ErrBadReply)}
	}
	sessions := root.Links.Sessions.ID
	if sessions == "" && root.SessionService.ID != "" {
		sessions = strings.TrimRight(root.SessionService.ID, "/") + "/Sessions"
	}
	t.sessionsURI = sessions
	if err := t.login(ctx); err != nil {
		return nil, err
	}
	c.vendor = cfg.Vendor
	if c.vendor == nil {
		c.vendor = detectVendor(rep.body)
		log.Info("bmc vendor profile detected", "vendor", c.vendor.Name())
	}
	ok := false
	defer func() {
		if !ok {
			_ = t.logout(context.WithoutCancel(ctx))
		}
	}()
	systems, err := c.members(ctx, "connect", root.Systems.ID)
	if err != nil {
		return nil, err
	}
	c.systemsURI = root.Systems.ID
	c.systemURI = c.vendor.PickSystem(systems)
	if c.systemURI == "" {
		return nil, &Error{BMC: cfg.Address, Op: "connect", Err: fmt.Errorf("the BMC lists no computer system: %w", ErrUnsupported)}
	}
	if want := strings.TrimRight(cfg.System, "/"); want != "" {
		i := slices.IndexFunc(systems, func(s string) bool {
			s = strings.TrimRight(s, "/")
			return s == want || path.Base(s) == want
		})
		if i < 0 {
			return nil, &Error{BMC: cfg.Address, Op: "connect", Err: fmt.Errorf("the BMC has no computer system %q (it has %v): %w", cfg.System, systems, ErrUnsupported),
				Hint: "give one of the listed systems"}
		}
		c.systemURI = systems[i]
	}
	// The manager is looked up where it is needed (virtual media, BMC firmware and MACs, vendor
	// jobs), not here: some BMCs (a Supermicro X12 capture) have no Managers collection, and
	// power, boot and probe do not need one.
	c.managersURI = root.Managers.ID
	c.updateURI = root.UpdateService.ID
	ok = true
	return c, nil
}

// Fingerprint is the certificate fingerprint this client holds the BMC to: the pinned one, or
// the one seen on first use (store it with the BMC). Empty for plain HTTP.
func (c *Client) Fingerprint() string {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	return c.t.pinned
}

// Vendor is the profile in use (detected or configured).
func (c *Client) Vendor() Vendor { return c.vendor }

// Address is the BMC address as configured.
func (c *Client) Address() string { return c.cfg.Address }

// SystemURI is the computer system this client controls.
func (c *Client) SystemURI() string { return c.systemURI }

// Close deletes the session.
func (c *Client) Close(ctx context.Context) error { return c.t.logout(ctx) }

// manager finds the BMC's manager resource on first use. A BMC without a Managers collection
// (or one that answers 404 for it) has none: "" and no error, so callers treat the manager's
// extras as absent; other failures are returned.
func (c *Client) manager(ctx context.Context, op string) (string, error) {
	c.mgrMu.Lock()
	defer c.mgrMu.Unlock()
	if c.managerURI != "" || c.managersURI == "" {
		return c.managerURI, nil
	}
	managers, err := c.members(ctx, op, c.managersURI)
	if isStatus(err, http.StatusNotFound) {
		c.log.Info("bmc lists a Managers collection that is not there; going on without the manager", "op", op, "path", c.managersURI)
		c.managersURI = ""
		return "", nil
	}
	if err != nil {
		return "", err
	}
	c.managerURI = c.vendor.PickManager(managers)
	return c.managerURI, nil
}

type link struct {
	ID string `json:"@odata.id"`
}

func (c *Client) errf(op string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{BMC: c.cfg.Address, Op: op, Err: err}
}

// get reads a resource into v after checking the reply; it returns the ETag.
func (c *Client) get(ctx context.Context, op, uri string, v any) (string, error) {
	return c.getDoc(ctx, op, uri, v, nil)
}

// isTaskMonitor accepts a Task under a task monitor's URI: a monitor answers with the task it
// watches, whose @odata.id is the task's, not the monitor's.
func isTaskMonitor(asked, got string) bool {
	monitor := strings.HasSuffix(strings.TrimRight(asked, "/"), "/Monitor") || strings.Contains(asked, "/TaskMonitors/")
	return monitor && strings.Contains(got, "/TaskService/Tasks/")
}

// getDoc is get with a rule for replies that name another resource on purpose.
func (c *Client) getDoc(ctx context.Context, op, uri string, v any, allow func(asked, got string) bool) (string, error) {
	if uri == "" {
		return "", &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC does not link this resource: %w", ErrUnsupported)}
	}
	rep, err := c.t.do(ctx, &request{op: op, method: http.MethodGet, path: uri})
	if err != nil {
		return "", err
	}
	if err := checkDocumentAllow(uri, rep.body, allow); err != nil {
		c.log.Warn("bad reply from bmc", "op", op, "path", uri, "err", err)
		return "", &Error{BMC: c.cfg.Address, Op: op, Method: http.MethodGet, Path: uri, Err: err}
	}
	if err := c.decode(op, uri, rep.body, v); err != nil {
		return "", err
	}
	return rep.header.Get("ETag"), nil
}

// decode is decodeTolerant with the skipped property logged: a newer schema that re-typed a
// property Slate models must not make the resource unusable, but it should be visible.
func (c *Client) decode(op, uri string, b []byte, v any) error {
	skipped, err := decodeTolerant(b, v)
	if err != nil {
		return &Error{BMC: c.cfg.Address, Op: op, Method: http.MethodGet, Path: uri, Err: fmt.Errorf("decoding: %v: %w", err, ErrBadReply)}
	}
	if skipped != "" {
		c.log.Debug("bmc property in an unexpected shape left empty", "op", op, "path", uri, "property", skipped)
	}
	return nil
}

// GetJSON reads a resource for vendor hooks.
func (c *Client) GetJSON(ctx context.Context, uri string, v any) error {
	_, err := c.get(ctx, "read "+uri, uri, v)
	return err
}

func (c *Client) members(ctx context.Context, op, uri string) ([]string, error) {
	var out []string
	for page := 0; uri != "" && page < 100; page++ {
		var coll struct {
			Members  []link
			NextLink string `json:"Members@odata.nextLink"`
		}
		if _, err := c.get(ctx, op, uri, &coll); err != nil {
			return nil, err
		}
		for _, m := range coll.Members {
			if m.ID != "" {
				out = append(out, m.ID)
			}
		}
		uri = coll.NextLink
	}
	return out, nil
}

func (c *Client) send(ctx context.Context, op, method, uri string, body any, etag string) (*reply, error) {
	b, err := jsonBody(body)
	if err != nil {
		return nil, &Error{BMC: c.cfg.Address, Op: op, Err: err}
	}
	rq := &request{op: op, method: method, path: uri, body: b}
	if etag != "" {
		rq.header = map[string]string{"If-Match": etag}
	}
	if method == http.MethodPost {
		rq.noRetry = true
	}
	return c.t.do(ctx, rq)
}

// patch PATCHes with If-Match from a fresh read; on 412 (the resource changed in between) it
// reads again and retries once.
func (c *Client) patch(ctx context.Context, op, uri string, body any) error {
	var e *Error
	for try := 0; try < 2; try++ {
		var doc map[string]any
		etag, err := c.get(ctx, op, uri, &doc)
		if err != nil {
			return err
		}
		_, err = c.send(ctx, op, http.MethodPatch, uri, body, etag)
		if err == nil {
			return nil
		}
		if !errors.As(err, &e) || e.Status != http.StatusPreconditionFailed {
			return err
		}
		c.log.Info("bmc resource changed under a PATCH, reading it again", "op", op, "path", uri)
	}
	return e
}

// post sends an action (never retried blindly: it may have taken effect).
func (c *Client) post(ctx context.Context, op, uri string, body any) (*reply, error) {
	if uri == "" {
		return nil, &Error{BMC: c.cfg.Address, Op: op, Err: fmt.Errorf("the BMC offers no such action: %w", ErrUnsupported)}
	}
	return c.send(ctx, op, http.MethodPost, uri, body, "")
}

func isStatus(err error, status ...int) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	for _, s := range status {
		if e.Status == s {
			return true
		}
	}
	return false
}
