// Package appliance assembles Slate from its parts: it opens the store, creates the first
// admin, builds the HTTP server (API, UI, boot files, agent API, metrics) and starts the
// network services the configuration names. cmd/slate only reads the configuration.
package appliance

import (
	"fmt"
	"net/netip"
	"slate/authguard"
	"slate/lifecycle"

	"net"
	"net/url"
	"slate/dhcp"
	"slate/internal/httplimit"
	"slate/pxe"
	"strings"
	"time"
)

// Config is the whole appliance configuration (YAML file, SLATE_* environment, flags).
type Config struct {
	// Listen is the HTTP address of the API, UI and boot files.
	Listen string `yaml:"listen"`
	// DataDir holds the database, keys, deploy environment and artifacts.
	DataDir string `yaml:"data_dir"`
	// PublicURL is how machines and browsers reach this Slate (used in boot scripts).
	PublicURL string `yaml:"public_url"`
	// LogFormat is text or json; LogLevel is debug, info, warn or error.
	LogFormat string `yaml:"log_format"`
	LogLevel  string `yaml:"log_level"`
	// TokenTTL is the lifetime of API tokens.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// SessionIdleTimeout ends a web UI session not used for this long (besides its 12 h
	// lifetime): a browser left open on a shared plant terminal does not stay logged in.
	SessionIdleTimeout time.Duration `yaml:"session_idle_timeout"`
	// ImageUploadLimitMiB caps one disk image uploaded through the web UI's releases page
	// (default 65536, 64 GiB): the upload streams into the registry, so the cap protects the
	// data disk, not memory. `slate registry push-disk` is not capped.
	ImageUploadLimitMiB int64 `yaml:"image_upload_limit_mib"`
	// Synchronous is SQLite's durability level: FULL (default) or NORMAL.
	Synchronous string `yaml:"synchronous"`
	// FourEyes requires a release to be approved by someone other than its author.
	FourEyes bool `yaml:"four_eyes"`
	// DHCP names the interfaces Slate answers DHCP on (none by default: Slate never answers
	// on a network nobody pointed it at).
	DHCP dhcp.Config `yaml:"dhcp"`
	// Boot configures TFTP (off unless boot.tftp_listen is set) and HTTP boot.
	Boot pxe.Config `yaml:"boot"`
	// AutoEnrollMACPrefixes enrolls discovered machines whose MAC starts with one of these.
	AutoEnrollMACPrefixes []string `yaml:"auto_enroll_mac_prefixes"`
	// Wipe configures decommissioning: the signing key, pre-approved wipes, certificate fields.
	Wipe WipeConfig `yaml:"wipe"`
	// MaxConcurrentInstalls and MaxConcurrentWipes bound installs and pre-approved wipes
	// running at once (0: no limit).
	MaxConcurrentInstalls int `yaml:"max_concurrent_installs"`
	MaxConcurrentWipes    int `yaml:"max_concurrent_wipes"`
	// ReconcileInterval is how often every machine is looked at (changes also wake it).
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	// AutoEnroll enrolls a discovered machine whose inspected DMI fields match a rule.
	AutoEnroll []lifecycle.AutoEnrollRule `yaml:"auto_enroll"`
	// BootTimeout is how long a queued task waits for a BMC machine to take it before Slate
	// powers it into a network boot again (the wait doubles), BootRetries how often.
	BootTimeout time.Duration `yaml:"boot_timeout"`
	BootRetries int           `yaml:"boot_retries"`
	// BootExpectWindow is how long a network boot Slate started (BMC power-on, queued reboot)
	// or a technician announced stays expected: only an expected boot's script fetch gets an
	// agent token (default 15m).
	BootExpectWindow time.Duration `yaml:"boot_expect_window"`
	// AgentTokenActivation is how long a per-boot agent token waits for the deploy
	// environment's first call before it dies unused (default 10m); once used it lives
	// boot.agent_token_ttl from its issue.
	AgentTokenActivation time.Duration `yaml:"agent_token_activation"`
	// TrustedProxies are the addresses (CIDRs or single IPs) of reverse proxies whose
	// X-Forwarded-For / X-Real-IP Slate believes. None by default: the TCP peer is the client,
	// so nobody on the segment can put an address of their choosing into the audit log.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Login bounds password checking: concurrent argon2 hashes, back-off, lockout.
	Login authguard.Config `yaml:"login"`
	// HTTP bounds slow, idle and too many clients of the HTTP server (timeouts per route,
	// a minimum-progress rule for downloads, uploads and streams, a connection cap).
	HTTP httplimit.Limits `yaml:"http"`
}

// Defaults returns the configuration with nothing set by the operator.
func Defaults() Config {
	return Config{Listen: ":8080", DataDir: "/var/lib/slate", LogFormat: "text", LogLevel: "info", TokenTTL: 12 * time.Hour, SessionIdleTimeout: 30 * time.Minute, Synchronous: "FULL"}
}

// FieldError names the configuration key that is wrong.
type FieldError struct {
	Key, Problem string
}

