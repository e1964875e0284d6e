package appliance

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"strings"

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

// certifier adapts wipecert.Issuer (which knows no store) to lifecycle.Certifier: it writes
// what the issuer returns, with its audit events, in the transaction that moves the machine.
type certifier struct {
	issuer *wipecert.Issuer
}

func newCertifier(cfg WipeConfig, dataDir, version string, _ *inventory.Store) (*certifier, error) {
	dir := cfg.KeyDir
	if dir == "" {
		dir = dataDir + "/keys"
	}
	is, err := wipecert.NewIssuer(wipecert.IssuerConfig{KeyDir: dir, MetaFile: cfg.CertificateFile, Tool: "Slate " + version})
	if err != nil {
		return nil, err
	}
	return &certifier{issuer: is}, nil
}

// PublicKey is what auditors verify certificates with (`slate cert verify`).
func (c *certifier) PublicKey() ed25519.PublicKey { return c.issuer.PublicKey() }

// DefaultPerson is the configured person (wipe.certificate_file) the confirmation starts from.
func (c *certifier) DefaultPerson() wipe.Person { return c.issuer.DefaultPerson() }

// Certify implements lifecycle.Certifier.
func (c *certifier) Certify(ctx context.Context, tx *inventory.Tx, m inventory.Machine, task inventory.Task) (bool, string, error) {
	var person wipe.Person
	if b, ok, err := tx.WipePerson(ctx, task.ID); err != nil {
		return false, "", err
	} else if ok {
		if err := json.Unmarshal(b, &person); err != nil {
			return false, "", fmt.Errorf("the person confirming wipe task %s: %w", task.ID, err)
		}
	}
	out, err := c.issuer.Issue(task.ID, task.Params, task.Result,
		wipecert.MachineIdentity{ID: m.ID, Name: m.Name, Serial: m.Serial, Manufacturer: m.Vendor, Model: m.Model}, person)
	if err != nil {
		return false, "", err
	}
	if len(out.Problems) > 0 {
		if _, err := tx.Audit(ctx, "agent", "wipe.result", m.ID, "suspicious", map[string]any{"task": task.ID,
			"plan_digest": out.PlanDigest, "problems": out.Problems}); err != nil {
			return false, "", err
		}
		return false, out.Refusal, nil
	}
	for _, sc := range out.Certificates {
		if err := tx.AddCertificate(ctx, inventory.Certificate{ID: sc.ID, MachineID: m.ID, TaskID: task.ID, DriveSerial: sc.DriveSerial,
			DrivePath: sc.DrivePath, KeyID: sc.KeyID, Signature: sc.Signature, File: sc.File}); err != nil {
			return false, "", err
		}
	}
	if err := tx.AddReport(ctx, inventory.Report{ID: out.ReportID, MachineID: m.ID, TaskID: task.ID, PlanDigest: out.PlanDigest,
		Complete: out.Complete, File: out.Report}); err != nil {
		return false, "", err
	}
	if _, err := tx.Audit(ctx, "slate", "certificates.issue", m.ID, "ok", map[string]any{"task": task.ID, "certificates": len(out.Certificates),
		"drives": out.Drives, "complete": out.Complete}); err != nil {
		return false, "", err
	}
	return out.Complete, out.Summary, nil
}
