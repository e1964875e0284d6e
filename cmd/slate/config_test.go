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
