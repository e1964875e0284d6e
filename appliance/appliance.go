package appliance

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"slate/api"
	"slate/api/agentapi"
	"slate/authguard"
	"slate/dhcp"
	"slate/image/registry"
	"slate/inventory"
	"slate/lifecycle"
	"slate/pxe"
	"slate/redfish"
	"slate/ui"
	wipecert "slate/wipe/cert"
)

// Options are what cmd/ hands over besides the configuration.
type Options struct {
	Logger *slog.Logger
	// AdminPassword is SLATE_ADMIN_PASSWORD: the first admin's password ("" = generate one).
	AdminPassword string
	// Out receives the one-time notice of a generated admin password.
	Out io.Writer
	// Now is the clock (tests inject one).
	Now func() time.Time
	// Version is Slate's version, put on certificates.
	Version string
	// ReadyProbeEvery is how often /readyz may commit its write probe (0: every 5 s); in
	// between it answers from the last probe, so polling it does not wear the disk.
	ReadyProbeEvery time.Duration
}

// Appliance is a running Slate.
type Appliance struct {
	cfg        Config
	log        *slog.Logger
	Store      *inventory.Store
	Secrets    *inventory.SecretBox
	Lifecycle  *lifecycle.Machines
	Releases   *lifecycle.Releases
	Images     *registry.Registry
	Hub        *ui.Hub
	API        *api.Server
	Reconciler *lifecycle.Reconciler
	boot       *pxe.HTTP
	tftp       *pxe.TFTP
	dhcp       *dhcp.Server
	agent      *agentapi.Handler
	pages      *ui.UI
	certifier  *certifier
	version    string
	probe      *inventory.WriteProbe
	Registry   *prometheus.Registry
	echo       *echo.Echo
	// Guard checks every password (API, UI, registry): one bound, one back-off, one lockout.
	Guard *authguard.Guard
	// ipExtract decides a request's client address (X-Forwarded-For only from trusted_proxies).
	ipExtract echo.IPExtractor

	mu       sync.Mutex
	warnings []string
}

// New opens the data directory and builds every part; nothing listens until Run.
func New(ctx context.Context, cfg Config, o Options) (*Appliance, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w (set data_dir / --data-dir to a writable folder)", cfg.DataDir, err)
	}
	if err := tightenDataDir(cfg.DataDir, cfg.Wipe.KeyDir, o.Logger); err != nil {
		return nil, err
	}
	box, err := inventory.LoadOrCreateKey(filepath.Join(cfg.DataDir, "secret.key"))
	if err != nil {
		return nil, err
	}
	store, err := inventory.Open(ctx, filepath.Join(cfg.DataDir, "slate.db"), inventory.Options{Now: o.Now, Synchronous: cfg.Synchronous, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.ReadyProbeEvery <= 0 {
		o.ReadyProbeEvery = 5 * time.Second
	}
	a := &Appliance{cfg: cfg, log: o.Logger, Store: store, Secrets: box, Hub: ui.NewHub(), Registry: prometheus.NewRegistry(), version: o.Version,
		probe: store.NewWriteProbe(o.ReadyProbeEvery)}
	a.Guard = authguard.New(store, cfg.Login, o.Now, o.Logger)
	a.Guard.OnSuccess = a.afterLogin
	if a.ipExtract, err = ipExtractor(cfg.TrustedProxies); err != nil {
		store.Close()
		return nil, err
	}
	a.Lifecycle = lifecycle.New(store, a.Hub)
	a.Lifecycle.SetBootWindow(cfg.BootExpectWindow)
	// BMCs fetch virtual media ISOs (the deploy ISO under /boot/deploy/) from public_url.
	a.Lifecycle.SetMediaBase(cfg.PublicURL)
	a.Lifecycle.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint, system string) (lifecycle.BMC, error) {
		return redfish.DialSystem(ctx, address, user, password, profile, fingerprint, system, o.Logger) // the client attaches bmc= to its lines itself
	})
	reg, err := registry.NewRegistry(ctx, filepath.Join(cfg.DataDir, "registry"), registryAuth{store, a.Guard}, o.Logger)
	if err != nil {
		store.Close()
		return nil, err
	}
	a.Images = reg
	a.Releases = lifecycle.NewReleases(store, reg, cfg.FourEyes)
	if err := a.bootstrapAdmin(ctx, o); err != nil {
		store.Close()
		return nil, err
	}
	if err := a.buildHTTP(); err != nil {
		store.Close()
		return nil, err
	}
	if err := a.buildServices(); err != nil {
		store.Close()
		return nil, err
	}
	return a, nil
}

