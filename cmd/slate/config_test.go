package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigPrecedenceFileEnvFlag(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("listen: \"127.0.0.1:1\"\ndata_dir: /from/file\nlog_level: warn\ntoken_ttl: 2h\npublic_url: http://10.0.0.5:8080/\n"), 0o644)
	cfg, err := loadConfig(p, []string{"SLATE_DATA_DIR=/from/env", "SLATE_LISTEN=127.0.0.1:2", "PATH=/bin", "SLATE_TOKEN=x"},
		map[string]string{"listen": "127.0.0.1:3"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:3" || cfg.DataDir != "/from/env" || cfg.LogLevel != "warn" || cfg.TokenTTL != 2*time.Hour {
		t.Fatalf("precedence wrong: %+v", cfg)
	}
	if cfg.PublicURL != "http://10.0.0.5:8080" {
		t.Fatalf("public_url not normalised: %q", cfg.PublicURL)
	}
	d, err := loadConfig("", nil, nil)
	if err != nil || d.Listen != ":8080" || d.DataDir != "/var/lib/slate" {
		t.Fatalf("defaults: %+v %v", d, err)
	}
	if _, err := loadConfig("", nil, map[string]string{"token_ttl": "forever"}); err == nil || !strings.Contains(err.Error(), "--token-ttl") {
		t.Fatalf("bad flag value: %v", err)
	}
	if _, err := loadConfig(filepath.Join(t.TempDir(), "missing.yaml"), nil, nil); err == nil {
		t.Fatal("a missing config file must stop start-up")
	}
}

// TestConfigLoginAndTrustedProxies: the login limits and trusted proxies are read from the
// file; a bad proxy entry stops start-up naming the key.
func TestConfigLoginAndTrustedProxies(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("trusted_proxies: [10.0.0.0/24, 10.1.0.7]\nlogin:\n  max_concurrent: 2\n  lockout_after: 5\n  backoff_max: 5m\n"), 0o644)
	cfg, err := loadConfig(p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.TrustedProxies) != 2 || cfg.Login.MaxConcurrent != 2 || cfg.Login.LockoutAfter != 5 || cfg.Login.BackoffMax != 5*time.Minute {
		t.Fatalf("login / trusted_proxies not read: %+v %+v", cfg.TrustedProxies, cfg.Login)
	}
	os.WriteFile(p, []byte("trusted_proxies: [\"everyone\"]\n"), 0o644)
	if _, err := loadConfig(p, nil, nil); err == nil || !strings.Contains(err.Error(), "trusted_proxies[0]") {
		t.Fatalf("a bad trusted_proxies entry must stop start-up naming it: %v", err)
	}
}

// TestConfigHTTPLimitsAndNewLeases: the http and dhcp new_leases keys reach the appliance
// configuration, and a bad value names its key.
func TestConfigHTTPLimitsAndNewLeases(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte(`http:
  read_timeout: 20s
  stall_timeout: 45s
  max_connections: 300
dhcp:
  interfaces:
    - name: eth1
      mode: authoritative
      server_address: 10.0.0.1
      pool: {range: 10.0.0.100-10.0.0.199, netmask: 255.255.255.0}
      new_leases: {per_minute: 30, burst: 5, reserve_percent: 10}
`), 0o644)
	cfg, err := loadConfig(p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.HTTP; h.Read != 20*time.Second || h.Stall != 45*time.Second || h.MaxConns != 300 {
		t.Fatalf("http: %+v", h)
	}
	if nl := cfg.DHCP.Interfaces[0].NewLeases; nl.PerMinute != 30 || nl.Burst != 5 || nl.ReservePercent != 10 {
		t.Fatalf("new_leases: %+v", nl)
	}
	os.WriteFile(p, []byte("http:\n  idle_timeout: -5s\n"), 0o644)
	if _, err := loadConfig(p, nil, nil); err == nil || !strings.Contains(err.Error(), "http.idle_timeout") {
		t.Fatalf("bad http value: %v", err)
	}
}
