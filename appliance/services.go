package appliance

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slate/internal/clientaddr"
	"strings"
	"time"

	"slate/agent/agentproto"
	"slate/agent/deployenv"
	"slate/api/agentapi"
	"slate/dhcp"
	"slate/inventory"
	"slate/lifecycle"
	"slate/pxe"
	"slate/wipe"
)

// directory is the DHCP server's view of the inventory: machines by MAC, and discovery.
type directory struct {
	store     *inventory.Store
	lifecycle *lifecycle.Machines
	log       *slog.Logger
}

func (d directory) LookupMAC(ctx context.Context, mac net.HardwareAddr) (dhcp.Machine, bool, error) {
	m, err := d.store.MachineByMAC(ctx, mac.String())
	if errors.Is(err, inventory.ErrNotFound) {
		return dhcp.Machine{}, false, nil
	}
	if err != nil {
		return dhcp.Machine{}, false, err
	}
	out := dhcp.Machine{ID: m.ID, State: m.State, Hostname: m.Name}
	if ip, err := netip.ParseAddr(m.Labels["ip"]); err == nil && ip.Is4() {
		out.ReservedIP = ip // a reservation is the machine's "ip" label
	}
	return out, true, nil
}

func (d directory) RecordDiscovered(ctx context.Context, disc dhcp.Discovery) error {
	m, created, err := d.lifecycle.RecordDiscovered(ctx, disc.MAC.String(), disc.Arch, disc.VendorClass, disc.Interface)
	if err == nil && created {
		d.log.Info("discovered a machine", "machine", m.ID, "mac", disc.MAC.String(), "arch", disc.Arch, "interface", disc.Interface)
	}
	return err
}

// DefaultAgentTokenActivation is how long a per-boot token waits for its first use.
const DefaultAgentTokenActivation = 10 * time.Minute

// bootTokens adapts the inventory store to pxe.TokenIssuer: a token only for an expected boot,
// bound to the fetching address (and, with Slate's own DHCP, to the address it leased).
type bootTokens struct {
	store        *inventory.Store
	activation   time.Duration
	requireLease bool
}

func (b bootTokens) IssueBootToken(ctx context.Context, machineID, mac string, src netip.Addr, ttl time.Duration) (string, error) {
	tok, err := b.store.IssueBootToken(ctx, inventory.BootTokenRequest{MachineID: machineID, MAC: mac, Source: src,
		TTL: ttl, Activation: b.activation, RequireLease: b.requireLease})
	var lm *inventory.LeaseMismatchError
	switch {
	case errors.Is(err, inventory.ErrNoBootExpected):
		return "", fmt.Errorf("%w: %v", pxe.ErrNoBootExpected, err)
	case errors.As(err, &lm):
		return "", fmt.Errorf("%w: %v", pxe.ErrSourceNotLeased, err)
	}
	return tok, err
}

// allAuthoritative says whether Slate hands out every boot address itself (each configured
// DHCP interface is authoritative): then a script fetch must come from a leased address.
// With proxy interfaces the plant's DHCP hands out addresses and Slate knows no lease.
func allAuthoritative(c dhcp.Config) bool {
	n := 0
	for _, ic := range c.Interfaces {
		switch ic.Mode {
		case dhcp.ModeAuthoritative:
			n++
		case dhcp.ModeOff:
		default:
			return false
		}
	}
	return n > 0
}

// agentNotifier fans the agent API's events out to the live UI and the reconciler.
type agentNotifier struct{ a *Appliance }

func (n agentNotifier) TaskChanged(machineID, taskID string) { n.a.Hub.MachineChanged(machineID) }
func (n agentNotifier) MachineChanged(machineID string) {
	n.a.Hub.MachineChanged(machineID)
	if n.a.Reconciler != nil {
		n.a.Reconciler.MachineChanged(machineID)
	}
}