// Close releases the store.
func (a *Appliance) Close() error { return a.Store.Close() }

// Handler is the whole HTTP surface (for tests and for Run).
func (a *Appliance) Handler() http.Handler { return a.rootHandler() }

// Warn adds an operational warning shown in the API and UI (e.g. a rogue DHCP server).
func (a *Appliance) Warn(msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.warnings = append(a.warnings, msg)
}

// Warnings returns the current warnings: the ones raised (Warn), then the live ones (a DHCP
// pool nearly exhausted), which go by themselves once the cause is gone.
func (a *Appliance) Warnings() []string {
	a.mu.Lock()
	out := append([]string(nil), a.warnings...)
	a.mu.Unlock()
	if a.dhcp != nil {
		out = append(out, a.dhcp.Warnings()...)
	}
	return out
}

func (a *Appliance) bootstrapAdmin(ctx context.Context, o Options) error {
	n, err := a.Store.CountUsers(ctx)
	if err != nil {
		return err
	}
	path := filepath.Join(a.cfg.DataDir, initialPasswordFile)
	if n > 0 {
		if _, err := os.Stat(path); err == nil {
			a.log.Warn("the initial admin password is still on disk; it is removed at the admin's first login", "password_file", path)
		}
		return nil
	}
	pw := o.AdminPassword
	generated := pw == ""
	if generated {
		b := make([]byte, 15)
		_, _ = rand.Read(b)
		pw = base64.RawURLEncoding.EncodeToString(b)
	}
	if _, err := a.Store.AddUser(ctx, "slate", "admin", pw, inventory.RoleAdmin, "Administrator"); err != nil {
		return fmt.Errorf("create the first admin (password from SLATE_ADMIN_PASSWORD, or unset it to generate one): %w", err)
	}
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if generated {
		fmt.Fprintf(o.Out, "Created user admin with password %s (also in %s until admin's first login, which removes the file; change the password then).\n", pw, path)
	}
	a.log.Info("created the first admin user; the password file is removed at the admin's first login", "user", "admin", "password_file", path, "generated", generated)
	return nil
}

// initialPasswordFile holds the first admin's password until that admin first logs in.
const initialPasswordFile = "initial-admin-password"

// afterLogin removes the initial admin password from disk once the admin has used it: a
// password that sits in a file forever is one more copy to leak (backups, support bundles).
func (a *Appliance) afterLogin(ctx context.Context, u inventory.User, remote, via string) {
	if u.Username != "admin" {
		return
	}
	path := filepath.Join(a.cfg.DataDir, initialPasswordFile)
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		a.log.Error("could not remove the initial admin password file: delete it by hand", "path", path, "err", err)
		return
	}
	a.log.Info("removed the initial admin password file after the admin's first login", "path", path, "remote", remote)
	if err := a.Store.Audit(ctx, "admin", "auth.initial_password_removed", "user:admin", "ok", map[string]any{"path": path, "remote": remote, "via": via}); err != nil {
		a.log.Error("audit: could not record the removal of the initial admin password file", "path", path, "err", err)
	}
}

// ipExtractor believes X-Forwarded-For only from the configured proxies; with none, the TCP
// peer is the client. echo's defaults would trust loopback and private ranges, i.e. anyone
// on the plant segment, so each of those is switched off.
func ipExtractor(proxies []string) (echo.IPExtractor, error) {
	if len(proxies) == 0 {
		return echo.ExtractIPDirect(), nil
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for i, p := range proxies {
		pfx, err := parseProxy(p)
		if err != nil {
			return nil, &FieldError{fmt.Sprintf("trusted_proxies[%d]", i), err.Error()}
		}
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...), nil
}

// tightenDataDir makes the data directory 0700 and the secrets in it 0600 (the database,
// the secret key, the initial admin password, the certificate signing key in keyDir, which
// wipe.key_dir may put elsewhere), fixing what an earlier Slate or a hand-made directory
// left readable by others, and says so in the log.
func tightenDataDir(dir, keyDir string, log *slog.Logger) error {
	if keyDir == "" {
		keyDir = filepath.Join(dir, "keys")
	}
	if err := restrictMode(dir, 0o700, log); err != nil {
		return err
	}
	for _, name := range []string{"secret.key", initialPasswordFile, "slate.db", "slate.db-wal", "slate.db-shm"} {
		if err := restrictMode(filepath.Join(dir, name), 0o600, log); err != nil {
			return err
		}
	}
	for _, d := range []string{keyDir, filepath.Join(dir, "registry")} {
		if err := restrictMode(d, 0o700, log); err != nil {
			return err
		}
	}
	return restrictMode(filepath.Join(keyDir, wipecert.SigningKeyFile), 0o600, log)
}

// restrictMode sets path's permissions to want when group or others have any (a missing
// path or a symlink, e.g. an asset linked in by the packaging, is left alone).
func restrictMode(path string, want os.FileMode, log *slog.Logger) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && fi.Mode()&os.ModeSymlink != 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check the mode of %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil // nobody else can read it (an owner who made it stricter is left alone)
	}
	if err := os.Chmod(path, want); err != nil {
		return fmt.Errorf("restrict %s to mode %v: %w (fix it by hand: chmod %o %s)", path, want, err, want, path)
	}
	log.Warn("restricted a data directory entry that others could read", "path", path, "was", fi.Mode().Perm().String(), "now", want.String())
	return nil
}

