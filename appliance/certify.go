package appliance

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"slate/inventory"
	"slate/wipe"
	wipecert "slate/wipe/cert"
)

// WipeConfig is the decommissioning part of the configuration.
type WipeConfig struct {
	// KeyDir holds the appliance's Ed25519 signing key (default <data_dir>/keys).
	KeyDir string `yaml:"key_dir"`
	// AutoConfirm confirms runnable wipe plans without a technician (a pre-approved policy).
	AutoConfirm bool `yaml:"auto_confirm"`
	// CertificateFile is a JSON file with the certificate fields no drive can tell (NIST SP
	// 800-88 Appendix G: person, organisation, destination, classification, …).
	CertificateFile string `yaml:"certificate_file"`
	// PolicyFile is a JSON wipe.Policy (minimum level per media type, verification, pattern,
	// purge methods); empty: wipe.DefaultPolicy(). Slate plans every wipe with it: the agent
	// only reports drives and what they can do.
	PolicyFile string `yaml:"policy_file"`
}

// loadWipePolicy reads wipe.policy_file (nil: the default policy).
func loadWipePolicy(cfg WipeConfig) (*wipe.Policy, error) {
	if cfg.PolicyFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(cfg.PolicyFile)
	if err != nil {
		return nil, fmt.Errorf("wipe.policy_file: %w", err)
	}
	p := wipe.DefaultPolicy()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("wipe.policy_file %s: %w", cfg.PolicyFile, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("wipe.policy_file %s: %w (fix the file; Slate will not plan wipes with it)", cfg.PolicyFile, err)
	}
	return &p, nil
}

// certifier signs certificates with the appliance's key; the key never leaves the appliance.
type certifier struct {
	key     ed25519.PrivateKey
	meta    wipecert.CertMeta
	store   *inventory.Store
	version string
}

func newCertifier(cfg WipeConfig, dataDir, version string, store *inventory.Store) (*certifier, error) {
	dir := cfg.KeyDir
	if dir == "" {
		dir = dataDir + "/keys"
	}
	key, err := wipecert.LoadOrCreateSigningKey(dir, nil)
	if err != nil {
		return nil, fmt.Errorf("wipe.key_dir %s: %w", dir, err)
	}
	c := &certifier{key: key, store: store, version: version}
	c.meta.Destination = wipecert.Destination{Type: "Internal Reuse"}
	c.meta.DataBackedUp = "Unknown"
	if cfg.CertificateFile != "" {
		b, err := os.ReadFile(cfg.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("wipe.certificate_file: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c.meta); err != nil {
			return nil, fmt.Errorf("wipe.certificate_file %s: %w", cfg.CertificateFile, err)
		}
	}
	return c, nil
}

// PublicKey is what auditors verify certificates with (`slate cert verify`).
func (c *certifier) PublicKey() ed25519.PublicKey { return c.key.Public().(ed25519.PublicKey) }

func certID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "c-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Certify implements lifecycle.Certifier.
func (c *certifier) Certify(ctx context.Context, tx *inventory.Tx, m inventory.Machine, task inventory.Task) (bool, string, error) {
	var tr wipe.TaskResult
	if err := json.Unmarshal(task.Result, &tr); err != nil {
		return false, "", fmt.Errorf("wipe task %s: result is not a wipe result: %w", task.ID, err)
	}
	var p wipe.TaskParams
	if err := json.Unmarshal(task.Params, &p); err != nil {
		return false, "", fmt.Errorf("wipe task %s: params: %w", task.ID, err)
	}
	// The agent's word is checked against the plan Slate confirmed before anything is signed:
	// a result for other drives, other techniques or impossible timings is a lie or a fault,
	// and no certificate comes of it.
	problems, missing := wipe.CheckResult(p.Plan, tr)
	if len(problems) > 0 {
		if _, err := tx.Audit(ctx, "agent", "wipe.result", m.ID, "suspicious", map[string]any{"task": task.ID,
			"plan_digest": p.Authorization.PlanDigest, "problems": problems}); err != nil {
			return false, "", err
		}
		return false, "the wipe result was refused as suspicious, no certificate issued: " + strings.Join(problems, "; "), nil
	}
	meta := c.meta
	meta.Machine = wipecert.MachineIdentity{ID: m.ID, Name: m.Name, Serial: m.Serial, Manufacturer: m.Vendor, Model: m.Model}
	if meta.Person.Name == "" {
		meta.Person.Name = p.Authorization.ConfirmedBy
	}
	certs, report, err := wipecert.Certify(tr, p.Authorization, meta, "Slate "+c.version, c.key, certID, time.Now().UTC())
	if err != nil {
		return false, "", err
	}
	for _, sc := range certs {
		if err := tx.AddCertificate(ctx, inventory.Certificate{ID: sc.ID, MachineID: m.ID, TaskID: task.ID, DriveSerial: sc.DriveSerial,
			DrivePath: sc.DrivePath, KeyID: sc.KeyID, Signature: sc.Signature, File: sc.File}); err != nil {
			return false, "", err
		}
	}
	// Whether every drive is sanitized is Slate's reckoning over the plan, not the agent's
	// "sanitized" flag: a planned drive without a result is not sanitized.
	bad := missing
	for _, r := range tr.Results {
		if r.Status != wipe.StatusSanitized {
			bad = append(bad, fmt.Sprintf("%s (%s): %s %s", r.Drive.Path, r.Drive.Serial, r.Status, strings.Join(r.Errors, "; ")))
		}
	}
	complete := len(bad) == 0 && len(tr.Results) > 0
	if err := tx.AddReport(ctx, inventory.Report{ID: certID(), MachineID: m.ID, TaskID: task.ID, PlanDigest: tr.PlanDigest,
		Complete: complete, File: report}); err != nil {
		return false, "", err
	}
	summary := fmt.Sprintf("%d of %d drives certified", len(certs), len(tr.Results))
	if len(bad) > 0 {
		summary += "; not sanitized: " + strings.Join(bad, ", ")
	}
	if _, err := tx.Audit(ctx, "slate", "certificates.issue", m.ID, "ok", map[string]any{"task": task.ID, "certificates": len(certs),
		"drives": len(tr.Results), "complete": complete}); err != nil {
		return false, "", err
	}
	return complete, summary, nil
}