// buildServices prepares DHCP, TFTP, HTTP boot, the agent API and the reconciler.
func (a *Appliance) buildServices() error {
	bootCfg := a.cfg.Boot
	bootCfg.DataDir = a.cfg.DataDir
	if bootCfg.PublicURL == "" {
		bootCfg.PublicURL = a.cfg.PublicURL
	}
	activation := a.cfg.AgentTokenActivation
	if activation <= 0 {
		activation = DefaultAgentTokenActivation
	}
	issuer := bootTokens{store: a.Store, activation: activation, requireLease: allAuthoritative(a.cfg.DHCP)}
	boot, err := pxe.NewHTTP(bootCfg, lifecyclePlanner{machines: a.Store}, issuer, a.log.With("service", "boot"))
	if err != nil {
		return fmt.Errorf("boot configuration: %w", err)
	}
	a.boot = boot
	deDir := bootCfg.DeployEnv
	if deDir == "" {
		deDir = filepath.Join(a.cfg.DataDir, "deployenv")
	}
	// An insert of the deploy ISO whose file is missing would reach the BMC and come back as
	// its obscure fetch error: say what to build instead.
	a.Lifecycle.SetDeployISOCheck(func() error {
		st, err := os.Stat(filepath.Join(deDir, pxe.DeployISO))
		if err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("the deploy ISO is missing (%s not found in %s): run make deploy-iso DEPLOYENV_INSTALL=%s on the Slate host", pxe.DeployISO, deDir, deDir)
		}
		return nil
	})
	if _, err := deployenv.Check(deDir); err != nil {
		// Machines can still be enrolled and driven over Redfish; say what to do.
		a.log.Warn("deploy environment missing", "dir", deDir, "err", err)
		a.Warn("The deploy environment is missing, so machines cannot be inspected, installed or wiped: " + err.Error())
	}
	if a.cfg.Boot.TFTPListen != "" {
		t, err := pxe.NewTFTP(bootCfg, a.log.With("service", "tftp"))
		if err != nil {
			return fmt.Errorf("tftp configuration: %w", err)
		}
		a.tftp = t
	}
	cert, err := newCertifier(a.cfg.Wipe, a.cfg.DataDir, a.version, a.Store)
	if err != nil {
		return err
	}
	a.certifier = cert
	policy, err := loadWipePolicy(a.cfg.Wipe)
	if err != nil {
		return err
	}
	a.agent = agentapi.New(a.Store, agentapi.Options{Log: a.log.With("service", "agent-api"), Notify: agentNotifier{a},
		Lifecycle: lifecycle.TaskHook{Certifier: cert, WipePolicy: policy}})
	a.Reconciler = lifecycle.NewReconciler(a.Store, a.Lifecycle, a.Secrets, a.log.With("service", "reconciler"), a.cfg.ReconcileInterval)
	a.Reconciler.AutoEnrollMACPrefixes = a.cfg.AutoEnrollMACPrefixes
	a.Reconciler.AutoEnrollRules = a.cfg.AutoEnroll
	a.Reconciler.BootTimeout, a.Reconciler.BootRetries = a.cfg.BootTimeout, a.cfg.BootRetries
	a.Reconciler.AutoConfirmWipe = a.cfg.Wipe.AutoConfirm
	a.Reconciler.MaxInstalls, a.Reconciler.MaxWipes = a.cfg.MaxConcurrentInstalls, a.cfg.MaxConcurrentWipes
	if a.cfg.PublicURL != "" {
		// The install task fetches the image from this Slate: machines need its public URL.
		a.Reconciler.Installer = &lifecycle.Installer{Releases: a.Store, Images: a.Images, PublicURL: a.cfg.PublicURL}
	} else {
		// Not guessed from the listen address: ":8080" names no address a machine can reach,
		// and on a multi-homed appliance the wrong guess would send installs nowhere.
		a.Lifecycle.SetInstallsUnavailable("public_url is not set, so machines could not fetch the release's image: " +
			"set public_url (how machines reach this Slate, e.g. http://10.0.0.5:8080) in the config or SLATE_PUBLIC_URL, and restart Slate")
	}
	a.Reconciler.Woken = a.agent.Wake
	a.API.SetWhy(a.Reconciler.Why)
	a.API.SetDecommission(decommissioner{a.Reconciler, cert})
	a.pages.SetServices(a.Reconciler.Why, decommissioner{a.Reconciler, cert})
	a.API.SetTaskQueued(a.agent.Wake)
	if len(a.cfg.DHCP.Interfaces) > 0 {
		for i := range a.cfg.DHCP.Interfaces {
			// Boot URLs default to Slate's public URL.
			if a.cfg.DHCP.Interfaces[i].Boot.URL == "" {
				a.cfg.DHCP.Interfaces[i].Boot.URL = a.cfg.PublicURL
			}
		}
		d, err := dhcp.New(a.cfg.DHCP, dhcp.Options{Store: DHCPLeases{a.Store}, Directory: directory{a.Store, a.Lifecycle, a.log},
			Logger: a.log.With("service", "dhcp"), Registerer: a.Registry})
		if err != nil {
			return err
		}
		a.dhcp = d
	}
	return nil
}

// rootHandler puts the boot files and the agent API on a plain mux (the boot files need the
// raw ResponseWriter for sendfile), and everything else on echo.
func (a *Appliance) rootHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/boot/", a.boot)
	mux.Handle("/agent/", a.agent)
	mux.Handle("/", a.echo)
	// Every handler (boot files, agent API, registry) logs the same client address echo
	// audits, decided once here.
	return clientaddr.Handler(clientaddr.Extractor(a.ipExtract), mux)
}

// streamingRoute says which requests may run long as long as bytes keep moving (see
// internal/httplimit): boot files (the deploy kernel and initrd), registry blob pulls and
// pushes, the event streams, and the agent's long-poll. Every other route has the whole-request
// read and write timeouts.
func streamingRoute(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, "/boot/") || p == "/v2" || strings.HasPrefix(p, "/v2/") ||
		p == "/api/v1/events" || p == "/ui/events" || p == agentproto.PathPrefix+"/tasks/next"
}

// runServices starts the network services and the reconciler; it returns when ctx ends or a
// service fails to start.
func (a *Appliance) runServices(ctx context.Context) error {
	errc := make(chan error, 3)
	n := 0
	if a.dhcp != nil {
		n++
		go func() { errc <- a.dhcp.Run(ctx) }()
	}
	if a.tftp != nil {
		n++
		go func() { errc <- a.tftp.Run(ctx) }()
	}
	go a.Reconciler.Run(ctx)
	go a.rogueWarnings(ctx)
	for range n {
		select {
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// rogueWarnings turns DHCP servers seen on Slate's segments into UI/API warnings.
func (a *Appliance) rogueWarnings(ctx context.Context) {
	if a.dhcp == nil {
		return
	}
	seen := map[string]bool{}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		for _, r := range a.dhcp.RogueServers() {
			key := fmt.Sprintf("%v", r)
			if !seen[key] {
				seen[key] = true
				a.Warn("Another DHCP server answers on this segment: " + strings.Trim(key, "{}") + " — machines may get addresses from it instead of Slate.")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// decommissioner joins the reconciler's confirmation and the certifier's key for the API.
type decommissioner struct {
	*lifecycle.Reconciler
	c *certifier
}

func (d decommissioner) PublicKey() ed25519.PublicKey { return d.c.PublicKey() }

// DefaultPerson is the configured person a confirmation starts from.
func (d decommissioner) DefaultPerson() wipe.Person { return d.c.DefaultPerson() }