// latestFacts is the newest facts document of a machine for its UI page ("" when it was
// never inspected: the page says so; any other error is the store's and is returned).
func (a *Appliance) latestFacts(ctx context.Context, machineID string) (string, error) {
	f, err := a.Store.LatestFacts(ctx, machineID)
	if errors.Is(err, inventory.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(f.Doc), nil
}

func (a *Appliance) csrfKey() []byte {
	// Derived from the data directory's secret key, so open forms survive a restart.
	k, _ := os.ReadFile(filepath.Join(a.cfg.DataDir, "secret.key"))
	m := hmac.New(sha256.New, k)
	m.Write([]byte("slate-csrf"))
	return m.Sum(nil)
}

func (a *Appliance) buildHTTP() error {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slate_http_requests_total", Help: "HTTP requests by route and status."},
		[]string{"method", "route", "status"})
	a.Registry.MustRegister(reqs)
	a.Registry.MustRegister(machinesCollector{a.Store})

	e.IPExtractor = a.ipExtract
	a.API = api.New(api.Deps{Guard: a.Guard, Store: a.Store, Lifecycle: a.Lifecycle, Releases: a.Releases, Secrets: a.Secrets, Logger: a.log,
		Metrics: a.Registry, Warnings: a.Warnings, TokenTTL: a.cfg.TokenTTL, Subscribe: a.Hub.Subscribe, Registry: registryGC{a.Store, a.Images, a.log}})
	pages, err := ui.New(ui.Deps{Guard: a.Guard, Store: a.Store, Lifecycle: a.Lifecycle, Releases: a.Releases, Secrets: a.Secrets, Hub: a.Hub, Logger: a.log,
		CSRFKey: a.csrfKey(), Warnings: a.Warnings, Registry: registryGC{a.Store, a.Images, a.log}, SessionIdle: a.cfg.SessionIdleTimeout,
		Images: a.Images, UploadLimit: a.cfg.ImageUploadLimitMiB << 20,
		Facts: a.latestFacts, LastSeen: a.agentLastSeen})
	if err != nil {
		return err
	}
	a.pages = pages
	a.API.SetDHCP(dhcpView{a})
	a.pages.SetDHCP(dhcpView{a})
	e.HTTPErrorHandler = api.ErrorHandler(a.log, pages.ErrorHTML)
	e.Use(middleware.Recover())
	// Image pushes and boot files are large by nature; everything else is capped at 1 MiB.
	// The releases page's disk image upload is capped by image_upload_limit_mib, in the
	// stream (ui.releaseUpload).
	e.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: "1M", Skipper: func(c echo.Context) bool {
		return strings.HasPrefix(c.Request().URL.Path, "/v2/") || c.Request().URL.Path == "/releases/upload"
	}}))
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			st := c.Response().Status
			reqs.WithLabelValues(c.Request().Method, c.Path(), strconv.Itoa(st)).Inc()
			a.log.Debug("http", "method", c.Request().Method, "path", c.Request().URL.Path, "status", st,
				"duration", time.Since(start), "remote", c.RealIP())
			return nil
		}
	})
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", func(c echo.Context) error {
		ctx := c.Request().Context()
		if err := a.Store.IntegrityCheck(ctx); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		}
		// Reading is not enough: a full disk leaves every read working while each write is
		// lost. A small committed write (rate-limited) says whether Slate can keep records.
		if err := a.probe.Check(ctx); err != nil {
			a.log.Error("not ready: the store cannot write", "disk_full", inventory.IsDiskFull(err), "err", err)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready",
				"reason": "the store cannot write: " + api.StorageDetail(err)})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{})))
	a.API.Mount(e)
	e.Any("/v2", echo.WrapHandler(a.Images))
	e.Any("/v2/*", echo.WrapHandler(a.Images))
	pages.Mount(e)
	a.echo = e
	return nil
}