func (e *FieldError) Error() string { return fmt.Sprintf("configuration key %s: %s", e.Key, e.Problem) }

// Validate checks every field and names the first bad one.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return &FieldError{"listen", fmt.Sprintf("%q is not host:port (e.g. :8080 or 10.0.0.5:8080)", c.Listen)}
	}
	if c.DataDir == "" {
		return &FieldError{"data_dir", "must not be empty"}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{"public_url", fmt.Sprintf("%q is not an http(s) URL like http://10.0.0.5:8080", c.PublicURL)}
		}
		c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return &FieldError{"log_format", fmt.Sprintf("%q must be text or json", c.LogFormat)}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &FieldError{"log_level", fmt.Sprintf("%q must be debug, info, warn or error", c.LogLevel)}
	}
	if c.TokenTTL < time.Minute || c.TokenTTL > 30*24*time.Hour {
		return &FieldError{"token_ttl", fmt.Sprintf("%s must be between 1m and 720h", c.TokenTTL)}
	}
	if c.SessionIdleTimeout == 0 {
		c.SessionIdleTimeout = 30 * time.Minute
	}
	if c.SessionIdleTimeout < time.Minute || c.SessionIdleTimeout > 12*time.Hour {
		return &FieldError{"session_idle_timeout", fmt.Sprintf("%s must be between 1m and 12h", c.SessionIdleTimeout)}
	}
	if c.ImageUploadLimitMiB == 0 {
		c.ImageUploadLimitMiB = 65536
	}
	if c.ImageUploadLimitMiB < 1 || c.ImageUploadLimitMiB > 16<<20 {
		return &FieldError{"image_upload_limit_mib", fmt.Sprintf("%d must be between 1 and 16777216 (MiB)", c.ImageUploadLimitMiB)}
	}
	for i, p := range c.AutoEnrollMACPrefixes {
		p = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(p), "-", ":"))
		if p == "" || strings.Trim(p, "0123456789abcdef:") != "" {
			return &FieldError{"auto_enroll_mac_prefixes", fmt.Sprintf("%q is not a MAC prefix like 52:54:00", c.AutoEnrollMACPrefixes[i])}
		}
		c.AutoEnrollMACPrefixes[i] = p
	}
	if c.MaxConcurrentInstalls < 0 || c.MaxConcurrentWipes < 0 {
		return &FieldError{"max_concurrent_installs", "limits cannot be negative (0 means no limit)"}
	}
	for i, r := range c.AutoEnroll {
		if err := r.Validate(); err != nil {
			return &FieldError{fmt.Sprintf("auto_enroll[%d]", i), err.Error()}
		}
	}
	if c.BootTimeout != 0 && (c.BootTimeout < time.Minute || c.BootTimeout > 24*time.Hour) {
		return &FieldError{"boot_timeout", fmt.Sprintf("%s must be between 1m and 24h", c.BootTimeout)}
	}
	if c.BootRetries < 0 || c.BootRetries > 20 {
		return &FieldError{"boot_retries", fmt.Sprintf("%d must be between 0 (default 3) and 20", c.BootRetries)}
	}
	if c.BootExpectWindow != 0 && (c.BootExpectWindow < time.Minute || c.BootExpectWindow > 24*time.Hour) {
		return &FieldError{"boot_expect_window", fmt.Sprintf("%s must be between 1m and 24h (0: 15m)", c.BootExpectWindow)}
	}
	if c.AgentTokenActivation != 0 && (c.AgentTokenActivation < time.Minute || c.AgentTokenActivation > 2*time.Hour) {
		return &FieldError{"agent_token_activation", fmt.Sprintf("%s must be between 1m and 2h (0: 10m)", c.AgentTokenActivation)}
	}
	if c.ReconcileInterval != 0 && (c.ReconcileInterval < 100*time.Millisecond || c.ReconcileInterval > time.Hour) {
		return &FieldError{"reconcile_interval", fmt.Sprintf("%s must be between 100ms and 1h", c.ReconcileInterval)}
	}
	for i, p := range c.TrustedProxies {
		if _, err := parseProxy(p); err != nil {
			return &FieldError{fmt.Sprintf("trusted_proxies[%d]", i), err.Error()}
		}
	}
	if err := c.Login.Validate(); err != nil {
		return &FieldError{"login", err.Error()}
	}
	if err := c.HTTP.Validate(); err != nil {
		key, problem, _ := strings.Cut(err.Error(), ": ")
		return &FieldError{key, problem}
	}
	switch strings.ToUpper(c.Synchronous) {
	case "FULL", "NORMAL", "EXTRA":
		c.Synchronous = strings.ToUpper(c.Synchronous)
	default:
		return &FieldError{"synchronous", fmt.Sprintf("%q must be FULL, NORMAL or EXTRA", c.Synchronous)}
	}
	return nil
}

// parseProxy reads a trusted_proxies entry: a CIDR (10.0.0.0/24) or one address (10.0.0.7).
func parseProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR like 10.0.0.0/24 nor an address like 10.0.0.7", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
