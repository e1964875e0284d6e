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
	"slate/dhcp"
	"slate/image"
	"slate/inventory"
	"slate/lifecycle"
	"slate/pxe"
	"slate/redfish"
	"slate/ui"
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
}

// Appliance is a running Slate.
type Appliance struct {
	cfg        Config
	log        *slog.Logger
	Store      *inventory.Store
	Secrets    *inventory.SecretBox
	Lifecycle  *lifecycle.Machines
	Releases   *lifecycle.Releases
	Images     *image.Registry
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
	Registry   *prometheus.Registry
	echo       *echo.Echo

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
	box, err := inventory.LoadOrCreateKey(filepath.Join(cfg.DataDir, "secret.key"))
	if err != nil {
		return nil, err
	}
	store, err := inventory.Open(ctx, filepath.Join(cfg.DataDir, "slate.db"), inventory.Options{Now: o.Now, Synchronous: cfg.Synchronous})
	if err != nil {
		return nil, err
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	a := &Appliance{cfg: cfg, log: o.Logger, Store: store, Secrets: box, Hub: ui.NewHub(), Registry: prometheus.NewRegistry(), version: o.Version}
	a.Lifecycle = lifecycle.New(store, a.Hub)
	a.Lifecycle.SetBMCDialer(func(ctx context.Context, address, user, password, profile, fingerprint string) (lifecycle.BMC, error) {
		return redfish.Dial(ctx, address, user, password, profile, fingerprint, o.Logger.With("bmc", address))
	})
	reg, err := image.NewRegistry(ctx, filepath.Join(cfg.DataDir, "registry"), registryAuth{store}, o.Logger)
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
	if n > 0 {
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
		return fmt.Errorf("create the first admin: %w", err)
	}
	path := filepath.Join(a.cfg.DataDir, "initial-admin-password")
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if generated {
		fmt.Fprintf(o.Out, "Created user admin with password %s (also in %s; change it after first login).\n", pw, path)
	}
	a.log.Info("created the first admin user", "user", "admin", "password_file", path, "generated", generated)
	return nil
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

	a.API = api.New(api.Deps{Store: a.Store, Lifecycle: a.Lifecycle, Releases: a.Releases, Secrets: a.Secrets, Logger: a.log,
		Metrics: a.Registry, Warnings: a.Warnings, TokenTTL: a.cfg.TokenTTL, Subscribe: a.Hub.Subscribe, Registry: registryGC{a.Store, a.Images}})
	pages, err := ui.New(ui.Deps{Store: a.Store, Lifecycle: a.Lifecycle, Releases: a.Releases, Secrets: a.Secrets, Hub: a.Hub, Logger: a.log,
		CSRFKey: a.csrfKey(), Warnings: a.Warnings, Registry: registryGC{a.Store, a.Images}})
	if err != nil {
		return err
	}
	a.pages = pages
	e.HTTPErrorHandler = api.ErrorHandler(a.log, pages.ErrorHTML)
	e.Use(middleware.Recover())
	// Image pushes and boot files are large by nature; everything else is capped at 1 MiB.
	e.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: "1M", Skipper: func(c echo.Context) bool {
		return strings.HasPrefix(c.Request().URL.Path, "/v2/")
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
		if err := a.Store.IntegrityCheck(c.Request().Context()); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
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
// pull) and a machine's agent token pull.
type registryAuth struct{ s *inventory.Store }

func accessOf(role string) image.Access {
	if role == inventory.RoleAdmin || role == inventory.RoleOperator {
		return image.Push
	}
	return image.Pull
}

func (r registryAuth) Basic(ctx context.Context, user, password string) (string, image.Access, error) {
	u, err := r.s.Authenticate(ctx, user, password)
	if err != nil {
		return "", image.NoAccess, err
	}
	return u.Username, accessOf(u.Role), nil
}

func (r registryAuth) Bearer(ctx context.Context, token string) (string, image.Access, error) {
	if u, err := r.s.UserForToken(ctx, token, "api"); err == nil {
		return u.Username, accessOf(u.Role), nil
	}
	id, err := r.s.MachineForAgentToken(ctx, token)
	if err != nil {
		return "", image.NoAccess, err
	}
	return "agent:" + id, image.Pull, nil
}

// Echo is the echo instance behind the API and UI (tests compare its routes with the
// OpenAPI description).
func (a *Appliance) Echo() *echo.Echo { return a.echo }