// Run serves until ctx ends, then shuts down gracefully.
func (a *Appliance) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another Slate running? change listen / --listen)", a.cfg.Listen, err)
	}
	return a.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (a *Appliance) Serve(ctx context.Context, ln net.Listener) error {
	srv := a.cfg.HTTP.Server(a.rootHandler(), streamingRoute)
	ln = a.cfg.HTTP.Listener(ln)
	a.log.Info("slate serving", "listen", ln.Addr().String(), "data_dir", a.cfg.DataDir, "public_url", a.cfg.PublicURL,
		"dhcp_interfaces", len(a.cfg.DHCP.Interfaces), "tftp", a.cfg.Boot.TFTPListen)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	svcCtx, stopSvc := context.WithCancel(ctx)
	defer stopSvc()
	go func() {
		if err := a.runServices(svcCtx); err != nil {
			errc <- err
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// machinesCollector exports machines per lifecycle state.
type machinesCollector struct{ s *inventory.Store }

var machinesDesc = prometheus.NewDesc("slate_machines", "Machines per lifecycle state.", []string{"state"}, nil)

func (m machinesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- machinesDesc }
func (m machinesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := m.s.CountByState(ctx)
	if err != nil {
		return
	}
	for _, st := range lifecycle.States() {
		ch <- prometheus.MustNewConstMetric(machinesDesc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}

// registryAuth lets Slate's users push and pull (operators and admins push; auditors only
// pull), and a machine's agent token pull the image of the install it runs, nothing else.
type registryAuth struct {
	s     *inventory.Store
	guard *authguard.Guard
}

func accessOf(role string) registry.Access {
	if role == inventory.RoleAdmin || role == inventory.RoleOperator {
		return registry.Push
	}
	return registry.Pull
}

func (r registryAuth) Basic(ctx context.Context, user, password, remote string) (registry.Subject, error) {
	u, err := r.guard.Check(ctx, user, password, remote, "registry")
	if err != nil {
		return registry.Subject{}, err
	}
	return registry.Subject{Name: u.Username, Access: accessOf(u.Role)}, nil
}

// Bearer scopes a machine's token by what its machine runs now (lifecycle.RegistryScope):
// asked on every request, so the access ends with the task.
// A deploy environment's token is bound to the address that fetched its boot script: from
// anywhere else it is refused here as on the agent API.
func (r registryAuth) Bearer(ctx context.Context, token, peer string) (registry.Subject, error) {
	if u, err := r.s.UserForToken(ctx, token, "api"); err == nil {
		return registry.Subject{Name: u.Username, Access: accessOf(u.Role)}, nil
	}
	addr, _ := netip.ParseAddr(peer)
	cred, err := r.s.AuthenticateAgentToken(ctx, token, addr.Unmap())
	if err != nil {
		return registry.Subject{}, err
	}
	sub := registry.Subject{Name: cred.Kind + "-token:" + cred.MachineID, Scoped: true}
	running, err := r.s.RunningTasks(ctx, cred.MachineID)
	if err != nil {
		return registry.Subject{}, err
	}
	sub.Images, sub.Why = lifecycle.RegistryScope(cred.Kind, running)
	if len(sub.Images) > 0 {
		sub.Access = registry.Pull
	}
	return sub, nil
}

// AgentEndpoints lists the agent API's endpoints (tests require a case for each).
func (a *Appliance) AgentEndpoints() []string { return a.agent.Endpoints() }

// Echo is the echo instance behind the API and UI (tests compare its routes with the
// OpenAPI description).
func (a *Appliance) Echo() *echo.Echo { return a.echo }

// agentLastSeen is when the machine's agent last called (the machine list's "last seen").
func (a *Appliance) agentLastSeen(machineID string) (time.Time, bool) {
	if a.agent == nil {
		return time.Time{}, false
	}
	s, ok := a.agent.LastSeen(machineID)
	return s.At, ok
}
